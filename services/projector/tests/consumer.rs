//! Projector against a stand-in broker that hands out scripted messages and
//! reports every ack and nack: the thing under test is the consumers and the
//! read models they build.

use axum::http::StatusCode;
use firedrill_projector::{NAME, build};
use firedrill_runtime::faults::model::FaultKind;
use firedrill_runtime::testing::{FaultInjector, Settled, StandInBroker, TestService};
use serde_json::{Value, json};

struct TestApp {
    service: TestService,
    broker: StandInBroker,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let broker = StandInBroker::spawn().await;
        let peers = format!("queue={}", broker.url());
        let service = TestService::with_database(NAME, build, &["--peers", &peers]).await;
        TestApp { service, broker }
    }

    /// The next ack or nack the consumer sends (bounded wait).
    async fn next_settled(&mut self) -> Settled {
        self.broker.next_settled().await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.service.get(uri).await
    }

    async fn order_ids(&self, user_id: i64) -> Vec<i64> {
        let (status, body) = self.get(&format!("/users/{user_id}/orders")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_id"].as_i64().unwrap())
            .collect()
    }
}

const ORDERS: &str = "order-events";
const CARTS: &str = "cart-events";

fn confirmed(order_id: i64, user_id: i64, at_ms: i64) -> Value {
    json!({"type": "order_confirmed", "order_id": order_id, "user_id": user_id, "total_cents": 1000 * order_id,
           "items": [{"product_id": 1, "quantity": 2, "price_cents": 250}, {"product_id": 2, "quantity": 1, "price_cents": 500}],
           "at_ms": at_ms})
}

fn cart(kind: &str, user_id: i64, at_ms: i64) -> Value {
    json!({"type": kind, "user_id": user_id, "product_id": 3, "quantity": 1, "at_ms": at_ms})
}

fn acked(topic: &str, id: i64) -> Settled {
    Settled::Ack(topic.to_string(), id)
}

#[tokio::test]
async fn a_confirmed_order_joins_the_history_once() {
    let mut t = TestApp::spawn().await;
    t.broker.deliver(ORDERS, 1, 1, confirmed(10, 4, 1_000));
    assert_eq!(t.next_settled().await, acked(ORDERS, 1));
    t.broker.deliver(ORDERS, 1, 2, confirmed(10, 4, 1_000));
    assert_eq!(
        t.next_settled().await,
        acked(ORDERS, 1),
        "a redelivery is acked"
    );

    let (status, body) = t.get("/users/4/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"orders": [{"order_id": 10, "user_id": 4, "total_cents": 10000, "item_count": 3, "confirmed_at": 1000}]}),
        "applied exactly once"
    );
}

#[tokio::test]
async fn history_is_per_user_and_newest_first() {
    let mut t = TestApp::spawn().await;
    t.broker.deliver(ORDERS, 1, 1, confirmed(1, 4, 100));
    t.broker.deliver(ORDERS, 2, 1, confirmed(2, 5, 200));
    t.broker.deliver(ORDERS, 3, 1, confirmed(3, 4, 300));
    for _ in 0..3 {
        assert!(matches!(t.next_settled().await, Settled::Ack(..)));
    }
    assert_eq!(t.order_ids(4).await, vec![3, 1]);
    assert_eq!(t.order_ids(5).await, vec![2]);
    assert_eq!(t.order_ids(6).await, Vec::<i64>::new());
}

#[tokio::test]
async fn cart_events_build_activity_and_redeliveries_do_not_count() {
    let mut t = TestApp::spawn().await;
    t.broker.deliver(CARTS, 1, 1, cart("item_added", 8, 100));
    t.broker.deliver(CARTS, 2, 1, cart("item_removed", 8, 200));
    t.broker.deliver(CARTS, 2, 2, cart("item_removed", 8, 200));
    for _ in 0..3 {
        assert!(matches!(t.next_settled().await, Settled::Ack(..)));
    }
    let (status, body) = t.get("/users/8/cart-activity").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"user_id": 8, "last_event": "item_removed", "events_seen": 2, "updated_at": 200})
    );
    let (status, _) = t.get("/users/9/cart-activity").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn both_topics_are_consumed_side_by_side() {
    let mut t = TestApp::spawn().await;
    // The same message id on two topics: two different messages.
    t.broker.deliver(ORDERS, 7, 1, confirmed(70, 1, 10));
    t.broker.deliver(CARTS, 7, 1, cart("cart_cleared", 1, 11));
    let mut settled = vec![t.next_settled().await, t.next_settled().await];
    settled.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(settled, vec![acked(CARTS, 7), acked(ORDERS, 7)]);
    assert_eq!(t.order_ids(1).await, vec![70]);
    assert_eq!(
        t.get("/users/1/cart-activity").await.1["last_event"],
        "cart_cleared"
    );
}

#[tokio::test]
async fn unreadable_events_are_nacked_and_others_skipped() {
    let mut t = TestApp::spawn().await;
    t.broker.deliver(
        ORDERS,
        1,
        1,
        json!({"type": "order_confirmed", "order_id": 1}),
    );
    match t.next_settled().await {
        Settled::Nack(topic, 1, reason) => {
            assert_eq!(topic, ORDERS);
            assert!(reason.contains("unreadable"), "{reason}");
        }
        other => panic!("expected a nack, got {other:?}"),
    }
    t.broker.deliver(
        ORDERS,
        2,
        1,
        json!({"type": "order_refunded", "order_id": 1}),
    );
    assert_eq!(
        t.next_settled().await,
        acked(ORDERS, 2),
        "an event with no projection is acked"
    );
    t.broker.deliver(ORDERS, 3, 1, confirmed(30, 2, 5));
    assert_eq!(t.next_settled().await, acked(ORDERS, 3));
    assert_eq!(t.order_ids(2).await, vec![30]);
}

#[tokio::test]
async fn bad_user_ids_are_400() {
    let t = TestApp::spawn().await;
    let (status, _) = t.get("/users/abc/orders").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.get("/users/abc/cart-activity").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_missing_broker_is_a_start_up_error() {
    assert!(
        TestService::try_with_database(NAME, build, &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_poison_message_is_rejected_on_every_delivery_and_others_pass() {
    let mut app = TestApp::spawn().await;
    let mut faults = FaultInjector::new(app.service.context());
    // Toxicity 1: every message id is poison while the fault lasts.
    let fault = faults.inject(
        FaultKind::PoisonMessage {},
        "projector->queue-consumer",
        1.0,
    );
    for attempt in 1..=3 {
        app.broker.deliver(ORDERS, 41, attempt, confirmed(41, 7, 1));
        match app.next_settled().await {
            Settled::Nack(topic, 41, reason) => {
                assert_eq!(topic, ORDERS);
                assert!(
                    reason.starts_with("unreadable order-events event: invalid type: string"),
                    "{reason}"
                );
            }
            other => panic!("delivery {attempt}: {other:?}"),
        }
    }
    assert!(app.order_ids(7).await.is_empty(), "nothing was projected");
    let metrics = app.service.metrics().await;
    assert!(
        metrics.contains(
            r#"projector_events_total{messaging_destination_name="order-events",outcome="rejected"} 3.0"#
        ),
        "{metrics}"
    );

    // Fault over: the same message (a replay from the dead letters) is fine.
    faults.clear(&fault);
    app.broker.deliver(ORDERS, 41, 1, confirmed(41, 7, 1));
    assert_eq!(app.next_settled().await, acked(ORDERS, 41));
    assert_eq!(app.order_ids(7).await, vec![41]);
}
