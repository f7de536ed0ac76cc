//! Starts the lab's processes and keeps them running.
//!
//! Each component gets a task that spawns it, waits for it to exit and, unless
//! the lab is stopping, restarts it after a backoff that doubles with each
//! quick crash (reset once a run lasts long enough) — the way an orchestrator
//! treats a crash-looping pod. Restarts are counted and logged.
//!
//! Children run in their own process group, so a Ctrl-C in the terminal
//! reaches only `up`, which then stops them in order with SIGTERM (and
//! SIGKILL after a grace period).
//!
//! Every service has one more task, its manager, which owns the service's
//! instances (`<service>-1` to `<service>-<n>`, always numbered from 1
//! without gaps) and, every 250 ms, first scales them, then rolls them out.
//! It acts on two files the controller writes, each replaced whole:
//!
//! - Scaling: `<run>/replicas/<service>` (`firedrill_controller::replicas`)
//!   names how many instances should run; without it, the planned count
//!   does. One step per tick: a missing instance is started, built by
//!   [`Plan::service_instance`] like a planned one (on a new port, with its
//!   own pid file, log and crash restarts), and the manager waits up to
//!   30 s for it to answer `/health` (less if the lab stops or the count
//!   drops again) before it does anything else. A surplus instance, always
//!   the highest-numbered, leaves the [`Roster`] (so `endpoints.json` and
//!   Prometheus' targets drop it) and keeps serving for a 2 s drain — its
//!   callers take it out of rotation when the controller's count drops —
//!   then gets SIGTERM; its pid file goes once it has exited. The gateway
//!   and the queue broker are never scaled (`replicas::scalable`), nor are
//!   the collector, the controller and the load generator.
//! - Rollouts: every service process starts at the `service.version` that
//!   `<run>/versions/<service>` names for its instance (the build's version
//!   when none), passed as `FIREDRILL_SERVICE_VERSION`
//!   (`firedrill_controller::deploys`). When an instance runs another
//!   version than the file says, the manager replaces it (SIGTERM, start at
//!   the new version) and waits until it has answered `/health` with the
//!   new version for `--rollout-min-ready` (default 3 s), without
//!   restarting, before it replaces the next: a rolling update, one
//!   instance unavailable at a time. A replacement is not a crash: no
//!   backoff, not counted as a restart. A wait for an instance that never
//!   becomes healthy (a crashing release) ends as soon as the file changes
//!   again, so a rollback is never stuck behind a bad rollout; it pauses
//!   while the service is scaled (and then resumes with the same instance,
//!   its `--rollout-min-ready` counted again), so a stuck rollout never
//!   blocks scaling either.
//!
//! An unreadable file of either kind is reported once and changes nothing
//! until it is fixed.
//!
//! Two more declarations come from the controller:
//!
//! - A restart asked for by an op (`<run>/restarts/<id>` names the pid the
//!   controller stops) is not a crash: the process starts again at once,
//!   without backoff, and is not counted as a restart.
//! - A lab reset (`<run>/reset`, a generation number) forgets every restart
//!   count and backoff, starts at once a process waiting out a backoff, and
//!   replaces every instance that runs another version than its file names
//!   all at once rather than one by one; the supervisor then writes the
//!   generation to `<run>/reset-done`.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use firedrill_controller::policy::scalable;
use firedrill_rundir::RunDir;
use firedrill_runtime::config::BUILD_VERSION;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parking_lot::Mutex;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::plan::{Component, Plan};
use super::rollout;
use super::roster::{ChildState, Roster};

/// Environment variable through which children learn the supervisor's pid.
pub const SUPERVISOR_PID_ENV: &str = "FIREDRILL_SUPERVISOR_PID";

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// A run at least this long counts as healthy: the next crash backs off from
/// the start again.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long a child may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(8);
/// How often a service's manager reads its replica and version files.
const VERSIONS_POLL: Duration = Duration::from_millis(250);
/// How often a replaced instance's `/health` is asked during a rollout (and
/// a new one's after a scale-out).
const ROLLOUT_HEALTH_POLL: Duration = Duration::from_millis(100);
/// After this long waiting for a replaced instance, the rollout says it is
/// stuck (and keeps waiting, unless the desired version changes).
const ROLLOUT_STUCK_AFTER: Duration = Duration::from_secs(30);
/// How long a scale-out waits for the new instance to answer `/health`
/// before its service's manager goes on (a release that cannot start must
/// not hold up the service's rollouts and scaling for ever).
const SCALE_OUT_READY: Duration = Duration::from_secs(30);
/// How long after a failed scale-out (no free port, a spawn error) the
/// next attempt is made.
const SCALE_OUT_RETRY: Duration = Duration::from_secs(15);
/// How often the run directory's reset generation is read.
const RESET_POLL: Duration = Duration::from_millis(100);
/// How long a removed instance keeps serving before it gets SIGTERM. Its
/// callers drop it from rotation within one agent poll (500 ms) of the
/// controller's count dropping; the rest lets requests in flight finish.
const SCALE_IN_DRAIN: Duration = Duration::from_secs(2);

