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
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use firedrill_rundir::RunDir;
use tokio_util::sync::CancellationToken;

use super::plan::Plan;
use super::roster::Roster;

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
