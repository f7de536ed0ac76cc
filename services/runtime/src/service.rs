//! [`ServiceContext`]: what a service's code is handed, and [`main`], the one
//! way a service process starts and stops.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::client::{CallPolicy, Peer, Peers};
use crate::config::{Identity, ServiceArgs};
use crate::db::Db;
use crate::faults::Faults;
use crate::faults::actuators::Actuators;
use crate::faults::agent;
use crate::live::{Live, LiveConfig};
use crate::metrics::Meters;
use crate::resilience::backoff::Backoff;
use crate::server::{self, Health, Limits};
use crate::telemetry::{self, ExportConfig};

/// Everything a service needs besides its own logic.
#[derive(Clone)]
pub struct ServiceContext {
    pub identity: Identity,
    pub args: ServiceArgs,
    pub meters: Meters,
    pub peers: Peers,
    /// Cancelled when the process is asked to stop; background tasks
    /// (consumers, jobs) watch it.
    pub shutdown: CancellationToken,
    /// The faults the controller assigns to this process.
    pub faults: Faults,
    /// The live config (timeouts, retries, pool, rate limits, flags) the
    /// controller hands out; handlers ask it for feature flags.
    pub live: Live,
    db: Option<Db>,
}

impl ServiceContext {
    /// Builds the context (without installing global telemetry, so tests can
    /// build several in one process).
    pub fn new(
        service: &str,
        args: ServiceArgs,
        meters: Meters,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let identity = args.identity(service);
        let policy = CallPolicy {
            timeout: args.call_timeout,
            retries: args.call_retries,
            backoff: Backoff {
                base: args.retry_backoff,
                jitter: args.retry_jitter,
            },
        };
        let faults = Faults::versioned(
            &identity.service,
            &identity.instance_id,
            &identity.version,
            args.seed,
        );
        let live = Live::new(&identity.service, LiveConfig::from_args(&args), &meters);
        let peers = Peers::new(
            &args.peer_map()?,
            policy,
            &meters,
            args.seed,
            &faults,
            &live,
        )?;
        let db = match &args.database {
            Some(path) => Some(Db::open(
                path,
                service,
                args.db_pool_size,
                args.db_acquire_timeout,
                &meters,
                &faults,
            )?),
            None => None,
        };
        if let Some(db) = &db {
            let db = db.clone();
            live.on_change(move |config| db.resize(config.db_pool_size));
        }
        Ok(ServiceContext {
            identity,
            args,
            meters,
            peers,
            shutdown,
            faults,
            live,
            db,
        })
    }

    /// The database pool; a stateful service without `--database` is a
    /// deployment error reported at start-up.
    pub fn db(&self) -> anyhow::Result<Db> {
        self.db.clone().with_context(|| {
            format!(
                "{} needs a database: pass --database or FIREDRILL_DATABASE",
                self.identity.service
            )
        })
    }

    pub fn peer(&self, name: &str) -> anyhow::Result<Arc<Peer>> {
        self.peers.get(name)
    }

    /// Wraps a service's routes with the standard server stack.
    pub fn app(&self, routes: Router) -> Router {
        let health = Health {
            status: "ok",
            service: self.identity.service.clone(),
            instance: self.identity.instance_id.clone(),
            version: self.identity.version.clone(),
        };
        let limits = Limits {
            request_timeout: self.args.request_timeout,
            max_body_bytes: self.args.max_body_bytes,
            max_in_flight: self.args.max_in_flight,
        };
        server::app(
            routes,
            &self.meters,
            health,
            limits,
            self.faults.clone(),
            self.live.clone(),
        )
    }
}

/// Runs one service process: telemetry, context, routes, serve, drain, flush.
///
/// `build` receives the context and returns the service's routes; it may
/// spawn background tasks that stop on `ctx.shutdown`.
pub async fn main<F, Fut>(
    service: &'static str,
    args: ServiceArgs,
    shutdown: CancellationToken,
    build: F,
) -> anyhow::Result<()>
where
    F: FnOnce(ServiceContext) -> Fut,
    Fut: Future<Output = anyhow::Result<Router>>,
{
    let identity = args.identity(service);
    let export = ExportConfig {
        endpoint: Some(args.otlp_endpoint.clone()).filter(|e| !e.is_empty()),
        protocol: args.otlp_protocol,
        metrics_interval: args.otlp_metrics_interval,
        log_filter: args.log.clone(),
    };
    let guard = telemetry::init(&identity, &export)?;
    let result = run(service, args, shutdown, build).await;
    if let Err(err) = &result {
        tracing::error!(
            error = format!("{err:#}"),
            "{service} stopped with an error"
        );
    }
    guard.shutdown().await;
    result
}

async fn run<F, Fut>(
    service: &'static str,
    args: ServiceArgs,
    shutdown: CancellationToken,
    build: F,
) -> anyhow::Result<()>
where
    F: FnOnce(ServiceContext) -> Fut,
    Fut: Future<Output = anyhow::Result<Router>>,
{
    let listener = server::bind(args.listen, "--listen").await?;
    let meters = Meters::new(&args.identity(service));
    crate::process::spawn_sampler(&meters, shutdown.clone());
    telemetry::gate::count_exports(&meters);
    let ctx = ServiceContext::new(service, args, meters, shutdown.clone())?;
    if ctx.args.agent.enabled() {
        agent::spawn(
            ctx.faults.clone(),
            Some(ctx.live.clone()),
            ctx.args.agent.clone(),
            Actuators::new(&ctx.faults, ctx.db.clone()),
            shutdown.clone(),
        );
    }
    let routes = build(ctx.clone()).await?;
    let app = ctx.app(routes);
    let address = listener.local_addr()?;
    // Ready to serve: from the next poll on, callers of a scaled service
    // may be sent here. A wildcard address names no host, so such a
    // process is called only where `--peers` says.
    if !address.ip().is_unspecified() {
        ctx.faults.serving_at(format!("http://{address}"));
    }
    tracing::info!(
        service,
        instance = %ctx.identity.instance_id,
        version = %ctx.identity.version,
        %address,
        "listening"
    );
    server::serve(app, listener, shutdown).await
}
