//! The cart service through its full server stack (`ctx.app`), driven with
//! `oneshot`, against a temporary SQLite database and in-test axum servers
//! playing catalog and the queue broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use firedrill_cart::{NAME, build};
use firedrill_runtime::testing::{TestService, dead_url, spawn_peer};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// Catalog: products 1..=5 exist (price `id * 100 + 99`), 500 is broken,
/// everything else is unknown.
async fn catalog_product(Path(id): Path<i64>) -> axum::response::Response {
    match id {
        1..=5 => Json(json!({
            "id": id, "sku": format!("T-{id}"), "name": format!("Product {id}"), "category": "toys",
            "price_cents": id * 100 + 99, "description": "A test product.",
        }))
        .into_response(),
        500 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "catalog broke"})),
        )
            .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("product {id} not found")})),
        )
            .into_response(),
    }
}

/// The queue broker's publish route, recording (topic, payload); `failing`
/// turns it into a 500.
#[derive(Clone, Default)]
struct FakeBroker {
    published: Arc<Mutex<Vec<(String, Value)>>>,
    failing: Arc<AtomicBool>,
}

async fn broker_publish(
    State(broker): State<FakeBroker>,
    Path(topic): Path<String>,
    Json(body): Json<Value>,
) -> axum::response::Response {
    if broker.failing.load(Ordering::SeqCst) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "disk full"})),
        )
            .into_response();
    }
    let mut published = broker.published.lock();
    published.push((topic, body["payload"].clone()));
    (StatusCode::CREATED, Json(json!({"id": published.len()}))).into_response()
}

struct TestApp {
    service: TestService,
    broker: FakeBroker,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let catalog = spawn_peer(Router::new().route("/products/{id}", get(catalog_product))).await;
        Self::with_catalog(&catalog).await
    }

    async fn with_catalog(catalog: &str) -> TestApp {
        let broker = FakeBroker::default();
        let queue = spawn_peer(
            Router::new()
                .route("/topics/{topic}/messages", post(broker_publish))
                .with_state(broker.clone()),
        )
        .await;
        let peers = format!("catalog={catalog};queue={queue}");
        let flags = [
            "--peers",
            &peers,
            "--call-retries",
            "0",
            "--call-timeout",
            "1s",
        ];
        let service = TestService::with_database(NAME, build, &flags).await;
        TestApp { service, broker }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.service.call(method, uri, body).await
    }

    async fn add(&self, user: i64, product: i64, quantity: i64) -> (StatusCode, Value) {
        let body = json!({"product_id": product, "quantity": quantity}).to_string();
        self.call(Method::POST, &format!("/carts/{user}/items"), Some(&body))
            .await
    }

    async fn cart(&self, user: i64) -> Value {
        let (status, cart) = self
            .call(Method::GET, &format!("/carts/{user}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{cart}");
        cart
    }

    fn events(&self) -> Vec<Value> {
        self.broker
            .published
            .lock()
            .iter()
            .map(|(topic, payload)| {
                assert_eq!(topic, "cart-events");
                payload.clone()
            })
            .collect()
    }

    async fn metrics(&self) -> String {
        self.service.metrics().await
    }
}

fn quantities(cart: &Value) -> Vec<(i64, i64)> {
    cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["product_id"].as_i64().unwrap(),
                i["quantity"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_new_users_cart_is_empty() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.cart(17).await,
        json!({"user_id": 17, "items": [], "total_cents": 0})
    );
}

