//! How the collector's parts are wired, started and stopped.
//!
//! ```text
//!  OTLP/gRPC ─► receivers::grpc ─┐                      ┌─► Store ◄──────┐
//!                                ├─► Ingest ═► Pipeline ─┼─► Derived ◄────┼─ query (Jaeger API,
//!  OTLP/HTTP ─► receivers::http ─┘   (admit)   (thread)  └─► Exporters ─► downstream  logs, /metrics)
//! ```
//!
//! `═►` is the bounded ingest queue: the only place exports wait.
//!
//! Shutdown is staged, each stage with a deadline (rotel's shape):
//! 1. receivers stop accepting and finish in-flight exports, so nothing new
//!    arrives while the rest winds down;
//! 2. the pipeline works through its queue, so every accepted item reaches
//!    the store and the exporters (anything left at the deadline is
//!    counted as dropped);
//! 3. the exporters send what they hold, then drop and count the rest;
//! 4. the query server stops last, so telemetry stays queryable until the
//!    very end.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, anyhow};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{CollectorArgs, CollectorConfig},
    derived::{Derived, DerivedLimits},
    exporters::Exporters,
    ingest::Ingest,
    memory::MemoryGuard,
    model::now_unix_nano,
    pipeline::{Pipeline, Sinks},
    query::{self, QueryState},
    receivers::{grpc, http},
    self_metrics::SelfMetrics,
    store::Store,
};

/// How often half edges of the service graph are checked for expiry when
/// no spans arrive to trigger it.
const DERIVED_TICK: Duration = Duration::from_secs(1);

/// The three bound sockets. Binding happens before `run` so tests can bind
/// port 0 and read the real ports, and so a bind failure is reported before
/// anything starts.
#[derive(Debug)]
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
    pub query: TcpListener,
}

/// A listen address that could not be bound, named by its flag.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address} ({flag}): {}", describe(.error))]
pub struct BindError {
    pub flag: &'static str,
    pub address: String,
    pub error: io::Error,
}

/// The common failures in words an operator recognises; the rest as the OS
/// says them.
fn describe(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "address not available on this host".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

impl Listeners {
    pub async fn bind(args: &CollectorArgs) -> Result<Self, BindError> {
        Ok(Self {
            grpc: bind("--otlp-grpc-listen", &args.otlp_grpc_listen).await?,
            http: bind("--otlp-http-listen", &args.otlp_http_listen).await?,
            query: bind("--query-listen", &args.query_listen).await?,
        })
    }

    /// The actual addresses (with the real port when 0 was asked for):
    /// gRPC, HTTP, query.
    pub fn local_addrs(&self) -> io::Result<[SocketAddr; 3]> {
        Ok([
            self.grpc.local_addr()?,
            self.http.local_addr()?,
            self.query.local_addr()?,
        ])
    }
}

async fn bind(flag: &'static str, address: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(address).await.map_err(|error| BindError {
        flag,
        address: address.to_owned(),
        error,
    })
}

/// Entry point for `firedrill collector`: bind, announce, run.
pub async fn main(args: CollectorArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = CollectorConfig::from_args(&args).map_err(|e| anyhow!(e))?;
    let listeners = Listeners::bind(&args).await?;
    let [grpc, http, query] = listeners
        .local_addrs()
        .context("cannot read the bound addresses")?;
    tracing::info!(otlp_grpc = %grpc, otlp_http = %http, query = %query, "collector listening");
    run(config, listeners, shutdown).await
}

