//! The controller's flags and its shared context: the catalogue, the
//! desired state and its snapshot, the ops log, and what agents report.
//! Every module that acts takes a `&Controller`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use firedrill_rundir::RunDir;
use firedrill_runtime::AppError;
use firedrill_runtime::config::Identity;
use firedrill_runtime::metrics::{Counter, Meters};
use parking_lot::Mutex;

use crate::agents::{Reported, Serving};
use crate::model::grade::Rubric;
use crate::model::scenario::Scenario;
use crate::model::state::{OpRecord, State, now_ms};
use crate::scenarios::{Catalogue, Problem};
use crate::store::{Log, Snapshot};
use crate::timeline::Timeline;

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

    /// Token that unlocks faults, scenarios, deploys, learners and resets.
    #[arg(long, env = "FIREDRILL_INSTRUCTOR_TOKEN", hide_env_values = true)]
    pub instructor_token: String,

    /// Token the fault agents present.
    #[arg(long, env = "FIREDRILL_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: String,

    /// The lab's own learner's token (`firedrill up` writes one into the
    /// run directory); more learners are added with `firedrill learner add`.
    #[arg(long, env = "FIREDRILL_LEARNER_TOKEN", hide_env_values = true)]
    pub learner_token: Option<String>,

    /// The name the lab's own learner's actions are recorded under.
    #[arg(long, env = "FIREDRILL_LEARNER_NAME", default_value = "learner")]
    pub learner_name: String,

    /// How long agents keep applying faults without hearing from the
    /// controller.
    #[arg(long, env = "FIREDRILL_FAULT_LEASE", value_parser = humantime::parse_duration, default_value = "5s")]
    pub lease: Duration,

    /// Where the controller keeps its state (created if missing, owner-only).
    #[arg(
        long,
        env = "FIREDRILL_CONTROLLER_STATE",
        default_value = "firedrill-controller"
    )]
    pub state_dir: PathBuf,

    /// A directory of scenario files to serve instead of the catalogue
    /// built into this binary. Files with problems are reported and left out.
    #[arg(long, env = "FIREDRILL_SCENARIOS")]
    pub scenarios: Option<PathBuf>,

    /// The lab's run directory (pid files), for ops that restart processes;
    /// without it those ops are recorded but cannot act.
    #[arg(long, env = "FIREDRILL_RUN_DIR")]
    pub run_dir: Option<PathBuf>,

    /// Prometheus sends its alerts here (`firedrill up` says so when it
    /// starts one; docker-compose and Kubernetes route Alertmanager's
    /// webhook here): an exercise's page waits for a paging alert to fire.
    /// Without it the page goes out on a timer.
    #[arg(long, env = "FIREDRILL_ALERTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub alerts: bool,

    /// Token Prometheus (or Alertmanager's webhook) presents with alerts;
    /// it can post alerts and nothing else.
    #[arg(long, env = "FIREDRILL_ALERTS_TOKEN", hide_env_values = true)]
    pub alerts_token: Option<String>,

    /// The collector's query API, for exercises' recovery checks that read
    /// traces and logs (under `firedrill up`, endpoints.json says).
    #[arg(long, env = "FIREDRILL_QUERY_URL")]
    pub query_url: Option<String>,

    /// The lab's processes as the services get them (`name=url[,url...]`
    /// separated by `;`): which instances a drain may name, and where the
    /// queue is for the dead-letter ops. Empty: drains are not checked and
    /// dead-letter ops are recorded but cannot act.
    #[arg(long, env = "FIREDRILL_PEERS", default_value = "")]
    pub peers: String,
}

/// How many ops the API lists at most; the journal keeps them all.
const OPS_KEPT: usize = 1000;

/// The controller's shared state.
pub struct Controller {
    pub config: ControllerArgs,
    pub scenarios: Vec<Scenario>,
    /// What was wrong with the scenario files left out of the catalogue.
    pub catalogue_problems: Vec<Problem>,
    pub state: Mutex<State>,
    snapshot: Snapshot,
    /// Every op performed, appended as it happens.
    pub ops_log: Mutex<Log<OpRecord>>,
    /// `/metrics`: what learners did and how often agents asked; never
    /// which faults are active.
    pub meters: Meters,
    pub ops: Counter,
    pub agent_polls: Counter,
    pub run_dir: Option<RunDir>,
    /// Service name → instance URLs, from `--peers`.
    pub peers: BTreeMap<String, Vec<String>>,
    /// Where callers of a scaled service are sent (`agents::endpoints`).
    pub serving: Mutex<Serving>,
    /// The version each instance last reported, and when.
    pub reported: Mutex<Reported>,
    /// For ops that call a service (the queue's dead letters).
    pub http: reqwest::Client,
    /// The running exercise's timeline.
    pub timeline: Mutex<Option<Timeline>>,
    /// What exercises are graded by.
    pub rubric: Rubric,
}

