//! The lab's current processes, readiness, the endpoints file, the banner
//! and the live status line.
//!
//! [`Roster`] is the one list of the processes that run now — the planned
//! ones plus those a scale-out added, minus those a scale-in removed —
//! kept by the supervisor and read by everything else. It also owns the
//! two files that publish that list: `<run>/endpoints.json` (from the
//! moment the lab is first ready) and Prometheus' target file (from the
//! moment Prometheus starts). Both are rewritten, atomically, on every
//! change, under the roster's lock, so a change never overtakes the first
//! write and an older list never overwrites a newer one.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use firedrill_rundir::RunDir;
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::plan::{Component, Plan};
use super::supervisor::ChildState;

/// The processes of the lab as they are now, in plan order (a service's
/// scaled instances after its planned ones), and the files that list them.
pub struct Roster {
    plan: Plan,
    run_dir: RunDir,
    inner: Mutex<Members>,
}

struct Members {
    list: Vec<(Component, Arc<ChildState>)>,
    /// When the lab first became ready: set once `endpoints.json` is
    /// written; from then on every change rewrites it.
    ready_in: Option<Duration>,
    /// Prometheus' own address, once it runs: from then on every change
    /// rewrites its target file.
    prometheus: Option<String>,
}

impl Roster {
    pub fn new(plan: &Plan, run_dir: &RunDir) -> Roster {
        Roster {
            plan: plan.clone(),
            run_dir: run_dir.clone(),
            inner: Mutex::new(Members {
                list: Vec::new(),
                ready_in: None,
                prometheus: None,
            }),
        }
    }

    /// Lists a started process: after the last one of its service, else at
    /// the end.
    pub fn add(&self, component: Component, state: Arc<ChildState>) {
        let mut members = self.inner.lock();
        let at = members
            .list
            .iter()
            .rposition(|(c, _)| c.name == component.name)
            .map_or(members.list.len(), |i| i + 1);
        members.list.insert(at, (component, state));
        self.republish(&members);
    }

    /// Unlists a process that leaves the lab.
    pub fn remove(&self, id: &str) {
        let mut members = self.inner.lock();
        members.list.retain(|(c, _)| c.id != id);
        self.republish(&members);
    }

