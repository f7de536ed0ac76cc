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

mod args;
mod plan;
pub(crate) mod prometheus;
mod rollout;
mod roster;
mod status;
mod supervisor;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use firedrill_rundir::RunDir;
use tokio_util::sync::CancellationToken;

pub use self::args::UpArgs;
use self::supervisor::SUPERVISOR_PID_ENV;

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
            let alerting = prometheus::Alerting {
                controller: plan
                    .controller_url
                    .trim_start_matches("http://")
                    .to_string(),
                token_file: tokens.alerts_file.clone(),
            };
            let started = supervisor.roster().publish_targets(address).and_then(|()| {
                prometheus::Prometheus::start(
                    bin,
                    address,
                    args.prometheus_interval,
                    &run_dir,
                    &alerting,
                )
            });
            match started {
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
