//! Notification against a stand-in broker that hands out scripted messages
//! and reports every ack and nack: the thing under test is the consumer.

use axum::http::StatusCode;
use firedrill_notification::{NAME, build};
use firedrill_runtime::testing::{Settled, StandInBroker, TestService};
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

    async fn notifications(&self, query: &str) -> (StatusCode, Value) {
        self.service.get(&format!("/notifications?{query}")).await
    }
}

const ORDERS: &str = "order-events";

fn acked(id: i64) -> Settled {
    Settled::Ack(ORDERS.to_string(), id)
}

fn confirmed(order_id: i64, user_id: i64) -> Value {
    json!({"type": "order_confirmed", "order_id": order_id, "user_id": user_id, "total_cents": 2500,
           "items": [{"product_id": 1, "quantity": 1, "price_cents": 2500, "name": "Lamp"}], "at_ms": 1})
}

#[tokio::test]
async fn a_confirmed_order_is_notified_once_even_when_redelivered() {
    let mut t = TestApp::spawn().await;
    t.broker.deliver("order-events", 1, 1, confirmed(10, 7));
    assert_eq!(t.next_settled().await, acked(1));
    // The broker redelivers (say the first ack was lost).
    t.broker.deliver("order-events", 1, 2, confirmed(10, 7));
    assert_eq!(t.next_settled().await, acked(1));

    let (status, body) = t.notifications("user_id=7").await;
    assert_eq!(status, StatusCode::OK);
    let list = body["notifications"].as_array().unwrap();
    assert_eq!(list.len(), 1, "a redelivery must not send twice: {body}");
    assert_eq!(list[0]["order_id"], 10);
    assert_eq!(list[0]["channel"], "email");
    assert!(list[0]["body"].as_str().unwrap().contains("#10"));
}

#[tokio::test]
async fn notifications_are_listed_per_user_newest_first() {
    let mut t = TestApp::spawn().await;
    t.broker.deliver("order-events", 1, 1, confirmed(1, 5));
    t.broker.deliver("order-events", 2, 1, confirmed(2, 6));
    t.broker.deliver("order-events", 3, 1, confirmed(3, 5));
    for _ in 0..3 {
        assert!(matches!(t.next_settled().await, Settled::Ack(..)));
    }
    let (_, body) = t.notifications("user_id=5").await;
    let orders: Vec<i64> = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(orders, vec![3, 1]);
    let (_, body) = t.notifications("user_id=99").await;
    assert_eq!(body, json!({"notifications": []}));
}

#[tokio::test]
async fn other_events_are_acked_without_sending() {
    let mut t = TestApp::spawn().await;
    t.broker.deliver(
        "order-events",
        4,
        1,
        json!({"type": "order_shipped", "order_id": 1, "user_id": 5}),
    );
    assert_eq!(t.next_settled().await, acked(4));
    let (_, body) = t.notifications("user_id=5").await;
    assert_eq!(body, json!({"notifications": []}));
}

#[tokio::test]
async fn an_unreadable_event_is_nacked() {
    let mut t = TestApp::spawn().await;
    t.broker.deliver(
        "order-events",
        9,
        1,
        json!({"type": "order_confirmed", "order_id": "not a number"}),
    );
    match t.next_settled().await {
        Settled::Nack(_, 9, reason) => assert!(reason.contains("unreadable"), "{reason}"),
        other => panic!("expected a nack, got {other:?}"),
    }
    // The consumer carries on with the next message.
    t.broker.deliver("order-events", 10, 1, confirmed(11, 5));
    assert_eq!(t.next_settled().await, acked(10));
}

#[tokio::test]
async fn the_list_needs_a_numeric_user_id() {
    let t = TestApp::spawn().await;
    for query in ["", "user_id=abc"] {
        let (status, body) = t.notifications(query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
}

#[tokio::test]
async fn a_missing_broker_is_a_start_up_error() {
    assert!(
        TestService::try_with_database(NAME, build, &[])
            .await
            .is_err()
    );
}
