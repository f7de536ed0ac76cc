//! The query server: Jaeger-compatible trace API, log search, health and
//! the collector's own metrics, all on the query listener.
//!
//! Handlers are thin: parse parameters (`params.rs`), ask the
//! [`Store`], render JSON (`jaeger/model.rs`, `logs.rs`). Every failure goes
//! through the one [`ApiError`] → response mapping, in Jaeger's error shape.

mod jaeger;
mod logs;
mod params;

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer, trace::TraceLayer};

use crate::{
    derived::Derived,
    memory::MemoryGuard,
    openmetrics::Writer,
    pipeline::QueueGauge,
    self_metrics::{Health, SelfMetrics},
    store::Store,
};

/// Queries scan at most the bounded store; anything slower is a bug or an
/// overloaded machine, and the client should hear about it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Query requests are GETs; a body is never needed.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct QueryState {
    pub store: Arc<Store>,
    pub metrics: Arc<SelfMetrics>,
    pub derived: Arc<Derived>,
    pub queue: QueueGauge,
    pub memory: Arc<MemoryGuard>,
}

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(jaeger::routes())
        .merge(logs::routes())
        .fallback(not_found)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                // A tracing span per request for the collector's own logs.
                .layer(TraceLayer::new_for_http())
                // A bug must cost one request a 500, not the connection.
                .layer(CatchPanicLayer::new())
                // Bound every request's lifetime.
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    REQUEST_TIMEOUT,
                ))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
}

/// Serves until `shutdown` fires, then finishes in-flight queries.
pub async fn serve(
    listener: TcpListener,
    state: QueryState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The collector's own metrics, then the derived span and service-graph
/// metrics, then the services' OTLP metrics re-exposed, as one exposition.
async fn metrics(State(state): State<QueryState>) -> Response {
    let health = Health {
        sizes: state.store.sizes(),
        capacities: state.store.capacities(),
        queue_bytes: state.queue.queued_bytes(),
        queue_capacity_bytes: state.queue.capacity_bytes(),
        resident_bytes: state.memory.resident(),
        memory_limit_bytes: state.memory.limit_bytes(),
    };
    let mut text = state.metrics.render(&health);
    let mut others = Writer::new();
    state.derived.render(&mut others);
    state.store.render_metrics(&mut others);
    text.push_str(&others.into_text());
    text.push_str("# EOF\n");
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

// === responses ===

/// Jaeger's response envelope. `total` is the number of items in `data`
/// (Jaeger leaves it 0 for most endpoints; a count is more useful and
/// harmless to the Jaeger UI).
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    data: T,
    total: usize,
    limit: usize,
    offset: usize,
    errors: Option<Vec<ErrorBody>>,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    code: u16,
    msg: String,
}

pub fn envelope<T: Serialize>(data: Vec<T>) -> Json<Envelope<Vec<T>>> {
    Json(Envelope {
        total: data.len(),
        data,
        limit: 0,
        offset: 0,
        errors: None,
    })
}

/// Every way a query can fail, mapped to a status in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{param}: {reason}")]
    BadParam { param: &'static str, reason: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("trace not found")]
    TraceNotFound,
    #[error("{0}")]
    NotFound(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadParam { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TraceNotFound | Self::NotFound(_) => StatusCode::NOT_FOUND,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Envelope::<Option<()>> {
            data: None,
            total: 0,
            limit: 0,
            offset: 0,
            errors: Some(vec![ErrorBody {
                code: status.as_u16(),
                msg: self.to_string(),
            }]),
        };
        (status, Json(body)).into_response()
    }
}
