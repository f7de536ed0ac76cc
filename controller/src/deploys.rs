//! Deploys: which `service.version` each instance runs, and how it changes.
//!
//! A bad deploy in the lab is a real rolling restart. The controller keeps
//! every deploy and rollback in its state (the history, persisted with the
//! rest) and declares what follows from it to `firedrill up`'s supervisor
//! through one file per service, `<run>/versions/<service>`, one instance
//! per line:
//!
//! ```text
//! catalog-1 2.4.0
//! catalog-2 0.1.0
//! ```
//!
//! The supervisor starts every process at the version its file names (the
//! build's version when it names none) and, when a file changes, replaces
//! the instances that run another version one at a time, each only after
//! the previous one answers `/health` with its new version (a rolling update
//! with one instance unavailable at a time and no surge). Agents report
//! their version in every poll, so a fault aimed at `catalog@2.4.0` acts on
//! exactly the processes a deploy brought up, and after a rollback on none.
//!
//! # Invariants
//!
//! - The history is append-only and the desired versions are a fold over
//!   it, so a restarted controller writes the same files again and the
//!   supervisor has nothing to do.
//! - A scenario's deploy step is performed once per run of the scenario
//!   (its record carries the step as `origin`), when the timeline computed
//!   from the persisted start time reaches it: a controller restart neither
//!   repeats nor loses it.
//! - Only the controller writes version files (whole, by rename); only the
//!   supervisor acts on them. Outside `firedrill up` there is no run
//!   directory and deploys answer that the controller has no process
//!   control.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use firedrill_runtime::AppError;
use firedrill_runtime::config::BUILD_VERSION;
use firedrill_runtime::faults::model::Target;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::Controller;
use crate::scenario::{Deploy, Scenario};
use crate::state::{RunningScenario, State, now_ms};

/// The run directory's folder of version files.
pub const VERSIONS_DIR: &str = "versions";

/// What the answer says when the lab runs without `firedrill up`.
pub const NO_PROCESS_CONTROL: &str = "this deployment gives the controller no process control \
     (under docker-compose or Kubernetes, change the image tag and roll the service there)";

/// How often the controller performs due scenario deploys and checks that
/// the version files say what the history says.
const RECONCILE_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Deploy,
    Rollback,
}

/// One change of the versions some instances of a service run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeployRecord {
    /// `d1`, `d2`, ... in history order.
    pub id: String,
    pub at_ms: i64,
    /// Who asked: an instructor, a learner (a rollback), or
    /// `scenario:<id>`.
    pub actor: String,
    pub service: String,
    pub change: Change,
    /// What each affected instance runs after the change.
    pub versions: BTreeMap<String, String>,
    /// What they ran before; a rollback restores it.
    pub previous: BTreeMap<String, String>,
    /// For a deploy: when it was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_ms: Option<i64>,
    /// For a scenario's step: `scenario:<id>@<startedMs>#<step>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl DeployRecord {
    /// `catalog-1, catalog-2: 0.1.0 → 2.4.0`, one clause per distinct change.
    pub fn describe(&self) -> String {
        let mut moves: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
        for (instance, to) in &self.versions {
            let from = self
                .previous
                .get(instance)
                .cloned()
                .unwrap_or_else(|| BUILD_VERSION.to_string());
            moves
                .entry((from, to.clone()))
                .or_default()
                .push(instance.as_str());
        }
        let clauses: Vec<String> = moves
            .into_iter()
            .map(|((from, to), mut instances)| {
                instances.sort_by_key(|i| instance_number(i));
                format!("{}: {from} → {to}", instances.join(", "))
            })
            .collect();
        clauses.join("; ")
    }

    fn changes_anything(&self) -> bool {
        self.versions
            .iter()
            .any(|(instance, to)| self.previous.get(instance) != Some(to))
    }
}

// === the history ===

/// What each instance of `service` should run, for every instance the
/// history ever changed (the others run the build's version).
pub fn desired(history: &[DeployRecord], service: &str) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::new();
    for record in history.iter().filter(|r| r.service == service) {
        versions.extend(record.versions.clone());
    }
    versions
}

