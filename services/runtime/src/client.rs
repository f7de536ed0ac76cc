//! Calls to peer services.
//!
//! A [`Peer`] is one named dependency (`catalog`) with one or more instances.
//! Every call goes through the same path, which is where production failures
//! cascade, so each step is deliberate:
//!
//! 1. pick an instance: power-of-two-choices on in-flight count, skipping
//!    drained instances and those whose circuit breaker is open;
//! 2. open a client span and inject `traceparent`/`baggage`;
//! 3. send with a per-attempt timeout;
//! 4. record `http.client.request.duration` and feed the breaker;
//! 5. retry idempotent calls on connect errors, timeouts and 502/503/504,
//!    after an exponential backoff (jittered unless misconfigured), within
//!    the retry budget if there is one.
//!
//! Timeout, retry count, budget, jitter and breaker settings are read from
//! the live config ([`Live`]) once per call, at its start, so a config push
//! changes them from the next call on; the drained instances come from
//! there too. The n-th URL of a peer in
//! `--peers` is instance `<peer>-<n>` (as `firedrill up` and the compose
//! file list them), which is how a drained `payment-2` is found.
//!
//! The instances themselves can change: once a service is scaled, the
//! controller's answer lists where each of its instances listens
//! ([`Live::endpoints`]), and that list replaces the `--peers` one (kept
//! past the lease: the supervisor keeps the instances running without the
//! controller). An instance keeps its breaker and in-flight count
//! across such changes (it is known by id and URL), so a scale-out does not
//! reset what the caller learned about the instances it already had.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderInjector;
use parking_lot::{Mutex, RwLock};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument as _, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::faults::{Faults, LinkFailure};
use crate::live::{Live, LiveConfig};
use crate::metrics::{Counter, Gauge, Histogram, LATENCY_BUCKETS, Meters, Unit};
use crate::resilience::backoff::Backoff;
use crate::resilience::breaker::{Breaker, BreakerConfig, Permit, State};
use crate::resilience::retry_budget::RetryBudget;

/// The feature flag under which a process presents its renewed client
/// certificate: a cert-expiry fault on its links no longer fails them.
pub const RENEWED_CERT: &str = "renewed-cert";

/// How calls to peers behave; from the service flags. Timeout, retries and
/// jitter here are the starting point: calls read them, and the breaker
/// settings, from the live config.
#[derive(Clone, Copy, Debug)]
pub struct CallPolicy {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Backoff,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{peer}: no instance configured or all drained")]
    NoInstance { peer: String },
    #[error("{peer}: circuit breaker open on every instance")]
    BreakerOpen { peer: String },
    #[error("{peer}: timed out after {after:?}")]
    Timeout { peer: String, after: Duration },
    #[error("{peer}: connection failed: {reason}")]
    Connect { peer: String, reason: String },
    #[error("{peer} answered {status}: {message}")]
    Status {
        peer: String,
        status: StatusCode,
        message: String,
    },
    #[error("{peer}: unreadable response: {reason}")]
    Decode { peer: String, reason: String },
}

