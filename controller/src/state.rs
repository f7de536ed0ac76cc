//! The controller's desired state: faults, the running scenario, the ops log.
//!
//! Times are wall-clock milliseconds so the state survives a restart: a
//! fault injected for ten minutes still ends ten minutes after injection,
//! and a scenario's timeline resumes where its clock says it is. The file is
//! replaced atomically (write, fsync, rename) after every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use firedrill_runtime::faults::model::{AssignedFault, FaultSpec};
use serde::{Deserialize, Serialize};

use crate::scenario::{Lasts, Scenario, Verb};

/// A fault injected by hand (`firedrill fault inject`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredFault {
    pub id: String,
    pub spec: FaultSpec,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// The scenario being played, and its clock.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunningScenario {
    pub id: String,
    pub started_ms: i64,
    /// When an accepted mitigation was performed; faults that last
    /// `until-mitigated` end here.
    pub mitigated_ms: Option<i64>,
    /// How much faster than written the timeline plays: step offsets and
    /// durations are divided by it (a verification run compresses a
    /// ten-minute cascade into a minute). 1 plays the file as written.
    #[serde(default = "normal_speed")]
    pub speed: f64,
}

fn normal_speed() -> f64 {
    1.0
}

impl RunningScenario {
    /// Wall-clock length of `ms` of scenario time at this run's speed.
    pub fn scaled(&self, ms: u64) -> i64 {
        (ms as f64 / self.speed.max(f64::MIN_POSITIVE)).round() as i64
    }
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
    pub ops: Vec<OpRecord>,
}

/// A fault in force now, whatever put it there.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActiveFault {
    pub id: String,
    /// `manual`, or `scenario:<id>`.
    pub origin: String,
    pub spec: FaultSpec,
    /// When it ends; `None` while it waits for a mitigation.
    pub ends_ms: Option<i64>,
}

/// Wall-clock milliseconds (the controller's clock is never skewed: it runs
/// no fault agent).
pub fn now_ms() -> i64 {
    firedrill_runtime::clock::now_unix_ms()
}

impl State {
    /// Reads the state file; a missing file is a fresh start.
    pub fn load(path: &Path) -> anyhow::Result<State> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("controller state {} is corrupt", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp: PathBuf = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self)?;
        {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
    }

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
            let step = step.get_ref();
            let Ok(spec) = step.fault() else { continue };
            let start = running.started_ms + running.scaled(step.at.0);
            let end = match step.lasts {
                Lasts::For(d) => Some(start + running.scaled(d.0)),
                Lasts::UntilMitigated => running.mitigated_ms,
            };
            if now >= start && end.is_none_or(|end| now < end) {
                active.push(ActiveFault {
                    id: format!("{}#{}", running.id, index + 1),
                    origin: format!("scenario:{}", running.id),
                    spec,
                    ends_ms: end,
                });
            }
        }
        active
    }

    /// What the agent of `service`/`instance` must apply, valid for `lease_ms`.
    pub fn assignment(
        &self,
        scenarios: &[Scenario],
        service: &str,
        instance: &str,
        now: i64,
    ) -> Vec<AssignedFault> {
        self.active(scenarios, now)
            .into_iter()
            .filter(|f| f.spec.target.selects(service, instance))
            .map(|f| AssignedFault {
                id: f.id,
                remaining_ms: f.ends_ms.map_or(u64::MAX, |end| (end - now).max(0) as u64),
                spec: f.spec,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use firedrill_runtime::faults::model::{FaultKind, Millis, Target};

    use super::*;

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
        });
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), state);
        assert_eq!(
            State::load(&dir.path().join("none.json")).unwrap(),
            State::default()
        );
        std::fs::write(&path, b"{").unwrap();
        assert!(
            State::load(&path)
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
        assert_eq!(state.assignment(&[], "catalog", "catalog-2", 10).len(), 1);
        assert_eq!(state.assignment(&[], "payment", "payment-1", 10).len(), 0);
        assert_eq!(
            state.assignment(&[], "payment", "payment-2", 10)[0].remaining_ms,
            990
        );
        assert!(
            state
                .assignment(&[], "catalog", "catalog-1", 1_000)
                .is_empty()
        );
        assert!(state.expire(1_000));
        assert!(state.faults.is_empty());
    }

    #[test]
    fn a_scenario_timeline_follows_its_clock_and_mitigation() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/slow-catalog.toml"),
        )
        .unwrap();
        let scenario = crate::scenario::parse(Path::new("slow-catalog.toml"), &text).unwrap();
        let mut state = State {
            scenario: Some(RunningScenario {
                id: "slow-catalog".into(),
                started_ms: 1_000,
                mitigated_ms: None,
                speed: 1.0,
            }),
            ..State::default()
        };
        let scenarios = [scenario];
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
}