/// What each instance of `service` should run now: the history's fold,
/// and for the instances a scale-out added (numbered above the `planned`
/// count) that the history never named, what `<service>-1` runs. A new
/// instance comes up on the service's current release, as a new pod comes
/// up from its deployment's template, and a rollback of that release takes
/// it along.
pub fn desired_now(state: &State, service: &str, planned: usize) -> BTreeMap<String, String> {
    let mut versions = desired(&state.deploys, service);
    let count = state.replicas.get(service).copied().unwrap_or(0) as usize;
    if let Some(template) = versions.get(&format!("{service}-1")).cloned() {
        for n in planned + 1..=count {
            versions
                .entry(format!("{service}-{n}"))
                .or_insert_with(|| template.clone());
        }
    }
    versions
}

/// What `instance` of `service` should run, per the history alone.
pub fn version_of(history: &[DeployRecord], service: &str, instance: &str) -> String {
    desired(history, service)
        .remove(instance)
        .unwrap_or_else(|| BUILD_VERSION.to_string())
}

/// Plans a deploy among the `running` instances of the target's service:
/// one named instance, the lowest-numbered `instances` (a canary), or all.
/// `current` is what each instance should run now ([`desired_now`]).
pub fn plan_deploy(
    history: &[DeployRecord],
    current: &BTreeMap<String, String>,
    deploy: &Deploy,
    running: &[String],
    actor: &str,
    origin: Option<String>,
    now: i64,
) -> Result<DeployRecord, AppError> {
    let service = &deploy.target.service;
    if running.is_empty() {
        return Err(AppError::not_found(format!(
            "no instance of {service} runs in this lab"
        )));
    }
    let mut chosen: Vec<&String> = running.iter().collect();
    chosen.sort_by_key(|i| instance_number(i));
    if let Some(one) = &deploy.target.instance {
        chosen.retain(|i| *i == one);
        if chosen.is_empty() {
            return Err(AppError::not_found(format!(
                "{one} does not run in this lab (instances of {service}: {})",
                running.join(", ")
            )));
        }
    } else if let Some(n) = deploy.instances {
        chosen.truncate(n as usize);
    }
    Ok(DeployRecord {
        id: format!("d{}", history.len() + 1),
        at_ms: now,
        actor: actor.to_string(),
        service: service.clone(),
        change: Change::Deploy,
        versions: chosen
            .iter()
            .map(|i| (i.to_string(), deploy.version.clone()))
            .collect(),
        previous: chosen
            .iter()
            .map(|i| {
                let version = current.get(*i).map_or(BUILD_VERSION, String::as_str);
                (i.to_string(), version.to_string())
            })
            .collect(),
        rolled_back_ms: None,
        origin,
    })
}

/// Undoes the deploy at `index`: marks it rolled back and appends the
/// rollback, which restores what its instances ran before.
fn roll_back(history: &mut Vec<DeployRecord>, index: usize, actor: &str, now: i64) -> DeployRecord {
    let deploy = &history[index];
    let service = deploy.service.clone();
    let record = DeployRecord {
        id: format!("d{}", history.len() + 1),
        at_ms: now,
        actor: actor.to_string(),
        service: service.clone(),
        change: Change::Rollback,
        versions: deploy.previous.clone(),
        previous: deploy
            .previous
            .keys()
            .map(|i| (i.clone(), version_of(history, &service, i)))
            .collect(),
        rolled_back_ms: None,
        origin: None,
    };
    history[index].rolled_back_ms = Some(now);
    history.push(record.clone());
    record
}

/// Rolls back the newest deploy of `service` that is still in place;
/// `None` when there is none.
pub fn rollback_latest(
    history: &mut Vec<DeployRecord>,
    service: &str,
    actor: &str,
    now: i64,
) -> Option<DeployRecord> {
    let index = history.iter().rposition(|r| {
        r.service == service && r.change == Change::Deploy && r.rolled_back_ms.is_none()
    })?;
    Some(roll_back(history, index, actor, now))
}

/// Stopping a scenario returns the lab to its baseline: the deploys this
/// run of it made and nobody rolled back are rolled back, newest first.
pub fn revert_scenario(state: &mut State, running: &RunningScenario, now: i64) -> usize {
    let prefix = format!("scenario:{}@{}#", running.id, running.started_ms);
    let mine: Vec<usize> = (0..state.deploys.len())
        .rev()
        .filter(|&i| {
            let r = &state.deploys[i];
            r.change == Change::Deploy
                && r.rolled_back_ms.is_none()
                && r.origin.as_deref().is_some_and(|o| o.starts_with(&prefix))
        })
        .collect();
    for &index in &mine {
        let record = roll_back(
            &mut state.deploys,
            index,
            "instructor (scenario stopped)",
            now,
        );
        tracing::info!(service = %record.service, change = %record.describe(), "deploy rolled back with its scenario");
    }
    mine.len()
}

