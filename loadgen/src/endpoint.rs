//! The load generator's own HTTP endpoint (`--metrics-listen`): what
//! Prometheus scrapes and what a human or grader asks "how is it going?".
//!
//! - `GET /metrics`: the client-side SLIs in OpenMetrics text.
//! - `GET /health`: `{"status":"ok"}` while the run is alive.
//! - `GET /api/stats`: the running [`Summary`](crate::Summary) as JSON.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use crate::metrics::Metrics;
use crate::stats::Stats;

/// The content type Prometheus negotiates for OpenMetrics (exemplars need it).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
pub struct EndpointState {
    pub stats: Arc<Stats>,
    pub metrics: Arc<Metrics>,
}

pub fn app(state: EndpointState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/api/stats", get(stats))
        .with_state(state)
}

async fn metrics(State(state): State<EndpointState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": format!("encoding metrics failed: {e}")})),
        )
            .into_response(),
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn stats(State(state): State<EndpointState>) -> Json<crate::Summary> {
    Json(state.stats.summary())
}