    pub fn components(&self) -> Vec<Component> {
        self.inner
            .lock()
            .list
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// What the supervisor knows about each current process.
    pub fn children(&self) -> Vec<Arc<ChildState>> {
        self.inner
            .lock()
            .list
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Crash restarts of the current processes.
    pub fn total_restarts(&self) -> u32 {
        self.inner
            .lock()
            .list
            .iter()
            .map(|(_, s)| s.restarts.load(Ordering::Relaxed))
            .sum()
    }

    /// The first process that has crashed at least `times` times, with its
    /// last exit and the end of its log: a component that cannot stay up.
    pub fn crash_looping(&self, times: u32) -> Option<String> {
        let members = self.inner.lock();
        let (component, state) = members
            .list
            .iter()
            .find(|(_, s)| s.restarts.load(Ordering::Relaxed) >= times)?;
        let exit = state.last_exit.lock().clone().unwrap_or_default();
        let log = component
            .private_log
            .clone()
            .unwrap_or_else(|| self.run_dir.log_file(&component.id));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        Some(format!(
            "{} cannot stay up: it exited {} times ({exit}); the end of {}:\n  {}",
            component.id,
            state.restarts.load(Ordering::Relaxed),
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
        ))
    }

    /// The lab is ready: writes `endpoints.json` now, and on every change
    /// from now on (`ready_in` stays the first readiness).
    pub fn publish_endpoints(&self, ready_in: Duration) -> anyhow::Result<()> {
        let mut members = self.inner.lock();
        members.ready_in.get_or_insert(ready_in);
        self.publish(&members)
    }

    /// Prometheus starts at `address`: writes its target file now, and on
    /// every change from now on.
    pub fn publish_targets(&self, address: &str) -> anyhow::Result<()> {
        let mut members = self.inner.lock();
        members.prometheus = Some(address.to_string());
        self.publish(&members)
    }

    /// After a change: a file that cannot be rewritten is reported, and the
    /// next change tries again.
    fn republish(&self, members: &Members) {
        if let Err(e) = self.publish(members) {
            tracing::warn!(error = %format!("{e:#}"), "cannot rewrite the lab's endpoint files");
        }
    }

    /// Writes every file published so far from `members`: the one place
    /// both files are rendered, always under the roster's lock.
    fn publish(&self, members: &Members) -> anyhow::Result<()> {
        let components: Vec<Component> = members.list.iter().map(|(c, _)| c.clone()).collect();
        if let Some(ready_in) = members.ready_in {
            write_endpoints(&self.plan, &components, &self.run_dir, ready_in)?;
        }
        if let Some(address) = &members.prometheus {
            super::prometheus::write_targets(&self.run_dir, &components, address)?;
        }
        Ok(())
    }
}

/// How many crashes while the lab starts mean a component cannot stay up.
const CRASHES_AT_START: u32 = 3;

/// Polls every current component's `/health` until all have answered 200
/// once, or `timeout`. The list is read anew each round, so an instance
/// scaled in before the lab was ready is not waited for.
pub async fn wait_ready(roster: &Roster, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()?;
    let deadline = Instant::now() + timeout;
    let mut healthy: HashSet<String> = HashSet::new();
    loop {
        let mut pending = Vec::new();
        for c in roster.components() {
            if healthy.contains(&c.id) {
                continue;
            }
            let ok =
                matches!(client.get(&c.health_url).send().await, Ok(r) if r.status().is_success());
            if ok {
                healthy.insert(c.id);
            } else {
                pending.push(c.id);
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        // A component that keeps crashing will not become ready: say so
        // now, with why, rather than at the timeout.
        if let Some(why) = roster.crash_looping(CRASHES_AT_START) {
            anyhow::bail!("{why}");
        }
        if Instant::now() >= deadline {
            anyhow::bail!("not healthy after {timeout:?}: {}", pending.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Serialize)]
struct Endpoints<'a> {
    gateway: &'a str,
    query: &'a str,
    otlp_grpc: &'a str,
    otlp_http: &'a str,
    loadgen: Option<&'a str>,
    controller: &'a str,
    instructor_token_file: &'a str,
    prometheus: Option<&'a str>,
    database: &'a str,
    ready_ms: u128,
    components: Vec<ComponentEndpoints<'a>>,
}

#[derive(Serialize)]
struct ComponentEndpoints<'a> {
    id: &'a str,
    name: &'a str,
    health: &'a str,
    metrics: &'a str,
}

/// Writes `endpoints.json` listing `components` (atomically: tests wait for
/// it to appear, and read it again after a scale). Only the [`Roster`]
/// calls this.
fn write_endpoints(
    plan: &Plan,
    components: &[Component],
    run_dir: &RunDir,
    ready_in: Duration,
) -> anyhow::Result<()> {
    let endpoints = Endpoints {
        gateway: &plan.gateway_url,
        query: &plan.query_url,
        otlp_grpc: &plan.otlp_grpc,
        otlp_http: &plan.otlp_http,
        loadgen: plan.loadgen_url.as_deref(),
        controller: &plan.controller_url,
        instructor_token_file: &plan.instructor_token_file,
        prometheus: plan.prometheus_url.as_deref(),
        database: &plan.database,
        ready_ms: ready_in.as_millis(),
        components: components
            .iter()
            .map(|c| ComponentEndpoints {
                id: &c.id,
                name: &c.name,
                health: &c.health_url,
                metrics: &c.metrics_url,
            })
            .collect(),
    };
    let path = run_dir.endpoints();
    firedrill_rundir::replace_whole(&path, &serde_json::to_vec_pretty(&endpoints)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn print_banner(plan: &Plan, roster: &Roster, run_dir: &RunDir, ready_in: Duration) {
    let components = roster.components();
    println!();
    println!(
        "firedrill lab ready in {} ms ({} processes)",
        ready_in.as_millis(),
        components.len()
    );
    println!("  shop (gateway)     {}/api/products", plan.gateway_url);
    println!(
        "  traces & logs      {}/api/traces?service=gateway  {}/api/logs",
        plan.query_url, plan.query_url
    );
    println!(
        "  OTLP               gRPC {}   HTTP {}",
        plan.otlp_grpc, plan.otlp_http
    );
    if let Some(loadgen) = &plan.loadgen_url {
        println!("  load generator     {loadgen}/api/stats");
    }
    println!(
        "  fault controller   {}/openapi.json   (instructor token in {})",
        plan.controller_url, plan.instructor_token_file
    );
    match &plan.prometheus_url {
        Some(url) => println!("  prometheus         {url}  (alerts: {url}/alerts)"),
        None => println!("  prometheus         {}", super::prometheus::HINT),
    }
    println!("  metrics (/metrics):");
    for c in &components {
        println!("    {:<22} {}", c.id, c.metrics_url);
    }
    println!(
        "  run directory      {} (logs/, shop.db, endpoints.json, learner-token)",
        run_dir.root().display()
    );
    println!("Ctrl-C stops the lab.");
    println!();
}

/// Prints a compact status line every `every` until `shutdown`: how many of
/// the current processes (scaled instances included) are healthy, their
/// crash restarts, memory and CPU.
pub async fn report_until(
    plan: &Plan,
    roster: &Roster,
    every: Duration,
    shutdown: CancellationToken,
) {
    if every.is_zero() {
        shutdown.cancelled().await;
        return;
    }
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
    {
        Ok(c) => c,
        Err(_) => return shutdown.cancelled().await,
    };
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let components = roster.components();
        let mut healthy = 0;
        for c in &components {
            if matches!(client.get(&c.health_url).send().await, Ok(r) if r.status().is_success()) {
                healthy += 1;
            }
        }
        let (pss, cpu) = roster
            .children()
            .iter()
            .fold((0u64, 0f64), |(pss, cpu), c| {
                let pid = c.pid.load(Ordering::Relaxed);
                let used = firedrill_runtime::process::usage_of(pid).map_or(0.0, |u| u.cpu_seconds);
                let memory = firedrill_runtime::process::pss_of(pid).unwrap_or(0);
                (pss + memory, cpu + used)
            });
        let load = match &plan.loadgen_url {
            Some(url) => loadgen_summary(&client, url)
                .await
                .unwrap_or_else(|| "loadgen n/a".into()),
            None => "no load".into(),
        };
        println!(
            "[{:>5}s] {healthy}/{} healthy | restarts {} | memory {} MiB (PSS) | CPU {:.1}s total | {load}",
            started.elapsed().as_secs(),
            components.len(),
            roster.total_restarts(),
            pss / (1024 * 1024),
            cpu,
        );
    }
}

async fn loadgen_summary(client: &reqwest::Client, url: &str) -> Option<String> {
    let stats: serde_json::Value = client
        .get(format!("{url}/api/stats"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let ratio = stats.get("success_ratio")?.as_f64()?;
    Some(format!("journeys ok {:.2}%", ratio * 100.0))
}
