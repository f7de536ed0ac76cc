//! The saga against stand-in peers that record what was asked of them: the
//! thing under test is checkout's sequencing and compensation.

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post};
use firedrill_checkout::{NAME, build};
use firedrill_runtime::testing::{TestService, spawn_peer};
use parking_lot::Mutex;
use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<String>>>;

/// How the stand-in peers behave.
#[derive(Clone, Copy)]
struct Behaviour {
    stock: bool,
    payment: StatusCode,
    shipping: StatusCode,
    refund: StatusCode,
    /// The price of the cart's one line (2 units).
    price: i64,
}

const HAPPY: Behaviour = Behaviour {
    stock: true,
    payment: StatusCode::CREATED,
    shipping: StatusCode::CREATED,
    refund: StatusCode::OK,
    price: 1500,
};

fn recorder(
    log: &Log,
    entry: &'static str,
    status: StatusCode,
    body: Value,
) -> axum::routing::MethodRouter {
    let log = log.clone();
    axum::routing::any(move || {
        let log = log.clone();
        let body = body.clone();
        async move {
            log.lock().push(entry.to_string());
            (status, axum::Json(body))
        }
    })
}

async fn peers(b: Behaviour, log: &Log) -> String {
    let price = b.price;
    let cart = Router::new().route(
        "/carts/{user}",
        get(move || async move { axum::Json(json!({"user_id": 1, "items": [{"product_id": 3, "quantity": 2, "price_cents": price, "name": "Lamp"}], "total_cents": 2 * price})) })
            .merge(recorder(log, "cart.clear", StatusCode::OK, json!({}))),
    );
    let reserve = if b.stock {
        StatusCode::CREATED
    } else {
        StatusCode::CONFLICT
    };
    let inventory = Router::new()
        .route(
            "/reservations",
            post(recorder(
                log,
                "inventory.reserve",
                reserve,
                json!({"error": "insufficient stock for product 3"}),
            )),
        )
        .route(
            "/reservations/{id}/commit",
            post(recorder(log, "inventory.commit", StatusCode::OK, json!({}))),
        )
        .route(
            "/reservations/{id}",
            delete(recorder(
                log,
                "inventory.release",
                StatusCode::OK,
                json!({}),
            )),
        );
    let payment = Router::new()
        .route(
            "/payments",
            post(recorder(
                log,
                "payment.capture",
                b.payment,
                json!({"error": "card declined"}),
            )),
        )
        .route(
            "/payments/{id}/refund",
            post(recorder(
                log,
                "payment.refund",
                b.refund,
                json!({"error": "provider down"}),
            )),
        );
    let shipping = Router::new().route(
        "/shipments",
        post(recorder(
            log,
            "shipping.create",
            b.shipping,
            json!({"shipment_id": "SHP-1", "error": "no carrier"}),
        )),
    );
    let queue = Router::new().route(
        "/topics/{t}/messages",
        post(recorder(
            log,
            "queue.publish",
            StatusCode::CREATED,
            json!({"id": 1}),
        )),
    );
    format!(
        "cart={};inventory={};payment={};shipping={};queue={}",
        spawn_peer(cart).await,
        spawn_peer(inventory).await,
        spawn_peer(payment).await,
        spawn_peer(shipping).await,
        spawn_peer(queue).await
    )
}

