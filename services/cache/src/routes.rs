//! The cache's HTTP routes: parse, call [`Cache`], answer.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use firedrill_runtime::extract::{Json as Body, Path};
use firedrill_runtime::{AppError, AppResult};
use serde::Deserialize;

use crate::cache::{Cache, Stats};

/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 512;
/// Longest TTL accepted: one day.
pub const MAX_TTL_MS: u64 = 24 * 60 * 60 * 1000;

pub fn router(cache: Arc<Cache>) -> Router {
    Router::new()
        .route("/keys/{key}", get(get_key).put(put_key))
        .route("/keys", axum::routing::delete(flush))
        .route("/stats", get(stats))
        .with_state(cache)
}

#[derive(Deserialize)]
struct PutBody {
    value: serde_json::Value,
    ttl_ms: u64,
}

async fn get_key(State(cache): State<Arc<Cache>>, Path(key): Path<String>) -> AppResult<Response> {
    check_key(&key)?;
    match cache.get(&key) {
        // The value is stored as JSON text, so the answer is assembled
        // rather than re-encoded.
        Some(value) => Ok((
            [(header::CONTENT_TYPE, "application/json")],
            format!("{{\"value\":{value}}}"),
        )
            .into_response()),
        None => Err(AppError::not_found(format!("cache miss: {key}"))),
    }
}

async fn put_key(
    State(cache): State<Arc<Cache>>,
    Path(key): Path<String>,
    Body(body): Body<PutBody>,
) -> AppResult<StatusCode> {
    check_key(&key)?;
    if body.ttl_ms == 0 || body.ttl_ms > MAX_TTL_MS {
        return Err(AppError::bad_request(format!(
            "ttl_ms must be between 1 and {MAX_TTL_MS}"
        )));
    }
    let text = serde_json::to_string(&body.value).map_err(AppError::internal)?;
    cache.set(&key, Arc::from(text), Duration::from_millis(body.ttl_ms));
    Ok(StatusCode::NO_CONTENT)
}

async fn flush(State(cache): State<Arc<Cache>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "flushed": cache.flush() }))
}

async fn stats(State(cache): State<Arc<Cache>>) -> Json<Stats> {
    Json(cache.stats())
}

fn check_key(key: &str) -> AppResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(AppError::bad_request(format!(
            "key must be 1 to {MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}