/// What a server task reports when it ends: its name and how it ended.
type TaskExit = (&'static str, anyhow::Result<()>);

/// Runs the collector until `shutdown` fires (or a server fails), then
/// stops it in stages. Returns the first failure, if any.
pub async fn run(
    config: CollectorConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = Arc::new(Store::new(config.capacities()));
    let metrics = Arc::new(SelfMetrics::new());
    let derived = Arc::new(Derived::new(DerivedLimits::default()));
    let memory = MemoryGuard::new(config.memory_limit);
    let (exporters, exporter_tasks) =
        Exporters::start(&config.forward, config.queue_bytes, &metrics)?;
    let sinks = Sinks {
        store: Arc::clone(&store),
        derived: Arc::clone(&derived),
        exporters,
        metrics: Arc::clone(&metrics),
    };
    let pipeline =
        Pipeline::start(config.queue_bytes, sinks).context("cannot start the pipeline thread")?;
    let ingest = Arc::new(Ingest::new(
        pipeline.sender(),
        Arc::clone(&memory),
        Arc::clone(&metrics),
    ));

    // Background chores stop with the query server, after everything else.
    let chores_stop = CancellationToken::new();
    tokio::spawn(Arc::clone(&memory).watch(chores_stop.clone()));
    tokio::spawn(tick_derived(Arc::clone(&derived), chores_stop.clone()));

    // Separate tokens, not children of `shutdown`: the stages must stop in
    // order, not all at once when the root token fires.
    let receivers_stop = CancellationToken::new();
    let query_stop = CancellationToken::new();

    let mut receivers = JoinSet::new();
    let grpc = grpc::serve(
        listeners.grpc,
        Arc::clone(&ingest),
        config.max_body_bytes,
        receivers_stop.clone(),
    );
    receivers.spawn(task("OTLP/gRPC receiver", grpc));
    let http = http::serve(
        listeners.http,
        ingest,
        config.max_body_bytes,
        receivers_stop.clone(),
    );
    receivers.spawn(task("OTLP/HTTP receiver", http));
    let state = QueryState {
        store,
        metrics,
        derived,
        queue: pipeline.sender().gauge(),
        memory,
    };
    let mut query = tokio::spawn(task(
        "query server",
        query::serve(listeners.query, state, query_stop.clone()),
    ));

    let mut query_done = false;
    let early_exit = tokio::select! {
        () = shutdown.cancelled() => None,
        Some(joined) = receivers.join_next() => Some(joined_exit(joined)),
        joined = &mut query => {
            query_done = true;
            Some(joined_exit(joined))
        }
    };
    let mut failure = early_exit.map(unexpected_stop);

    receivers_stop.cancel();
    note_failure(
        &mut failure,
        drain(&mut receivers, config.shutdown_grace).await,
    );
    if !pipeline.drain(config.shutdown_grace).await {
        tracing::warn!(grace = ?config.shutdown_grace, "pipeline did not drain in time; the rest is counted as dropped");
    }
    if !exporter_tasks.flush(config.shutdown_grace).await {
        tracing::warn!(grace = ?config.shutdown_grace, "exporters did not flush in time; the rest is counted as dropped");
    }

    chores_stop.cancel();
    if !query_done {
        query_stop.cancel();
        let exit = stop_task(&mut query, config.shutdown_grace).await;
        note_failure(&mut failure, exit);
    }
    tracing::info!("collector stopped");
    failure.map_or(Ok(()), Err)
}

async fn tick_derived(derived: Arc<Derived>, stop: CancellationToken) {
    let mut every = tokio::time::interval(DERIVED_TICK);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => derived.tick(now_unix_nano()),
        }
    }
}

/// Names a server future and turns its error into `anyhow`.
async fn task<E>(name: &'static str, server: impl Future<Output = Result<(), E>>) -> TaskExit
where
    E: std::error::Error + Send + Sync + 'static,
{
    (name, server.await.with_context(|| format!("{name} failed")))
}

fn joined_exit(joined: Result<TaskExit, tokio::task::JoinError>) -> TaskExit {
    joined.unwrap_or_else(|e| ("server task", Err(anyhow!("a server task panicked: {e}"))))
}

/// A server that ends before shutdown was asked for is a failure even when
/// it ended "successfully": the collector is no longer doing its job.
fn unexpected_stop((name, result): TaskExit) -> anyhow::Error {
    result
        .err()
        .unwrap_or_else(|| anyhow!("{name} stopped before shutdown was requested"))
}

fn note_failure(failure: &mut Option<anyhow::Error>, result: anyhow::Result<()>) {
    if let Err(error) = result {
        tracing::error!(
            error = format!("{error:#}"),
            "collector shutdown step failed"
        );
        failure.get_or_insert(error);
    }
}

/// Waits for every receiver to stop, aborting stragglers at the deadline.
async fn drain(tasks: &mut JoinSet<TaskExit>, grace: Duration) -> anyhow::Result<()> {
    let mut first_error = None;
    let all_done = tokio::time::timeout(grace, async {
        while let Some(joined) = tasks.join_next().await {
            if let (_, Err(error)) = joined_exit(joined) {
                first_error.get_or_insert(error);
            }
        }
    })
    .await;
    if all_done.is_err() {
        tracing::warn!(grace = ?grace, "receivers did not stop in time; aborting them");
        tasks.abort_all();
    }
    first_error.map_or(Ok(()), Err)
}

async fn stop_task(
    task: &mut tokio::task::JoinHandle<TaskExit>,
    grace: Duration,
) -> anyhow::Result<()> {
    match tokio::time::timeout(grace, &mut *task).await {
        Ok(joined) => joined_exit(joined).1,
        Err(_) => {
            tracing::warn!(grace = ?grace, "query server did not stop in time; aborting it");
            task.abort();
            Ok(())
        }
    }
}