impl Controller {
    /// Loads the catalogue and the persisted state.
    pub fn open(config: ControllerArgs) -> anyhow::Result<Controller> {
        let short = |t: &str| t.trim().len() < 8;
        if short(&config.instructor_token)
            || short(&config.agent_token)
            || config.learner_token.as_deref().is_some_and(short)
            || config.alerts_token.as_deref().is_some_and(short)
        {
            anyhow::bail!(
                "--instructor-token, --agent-token, --learner-token and --alerts-token must each be at least 8 characters"
            );
        }
        let peers = firedrill_runtime::config::parse_peers(&config.peers)
            .context("invalid --peers / FIREDRILL_PEERS")?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let catalogue = match &config.scenarios {
            Some(dir) => Catalogue::from_dir(dir).context("--scenarios / FIREDRILL_SCENARIOS")?,
            None => Catalogue::shipped(),
        };
        for problem in &catalogue.problems {
            tracing::warn!("{problem}");
        }
        if !catalogue.problems.is_empty() {
            tracing::warn!(
                source = %catalogue.source,
                "scenario files with problems are left out; `firedrill scenario validate` lists them"
            );
        }
        private_dir(&config.state_dir)?;
        let snapshot = Snapshot::new(config.state_dir.join("controller-state.json"));
        let mut state: State = snapshot.load()?;
        state.expire(now_ms());
        if let Some(running) = &state.scenario
            && !catalogue.scenarios.iter().any(|s| s.id() == running.id)
        {
            tracing::warn!(scenario = %running.id, "the running scenario's file is gone; stopping it");
            state.scenario = None;
        }
        let ops_log = Log::open(config.state_dir.join("ops.jsonl"), OPS_KEPT)?;
        let meters = Meters::new(&Identity {
            service: "controller".into(),
            instance_id: "controller-1".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            environment: "lab".into(),
        });
        Ok(Controller {
            run_dir: config.run_dir.clone().map(RunDir::new),
            scenarios: catalogue.scenarios,
            catalogue_problems: catalogue.problems,
            config,
            state: Mutex::new(state),
            snapshot,
            ops_log: Mutex::new(ops_log),
            ops: meters.counter("firedrill.controller.ops", "Mitigation ops performed"),
            agent_polls: meters.counter(
                "firedrill.controller.agent_polls",
                "Fault agent polls answered",
            ),
            meters,
            peers,
            serving: Mutex::new(BTreeMap::new()),
            reported: Mutex::new(BTreeMap::new()),
            http,
            timeline: Mutex::new(None),
            rubric: Rubric::shipped(),
        })
    }

    /// Applies `change` to the state and persists it before answering.
    pub fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T, AppError> {
        let mut state = self.state.lock();
        state.expire(now_ms());
        let out = change(&mut state);
        self.save(&state)?;
        Ok(out)
    }

    /// Persists `state` (the caller holds its lock).
    pub fn save(&self, state: &State) -> Result<(), AppError> {
        self.snapshot.save(state).map_err(AppError::internal)
    }

    /// How many instances of `service` the lab started with (`--peers`);
    /// 0 when the controller was not told the layout.
    pub fn planned(&self, service: &str) -> usize {
        self.peers.get(service).map_or(0, Vec::len)
    }

    pub fn scenario(&self, id: &str) -> Result<&Scenario, AppError> {
        self.scenarios.iter().find(|s| s.id() == id).ok_or_else(|| {
            AppError::not_found(format!(
                "no scenario {:?}; `firedrill scenario list` shows them",
                crate::model::op::truncate(id, 64)
            ))
        })
    }
}

/// Creates the state directory, readable by its owner only: the state
/// names the running scenario and every fault.
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))
}
