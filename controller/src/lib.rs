//! The firedrill fault controller: owns the desired fault state, plays
//! scenarios, and performs the mitigation ops learners use to end incidents.
//!
//! # Layout
//!
//! - `api`: the HTTP API (`/openapi.json` describes it) and its three
//!   audiences: instructor, fault agent, learner.
//! - `state`: faults, the running scenario, the ops log, each service's
//!   versioned live config and the drained instances, persisted after every
//!   change so a restart keeps them.
//! - `scenario`: scenario files (`scenarios/*.toml`) and their validation.
//! - `ops`: what each mitigation verb does to the live lab.
//! - `deploys`: the deploy history, the version files `firedrill up`'s
//!   supervisor rolls out, and scenario deploy steps.
//! - `replicas`: how many instances each scaled service should run (the
//!   files `firedrill up`'s supervisor acts on).
//! - `openapi`: the API description.
//!
//! # Invariants
//!
//! - The controller never pushes: agents poll and receive a lease. If the
//!   controller stops, every fault lapses within one lease (see
//!   `firedrill_runtime::faults`).
//! - Scenario timelines are computed from the scenario's start time on every
//!   poll, never from timers, so a restart resumes them exactly.
//! - Only the instructor token reveals or changes faults and scenarios.
//! - Config versions only grow, per service, and survive a restart: a
//!   change (an op, a config push starting or ending) becomes the next
//!   version when it is made or when an agent next asks.

mod api;
pub mod deploys;
mod openapi;
pub mod ops;
pub mod replicas;
pub mod scenario;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use firedrill_runtime::AppError;
use firedrill_runtime::config::Identity;
use firedrill_runtime::metrics::{Counter, Meters};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::scenario::Scenario;
use crate::state::State;

pub use crate::openapi::DOCUMENT as OPENAPI;

/// Flags of `firedrill controller`.
#[derive(clap::Args, Clone, Debug)]
pub struct ControllerArgs {
    /// Address of the controller API.
    #[arg(
        long,
        env = "FIREDRILL_CONTROLLER_LISTEN",
        default_value = "127.0.0.1:7070"
    )]
    pub listen: SocketAddr,

    /// Token that unlocks faults and scenarios.
    #[arg(long, env = "FIREDRILL_INSTRUCTOR_TOKEN", hide_env_values = true)]
    pub instructor_token: String,

    /// Token the fault agents present.
    #[arg(long, env = "FIREDRILL_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: String,

    /// How long agents keep applying faults without hearing from the
    /// controller.
    #[arg(long, env = "FIREDRILL_FAULT_LEASE", value_parser = humantime::parse_duration, default_value = "5s")]
    pub lease: Duration,

    /// Where the controller keeps its state (created if missing).
    #[arg(
        long,
        env = "FIREDRILL_CONTROLLER_STATE",
        default_value = "firedrill-controller"
    )]
    pub state_dir: PathBuf,

    /// Directory of scenario files.
    #[arg(long, env = "FIREDRILL_SCENARIOS", default_value = "scenarios")]
    pub scenarios: PathBuf,

    /// The lab's run directory (pid files), for ops that restart processes;
    /// without it those ops are recorded but cannot act.
    #[arg(long, env = "FIREDRILL_RUN_DIR")]
    pub run_dir: Option<PathBuf>,

    /// The lab's processes as the services get them (`name=url[,url...]`
    /// separated by `;`): which instances a drain may name, and where the
    /// queue is for the dead-letter ops. Empty: drains are not checked and
    /// dead-letter ops are recorded but cannot act.
    #[arg(long, env = "FIREDRILL_PEERS", default_value = "")]
    pub peers: String,
}

/// The controller's shared state.
pub struct Controller {
    pub config: ControllerArgs,
    pub scenarios: Vec<Scenario>,
    pub state: Mutex<State>,
    /// `/metrics`: what learners did and how often agents asked; never
    /// which faults are active.
    meters: Meters,
    ops: Counter,
    agent_polls: Counter,
    state_file: PathBuf,
    /// Service name → instance URLs, from `--peers`.
    pub peers: std::collections::BTreeMap<String, Vec<String>>,
    /// Where callers of a scaled service are sent (`replicas::endpoints`).
    pub serving: Mutex<replicas::Serving>,
    /// For ops that call a service (the queue's dead letters).
    http: reqwest::Client,
}

impl Controller {
    /// Loads scenarios and the persisted state.
    pub fn open(config: ControllerArgs) -> anyhow::Result<Controller> {
        if config.instructor_token.trim().len() < 8 || config.agent_token.trim().len() < 8 {
            anyhow::bail!(
                "--instructor-token and --agent-token must each be at least 8 characters"
            );
        }
        let peers = firedrill_runtime::config::parse_peers(&config.peers)
            .context("invalid --peers / FIREDRILL_PEERS")?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let scenarios = scenario::load_dir(&config.scenarios).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::anyhow!("invalid scenarios:\n{}", list.join("\n"))
        })?;
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("cannot create {}", config.state_dir.display()))?;
        let state_file = config.state_dir.join("controller-state.json");
        let mut state = State::load(&state_file)?;
        state.expire(state::now_ms());
        if let Some(running) = &state.scenario
            && !scenarios.iter().any(|s| s.id() == running.id)
        {
            tracing::warn!(scenario = %running.id, "the running scenario's file is gone; stopping it");
            state.scenario = None;
        }
        let meters = Meters::new(&Identity {
            service: "controller".into(),
            instance_id: "controller-1".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            environment: "lab".into(),
        });
        Ok(Controller {
            config,
            scenarios,
            state: Mutex::new(state),
            ops: meters.counter("firedrill.controller.ops", "Mitigation ops performed"),
            agent_polls: meters.counter(
                "firedrill.controller.agent_polls",
                "Fault agent polls answered",
            ),
            meters,
            state_file,
            peers,
            serving: Mutex::new(std::collections::BTreeMap::new()),
            http,
        })
    }

    /// Applies `change` to the state and persists it before answering.
    pub fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T, AppError> {
        let mut state = self.state.lock();
        state.expire(state::now_ms());
        let out = change(&mut state);
        state.save(&self.state_file).map_err(AppError::internal)?;
        Ok(out)
    }

    /// How many instances of `service` the lab started with (`--peers`);
    /// 0 when the controller was not told the layout.
    pub fn planned(&self, service: &str) -> usize {
        self.peers.get(service).map_or(0, Vec::len)
    }

    pub fn scenario(&self, id: &str) -> Result<&Scenario, AppError> {
        self.scenarios.iter().find(|s| s.id() == id).ok_or_else(|| {
            AppError::not_found(format!(
                "no scenario {id:?}; `firedrill scenario list` shows them"
            ))
        })
    }
}

/// Serves the controller on `listener` until `shutdown`.
pub async fn run(
    controller: Controller,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let controller = Arc::new(controller);
    tokio::spawn(deploys::reconcile(controller.clone(), shutdown.clone()));
    let app = api::router(controller);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// `firedrill controller`.
pub async fn main(args: ControllerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listen = args.listen;
    let controller = Controller::open(args)?;
    let listener = firedrill_runtime::server::bind(listen, "--listen").await?;
    tracing::info!(address = %listener.local_addr()?, scenarios = controller.scenarios.len(), "controller listening");
    run(controller, listener, shutdown).await
}