impl CallError {
    /// The `error.type` attribute: low-cardinality, per the HTTP conventions.
    fn error_type(&self) -> String {
        match self {
            CallError::NoInstance { .. } => "no_instance".into(),
            CallError::BreakerOpen { .. } => "breaker_open".into(),
            CallError::Timeout { .. } => "timeout".into(),
            CallError::Connect { .. } => "connect".into(),
            CallError::Status { status, .. } => status.as_u16().to_string(),
            CallError::Decode { .. } => "decode".into(),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            CallError::Timeout { .. } | CallError::Connect { .. } => true,
            CallError::Status { status, .. } => matches!(status.as_u16(), 502..=504),
            _ => false,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
    /// Which instance answered (its base URL).
    pub instance: String,
}

impl Response {
    pub fn json<T: DeserializeOwned>(&self, peer: &str) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(|e| CallError::Decode {
            peer: peer.to_string(),
            reason: e.to_string(),
        })
    }
}

/// Instruments shared by every peer of a process.
#[derive(Clone)]
struct ClientMetrics {
    duration: Histogram,
    retries: Counter,
    retries_denied: Counter,
    breaker_state: Gauge,
    breaker_transitions: Counter,
}

impl ClientMetrics {
    fn new(meters: &Meters) -> Self {
        ClientMetrics {
            duration: meters.histogram(
                "http.client.request.duration",
                "Duration of HTTP client requests to peer services",
                Unit::Seconds,
                LATENCY_BUCKETS,
            ),
            retries: meters.counter("http.client.retries", "Retried calls to peer services"),
            retries_denied: meters.counter(
                "http.client.retry_budget.exhausted",
                "Retries not made because the peer's retry budget was spent",
            ),
            breaker_state: meters.gauge(
                "circuit_breaker.state",
                "Circuit breaker state per peer instance: 0 closed, 1 half-open, 2 open",
                Unit::Count,
            ),
            breaker_transitions: meters.counter(
                "circuit_breaker.transitions",
                "Circuit breaker state changes",
            ),
        }
    }
}

/// One instance of a peer.
#[derive(Debug)]
pub struct Instance {
    url: String,
    /// `host:port` of `url`: where its name resolves to.
    address: String,
    /// `<peer>-<n>`, as the controller names it in the drained set.
    id: String,
    breaker: Breaker,
    in_flight: AtomicUsize,
}

impl Instance {
    fn new(id: String, url: String) -> Instance {
        Instance {
            address: authority(&url).unwrap_or(&url).to_string(),
            url,
            id,
            breaker: Breaker::new(),
            in_flight: AtomicUsize::new(0),
        }
    }
}

/// The instances a peer's calls choose from.
type Rotation = Arc<[Arc<Instance>]>;

/// All peers of this process, by service name.
#[derive(Clone, Default)]
pub struct Peers {
    peers: BTreeMap<String, Arc<Peer>>,
}

impl Peers {
    pub fn new(
        map: &BTreeMap<String, Vec<String>>,
        policy: CallPolicy,
        meters: &Meters,
        seed: u64,
        faults: &Faults,
        live: &Live,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .connect_timeout(policy.timeout)
            .build()?;
        let metrics = ClientMetrics::new(meters);
        let peers = map
            .iter()
            .enumerate()
            .map(|(i, (name, urls))| {
                let peer = Peer::new(
                    name,
                    urls,
                    policy,
                    http.clone(),
                    metrics.clone(),
                    seed + i as u64,
                    faults.clone(),
                    live.clone(),
                );
                (name.clone(), Arc::new(peer))
            })
            .collect();
        Ok(Peers { peers })
    }

    /// The peer named `name`; a missing peer is a deployment error, reported
    /// at start-up rather than on the first request.
    pub fn get(&self, name: &str) -> anyhow::Result<Arc<Peer>> {
        self.peers.get(name).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "peer service {name:?} is not configured (add it to --peers / FIREDRILL_PEERS)"
            )
        })
    }
}

pub struct Peer {
    name: String,
    /// The instances `--peers` names: the rotation unless the controller
    /// lists the peer's instances.
    configured: Rotation,
    /// The rotation now, and the [`Live::endpoints_generation`] it
    /// follows.
    rotation: RwLock<(u64, Rotation)>,
    policy: CallPolicy,
    http: reqwest::Client,
    metrics: ClientMetrics,
    rng: Mutex<SmallRng>,
    faults: Faults,
    live: Live,
    retry_budget: RetryBudget,
}

