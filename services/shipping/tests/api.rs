//! Shipping's routes over a real SQLite file.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use firedrill_runtime::ServiceContext;
use firedrill_runtime::config::parse_service_args;
use firedrill_runtime::metrics::Meters;
use firedrill_shipping::{NAME, build};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

struct TestApp {
    app: Router,
    _dir: tempfile::TempDir,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("shop.db");
        let args = parse_service_args(&["--database", db.to_str().unwrap()]).unwrap();
        let meters = Meters::new(&args.identity(NAME));
        let ctx = ServiceContext::new(NAME, args, meters, CancellationToken::new()).unwrap();
        let app = ctx.app(build(ctx.clone()).await.unwrap());
        TestApp { app, _dir: dir }
    }

    async fn call(&self, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    async fn ship(&self, order_id: i64, items: Value) -> (StatusCode, Value) {
        let body = json!({ "order_id": order_id, "user_id": 12, "items": items }).to_string();
        self.call("POST", "/shipments", Some(&body)).await
    }
}

#[tokio::test]
async fn a_shipment_is_booked_once_per_order() {
    let t = TestApp::spawn().await;
    let (status, body) = t.ship(31, json!([{"product_id": 4, "quantity": 2}])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["shipment_id"].as_str().unwrap().starts_with("SHP-31-"),
        "{body}"
    );
    assert!(body["carrier"].is_string());
    assert!(body["eta_days"].as_i64().unwrap() >= 2);

    // A retry, even with different items, gets the shipment already booked.
    let (status, again) = t.ship(31, json!([{"product_id": 8, "quantity": 1}])).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, body);

    let (status, stored) = t.call("GET", "/shipments/31", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["shipment_id"], body["shipment_id"]);
    assert_eq!(stored["user_id"], 12);
    assert_eq!(stored["items"], json!([{"product_id": 4, "quantity": 2}]));
}

#[tokio::test]
async fn quotes_are_deterministic_across_databases() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn().await;
    let items = json!([{"product_id": 17, "quantity": 3}, {"product_id": 2, "quantity": 1}]);
    assert_eq!(a.ship(77, items.clone()).await.1, b.ship(77, items).await.1);
}

#[tokio::test]
async fn bad_input_is_400_and_unknown_is_404() {
    let t = TestApp::spawn().await;
    let (status, body) = t.ship(1, json!([])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "items must not be empty");
    let (status, _) = t.ship(1, json!([{"product_id": 1, "quantity": 0}])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.call("POST", "/shipments", Some("{broken")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t
        .call("POST", "/shipments", Some(r#"{"order_id": 1}"#))
        .await;
    assert!(status.is_client_error());
    let (status, _) = t.call("GET", "/shipments/1", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "rejected requests book nothing"
    );
    let (status, _) = t.call("GET", "/shipments/x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bookings_are_counted_by_carrier() {
    let t = TestApp::spawn().await;
    let (_, body) = t.ship(5, json!([{"product_id": 1, "quantity": 1}])).await;
    t.ship(5, json!([{"product_id": 1, "quantity": 1}])).await;
    let carrier = body["carrier"].as_str().unwrap();
    let (_, metrics) = t.call("GET", "/metrics", None).await;
    let expected = format!("shipping_shipments_total{{shipping_carrier=\"{carrier}\"}} 1.0");
    assert!(metrics.as_str().unwrap().contains(&expected), "{metrics}");
}
