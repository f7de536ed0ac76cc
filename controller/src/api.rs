//! The controller's HTTP API (described at `/openapi.json`).
//!
//! Routes are grouped by who may call them, and each group's token is
//! checked by a layer (`auth::require`) before any extractor reads a path,
//! a query or a body: a caller without the right token learns nothing
//! about what the request would have done. Handlers are thin: they turn a
//! request into typed values once (an op becomes a `model::op::Op`) and
//! call the module that acts.
//!
//! Nothing a learner can reach tells what is injected: learners reach the
//! ops and the ops log, which record what people did, never faults or
//! scenarios.

mod agent;
pub mod auth;
mod body;
mod instructor;
mod operator;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use firedrill_runtime::AppError;
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use self::auth::Audience;
use crate::controller::Controller;

/// The largest request body the controller reads: every request it takes
/// is a small JSON document.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every request's deadline. The slowest calls the queue (10 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn router(ctl: Arc<Controller>) -> Router {
    let only = |audience: Audience, routes: Router<Arc<Controller>>| {
        routes.route_layer(middleware::from_fn_with_state(
            (ctl.clone(), audience),
            auth::require,
        ))
    };
    let instructor = only(
        Audience::Instructor,
        Router::new()
            .route(
                "/v1/faults",
                post(instructor::inject)
                    .get(instructor::list_faults)
                    .delete(instructor::clear_faults),
            )
            .route("/v1/faults/{id}", delete(instructor::clear_fault))
            .route("/v1/scenarios", get(instructor::list_scenarios))
            .route("/v1/scenarios/{id}", get(instructor::show_scenario))
            .route("/v1/scenarios/{id}/start", post(instructor::start_scenario))
            .route(
                "/v1/scenario",
                get(instructor::running_scenario).delete(instructor::stop_scenario),
            )
            .route(
                "/v1/deploys",
                post(instructor::start_deploy).get(instructor::list_deploys),
            )
            .route(
                "/v1/learners",
                post(instructor::add_learner).get(instructor::list_learners),
            )
            .route("/v1/learners/{name}", delete(instructor::remove_learner))
            .route(
                "/v1/exercises",
                post(instructor::start_exercise).get(instructor::list_exercises),
            )
            .route("/v1/exercise", delete(instructor::stop_exercise))
            .route(
                "/v1/lab/reset",
                post(instructor::reset_lab).get(instructor::reset_status),
            ),
    );
    let agents = only(
        Audience::Agent,
        Router::new().route("/v1/agent/faults", get(agent::faults)),
    );
    let alerts = only(
        Audience::Alerts,
        Router::new()
            .route("/api/v2/alerts", post(agent::prometheus_alerts))
            .route("/v1/alerts", post(agent::alertmanager_webhook)),
    );
    let operators = only(
        Audience::Operator,
        Router::new()
            .route("/v1/ops", post(operator::perform).get(operator::list))
            .route("/v1/exercise", get(operator::exercise_status))
            .route("/v1/exercise/actions", post(operator::exercise_action))
            .route("/v1/exercises/{id}/report", get(operator::exercise_report)),
    );
    let open = Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics));
    let layers = ServiceBuilder::new()
        // Outermost: every request is logged with its outcome, including
        // timed-out and panicked ones.
        .layer(middleware::from_fn(log_request))
        // A panicking handler answers 500 instead of dropping the connection.
        .layer(CatchPanicLayer::custom(|_| {
            AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "handler panicked").into_response()
        }))
        // Every request has a deadline.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        // Bodies past the limit are refused (413) by the body extractors.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new()
        .merge(open)
        .merge(instructor)
        .merge(agents)
        .merge(alerts)
        .merge(operators)
        .fallback(|| async { AppError::not_found("no such route; see /openapi.json") })
        .layer(layers)
        .with_state(ctl)
}

/// Logs each request's method, path, status and time at debug level (the
/// controller's log is the instructor's, so it may name what it serves).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = tokio::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_server_error() {
        tracing::warn!(%method, %path, status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "request failed");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    }
    response
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::DOCUMENT,
    )
        .into_response()
}

/// The controller's own metrics: ops performed (what learners did) and agent
/// polls. Nothing here tells which faults are active.
async fn metrics(axum::extract::State(ctl): axum::extract::State<Arc<Controller>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            firedrill_runtime::metrics::OPENMETRICS_CONTENT_TYPE,
        )],
        ctl.meters.encode(),
    )
        .into_response()
}
