//! Running journeys: each planned journey becomes its own task, traced as
//! one span with a child span per request, and ends as exactly one outcome.

use std::sync::Arc;

use opentelemetry::trace::TraceContextExt as _;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::http::{Call, ShopClient, StepError};
use crate::metrics::{Metrics, Outcome};
use firedrill_runtime::faults::Spike;

use crate::plan::{Action, CartLine, JourneyKind, JourneyPlan, Mix, PASSWORD, hot_key_plan, plan};
use crate::stats::Stats;
use crate::users::{UserLease, UserPool};

/// One request within a journey; the `step` label on request metrics and
/// the step named in failure reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    ListProducts,
    Search,
    ViewProduct,
    Recommendations,
    Login,
    AddToCart,
    ViewCart,
    Checkout,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::ListProducts => "list_products",
            Step::Search => "search",
            Step::ViewProduct => "view_product",
            Step::Recommendations => "recommendations",
            Step::Login => "login",
            Step::AddToCart => "add_to_cart",
            Step::ViewCart => "view_cart",
            Step::Checkout => "checkout",
        }
    }
}

/// Why a journey failed: the step, and what went wrong in it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", step.as_str())]
pub struct JourneyFailure {
    pub step: Step,
    pub error: StepError,
}

/// What the engine needs to plan and run journeys; fixed for the run.
pub struct EngineConfig {
    pub seed: u64,
    pub mix: Mix,
    pub users: u32,
    pub max_in_flight: usize,
}

/// Turns arrivals into running journeys and their outcomes into telemetry.
pub struct Engine {
    config: EngineConfig,
    client: ShopClient,
    users: Arc<UserPool>,
    stats: Arc<Stats>,
    metrics: Arc<Metrics>,
    /// Every journey task, so the run can wait for them to drain at the end.
    tracker: TaskTracker,
    /// Cancelled when the drain grace period is over: journeys still running
    /// then are abandoned (and counted as dropped) so shutdown is bounded.
    abandon: CancellationToken,
}

// === impl Engine ===