pub struct Supervisor {
    roster: Arc<Roster>,
    stop: CancellationToken,
    tasks: Mutex<Option<JoinSet<()>>>,
}

impl Supervisor {
    /// Starts every planned component, and a manager per service that
    /// scales and rolls out its instances; `min_ready` is how long a
    /// replaced instance must stay healthy before a rollout replaces the
    /// next.
    pub fn start(
        exe: &Path,
        plan: &Plan,
        run_dir: &RunDir,
        min_ready: Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Supervisor> {
        let stop = shutdown.child_token();
        // Should a later component fail to start, those already running
        // stop again.
        let on_error = stop.clone().drop_guard();
        let shared = Arc::new(Shared {
            exe: exe.to_path_buf(),
            run_dir: run_dir.clone(),
            plan: plan.clone(),
            roster: Arc::new(Roster::new(plan, run_dir)),
            min_ready,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(1))
                .build()
                .context("cannot build the supervisor's HTTP client")?,
        });
        // A previous `up` on the same directory leaves its pid files; a
        // scaled instance of an earlier run must not count as one of this
        // run's.
        run_dir.clear_pids();
        let (reset_tx, reset) = watch::channel(RunDir::read_generation(&run_dir.reset_done()));
        let mut tasks = JoinSet::new();
        let mut services: Vec<(String, Vec<Instance>)> = Vec::new();
        for component in &plan.components {
            // Spawn the first process synchronously so a broken executable
            // or log directory fails `up` at once with a clear message.
            if component.is_service() {
                let instance = Instance::start(&shared, component.clone(), &stop, &reset)?;
                match services
                    .iter_mut()
                    .find(|(name, _)| *name == component.name)
                {
                    Some((_, instances)) => instances.push(instance),
                    None => services.push((component.name.clone(), vec![instance])),
                }
                continue;
            }
            let state = ChildState::new();
            let log = shared.log_file(component);
            let child = spawn(exe, component, &log, run_dir, &state)?;
            // Nothing replaces these: the sender goes at once, which turns
            // the receiver's branch off.
            let (_, replace) = mpsc::channel(1);
            tasks.spawn(keep_running(
                Process {
                    exe: exe.to_path_buf(),
                    component: component.clone(),
                    log,
                    run_dir: run_dir.clone(),
                    state: state.clone(),
                    reset: reset.clone(),
                },
                child,
                replace,
                stop.clone(),
            ));
            shared.roster.add(component.clone(), state);
        }
        for (service, instances) in services {
            let manager = ServiceManager::new(
                service,
                instances,
                shared.clone(),
                stop.clone(),
                reset.clone(),
            );
            tasks.spawn(manager.run());
        }
        tasks.spawn(apply_resets(shared.clone(), reset_tx, stop.clone()));
        on_error.disarm();
        Ok(Supervisor {
            roster: shared.roster.clone(),
            stop,
            tasks: Mutex::new(Some(tasks)),
        })
    }

    /// The lab's current processes, scaled instances included.
    pub fn roster(&self) -> &Arc<Roster> {
        &self.roster
    }

