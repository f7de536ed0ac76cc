//! Shipping's routes over a real SQLite file.

use axum::http::{Method, StatusCode};
use firedrill_runtime::testing::TestService;
use firedrill_shipping::{NAME, build};
use serde_json::{Value, json};

async fn spawn() -> TestService {
    TestService::with_database(NAME, build, &[]).await
}

async fn ship(t: &TestService, order_id: i64, items: Value) -> (StatusCode, Value) {
    let body = json!({ "order_id": order_id, "user_id": 12, "items": items }).to_string();
    t.call(Method::POST, "/shipments", Some(&body)).await
}

#[tokio::test]
async fn a_shipment_is_booked_once_per_order() {
    let t = spawn().await;
    let (status, body) = ship(&t, 31, json!([{"product_id": 4, "quantity": 2}])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["shipment_id"].as_str().unwrap().starts_with("SHP-31-"),
        "{body}"
    );
    assert!(body["carrier"].is_string());
    assert!(body["eta_days"].as_i64().unwrap() >= 2);

    // A retry, even with different items, gets the shipment already booked.
    let (status, again) = ship(&t, 31, json!([{"product_id": 8, "quantity": 1}])).await;
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
    let a = spawn().await;
    let b = spawn().await;
    let items = json!([{"product_id": 17, "quantity": 3}, {"product_id": 2, "quantity": 1}]);
    assert_eq!(
        ship(&a, 77, items.clone()).await.1,
        ship(&b, 77, items).await.1
    );
}

#[tokio::test]
async fn bad_input_is_400_and_unknown_is_404() {
    let t = spawn().await;
    let (status, body) = ship(&t, 1, json!([])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "items must not be empty");
    let (status, _) = ship(&t, 1, json!([{"product_id": 1, "quantity": 0}])).await;
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
    let t = spawn().await;
    let (_, body) = ship(&t, 5, json!([{"product_id": 1, "quantity": 1}])).await;
    ship(&t, 5, json!([{"product_id": 1, "quantity": 1}])).await;
    let carrier = body["carrier"].as_str().unwrap();
    let metrics = t.metrics().await;
    let expected = format!("shipping_shipments_total{{shipping_carrier=\"{carrier}\"}} 1.0");
    assert!(metrics.contains(&expected), "{metrics}");
}
