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
//! Rollouts: every service process starts at the `service.version` that
//! `<run>/versions/<service>` names for its instance (the build's version
//! when none), passed as `FIREDRILL_SERVICE_VERSION`. The controller writes
//! those files (`firedrill_controller::deploys`); one task per service
//! watches its file and, when an instance runs another version than the
//! file says, replaces it (SIGTERM, start at the new version) and waits until
//! it has answered `/health` with the new version for `--rollout-min-ready`
//! (default 3 s), without restarting, before it replaces the next: a rolling update, one instance
//! unavailable at a time. A replacement is not
//! a crash: no backoff, not counted as a restart. A wait for an instance
//! that never becomes healthy (a crashing release) ends as soon as the file
//! changes again, so a rollback is never stuck behind a bad rollout.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use firedrill_controller::deploys;
use firedrill_runtime::config::BUILD_VERSION;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parking_lot::Mutex;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::SUPERVISOR_PID_ENV;
use super::plan::{Component, Plan};

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// A run at least this long counts as healthy: the next crash backs off from
/// the start again.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long a child may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(8);
/// How often a service's version file is read.
const VERSIONS_POLL: Duration = Duration::from_millis(250);
/// How often a replaced instance's `/health` is asked during a rollout.
const ROLLOUT_HEALTH_POLL: Duration = Duration::from_millis(100);
/// After this long waiting for a replaced instance, the rollout says it is
/// stuck (and keeps waiting, unless the desired version changes).
const ROLLOUT_STUCK_AFTER: Duration = Duration::from_secs(30);

/// What the supervisor knows about one component.
#[derive(Debug)]
pub struct ChildState {
    pub pid: AtomicU32,
    pub restarts: AtomicU32,
    pub last_exit: Mutex<Option<String>>,
    /// The `service.version` the current process was started with (empty
    /// for components that are not services).
    pub version: Mutex<String>,
}

pub struct Supervisor {
    pub children: Vec<Arc<ChildState>>,
    stop: CancellationToken,
    tasks: Mutex<Option<JoinSet<()>>>,
}

