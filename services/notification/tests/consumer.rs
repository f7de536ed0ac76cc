//! Notification against a stand-in broker that hands out scripted messages
//! and reports every ack and nack: the thing under test is the consumer.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::routing::post;
use firedrill_notification::{NAME, build};
use firedrill_runtime::ServiceContext;
use firedrill_runtime::config::parse_service_args;
use firedrill_runtime::metrics::Meters;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// What the consumer did with a message.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    Ack(i64),
    Nack(i64, String),
}

/// A minimal broker: per-topic queues, long-poll receive, ack/nack reports.
struct FakeBroker {
    pending: Mutex<HashMap<String, VecDeque<Value>>>,
    arrived: Notify,
    settled: mpsc::UnboundedSender<Settled>,
}

impl FakeBroker {
    fn deliver(&self, topic: &str, id: i64, attempts: u32, payload: Value) {
        let message = json!({"id": id, "topic": topic, "payload": payload, "headers": {}, "attempts": attempts, "enqueued_at_ms": 1});
        self.pending
            .lock()
            .entry(topic.to_string())
            .or_default()
            .push_back(message);
        self.arrived.notify_waiters();
    }
}

async fn receive(
    State(b): State<Arc<FakeBroker>>,
    Path(topic): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let wait = Duration::from_millis(body["wait_ms"].as_u64().unwrap_or(0));
    let max = body["max"].as_u64().unwrap_or(1) as usize;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = b.arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let batch: Vec<Value> = {
            let mut pending = b.pending.lock();
            let queue = pending.entry(topic.clone()).or_default();
            let n = queue.len().min(max);
            queue.drain(..n).collect()
        };
        if !batch.is_empty() {
            return axum::Json(json!({ "messages": batch }));
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => return axum::Json(json!({ "messages": [] })),
        }
    }
}

async fn ack(
    State(b): State<Arc<FakeBroker>>,
    Path((_topic, id)): Path<(String, i64)>,
) -> axum::Json<Value> {
    let _ = b.settled.send(Settled::Ack(id));
    axum::Json(json!({"id": id, "acked": true}))
}

async fn nack(
    State(b): State<Arc<FakeBroker>>,
    Path((_topic, id)): Path<(String, i64)>,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let _ = b.settled.send(Settled::Nack(
        id,
        body["reason"].as_str().unwrap_or_default().to_string(),
    ));
    axum::Json(json!({"dead_lettered": false}))
}

struct TestApp {
    app: Router,
    broker: Arc<FakeBroker>,
    settled: mpsc::UnboundedReceiver<Settled>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestApp {
    async fn spawn() -> TestApp {
        let stop = CancellationToken::new();
        let (tx, settled) = mpsc::unbounded_channel();
        let broker = Arc::new(FakeBroker {
            pending: Mutex::default(),
            arrived: Notify::new(),
            settled: tx,
        });
        let routes = Router::new()
            .route("/topics/{topic}/receive", post(receive))
            .route("/topics/{topic}/messages/{id}/ack", post(ack))
            .route("/topics/{topic}/messages/{id}/nack", post(nack))
            .with_state(broker.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(firedrill_runtime::server::serve(
            routes,
            listener,
            stop.clone(),
        ));

        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("shop.db");
        let peers = format!("queue={url}");
        let args =
            parse_service_args(&["--database", db.to_str().unwrap(), "--peers", &peers]).unwrap();
        let meters = Meters::new(&args.identity(NAME));
        let ctx = ServiceContext::new(NAME, args, meters, stop.clone()).unwrap();
        let app = ctx.app(build(ctx.clone()).await.unwrap());
        TestApp {
            app,
            broker,
            settled,
            stop,
            _dir: dir,
        }
    }

    /// The next ack or nack the consumer sends (bounded wait).
    async fn next_settled(&mut self) -> Settled {
        tokio::time::timeout(Duration::from_secs(10), self.settled.recv())
            .await
            .expect("the consumer never settled the message")
            .unwrap()
    }

    async fn notifications(&self, query: &str) -> (StatusCode, Value) {
        let request = Request::get(format!("/notifications?{query}"))
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn confirmed(order_id: i64, user_id: i64) -> Value {
    json!({"type": "order_confirmed", "order_id": order_id, "user_id": user_id, "total_cents": 2500,
           "items": [{"product_id": 1, "quantity": 1, "price_cents": 2500, "name": "Lamp"}], "at_ms": 1})
}

#[tokio::test]
async fn a_confirmed_order_is_notified_once_even_when_redelivered() {
    let mut t = TestApp::spawn().await;
    t.broker.deliver("order-events", 1, 1, confirmed(10, 7));
    assert_eq!(t.next_settled().await, Settled::Ack(1));
    // The broker redelivers (say the first ack was lost).
    t.broker.deliver("order-events", 1, 2, confirmed(10, 7));
    assert_eq!(t.next_settled().await, Settled::Ack(1));

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
        assert!(matches!(t.next_settled().await, Settled::Ack(_)));
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
    assert_eq!(t.next_settled().await, Settled::Ack(4));
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
        Settled::Nack(9, reason) => assert!(reason.contains("unreadable"), "{reason}"),
        other => panic!("expected a nack, got {other:?}"),
    }
    // The consumer carries on with the next message.
    t.broker.deliver("order-events", 10, 1, confirmed(11, 5));
    assert_eq!(t.next_settled().await, Settled::Ack(10));
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
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let args = parse_service_args(&["--database", db.to_str().unwrap()]).unwrap();
    let meters = Meters::new(&args.identity(NAME));
    let ctx = ServiceContext::new(NAME, args, meters, CancellationToken::new()).unwrap();
    assert!(build(ctx).await.is_err());
}
