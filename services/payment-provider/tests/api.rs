//! The provider's API over its router. Time is paused, so the simulated
//! latency costs nothing but is still measurable.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use firedrill_payment_provider::{NAME, build};
use firedrill_runtime::testing::TestService;
use serde_json::{Value, json};

async fn app() -> TestService {
    TestService::start(NAME, build, &["--seed", "3"]).await
}

async fn charge(app: &TestService, key: &str, amount: i64) -> (StatusCode, Value) {
    let body =
        json!({"amount_cents": amount, "currency": "usd", "idempotency_key": key}).to_string();
    app.call(Method::POST, "/v1/charges", Some(&body)).await
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
    let (status, refund) = app.call(Method::POST, "/v1/refunds", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["status"], "succeeded");
    assert!(refund["id"].as_str().unwrap().starts_with("re_"));
    let (status, again) = app.call(Method::POST, "/v1/refunds", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["id"], refund["id"]);

    let (status, body) = app
        .call(
            Method::POST,
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
        let (status, response) = app.call(Method::POST, "/v1/charges", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {response}");
        assert!(response["error"].is_string());
    }
    let (status, _) = app.call(Method::POST, "/v1/refunds", Some("[]")).await;
    assert!(status.is_client_error());
}

#[tokio::test(start_paused = true)]
async fn charges_are_counted_by_outcome() {
    let app = app().await;
    charge(&app, "a", 100).await;
    charge(&app, "a", 100).await;
    charge(&app, "b", 20_000_000).await;
    let text = app.metrics().await;
    for outcome in ["succeeded", "replayed", "declined"] {
        assert!(
            text.contains(&format!(
                "provider_charges_total{{outcome=\"{outcome}\"}} 1.0"
            )),
            "{outcome}: {text}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_charge_whose_caller_hung_up_is_still_made() {
    let app = app().await;
    // The caller gives up before the processor's shortest latency (10 ms).
    let gave_up =
        tokio::time::timeout(Duration::from_millis(1), charge(&app, "order-7", 4200)).await;
    assert!(gave_up.is_err(), "the call must still be running at 1 ms");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The retry finds the charge the first attempt made: money moved.
    let (status, body) = charge(&app, "order-7", 4200).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let text = app.metrics().await;
    for line in [
        "provider_charges_total{outcome=\"succeeded\"} 1.0",
        "provider_charges_total{outcome=\"replayed\"} 1.0",
        "provider_merchant_abandoned_total{http_route=\"/v1/charges\"} 1.0",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

#[tokio::test(start_paused = true)]
async fn past_the_merchant_rate_calls_wait_their_turn_then_are_refused() {
    // A server deadline past the longest turn, so every admitted call is
    // answered.
    let app = TestService::start(NAME, build, &["--seed", "3", "--request-timeout", "30s"]).await;
    let rate = firedrill_payment_provider::DEFAULT_RATE as usize;
    // One second's burst, then fifteen seconds of turns, all in one instant.
    let calls = (0..rate * 16 + 1).map(|i| {
        let app = &app;
        async move { charge(app, &format!("order-{i}"), 100).await }
    });
    let started = tokio::time::Instant::now();
    let answers = futures::future::join_all(calls).await;
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "only the call past fifteen seconds of turns"
    );
    let message = refused[0]["error"].as_str().unwrap();
    assert!(
        message.contains("merchant rate limit exceeded"),
        "{message}"
    );
    let made = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(made, rate * 16);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(15) && took < Duration::from_secs(16),
        "the last turn comes at 15 s: {took:?}"
    );
}
