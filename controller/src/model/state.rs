//! The controller's desired state: faults, the running scenario, each
//! service's live config, the drained instances, the scaled services'
//! instance counts, the deploy history and the learners. (What people did,
//! the ops log, is a journal of its own: see `store`.)
//!
//! Times are wall-clock milliseconds so the state survives a restart: a
//! fault injected for ten minutes still ends ten minutes after injection,
//! and a scenario's timeline resumes where its clock says it is. The
//! controller saves it whole after every change.
//!
//! A service's config is its ops changes (config-set, flag-set,
//! rate-limit) with the config pushes in force laid over them, oldest
//! first. Whenever that result differs from the last one handed out, it
//! becomes the next version: versions only grow, per service, and are
//! persisted here, so a restarted controller continues the count.

use std::collections::{BTreeMap, BTreeSet};

use firedrill_runtime::faults::model::{AssignedFault, FaultKind, FaultSpec, SERVICES};
use firedrill_runtime::live::{ConfigPatch, ConfigVersion};
use serde::{Deserialize, Serialize};

use super::deploy::DeployRecord;
use super::exercise::Exercise;
use super::op::Verb;
use super::run::RunningScenario;
use super::scenario::{Lasts, Scenario};

/// A fault injected by hand (`firedrill fault inject`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredFault {
    pub id: String,
    pub spec: FaultSpec,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// One mitigation op, as performed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OpRecord {
    pub at_ms: i64,
    pub actor: String,
    pub op: Verb,
    pub target: String,
    /// What the op did, in words.
    pub result: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub next_id: u64,
    pub faults: BTreeMap<String, StoredFault>,
    pub scenario: Option<RunningScenario>,
    /// Every deploy and rollback, oldest first: what each instance should
    /// run follows from it (see `deploys`).
    #[serde(default)]
    pub deploys: Vec<DeployRecord>,
    /// Live config by service (only services whose config ever changed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, ServiceConfig>,
    /// Instances (`payment-2`) every caller leaves out of rotation.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub drained: BTreeSet<String>,
    /// How many instances each scaled service runs (`ops scale`); the
    /// others run what the lab planned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replicas: BTreeMap<String, u32>,
    /// Learner name → the SHA-256 of their token (the token itself is only
    /// ever shown once, to the instructor who added them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub learners: BTreeMap<String, String>,
    /// How many lab resets were asked for: the supervisor applies each.
    #[serde(default)]
    pub resets: u64,
    /// When the latest reset was asked for.
    #[serde(default)]
    pub reset_at_ms: i64,
    /// The exercise running now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exercise: Option<Exercise>,
    /// Every exercise that ended, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exercises: Vec<Exercise>,
    #[serde(default)]
    pub next_exercise: u64,
}

/// One service's live config.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConfig {
    /// The version last handed out; each change adds one.
    pub version: u64,
    /// That version's values (what differs from the processes' flags).
    #[serde(default)]
    pub values: ConfigPatch,
    /// Changes made by ops, oldest first; a rollback takes the last away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ConfigChange>,
}

/// A config change made by an op.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChange {
    pub at_ms: i64,
    pub op: Verb,
    pub values: ConfigPatch,
}

/// A fault in force now, whatever put it there.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActiveFault {
    pub id: String,
    /// `manual`, or `scenario:<id>`.
    pub origin: String,
    pub spec: FaultSpec,
    /// When it started.
    pub started_ms: i64,
    /// When it ends; `None` while it waits for a mitigation.
    pub ends_ms: Option<i64>,
}

/// Wall-clock milliseconds (the controller's clock is never skewed: it runs
/// no fault agent).
pub fn now_ms() -> i64 {
    firedrill_runtime::clock::now_unix_ms()
}

