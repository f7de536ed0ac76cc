//! `firedrill up`: the lab on one machine, no containers.
//!
//! [`plan`] decides which processes run on which ports with which flags;
//! [`supervisor`] starts each as `firedrill <role>` and restarts the ones
//! that die, with backoff, as an orchestrator would, and keeps each
//! service at the instance count and versions the controller declares in
//! the run directory (`replicas/`, `versions/`); [`status`] keeps the list
//! of the processes that run now (the roster), waits for health, writes
//! `endpoints.json` into the run directory (again whenever a scale changes
//! the list) and prints a compact live status; [`prometheus`] runs a
//! Prometheus beside the lab, its targets kept current by the roster.
//! Ctrl-C or SIGTERM stops every child cleanly.

mod plan;
mod prometheus;
mod status;
mod supervisor;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use firedrill_rundir::RunDir;
use tokio_util::sync::CancellationToken;

/// Environment variable through which children learn the supervisor's pid.
const SUPERVISOR_PID_ENV: &str = "FIREDRILL_SUPERVISOR_PID";

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Directory for this run's database, logs and endpoints.json
    /// (default: .firedrill/runs/<timestamp>).
    #[arg(long, env = "FIREDRILL_RUN_DIR")]
    pub run_dir: Option<PathBuf>,

    /// Interface every process listens on.
    #[arg(long, env = "FIREDRILL_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,

    /// The shop's public port.
    #[arg(long, env = "FIREDRILL_GATEWAY_PORT", default_value_t = 8080)]
    pub gateway_port: u16,

    /// Collector OTLP/gRPC port.
    #[arg(long, env = "FIREDRILL_OTLP_GRPC_PORT", default_value_t = 4317)]
    pub otlp_grpc_port: u16,

    /// Collector OTLP/HTTP port.
    #[arg(long, env = "FIREDRILL_OTLP_HTTP_PORT", default_value_t = 4318)]
    pub otlp_http_port: u16,

    /// Collector query API (Jaeger-compatible) port.
    #[arg(long, env = "FIREDRILL_QUERY_PORT", default_value_t = 16686)]
    pub query_port: u16,

    /// Fault controller API port.
    #[arg(long, env = "FIREDRILL_CONTROLLER_PORT", default_value_t = 7070)]
    pub controller_port: u16,

    /// Token that unlocks faults and scenarios; generated when not given,
    /// and written to `<run dir>/instructor/instructor-token`.
    #[arg(long, env = "FIREDRILL_INSTRUCTOR_TOKEN", hide_env_values = true)]
    pub instructor_token: Option<String>,

    /// The name the lab's own learner (the token in `<run dir>/learner-token`)
    /// acts under.
    #[arg(long, env = "FIREDRILL_LEARNER_NAME", default_value = "learner")]
    pub learner_name: String,

    /// A directory of scenario files to play instead of the catalogue built
    /// into firedrill (a file with a problem is reported and left out).
    #[arg(long, env = "FIREDRILL_SCENARIOS")]
    pub scenarios: Option<PathBuf>,

    /// How long faults outlive the controller (the lease agents get).
    #[arg(long, env = "FIREDRILL_FAULT_LEASE", value_parser = humantime::parse_duration, default_value = "5s")]
    pub fault_lease: Duration,

    /// First port of the internal services (one port per instance, counting
    /// up). 0 = pick free ports for everything, including the ports above
    /// (what tests use).
    #[arg(long, env = "FIREDRILL_BASE_PORT", default_value_t = 7100)]
    pub base_port: u16,

    /// Instances per service, e.g. `catalog=2,payment=2,auth=2`.
    #[arg(
        long,
        env = "FIREDRILL_INSTANCES",
        default_value = "auth=2,catalog=2,payment=2"
    )]
    pub instances: String,

    /// Load generator rate in journeys per second; 0 disables it.
    #[arg(long, env = "FIREDRILL_LOAD_RATE", default_value_t = 5.0)]
    pub load_rate: f64,

    /// Seed for the load generator and every service's random choices.
    #[arg(long, env = "FIREDRILL_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Export telemetry over OTLP to the collector (off: measure overhead).
    #[arg(long, env = "FIREDRILL_TELEMETRY_EXPORT", default_value_t = true, action = clap::ArgAction::Set)]
    pub telemetry_export: bool,

    /// OTLP transport the services use.
    #[arg(
        long,
        env = "FIREDRILL_OTLP_PROTOCOL",
        value_enum,
        default_value = "grpc"
    )]
    pub otlp_protocol: firedrill_runtime::config::OtlpProtocol,

    /// How long to wait for every process to report healthy.
    #[arg(long, env = "FIREDRILL_READY_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub ready_timeout: Duration,

    /// Prometheus beside the lab: `auto` (the `prometheus` on PATH, if any),
    /// `off`, or a path to the binary. Config and rules: deploy/prometheus.
    #[arg(long, env = "FIREDRILL_PROMETHEUS", default_value = "auto")]
    pub prometheus: String,

    /// Prometheus port.
    #[arg(long, env = "FIREDRILL_PROMETHEUS_PORT", default_value_t = 9090)]
    pub prometheus_port: u16,

    /// Prometheus scrape and rule evaluation interval.
    #[arg(long, env = "FIREDRILL_PROMETHEUS_INTERVAL", value_parser = humantime::parse_duration, default_value = "15s")]
    pub prometheus_interval: Duration,

    /// How long an instance replaced by a rollout must stay healthy at its
    /// new version before the next is replaced (Kubernetes'
    /// `minReadySeconds`). Longer than a crashing release takes to fall
    /// over, so such a rollout stops at its first instance.
    #[arg(long, env = "FIREDRILL_ROLLOUT_MIN_READY", value_parser = humantime::parse_duration, default_value = "3s")]
    pub rollout_min_ready: Duration,

    /// How often to print the live status line (0s: never).
    #[arg(long, env = "FIREDRILL_STATUS_EVERY", value_parser = humantime::parse_duration, default_value = "10s")]
    pub status_every: Duration,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    firedrill_runtime::telemetry::init_local_log("info");
    let started = Instant::now();
    let shutdown = firedrill_runtime::shutdown::on_signal();
    let run_dir = RunDir::create(args.run_dir.clone().unwrap_or_else(default_run_dir))?;
    let tokens = plan::Tokens::for_run(&args, &run_dir)?;
    let plan = plan::Plan::new(&args, &run_dir, &tokens)?;
    let exe = std::env::current_exe().context("cannot find the firedrill executable")?;

    let supervisor = supervisor::Supervisor::start(
        &exe,
        &plan,
        &run_dir,
        args.rollout_min_ready,
        shutdown.clone(),
    )?;
    let mut prometheus = match (&plan.prometheus_bin, &plan.prometheus_url) {
        (Some(bin), Some(url)) => {
            let address = url.trim_start_matches("http://");
            match prometheus::Prometheus::start(
                bin,
                supervisor.roster(),
                address,
                args.prometheus_interval,
                &run_dir,
            ) {
                Ok(p) => Some(p),
                Err(err) => {
                    supervisor.stop().await;
                    return Err(err);
                }
            }
        }
        _ => None,
    };
    let ready = tokio::select! {
        r = async {
            status::wait_ready(supervisor.roster(), args.ready_timeout).await?;
            match prometheus.as_mut() {
                Some(p) => p.wait_ready(args.ready_timeout).await,
                None => Ok(()),
            }
        } => r,
        _ = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted before the lab was ready")),
    };
    if let Err(err) = ready {
        supervisor.stop().await;
        if let Some(p) = prometheus {
            p.stop().await;
        }
        return Err(err.context(format!(
            "the lab did not become ready; see the logs in {}",
            run_dir.logs().display()
        )));
    }
    let ready_in = started.elapsed();
    // From now on the roster rewrites endpoints.json whenever a scale
    // changes the lab's processes.
    supervisor.roster().publish_endpoints(ready_in)?;
    status::print_banner(&plan, supervisor.roster(), &run_dir, ready_in);

    status::report_until(
        &plan,
        supervisor.roster(),
        args.status_every,
        shutdown.clone(),
    )
    .await;
    println!("stopping the lab...");
    supervisor.stop().await;
    if let Some(p) = prometheus {
        p.stop().await;
    }
    println!("stopped.");
    Ok(())
}

/// `.firedrill/runs/<unix time>` under the working directory.
fn default_run_dir() -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    PathBuf::from(".firedrill")
        .join("runs")
        .join(stamp.to_string())
}

/// In a child of `up`: stop when the supervisor goes away, even if it was
/// killed without a chance to stop its children (SIGKILL, OOM killer).
pub fn watch_supervisor(shutdown: CancellationToken) {
    let Some(pid) = std::env::var(SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if std::os::unix::process::parent_id() != pid {
                tracing::warn!("supervisor {pid} is gone; shutting down");
                shutdown.cancel();
                return;
            }
        }
    });
}
