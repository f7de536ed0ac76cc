//! The HTTP server stack every service runs behind.
//!
//! `app` wraps a service's routes in the layers below and adds the
//! operational endpoints; `serve` runs it on a bound listener until the
//! shutdown token fires, so tests can start any service on port 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::{Instrument as _, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::error::AppError;
use crate::faults::{Faults, RequestEffect};
use crate::live::Live;
use crate::metrics::{
    Counter, Gauge, Histogram, LATENCY_BUCKETS, Meters, OPENMETRICS_CONTENT_TYPE, Unit,
};
use crate::resilience::shed::LoadShedder;

/// Limits applied to every request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_in_flight: usize,
}

#[derive(Clone)]
struct Observe {
    duration: Histogram,
    shed: Counter,
    shedder: LoadShedder,
}

/// The live config's per-route rate limits and their counter.
#[derive(Clone)]
struct Limit {
    live: Live,
    limited: Counter,
}

/// Health details served at `/health`.
#[derive(Clone, serde::Serialize)]
pub struct Health {
    pub status: &'static str,
    pub service: String,
    pub instance: String,
    pub version: String,
}

/// Wraps `routes` with the standard layers and adds `/health` and `/metrics`
/// (which stay outside the layers: probes and scrapes are not traffic).
pub fn app(
    routes: Router,
    meters: &Meters,
    health: Health,
    limits: Limits,
    faults: Faults,
    live: Live,
) -> Router {
    let observe = Observe {
        duration: meters.histogram(
            "http.server.request.duration",
            "Duration of HTTP server requests",
            Unit::Seconds,
            LATENCY_BUCKETS,
        ),
        shed: meters.counter(
            "http.server.shed_requests",
            "Requests refused with 503 because the server was at capacity",
        ),
        shedder: LoadShedder::new(limits.max_in_flight),
    };
    let limit = Limit {
        live,
        limited: meters.counter(
            "http.server.rate_limited_requests",
            "Requests refused with 429 because their route was over its rate limit",
        ),
    };
    let layers = ServiceBuilder::new()
        // Outermost: the server span and RED metrics see every outcome,
        // including shed, timed-out and panicked requests.
        .layer(middleware::from_fn_with_state(
            observe.clone(),
            observe_request,
        ))
        // A panicking handler answers 500 instead of dropping the connection.
        .layer(CatchPanicLayer::custom(|_| {
            AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "handler panicked").into_response()
        }))
        // Over a route's rate limit (live config), refuse with 429 before
        // the request takes an in-flight slot.
        .layer(middleware::from_fn_with_state(limit, rate_limit))
        // Past capacity, refuse at once rather than queue (see resilience::shed).
        .layer(middleware::from_fn_with_state(observe, shed_load))
        // Every request has a deadline, so a stuck dependency cannot pin it.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        // Injected faults act inside the deadline, as a slow handler would.
        .layer(middleware::from_fn_with_state(
            FaultHooks::new(faults, meters),
            apply_faults,
        ))
        // A declared length over the limit is refused up front; bodies
        // without one are cut off at the limit by the body extractors.
        .layer(middleware::from_fn_with_state(
            limits.max_body_bytes,
            refuse_oversized,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));

    let meters = meters.clone();
    let ops = Router::new()
        .route(
            "/health",
            get(move || async move { axum::Json(health.clone()) }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = meters.encode();
                async move { ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body) }
            }),
        );
    routes
        .fallback(|| async { AppError::not_found("no such route") })
        .layer(layers)
        .merge(ops)
}

/// Serves `app` on `listener` until `shutdown`, then lets in-flight requests
/// finish for up to the grace period.
pub async fn serve(
    app: Router,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let drained = shutdown.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { drained.cancelled().await });
    tokio::select! {
        result = server => result.map_err(Into::into),
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(crate::shutdown::GRACE_PERIOD).await;
        } => {
            tracing::warn!("grace period over; dropping remaining connections");
            Ok(())
        }
    }
}