/// The running scenario's deploy steps that are due at `now` and not yet
/// performed, with their origin keys. A step due after an accepted
/// mitigation is skipped: the incident is over.
pub fn due_steps(state: &State, scenarios: &[Scenario], now: i64) -> Vec<(String, Deploy)> {
    let Some(running) = &state.scenario else {
        return Vec::new();
    };
    let Some(scenario) = scenarios.iter().find(|s| s.id() == running.id) else {
        return Vec::new();
    };
    let mut due = Vec::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        let step = step.get_ref();
        let Some(Ok(deploy)) = step.deploy() else {
            continue;
        };
        let start = running.started_ms + running.scaled(step.at.0);
        if now < start || running.mitigated_ms.is_some_and(|m| m <= start) {
            continue;
        }
        let origin = format!(
            "scenario:{}@{}#{}",
            running.id,
            running.started_ms,
            index + 1
        );
        if !state
            .deploys
            .iter()
            .any(|r| r.origin.as_deref() == Some(&origin))
        {
            due.push((origin, deploy));
        }
    }
    due
}

fn instance_number(id: &str) -> u32 {
    id.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(u32::MAX)
}

// === the run directory ===

pub fn versions_file(run_dir: &Path, service: &str) -> PathBuf {
    run_dir.join(VERSIONS_DIR).join(service)
}

/// The file's text: a comment, then `<instance> <version>` lines.
pub fn render(versions: &BTreeMap<String, String>) -> String {
    let mut text = String::from(
        "# Desired service.version per instance: written by the firedrill controller,\n\
         # rolled out by the `firedrill up` supervisor. Unlisted instances run the build's version.\n",
    );
    for (instance, version) in versions {
        text.push_str(&format!("{instance} {version}\n"));
    }
    text
}

/// Parses a version file; blank lines and `#` comments are skipped.
pub fn parse_versions(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut versions = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(instance), Some(version), None) => {
                firedrill_runtime::faults::model::check_version(version)
                    .map_err(|e| format!("line {}: {e}", n + 1))?;
                versions.insert(instance.to_string(), version.to_string());
            }
            _ => {
                return Err(format!(
                    "line {}: expected `<instance> <version>`, got {line:?}",
                    n + 1
                ));
            }
        }
    }
    Ok(versions)
}

/// Reads `<run>/versions/<service>`; no file means no instance was ever
/// changed.
pub fn read_versions(run_dir: &Path, service: &str) -> Result<BTreeMap<String, String>, String> {
    Ok(read_parsed(&versions_file(run_dir, service), parse_versions)?.unwrap_or_default())
}

/// Reads a file the controller declares to the supervisor and parses it;
/// `None` when there is no file. Errors name the file (and the parser's
/// line).
pub(crate) fn read_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces `path` with `text` when its content differs (write, then
/// rename, so the supervisor never reads half a file); whether it changed.
pub(crate) fn replace_whole(path: &Path, text: &str) -> std::io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// Replaces the service's version file when its content differs (write,
/// then rename, so the supervisor never reads half a file).
pub fn write_versions(
    run_dir: &Path,
    service: &str,
    versions: &BTreeMap<String, String>,
) -> std::io::Result<bool> {
    replace_whole(&versions_file(run_dir, service), &render(versions))
}

/// The instances of `service` the supervisor started (its pid files).
pub fn running_instances(run_dir: &Path, service: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("pids")) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".pid")?;
            let (s, n) = id.rsplit_once('-')?;
            (s == service && n.parse::<u32>().is_ok()).then(|| id.to_string())
        })
        .collect();
    found.sort_by_key(|i| instance_number(i));
    found
}

// === acting on the lab ===

fn run_dir(ctl: &Controller) -> Result<&Path, AppError> {
    ctl.config
        .run_dir
        .as_deref()
        .ok_or_else(|| AppError::conflict(format!("cannot deploy: {NO_PROCESS_CONTROL}")))
}

