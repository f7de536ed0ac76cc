//! Open-loop traffic generator for the firedrill shop.
//!
//! Simulated shoppers browse, search, log in, fill carts and check out
//! against the shop's public API (docs/shop-api.md), at a target rate that
//! ramps up and can spike. It measures what those users experienced and
//! serves it as Prometheus metrics and a JSON summary.
//!
//! Two properties matter more than anything else here:
//!
//! - **Open loop.** Journeys start on a seeded Poisson schedule whether or
//!   not earlier ones have finished, and latency is measured from the
//!   intended start. A closed-loop generator slows down when the shop does
//!   and so hides the very incident the learner must see (coordinated
//!   omission).
//! - **Determinism.** Everything a journey does is decided up front from
//!   `(--seed, sequence number)`, so the same seed replays the same traffic
//!   however the shop behaves.
//!
//! # Layout
//!
//! - [`plan`]: journey kinds, `--mix`, and the pure per-journey plan.
//! - [`schedule`]: the target rate over time (ramp, spike) and the arrival
//!   process and scheduler loop that follow it.
//! - `journeys`: running a plan against the shop, one task and one span each.
//! - `users`: user leases and cached tokens.
//! - `http`: one traced, timed, counted request.
//! - `metrics`, `stats`: the SLIs for Prometheus and the running summary.
//! - `endpoint`: `/metrics`, `/health`, `/api/stats`.
//! - faults: with `--controller`, a fault agent polls the controller as the
//!   services' do; a traffic-spike fault adds extra arrivals on top of the
//!   schedule ([`schedule::surge`]), optionally all on one hot product.
//! - this file: the flags, and `main`/`run`, which wire the above together.

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use firedrill_runtime::faults::Faults;
use firedrill_runtime::faults::actuators::Actuators;
use firedrill_runtime::faults::agent;
use firedrill_runtime::faults::model::LOAD_GENERATOR as AGENT_NAME;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod endpoint;
mod http;
mod journeys;
mod metrics;
pub mod plan;
pub mod schedule;
mod stats;
mod users;

use crate::endpoint::EndpointState;
use crate::journeys::{Engine, EngineConfig};
use crate::metrics::Metrics;
use crate::plan::DEFAULT_MIX;
use crate::schedule::{RateSchedule, Spike};
use crate::stats::Stats;

pub use crate::plan::{JourneyKind, Mix, MixError};
pub use crate::stats::{FailureRecord, JourneySummary, Summary, Totals};

/// The spike length when `--spike-at` is given without `--spike-for`.
const DEFAULT_SPIKE_FOR: Duration = Duration::from_secs(30);
/// The spike multiplier when `--spike-at` is given without `--spike-factor`.
const DEFAULT_SPIKE_FACTOR: f64 = 3.0;