impl Peer {
    // One argument per part of a peer; a struct to carry them would only
    // repeat the fields.
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &str,
        urls: &[String],
        policy: CallPolicy,
        http: reqwest::Client,
        metrics: ClientMetrics,
        seed: u64,
        faults: Faults,
        live: Live,
    ) -> Self {
        let configured: Rotation = urls
            .iter()
            .enumerate()
            .map(|(i, url)| Arc::new(Instance::new(format!("{name}-{}", i + 1), url.clone())))
            .collect();
        Peer {
            name: name.to_string(),
            rotation: RwLock::new((0, configured.clone())),
            configured,
            policy,
            http,
            metrics,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            faults,
            live,
            retry_budget: RetryBudget::default(),
        }
    }

    /// The faults of the process this client runs in.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A GET; `route` is the low-cardinality template (`/products/{id}`),
    /// `path` the concrete path (`/products/42`).
    pub fn get(&self, route: &'static str, path: impl Into<String>) -> Call<'_> {
        Call::new(self, Method::GET, route, path.into(), None, true)
    }

    /// A POST with a JSON body. Not retried unless marked idempotent.
    pub fn post(
        &self,
        route: &'static str,
        path: impl Into<String>,
        body: &impl Serialize,
    ) -> Call<'_> {
        let body = serde_json::to_vec(body)
            .map(Bytes::from)
            .unwrap_or_default();
        Call::new(self, Method::POST, route, path.into(), Some(body), false)
    }

    pub fn put(
        &self,
        route: &'static str,
        path: impl Into<String>,
        body: &impl Serialize,
    ) -> Call<'_> {
        let body = serde_json::to_vec(body)
            .map(Bytes::from)
            .unwrap_or_default();
        Call::new(self, Method::PUT, route, path.into(), Some(body), true)
    }

    pub fn delete(&self, route: &'static str, path: impl Into<String>) -> Call<'_> {
        Call::new(self, Method::DELETE, route, path.into(), None, true)
    }

    /// The instances calls choose from now: the controller's list for a
    /// scaled peer, else the configured ones. Rebuilt only when the
    /// controller's answer changed; instances that stay keep their state.
    fn rotation(&self) -> Rotation {
        let generation = self.live.endpoints_generation();
        let current = {
            let rotation = self.rotation.read();
            if rotation.0 == generation {
                return rotation.1.clone();
            }
            rotation.1.clone()
        };
        let next: Rotation = match self.live.endpoints().get(&self.name) {
            None => self.configured.clone(),
            Some(listed) => listed
                .iter()
                .map(|e| {
                    current
                        .iter()
                        .chain(self.configured.iter())
                        .find(|i| i.id == e.id && i.url == e.url)
                        .cloned()
                        .unwrap_or_else(|| Arc::new(Instance::new(e.id.clone(), e.url.clone())))
                })
                .collect(),
        };
        *self.rotation.write() = (generation, next.clone());
        next
    }

    /// Chooses an instance and takes a breaker permit on it. A retry passes
    /// the instance that just failed in `avoid`, so it goes elsewhere when
    /// there is anywhere else to go (like a proxy's previous-hosts rule).
    fn choose(
        &self,
        avoid: Option<&str>,
        breaker: &BreakerConfig,
    ) -> Result<Arc<Instance>, CallError> {
        let instances = self.rotation();
        let drained = self.live.drained();
        let mut candidates: Vec<&Arc<Instance>> = instances
            .iter()
            .filter(|i| !drained.as_ref().is_some_and(|d| d.contains(&i.id)))
            .collect();
        if candidates.is_empty() {
            return Err(CallError::NoInstance {
                peer: self.name.clone(),
            });
        }
        if candidates.len() > 1 {
            candidates.retain(|i| Some(i.id.as_str()) != avoid);
        }
        while !candidates.is_empty() {
            let pick = self
                .skewed(&candidates)
                .unwrap_or_else(|| self.power_of_two(&candidates));
            let instance = candidates[pick];
            let (permit, changed) = instance.breaker.acquire(Instant::now(), breaker);
            if let Some(state) = changed {
                self.breaker_changed(instance, state);
            }
            if permit == Permit::Allowed {
                return Ok(instance.clone());
            }
            candidates.swap_remove(pick);
        }
        Err(CallError::BreakerOpen {
            peer: self.name.clone(),
        })
    }

    /// A misconfigured balancer (an lb-skew fault): the position in
    /// `candidates` of the instance it sends this call to regardless of
    /// load, if any. One atomic load when no fault is assigned.
    fn skewed(&self, candidates: &[&Arc<Instance>]) -> Option<usize> {
        if self.faults.idle() {
            return None;
        }
        let favoured = self.faults.skewed_instance(&self.name)?;
        candidates.iter().position(|i| i.id == favoured)
    }

    /// Power of two choices: two random candidates, the less busy wins.
    fn power_of_two(&self, candidates: &[&Arc<Instance>]) -> usize {
        if candidates.len() == 1 {
            return 0;
        }
        let mut rng = self.rng.lock();
        let a = rng.random_range(0..candidates.len());
        let mut b = rng.random_range(0..candidates.len() - 1);
        if b >= a {
            b += 1;
        }
        let load = |i: usize| candidates[i].in_flight.load(Ordering::Relaxed);
        if load(b) < load(a) { b } else { a }
    }

    fn breaker_changed(&self, instance: &Instance, state: State) {
        let attrs = [
            ("server.address", self.name.as_str()),
            ("server.instance", instance.url.as_str()),
        ];
        self.metrics.breaker_state.set(state.as_gauge(), &attrs);
        self.metrics.breaker_transitions.inc(&[
            ("server.address", self.name.as_str()),
            ("state", state.as_str()),
        ]);
        match state {
            State::Open => {
                tracing::warn!(peer = %self.name, instance = %instance.url, "circuit breaker opened")
            }
            State::HalfOpen => {
                tracing::info!(peer = %self.name, instance = %instance.url, "circuit breaker half-open, probing")
            }
            State::Closed => {
                tracing::info!(peer = %self.name, instance = %instance.url, "circuit breaker closed")
            }
        }
    }
}

