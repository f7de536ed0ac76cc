//! The broker through its HTTP API, over a real SQLite file: delivery,
//! long polling, redelivery, dead letters, metrics and durability.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use firedrill_queue::{NAME, build};
use firedrill_runtime::testing::{self, TestService};
use serde_json::{Value, json};

struct Broker {
    service: TestService,
}

impl Broker {
    async fn start(db: &Path) -> Broker {
        let service = TestService::start(NAME, build, &["--database", db.to_str().unwrap()]).await;
        Broker { service }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let text = body.map(|b| b.to_string());
        self.service.call(method, uri, text.as_deref()).await
    }

    async fn publish(&self, topic: &str, payload: Value) -> i64 {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/topics/{topic}/messages"),
                Some(json!({"payload": payload, "headers": {"traceparent": "00-abc-def-01"}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }

    async fn receive(&self, topic: &str, max: i64, wait_ms: u64, visibility_ms: u64) -> Vec<Value> {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/topics/{topic}/receive"),
                Some(json!({"max": max, "wait_ms": wait_ms, "visibility_ms": visibility_ms})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["messages"].as_array().unwrap().clone()
    }

    async fn nack(&self, topic: &str, id: i64) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/topics/{topic}/messages/{id}/nack"),
                Some(json!({"reason": "handler failed"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn stats(&self, topic: &str) -> Value {
        let (status, body) = self
            .call(Method::GET, &format!("/topics/{topic}/stats"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn metrics(&self) -> String {
        self.service.metrics().await
    }
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("queue.db")
}

#[tokio::test]
async fn publish_receive_ack() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    let id = q
        .publish(
            "order-events",
            json!({"type": "order_confirmed", "order_id": 1}),
        )
        .await;
    let messages = q.receive("order-events", 10, 0, 30_000).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["id"], id);
    assert_eq!(m["topic"], "order-events");
    assert_eq!(
        m["payload"],
        json!({"type": "order_confirmed", "order_id": 1})
    );
    assert_eq!(
        m["headers"]["traceparent"], "00-abc-def-01",
        "trace context crosses the queue untouched"
    );
    assert_eq!(m["attempts"], 1);
    assert!(m["enqueued_at_ms"].as_i64().unwrap() > 0);
    let stats = q.stats("order-events").await;
    assert_eq!(
        (
            stats["depth"].as_i64(),
            stats["in_flight"].as_i64(),
            stats["dead_letters"].as_i64()
        ),
        (Some(0), Some(1), Some(0))
    );
    assert!(stats["oldest_age_ms"].as_i64().unwrap() >= 0);

    let (status, body) = q
        .call(
            Method::POST,
            &format!("/topics/order-events/messages/{id}/ack"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["acked"], true);
    let (status, body) = q
        .call(
            Method::POST,
            &format!("/topics/order-events/messages/{id}/ack"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a retried ack is harmless");
    assert_eq!(body["acked"], false);
    assert_eq!(
        q.stats("order-events").await,
        json!({"depth": 0, "in_flight": 0, "oldest_age_ms": 0, "dead_letters": 0})
    );
    assert!(q.receive("order-events", 10, 0, 30_000).await.is_empty());
    // Topics are independent.
    q.publish("cart-events", json!({})).await;
    assert!(q.receive("order-events", 10, 0, 30_000).await.is_empty());
    assert_eq!(q.receive("cart-events", 10, 0, 30_000).await.len(), 1);
}

#[tokio::test]
async fn an_empty_receive_waits_then_answers_empty() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    let started = Instant::now();
    assert!(q.receive("idle", 5, 300, 1000).await.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "returned after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wakes_on_publish() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    let app = q.service.app().clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        testing::call(
            &app,
            Method::POST,
            "/topics/wake/receive",
            Some(r#"{"max": 1, "wait_ms": 5000, "visibility_ms": 1000}"#),
        )
        .await
    });
    let id = q.publish("wake", json!({"n": 1})).await;
    let (status, body) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["messages"][0]["id"], id);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the poll waited for its deadline instead of the publish"
    );
}

#[tokio::test]
async fn an_unacked_message_is_redelivered_after_its_visibility_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    let id = q.publish("t", json!({"n": 1})).await;
    assert_eq!(q.receive("t", 1, 0, 100).await.len(), 1);
    // The long poll wakes when the message becomes visible again.
    let again = q.receive("t", 1, 5000, 100).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["id"], id);
    assert_eq!(again[0]["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_receivers_never_share_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    for n in 0..60 {
        q.publish("busy", json!({"n": n})).await;
    }
    let mut polls = Vec::new();
    for _ in 0..12 {
        let app = q.service.app().clone();
        polls.push(tokio::spawn(async move {
            testing::call(
                &app,
                Method::POST,
                "/topics/busy/receive",
                Some(r#"{"max": 7, "wait_ms": 0, "visibility_ms": 60000}"#),
            )
            .await
            .1
        }));
    }
    let mut seen = HashSet::new();
    for poll in polls {
        for m in poll.await.unwrap()["messages"].as_array().unwrap() {
            assert!(
                seen.insert(m["id"].as_i64().unwrap()),
                "message {} delivered twice",
                m["id"]
            );
        }
    }
    assert_eq!(seen.len(), 60);
}

#[tokio::test]
async fn failing_messages_are_dead_lettered_then_replayed_or_purged() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    let id = q.publish("orders", json!({"bad": true})).await;
    for attempt in 1..=5 {
        let got = q.receive("orders", 1, 0, 30_000).await;
        assert_eq!(got[0]["attempts"], attempt);
        let answer = q.nack("orders", id).await;
        assert_eq!(answer["dead_lettered"], attempt == 5, "attempt {attempt}");
    }
    assert!(
        q.receive("orders", 1, 0, 30_000).await.is_empty(),
        "a dead letter is not delivered"
    );
    let stats = q.stats("orders").await;
    assert_eq!(
        (stats["depth"].as_i64(), stats["dead_letters"].as_i64()),
        (Some(0), Some(1))
    );

    let (status, body) = q
        .call(Method::POST, "/topics/orders/dead-letters/replay", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["count"], 1);
    let replayed = q.receive("orders", 1, 0, 30_000).await;
    assert_eq!(replayed[0]["id"], id);
    assert_eq!(
        replayed[0]["attempts"], 1,
        "a replayed message gets a fresh budget"
    );

    for _ in 1..5 {
        q.nack("orders", id).await;
        q.receive("orders", 1, 0, 30_000).await;
    }
    assert_eq!(q.nack("orders", id).await["dead_lettered"], true);
    let (status, body) = q
        .call(Method::DELETE, "/topics/orders/dead-letters", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["count"], 1);
    assert_eq!(q.stats("orders").await["dead_letters"], 0);
}

/// Publishes one message to `topic` and fails it until it is dead.
async fn dead_letter(q: &Broker, topic: &str) -> i64 {
    let id = q.publish(topic, json!({"bad": true})).await;
    for _ in 1..=5 {
        let got = q.receive(topic, 1, 0, 30_000).await;
        assert_eq!(got[0]["id"], id);
        q.nack(topic, id).await;
    }
    assert_eq!(q.stats(topic).await["dead_letters"], 1);
    id
}

#[tokio::test]
async fn the_dlq_ops_replay_and_purge_every_topic_or_one() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    let order = dead_letter(&q, "order-events").await;
    dead_letter(&q, "cart-events").await;

    let (status, body) = q
        .call(Method::POST, "/dlq/replay?topic=order-events", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"count": 1, "topics": {"order-events": 1}}));
    assert_eq!(
        q.receive("order-events", 1, 0, 30_000).await[0]["id"],
        order
    );
    assert_eq!(q.stats("cart-events").await["dead_letters"], 1);

    let (status, body) = q.call(Method::POST, "/dlq/purge", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"count": 1, "topics": {"cart-events": 1}}));
    assert_eq!(q.stats("cart-events").await["dead_letters"], 0);

    dead_letter(&q, "cart-events").await;
    let (_, body) = q.call(Method::POST, "/dlq/replay", None).await;
    assert_eq!(body["count"], 1);
    let (status, _) = q.call(Method::POST, "/dlq/purge?topic=Bad", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_requests_are_400_and_unknown_messages_404() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    for topic in ["Orders", "order_events", "a.b", &"x".repeat(65)] {
        let (status, body) = q
            .call(
                Method::POST,
                &format!("/topics/{topic}/messages"),
                Some(json!({"payload": 1})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{topic}: {body}");
        let (status, _) = q
            .call(Method::GET, &format!("/topics/{topic}/stats"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{topic}");
    }
    let (status, _) = testing::call(
        q.service.app(),
        Method::POST,
        "/topics/t/messages",
        Some("{nope"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for body in [
        json!({"max": 0}),
        json!({"max": 101}),
        json!({"max": 1, "visibility_ms": 0}),
    ] {
        let (status, answer) = q
            .call(Method::POST, "/topics/t/receive", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let (status, body) = q
        .call(
            Method::POST,
            "/topics/t/messages/12345/nack",
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = q
        .call(Method::POST, "/topics/t/messages/abc/ack", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_oversized_payload_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    let big = "x".repeat(300 * 1024);
    let (status, _) = q
        .call(
            Method::POST,
            "/topics/t/messages",
            Some(json!({"payload": big})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(q.stats("t").await["depth"], 0);
}

#[tokio::test]
async fn metrics_follow_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    let a = q.publish("m", json!(1)).await;
    q.publish("m", json!(2)).await;
    q.publish("m", json!(3)).await;
    q.receive("m", 1, 0, 30_000).await;
    q.call(
        Method::POST,
        &format!("/topics/m/messages/{a}/ack"),
        Some(json!({})),
    )
    .await;
    let b = q.receive("m", 1, 0, 30_000).await[0]["id"]
        .as_i64()
        .unwrap();
    // Reading a topic's stats refreshes its gauges.
    q.stats("m").await;
    let text = q.metrics().await;
    let label = r#"{messaging_destination_name="m"}"#;
    for expected in [
        format!("messaging_queue_depth{label} 1.0"),
        format!("messaging_queue_in_flight{label} 1.0"),
        format!("messaging_queue_consumer_lag{label} 2.0"),
        format!("messaging_queue_dead_letter_depth{label} 0.0"),
        format!("messaging_client_sent_messages_total{label} 3.0"),
        format!("messaging_client_consumed_messages_total{label} 2.0"),
        format!("messaging_client_acked_messages_total{label} 1.0"),
    ] {
        assert!(text.contains(&expected), "missing {expected}:\n{text}");
    }
    assert!(
        text.contains(&format!(
            "messaging_queue_oldest_message_age_seconds{label}"
        )),
        "{text}"
    );

    for _ in 0..5 {
        q.nack("m", b).await;
        q.receive("m", 5, 0, 30_000).await;
    }
    let text = q.metrics().await;
    assert!(
        text.contains(&format!(
            "messaging_queue_dead_lettered_messages_total{label} 1.0"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn the_gauges_follow_changes_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    q.publish("bg", json!(1)).await;
    q.publish("bg", json!(2)).await;
    let expected = r#"messaging_queue_depth{messaging_destination_name="bg"} 2.0"#;
    // The refresher runs shortly after a change; wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !q.metrics().await.contains(expected) {
        assert!(
            Instant::now() < deadline,
            "gauges never refreshed:\n{}",
            q.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn messages_survive_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (ready, inflight) = {
        let q = Broker::start(&path).await;
        let inflight = q.publish("durable", json!({"n": 1})).await;
        let ready = q.publish("durable", json!({"n": 2})).await;
        assert_eq!(q.receive("durable", 1, 0, 200).await[0]["id"], inflight);
        (ready, inflight)
    };
    let q = Broker::start(&path).await;
    let stats = q.stats("durable").await;
    assert_eq!(
        (stats["depth"].as_i64(), stats["in_flight"].as_i64()),
        (Some(1), Some(1))
    );
    let got = q.receive("durable", 10, 0, 30_000).await;
    assert_eq!(got[0]["id"], ready);
    assert_eq!(got[0]["payload"], json!({"n": 2}));
    // The message in flight when the broker stopped comes back after its
    // visibility timeout, with its delivery count intact.
    let back = q.receive("durable", 10, 5000, 30_000).await;
    assert_eq!(back[0]["id"], inflight);
    assert_eq!(back[0]["attempts"], 2);
}

#[tokio::test]
async fn every_consumer_group_gets_each_message_and_a_bad_group_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let q = Broker::start(&db_path(&dir)).await;
    let receive = |group: &'static str| {
        let q = &q;
        async move {
            let (status, body) = q
                .call(
                    Method::POST,
                    "/topics/order-events/receive",
                    Some(json!({"max": 10, "wait_ms": 0, "group": group})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["messages"].as_array().unwrap().clone()
        }
    };
    // Both services consume the topic: each subscribes with its first receive.
    assert!(receive("notification").await.is_empty());
    assert!(receive("projector").await.is_empty());
    q.publish("order-events", json!({"order": 1})).await;
    let mail = receive("notification").await;
    let history = receive("projector").await;
    assert_eq!(mail.len(), 1, "notification's copy");
    assert_eq!(history.len(), 1, "projector's copy");
    assert_eq!(mail[0]["payload"], history[0]["payload"]);
    assert!(
        receive("notification").await.is_empty(),
        "delivered once per group"
    );

    let (status, body) = q
        .call(
            Method::POST,
            "/topics/order-events/receive",
            Some(json!({"max": 1, "group": "Not A Group"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("group"), "{body}");
}
