//! The deploy history: which `service.version` each instance should run,
//! as a fold over every deploy and rollback, oldest first.
//!
//! The history is append-only and the desired versions are a fold over it,
//! so a restarted controller computes the same versions again. A
//! scenario's deploy step is performed once per run of the scenario (its
//! record carries the step as `origin`), when the timeline computed from
//! the persisted start time reaches it: a restart neither repeats nor loses
//! it. Acting on the lab (the version files) is `deploys`' work.

use std::collections::BTreeMap;

use firedrill_rundir::instance_number;
use firedrill_runtime::AppError;
use firedrill_runtime::config::BUILD_VERSION;
use serde::{Deserialize, Serialize};

use super::run::RunningScenario;
use super::scenario::{Deploy, Scenario};

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

    pub fn changes_anything(&self) -> bool {
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
pub fn desired_now(
    history: &[DeployRecord],
    scaled: Option<u32>,
    service: &str,
    planned: usize,
) -> BTreeMap<String, String> {
    let mut versions = desired(history, service);
    let count = scaled.unwrap_or(0) as usize;
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
pub fn revert_scenario(
    history: &mut Vec<DeployRecord>,
    running: &RunningScenario,
    now: i64,
) -> usize {
    let prefix = format!("scenario:{}@{}#", running.id, running.started_ms);
    let mine: Vec<usize> = (0..history.len())
        .rev()
        .filter(|&i| {
            let r = &history[i];
            r.change == Change::Deploy
                && r.rolled_back_ms.is_none()
                && r.origin.as_deref().is_some_and(|o| o.starts_with(&prefix))
        })
        .collect();
    for &index in &mine {
        let record = roll_back(history, index, "instructor (scenario stopped)", now);
        tracing::info!(service = %record.service, change = %record.describe(), "deploy rolled back with its scenario");
    }
    mine.len()
}

/// The running scenario's deploy steps that are due at `now` and not yet
/// performed, with their origin keys. A step due after an accepted
/// mitigation is skipped: the incident is over.
pub fn due_steps(
    history: &[DeployRecord],
    running: Option<&RunningScenario>,
    scenarios: &[Scenario],
    now: i64,
) -> Vec<(String, Deploy)> {
    let Some(running) = running else {
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
        if !history.iter().any(|r| r.origin.as_deref() == Some(&origin)) {
            due.push((origin, deploy));
        }
    }
    due
}

#[cfg(test)]
mod tests {
    use firedrill_runtime::faults::model::Target;

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
}