/// One logical call (possibly several attempts).
pub struct Call<'a> {
    peer: &'a Peer,
    method: Method,
    route: &'static str,
    path: String,
    body: Option<Bytes>,
    idempotent: bool,
    sampled: bool,
    headers: HeaderMap,
}

impl<'a> Call<'a> {
    fn new(
        peer: &'a Peer,
        method: Method,
        route: &'static str,
        path: String,
        body: Option<Bytes>,
        idempotent: bool,
    ) -> Self {
        Call {
            peer,
            method,
            route,
            path,
            body,
            idempotent,
            sampled: true,
            headers: HeaderMap::new(),
        }
    }

    /// Starts a trace that is not recorded, here or downstream (the
    /// `traceparent` carries sampled=0). For background polling, which would
    /// otherwise bury real traces under thousands of idle ones.
    pub fn unsampled(mut self) -> Self {
        self.sampled = false;
        self
    }

    /// Marks the call safe to retry (e.g. a POST with an idempotency key).
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(v) = value.parse() {
            self.headers.insert(name, v);
        }
        self
    }

    /// Sends and decodes a 2xx JSON answer into `T`.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, CallError> {
        let peer = self.peer.name.clone();
        self.send().await?.json(&peer)
    }

    /// Sends, retrying per the live config; any non-2xx answer is a
    /// [`CallError`].
    pub async fn send(self) -> Result<Response, CallError> {
        let config = self.peer.live.config();
        // A retry-amplification fault overrides the policy: many retries,
        // in step, unbudgeted.
        let amplified = self
            .peer
            .faults
            .amplified_retries(&self.peer.name, self.route);
        let (retries, jitter, budget) = match amplified {
            Some(attempts) => (attempts, false, None),
            None => (config.retries, config.retry_jitter, config.retry_budget),
        };
        let backoff = Backoff {
            base: self.peer.policy.backoff.base,
            jitter,
        };
        if let Some(ratio) = budget {
            self.peer.retry_budget.deposit(ratio);
        }
        let mut attempt = 0;
        let mut last_instance: Option<Arc<Instance>> = None;
        loop {
            let avoid = last_instance.as_ref().map(|i| i.id.as_str());
            let (result, instance) = self.attempt(attempt, avoid, &config).await;
            last_instance = instance;
            let err = match result {
                Ok(response) => return Ok(response),
                Err(err) => err,
            };
            let can_retry = (self.idempotent || matches!(err, CallError::Connect { .. }))
                && err.retryable()
                && attempt < retries;
            if !can_retry {
                return Err(err);
            }
            if budget.is_some() && !self.peer.retry_budget.try_spend() {
                self.peer
                    .metrics
                    .retries_denied
                    .inc(&[("server.address", self.peer.name.as_str())]);
                log_budget_spent_sometimes(&self.peer.name);
                return Err(err);
            }
            attempt += 1;
            let delay = backoff.delay(attempt, &mut *self.peer.rng.lock());
            self.peer
                .metrics
                .retries
                .inc(&[("server.address", self.peer.name.as_str())]);
            tracing::warn!(peer = %self.peer.name, route = self.route, attempt, error = %err, backoff_ms = delay.as_millis() as u64, "retrying call");
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt; also returns which instance it went to.
    async fn attempt(
        &self,
        attempt: u32,
        avoid: Option<&str>,
        config: &LiveConfig,
    ) -> (Result<Response, CallError>, Option<Arc<Instance>>) {
        let peer = self.peer;
        let instance = match peer.choose(avoid, &config.breaker) {
            Ok(i) => i,
            Err(err) => {
                self.record_failure_metric(0.0, &err, None);
                return (Err(err), None);
            }
        };
        (
            self.attempt_on(&instance, attempt, config).await,
            Some(instance),
        )
    }

    async fn attempt_on(
        &self,
        instance: &Instance,
        attempt: u32,
        config: &LiveConfig,
    ) -> Result<Response, CallError> {
        let peer = self.peer;
        let url = format!("{}{}", instance.url, self.path);
        let span = tracing::info_span!(
            "http.client",
            otel.name = %format!("{} {}", self.method, self.route),
            otel.kind = "client",
            http.request.method = %self.method,
            url.full = %url,
            url.template = self.route,
            server.address = %peer.name,
            network.peer.address = %instance.address,
            http.response.status_code = Empty,
            http.request.resend_count = Empty,
            error.type = Empty,
            otel.status_code = Empty,
        );
        if attempt > 0 {
            span.record("http.request.resend_count", attempt);
        }
        if !self.sampled {
            let _ = span.set_parent(unsampled_root());
        }
        let trace_id = {
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id().to_string())
        };
        // Counted down on drop: a call whose caller is cancelled mid-flight
        // must not stay "in flight" to the balancer forever.
        let in_flight = InFlight::enter(&instance.in_flight);
        let started = Instant::now();
        let timeout = config.timeout_for(&peer.name);
        let outcome = self
            .exchange(instance, &url, &span, timeout)
            .instrument(span.clone())
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        drop(in_flight);

        let success = match &outcome {
            Ok(_) => true,
            Err(CallError::Status { status, .. }) => !status.is_server_error(),
            Err(_) => false,
        };
        if let Some(state) = instance
            .breaker
            .record(success, Instant::now(), &config.breaker)
        {
            peer.breaker_changed(instance, state);
        }
        match outcome {
            Ok(response) => {
                span.record("http.response.status_code", response.status.as_u16());
                peer.metrics.duration.record_with_trace(
                    elapsed,
                    &[
                        ("http.request.method", self.method.as_str()),
                        ("server.address", &peer.name),
                        ("http.response.status_code", response.status.as_str()),
                    ],
                    trace_id.as_deref(),
                );
                Ok(response)
            }
            Err(err) => {
                if let Some(status) = err.status() {
                    span.record("http.response.status_code", status.as_u16());
                }
                span.record("error.type", err.error_type());
                span.record("otel.status_code", "ERROR");
                self.record_failure_metric(elapsed, &err, trace_id.as_deref());
                Err(err)
            }
        }
    }

    fn record_failure_metric(&self, elapsed: f64, err: &CallError, trace_id: Option<&str>) {
        let status = err
            .status()
            .map(|s| s.as_u16().to_string())
            .unwrap_or_default();
        let error_type = err.error_type();
        let mut attrs = vec![
            ("http.request.method", self.method.as_str()),
            ("server.address", self.peer.name.as_str()),
            ("error.type", error_type.as_str()),
        ];
        if !status.is_empty() {
            attrs.push(("http.response.status_code", status.as_str()));
        }
        self.peer
            .metrics
            .duration
            .record_with_trace(elapsed, &attrs, trace_id);
    }

    /// One HTTP exchange under the per-attempt timeout.
    async fn exchange(
        &self,
        instance: &Instance,
        url: &str,
        span: &tracing::Span,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let peer = &self.peer.name;
        let mut headers = self.headers.clone();
        let cx = span.context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(&mut headers));
        });
        let fault = self.peer.faults.outbound(peer, self.route);
        // A stale DNS record resolves the name to the callee's old address.
        let resolved: std::borrow::Cow<'_, str> = match &fault.stale_address {
            Some(address) => {
                span.record("network.peer.address", address.as_str());
                with_authority(url, address).into()
            }
            None => url.into(),
        };
        let mut request = self
            .peer
            .http
            .request(self.method.clone(), resolved.as_ref())
            .headers(headers);
        if let Some(body) = &self.body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let exchange = async {
            // A faulty link acts where the network would: before the request
            // leaves, or while the response trickles in.
            if fault.hang {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(fault.delay).await;
            // The client certificate that expired is the one this process
            // presents; with the renewed one (a flag) the handshake passes.
            let renewed = |failure| {
                failure == LinkFailure::CertExpired && self.peer.live.flag(RENEWED_CERT, "")
            };
            if let Some(failure) = fault.failure
                && !renewed(failure)
            {
                return Err(CallError::Connect {
                    peer: peer.clone(),
                    reason: failure.reason().to_string(),
                });
            }
            if let Some(code) = fault.error {
                // An error answered on the way (a sidecar or proxy refusing
                // the call): the callee never sees the request.
                return Ok((
                    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
                    Bytes::from_static(
                        br#"{"error":"upstream connect error or disconnect/reset before headers"}"#,
                    ),
                ));
            }
            let response = request.send().await.map_err(|e| CallError::Connect {
                peer: peer.clone(),
                reason: root_cause(&e),
            })?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| CallError::Connect {
                peer: peer.clone(),
                reason: root_cause(&e),
            })?;
            if fault.answer_lost {
                // The callee answered; the answer never arrives.
                std::future::pending::<()>().await;
            }
            if let Some(rate) = fault.bandwidth {
                let secs = body.len() as f64 / rate as f64;
                tokio::time::sleep(Duration::from_secs_f64(secs.min(600.0))).await;
            }
            Ok::<_, CallError>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| CallError::Timeout {
                peer: peer.clone(),
                after: timeout,
            })??;
        if status.is_success() {
            return Ok(Response {
                status,
                body,
                instance: instance.url.clone(),
            });
        }
        Err(CallError::Status {
            peer: peer.clone(),
            status,
            message: error_message(&body),
        })
    }
}

