//! A skewed clock makes real token checks fail the way they do in production.
//!
//! Its own test binary: the runtime clock offset is process-wide, so no other
//! test may run beside this one.

use axum::Router;
use axum::http::{Method, StatusCode};
use firedrill_auth::{NAME, build};
use firedrill_runtime::clock;
use firedrill_runtime::testing::{self, TestService};
use serde_json::{Value, json};
use std::time::Duration;

/// The answer, which must be JSON.
async fn post(app: &Router, uri: &str, body: Value) -> (StatusCode, Value) {
    let (status, text) = testing::raw(app, Method::POST, uri, Some(&body.to_string())).await;
    (status, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn verifier_clock_skew_yields_not_yet_valid_and_expired() {
    let service = TestService::with_database(NAME, build, &[]).await;
    let app = service.app();

    let (_, login) = post(
        app,
        "/login",
        json!({"username": "user5", "password": "firedrill"}),
    )
    .await;
    let token = json!({ "token": login["token"] });

    // Within the leeway nothing changes.
    clock::set_offset(Duration::from_secs(3), false);
    assert_eq!(post(app, "/verify", token.clone()).await.0, StatusCode::OK);

    // The verifier's clock runs two minutes behind the issuer's.
    clock::set_offset(Duration::from_secs(120), false);
    let (status, body) = post(app, "/verify", token.clone()).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "token not yet valid")
    );

    // ... or twenty minutes ahead: past the 15 minute TTL.
    clock::set_offset(Duration::from_secs(20 * 60), true);
    let (status, body) = post(app, "/verify", token.clone()).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "token expired")
    );

    // A token issued while this instance's clock is ahead is refused by a
    // verifier with a correct clock.
    let (_, skewed_login) = post(
        app,
        "/login",
        json!({"username": "user5", "password": "firedrill"}),
    )
    .await;
    clock::set_offset(Duration::ZERO, true);
    let (status, body) = post(app, "/verify", json!({ "token": skewed_login["token"] })).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "token not yet valid")
    );

    // Back to the real clock, the original token is fine again.
    assert_eq!(post(app, "/verify", token).await.0, StatusCode::OK);
}