    /// Stops every child, scaled instances included, and waits for them.
    pub async fn stop(&self) {
        self.stop.cancel();
        let tasks = self.tasks.lock().take();
        if let Some(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// What every task of the supervisor shares.
struct Shared {
    exe: PathBuf,
    run_dir: RunDir,
    /// Builds the instances a scale-out adds.
    plan: Plan,
    roster: Arc<Roster>,
    min_ready: Duration,
    /// Asks instances' `/health` (rollouts, scale-outs).
    http: reqwest::Client,
}

impl Shared {
    fn log_file(&self, component: &Component) -> PathBuf {
        component
            .private_log
            .clone()
            .unwrap_or_else(|| self.run_dir.log_file(&component.id))
    }
}

/// Applies each lab reset the controller declares (see the module
/// comment): restart counts and backoffs forgotten, waiting processes
/// started, rollouts done all at once; then acknowledged.
async fn apply_resets(shared: Arc<Shared>, reset: watch::Sender<u64>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RESET_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let generation = RunDir::read_generation(&shared.run_dir.reset_request());
        if generation <= *reset.borrow() {
            continue;
        }
        for child in shared.roster.children() {
            child.restarts.store(0, Ordering::Relaxed);
            *child.last_exit.lock() = None;
        }
        reset.send_replace(generation);
        tracing::info!(generation, "lab reset: restart counts and backoffs cleared");
        if let Err(e) = RunDir::write_generation(&shared.run_dir.reset_done(), generation) {
            tracing::warn!(error = %e, "cannot acknowledge the lab reset");
        }
    }
}

/// What `keep_running` needs to start one component again.
struct Process {
    exe: PathBuf,
    component: Component,
    log: PathBuf,
    run_dir: RunDir,
    state: Arc<ChildState>,
    /// The latest lab reset applied: a new one ends a backoff at once.
    reset: watch::Receiver<u64>,
}

/// The version `component` should run now, per its service's version file
/// (`None` for components that are not services). An unreadable file keeps
/// what runs, and says why.
fn desired_version(run_dir: &RunDir, component: &Component, running: &str) -> Option<String> {
    if !component.is_service() {
        return None;
    }
    let fallback = || {
        if running.is_empty() {
            BUILD_VERSION.to_string()
        } else {
            running.to_string()
        }
    };
    match run_dir.read_versions(&component.name) {
        Ok(mut versions) => Some(
            versions
                .remove(&component.id)
                .unwrap_or_else(|| BUILD_VERSION.to_string()),
        ),
        Err(e) => {
            tracing::warn!(component = %component.id, error = %e, "unreadable version file; keeping the running version");
            Some(fallback())
        }
    }
}

/// Starts `component` at its desired version and records pid and version.
fn spawn(
    exe: &Path,
    component: &Component,
    log: &Path,
    run_dir: &RunDir,
    state: &ChildState,
) -> anyhow::Result<Child> {
    let version = desired_version(run_dir, component, &state.version.lock());
    let child = spawn_process(exe, component, log, run_dir, version.as_deref())?;
    state.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
    *state.version.lock() = version.unwrap_or_default();
    Ok(child)
}

fn spawn_process(
    exe: &Path,
    component: &Component,
    log: &Path,
    run_dir: &RunDir,
    version: Option<&str>,
) -> anyhow::Result<Child> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log file {}", log.display()))?;
    let stderr = file.try_clone()?;
    let mut command = Command::new(exe);
    command
        .args(&component.argv)
        .envs(component.env.iter().map(|(k, v)| (k, v)))
        .env(SUPERVISOR_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    if let Some(version) = version {
        command.env("FIREDRILL_SERVICE_VERSION", version);
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {} ({})", component.id, exe.display()))?;
    if let Err(e) = run_dir.write_pid(&component.id, child.id().unwrap_or(0)) {
        tracing::warn!(component = %component.id, error = %e, "cannot write the pid file");
    }
    Ok(child)
}

/// What ended a wait on a running child.
enum Event {
    Exited(std::io::Result<std::process::ExitStatus>),
    Stop,
    /// A rollout asks for the process to be replaced at its desired version.
    Replace,
}

async fn keep_running(
    mut process: Process,
    mut child: Child,
    mut replace: mpsc::Receiver<()>,
    stop: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let event = tokio::select! {
            status = child.wait() => Event::Exited(status),
            _ = stop.cancelled() => Event::Stop,
            Some(()) = replace.recv() => Event::Replace,
        };
        let (component, state) = (process.component.clone(), process.state.clone());
        let status = match event {
            Event::Stop => {
                terminate(&mut child, &component.id).await;
                return;
            }
            Event::Replace => {
                let from = state.version.lock().clone();
                terminate(&mut child, &component.id).await;
                let Some(next) = respawn(&process, &stop).await else {
                    return;
                };
                child = next;
                tracing::info!(
                    component = %process.component.id,
                    from = %from,
                    to = %process.state.version.lock(),
                    pid = child.id().unwrap_or(0),
                    "process replaced for a rollout"
                );
                continue;
            }
            Event::Exited(status) => status,
        };
        if stop.is_cancelled() {
            return;
        }
        let exit = match status {
            Ok(s) => s.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        let pid = state.pid.load(Ordering::Relaxed);
        if process.run_dir.take_restart_request(&component.id, pid) {
            // An op stopped it: an orchestrator replacing a deleted pod,
            // not a crash.
            let Some(next) = respawn(&process, &stop).await else {
                return;
            };
            child = next;
            tracing::info!(component = %process.component.id, pid = child.id().unwrap_or(0), "process restarted by an op");
            continue;
        }
        if started.elapsed() >= STABLE_AFTER || process.reset.has_changed().unwrap_or(false) {
            process.reset.mark_unchanged();
            backoff = FIRST_BACKOFF;
        }
        let restarts = state.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        *state.last_exit.lock() = Some(exit.clone());
        tracing::warn!(
            component = %component.id,
            %exit,
            restarts,
            backoff_ms = backoff.as_millis() as u64,
            "process exited; restarting after backoff"
        );
        // A rollout does not wait for the backoff: it replaces the process
        // now, as an orchestrator replaces a crash-looping pod's template;
        // nor does a lab reset.
        let reset = tokio::select! {
            _ = tokio::time::sleep(backoff) => false,
            Some(()) = replace.recv() => false,
            Ok(()) = process.reset.changed() => true,
            _ = stop.cancelled() => return,
        };
        backoff = if reset {
            process.reset.mark_unchanged();
            FIRST_BACKOFF
        } else {
            (backoff * 2).min(MAX_BACKOFF)
        };
        let Some(next) = respawn(&process, &stop).await else {
            return;
        };
        child = next;
        tracing::info!(component = %process.component.id, pid = child.id().unwrap_or(0), version = %process.state.version.lock(), restarts, "process restarted");
    }
}

/// Starts the component again at its desired version, retrying a failing
/// spawn until it works or the lab stops (`None`).
async fn respawn(process: &Process, stop: &CancellationToken) -> Option<Child> {
    loop {
        match spawn(
            &process.exe,
            &process.component,
            &process.log,
            &process.run_dir,
            &process.state,
        ) {
            Ok(child) => return Some(child),
            Err(err) => {
                tracing::error!(component = %process.component.id, error = %err, "cannot restart; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(MAX_BACKOFF) => {}
                    _ = stop.cancelled() => return None,
                }
            }
        }
    }
}

// === scaling and rollouts ===

/// One instance of a service, owned by its service's manager.
struct Instance {
    component: Component,
    state: Arc<ChildState>,
    /// Asks the instance's `keep_running` to replace the process.
    replace: mpsc::Sender<()>,
    /// Stops this instance alone (scale-in); a child of the lab's stop
    /// token, so stopping the lab stops it too.
    cancel: CancellationToken,
    /// Its `keep_running`, which ends once the process has exited.
    task: JoinHandle<()>,
}

impl Instance {
    /// Starts the process (synchronously: a spawn error is the caller's),
    /// its `keep_running` task, and lists it in the roster.
    fn start(
        shared: &Shared,
        component: Component,
        stop: &CancellationToken,
        reset: &watch::Receiver<u64>,
    ) -> anyhow::Result<Instance> {
        let state = ChildState::new();
        let log = shared.log_file(&component);
        let child = spawn(&shared.exe, &component, &log, &shared.run_dir, &state)?;
        let (replace, replace_rx) = mpsc::channel(1);
        let cancel = stop.child_token();
        let task = tokio::spawn(keep_running(
            Process {
                exe: shared.exe.clone(),
                component: component.clone(),
                log,
                run_dir: shared.run_dir.clone(),
                state: state.clone(),
                reset: reset.clone(),
            },
            child,
            replace_rx,
            cancel.clone(),
        ));
        shared.roster.add(component.clone(), state.clone());
        Ok(Instance {
            component,
            state,
            replace,
            cancel,
            task,
        })
    }
}

/// How a wait for a rollout step ended.
#[derive(PartialEq, Eq)]
enum Waited {
    /// Rolled out, superseded, the instance is gone, or the lab stops.
    Done,
    /// The service is to be scaled first; the step resumes afterwards.
    Paused,
}

/// Keeps one service's instances at the count its replica file names and at
/// the versions its version file names (see the module comment).
struct ServiceManager {
    service: String,
    shared: Arc<Shared>,
    /// `<service>-1` to `<service>-<len>`, in order: scaling out pushes the
    /// next number, scaling in pops the highest.
    instances: Vec<Instance>,
    /// How many instances run while the service has no replica file.
    planned: usize,
    stop: CancellationToken,
    /// The rollout step in progress, kept while the service is scaled.
    step: Option<rollout::Step>,
    /// After a failed scale-out, when to try again.
    retry_scale_out: Option<Instant>,
    /// Whether the replica or version file's problem was already reported
    /// (once, until the file is fixed).
    replicas_warned: bool,
    versions_warned: bool,
    /// Lab resets: a new one rolls every instance out at once.
    reset: watch::Receiver<u64>,
}

impl ServiceManager {
    fn new(
        service: String,
        instances: Vec<Instance>,
        shared: Arc<Shared>,
        stop: CancellationToken,
        reset: watch::Receiver<u64>,
    ) -> ServiceManager {
        ServiceManager {
            service,
            shared,
            planned: instances.len(),
            instances,
            stop,
            reset,
            step: None,
            retry_scale_out: None,
            replicas_warned: false,
            versions_warned: false,
        }
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(VERSIONS_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            self.scale().await;
            if self.stop.is_cancelled() {
                break;
            }
            self.roll_out().await;
        }
        // Each instance's `keep_running` has seen the stop as well; wait
        // until their processes are gone.
        for instance in self.instances.drain(..) {
            let _ = instance.task.await;
        }
    }

    // --- scaling ---

    /// The count the service should run, from its replica file: its
    /// number, or the planned count without a file.
    fn read_count(&self) -> Result<usize, String> {
        let count = self.shared.run_dir.read_replicas(&self.service)?;
        Ok(count.map_or(self.planned, |c| c as usize))
    }

    /// [`Self::read_count`] for this tick; `None` when there is nothing to
    /// act on: an unreadable file keeps what runs and is reported once
    /// until it is fixed; a file for a service that is never scaled (the
    /// gateway, the queue: `replicas::scalable`) is ignored, and reported
    /// once.
    fn desired_count(&mut self) -> Option<usize> {
        if let Err(why) = scalable(&self.service) {
            let path = self.shared.run_dir.replicas_file(&self.service);
            if !self.replicas_warned && path.exists() {
                tracing::warn!(file = %path.display(), reason = %why, "ignoring a replica file");
                self.replicas_warned = true;
            }
            return None;
        }
        match self.read_count() {
            Ok(count) => {
                self.replicas_warned = false;
                Some(count)
            }
            Err(e) => {
                if !self.replicas_warned {
                    tracing::warn!(service = %self.service, error = %e, "unreadable replica file; keeping the instances that run until it is fixed");
                    self.replicas_warned = true;
                }
                None
            }
        }
    }

    /// The count as a wait sees it: `None` when unknown (or never
    /// scaled), without reports.
    fn peek_count(&self) -> Option<usize> {
        if scalable(&self.service).is_err() {
            return None;
        }
        self.read_count().ok()
    }

    /// Whether the next tick has a scaling step to take.
    fn scale_due(&self) -> bool {
        let running = self.instances.len();
        match self.peek_count() {
            Some(desired) if desired > running => self.may_scale_out(),
            Some(desired) => desired < running,
            None => false,
        }
    }

    fn may_scale_out(&self) -> bool {
        self.retry_scale_out.is_none_or(|at| Instant::now() >= at)
    }

    /// One scaling step towards the desired count, if any.
    async fn scale(&mut self) {
        let Some(desired) = self.desired_count() else {
            return;
        };
        let running = self.instances.len();
        if desired > running && self.may_scale_out() {
            self.scale_out().await;
        } else if desired < running {
            self.scale_in().await;
        }
    }

    /// Starts the next instance and waits for it to answer `/health`.
    async fn scale_out(&mut self) {
        let n = self.instances.len() as u32 + 1;
        let started = self
            .shared
            .plan
            .service_instance(&self.service, n)
            .and_then(|component| {
                Instance::start(&self.shared, component, &self.stop, &self.reset)
            });
        let instance = match started {
            Ok(instance) => instance,
            Err(e) => {
                tracing::error!(
                    service = %self.service,
                    instance = n,
                    error = %format!("{e:#}"),
                    retry_in_s = SCALE_OUT_RETRY.as_secs(),
                    "cannot scale out; retrying"
                );
                self.retry_scale_out = Some(Instant::now() + SCALE_OUT_RETRY);
                return;
            }
        };
        self.retry_scale_out = None;
        tracing::info!(
            instance = %instance.component.id,
            listen = instance.component.listen().unwrap_or_default(),
            version = %instance.state.version.lock(),
            pid = instance.state.pid.load(Ordering::Relaxed),
            "scaled out"
        );
        self.instances.push(instance);
        self.wait_scaled_out().await;
    }

    /// Waits until the newest instance answers `/health`: at most
    /// [`SCALE_OUT_READY`], and not after the lab stops or the desired
    /// count drops below it again (the next tick removes it).
    async fn wait_scaled_out(&self) {
        let Some(instance) = self.instances.last() else {
            return;
        };
        let id = &instance.component.id;
        let n = self.instances.len();
        let started = Instant::now();
        loop {
            let healthy = matches!(
                self.shared.http.get(&instance.component.health_url).send().await,
                Ok(r) if r.status().is_success()
            );
            if healthy {
                tracing::info!(instance = %id, after_ms = started.elapsed().as_millis() as u64, "scaled-out instance is healthy");
                return;
            }
            if self.peek_count().is_some_and(|desired| desired < n) {
                tracing::info!(instance = %id, "the desired count dropped again; not waiting for the new instance");
                return;
            }
            if started.elapsed() >= SCALE_OUT_READY {
                tracing::warn!(instance = %id, waited_s = SCALE_OUT_READY.as_secs(), "scaled-out instance is not healthy; going on");
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(ROLLOUT_HEALTH_POLL) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }

    /// Takes the highest-numbered instance out of the lab: out of the
    /// roster at once, stopped after the drain (unless the desired count
    /// rises back in the meantime), its pid file removed once it exited.
    async fn scale_in(&mut self) {
        let n = self.instances.len();
        let Some(last) = self.instances.last() else {
            return;
        };
        let (component, state) = (last.component.clone(), last.state.clone());
        let id = component.id.as_str();
        self.shared.roster.remove(id);
        tracing::info!(instance = %id, drain_ms = SCALE_IN_DRAIN.as_millis() as u64, "scaling in: draining");
        let deadline = tokio::time::Instant::now() + SCALE_IN_DRAIN;
        while tokio::time::Instant::now() < deadline {
            tokio::select! {
                biased;
                // Still in `instances`: the lab's stop waits for it.
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + VERSIONS_POLL)) => {}
            }
            if self.peek_count().is_some_and(|desired| desired >= n) {
                tracing::info!(instance = %id, "scale-in called off: the desired count rose again");
                self.shared.roster.add(component, state);
                return;
            }
        }
        let Some(instance) = self.instances.pop() else {
            return;
        };
        instance.cancel.cancel();
        // `keep_running` sends SIGTERM, SIGKILL after the grace period, and
        // ends once the process has exited.
        let _ = instance.task.await;
        self.shared.run_dir.remove_pid(id);
        if self.step.as_ref().is_some_and(|step| step.id == id) {
            self.step = None;
        }
        tracing::info!(instance = %id, "scaled in");
    }

    // --- rollouts ---

    /// Keeps the instances at the versions the service's file names,
    /// replacing one instance at a time, in instance order.
    async fn roll_out(&mut self) {
        let desired = match self.shared.run_dir.read_versions(&self.service) {
            Ok(desired) => {
                self.versions_warned = false;
                desired
            }
            Err(e) => {
                if !self.versions_warned {
                    tracing::warn!(service = %self.service, error = %e, "unreadable version file; no rollout until it is fixed");
                    self.versions_warned = true;
                }
                return;
            }
        };
        if self.reset.has_changed().unwrap_or(false) {
            self.reset.mark_unchanged();
            self.step = None;
            self.replace_all_at_once(&desired).await;
            return;
        }
        let mut step = match self.step.take() {
            Some(step) => step,
            None => {
                let running = self.running_versions();
                let Some((id, version)) = rollout::next_step(&running, &desired, BUILD_VERSION)
                else {
                    return;
                };
                let Some(next) = self.instances.iter().find(|i| i.component.id == id) else {
                    return;
                };
                tracing::info!(
                    instance = %id,
                    from = %next.state.version.lock(),
                    to = %version,
                    "rolling out"
                );
                // A full channel means a replacement is already asked for.
                let _ = next.replace.try_send(());
                rollout::Step::new(id, version, Instant::now())
            }
        };
        if self.wait_rolled(&mut step).await == Waited::Paused {
            self.step = Some(step);
        }
    }

    /// What each instance runs now, in instance order.
    fn running_versions(&self) -> Vec<(String, String)> {
        self.instances
            .iter()
            .map(|i| (i.component.id.clone(), i.state.version.lock().clone()))
            .collect()
    }

    /// After a lab reset: every instance that runs another version than
    /// `desired` is replaced now, not one by one; waits until each has been
    /// started again (at most the stop grace and a little).
    async fn replace_all_at_once(&self, desired: &std::collections::BTreeMap<String, String>) {
        let running = self.running_versions();
        let replaced: Vec<&Instance> = rollout::off_version(&running, desired, BUILD_VERSION)
            .iter()
            .filter_map(|id| self.instances.iter().find(|i| i.component.id == *id))
            .collect();
        let wanted = |id: &str| rollout::wanted(desired, id, BUILD_VERSION).to_string();
        for instance in &replaced {
            tracing::info!(instance = %instance.component.id, to = %wanted(&instance.component.id), "lab reset: replacing");
            let _ = instance.replace.try_send(());
        }
        let deadline = Instant::now() + STOP_GRACE + Duration::from_secs(2);
        while replaced
            .iter()
            .any(|i| *i.state.version.lock() != wanted(&i.component.id))
            && Instant::now() < deadline
        {
            tokio::select! {
                _ = tokio::time::sleep(ROLLOUT_HEALTH_POLL) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }

    /// Waits until the step's instance has answered `/health` with its
    /// version for `min_ready` without restarting, the lab stops, or the
    /// service's file asks for another version (a rollback of a release
    /// that never becomes healthy). Pauses when the service is to be
    /// scaled first.
    async fn wait_rolled(&self, step: &mut rollout::Step) -> Waited {
        #[derive(serde::Deserialize)]
        struct Health {
            version: String,
        }
        let Some(instance) = self.instances.iter().find(|i| i.component.id == step.id) else {
            return Waited::Done;
        };
        // A resumed step counts its --rollout-min-ready again.
        step.ready = None;
        loop {
            let healthy_at_version = match self
                .shared
                .http
                .get(&instance.component.health_url)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r
                    .json::<Health>()
                    .await
                    .is_ok_and(|h| h.version == step.version),
                _ => false,
            };
            let seen = rollout::Seen {
                healthy_at_version,
                pid: instance.state.pid.load(Ordering::Relaxed),
            };
            let wanted_now = match self.shared.run_dir.read_versions(&self.service) {
                Ok(d) => rollout::wanted(&d, &step.id, BUILD_VERSION).to_string(),
                // Unreadable: keep waiting for what was asked.
                Err(_) => step.version.clone(),
            };
            let verdict = step.judge(
                seen,
                &wanted_now,
                self.scale_due(),
                Instant::now(),
                self.shared.min_ready,
                ROLLOUT_STUCK_AFTER,
            );
            let (id, version) = (&step.id, &step.version);
            match verdict {
                rollout::Verdict::RolledOut => {
                    tracing::info!(instance = %id, %version, after_ms = step.started.elapsed().as_millis() as u64, "rolled out");
                    return Waited::Done;
                }
                rollout::Verdict::Superseded => {
                    tracing::info!(instance = %id, %version, "rollout superseded by a newer desired version");
                    return Waited::Done;
                }
                rollout::Verdict::Paused => {
                    tracing::info!(instance = %id, %version, "rollout paused: scaling the service first");
                    return Waited::Paused;
                }
                rollout::Verdict::Wait { stuck } => {
                    if stuck {
                        tracing::warn!(instance = %id, %version, "rollout stuck: the new process is not healthy");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(ROLLOUT_HEALTH_POLL) => {}
                _ = self.stop.cancelled() => return Waited::Done,
            }
        }
    }
}

/// SIGTERM, then SIGKILL if the child outlives the grace period.
async fn terminate(child: &mut Child, id: &str) {
    let Some(pid) = child.id() else { return };
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        tracing::warn!(component = id, "did not stop in time; killing");
        let _ = child.kill().await;
    }
}