#[tokio::test]
async fn adding_items_prices_them_from_catalog_and_publishes() {
    let app = TestApp::spawn().await;
    let (status, cart) = app.add(1, 2, 3).await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(
        cart,
        json!({"user_id": 1, "items": [{"product_id": 2, "name": "Product 2", "quantity": 3, "price_cents": 299}], "total_cents": 897})
    );
    let (_, cart) = app.add(1, 1, 1).await;
    assert_eq!(
        quantities(&cart),
        vec![(1, 1), (2, 3)],
        "lines in product order"
    );
    assert_eq!(cart["total_cents"], 897 + 199);
    assert_eq!(app.cart(1).await, cart, "the cart was stored");

    let events = app.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["type"], "item_added");
    assert_eq!(events[0]["user_id"], 1);
    assert_eq!(events[0]["product_id"], 2);
    assert_eq!(events[0]["quantity"], 3);
    assert!(events[0]["at_ms"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(
        app.metrics()
            .await
            .contains(r#"cart_events_published_total{cart_event_type="item_added"} 2.0"#)
    );
}

#[tokio::test]
async fn adding_more_of_a_line_sums_and_caps_at_ten() {
    let app = TestApp::spawn().await;
    app.add(3, 4, 6).await;
    let (_, cart) = app.add(3, 4, 3).await;
    assert_eq!(quantities(&cart), vec![(4, 9)]);
    let (status, cart) = app.add(3, 4, 5).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(quantities(&cart), vec![(4, 10)]);
    assert_eq!(cart["total_cents"], 10 * 499);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_never_exceed_ten() {
    let app = Arc::new(TestApp::spawn().await);
    let adds: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.add(9, 1, 1).await.0 })
        })
        .collect();
    for add in adds {
        assert_eq!(add.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(quantities(&app.cart(9).await), vec![(1, 10)]);
}

#[tokio::test]
async fn bad_quantities_and_bodies_are_400() {
    let app = TestApp::spawn().await;
    for quantity in [0, 11, -1] {
        let (status, body) = app.add(1, 1, quantity).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{quantity}");
        assert_eq!(body["error"], "quantity must be between 1 and 10");
    }
    for body in [
        r#"{"product_id": 1}"#,
        r#"{"product_id": 1, "quantity": "2"}"#,
        r#"{"product_id": 1, "quantity": 2.5}"#,
        r#"{"product_id": 1, "#,
        r#"{"product_id": 0, "quantity": 1}"#,
    ] {
        let (status, answer) = app.call(Method::POST, "/carts/1/items", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer["error"].is_string());
    }
    for uri in ["/carts/abc", "/carts/0", "/carts/-3"] {
        assert_eq!(
            app.call(Method::GET, uri, None).await.0,
            StatusCode::BAD_REQUEST,
            "{uri}"
        );
    }
    assert_eq!(app.cart(1).await["items"], json!([]), "nothing was added");
    assert!(app.events().is_empty());
}

#[tokio::test]
async fn an_unknown_product_is_404_and_adds_nothing() {
    let app = TestApp::spawn().await;
    let (status, body) = app.add(1, 77, 1).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "unknown product 77");
    assert_eq!(app.cart(1).await["items"], json!([]));
    assert!(app.events().is_empty());
}

#[tokio::test]
async fn a_failing_catalog_is_a_5xx_not_a_404() {
    let app = TestApp::spawn().await;
    let (status, body) = app.add(1, 500, 1).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("catalog"),
        "{body}"
    );

    let down = TestApp::with_catalog(&dead_url().await).await;
    let (status, _) = down.add(1, 1, 1).await;
    assert!(status.is_server_error(), "{status}");
    assert_eq!(down.cart(1).await["items"], json!([]));
}

#[tokio::test]
async fn removing_a_line_and_clearing_the_cart() {
    let app = TestApp::spawn().await;
    app.add(5, 1, 2).await;
    app.add(5, 2, 1).await;
    app.add(6, 3, 1).await;

    let (status, cart) = app.call(Method::DELETE, "/carts/5/items/1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(quantities(&cart), vec![(2, 1)]);
    assert_eq!(cart["total_cents"], 299);

    // Removing what is not there is not an error, and announces nothing.
    let before = app.events().len();
    let (status, again) = app.call(Method::DELETE, "/carts/5/items/1", None).await;
    assert_eq!((status, &again), (StatusCode::OK, &cart));
    assert_eq!(app.events().len(), before);

    let (status, cleared) = app.call(Method::DELETE, "/carts/5", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        cleared,
        json!({"user_id": 5, "items": [], "total_cents": 0})
    );
    assert_eq!(app.cart(5).await, cleared);
    assert_eq!(
        quantities(&app.cart(6).await),
        vec![(3, 1)],
        "other carts untouched"
    );

    let events = app.events();
    let removed = &events[events.len() - 2];
    assert_eq!(
        (
            removed["type"].as_str(),
            removed["product_id"].as_i64(),
            removed["quantity"].as_i64()
        ),
        (Some("item_removed"), Some(1), Some(2))
    );
    let cleared = events.last().unwrap();
    assert_eq!(cleared["type"], "cart_cleared");
    assert_eq!(cleared["user_id"], 5);
    assert_eq!(cleared["product_id"], Value::Null);
    assert_eq!(cleared["quantity"], 1);

    // Clearing an empty cart is fine too.
    assert_eq!(
        app.call(Method::DELETE, "/carts/5", None).await.0,
        StatusCode::OK
    );
    assert_eq!(app.events().len(), events.len());
}

#[tokio::test]
async fn a_broker_failure_does_not_fail_the_request_but_is_counted() {
    let app = TestApp::spawn().await;
    app.broker.failing.store(true, Ordering::SeqCst);
    let (status, cart) = app.add(2, 3, 2).await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(quantities(&cart), vec![(3, 2)]);
    assert_eq!(
        quantities(&app.cart(2).await),
        vec![(3, 2)],
        "the change stands"
    );
    let (status, _) = app.call(Method::DELETE, "/carts/2", None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"cart_events_publish_failures_total{cart_event_type="item_added"} 1.0"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"cart_events_publish_failures_total{cart_event_type="cart_cleared"} 1.0"#),
        "{metrics}"
    );
    assert!(app.events().is_empty());
}

#[tokio::test]
async fn missing_peers_fail_start_up() {
    for (peers, missing) in [
        ("queue=http://127.0.0.1:9", "catalog"),
        ("catalog=http://127.0.0.1:9", "queue"),
    ] {
        let err = TestService::try_with_database(NAME, build, &["--peers", peers])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(missing), "{err}");
    }
}