/// One log line per second at most: a spent budget refuses many retries.
fn log_budget_spent_sometimes(peer: &str) {
    use std::sync::atomic::AtomicU64;
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = crate::clock::now_unix_ms() as u64 / 1000;
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(peer, "retry budget exhausted: failed calls are not retried");
    }
}

/// A parent context whose trace is marked not sampled.
fn unsampled_root() -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let mut rng = rand::rng();
    let trace_id = TraceId::from_bytes(rng.random::<u128>().max(1).to_be_bytes());
    let span_id = SpanId::from_bytes(rng.random::<u64>().max(1).to_be_bytes());
    let sc = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(sc)
}

/// The `host:port` of an `http://host:port/path` URL.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// `url` with its `host:port` replaced by `address`.
fn with_authority(url: &str, address: &str) -> String {
    match (url.split_once("://"), authority(url)) {
        (Some((scheme, rest)), Some(old)) => {
            format!("{scheme}://{address}{}", &rest[old.len()..])
        }
        _ => url.to_string(),
    }
}

/// The innermost error message ("connection refused", "connection reset").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// The `error` field of a JSON error body, or the body itself (truncated).
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// One call in flight to an instance, for the least-loaded balancer.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::Identity;
    use crate::faults::ActiveFault;
    use crate::faults::model::{Endpoint, FaultKind, FaultSpec, Target};

    fn payment_peer(faults: &Faults) -> (Arc<Peer>, crate::live::Live) {
        let meters = Meters::new(&Identity {
            service: "checkout".into(),
            instance_id: "checkout-1".into(),
            version: "test".into(),
            environment: "test".into(),
        });
        let policy = CallPolicy {
            timeout: Duration::from_secs(1),
            retries: 0,
            backoff: Backoff {
                base: Duration::from_millis(10),
                jitter: true,
            },
        };
        // Never contacted: only the balancer is under test.
        let urls = (1..=3).map(|i| format!("http://127.0.0.1:{i}")).collect();
        let map = BTreeMap::from([("payment".to_string(), urls)]);
        let live = crate::live::Live::with_defaults("checkout", &meters);
        let peer = Peers::new(&map, policy, &meters, 11, faults, &live)
            .unwrap()
            .get("payment")
            .unwrap();
        (peer, live)
    }

    /// How many of 10 000 picks went to each instance (`payment-1` first).
    fn picks(peer: &Peer) -> Vec<usize> {
        let breaker = peer.live.config().breaker;
        let mut counts = BTreeMap::<String, usize>::new();
        for _ in 0..10_000 {
            *counts
                .entry(peer.choose(None, &breaker).unwrap().id.clone())
                .or_default() += 1;
        }
        let mut ids: Vec<_> = counts.keys().cloned().collect();
        ids.sort_by_key(|id| id.rsplit_once('-').and_then(|(_, n)| n.parse::<u32>().ok()));
        ids.iter().map(|id| counts[id]).collect()
    }

    fn endpoint(id: &str, port: u16) -> Endpoint {
        Endpoint {
            id: id.into(),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    #[test]
    fn a_scaled_peer_is_called_where_the_controller_says_its_instances_are() {
        let faults = Faults::new("checkout", "checkout-1", 5);
        let (peer, live) = payment_peer(&faults);
        assert_eq!(picks(&peer).len(), 3, "the configured instances");

        // payment-1 has failed enough to open its breaker.
        let breaker = live.config().breaker;
        let first = peer.rotation()[0].clone();
        for _ in 0..breaker.failure_threshold {
            first.breaker.record(false, Instant::now(), &breaker);
        }

        // Scaled out to four: payment-4 is new, the others are the same
        // instances at the same addresses.
        let scaled: Vec<Endpoint> = (1..=4)
            .map(|n| endpoint(&format!("payment-{n}"), n as u16))
            .collect();
        live.set_endpoints(BTreeMap::from([("payment".to_string(), scaled)]));
        let rotation = peer.rotation();
        assert_eq!(
            rotation.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["payment-1", "payment-2", "payment-3", "payment-4"]
        );
        assert!(
            Arc::ptr_eq(&rotation[0], &first),
            "payment-1 kept its state"
        );
        let four = picks(&peer);
        assert_eq!(
            four.len(),
            3,
            "payment-1's open breaker keeps it out: {four:?}"
        );
        assert!(four.iter().all(|n| (2_900..3_800).contains(n)), "{four:?}");

        // Scaled in to one, at a new address: a new instance, nothing else.
        live.set_endpoints(BTreeMap::from([(
            "payment".to_string(),
            vec![endpoint("payment-1", 9)],
        )]));
        let one = peer.rotation();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].url, "http://127.0.0.1:9");
        assert!(
            !Arc::ptr_eq(&one[0], &first),
            "another address, another instance"
        );

        // A controller that lists another service's instances, and not
        // payment's, sends payment's callers back to --peers.
        live.set_endpoints(BTreeMap::from([(
            "cart".to_string(),
            vec![endpoint("cart-1", 1)],
        )]));
        assert_eq!(peer.rotation().len(), 3);
        assert!(Arc::ptr_eq(&peer.rotation()[0], &first));
    }

    #[test]
    fn a_stale_record_swaps_only_the_address() {
        let url = "http://127.0.0.1:4100/shipments/7?x=1";
        assert_eq!(authority(url), Some("127.0.0.1:4100"));
        assert_eq!(
            with_authority(url, "10.0.3.7:8080"),
            "http://10.0.3.7:8080/shipments/7?x=1"
        );
        assert_eq!(with_authority("http://h:1", "a:2"), "http://a:2");
        assert_eq!(with_authority("not a url", "a:2"), "not a url");
    }

    #[tokio::test]
    async fn an_lb_skew_fault_sends_its_percent_of_calls_to_one_instance() {
        let faults = Faults::new("checkout", "checkout-1", 5);
        let (peer, live) = payment_peer(&faults);
        let even = picks(&peer);
        assert_eq!(even.len(), 3);
        assert!(even.iter().all(|n| (3_000..3_700).contains(n)), "{even:?}");

        let spec = FaultSpec {
            kind: FaultKind::LbSkew {
                instance: "payment-2".into(),
                percent: 70,
            },
            target: Target::parse("checkout->payment").unwrap(),
            toxicity: 1.0,
        };
        spec.validate().unwrap();
        faults.assign(vec![ActiveFault {
            id: "f1".into(),
            spec,
            until: Instant::now() + Duration::from_secs(60),
        }]);
        let skewed = picks(&peer);
        // 70 % by the skew, plus a third of the balanced 30 %.
        assert!((7_700..8_300).contains(&skewed[1]), "{skewed:?}");
        assert!(skewed[0] > 700 && skewed[2] > 700, "{skewed:?}");

        // A drained favourite gets nothing; the others share the calls.
        live.set_drained(std::collections::BTreeSet::from(["payment-2".to_string()]));
        let breaker = peer.live.config().breaker;
        let drained = (0..10_000)
            .filter(|_| peer.choose(None, &breaker).unwrap().id == "payment-2")
            .count();
        assert_eq!(drained, 0);
    }
}