impl Engine {
    pub fn new(
        config: EngineConfig,
        client: ShopClient,
        stats: Arc<Stats>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Engine {
            users: UserPool::new(config.users),
            config,
            client,
            stats,
            metrics,
            tracker: TaskTracker::new(),
            abandon: CancellationToken::new(),
        })
    }

    /// Starts journey `seq`, meant to start at `intended`, without waiting
    /// for it. Called from the scheduler, so it must stay cheap.
    pub fn launch(self: &Arc<Self>, seq: u64, intended: Instant) {
        let plan = plan(self.config.seed, seq, &self.config.mix, self.config.users);
        self.start(plan, intended);
    }

    /// Starts extra journey `seq` of a traffic spike: a planned journey as
    /// usual; with a hot key, a view of that one product; with a journey
    /// kind, a journey of that kind (planned as usual otherwise).
    pub fn launch_surge(self: &Arc<Self>, seq: u64, intended: Instant, spike: &Spike) {
        let only = spike
            .journey
            .as_deref()
            .and_then(|name| name.parse::<JourneyKind>().ok())
            .map(Mix::only);
        let plan = match (spike.hot_key, only) {
            (Some(product_id), _) => hot_key_plan(seq, product_id),
            (None, Some(mix)) => plan(self.config.seed, seq, &mix, self.config.users),
            (None, None) => plan(self.config.seed, seq, &self.config.mix, self.config.users),
        };
        self.start(plan, intended);
    }

    fn start(self: &Arc<Self>, plan: JourneyPlan, intended: Instant) {
        let seq = plan.seq;
        self.stats.scheduled();
        if self.stats.in_flight() >= self.config.max_in_flight {
            let reason = format!(
                "--max-in-flight reached ({} journeys in flight)",
                self.config.max_in_flight
            );
            self.drop_journey(seq, plan.kind, reason);
            return;
        }
        let lease = if plan.kind.needs_user() {
            match self.users.lease(plan.user) {
                Some(lease) => Some(lease),
                None => {
                    let reason = format!(
                        "no free user: all {} users are in a journey (raise --users)",
                        self.config.users
                    );
                    self.drop_journey(seq, plan.kind, reason);
                    return;
                }
            }
        } else {
            None
        };
        let guard = InFlight::start(self);
        let engine = Arc::clone(self);
        self.tracker.spawn(async move {
            engine.run_journey(plan, lease, intended).await;
            drop(guard);
        });
    }

    fn drop_journey(&self, seq: u64, kind: JourneyKind, reason: String) {
        tracing::debug!(journey = kind.as_str(), seq, %reason, "journey dropped");
        self.metrics.journey(kind, Outcome::Dropped, None, None);
        self.stats.dropped(seq, kind, reason);
    }

    async fn run_journey(&self, plan: JourneyPlan, lease: Option<UserLease>, intended: Instant) {
        let span = journey_span(plan.kind, plan.seq);
        if let Some(lease) = &lease {
            span.record("enduser.id", lease.username());
        }
        let mut journey = Journey {
            client: &self.client,
            lease,
        };
        let result = tokio::select! {
            r = journey.run(&plan.action).instrument(span.clone()) => Some(r),
            _ = self.abandon.cancelled() => None,
        };
        // From the intended start, not from when the task got to run: if the
        // scheduler or runtime fell behind, users would have waited too.
        let latency = intended.elapsed();
        let kind = plan.kind;
        match result {
            Some(Ok(())) => {
                span.record("journey.outcome", Outcome::Success.as_str());
                self.metrics.journey(
                    kind,
                    Outcome::Success,
                    Some(latency.as_secs_f64()),
                    trace_id(&span),
                );
                self.stats.completed(plan.seq, kind, latency, None);
            }
            Some(Err(failure)) => {
                span.record("journey.outcome", Outcome::Failure.as_str());
                span.record("otel.status_code", "ERROR");
                span.record("error.message", failure.to_string());
                tracing::debug!(
                    parent: &span,
                    step = failure.step.as_str(),
                    error = %failure.error,
                    "journey failed"
                );
                self.metrics.journey(
                    kind,
                    Outcome::Failure,
                    Some(latency.as_secs_f64()),
                    trace_id(&span),
                );
                self.stats.completed(
                    plan.seq,
                    kind,
                    latency,
                    Some((failure.step.as_str(), failure.error.to_string())),
                );
            }
            None => {
                span.record("journey.outcome", Outcome::Dropped.as_str());
                let reason = format!("abandoned at shutdown after {latency:?}");
                self.drop_journey(plan.seq, kind, reason);
            }
        }
    }

    /// Stops accepting journeys; `drained` then resolves once all are done.
    pub fn close(&self) {
        self.tracker.close();
    }

    pub async fn drained(&self) {
        self.tracker.wait().await;
    }

    /// Abandons every journey still running.
    pub fn abandon(&self) {
        self.abandon.cancel();
    }
}

/// Counts a journey in flight for as long as it lives, even if its task
/// panics, so the in-flight gauge and the `--max-in-flight` check never leak.
struct InFlight(Arc<Engine>);

impl InFlight {
    fn start(engine: &Arc<Engine>) -> Self {
        engine.metrics.set_in_flight(engine.stats.started());
        InFlight(Arc::clone(engine))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.metrics.set_in_flight(self.0.stats.finished());
    }
}