async fn checkout(b: Behaviour) -> (StatusCode, Value, Vec<String>, TestService) {
    let log: Log = Arc::default();
    let peers = peers(b, &log).await;
    let service = start(&peers).await;
    let (status, text) = service
        .raw(Method::POST, "/checkout", Some(r#"{"user_id": 1}"#))
        .await;
    let body: Value = serde_json::from_str(&text).unwrap();
    let calls = log.lock().clone();
    (status, body, calls, service)
}

async fn start(peers: &str) -> TestService {
    TestService::with_database(NAME, build, &["--peers", peers, "--call-retries", "0"]).await
}

fn order_status(service: &TestService, order: i64) -> String {
    let conn = rusqlite::Connection::open(service.database()).unwrap();
    conn.query_row("SELECT status FROM orders WHERE id = ?1", [order], |r| {
        r.get(0)
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_order_runs_every_step_in_order() {
    let (status, body, calls, service) = checkout(HAPPY).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "confirmed");
    assert_eq!(body["total_cents"], 3000);
    assert_eq!(
        calls,
        [
            "inventory.reserve",
            "payment.capture",
            "shipping.create",
            "inventory.commit",
            "cart.clear",
            "queue.publish"
        ]
    );
    assert_eq!(
        order_status(&service, body["order_id"].as_i64().unwrap()),
        "confirmed"
    );
    let metrics = service.metrics().await;
    assert!(
        metrics.contains(r#"checkout_order_value_cents_bucket{le="5000.0"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("checkout_order_value_cents_sum{} 3000.0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_order_skips_payment_and_shows_only_in_the_order_value() {
    let (status, body, calls, service) = checkout(Behaviour { price: 0, ..HAPPY }).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["total_cents"], 0);
    assert_eq!(
        calls,
        [
            "inventory.reserve",
            "shipping.create",
            "inventory.commit",
            "cart.clear",
            "queue.publish"
        ],
        "nothing to capture"
    );
    let metrics = service.metrics().await;
    assert!(
        metrics.contains(r#"checkout_order_value_cents_bucket{le="0.0"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"checkout_orders_total{outcome="confirmed"} 1.0"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_fails_before_any_money_moves() {
    let (status, body, calls, _service) = checkout(Behaviour {
        stock: false,
        ..HAPPY
    })
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("insufficient stock")
    );
    assert_eq!(calls, ["inventory.reserve"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_releases_the_reservation() {
    let (status, _body, calls, service) = checkout(Behaviour {
        payment: StatusCode::PAYMENT_REQUIRED,
        ..HAPPY
    })
    .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        calls,
        ["inventory.reserve", "payment.capture", "inventory.release"]
    );
    assert_eq!(order_status(&service, 1), "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipping_failure_refunds_and_releases() {
    let (status, _body, calls, _service) = checkout(Behaviour {
        shipping: StatusCode::INTERNAL_SERVER_ERROR,
        ..HAPPY
    })
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        calls,
        [
            "inventory.reserve",
            "payment.capture",
            "shipping.create",
            "payment.refund",
            "inventory.release"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_compensation_is_persisted_for_retry() {
    let (status, _body, calls, service) = checkout(Behaviour {
        shipping: StatusCode::INTERNAL_SERVER_ERROR,
        refund: StatusCode::SERVICE_UNAVAILABLE,
        ..HAPPY
    })
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(calls.contains(&"payment.refund".to_string()));
    let conn = rusqlite::Connection::open(service.database()).unwrap();
    let pending: i64 = conn
        .query_row("SELECT COUNT(*) FROM saga_compensations WHERE order_id = 1 AND step = 'refund' AND status = 'pending'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 1, "the refund that failed must be retried later");
    assert!(
        service
            .context()
            .meters
            .encode()
            .contains("checkout_compensations_total{step=\"refund\",outcome=\"deferred\"}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_reserve_failure_is_released() {
    // A 503 from inventory does not say whether stock was reserved.
    let log: Log = Arc::default();
    let inventory = Router::new()
        .route(
            "/reservations",
            post(recorder(
                &log,
                "inventory.reserve",
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "busy"}),
            )),
        )
        .route(
            "/reservations/{id}",
            delete(recorder(
                &log,
                "inventory.release",
                StatusCode::OK,
                json!({}),
            )),
        );
    let mut peers = peers(HAPPY, &Arc::default()).await;
    peers = peers
        .split(';')
        .map(|p| {
            if p.starts_with("inventory=") {
                String::new()
            } else {
                p.to_string()
            }
        })
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(";");
    peers.push_str(&format!(";inventory={}", spawn_peer(inventory).await));
    let service = start(&peers).await;
    let (status, _) = service
        .raw(Method::POST, "/checkout", Some(r#"{"user_id": 1}"#))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        log.lock().clone(),
        ["inventory.reserve", "inventory.release"]
    );
}
