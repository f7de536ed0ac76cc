//! Scenarios as data: the types of one scenario file (`scenarios/*.toml`).
//!
//! A file holds the page a learner receives, a timeline of fault steps, the
//! ground truth, accepted (and known-wrong) mitigations with the recovery
//! condition, three tiers of hints, a debrief and the symptoms the incident
//! must produce. Reading and checking files is `scenarios`' work; this
//! module only says what a scenario is, and turns a step into the fault or
//! deploy it stands for.

use firedrill_runtime::faults::model::{FaultKind, FaultSpec, Millis, Target, parse_millis};
use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use firedrill_observe::checks::{Check, Signal, Symptom};

use super::op::{ListedOp, Op};

/// A scenario as written in its file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub id: Spanned<String>,
    pub title: String,
    pub difficulty: Difficulty,
    pub goals: Vec<String>,
    /// The page text the learner receives when the incident starts.
    pub page: String,
    #[serde(default)]
    pub steps: Vec<Spanned<Step>>,
    pub truth: Spanned<Truth>,
    pub mitigation: Spanned<Mitigation>,
    pub hints: Spanned<Vec<String>>,
    pub debrief: String,
    /// Required (validation says so); missing here only so that a file
    /// whose every symptom has a problem still reports them all.
    #[serde(default = "no_symptoms")]
    pub symptoms: Spanned<Vec<Spanned<Symptom>>>,
    /// Signals that stay normal while the incident runs: they tell the root
    /// cause apart from a red herring or a bystander that merely waits on it.
    #[serde(default)]
    pub healthy: Vec<Spanned<Symptom>>,
}

fn no_symptoms() -> Spanned<Vec<Spanned<Symptom>>> {
    Spanned::new(0..0, Vec::new())
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Difficulty {
    Beginner,
    Intermediate,
    Advanced,
}

/// One step on the timeline: a fault, or a deploy (`kind = "deploy"`).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Step {
    /// Offset from the scenario's start.
    #[serde(default)]
    pub at: Millis,
    /// How long a fault lasts: a duration; `until-mitigated`, until an
    /// accepted mitigation is performed (the op removes the cause: a
    /// restart clears a leak); or `scenario`, until the scenario stops (the
    /// cause stays, and the op must work around it: a drain, a flag, a
    /// rate limit). Required for faults; a deploy has none (it lasts until
    /// it is rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lasts: Option<Lasts>,
    /// Why the step is there: the root cause, a trigger that starts a
    /// cascade, or a red herring that looks suspicious and is not.
    pub role: Role,
    /// Target shorthand: `catalog`, `payment-2`, `gateway->catalog`,
    /// `catalog->db`, narrowed to a version with `@`: `catalog@2.4.0`,
    /// `catalog@2.4.0->db`. A deploy targets a service or an instance.
    pub target: String,
    #[serde(default)]
    pub route: Option<String>,
    /// Probability (0..1) that a fault applies to a request; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxicity: Option<f64>,
    #[serde(flatten)]
    pub kind: StepKind,
}

/// What a step does: a fault kind with its parameters, or a deploy.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    Fault(FaultKind),
    Deploy(DeployStep),
}

/// `kind = "deploy"`: a rolling restart of the target's processes into a
/// new `service.version`. The version is the defect's address: a fault
/// aimed at `catalog@2.4.0` acts on exactly the processes this step brings
/// up, and stops acting when a rollback replaces them.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeployStep {
    /// The `service.version` the new processes run.
    pub version: String,
    /// A canary: only this many instances (the lowest-numbered) get the
    /// new version; every instance when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
}

impl<'de> Deserialize<'de> for StepKind {
    /// The step's keys other than the common ones: `kind` picks a deploy
    /// or a fault kind, whose own deserializer rejects unknown keys and
    /// names bad values (the messages quote them, for [`pinpoint`]).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        use serde_json::Value;
        let mut keys = serde_json::Map::<String, Value>::deserialize(d)?;
        if keys.get("kind").and_then(Value::as_str) == Some("deploy") {
            keys.remove("kind");
            return serde_json::from_value(Value::Object(keys))
                .map(StepKind::Deploy)
                .map_err(D::Error::custom);
        }
        serde_json::from_value(Value::Object(keys))
            .map(StepKind::Fault)
            .map_err(|e| {
                let message = e.to_string();
                if message.starts_with("unknown variant") {
                    D::Error::custom(format!("{message}, or `deploy`"))
                } else {
                    D::Error::custom(message)
                }
            })
    }
}

impl Serialize for StepKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        match self {
            StepKind::Fault(kind) => kind.serialize(s),
            StepKind::Deploy(deploy) => {
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("kind", "deploy")?;
                map.serialize_entry("version", &deploy.version)?;
                if let Some(n) = deploy.instances {
                    map.serialize_entry("instances", &n)?;
                }
                map.end()
            }
        }
    }
}

/// A deploy step, checked: what to roll, to which version.
#[derive(Clone, Debug, PartialEq)]
pub struct Deploy {
    /// A service, or one instance of it.
    pub target: Target,
    pub version: String,
    pub instances: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lasts {
    For(Millis),
    UntilMitigated,
    Scenario,
}

impl<'de> Deserialize<'de> for Lasts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "until-mitigated" => return Ok(Lasts::UntilMitigated),
            "scenario" => return Ok(Lasts::Scenario),
            _ => {}
        }
        parse_millis(&text).map(Lasts::For).map_err(|e| {
            serde::de::Error::custom(format!("{e}, or \"until-mitigated\", or \"scenario\""))
        })
    }
}