/// Opens the server span (continuing the caller's trace) and records
/// `http.server.request.duration` with the trace id as exemplar.
async fn observe_request(State(observe): State<Observe>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(request.headers()))
    });
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    let _ = span.set_parent(parent);
    let trace_id = {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id().to_string())
    };
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        let _enter = span.enter();
        tracing::warn!(status = status.as_u16(), route = %route, "request failed");
    }
    observe.duration.record_with_trace(
        started.elapsed().as_secs_f64(),
        &[
            ("http.request.method", method.as_str()),
            ("http.route", &route),
            ("http.response.status_code", status.as_str()),
        ],
        trace_id.as_deref(),
    );
    response
}

/// Refuses work past `max_in_flight` with a 503.
async fn shed_load(State(observe): State<Observe>, request: Request, next: Next) -> Response {
    let Some(_slot) = observe.shedder.try_acquire() else {
        observe.shed.inc(&[]);
        log_shed_sometimes();
        return AppError::unavailable("server at capacity, request shed").into_response();
    };
    next.run(request).await
}

/// Refuses a request whose route is over its rate limit with 429, a
/// `Retry-After` and a body that says which limit.
async fn rate_limit(State(limit): State<Limit>, request: Request, next: Next) -> Response {
    // The route is copied only for a refusal: an admitted request (every
    // request while no limit is set) costs one atomic load.
    let refused = {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("", |p| p.as_str());
        limit
            .live
            .admit(route, Instant::now())
            .err()
            .map(|rate| (route.to_owned(), rate))
    };
    let Some((route, rate)) = refused else {
        return next.run(request).await;
    };
    limit.limited.inc(&[("http.route", route.as_str())]);
    log_limited_sometimes(&route, rate);
    let mut response = AppError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("rate limit exceeded: {route} accepts {rate} requests per second"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// What the fault middleware needs: the faults, and the gauge of requests
/// queued for a worker (which only a worker-pool fault makes non-zero).
#[derive(Clone)]
struct FaultHooks {
    faults: Faults,
    queued: Gauge,
    waiting: Arc<AtomicI64>,
}

impl FaultHooks {
    fn new(faults: Faults, meters: &Meters) -> Self {
        let queued = meters.gauge(
            "http.server.queued_requests",
            "Requests waiting for a free request handler",
            Unit::Count,
        );
        queued.set(0.0, &[]);
        FaultHooks {
            faults,
            queued,
            waiting: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Moves the queued-requests gauge by `delta`.
    fn queue(&self, delta: i64) {
        let now = self.waiting.fetch_add(delta, Ordering::Relaxed) + delta;
        self.queued.set(now as f64, &[]);
    }
}

/// Applies the faults assigned to this process to one request: waits for a
/// worker, waits, holds the hot lock, hangs, answers an error instead of
/// the handler, or corrupts the handler's answer.
async fn apply_faults(State(hooks): State<FaultHooks>, request: Request, next: Next) -> Response {
    let faults = &hooks.faults;
    if faults.idle() {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let effect = faults.inbound(&route);
    if effect == RequestEffect::default() {
        return next.run(request).await;
    }
    // A pool too small: the request waits in line for a worker, and holds
    // it (through everything below) until its answer is ready.
    let _worker = match &effect.worker_pool {
        Some(pool) => {
            hooks.queue(1);
            let slot = faults.worker_slot(pool).await;
            hooks.queue(-1);
            Some(slot)
        }
        None => None,
    };
    if let Some(hold) = effect.lock_hold {
        faults.contend(hold).await;
    }
    tokio::time::sleep(effect.delay).await;
    if effect.hang {
        // Accepted and never answered: the caller's timeout (or ours) ends it.
        std::future::pending::<()>().await;
    }
    if let Some(code) = effect.error {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        tracing::error!(
            http.route = %route,
            status = code,
            "request failed: {}",
            status.canonical_reason().unwrap_or("error")
        );
        return AppError::new(status, status.canonical_reason().unwrap_or("error")).into_response();
    }
    let response = next.run(request).await;
    match &effect.corrupt {
        Some(field) => corrupt(response, field).await,
        None => response,
    }
}

/// Largest answer [`corrupt`] rewrites; bigger ones pass unchanged.
const CORRUPT_MAX_BYTES: usize = 4 << 20;

/// Silent data corruption: a successful JSON answer comes back with every
/// numeric `field` (or `field_*`, such as `price_cents`) set to 0, at any
/// depth. Status and headers stay as they were (but the length), so
/// nothing in the span or the logs tells.
async fn corrupt(response: Response, field: &str) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, CORRUPT_MAX_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return AppError::internal("response body could not be read").into_response();
        }
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    zero_field(&mut value, field);
    let Ok(rewritten) = serde_json::to_vec(&value) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(rewritten))
}

/// Sets every number under a key `field` or `field_*` to 0.
fn zero_field(value: &mut serde_json::Value, field: &str) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let named = key == field
                    || key
                        .strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('_'));
                if named && v.is_number() {
                    *v = serde_json::Value::from(0);
                } else {
                    zero_field(v, field);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| zero_field(v, field)),
        _ => {}
    }
}

