//! Test support for the services' integration tests: build a service the way
//! `main` does (but in-process, without telemetry), send it requests, and
//! stand in for the peers it calls.
//!
//! For tests only: compiled with the `testing` feature, which the service
//! crates enable in their `[dev-dependencies]` and nothing else does.
//!
//! - [`TestService`]: one service instance (its full server stack, `ctx.app`)
//!   with a temporary directory for its database, stopped when dropped.
//! - [`raw`] and [`call`]: one request through a [`Router`] with `oneshot`,
//!   the answer as text or as JSON.
//! - [`spawn_peer`] serves stand-in routes on a free local port;
//!   [`dead_url`] is a local URL nothing listens on.
//! - [`StandInBroker`]: the queue broker's consumer side, handing out
//!   scripted messages and reporting every ack and nack.
//! - [`FaultInjector`]: faults assigned and ended as the fault agent would,
//!   without a controller.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{Method, Request, StatusCode};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::ServiceContext;
use crate::config::parse_service_args;
use crate::faults::actuators::Actuators;
use crate::faults::model::{FaultKind, FaultSpec, Target};
use crate::faults::{ActiveFault, Faults};
use crate::metrics::Meters;
use crate::queue::Message;

/// A service context built from command-line `flags`, with a fresh shutdown
/// token. Panics if the flags or the context are invalid: a test that wants
/// a start-up error wants it from the service's `build`, not from here.
pub fn context(service: &str, flags: &[&str]) -> ServiceContext {
    let args = parse_service_args(flags).expect("the test's flags parse");
    let meters = Meters::new(&args.identity(service));
    ServiceContext::new(service, args, meters, CancellationToken::new())
        .expect("the test's service context builds")
}

/// One service instance behind its full server stack, as `main` would serve
/// it, with its database (when asked for) in a temporary directory that
/// lives as long as it does. Dropping it cancels its shutdown token, which
/// stops its background tasks (consumers, jobs).
pub struct TestService {
    app: Router,
    context: ServiceContext,
    database: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl TestService {
    /// Starts `name` with `flags` and no database of its own (pass
    /// `--database` to share another's). Panics if start-up fails.
    pub async fn start<B, Fut>(name: &'static str, build: B, flags: &[&str]) -> TestService
    where
        B: FnOnce(ServiceContext) -> Fut,
        Fut: Future<Output = anyhow::Result<Router>>,
    {
        Self::launch(name, build, flags, false)
            .await
            .expect("the service starts")
    }

    /// Starts `name` with `flags` and `--database` set to a fresh `shop.db`
    /// in the temporary directory. Panics if start-up fails.
    pub async fn with_database<B, Fut>(name: &'static str, build: B, flags: &[&str]) -> TestService
    where
        B: FnOnce(ServiceContext) -> Fut,
        Fut: Future<Output = anyhow::Result<Router>>,
    {
        Self::launch(name, build, flags, true)
            .await
            .expect("the service starts")
    }

    /// As [`TestService::with_database`], but returns the error of the
    /// service's `build` (the flags and context must still be valid).
    pub async fn try_with_database<B, Fut>(
        name: &'static str,
        build: B,
        flags: &[&str],
    ) -> anyhow::Result<TestService>
    where
        B: FnOnce(ServiceContext) -> Fut,
        Fut: Future<Output = anyhow::Result<Router>>,
    {
        Self::launch(name, build, flags, true).await
    }

    async fn launch<B, Fut>(
        name: &'static str,
        build: B,
        flags: &[&str],
        with_database: bool,
    ) -> anyhow::Result<TestService>
    where
        B: FnOnce(ServiceContext) -> Fut,
        Fut: Future<Output = anyhow::Result<Router>>,
    {
        let dir = with_database.then(|| tempfile::tempdir().expect("a temporary directory"));
        let database = dir.as_ref().map(|dir| dir.path().join("shop.db"));
        let mut all: Vec<&str> = Vec::new();
        if let Some(db) = &database {
            all.extend(["--database", db.to_str().expect("a UTF-8 temp path")]);
        }
        all.extend_from_slice(flags);
        let context = context(name, &all);
        let app = context.app(build(context.clone()).await?);
        Ok(TestService {
            app,
            context,
            database,
            _dir: dir,
        })
    }

    /// The service's routes behind the server stack.
    pub fn app(&self) -> &Router {
        &self.app
    }

    /// The context the service was built with (meters, shutdown token).
    pub fn context(&self) -> &ServiceContext {
        &self.context
    }

    /// The database file made by [`TestService::with_database`].
    pub fn database(&self) -> &Path {
        self.database
            .as_deref()
            .expect("the service was started with_database")
    }

    /// See [`raw`].
    pub async fn raw(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, String) {
        raw(&self.app, method, uri, body).await
    }

    /// See [`call`].
    pub async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        call(&self.app, method, uri, body).await
    }

    /// `GET uri`; see [`call`].
    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let (status, text) = self.raw(Method::GET, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        text
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.context.shutdown.cancel();
    }
}

impl fmt::Debug for TestService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestService")
            .field("service", &self.context.identity.service)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// Sends one request through `app` (a `body` goes as JSON) and returns the
/// status and the body as text.
pub async fn raw(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Body::from(body.unwrap_or_default().to_string()))
        .expect("a valid request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body reads");
    let text = String::from_utf8(bytes.to_vec()).expect("the body is UTF-8");
    (status, text)
}

/// As [`raw`], with the body read as JSON: an empty body is `Null`; any
/// other body that is not JSON fails the test.
pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let (status, text) = raw(app, method, uri, body).await;
    if text.is_empty() {
        return (status, Value::Null);
    }
    match serde_json::from_str(&text) {
        Ok(value) => (status, value),
        Err(err) => panic!("{status} answer is not JSON ({err}): {text}"),
    }
}