/// Flags for `firedrill loadgen`, each with a `FIREDRILL_LOADGEN_*`
/// environment fallback.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// Base URL of the shop's public API (the gateway).
    #[arg(
        long,
        env = "FIREDRILL_LOADGEN_TARGET",
        default_value = "http://127.0.0.1:8080"
    )]
    pub target: String,

    /// Target journeys per second once ramped up.
    // allow_negative_numbers: so "--rate -3" reaches parse_rate and gets an
    // error about the rate, not "unexpected argument '-3'".
    #[arg(
        long,
        env = "FIREDRILL_LOADGEN_RATE",
        default_value_t = 5.0,
        allow_negative_numbers = true,
        value_parser = parse_rate,
    )]
    pub rate: f64,

    /// Time to go linearly from 0 to --rate (e.g. 5s, 1m; 0s for none).
    #[arg(
        long,
        env = "FIREDRILL_LOADGEN_RAMP",
        default_value = "5s",
        value_parser = humantime::parse_duration,
    )]
    pub ramp: Duration,

    /// Start a traffic spike this long after the start (e.g. 2m).
    #[arg(long, env = "FIREDRILL_LOADGEN_SPIKE_AT", value_parser = humantime::parse_duration)]
    pub spike_at: Option<Duration>,

    /// How long the spike lasts [default: 30s].
    #[arg(
        long,
        env = "FIREDRILL_LOADGEN_SPIKE_FOR",
        requires = "spike_at",
        value_parser = humantime::parse_duration,
    )]
    pub spike_for: Option<Duration>,

    /// Rate multiplier during the spike; 0 makes a silent window [default: 3].
    #[arg(
        long,
        env = "FIREDRILL_LOADGEN_SPIKE_FACTOR",
        requires = "spike_at",
        allow_negative_numbers = true,
        value_parser = parse_spike_factor,
    )]
    pub spike_factor: Option<f64>,

    /// Stop after this long (e.g. 10m); run until shutdown otherwise.
    #[arg(long, env = "FIREDRILL_LOADGEN_DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Seed for arrivals and every choice in every journey.
    #[arg(long, env = "FIREDRILL_LOADGEN_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Number of shop users to act as (user1..userN).
    #[arg(
        long,
        env = "FIREDRILL_LOADGEN_USERS",
        default_value_t = 500,
        value_parser = clap::value_parser!(u32).range(1..),
    )]
    pub users: u32,

    /// Relative weights of the journeys, as journey=weight pairs.
    #[arg(
        long,
        env = "FIREDRILL_LOADGEN_MIX",
        default_value = DEFAULT_MIX,
        value_parser = parse_mix,
    )]
    pub mix: Mix,

    /// Time limit for each request, connect to last byte.
    #[arg(
        long,
        env = "FIREDRILL_LOADGEN_REQUEST_TIMEOUT",
        default_value = "5s",
        value_parser = humantime::parse_duration,
    )]
    pub request_timeout: Duration,

    /// Journeys in flight beyond which new ones are dropped (and counted).
    #[arg(
        long,
        env = "FIREDRILL_LOADGEN_MAX_IN_FLIGHT",
        default_value_t = 2000,
        value_parser = parse_positive_usize,
    )]
    pub max_in_flight: usize,

    /// Address for /metrics, /health and /api/stats (port 0 picks one).
    #[arg(
        long,
        env = "FIREDRILL_LOADGEN_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,

    /// The fault agent's controller, token and poll interval, named as for
    /// the services, which read the same variables.
    #[command(flatten)]
    pub agent: firedrill_runtime::faults::agent::AgentConfig,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        Ok(_) => Err("must be a positive number of journeys per second".into()),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

fn parse_spike_factor(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 => Ok(f),
        Ok(_) => Err("must be a finite number >= 0".into()),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

fn parse_mix(s: &str) -> Result<Mix, String> {
    s.parse().map_err(|e: plan::MixError| e.to_string())
}

fn parse_positive_usize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(e) => Err(e.to_string()),
    }
}

// === impl LoadgenArgs ===

impl LoadgenArgs {
    /// Checks what clap cannot (or what a caller building the struct by hand
    /// may have got wrong); each error names its flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        let url = reqwest::Url::parse(&self.target)
            .with_context(|| format!("--target: '{}' is not a URL", self.target))?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https"),
            "--target: '{}' must be an http:// or https:// URL",
            self.target
        );
        parse_rate(&self.rate.to_string()).map_err(|e| anyhow::anyhow!("--rate: {e}"))?;
        if let Some(f) = self.spike_factor {
            parse_spike_factor(&f.to_string())
                .map_err(|e| anyhow::anyhow!("--spike-factor: {e}"))?;
        }
        anyhow::ensure!(self.users >= 1, "--users: must be at least 1");
        anyhow::ensure!(
            self.max_in_flight >= 1,
            "--max-in-flight: must be at least 1"
        );
        anyhow::ensure!(
            !self.request_timeout.is_zero(),
            "--request-timeout: must be longer than 0s"
        );
        Ok(())
    }

    /// The target rate over time these flags describe.
    pub fn schedule(&self) -> RateSchedule {
        let spike = self.spike_at.map(|start| Spike {
            start,
            length: self.spike_for.unwrap_or(DEFAULT_SPIKE_FOR),
            factor: self.spike_factor.unwrap_or(DEFAULT_SPIKE_FACTOR),
        });
        RateSchedule::new(self.rate, self.ramp, spike)
    }
}