/// Writes every version file the history implies (those that differ).
pub fn sync_files(ctl: &Controller) -> Result<(), AppError> {
    let Some(run_dir) = &ctl.config.run_dir else {
        return Ok(());
    };
    let state = ctl.state.lock();
    let services: BTreeSet<&str> = state
        .deploys
        .iter()
        .map(|r| r.service.as_str())
        .chain(state.replicas.keys().map(String::as_str))
        .collect();
    for service in services {
        let versions = desired_now(&state, service, ctl.planned(service));
        if write_versions(run_dir, service, &versions)
            .map_err(|e| AppError::internal(format!("cannot write the {service} versions: {e}")))?
        {
            tracing::info!(service, versions = ?versions, "desired versions written");
        }
    }
    // Versions first: an instance a scale-out starts finds its version.
    for (service, &count) in &state.replicas {
        if crate::replicas::write_replicas(run_dir, service, count).map_err(|e| {
            AppError::internal(format!("cannot write the {service} instance count: {e}"))
        })? {
            tracing::info!(service, count, "desired instance count written");
        }
    }
    Ok(())
}

/// [`plan_deploy`] against what each instance should run now, scaled-out
/// instances included.
fn plan_now(
    ctl: &Controller,
    state: &State,
    deploy: &Deploy,
    running: &[String],
    actor: &str,
    origin: Option<String>,
) -> Result<DeployRecord, AppError> {
    let service = &deploy.target.service;
    let current = desired_now(state, service, ctl.planned(service));
    plan_deploy(
        &state.deploys,
        &current,
        deploy,
        running,
        actor,
        origin,
        now_ms(),
    )
}