/// Answers 413 to a request whose `Content-Length` exceeds `limit`.
///
/// The unread body is drained (bounded in bytes and time) before the answer,
/// like a web server's lingering close: closing a socket with unread data
/// resets the connection, and the client would see a broken pipe instead of
/// the 413 that tells it what was wrong.
async fn refuse_oversized(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(declared) = declared.filter(|&n| n > limit as u64) else {
        return next.run(request).await;
    };
    const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
    const DRAIN_TIME: Duration = Duration::from_secs(2);
    if declared <= DRAIN_BYTES {
        use http_body_util::BodyExt as _;
        let mut body = request.into_body();
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(Ok(_)) = body.frame().await {}
        })
        .await;
    }
    AppError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is {declared} bytes; the limit is {limit} bytes"),
    )
    .into_response()
}

/// One log line per second at most: a shedding server must not also flood
/// its logs.
fn log_shed_sometimes() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = crate::clock::now_unix_ms() as u64 / 1000;
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!("load shedding: server at capacity, refusing requests with 503");
    }
}

/// One log line per second at most, as for shedding.
fn log_limited_sometimes(route: &str, rate: f64) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = crate::clock::now_unix_ms() as u64 / 1000;
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(http.route = %route, limit_rps = rate, "rate limiting: refusing requests over the limit with 429");
    }
}