/// Binds `--metrics-listen`, runs until `--duration` or `shutdown`, and
/// prints the summary.
pub async fn main(args: LoadgenArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    args.validate()?;
    let listener = TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("--metrics-listen: failed to bind {}", args.metrics_listen))?;
    let addr = listener
        .local_addr()
        .context("Failed to read the metrics listener's address")?;
    tracing::info!(
        metrics = %addr,
        target = %args.target,
        rate = args.rate,
        seed = args.seed,
        mix = %args.mix,
        "loadgen listening"
    );
    let summary = run(args, listener, shutdown).await?;
    println!("{summary}");
    Ok(())
}

/// Generates load until `--duration` has passed or `shutdown` is cancelled,
/// serving metrics on `metrics_listener`, and returns what happened.
///
/// Shutdown is staged: stop scheduling, let journeys in flight finish (for
/// up to `--request-timeout` once `shutdown` is cancelled; abandoned ones are
/// counted as dropped), take the summary, then stop the endpoint. The
/// endpoint stays up until the end so a final scrape sees final counts.
pub async fn run(
    args: LoadgenArgs,
    metrics_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Summary> {
    args.validate()?;
    let start = Instant::now();
    let metrics = Arc::new(Metrics::new());
    let stats = Arc::new(Stats::new(start));
    let client = http::ShopClient::new(&args.target, args.request_timeout, Arc::clone(&metrics))?;

    let endpoint_stop = CancellationToken::new();
    let app = endpoint::app(EndpointState {
        stats: Arc::clone(&stats),
        metrics: Arc::clone(&metrics),
    });
    let mut endpoint = tokio::spawn(
        axum::serve(metrics_listener, app)
            .with_graceful_shutdown(endpoint_stop.clone().cancelled_owned())
            .into_future(),
    );

    // The load generator's own fault agent: a traffic-spike fault reshapes
    // the load (see `schedule::surge`); process faults act here as in any
    // service.
    let faults = Faults::new(AGENT_NAME, &format!("{AGENT_NAME}-1"), args.seed);
    if args.agent.enabled() {
        // No live config here: the load generator calls no peers.
        agent::spawn(
            faults.clone(),
            None,
            args.agent.clone(),
            Actuators::new(&faults, None),
            shutdown.clone(),
        );
    }

    let engine = Engine::new(
        EngineConfig {
            seed: args.seed,
            mix: args.mix.clone(),
            users: args.users,
            max_in_flight: args.max_in_flight,
        },
        client,
        Arc::clone(&stats),
        Arc::clone(&metrics),
    );
    let rates = args.schedule();
    let stop_surge = shutdown.child_token();
    let (scheduled, surged) = tokio::join!(
        async {
            let n = schedule::drive(
                &rates,
                args.seed,
                start,
                args.duration,
                &shutdown,
                |rate| metrics.set_target_rate(rate),
                |seq, intended| engine.launch(seq, intended),
            )
            .await;
            stop_surge.cancel();
            n
        },
        schedule::surge(
            &rates,
            args.seed,
            start,
            &stop_surge,
            || faults.traffic_spike(),
            |seq, intended, spike| engine.launch_surge(seq, intended, spike),
        ),
    );
    metrics.set_target_rate(0.0);
    tracing::info!(
        scheduled,
        extra = surged,
        in_flight = stats.in_flight(),
        "loadgen stopped scheduling; draining"
    );

    engine.close();
    let grace = args.request_timeout;
    tokio::select! {
        _ = engine.drained() => {}
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        } => {
            engine.abandon();
            engine.drained().await;
        }
    }
    let summary = stats.summary();

    endpoint_stop.cancel();
    // A scraper holding a connection open must not hold up the exit.
    match tokio::time::timeout(Duration::from_secs(1), &mut endpoint).await {
        Ok(joined) => joined
            .context("The metrics endpoint task failed")?
            .context("The metrics endpoint failed")?,
        Err(_) => endpoint.abort(),
    }
    tracing::info!(
        success = summary.totals.success,
        failure = summary.totals.failure,
        dropped = summary.totals.dropped,
        "loadgen finished"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: LoadgenArgs,
    }

    fn parse(flags: &[&str]) -> Result<LoadgenArgs, String> {
        let argv = std::iter::once("loadgen").chain(flags.iter().copied());
        Cli::try_parse_from(argv)
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_documentation() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.target, "http://127.0.0.1:8080");
        assert_eq!(a.rate, 5.0);
        assert_eq!(a.ramp, Duration::from_secs(5));
        assert_eq!(a.spike_at, None);
        assert_eq!(a.duration, None);
        assert_eq!(a.seed, 1);
        assert_eq!(a.users, 500);
        assert_eq!(a.mix, Mix::default());
        assert_eq!(a.request_timeout, Duration::from_secs(5));
        assert_eq!(a.max_in_flight, 2000);
        assert_eq!(a.metrics_listen, "127.0.0.1:9464".parse().unwrap());
        a.validate().unwrap();
    }

    #[test]
    fn bad_flags_are_errors_that_name_the_flag() {
        for (flags, flag, why) in [
            (&["--rate", "0"][..], "--rate", "positive"),
            (&["--rate", "-3"], "--rate", "positive"),
            (&["--rate", "fast"], "--rate", "not a number"),
            (
                &["--mix", "browse=1,teleport=2"],
                "--mix",
                "unknown journey 'teleport'",
            ),
            (
                &["--mix", "browse=0,search=0"],
                "--mix",
                "all weights are zero",
            ),
            (&["--users", "0"], "--users", "0"),
            (&["--max-in-flight", "0"], "--max-in-flight", "at least 1"),
            (&["--ramp", "soon"], "--ramp", "soon"),
            (
                &["--spike-at", "1m", "--spike-factor", "-1"],
                "--spike-factor",
                ">= 0",
            ),
        ] {
            let err = parse(flags).unwrap_err();
            assert!(err.contains(flag) && err.contains(why), "{flags:?}: {err}");
        }
        let err = parse(&["--spike-for", "10s"]).unwrap_err();
        assert!(err.contains("--spike-at"), "{err}");
    }

    #[test]
    fn validate_catches_hand_built_args() {
        let good = parse(&[]).unwrap();
        let check = |f: &dyn Fn(&mut LoadgenArgs), flag: &str| {
            let mut a = good.clone();
            f(&mut a);
            let err = a.validate().unwrap_err().to_string();
            assert!(err.starts_with(flag), "{err}");
        };
        check(&|a| a.rate = 0.0, "--rate");
        check(&|a| a.rate = f64::NAN, "--rate");
        check(&|a| a.target = "localhost:8080".into(), "--target");
        check(&|a| a.target = "not a url".into(), "--target");
        check(&|a| a.request_timeout = Duration::ZERO, "--request-timeout");
        check(&|a| a.max_in_flight = 0, "--max-in-flight");
    }

    #[test]
    fn spike_flags_build_the_schedule() {
        let a = parse(&["--rate", "10", "--ramp", "0s", "--spike-at", "1m"]).unwrap();
        let s = a.schedule();
        assert_eq!(s.rate_at(59.0), 10.0);
        assert_eq!(s.rate_at(60.0), 30.0);
        assert_eq!(s.rate_at(90.0), 10.0);
        let a = parse(&[
            "--rate",
            "10",
            "--spike-at",
            "1m",
            "--spike-for",
            "5s",
            "--spike-factor",
            "0.5",
        ])
        .unwrap();
        let s = a.schedule();
        assert_eq!(s.rate_at(62.0), 5.0);
        assert_eq!(s.rate_at(65.0), 10.0);
    }

    #[tokio::test]
    async fn main_names_the_flag_when_the_listener_cannot_bind() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut a = parse(&["--duration", "0s"]).unwrap();
        a.metrics_listen = taken.local_addr().unwrap();
        let err = main(a, CancellationToken::new()).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--metrics-listen: failed to bind 127.0.0.1:"),
            "{err}"
        );
    }
}
