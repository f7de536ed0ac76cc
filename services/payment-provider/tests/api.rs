//! The provider's API over its router. Time is paused, so the simulated
//! latency costs nothing but is still measurable.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use firedrill_payment_provider::{NAME, build};
use firedrill_runtime::ServiceContext;
use firedrill_runtime::config::parse_service_args;
use firedrill_runtime::metrics::Meters;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

async fn app() -> Router {
    let args = parse_service_args(&["--seed", "3"]).unwrap();
    let meters = Meters::new(&args.identity(NAME));
    let ctx = ServiceContext::new(NAME, args, meters, CancellationToken::new()).unwrap();
    ctx.app(build(ctx.clone()).await.unwrap())
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

async fn charge(app: &Router, key: &str, amount: i64) -> (StatusCode, Value) {
    let body =
        json!({"amount_cents": amount, "currency": "usd", "idempotency_key": key}).to_string();
    call(app, "POST", "/v1/charges", Some(&body)).await
}

#[tokio::test(start_paused = true)]
async fn a_charge_succeeds_after_a_realistic_delay() {
    let app = app().await;
    let started = tokio::time::Instant::now();
    let (status, body) = charge(&app, "order-1", 2599).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "succeeded");
    assert!(body["id"].as_str().unwrap().starts_with("ch_"));
    assert!(
        took >= Duration::from_millis(10) && took <= Duration::from_millis(300),
        "took {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn charges_are_idempotent_per_key() {
    let app = app().await;
    let (_, first) = charge(&app, "order-1", 1000).await;
    let (status, again) = charge(&app, "order-1", 1000).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["id"], first["id"], "a repeat must not charge twice");
    let (_, other) = charge(&app, "order-2", 1000).await;
    assert_ne!(other["id"], first["id"]);
    let (status, body) = charge(&app, "order-1", 999).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test(start_paused = true)]
async fn only_amounts_over_the_limit_are_declined() {
    let app = app().await;
    let (status, _) = charge(&app, "edge", 10_000_000).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = charge(&app, "huge", 10_000_001).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["error"], "card declined");
    let (status, _) = charge(&app, "huge", 10_000_001).await;
    assert_eq!(
        status,
        StatusCode::PAYMENT_REQUIRED,
        "a repeat gets the same answer"
    );
}

#[tokio::test(start_paused = true)]
async fn refunds_are_once_per_charge() {
    let app = app().await;
    let (_, charged) = charge(&app, "order-9", 500).await;
    let body = json!({"charge_id": charged["id"]}).to_string();
    let (status, refund) = call(&app, "POST", "/v1/refunds", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["status"], "succeeded");
    assert!(refund["id"].as_str().unwrap().starts_with("re_"));
    let (status, again) = call(&app, "POST", "/v1/refunds", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["id"], refund["id"]);

    let (status, body) = call(
        &app,
        "POST",
        "/v1/refunds",
        Some(r#"{"charge_id": "ch_unknown"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test(start_paused = true)]
async fn bad_requests_are_400() {
    let app = app().await;
    for body in [
        "{oops",
        r#"{"amount_cents": 0, "currency": "usd", "idempotency_key": "k"}"#,
        r#"{"amount_cents": -5, "currency": "usd", "idempotency_key": "k"}"#,
        r#"{"amount_cents": 5, "currency": "usd", "idempotency_key": "  "}"#,
        r#"{"amount_cents": 5, "currency": "dollars", "idempotency_key": "k"}"#,
    ] {
        let (status, response) = call(&app, "POST", "/v1/charges", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {response}");
        assert!(response["error"].is_string());
    }
    let (status, _) = call(&app, "POST", "/v1/refunds", Some("[]")).await;
    assert!(status.is_client_error());
}

#[tokio::test(start_paused = true)]
async fn charges_are_counted_by_outcome() {
    let app = app().await;
    charge(&app, "a", 100).await;
    charge(&app, "a", 100).await;
    charge(&app, "b", 20_000_000).await;
    let (_, metrics) = call(&app, "GET", "/metrics", None).await;
    let text = metrics.as_str().unwrap();
    for outcome in ["succeeded", "replayed", "declined"] {
        assert!(
            text.contains(&format!(
                "provider_charges_total{{outcome=\"{outcome}\"}} 1.0"
            )),
            "{outcome}: {text}"
        );
    }
}
