//! Payment against a stand-in processor that records what it was asked and
//! answers as scripted: the thing under test is payment's idempotency and
//! its mapping of processor failures.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use firedrill_payment::{NAME, build};
use firedrill_runtime::testing::{TestService, spawn_peer};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// How the stand-in processor answers the next charge.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok,
    Status(StatusCode),
    /// Never answers (the caller's timeout fires).
    Hang,
}

#[derive(Default)]
struct Provider {
    charges: Mutex<Vec<Value>>,
    refunds: Mutex<Vec<Value>>,
    /// Answers for the next charges; `Ok` once empty.
    script: Mutex<VecDeque<Answer>>,
}

async fn answer(script: &Mutex<VecDeque<Answer>>, ok: Value) -> Response {
    let next = script.lock().pop_front().unwrap_or(Answer::Ok);
    match next {
        Answer::Ok => (StatusCode::CREATED, axum::Json(ok)).into_response(),
        Answer::Status(status) => {
            let error = if status == StatusCode::PAYMENT_REQUIRED {
                "card declined"
            } else {
                "processor unavailable"
            };
            (status, axum::Json(json!({ "error": error }))).into_response()
        }
        Answer::Hang => std::future::pending().await,
    }
}

async fn charge(State(p): State<Arc<Provider>>, axum::Json(body): axum::Json<Value>) -> Response {
    p.charges.lock().push(body.clone());
    let id = format!(
        "ch_{}",
        body["idempotency_key"].as_str().unwrap_or_default()
    );
    answer(&p.script, json!({ "id": id, "status": "succeeded" })).await
}

async fn refund(State(p): State<Arc<Provider>>, axum::Json(body): axum::Json<Value>) -> Response {
    p.refunds.lock().push(body);
    (
        StatusCode::CREATED,
        axum::Json(json!({ "id": "re_1", "status": "succeeded" })),
    )
        .into_response()
}

struct TestApp {
    service: TestService,
    provider: Arc<Provider>,
}

impl TestApp {
    async fn spawn(script: &[Answer]) -> TestApp {
        let provider = Arc::new(Provider::default());
        provider.script.lock().extend(script.iter().copied());
        let routes = Router::new()
            .route("/v1/charges", post(charge))
            .route("/v1/refunds", post(refund))
            .with_state(provider.clone());
        let url = spawn_peer(routes).await;

        let peers = format!("payment-provider={url}");
        let flags = [
            "--peers",
            &peers,
            "--call-timeout",
            "200ms",
            "--retry-backoff",
            "1ms",
        ];
        let service = TestService::with_database(NAME, build, &flags).await;
        TestApp { service, provider }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.service.call(method, uri, body).await
    }

    async fn pay(&self, order_id: i64, amount_cents: i64) -> (StatusCode, Value) {
        let body =
            json!({ "order_id": order_id, "user_id": 9, "amount_cents": amount_cents }).to_string();
        self.call(Method::POST, "/payments", Some(&body)).await
    }

    fn charges(&self) -> usize {
        self.provider.charges.lock().len()
    }
}

#[tokio::test]
async fn a_capture_charges_once_with_the_order_key() {
    let t = TestApp::spawn(&[]).await;
    let (status, body) = t.pay(5, 4200).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"payment_id": "pay_5", "order_id": 5, "status": "captured", "charge_id": "ch_order-5"})
    );
    assert_eq!(
        t.provider.charges.lock()[0],
        json!({"amount_cents": 4200, "currency": "usd", "idempotency_key": "order-5"})
    );

    let (status, again) = t.pay(5, 4200).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, body, "a repeat answers the same");
    assert_eq!(t.charges(), 1, "a repeat must not reach the processor");

    let (status, _) = t.pay(5, 9999).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the same order cannot be paid for a different amount"
    );
}

#[tokio::test]
async fn a_decline_passes_through_as_402_and_is_remembered() {
    let t = TestApp::spawn(&[Answer::Status(StatusCode::PAYMENT_REQUIRED)]).await;
    let (status, body) = t.pay(6, 100).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["error"], "card declined");
    let (status, _) = t.pay(6, 100).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(t.charges(), 1);
    let (status, body) = t.call(Method::POST, "/payments/6/refund", Some("{}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["status"], "failed",
        "nothing was taken, nothing is given back"
    );
    assert!(t.provider.refunds.lock().is_empty());
}

#[tokio::test]
async fn a_transient_processor_failure_is_retried_with_the_same_key() {
    let t = TestApp::spawn(&[Answer::Status(StatusCode::SERVICE_UNAVAILABLE)]).await;
    let (status, body) = t.pay(7, 100).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let charges = t.provider.charges.lock().clone();
    assert_eq!(charges.len(), 2);
    assert_eq!(charges[0]["idempotency_key"], charges[1]["idempotency_key"]);
}

#[tokio::test]
async fn processor_failures_become_gateway_errors() {
    let always_500 = [Answer::Status(StatusCode::INTERNAL_SERVER_ERROR); 3];
    let t = TestApp::spawn(&always_500).await;
    let (status, body) = t.pay(8, 100).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");

    let t = TestApp::spawn(&[Answer::Hang; 3]).await;
    let (status, body) = t.pay(8, 100).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    // Nothing was recorded: the next attempt tries again.
    let (status, _) = t.pay(8, 100).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_refund_goes_through_once() {
    let t = TestApp::spawn(&[]).await;
    t.pay(3, 500).await;
    for _ in 0..2 {
        let (status, body) = t.call(Method::POST, "/payments/3/refund", Some("{}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"order_id": 3, "status": "refunded"}));
    }
    assert_eq!(
        *t.provider.refunds.lock(),
        vec![json!({"charge_id": "ch_order-3"})]
    );
    let (status, body) = t.pay(3, 500).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body["status"], "refunded",
        "a refunded order is never charged again"
    );
    assert_eq!(t.charges(), 1);
}

#[tokio::test]
async fn unknown_orders_and_bad_input() {
    let t = TestApp::spawn(&[]).await;
    let (status, body) = t
        .call(Method::POST, "/payments/404/refund", Some("{}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = t
        .call(Method::POST, "/payments/abc/refund", Some("{}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t.call(Method::POST, "/payments", Some("{nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t
        .call(Method::POST, "/payments", Some(r#"{"order_id": 1}"#))
        .await;
    assert!(status.is_client_error());
    for amount in [0, -100] {
        let (status, body) = t.pay(1, amount).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(t.charges(), 0);
}

#[tokio::test]
async fn captures_are_counted_by_outcome() {
    let t = TestApp::spawn(&[Answer::Status(StatusCode::PAYMENT_REQUIRED)]).await;
    t.pay(1, 100).await;
    t.pay(2, 100).await;
    t.pay(2, 100).await;
    let text = t.service.metrics().await;
    for outcome in ["declined", "captured", "replayed"] {
        assert!(
            text.contains(&format!(
                "payment_captures_total{{outcome=\"{outcome}\"}} 1.0"
            )),
            "{outcome}: {text}"
        );
    }
}

#[tokio::test]
async fn a_missing_processor_is_a_start_up_error() {
    let err = TestService::try_with_database(NAME, build, &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("payment-provider"), "{err}");
}