impl Supervisor {
    /// Starts every component; `min_ready` is how long a replaced instance
    /// must stay healthy before a rollout replaces the next.
    pub fn start(
        exe: &Path,
        plan: &Plan,
        run_dir: &Path,
        min_ready: Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Supervisor> {
        let stop = shutdown.child_token();
        let mut tasks = JoinSet::new();
        let mut children = Vec::new();
        let mut services: Vec<(String, Vec<Rollable>)> = Vec::new();
        for component in &plan.components {
            let state = Arc::new(ChildState {
                pid: AtomicU32::new(0),
                restarts: AtomicU32::new(0),
                last_exit: Mutex::new(None),
                version: Mutex::new(String::new()),
            });
            let log = run_dir.join("logs").join(format!("{}.log", component.id));
            // Spawn the first instance synchronously so a broken executable
            // or log directory fails `up` at once with a clear message.
            let child = spawn(exe, component, &log, run_dir, &state)?;
            let (replace, replace_rx) = mpsc::channel(1);
            tasks.spawn(keep_running(
                Process {
                    exe: exe.to_path_buf(),
                    component: component.clone(),
                    log,
                    run_dir: run_dir.to_path_buf(),
                    state: state.clone(),
                },
                child,
                replace_rx,
                stop.clone(),
            ));
            if component.is_service() {
                let rollable = Rollable {
                    component: component.clone(),
                    state: state.clone(),
                    replace,
                };
                match services
                    .iter_mut()
                    .find(|(name, _)| *name == component.name)
                {
                    Some((_, instances)) => instances.push(rollable),
                    None => services.push((component.name.clone(), vec![rollable])),
                }
            }
            children.push(state);
        }
        for (service, instances) in services {
            tasks.spawn(roll_out(
                service,
                instances,
                run_dir.to_path_buf(),
                min_ready,
                stop.clone(),
            ));
        }
        Ok(Supervisor {
            children,
            stop,
            tasks: Mutex::new(Some(tasks)),
        })
    }

    pub fn total_restarts(&self) -> u32 {
        self.children
            .iter()
            .map(|c| c.restarts.load(Ordering::Relaxed))
            .sum()
    }

    /// Stops every child and waits for them.
    pub async fn stop(&self) {
        self.stop.cancel();
        let tasks = self.tasks.lock().take();
        if let Some(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// What `keep_running` needs to start one component again.
struct Process {
    exe: PathBuf,
    component: Component,
    log: PathBuf,
    run_dir: PathBuf,
    state: Arc<ChildState>,
}

/// The version `component` should run now, per its service's version file
/// (`None` for components that are not services). An unreadable file keeps
/// what runs, and says why.
fn desired_version(run_dir: &Path, component: &Component, running: &str) -> Option<String> {
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
    match deploys::read_versions(run_dir, &component.name) {
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
    run_dir: &Path,
    state: &ChildState,
) -> anyhow::Result<Child> {
    let version = desired_version(run_dir, component, &state.version.lock());
    let child = spawn_process(exe, component, log, version.as_deref())?;
    state.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
    *state.version.lock() = version.unwrap_or_default();
    Ok(child)
}

fn spawn_process(
    exe: &Path,
    component: &Component,
    log: &Path,
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
    // `<run>/pids/<id>.pid` lets operators (and tests) find a process to kill.
    if let Some(pids) = log
        .parent()
        .and_then(Path::parent)
        .map(|run| run.join("pids"))
    {
        let _ = std::fs::create_dir_all(&pids);
        let _ = std::fs::write(
            pids.join(format!("{}.pid", component.id)),
            child.id().unwrap_or(0).to_string(),
        );
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
    process: Process,
    mut child: Child,
    mut replace: mpsc::Receiver<()>,
    stop: CancellationToken,
) {
    let Process {
        component, state, ..
    } = &process;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let event = tokio::select! {
            status = child.wait() => Event::Exited(status),
            _ = stop.cancelled() => Event::Stop,
            Some(()) = replace.recv() => Event::Replace,
        };
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
                    component = %component.id,
                    from = %from,
                    to = %state.version.lock(),
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
        if started.elapsed() >= STABLE_AFTER {
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
        // now, as an orchestrator replaces a crash-looping pod's template.
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            Some(()) = replace.recv() => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        let Some(next) = respawn(&process, &stop).await else {
            return;
        };
        child = next;
        tracing::info!(component = %component.id, pid = child.id().unwrap_or(0), version = %state.version.lock(), restarts, "process restarted");
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

// === rollouts ===

/// One instance of a service, as its rollout sees it.
struct Rollable {
    component: Component,
    state: Arc<ChildState>,
    /// Asks the instance's `keep_running` to replace the process.
    replace: mpsc::Sender<()>,
}

/// Keeps the instances of `service` at the versions its file names,
/// replacing one instance at a time, in instance order.
async fn roll_out(
    service: String,
    instances: Vec<Rollable>,
    run_dir: PathBuf,
    min_ready: Duration,
    stop: CancellationToken,
) {
    let Ok(http) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
    else {
        tracing::error!(%service, "cannot build an HTTP client; rollouts of this service are off");
        return;
    };
    let mut tick = tokio::time::interval(VERSIONS_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unreadable = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let desired = match deploys::read_versions(&run_dir, &service) {
            Ok(desired) => {
                unreadable = false;
                desired
            }
            Err(e) => {
                if !unreadable {
                    tracing::warn!(%service, error = %e, "unreadable version file; no rollout until it is fixed");
                    unreadable = true;
                }
                continue;
            }
        };
        let wanted = |id: &str| {
            desired
                .get(id)
                .cloned()
                .unwrap_or_else(|| BUILD_VERSION.to_string())
        };
        let Some(next) = instances
            .iter()
            .find(|i| *i.state.version.lock() != wanted(&i.component.id))
        else {
            continue;
        };
        let version = wanted(&next.component.id);
        tracing::info!(
            instance = %next.component.id,
            from = %next.state.version.lock(),
            to = %version,
            "rolling out"
        );
        // A full channel means a replacement is already asked for.
        let _ = next.replace.try_send(());
        wait_rolled(&http, next, &version, &run_dir, min_ready, &stop).await;
    }
}

/// Waits until `instance` has answered `/health` with `version` for
/// `min_ready` without restarting, the lab stops, or its service's file
/// asks for another version (a rollback of a release that never becomes
/// healthy).
async fn wait_rolled(
    http: &reqwest::Client,
    instance: &Rollable,
    version: &str,
    run_dir: &Path,
    min_ready: Duration,
    stop: &CancellationToken,
) {
    #[derive(serde::Deserialize)]
    struct Health {
        version: String,
    }
    let id = &instance.component.id;
    let started = Instant::now();
    let mut warned = false;
    // Since when, and as which pid, the instance has been healthy.
    let mut ready: Option<(Instant, u32)> = None;
    loop {
        let healthy = match http.get(&instance.component.health_url).send().await {
            Ok(r) if r.status().is_success() => {
                r.json::<Health>().await.is_ok_and(|h| h.version == version)
            }
            _ => false,
        };
        let pid = instance.state.pid.load(Ordering::Relaxed);
        ready = match ready {
            Some((since, same)) if healthy && same == pid => Some((since, same)),
            _ if healthy => Some((Instant::now(), pid)),
            _ => None,
        };
        if ready.is_some_and(|(since, _)| since.elapsed() >= min_ready) {
            tracing::info!(instance = %id, %version, after_ms = started.elapsed().as_millis() as u64, "rolled out");
            return;
        }
        let superseded = deploys::read_versions(run_dir, &instance.component.name)
            .is_ok_and(|d| d.get(id).map_or(BUILD_VERSION, String::as_str) != version);
        if superseded {
            tracing::info!(instance = %id, %version, "rollout superseded by a newer desired version");
            return;
        }
        if !warned && started.elapsed() >= ROLLOUT_STUCK_AFTER {
            tracing::warn!(instance = %id, %version, "rollout stuck: the new process is not healthy");
            warned = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(ROLLOUT_HEALTH_POLL) => {}
            _ = stop.cancelled() => return,
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