/// A root span named `journey <kind>`. Span names must be literals in
/// `tracing`, hence one arm per kind; `otel.name` says the same for
/// exporters that read it.
fn journey_span(kind: JourneyKind, seq: u64) -> tracing::Span {
    macro_rules! span {
        ($name:literal) => {
            tracing::info_span!(
                parent: None,
                $name,
                otel.name = $name,
                journey.kind = kind.as_str(),
                journey.seq = seq,
                enduser.id = tracing::field::Empty,
                journey.outcome = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
                error.message = tracing::field::Empty,
            )
        };
    }
    match kind {
        JourneyKind::Browse => span!("journey browse"),
        JourneyKind::Search => span!("journey search"),
        JourneyKind::ViewProduct => span!("journey view_product"),
        JourneyKind::Login => span!("journey login"),
        JourneyKind::AddToCart => span!("journey add_to_cart"),
        JourneyKind::ViewCart => span!("journey view_cart"),
        JourneyKind::Checkout => span!("journey checkout"),
    }
}

/// The journey's trace id, if a tracer is installed and sampled it.
fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

// The parts of the shop's responses the journeys check (docs/shop-api.md).
// Unknown fields are ignored, so the shop may add fields freely.

#[derive(Deserialize)]
struct ProductRef {
    id: i64,
}

#[derive(Deserialize)]
struct ProductPage {
    products: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct SearchResults {
    results: Vec<SearchHit>,
}

#[derive(Deserialize)]
struct SearchHit {
    product: ProductRef,
}

#[derive(Deserialize)]
struct Recommendations {
    product_id: i64,
}

#[derive(Deserialize)]
struct LoginResponse {
    token: String,
}

#[derive(Deserialize)]
struct Cart {
    items: Vec<CartItem>,
}

#[derive(Deserialize)]
struct CartItem {
    product_id: i64,
}

#[derive(Deserialize)]
struct Order {
    order_id: i64,
    status: String,
}

/// One journey in progress: the client, and the user it acts as (if any).
struct Journey<'a> {
    client: &'a ShopClient,
    lease: Option<UserLease>,
}

