//! Readiness, the endpoints file, the banner and the live status line.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::plan::Plan;
use super::supervisor::Supervisor;

/// Polls every component's `/health` until all answer 200 or `timeout`.
pub async fn wait_ready(plan: &Plan, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()?;
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<_> = plan.components.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for c in pending {
            let ok =
                matches!(client.get(&c.health_url).send().await, Ok(r) if r.status().is_success());
            if !ok {
                still.push(c);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let ids: Vec<_> = pending.iter().map(|c| c.id.as_str()).collect();
            anyhow::bail!("not healthy after {timeout:?}: {}", ids.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
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

/// Writes `endpoints.json` (atomically: tests wait for it to appear).
pub fn write_endpoints(plan: &Plan, run_dir: &Path, ready_in: Duration) -> anyhow::Result<()> {
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
        components: plan
            .components
            .iter()
            .map(|c| ComponentEndpoints {
                id: &c.id,
                name: &c.name,
                health: &c.health_url,
                metrics: &c.metrics_url,
            })
            .collect(),
    };
    let tmp = run_dir.join("endpoints.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&endpoints)?)
        .context("cannot write endpoints.json")?;
    std::fs::rename(&tmp, run_dir.join("endpoints.json")).context("cannot write endpoints.json")?;
    Ok(())
}

pub fn print_banner(plan: &Plan, run_dir: &Path, ready_in: Duration) {
    println!();
    println!(
        "firedrill lab ready in {} ms ({} processes)",
        ready_in.as_millis(),
        plan.components.len()
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
    for c in &plan.components {
        println!("    {:<22} {}", c.id, c.metrics_url);
    }
    println!(
        "  run directory      {} (logs/, shop.db, endpoints.json)",
        run_dir.display()
    );
    println!("Ctrl-C stops the lab.");
    println!();
}

/// Prints a compact status line every `every` until `shutdown`.
pub async fn report_until(
    plan: &Plan,
    supervisor: &Supervisor,
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
        let mut healthy = 0;
        for c in &plan.components {
            if matches!(client.get(&c.health_url).send().await, Ok(r) if r.status().is_success()) {
                healthy += 1;
            }
        }
        let (pss, cpu) = supervisor
            .children
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
            plan.components.len(),
            supervisor.total_restarts(),
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
