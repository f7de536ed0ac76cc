//! Shipping's routes over a real SQLite file.

use axum::http::{Method, StatusCode};
use firedrill_runtime::testing::TestService;
use firedrill_shipping::{NAME, build};
use serde_json::{Value, json};

struct TestApp {
    service: TestService,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let service = TestService::with_database(NAME, build, &[]).await;
        TestApp { service }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.service.call(method, uri, body).await
    }

    async fn ship(&self, order_id: i64, items: Value) -> (StatusCode, Value) {
        let body = json!({ "order_id": order_id, "user_id": 12, "items": items }).to_string();
        self.call(Method::POST, "/shipments", Some(&body)).await
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

    let (status, stored) = t.call(Method::GET, "/shipments/31", None).await;
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
    let (status, _) = t.call(Method::POST, "/shipments", Some("{broken")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t
        .call(Method::POST, "/shipments", Some(r#"{"order_id": 1}"#))
        .await;
    assert!(status.is_client_error());
    let (status, _) = t.call(Method::GET, "/shipments/1", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "rejected requests book nothing"
    );
    let (status, _) = t.call(Method::GET, "/shipments/x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bookings_are_counted_by_carrier() {
    let t = TestApp::spawn().await;
    let (_, body) = t.ship(5, json!([{"product_id": 1, "quantity": 1}])).await;
    t.ship(5, json!([{"product_id": 1, "quantity": 1}])).await;
    let carrier = body["carrier"].as_str().unwrap();
    let metrics = t.service.metrics().await;
    let expected = format!("shipping_shipments_total{{shipping_carrier=\"{carrier}\"}} 1.0");
    assert!(metrics.contains(&expected), "{metrics}");
}
