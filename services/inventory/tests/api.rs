//! Inventory's routes end to end over a real SQLite file, including the
//! invariant that concurrent checkouts never oversell.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use firedrill_inventory::{NAME, build};
use firedrill_runtime::testing::{self, TestService};
use serde_json::{Value, json};

async fn spawn() -> TestService {
    TestService::with_database(NAME, build, &[]).await
}

async fn reserve(t: &TestService, order_id: i64, items: Value) -> (StatusCode, Value) {
    let body = json!({ "order_id": order_id, "items": items }).to_string();
    t.call(Method::POST, "/reservations", Some(&body)).await
}

async fn stock(t: &TestService, product_id: i64) -> (i64, i64) {
    let (status, body) = t.get(&format!("/stock/{product_id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["available"].as_i64().unwrap(),
        body["reserved"].as_i64().unwrap(),
    )
}

/// Sets a product's stock behind the service's back, as an operator would.
fn set_available(t: &TestService, product_id: i64, available: i64) {
    let conn = rusqlite::Connection::open(t.database()).unwrap();
    conn.execute(
        "UPDATE stock SET available = ?2 WHERE product_id = ?1",
        [product_id, available],
    )
    .unwrap();
}

#[tokio::test]
async fn reserve_takes_stock_once_per_order() {
    let t = spawn().await;
    let (status, body) = reserve(
        &t,
        1,
        json!([{"product_id": 5, "quantity": 3}, {"product_id": 6, "quantity": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, json!({"order_id": 1, "status": "reserved"}));
    assert_eq!(stock(&t, 5).await, (997, 3));
    assert_eq!(stock(&t, 6).await, (999, 1));

    // A retried request (same order) answers the same and takes nothing more.
    let (status, again) = reserve(
        &t,
        1,
        json!([{"product_id": 5, "quantity": 3}, {"product_id": 6, "quantity": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, body);
    assert_eq!(stock(&t, 5).await, (997, 3));
}

#[tokio::test]
async fn commit_makes_the_reservation_permanent() {
    let t = spawn().await;
    reserve(&t, 7, json!([{"product_id": 1, "quantity": 4}])).await;
    let (status, body) = t
        .call(Method::POST, "/reservations/7/commit", Some("{}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"order_id": 7, "status": "committed"}));
    assert_eq!(
        stock(&t, 1).await,
        (996, 0),
        "committed units leave `reserved` and do not come back"
    );

    let (status, _) = t
        .call(Method::POST, "/reservations/7/commit", Some("{}"))
        .await;
    assert_eq!(status, StatusCode::OK, "commit is idempotent");
    assert_eq!(stock(&t, 1).await, (996, 0));

    // Releasing a committed order must not put its units back.
    let (status, body) = t.call(Method::DELETE, "/reservations/7", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "committed");
    assert_eq!(stock(&t, 1).await, (996, 0));
}

#[tokio::test]
async fn release_gives_units_back_once() {
    let t = spawn().await;
    reserve(&t, 3, json!([{"product_id": 2, "quantity": 10}])).await;
    assert_eq!(stock(&t, 2).await, (990, 10));
    for _ in 0..2 {
        let (status, body) = t.call(Method::DELETE, "/reservations/3", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"order_id": 3, "status": "released"}));
        assert_eq!(stock(&t, 2).await, (1000, 0));
    }
    let (status, body) = t
        .call(Method::POST, "/reservations/3/commit", Some("{}"))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a released reservation cannot be committed: {body}"
    );
}

#[tokio::test]
async fn unknown_orders_and_products_are_404() {
    let t = spawn().await;
    let (status, body) = t
        .call(Method::POST, "/reservations/404/commit", Some("{}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no reservation for order 404");
    let (status, _) = t.call(Method::DELETE, "/reservations/404", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t.call(Method::GET, "/stock/9999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn insufficient_stock_is_409_and_takes_nothing() {
    let t = spawn().await;
    set_available(&t, 9, 2);
    let (status, body) = reserve(
        &t,
        1,
        json!([{"product_id": 8, "quantity": 5}, {"product_id": 9, "quantity": 3}]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "insufficient stock for product 9");
    assert_eq!(
        stock(&t, 8).await,
        (1000, 0),
        "the first item must be rolled back"
    );
    assert_eq!(stock(&t, 9).await, (2, 0));
    let (status, _) = reserve(&t, 2, json!([{"product_id": 9, "quantity": 2}])).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the order that fits still succeeds"
    );
    assert_eq!(stock(&t, 9).await, (0, 2));
}

#[tokio::test]
async fn bad_input_is_400() {
    let t = spawn().await;
    for body in [
        "{not json",
        r#"{"order_id": 1}"#,
        r#"{"order_id": "x", "items": []}"#,
        r#"{"order_id": 1, "items": []}"#,
        r#"{"order_id": 1, "items": [{"product_id": 1, "quantity": 0}]}"#,
        r#"{"order_id": 1, "items": [{"product_id": 1, "quantity": -3}]}"#,
        r#"{"order_id": 1, "items": [{"product_id": 1, "quantity": 1.5}]}"#,
    ] {
        let (status, response) = t.call(Method::POST, "/reservations", Some(body)).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {status}"
        );
        assert!(response["error"].is_string(), "{body} -> {response}");
    }
    let (status, response) = t
        .call(
            Method::POST,
            "/reservations",
            Some(r#"{"order_id": 1, "items": []}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(response["error"], "items must not be empty");
    let (status, _) = t.call(Method::GET, "/stock/abc", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.call(Method::DELETE, "/reservations/abc", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(stock(&t, 1).await, (1000, 0));
}

/// The invariant that matters most: many checkouts racing for the last
/// units sell exactly what exists, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_never_oversell() {
    let t = spawn().await;
    // Stop the restock job (its first pass is a period away) so nothing but
    // the reservations under test changes the counts.
    t.context().shutdown.cancel();
    set_available(&t, 42, 10);
    set_available(&t, 43, 25);

    let mut tasks = Vec::new();
    for order in 1..=60i64 {
        let app = t.app().clone();
        // Every third order also wants product 43, three units at a time.
        let items = if order % 3 == 0 {
            json!([{"product_id": 43, "quantity": 3}, {"product_id": 42, "quantity": 1}])
        } else {
            json!([{"product_id": 42, "quantity": 1}])
        };
        let body = json!({ "order_id": order, "items": items }).to_string();
        tasks.push(tokio::spawn(async move {
            testing::call(&app, Method::POST, "/reservations", Some(&body))
                .await
                .0
        }));
    }
    let mut reserved = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::CREATED => reserved += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        reserved, 10,
        "exactly the 10 units of product 42 can be sold"
    );
    let (available_42, reserved_42) = stock(&t, 42).await;
    assert_eq!((available_42, reserved_42), (0, 10));
    let (available_43, reserved_43) = stock(&t, 43).await;
    assert_eq!(
        available_43 + reserved_43,
        25,
        "product 43 units are conserved"
    );
    assert!(available_43 >= 0);

    // The rows agree with the counters.
    let conn = rusqlite::Connection::open(t.database()).unwrap();
    let held: i64 = conn
        .query_row("SELECT COALESCE(SUM(quantity), 0) FROM reservations WHERE product_id = 42 AND status = 'reserved'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(held, 10);
    let negative: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM stock WHERE available < 0 OR reserved < 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(negative, 0);
}

#[tokio::test]
async fn reservations_are_counted_by_outcome() {
    let t = spawn().await;
    set_available(&t, 4, 1);
    reserve(&t, 1, json!([{"product_id": 4, "quantity": 1}])).await;
    reserve(&t, 1, json!([{"product_id": 4, "quantity": 1}])).await;
    reserve(&t, 2, json!([{"product_id": 4, "quantity": 1}])).await;
    t.call(Method::DELETE, "/reservations/1", None).await;
    let (status, text) = t.raw(Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(r#"inventory_reservations_total{outcome="reserved"} 1.0"#),
        "a repeat is not a new reservation: {text}"
    );
    assert!(
        text.contains(r#"inventory_reservations_total{outcome="insufficient"} 1.0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"inventory_reservations_total{outcome="released"} 1.0"#),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_restock_job_refills_low_products() {
    let t = spawn().await;
    set_available(&t, 11, 3);
    set_available(&t, 12, 60);
    // Virtual time: the job's first pass is one period after start.
    tokio::time::sleep(Duration::from_secs(11)).await;
    // Each round trip through the pool lets the job's blocking work finish
    // (and lets virtual time reach later passes, which find nothing to do).
    let mut refilled = false;
    for _ in 0..1000 {
        if stock(&t, 11).await.0 == 1000 {
            refilled = true;
            break;
        }
    }
    assert!(refilled, "product 11 was never restocked");
    let (_, metrics) = t.raw(Method::GET, "/metrics", None).await;
    assert!(metrics.contains("inventory_stock_low "), "{metrics}");
    assert_eq!(
        stock(&t, 12).await.0,
        60,
        "products above the threshold are left alone"
    );
}