/// Binds `addr`, with an error that names it.
pub async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({what}): {e}"))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use serde_json::{Value, json};
    use tokio::sync::{Semaphore, mpsc};
    use tower::ServiceExt as _;

    use super::*;
    use crate::config::Identity;
    use crate::faults::ActiveFault;
    use crate::faults::model::{FaultKind, FaultSpec, Target};

    fn meters() -> Meters {
        Meters::new(&Identity {
            service: "catalog".into(),
            instance_id: "catalog-1".into(),
            version: "test".into(),
            environment: "test".into(),
        })
    }

    fn serve_routes(routes: Router, meters: &Meters, faults: &Faults) -> Router {
        let health = Health {
            status: "ok",
            service: "catalog".into(),
            instance: "catalog-1".into(),
            version: "test".into(),
        };
        let limits = Limits {
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 1 << 20,
            max_in_flight: 100,
        };
        let live = crate::live::Live::with_defaults("payment", meters);
        app(routes, meters, health, limits, faults.clone(), live)
    }

    fn assign(faults: &Faults, kind: FaultKind, target: &str, toxicity: f64) {
        let spec = FaultSpec {
            kind,
            target: Target::parse(target).unwrap(),
            toxicity,
        };
        spec.validate().unwrap();
        faults.assign(vec![ActiveFault {
            id: "f1".into(),
            spec,
            until: Instant::now() + Duration::from_secs(60),
        }]);
    }

    async fn fetch(app: &Router, uri: &str) -> (StatusCode, String) {
        let request = HttpRequest::get(uri).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_pool_fault_serves_size_requests_at_once_and_queues_the_rest() {
        // Each handler reports that it started, then waits for the test to
        // let it finish.
        let release = Arc::new(Semaphore::new(0));
        let (entered_tx, mut entered) = mpsc::unbounded_channel::<()>();
        let gate = release.clone();
        let routes = Router::new().route(
            "/work",
            get(move || {
                let gate = gate.clone();
                let entered = entered_tx.clone();
                async move {
                    let _ = entered.send(());
                    gate.acquire().await.unwrap().forget();
                    "done"
                }
            }),
        );
        let meters = meters();
        let faults = Faults::new("catalog", "catalog-1", 1);
        assign(&faults, FaultKind::WorkerPool { size: 2 }, "catalog", 1.0);
        let app = serve_routes(routes, &meters, &faults);

        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..5 {
            let app = app.clone();
            requests.spawn(async move { fetch(&app, "/work").await });
        }
        entered.recv().await.unwrap();
        entered.recv().await.unwrap();
        // Paused time moves on only once every task is idle: if a third
        // handler could start, it would have by then.
        let third = tokio::time::timeout(Duration::from_secs(1), entered.recv()).await;
        assert!(third.is_err(), "a third request got a worker");
        let metrics = meters.encode();
        assert!(
            metrics.contains("http_server_queued_requests{} 3.0"),
            "{metrics}"
        );

        // One finishes: exactly one more gets its worker.
        release.add_permits(1);
        entered.recv().await.unwrap();
        let fourth = tokio::time::timeout(Duration::from_secs(1), entered.recv()).await;
        assert!(fourth.is_err(), "more than two handlers at once");

        release.add_permits(4);
        while let Some(done) = requests.join_next().await {
            assert_eq!(done.unwrap(), (StatusCode::OK, "done".to_string()));
        }
        assert!(
            meters
                .encode()
                .contains("http_server_queued_requests{} 0.0")
        );
    }

    #[tokio::test]
    async fn a_data_corruption_fault_zeroes_the_field_in_successful_answers() {
        let routes = Router::new()
            .route(
                "/products/{id}",
                get(|| async {
                    axum::Json(json!({
                        "id": 7, "price_cents": 1999, "name": "price list",
                        "variants": [{"price": 5, "priceless": 3}]
                    }))
                }),
            )
            .route(
                "/broken",
                get(|| async {
                    AppError::new(StatusCode::CONFLICT, "price_cents 12").into_response()
                }),
            );
        let meters = meters();
        let faults = Faults::new("catalog", "catalog-1", 1);
        assign(
            &faults,
            FaultKind::DataCorruption {
                field: "price".into(),
            },
            "catalog",
            1.0,
        );
        let app = serve_routes(routes, &meters, &faults);
        let (status, body) = fetch(&app, "/products/7").await;
        assert_eq!(status, StatusCode::OK);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            json!({
                "id": 7, "price_cents": 0, "name": "price list",
                "variants": [{"price": 0, "priceless": 3}]
            })
        );
        let (status, text) = fetch(&app, "/broken").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(text.contains("price_cents 12"), "errors pass untouched");
    }

    #[test]
    fn zero_field_leaves_non_numbers_and_other_names_alone() {
        let mut v = json!({"price": "free", "price_cents": 5, "pricey": 9, "x": [{"price": 1.5}]});
        zero_field(&mut v, "price");
        assert_eq!(
            v,
            json!({"price": "free", "price_cents": 0, "pricey": 9, "x": [{"price": 0}]})
        );
    }
}