impl State {
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("f{}", self.next_id)
    }

    /// Drops hand-injected faults that have expired.
    pub fn expire(&mut self, now: i64) -> bool {
        let before = self.faults.len();
        self.faults.retain(|_, f| f.expires_ms > now);
        before != self.faults.len()
    }

    /// Every fault in force at `now`: manual ones and the running
    /// scenario's active steps.
    pub fn active(&self, scenarios: &[Scenario], now: i64) -> Vec<ActiveFault> {
        let mut active: Vec<ActiveFault> = self
            .faults
            .values()
            .filter(|f| f.created_ms <= now && now < f.expires_ms)
            .map(|f| ActiveFault {
                id: f.id.clone(),
                origin: "manual".into(),
                spec: f.spec.clone(),
                started_ms: f.created_ms,
                ends_ms: Some(f.expires_ms),
            })
            .collect();
        let Some(running) = &self.scenario else {
            return active;
        };
        let Some(scenario) = scenarios.iter().find(|s| s.id() == running.id) else {
            return active;
        };
        for (index, step) in scenario.steps.iter().enumerate() {
            if running.ended_steps.contains(&index) {
                continue;
            }
            let step = step.get_ref();
            let (Ok(spec), Some(lasts)) = (step.fault(), step.lasts) else {
                continue;
            };
            let start = running.started_ms + running.scaled(step.at.0);
            let end = match lasts {
                Lasts::For(d) => Some(start + running.scaled(d.0)),
                Lasts::UntilMitigated => running.mitigated_ms,
                Lasts::Scenario => None,
            };
            if now >= start && end.is_none_or(|end| now < end) {
                active.push(ActiveFault {
                    id: format!("{}#{}", running.id, index + 1),
                    origin: format!("scenario:{}", running.id),
                    spec,
                    started_ms: start,
                    ends_ms: end,
                });
            }
        }
        active
    }

    /// What the agent of `service`/`instance`, running `version` (as it
    /// reports it), must apply, valid for `lease_ms`. Config pushes are left
    /// out: they reach agents as the config version.
    pub fn assignment(
        &self,
        scenarios: &[Scenario],
        service: &str,
        instance: &str,
        version: Option<&str>,
        now: i64,
    ) -> Vec<AssignedFault> {
        self.active(scenarios, now)
            .into_iter()
            .filter(|f| f.spec.target.selects_running(service, instance, version))
            .filter(|f| !matches!(f.spec.kind, FaultKind::ConfigPush(_)))
            .map(|f| AssignedFault {
                id: f.id,
                remaining_ms: f.ends_ms.map_or(u64::MAX, |end| (end - now).max(0) as u64),
                spec: f.spec,
            })
            .collect()
    }

    /// The config pushes in force for `service` at `now`, oldest first.
    pub fn config_pushes(
        &self,
        scenarios: &[Scenario],
        service: &str,
        now: i64,
    ) -> Vec<ActiveFault> {
        let mut pushes: Vec<ActiveFault> = self
            .active(scenarios, now)
            .into_iter()
            .filter(|f| {
                f.spec.target.service == service && matches!(f.spec.kind, FaultKind::ConfigPush(_))
            })
            .collect();
        pushes.sort_by(|a, b| (a.started_ms, &a.id).cmp(&(b.started_ms, &b.id)));
        pushes
    }

    /// What `service` runs with at `now`: its ops changes, then the config
    /// pushes in force over them.
    pub fn config_values(&self, scenarios: &[Scenario], service: &str, now: i64) -> ConfigPatch {
        let mut values = ConfigPatch::default();
        if let Some(config) = self.config.get(service) {
            for change in &config.changes {
                values.merge(&change.values);
            }
        }
        for push in self.config_pushes(scenarios, service, now) {
            if let FaultKind::ConfigPush(pushed) = &push.spec.kind {
                values.merge(pushed);
            }
        }
        values
    }

    /// Makes what `service` runs with at `now` its next version if it
    /// differs from the last one handed out; true when it did.
    pub fn refresh_config(&mut self, scenarios: &[Scenario], service: &str, now: i64) -> bool {
        if !SERVICES.contains(&service) {
            return false;
        }
        let values = self.config_values(scenarios, service, now);
        if values.is_empty() && !self.config.contains_key(service) {
            return false;
        }
        let config = self.config.entry(service.to_string()).or_default();
        if config.values == values {
            return false;
        }
        config.version += 1;
        config.values = values;
        true
    }

    /// The version of `service`'s config last handed out.
    pub fn config_version(&self, service: &str) -> ConfigVersion {
        self.config
            .get(service)
            .map(|c| ConfigVersion {
                version: c.version,
                values: c.values.clone(),
            })
            .unwrap_or_default()
    }

    /// Records an op's config change to `service` and makes it a version;
    /// returns the version now in force.
    pub fn change_config(
        &mut self,
        scenarios: &[Scenario],
        service: &str,
        change: ConfigChange,
        now: i64,
    ) -> u64 {
        self.config
            .entry(service.to_string())
            .or_default()
            .changes
            .push(change);
        self.refresh_config(scenarios, service, now);
        self.config_version(service).version
    }

    /// Ends an active fault early: removes a manual one, or marks the
    /// running scenario's step (`<scenario>#<n>`) ended. True if found.
    pub fn end_fault(&mut self, id: &str) -> bool {
        if self.faults.remove(id).is_some() {
            return true;
        }
        let Some(running) = self.scenario.as_mut() else {
            return false;
        };
        let step = id
            .strip_prefix(running.id.as_str())
            .and_then(|rest| rest.strip_prefix('#'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n >= 1);
        match step {
            Some(n) => running.ended_steps.insert(n - 1),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use firedrill_runtime::faults::model::{Millis, Target};

    use firedrill_runtime::config::BUILD_VERSION;

    use super::*;
    use crate::model::deploy::{desired, due_steps, plan_deploy, revert_scenario, version_of};
    use crate::store::Snapshot;

    fn running(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn latency(target: &str) -> FaultSpec {
        FaultSpec {
            kind: FaultKind::Latency {
                latency: Millis(300),
                jitter: Millis(0),
            },
            target: Target::parse(target).unwrap(),
            toxicity: 1.0,
        }
    }

    #[test]
    fn state_survives_a_round_trip_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = State::default();
        let id = state.new_id();
        state.faults.insert(
            id.clone(),
            StoredFault {
                id,
                spec: latency("catalog"),
                created_ms: 1,
                expires_ms: 2,
            },
        );
        state.scenario = Some(RunningScenario {
            id: "x".into(),
            started_ms: 5,
            mitigated_ms: None,
            speed: 1.0,
            ended_steps: BTreeSet::new(),
        });
        let snapshot = Snapshot::new(path.clone());
        snapshot.save(&state).unwrap();
        assert_eq!(snapshot.load::<State>().unwrap(), state);
        assert_eq!(
            Snapshot::new(dir.path().join("none.json"))
                .load::<State>()
                .unwrap(),
            State::default()
        );
        std::fs::write(&path, b"{").unwrap();
        assert!(
            snapshot
                .load::<State>()
                .unwrap_err()
                .to_string()
                .contains("corrupt")
        );
    }

    #[test]
    fn agents_get_only_their_faults_until_expiry() {
        let mut state = State::default();
        for (id, target) in [("f1", "catalog"), ("f2", "payment-2")] {
            state.faults.insert(
                id.into(),
                StoredFault {
                    id: id.into(),
                    spec: latency(target),
                    created_ms: 0,
                    expires_ms: 1_000,
                },
            );
        }
        assert_eq!(
            state
                .assignment(&[], "catalog", "catalog-2", None, 10)
                .len(),
            1
        );
        assert_eq!(
            state
                .assignment(&[], "payment", "payment-1", None, 10)
                .len(),
            0
        );
        assert_eq!(
            state.assignment(&[], "payment", "payment-2", None, 10)[0].remaining_ms,
            990
        );
        assert!(
            state
                .assignment(&[], "catalog", "catalog-1", None, 1_000)
                .is_empty()
        );
        assert!(state.expire(1_000));
        assert!(state.faults.is_empty());
    }

    fn config_push(service: &str, key: &str, value: &str) -> FaultSpec {
        let mut values = ConfigPatch::default();
        values.set(key, &serde_json::json!(value)).unwrap();
        FaultSpec {
            kind: FaultKind::ConfigPush(values),
            target: Target::parse(service).unwrap(),
            toxicity: 1.0,
        }
    }

    fn change(at_ms: i64, key: &str, value: &str) -> ConfigChange {
        let mut values = ConfigPatch::default();
        values.set(key, &serde_json::json!(value)).unwrap();
        ConfigChange {
            at_ms,
            op: Verb::ConfigSet,
            values,
        }
    }

    fn timeout(state: &State, service: &str) -> Option<u64> {
        state
            .config_version(service)
            .values
            .timeouts
            .get("payment")
            .map(|ms| ms.0)
    }

    #[test]
    fn config_versions_grow_with_each_change_and_only_then() {
        let mut state = State::default();
        assert!(!state.refresh_config(&[], "checkout", 0));
        assert_eq!(state.config_version("checkout").version, 0);
        let v = state.change_config(&[], "checkout", change(10, "timeouts.payment", "50ms"), 10);
        assert_eq!((v, timeout(&state, "checkout")), (1, Some(50)));
        assert!(
            !state.refresh_config(&[], "checkout", 20),
            "no change, no version"
        );

        // A push lays its values over the ops' while it lasts...
        state.faults.insert(
            "f1".into(),
            StoredFault {
                id: "f1".into(),
                spec: config_push("checkout", "timeouts.payment", "1ms"),
                created_ms: 100,
                expires_ms: 200,
            },
        );
        assert!(!state.refresh_config(&[], "checkout", 99));
        assert!(state.refresh_config(&[], "checkout", 150));
        assert_eq!(
            (
                state.config_version("checkout").version,
                timeout(&state, "checkout")
            ),
            (2, Some(1))
        );
        // ...and agents get it as config, never as a fault.
        assert!(
            state
                .assignment(&[], "checkout", "checkout-1", None, 150)
                .is_empty()
        );
        // When it ends, what was before comes back at a new version.
        assert!(state.refresh_config(&[], "checkout", 200));
        assert_eq!(
            (
                state.config_version("checkout").version,
                timeout(&state, "checkout")
            ),
            (3, Some(50))
        );
        // Other services and unknown names are untouched.
        assert_eq!(state.config_version("payment"), ConfigVersion::default());
        assert!(!state.refresh_config(&[], "warehouse", 200));
        assert!(!state.config.contains_key("warehouse"));
    }

    #[test]
    fn config_versions_drains_and_scales_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = State::default();
        state.change_config(&[], "checkout", change(10, "retries.budget", "0.1"), 10);
        state.change_config(&[], "checkout", change(20, "retries.count", "1"), 20);
        state.drained.insert("payment-2".into());
        state.replicas.insert("catalog".into(), 4);
        let snapshot = Snapshot::new(path.clone());
        snapshot.save(&state).unwrap();
        let mut again: State = snapshot.load().unwrap();
        assert_eq!(again, state);
        assert_eq!(again.config_version("checkout").version, 2);
        let v = again.change_config(&[], "checkout", change(30, "retries.jitter", "false"), 30);
        assert_eq!(v, 3, "the count continues where it was");
        assert!(again.drained.contains("payment-2"));
        assert_eq!(again.replicas["catalog"], 4);
        // A state file from before live config still loads.
        std::fs::write(
            &path,
            r#"{"nextId":0,"faults":{},"scenario":null,"ops":[]}"#,
        )
        .unwrap();
        assert_eq!(snapshot.load::<State>().unwrap(), State::default());
    }

    /// The test scenario `slow-catalog` (one latency fault on catalog,
    /// until mitigated), rewritten by `edit`, running since 1 s at normal
    /// speed.
    fn slow_catalog_running(
        edit: impl FnOnce(String) -> String,
        mitigated_ms: Option<i64>,
    ) -> ([Scenario; 1], State) {
        let text = crate::scenarios::tests::GOOD.to_string();
        let scenario =
            crate::scenarios::parse(Path::new("slow-catalog.toml"), &edit(text)).unwrap();
        let state = State {
            scenario: Some(RunningScenario {
                id: "slow-catalog".into(),
                started_ms: 1_000,
                mitigated_ms,
                speed: 1.0,
                ended_steps: BTreeSet::new(),
            }),
            ..State::default()
        };
        ([scenario], state)
    }

    #[test]
    fn a_scenario_step_can_be_ended_early() {
        let (scenarios, mut state) = slow_catalog_running(
            |text| {
                text.replace(
                    "target = \"catalog\"\nkind = \"latency\"\nlatency = \"300ms\"",
                    "target = \"catalog\"\nkind = \"config-push\"\nrateLimits = { \"/products\" = 1 }",
                )
            },
            None,
        );
        let pushes = state.config_pushes(&scenarios, "catalog", 2_000);
        assert_eq!(pushes.len(), 1);
        assert_eq!(pushes[0].started_ms, 1_000);
        assert!(state.refresh_config(&scenarios, "catalog", 2_000));
        assert!(state.end_fault(&pushes[0].id));
        assert!(state.config_pushes(&scenarios, "catalog", 2_000).is_empty());
        assert!(state.refresh_config(&scenarios, "catalog", 2_000));
        assert_eq!(state.config_version("catalog").version, 2);
        assert!(state.config_version("catalog").values.is_empty());
        assert!(!state.end_fault("slow-catalog#9x"));
    }

    #[test]
    fn a_scenario_timeline_follows_its_clock_and_mitigation() {
        let (scenarios, mut state) = slow_catalog_running(|text| text, None);
        assert!(state.active(&scenarios, 999).is_empty());
        let during = state.active(&scenarios, 10_000_000);
        assert!(
            during.iter().any(|f| f.spec.target.service == "catalog"),
            "{during:?}"
        );
        let running = state.scenario.as_ref().unwrap();
        assert_eq!(running.scaled(10_000), 10_000);
        let fast = RunningScenario {
            speed: 10.0,
            ..running.clone()
        };
        assert_eq!(fast.scaled(10_000), 1_000);
        state.scenario.as_mut().unwrap().mitigated_ms = Some(20_000_000);
        assert!(
            state
                .active(&scenarios, 20_000_001)
                .iter()
                .all(|f| f.ends_ms.is_some())
        );
    }

    #[test]
    fn a_fault_that_lasts_the_scenario_outlives_its_mitigation() {
        let (scenarios, mut state) = slow_catalog_running(
            |text| text.replacen("lasts = \"until-mitigated\"", "lasts = \"scenario\"", 1),
            Some(5_000),
        );
        let later = state.active(&scenarios, 86_400_000);
        assert!(
            later
                .iter()
                .any(|f| f.spec.target.service == "catalog" && f.ends_ms.is_none()),
            "{later:?}"
        );
        state.scenario = None;
        assert!(state.active(&scenarios, 86_400_000).is_empty());
    }

    #[test]
    fn scenario_deploy_steps_come_due_once_and_revert_on_stop() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/catalog-bad-deploy.toml"),
        )
        .unwrap();
        let scenario =
            crate::scenarios::parse(Path::new("catalog-bad-deploy.toml"), &text).unwrap();
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
        assert!(due_steps(&state.deploys, state.scenario.as_ref(), &scenarios, 999).is_empty());
        let due = due_steps(&state.deploys, state.scenario.as_ref(), &scenarios, 1_000);
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
        assert!(
            due_steps(&state.deploys, state.scenario.as_ref(), &scenarios, 5_000).is_empty(),
            "done once"
        );

        // The version-targeted defect reaches only the new version.
        let new = state.assignment(&scenarios, "catalog", "catalog-1", Some("2.4.0"), 5_000);
        assert_eq!(new.len(), 1, "{new:?}");
        let old = state.assignment(&scenarios, "catalog", "catalog-1", Some("0.1.0"), 5_000);
        assert!(old.is_empty(), "{old:?}");

        // Stopping the scenario rolls its deploy back; a later run of the
        // same scenario deploys again.
        assert_eq!(
            revert_scenario(&mut state.deploys, &running_scenario, 6_000),
            1
        );
        assert_eq!(
            revert_scenario(&mut state.deploys, &running_scenario, 6_000),
            0
        );
        assert_eq!(
            version_of(&state.deploys, "catalog", "catalog-2"),
            BUILD_VERSION
        );
        state.scenario = Some(RunningScenario {
            started_ms: 7_000,
            ..running_scenario
        });
        assert_eq!(
            due_steps(&state.deploys, state.scenario.as_ref(), &scenarios, 7_000).len(),
            1
        );
        // A step due after an accepted mitigation does not happen.
        state.scenario.as_mut().unwrap().mitigated_ms = Some(7_000);
        assert!(due_steps(&state.deploys, state.scenario.as_ref(), &scenarios, 8_000).is_empty());
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
                &crate::model::scenario::Deploy {
                    target: Target::parse("catalog").unwrap(),
                    version: "2.4.0".into(),
                    instances: None,
                },
                &["catalog-1".to_string()],
                "scenario:x",
                Some("scenario:x@5#1".into()),
                7,
            )
            .unwrap(),
        );
        crate::model::deploy::rollback_latest(&mut state.deploys, "catalog", "bob", 9);
        let snapshot = Snapshot::new(path.clone());
        snapshot.save(&state).unwrap();
        let back: State = snapshot.load().unwrap();
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
        assert!(snapshot.load::<State>().unwrap().deploys.is_empty());
    }
}