impl Journey<'_> {
    async fn run(&mut self, action: &Action) -> Result<(), JourneyFailure> {
        match action {
            Action::Browse {
                category,
                offset,
                limit,
            } => {
                let query = [
                    ("limit", limit.to_string()),
                    ("offset", offset.to_string()),
                    ("category", category.to_string()),
                ];
                let page: ProductPage = self
                    .get(Step::ListProducts, "/api/products".into(), &query)
                    .await?;
                if page.products.len() > *limit as usize {
                    return Err(wrong(
                        Step::ListProducts,
                        format!("asked for {limit} products, got {}", page.products.len()),
                    ));
                }
            }
            Action::Search { term, pick } => {
                let query = [("q", term.to_string()), ("limit", "10".to_string())];
                let found: SearchResults =
                    self.get(Step::Search, "/api/search".into(), &query).await?;
                // No results is a valid answer; the user just leaves.
                if !found.results.is_empty() {
                    let i = *pick as usize % found.results.len();
                    self.view_product(found.results[i].product.id).await?;
                }
            }
            Action::ViewProduct { product_id } => {
                self.view_product(*product_id).await?;
                let recs: Recommendations = self
                    .get(
                        Step::Recommendations,
                        format!("/api/recommendations/{product_id}"),
                        &[],
                    )
                    .await?;
                if recs.product_id != *product_id {
                    return Err(wrong(
                        Step::Recommendations,
                        format!(
                            "asked for {product_id}, got recommendations for {}",
                            recs.product_id
                        ),
                    ));
                }
            }
            Action::Login => {
                self.login().await?;
            }
            Action::AddToCart { lines } => self.add_to_cart(lines).await?,
            Action::ViewCart => {
                let _: Cart = self
                    .authed(
                        Step::ViewCart,
                        Method::GET,
                        "/api/cart",
                        None,
                        StatusCode::OK,
                    )
                    .await?;
            }
            Action::Checkout { lines } => {
                self.add_to_cart(lines).await?;
                let order: Order = self
                    .authed(
                        Step::Checkout,
                        Method::POST,
                        "/api/checkout",
                        Some(json!({})),
                        StatusCode::CREATED,
                    )
                    .await?;
                if order.status != "confirmed" {
                    return Err(wrong(
                        Step::Checkout,
                        format!("order {} is {}", order.order_id, order.status),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn view_product(&self, product_id: i64) -> Result<(), JourneyFailure> {
        let product: ProductRef = self
            .get(
                Step::ViewProduct,
                format!("/api/products/{product_id}"),
                &[],
            )
            .await?;
        if product.id != product_id {
            return Err(wrong(
                Step::ViewProduct,
                format!("asked for product {product_id}, got {}", product.id),
            ));
        }
        Ok(())
    }

    async fn add_to_cart(&mut self, lines: &[CartLine]) -> Result<(), JourneyFailure> {
        for line in lines {
            let cart: Cart = self
                .authed(
                    Step::AddToCart,
                    Method::POST,
                    "/api/cart/items",
                    Some(json!({"product_id": line.product_id, "quantity": line.quantity})),
                    StatusCode::OK,
                )
                .await?;
            if !cart.items.iter().any(|i| i.product_id == line.product_id) {
                return Err(wrong(
                    Step::AddToCart,
                    format!(
                        "product {} missing from the cart after adding it",
                        line.product_id
                    ),
                ));
            }
        }
        Ok(())
    }

    /// An anonymous GET expecting 200.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        step: Step,
        path: String,
        query: &[(&'static str, String)],
    ) -> Result<T, JourneyFailure> {
        self.client
            .send(Call {
                step: step.as_str(),
                method: Method::GET,
                path,
                query,
                body: None,
                token: None,
                expect: StatusCode::OK,
            })
            .await
            .map_err(|error| JourneyFailure { step, error })
    }

    /// Logs the leased user in and caches the token.
    async fn login(&mut self) -> Result<String, JourneyFailure> {
        let username = self.lease()?.username();
        let response: LoginResponse = self
            .client
            .send(Call {
                step: Step::Login.as_str(),
                method: Method::POST,
                path: "/api/login".into(),
                query: &[],
                body: Some(json!({"username": username, "password": PASSWORD})),
                token: None,
                expect: StatusCode::OK,
            })
            .await
            .map_err(|error| JourneyFailure {
                step: Step::Login,
                error,
            })?;
        self.lease_mut()?.token = Some(response.token.clone());
        Ok(response.token)
    }

    /// A request as the leased user: logs in first if there is no cached
    /// token, and once more if the shop says the token is no longer good
    /// (401), as a browser session would.
    async fn authed<T: serde::de::DeserializeOwned>(
        &mut self,
        step: Step,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        expect: StatusCode,
    ) -> Result<T, JourneyFailure> {
        let cached = self.lease()?.token.clone();
        let (token, fresh) = match cached {
            Some(token) => (token, false),
            None => (self.login().await?, true),
        };
        let call = |token| Call {
            step: step.as_str(),
            method: method.clone(),
            path: path.to_string(),
            query: &[],
            body: body.clone(),
            token,
            expect,
        };
        match self.client.send(call(Some(&token))).await {
            Err(error) if error.is_unauthorized() && !fresh => {
                self.lease_mut()?.token = None;
                let token = self.login().await?;
                self.client.send(call(Some(&token))).await
            }
            other => other,
        }
        .map_err(|error| JourneyFailure { step, error })
    }

    fn lease(&self) -> Result<&UserLease, JourneyFailure> {
        self.lease.as_ref().ok_or_else(no_user)
    }

    fn lease_mut(&mut self) -> Result<&mut UserLease, JourneyFailure> {
        self.lease.as_mut().ok_or_else(no_user)
    }
}

/// Only reachable if a user journey was launched without a lease, which the
/// engine does not do; a failure rather than a panic all the same.
fn no_user() -> JourneyFailure {
    JourneyFailure {
        step: Step::Login,
        error: StepError::Transport("internal: journey has no leased user".into()),
    }
}

fn wrong(step: Step, what: String) -> JourneyFailure {
    JourneyFailure {
        step,
        error: StepError::Wrong(what),
    }
}
