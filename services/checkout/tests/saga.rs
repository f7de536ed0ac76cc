//! The saga against stand-in peers that record what was asked of them: the
//! thing under test is checkout's sequencing and compensation.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use firedrill_runtime::ServiceContext;
use firedrill_runtime::config::parse_service_args;
use firedrill_runtime::metrics::Meters;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

type Log = Arc<Mutex<Vec<String>>>;

/// How the stand-in peers behave.
#[derive(Clone, Copy)]
struct Behaviour {
    stock: bool,
    payment: StatusCode,
    shipping: StatusCode,
    refund: StatusCode,
}

const HAPPY: Behaviour = Behaviour {
    stock: true,
    payment: StatusCode::CREATED,
    shipping: StatusCode::CREATED,
    refund: StatusCode::OK,
};

async fn serve(router: Router, stop: &CancellationToken) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(firedrill_runtime::server::serve(
        router,
        listener,
        stop.clone(),
    ));
    url
}

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

async fn peers(b: Behaviour, log: &Log, stop: &CancellationToken) -> String {
    let cart = Router::new().route(
        "/carts/{user}",
        get(|| async { axum::Json(json!({"user_id": 1, "items": [{"product_id": 3, "quantity": 2, "price_cents": 1500, "name": "Lamp"}], "total_cents": 3000})) })
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
        serve(cart, stop).await,
        serve(inventory, stop).await,
        serve(payment, stop).await,
        serve(shipping, stop).await,
        serve(queue, stop).await
    )
}

async fn checkout(
    b: Behaviour,
) -> (
    StatusCode,
    Value,
    Vec<String>,
    ServiceContext,
    tempfile::TempDir,
) {
    let stop = CancellationToken::new();
    let log: Log = Arc::default();
    let peers = peers(b, &log, &stop).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let args = parse_service_args(&[
        "--database",
        db.to_str().unwrap(),
        "--peers",
        &peers,
        "--call-retries",
        "0",
    ])
    .unwrap();
    let meters = Meters::new(&args.identity(firedrill_checkout::NAME));
    let ctx = ServiceContext::new(firedrill_checkout::NAME, args, meters, stop.clone()).unwrap();
    let app = ctx.app(firedrill_checkout::build(ctx.clone()).await.unwrap());
    let request = axum::http::Request::post("/checkout")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"user_id": 1}"#))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    let calls = log.lock().clone();
    (status, body, calls, ctx, dir)
}

fn order_status(dir: &tempfile::TempDir, order: i64) -> String {
    let conn = rusqlite::Connection::open(dir.path().join("shop.db")).unwrap();
    conn.query_row("SELECT status FROM orders WHERE id = ?1", [order], |r| {
        r.get(0)
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_order_runs_every_step_in_order() {
    let (status, body, calls, _ctx, dir) = checkout(HAPPY).await;
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
        order_status(&dir, body["order_id"].as_i64().unwrap()),
        "confirmed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_fails_before_any_money_moves() {
    let (status, body, calls, _ctx, _dir) = checkout(Behaviour {
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
    let (status, _body, calls, _ctx, dir) = checkout(Behaviour {
        payment: StatusCode::PAYMENT_REQUIRED,
        ..HAPPY
    })
    .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        calls,
        ["inventory.reserve", "payment.capture", "inventory.release"]
    );
    assert_eq!(order_status(&dir, 1), "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipping_failure_refunds_and_releases() {
    let (status, _body, calls, _ctx, _dir) = checkout(Behaviour {
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
    let (status, _body, calls, ctx, dir) = checkout(Behaviour {
        shipping: StatusCode::INTERNAL_SERVER_ERROR,
        refund: StatusCode::SERVICE_UNAVAILABLE,
        ..HAPPY
    })
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(calls.contains(&"payment.refund".to_string()));
    let conn = rusqlite::Connection::open(dir.path().join("shop.db")).unwrap();
    let pending: i64 = conn
        .query_row("SELECT COUNT(*) FROM saga_compensations WHERE order_id = 1 AND step = 'refund' AND status = 'pending'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 1, "the refund that failed must be retried later");
    assert!(
        ctx.meters
            .encode()
            .contains("checkout_compensations_total{step=\"refund\",outcome=\"deferred\"}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_reserve_failure_is_released() {
    // A 503 from inventory does not say whether stock was reserved.
    let stop = CancellationToken::new();
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
    let mut peers = peers(HAPPY, &Arc::default(), &stop).await;
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
    peers.push_str(&format!(";inventory={}", serve(inventory, &stop).await));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let args = parse_service_args(&[
        "--database",
        db.to_str().unwrap(),
        "--peers",
        &peers,
        "--call-retries",
        "0",
    ])
    .unwrap();
    let meters = Meters::new(&args.identity(firedrill_checkout::NAME));
    let ctx = ServiceContext::new(firedrill_checkout::NAME, args, meters, stop.clone()).unwrap();
    let app = ctx.app(firedrill_checkout::build(ctx.clone()).await.unwrap());
    let request = axum::http::Request::post("/checkout")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"user_id": 1}"#))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        log.lock().clone(),
        ["inventory.reserve", "inventory.release"]
    );
}
