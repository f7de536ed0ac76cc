//! The lab's current processes, and the two files that publish them.
//!
//! [`Roster`] is the one list of the processes that run now — the planned
//! ones plus those a scale-out added, minus those a scale-in removed —
//! kept by the supervisor and read by everything else, with what the
//! supervisor knows of each ([`ChildState`]). It also owns the two files
//! that publish that list: `<run>/endpoints.json` (from the moment the lab
//! is first ready) and Prometheus' target file (from the moment Prometheus
//! starts). Both are rewritten, atomically, on every change, under the
//! roster's lock, so a change never overtakes the first write and an older
//! list never overwrites a newer one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use firedrill_rundir::RunDir;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;

use super::plan::{Component, Plan};

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

impl ChildState {
    pub fn new() -> Arc<ChildState> {
        Arc::new(ChildState {
            pid: AtomicU32::new(0),
            restarts: AtomicU32::new(0),
            last_exit: Mutex::new(None),
            version: Mutex::new(String::new()),
        })
    }
}

/// The processes of the lab as they are now, in plan order (a service's
/// scaled instances after its planned ones), and the files that list them.
pub struct Roster {
    plan: Plan,
    run_dir: RunDir,
    inner: Mutex<Members>,
}

struct Members {
    list: Vec<(Component, Arc<ChildState>)>,
    /// When the lab first became ready: set once `endpoints.json` is
    /// written; from then on every change rewrites it.
    ready_in: Option<Duration>,
    /// Prometheus' own address, once it runs: from then on every change
    /// rewrites its target file.
    prometheus: Option<String>,
}

impl Roster {
    pub fn new(plan: &Plan, run_dir: &RunDir) -> Roster {
        Roster {
            plan: plan.clone(),
            run_dir: run_dir.clone(),
            inner: Mutex::new(Members {
                list: Vec::new(),
                ready_in: None,
                prometheus: None,
            }),
        }
    }

    /// Lists a started process: after the last one of its service, else at
    /// the end.
    pub fn add(&self, component: Component, state: Arc<ChildState>) {
        let mut members = self.inner.lock();
        let at = members
            .list
            .iter()
            .rposition(|(c, _)| c.name == component.name)
            .map_or(members.list.len(), |i| i + 1);
        members.list.insert(at, (component, state));
        self.republish(&members);
    }

    /// Unlists a process that leaves the lab.
    pub fn remove(&self, id: &str) {
        let mut members = self.inner.lock();
        members.list.retain(|(c, _)| c.id != id);
        self.republish(&members);
    }

    pub fn components(&self) -> Vec<Component> {
        self.inner
            .lock()
            .list
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// What the supervisor knows about each current process.
    pub fn children(&self) -> Vec<Arc<ChildState>> {
        self.inner
            .lock()
            .list
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Crash restarts of the current processes.
    pub fn total_restarts(&self) -> u32 {
        self.inner
            .lock()
            .list
            .iter()
            .map(|(_, s)| s.restarts.load(Ordering::Relaxed))
            .sum()
    }

    /// The first process that has crashed at least `times` times, with its
    /// last exit and the end of its log: a component that cannot stay up.
    pub fn crash_looping(&self, times: u32) -> Option<String> {
        let members = self.inner.lock();
        let (component, state) = members
            .list
            .iter()
            .find(|(_, s)| s.restarts.load(Ordering::Relaxed) >= times)?;
        let exit = state.last_exit.lock().clone().unwrap_or_default();
        let log = component
            .private_log
            .clone()
            .unwrap_or_else(|| self.run_dir.log_file(&component.id));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        Some(format!(
            "{} cannot stay up: it exited {} times ({exit}); the end of {}:\n  {}",
            component.id,
            state.restarts.load(Ordering::Relaxed),
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
        ))
    }

    /// The lab is ready: writes `endpoints.json` now, and on every change
    /// from now on (`ready_in` stays the first readiness).
    pub fn publish_endpoints(&self, ready_in: Duration) -> anyhow::Result<()> {
        let mut members = self.inner.lock();
        members.ready_in.get_or_insert(ready_in);
        self.publish(&members)
    }

    /// Prometheus starts at `address`: writes its target file now, and on
    /// every change from now on.
    pub fn publish_targets(&self, address: &str) -> anyhow::Result<()> {
        let mut members = self.inner.lock();
        members.prometheus = Some(address.to_string());
        self.publish(&members)
    }

    /// After a change: a file that cannot be rewritten is reported, and the
    /// next change tries again.
    fn republish(&self, members: &Members) {
        if let Err(e) = self.publish(members) {
            tracing::warn!(error = %format!("{e:#}"), "cannot rewrite the lab's endpoint files");
        }
    }

    /// Writes every file published so far from `members`: the one place
    /// both files are rendered, always under the roster's lock.
    fn publish(&self, members: &Members) -> anyhow::Result<()> {
        let components: Vec<Component> = members.list.iter().map(|(c, _)| c.clone()).collect();
        if let Some(ready_in) = members.ready_in {
            write_endpoints(&self.plan, &components, &self.run_dir, ready_in)?;
        }
        if let Some(address) = &members.prometheus {
            write_targets(&self.run_dir, &components, address)?;
        }
        Ok(())
    }
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

/// Writes `endpoints.json` listing `components` (atomically: tests wait for
/// it to appear, and read it again after a scale). Only the [`Roster`]
/// calls this.
fn write_endpoints(
    plan: &Plan,
    components: &[Component],
    run_dir: &RunDir,
    ready_in: Duration,
) -> anyhow::Result<()> {
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
        components: components
            .iter()
            .map(|c| ComponentEndpoints {
                id: &c.id,
                name: &c.name,
                health: &c.health_url,
                metrics: &c.metrics_url,
            })
            .collect(),
    };
    let path = run_dir.endpoints();
    firedrill_rundir::replace_whole(&path, &serde_json::to_vec_pretty(&endpoints)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// One target group per process, labelled as every deployment labels them.
fn targets(components: &[Component], self_address: &str) -> serde_json::Value {
    let mut groups: Vec<_> = components
        .iter()
        .map(|c| {
            json!({
                "targets": [host_port(&c.metrics_url)],
                "labels": {"job": c.name, "instance": c.id},
            })
        })
        .collect();
    groups.push(json!({
        "targets": [self_address],
        "labels": {"job": "prometheus", "instance": "prometheus"},
    }));
    serde_json::Value::Array(groups)
}

/// Writes `<run>/prometheus/targets/lab.json` for `components` and
/// Prometheus itself at `self_address`: a temporary file renamed over the
/// old one, so Prometheus never reads half a list (the temporary's name does
/// not match the `targets/*.json` it watches). Only the [`Roster`] calls
/// this.
pub fn write_targets(
    run_dir: &RunDir,
    components: &[Component],
    self_address: &str,
) -> anyhow::Result<()> {
    let path = run_dir.prometheus_targets();
    firedrill_rundir::replace_whole(
        &path,
        &serde_json::to_vec_pretty(&targets(components, self_address))?,
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `http://127.0.0.1:7100/metrics` → `127.0.0.1:7100`.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_host_port() {
        assert_eq!(host_port("http://127.0.0.1:7100/metrics"), "127.0.0.1:7100");
    }
}