/// Rolls `deploy.target` to `deploy.version` (an instructor's deploy).
/// A deploy that would change nothing is refused.
pub fn deploy(ctl: &Controller, deploy: &Deploy, actor: &str) -> Result<DeployRecord, AppError> {
    let run_dir = run_dir(ctl)?;
    let running = running_instances(run_dir, &deploy.target.service);
    let record = ctl.update(|state| {
        let record = plan_now(ctl, state, deploy, &running, actor, None)?;
        if !record.changes_anything() {
            return Err(AppError::conflict(format!(
                "{} already runs {} ({})",
                deploy.target,
                deploy.version,
                record
                    .versions
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        state.deploys.push(record.clone());
        Ok(record)
    })??;
    sync_files(ctl)?;
    tracing::info!(service = %record.service, actor, change = %record.describe(), "deploy started");
    Ok(record)
}

/// `rollback <service>`: a rolling restart of the service's newest deploy
/// back to what ran before it. `Some(what it did)`, or `None` when no
/// deploy of the service is in place (so other kinds of rollback can be
/// tried after it).
pub fn rollback(
    ctl: &Controller,
    target: &Target,
    actor: &str,
) -> Result<Option<String>, AppError> {
    crate::ops::whole_service(crate::scenario::Verb::Rollback, target)?;
    let record =
        ctl.update(|state| rollback_latest(&mut state.deploys, &target.service, actor, now_ms()))?;
    let Some(record) = record else {
        return Ok(None);
    };
    sync_files(ctl)?;
    tracing::info!(service = %record.service, actor, change = %record.describe(), "rollback started");
    Ok(Some(format!(
        "rolling back {} ({}), one instance at a time",
        record.service,
        record.describe()
    )))
}

/// Performs the running scenario's deploy steps when they come due, and
/// keeps the version files in step with the history, until `shutdown`.
/// Without a run directory there is nothing to act on.
pub async fn reconcile(ctl: Arc<Controller>, shutdown: CancellationToken) {
    let Some(run_dir) = ctl.config.run_dir.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Steps that could not be performed, warned about once each.
    let mut failed = BTreeSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let due = due_steps(&ctl.state.lock(), &ctl.scenarios, now_ms());
        for (origin, deploy) in due {
            if failed.contains(&origin) {
                continue;
            }
            let running = running_instances(&run_dir, &deploy.target.service);
            let actor = origin.split('@').next().unwrap_or("scenario").to_string();
            let done = ctl.update(|state| {
                if state
                    .deploys
                    .iter()
                    .any(|r| r.origin.as_ref() == Some(&origin))
                {
                    return Ok(None);
                }
                let record =
                    plan_now(&ctl, state, &deploy, &running, &actor, Some(origin.clone()))?;
                state.deploys.push(record.clone());
                Ok(Some(record))
            });
            match done {
                Ok(Ok(Some(record))) => {
                    tracing::info!(service = %record.service, %origin, change = %record.describe(), "scenario deploy started");
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(%origin, error = %e.message, "cannot perform a scenario deploy");
                    failed.insert(origin);
                }
            }
        }
        if let Err(e) = sync_files(&ctl) {
            tracing::warn!(error = %e.message, "cannot write the version files");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(target: &str, version: &str, instances: Option<u32>) -> Deploy {
        Deploy {
            target: Target::parse(target).unwrap(),
            version: version.into(),
            instances,
        }
    }

    fn running(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// A deploy by `ann` at time 1 over `history`, no scale-out involved.
    fn plan(
        history: &[DeployRecord],
        deploy: &Deploy,
        running: &[String],
    ) -> Result<DeployRecord, AppError> {
        let current = desired(history, &deploy.target.service);
        plan_deploy(history, &current, deploy, running, "ann", None, 1)
    }

    #[test]
    fn deploys_and_rollbacks_fold_into_desired_versions() {
        let all = running(&["catalog-2", "catalog-1"]);
        let mut history = Vec::new();
        let first = plan(&history, &deploy("catalog", "2.4.0", None), &all).unwrap();
        assert_eq!(first.describe(), "catalog-1, catalog-2: 0.1.0 → 2.4.0");
        history.push(first);
        assert_eq!(version_of(&history, "catalog", "catalog-2"), "2.4.0");
        assert_eq!(version_of(&history, "search", "search-1"), BUILD_VERSION);

        // A canary of the next version on the lowest-numbered instance.
        let canary = plan_deploy(
            &history,
            &desired(&history, "catalog"),
            &deploy("catalog", "2.5.0", Some(1)),
            &all,
            "ann",
            None,
            2,
        )
        .unwrap();
        assert_eq!(canary.id, "d2");
        assert_eq!(canary.describe(), "catalog-1: 2.4.0 → 2.5.0");
        history.push(canary);
        assert_eq!(
            desired(&history, "catalog"),
            BTreeMap::from([
                ("catalog-1".into(), "2.5.0".into()),
                ("catalog-2".into(), "2.4.0".into())
            ])
        );

        // Rollbacks undo the newest deploy still in place, then the next.
        let back = rollback_latest(&mut history, "catalog", "bob", 3).unwrap();
        assert_eq!(back.change, Change::Rollback);
        assert_eq!(back.describe(), "catalog-1: 2.5.0 → 2.4.0");
        assert_eq!(history[1].rolled_back_ms, Some(3));
        let back = rollback_latest(&mut history, "catalog", "bob", 4).unwrap();
        assert_eq!(back.describe(), "catalog-1, catalog-2: 2.4.0 → 0.1.0");
        assert!(rollback_latest(&mut history, "catalog", "bob", 5).is_none());
        assert!(rollback_latest(&mut history, "search", "bob", 5).is_none());
        assert!(
            desired(&history, "catalog")
                .values()
                .all(|v| v == BUILD_VERSION)
        );
        assert_eq!(history.len(), 4);
    }

    #[test]
    fn a_deploy_names_instances_that_run() {
        let all = running(&["catalog-1", "catalog-2"]);
        let one = plan(&[], &deploy("catalog-2", "2.4.0", None), &all).unwrap();
        assert_eq!(one.versions.keys().collect::<Vec<_>>(), ["catalog-2"]);
        let err = plan(&[], &deploy("catalog-3", "2.4.0", None), &all).unwrap_err();
        assert!(err.message.contains("catalog-3 does not run"), "{err:?}");
        let err = plan(&[], &deploy("catalog", "2.4.0", None), &[]).unwrap_err();
        assert!(err.message.contains("no instance of catalog"), "{err:?}");
        // Asking for more instances than run deploys to all of them.
        let many = plan_deploy(
            &[],
            &BTreeMap::new(),
            &deploy("catalog", "2.4.0", Some(5)),
            &all,
            "a",
            None,
            1,
        )
        .unwrap();
        assert_eq!(many.versions.len(), 2);
        assert!(many.changes_anything());
    }

    #[test]
    fn history_survives_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = State::default();
        state.deploys.push(
            plan_deploy(
                &[],
                &BTreeMap::new(),
                &deploy("catalog", "2.4.0", None),
                &running(&["catalog-1"]),
                "scenario:x",
                Some("scenario:x@5#1".into()),
                7,
            )
            .unwrap(),
        );
        rollback_latest(&mut state.deploys, "catalog", "bob", 9);
        state.save(&path).unwrap();
        let back = State::load(&path).unwrap();
        assert_eq!(back, state);
        assert_eq!(
            version_of(&back.deploys, "catalog", "catalog-1"),
            BUILD_VERSION
        );
        // A state file from before deploys existed still loads.
        std::fs::write(
            &path,
            r#"{"nextId":0,"faults":{},"scenario":null,"ops":[]}"#,
        )
        .unwrap();
        assert!(State::load(&path).unwrap().deploys.is_empty());
    }

    #[test]
    fn version_files_round_trip_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let versions = BTreeMap::from([
            ("catalog-1".to_string(), "2.4.0".to_string()),
            ("catalog-2".to_string(), "0.1.0".to_string()),
        ]);
        assert!(read_versions(dir.path(), "catalog").unwrap().is_empty());
        assert!(write_versions(dir.path(), "catalog", &versions).unwrap());
        assert!(
            !write_versions(dir.path(), "catalog", &versions).unwrap(),
            "unchanged content is not rewritten"
        );
        assert_eq!(read_versions(dir.path(), "catalog").unwrap(), versions);
        for bad in ["catalog-1", "catalog-1 2.4.0 extra", "catalog-1 2 4"] {
            assert!(parse_versions(bad).unwrap_err().contains("line 1"), "{bad}");
        }
        assert!(parse_versions("catalog-1 a@b").is_err());
    }

    #[test]
    fn running_instances_come_from_pid_files() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        std::fs::create_dir_all(&pids).unwrap();
        for id in [
            "catalog-10",
            "catalog-2",
            "payment-provider-1",
            "payment-1",
            "collector",
        ] {
            std::fs::write(pids.join(format!("{id}.pid")), "1").unwrap();
        }
        assert_eq!(
            running_instances(dir.path(), "catalog"),
            ["catalog-2", "catalog-10"]
        );
        assert_eq!(running_instances(dir.path(), "payment"), ["payment-1"]);
        assert!(running_instances(&dir.path().join("none"), "catalog").is_empty());
    }

    #[test]
    fn scenario_deploy_steps_come_due_once_and_revert_on_stop() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/catalog-bad-deploy.toml"),
        )
        .unwrap();
        let scenario = crate::scenario::parse(Path::new("catalog-bad-deploy.toml"), &text).unwrap();
        let scenarios = [scenario];
        let running_scenario = RunningScenario {
            id: "catalog-bad-deploy".into(),
            started_ms: 1_000,
            mitigated_ms: None,
            speed: 1.0,
            ended_steps: Default::default(),
        };
        let mut state = State {
            scenario: Some(running_scenario.clone()),
            ..State::default()
        };
        assert!(due_steps(&state, &scenarios, 999).is_empty());
        let due = due_steps(&state, &scenarios, 1_000);
        assert_eq!(due.len(), 1, "{due:?}");
        let (origin, step) = &due[0];
        assert_eq!(origin, "scenario:catalog-bad-deploy@1000#1");
        assert_eq!(step.version, "2.4.0");
        let record = plan_deploy(
            &state.deploys,
            &desired(&state.deploys, "catalog"),
            step,
            &running(&["catalog-1", "catalog-2"]),
            "scenario:catalog-bad-deploy",
            Some(origin.clone()),
            1_000,
        )
        .unwrap();
        state.deploys.push(record);
        assert!(due_steps(&state, &scenarios, 5_000).is_empty(), "done once");

        // The version-targeted defect reaches only the new version.
        let new = state.assignment(&scenarios, "catalog", "catalog-1", Some("2.4.0"), 5_000);
        assert_eq!(new.len(), 1, "{new:?}");
        let old = state.assignment(&scenarios, "catalog", "catalog-1", Some("0.1.0"), 5_000);
        assert!(old.is_empty(), "{old:?}");

        // Stopping the scenario rolls its deploy back; a later run of the
        // same scenario deploys again.
        assert_eq!(revert_scenario(&mut state, &running_scenario, 6_000), 1);
        assert_eq!(revert_scenario(&mut state, &running_scenario, 6_000), 0);
        assert_eq!(
            version_of(&state.deploys, "catalog", "catalog-2"),
            BUILD_VERSION
        );
        state.scenario = Some(RunningScenario {
            started_ms: 7_000,
            ..running_scenario
        });
        assert_eq!(due_steps(&state, &scenarios, 7_000).len(), 1);
        // A step due after an accepted mitigation does not happen.
        state.scenario.as_mut().unwrap().mitigated_ms = Some(7_000);
        assert!(due_steps(&state, &scenarios, 8_000).is_empty());
    }
}