impl Serialize for Lasts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Lasts::For(ms) => s.serialize_str(&format!("{}ms", ms.0)),
            Lasts::UntilMitigated => s.serialize_str("until-mitigated"),
            Lasts::Scenario => s.serialize_str("scenario"),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Root,
    Trigger,
    Herring,
}

/// The fixed taxonomy learners classify an incident with.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    BadDeploy,
    ConfigChange,
    DependencyLatency,
    DependencyFailure,
    ResourceExhaustion,
    Network,
    Time,
    Data,
    Load,
    Telemetry,
    None,
}

impl std::fmt::Display for Category {
    /// As scenario files and the CLI spell it: `bad-deploy`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        f.write_str(&text)
    }
}

impl std::fmt::Display for Difficulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        f.write_str(&text)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Truth {
    /// The root-cause entity, in target shorthand (`catalog`, `payment-2`,
    /// `gateway->catalog`, `catalog->db`), a shared dependency itself (`db`:
    /// the one database every stateful service uses), or `none` for a
    /// control.
    pub root: String,
    pub category: Category,
    /// How the failure propagates, root first.
    pub chain: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mitigation {
    pub accepted: Vec<ListedOp>,
    /// Plausible but wrong ops: performing one changes nothing.
    #[serde(default)]
    pub wrong: Vec<ListedOp>,
    pub recovery: Recovery,
}

impl Mitigation {
    /// Whether `performed` is one of the accepted ops.
    pub fn accepts(&self, performed: &Op) -> bool {
        listed_matches(&self.accepted, performed)
    }

    /// Whether `performed` is one of the ops listed as wrong.
    pub fn lists_as_wrong(&self, performed: &Op) -> bool {
        listed_matches(&self.wrong, performed)
    }
}

fn listed_matches(listed: &[ListedOp], performed: &Op) -> bool {
    listed
        .iter()
        .any(|op| op.parse().is_ok_and(|op| op.matches(performed)))
}

/// When the incident counts as over: the journey's SLI at the gateway
/// (5xx ratio and median latency of `route`), and any further `checks` an
/// incident that spares the SLI needs (a business metric, telemetry flow).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// Gateway route whose SLI must recover, e.g. `/api/products`.
    pub route: String,
    pub max_error_ratio: f64,
    pub max_latency_ms: u64,
    #[serde(default)]
    pub checks: Vec<Symptom>,
}

/// Processes that are not shop services but whose telemetry a symptom may
/// read.
pub const OBSERVABLE_COMPONENTS: &[&str] = &["collector", "loadgen"];

impl Step {
    /// Checks the step, whichever kind it is.
    pub fn check(&self) -> Result<(), String> {
        match self.deploy() {
            Some(deploy) => deploy.map(|_| ()),
            None => self.fault().map(|_| ()),
        }
    }

    /// The fault this step injects (an error for a deploy step).
    pub fn fault(&self) -> Result<FaultSpec, String> {
        let StepKind::Fault(kind) = &self.kind else {
            return Err("a deploy step injects no fault".into());
        };
        if self.lasts.is_none() {
            return Err(
                "a fault step needs `lasts`: a duration such as \"5m\", \"until-mitigated\" or \"scenario\""
                    .into(),
            );
        }
        let mut target = Target::parse(&self.target)?;
        target.route = self.route.clone();
        let spec = FaultSpec {
            kind: kind.clone(),
            target,
            toxicity: self.toxicity.unwrap_or(1.0),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The deploy this step performs; `None` for a fault step.
    pub fn deploy(&self) -> Option<Result<Deploy, String>> {
        let StepKind::Deploy(step) = &self.kind else {
            return None;
        };
        Some(self.check_deploy(step))
    }

    fn check_deploy(&self, step: &DeployStep) -> Result<Deploy, String> {
        if self.lasts.is_some() {
            return Err("a deploy lasts until it is rolled back; drop `lasts`".into());
        }
        if self.route.is_some() {
            return Err("a deploy replaces whole processes; drop `route`".into());
        }
        if self.toxicity.is_some() {
            return Err(
                "a deploy replaces whole processes; drop `toxicity` (a canary is `instances = 1`)"
                    .into(),
            );
        }
        check_deploy(&self.target, step)
    }
}

/// Checks a deploy of `step.version` to `target` (a service or instance
/// shorthand), as scenario steps and the deploy API write it.
pub fn check_deploy(target: &str, step: &DeployStep) -> Result<Deploy, String> {
    let parsed = Target::parse(target)?;
    if parsed.peer.is_some() || parsed.version.is_some() || parsed.route.is_some() {
        return Err(format!(
            "a deploy targets a service or one instance (catalog, catalog-2), not {target:?}"
        ));
    }
    firedrill_runtime::faults::model::check_version(&step.version)?;
    if step.version == firedrill_runtime::config::BUILD_VERSION {
        return Err(format!(
            "version {:?} is what the lab runs already; a deploy brings up a new one (roll back to return to it)",
            step.version
        ));
    }
    match step.instances {
        Some(0) => return Err("`instances` must be at least 1".into()),
        Some(_) if parsed.instance.is_some() => {
            return Err(format!(
                "`instances` counts a service's instances; {target} is one instance already"
            ));
        }
        _ => {}
    }
    Ok(Deploy {
        target: parsed,
        version: step.version.clone(),
        instances: step.instances,
    })
}

impl Scenario {
    pub fn id(&self) -> &str {
        self.id.get_ref()
    }
}