/// Serves `routes` on a free port of 127.0.0.1 with the runtime's server and
/// returns its base URL. It serves until the test's runtime shuts down.
pub async fn spawn_peer(routes: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free local port");
    let url = format!("http://{}", listener.local_addr().expect("a local address"));
    tokio::spawn(crate::server::serve(
        routes,
        listener,
        CancellationToken::new(),
    ));
    url
}

/// A local URL nothing listens on: calls to it are refused.
pub async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free local port");
    format!("http://{}", listener.local_addr().expect("a local address"))
}

/// What a consumer did with a message, as the [`StandInBroker`] saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// `(topic, message id)`.
    Ack(String, i64),
    /// `(topic, message id, reason)`.
    Nack(String, i64, String),
}

/// The queue broker as a consumer sees it: per-topic queues of scripted
/// messages, long-poll receive, and a report of every ack and nack. The
/// thing under test is the consumer.
pub struct StandInBroker {
    url: String,
    state: Arc<BrokerState>,
    settled: mpsc::UnboundedReceiver<Settled>,
}

struct BrokerState {
    pending: Mutex<HashMap<String, VecDeque<Message>>>,
    arrived: Notify,
    settled: mpsc::UnboundedSender<Settled>,
}

impl StandInBroker {
    /// Serves the broker's consumer routes (see [`spawn_peer`]).
    pub async fn spawn() -> StandInBroker {
        let (tx, settled) = mpsc::unbounded_channel();
        let state = Arc::new(BrokerState {
            pending: Mutex::default(),
            arrived: Notify::new(),
            settled: tx,
        });
        let routes = Router::new()
            .route("/topics/{topic}/receive", post(receive))
            .route("/topics/{topic}/messages/{id}/ack", post(ack))
            .route("/topics/{topic}/messages/{id}/nack", post(nack))
            .with_state(state.clone());
        let url = spawn_peer(routes).await;
        StandInBroker {
            url,
            state,
            settled,
        }
    }

