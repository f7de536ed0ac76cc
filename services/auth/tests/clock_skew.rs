//! A skewed clock makes real token checks fail the way they do in production.
//!
//! Its own test binary: the runtime clock offset is process-wide, so no other
//! test may run beside this one.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use firedrill_runtime::ServiceContext;
use firedrill_runtime::clock;
use firedrill_runtime::config::parse_service_args;
use firedrill_runtime::metrics::Meters;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

async fn post(app: &Router, uri: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn verifier_clock_skew_yields_not_yet_valid_and_expired() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let args = parse_service_args(&["--database", db.to_str().unwrap()]).unwrap();
    let meters = Meters::new(&args.identity(firedrill_auth::NAME));
    let ctx =
        ServiceContext::new(firedrill_auth::NAME, args, meters, CancellationToken::new()).unwrap();
    let app = ctx.app(firedrill_auth::build(ctx.clone()).await.unwrap());

    let (_, login) = post(
        &app,
        "/login",
        json!({"username": "user5", "password": "firedrill"}),
    )
    .await;
    let token = json!({ "token": login["token"] });

    // Within the leeway nothing changes.
    clock::set_offset(Duration::from_secs(3), false);
    assert_eq!(post(&app, "/verify", token.clone()).await.0, StatusCode::OK);

    // The verifier's clock runs two minutes behind the issuer's.
    clock::set_offset(Duration::from_secs(120), false);
    let (status, body) = post(&app, "/verify", token.clone()).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "token not yet valid")
    );

    // ... or twenty minutes ahead: past the 15 minute TTL.
    clock::set_offset(Duration::from_secs(20 * 60), true);
    let (status, body) = post(&app, "/verify", token.clone()).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "token expired")
    );

    // A token issued while this instance's clock is ahead is refused by a
    // verifier with a correct clock.
    let (_, skewed_login) = post(
        &app,
        "/login",
        json!({"username": "user5", "password": "firedrill"}),
    )
    .await;
    clock::set_offset(Duration::ZERO, true);
    let (status, body) = post(&app, "/verify", json!({ "token": skewed_login["token"] })).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "token not yet valid")
    );

    // Back to the real clock, the original token is fine again.
    assert_eq!(post(&app, "/verify", token).await.0, StatusCode::OK);
}
