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

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parking_lot::Mutex;
use tokio::process::{Child, Command};
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

/// What the supervisor knows about one component.
#[derive(Debug)]
pub struct ChildState {
    pub pid: AtomicU32,
    pub restarts: AtomicU32,
    pub last_exit: Mutex<Option<String>>,
}

pub struct Supervisor {
    pub children: Vec<Arc<ChildState>>,
    stop: CancellationToken,
    tasks: Mutex<Option<JoinSet<()>>>,
}

impl Supervisor {
    pub fn start(
        exe: &Path,
        plan: &Plan,
        run_dir: &Path,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Supervisor> {
        let stop = shutdown.child_token();
        let mut tasks = JoinSet::new();
        let mut children = Vec::new();
        for component in &plan.components {
            let state = Arc::new(ChildState {
                pid: AtomicU32::new(0),
                restarts: AtomicU32::new(0),
                last_exit: Mutex::new(None),
            });
            let log = run_dir.join("logs").join(format!("{}.log", component.id));
            // Spawn the first instance synchronously so a broken executable
            // or log directory fails `up` at once with a clear message.
            let child = spawn(exe, component, &log)?;
            state.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
            tasks.spawn(keep_running(
                exe.to_path_buf(),
                component.clone(),
                log,
                child,
                state.clone(),
                stop.clone(),
            ));
            children.push(state);
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

fn spawn(exe: &Path, component: &Component, log: &Path) -> anyhow::Result<Child> {
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

async fn keep_running(
    exe: std::path::PathBuf,
    component: Component,
    log: std::path::PathBuf,
    mut child: Child,
    state: Arc<ChildState>,
    stop: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let status = tokio::select! {
            status = child.wait() => status,
            _ = stop.cancelled() => {
                terminate(&mut child, &component.id).await;
                return;
            }
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
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        child = loop {
            match spawn(&exe, &component, &log) {
                Ok(child) => break child,
                Err(err) => {
                    tracing::error!(component = %component.id, error = %err, "cannot restart; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(MAX_BACKOFF) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
        };
        state.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
        tracing::info!(component = %component.id, pid = child.id().unwrap_or(0), restarts, "process restarted");
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