    /// The broker's base URL, for `--peers queue=…`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queues a message on `topic` for the next receive; `attempts` counts
    /// this delivery (2 or more is a redelivery).
    pub fn deliver(&self, topic: &str, id: i64, attempts: u32, payload: Value) {
        let message = Message {
            id,
            topic: topic.to_string(),
            payload,
            headers: HashMap::new(),
            attempts,
            enqueued_at_ms: 1,
        };
        self.state
            .pending
            .lock()
            .entry(topic.to_string())
            .or_default()
            .push_back(message);
        self.state.arrived.notify_waiters();
    }

    /// The next ack or nack the consumer sends; fails the test if none comes
    /// within ten seconds.
    pub async fn next_settled(&mut self) -> Settled {
        tokio::time::timeout(Duration::from_secs(10), self.settled.recv())
            .await
            .expect("the consumer never settled the message")
            .expect("the broker is alive")
    }
}

async fn receive(
    State(broker): State<Arc<BrokerState>>,
    UrlPath(topic): UrlPath<String>,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let wait = Duration::from_millis(body["wait_ms"].as_u64().unwrap_or(0));
    let max = body["max"].as_u64().unwrap_or(1) as usize;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = broker.arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let batch: Vec<Message> = {
            let mut pending = broker.pending.lock();
            let queue = pending.entry(topic.clone()).or_default();
            let n = queue.len().min(max);
            queue.drain(..n).collect()
        };
        if !batch.is_empty() {
            return axum::Json(json!({ "messages": batch }));
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => return axum::Json(json!({ "messages": [] })),
        }
    }
}

async fn ack(
    State(broker): State<Arc<BrokerState>>,
    UrlPath((topic, id)): UrlPath<(String, i64)>,
) -> axum::Json<Value> {
    let _ = broker.settled.send(Settled::Ack(topic, id));
    axum::Json(json!({"id": id, "acked": true}))
}

async fn nack(
    State(broker): State<Arc<BrokerState>>,
    UrlPath((topic, id)): UrlPath<(String, i64)>,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let reason = body["reason"].as_str().unwrap_or_default().to_string();
    let _ = broker.settled.send(Settled::Nack(topic, id, reason));
    axum::Json(json!({"dead_lettered": false}))
}

/// Faults applied to one process as its agent would apply them: assigned to
/// its [`Faults`] handle, with the process actuators and the service's
/// watchers run for each start and end. Dropping it ends nothing: call
/// [`FaultInjector::clear`].
pub struct FaultInjector {
    faults: Faults,
    actuators: Actuators,
    active: Vec<ActiveFault>,
    next_id: u32,
}

impl FaultInjector {
    /// For the process of `context` (its database, if it has one, is where
    /// pool and index faults act).
    pub fn new(context: &ServiceContext) -> FaultInjector {
        FaultInjector {
            faults: context.faults.clone(),
            actuators: Actuators::new(&context.faults, context.db().ok()),
            active: Vec::new(),
            next_id: 1,
        }
    }

    /// Starts a fault of `kind` on `target` (CLI shorthand) with
    /// `toxicity`, lasting a minute; returns its id. Panics on a spec the
    /// controller would refuse.
    pub fn inject(&mut self, kind: FaultKind, target: &str, toxicity: f64) -> String {
        let spec = FaultSpec {
            kind,
            target: Target::parse(target).expect("the test's target parses"),
            toxicity,
        };
        spec.validate().expect("the test's fault is valid");
        let id = format!("test-{}", self.next_id);
        self.next_id += 1;
        self.active.push(ActiveFault {
            id: id.clone(),
            spec,
            until: std::time::Instant::now() + Duration::from_secs(60),
        });
        self.apply();
        id
    }

    /// Ends the fault `id`.
    pub fn clear(&mut self, id: &str) {
        self.active.retain(|f| f.id != id);
        self.apply();
    }

    fn apply(&mut self) {
        self.faults.assign(self.active.clone());
        self.actuators.reconcile(&self.faults.active());
    }
}
