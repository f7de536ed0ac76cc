//! Scenarios as data: one TOML file per incident under `scenarios/`.
//!
//! A file holds the page a learner receives, a timeline of fault steps, the
//! ground truth, accepted (and known-wrong) mitigations with the recovery
//! condition, three tiers of hints, a debrief and the symptoms the incident
//! must produce. Adding a scenario needs no code change; [`load`] checks a
//! file completely and reports every problem as `file:line:column: message`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use firedrill_runtime::faults::model::{
    DEPENDENCIES, FaultKind, FaultSpec, Millis, Target, parse_millis,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use toml::Spanned;

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
    pub symptoms: Spanned<Vec<Spanned<Symptom>>>,
    /// Signals that stay normal while the incident runs: they tell the root
    /// cause apart from a red herring or a bystander that merely waits on it.
    #[serde(default)]
    pub healthy: Vec<Spanned<Symptom>>,
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

/// Mitigation verbs, as `firedrill ops` spells them.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Verb {
    Rollback,
    Restart,
    Scale,
    Drain,
    Undrain,
    ConfigSet,
    FlagSet,
    RateLimit,
    DlqReplay,
    DlqPurge,
    /// The right answer for a control: no action.
    NoAction,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        f.write_str(&text)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Op {
    pub op: Verb,
    /// What the op acts on (target shorthand); empty for `no-action`.
    #[serde(default)]
    pub target: String,
    /// The op's settings, as `firedrill ops` takes them: config keys for
    /// `config-set`, flags for `flag-set`, `route = rps` for `rate-limit`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
}

impl Op {
    /// Whether performing `verb` on `target` with `set` is this op. A scale
    /// is matched by its direction too: scaling out to at least the
    /// replicas named is the op, scaling to fewer is not.
    pub fn matches(&self, verb: Verb, target: &str, set: &BTreeMap<String, Value>) -> bool {
        if self.op != verb || self.target != target {
            return false;
        }
        if verb != Verb::Scale {
            return true;
        }
        let performed = crate::replicas::replicas_setting(set);
        matches!((self.replicas(), performed), (Ok(wanted), Ok(done)) if done >= wanted)
    }

    /// A scale's `replicas` setting, checked as the API checks it.
    pub fn replicas(&self) -> Result<u32, String> {
        let set: BTreeMap<String, Value> = self
            .set
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        crate::replicas::replicas_setting(&set).map_err(|e| format!("scale {}: {e}", self.target))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mitigation {
    pub accepted: Vec<Op>,
    /// Plausible but wrong ops: performing one changes nothing.
    #[serde(default)]
    pub wrong: Vec<Op>,
    pub recovery: Recovery,
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

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    Metric,
    Trace,
    Log,
}

/// A symptom the incident must produce, checkable through the collector's
/// APIs and the processes' `/metrics`.
/// (Unknown keys are rejected by [`Check`], which receives every key not
/// named here.)
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Symptom {
    pub signal: Signal,
    /// The service whose telemetry shows it.
    pub service: String,
    #[serde(flatten)]
    pub check: Check,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "check", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Check {
    /// Server latency on `route` above `ms` at `quantile` (default: the
    /// median), from the `http_server_request_duration_seconds` histogram.
    LatencyAbove {
        route: String,
        ms: u64,
        #[serde(default)]
        quantile: Option<f64>,
    },
    /// Server latency on `route` at or below `ms` (a route that stays fast).
    LatencyBelow {
        route: String,
        ms: u64,
        #[serde(default)]
        quantile: Option<f64>,
    },
    /// Share of 5xx answers on `route` above `ratio`.
    ErrorRatioAbove { route: String, ratio: f64 },
    /// Share of 5xx answers on `route` at or below `ratio`.
    ErrorRatioBelow { route: String, ratio: f64 },
    /// A log record whose body contains `text`.
    LogContains { text: String },
    /// A span with error status whose name contains `operation`.
    SpanError { operation: String },
    /// A span named exactly `operation` that lasted longer than `ms` (the
    /// trace search `operation=…&minDuration=…` a learner would run).
    SpanDurationAbove { operation: String, ms: u64 },
    /// The current value of `metric` (samples with all `labels`, summed over
    /// the selected processes) above `value`.
    MetricAbove {
        metric: String,
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
        value: f64,
    },
    /// The current value of `metric` at or below `value`.
    MetricBelow {
        metric: String,
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
        value: f64,
    },
    /// The per-second increase of counter `metric` above `value`.
    RateAbove {
        metric: String,
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
        value: f64,
    },
    /// The per-second increase of counter `metric` at or below `value`.
    RateBelow {
        metric: String,
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
        value: f64,
    },
}

impl Check {
    /// Range checks on the parameters; the message names the parameter.
    fn validate(&self) -> Result<(), String> {
        let route = |route: &str| {
            if route.starts_with('/') {
                Ok(())
            } else {
                Err(format!("`route` {route:?} must start with '/'"))
            }
        };
        match self {
            Check::LatencyAbove {
                route: r, quantile, ..
            }
            | Check::LatencyBelow {
                route: r, quantile, ..
            } => {
                route(r)?;
                match quantile {
                    Some(q) if !(*q > 0.0 && *q < 1.0) => {
                        Err(format!("`quantile` must be within (0, 1), got {q}"))
                    }
                    _ => Ok(()),
                }
            }
            Check::ErrorRatioAbove { route: r, ratio }
            | Check::ErrorRatioBelow { route: r, ratio } => {
                route(r)?;
                if (0.0..=1.0).contains(ratio) {
                    Ok(())
                } else {
                    Err(format!("`ratio` must be within 0..1, got {ratio}"))
                }
            }
            Check::LogContains { text } if text.is_empty() => {
                Err("`text` must not be empty".into())
            }
            Check::SpanError { operation } | Check::SpanDurationAbove { operation, .. }
                if operation.is_empty() =>
            {
                Err("`operation` must not be empty".into())
            }
            Check::MetricAbove { metric, .. }
            | Check::MetricBelow { metric, .. }
            | Check::RateAbove { metric, .. }
            | Check::RateBelow { metric, .. }
                if metric.is_empty()
                    || !metric
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') =>
            {
                Err(format!(
                    "`metric` {metric:?} is not a Prometheus metric name"
                ))
            }
            _ => Ok(()),
        }
    }
}

impl Symptom {
    /// Whose telemetry to read (a service, an instance, `collector` or
    /// `loadgen`) and whether the check's parameters make sense.
    pub fn validate(&self) -> Result<(), String> {
        if !OBSERVABLE_COMPONENTS.contains(&self.service.as_str()) {
            Target::parse(&self.service).map_err(|e| format!("symptom `service`: {e}"))?;
        }
        self.check.validate()
    }
}

/// Processes that are not shop services but whose telemetry a symptom may
/// read.
pub const OBSERVABLE_COMPONENTS: &[&str] = &["collector", "loadgen"];

/// A problem in a scenario file, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Reads and checks one scenario file.
pub fn load(path: &Path) -> Result<Scenario, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }]
    })?;
    parse(path, &text)
}

/// Parses and checks scenario text; `path` is used in messages and for the
/// id check (the id must equal the file stem).
pub fn parse(path: &Path, text: &str) -> Result<Scenario, Vec<Problem>> {
    let at = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        Problem {
            file: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let scenario: Scenario = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        let offset = e.span().map_or(0, |span| pinpoint(text, span, &message));
        vec![at(offset, message)]
    })?;
    let mut problems = Vec::new();
    let mut check = |offset: usize, result: Result<(), String>| {
        if let Err(message) = result {
            problems.push(at(offset, message));
        }
    };

    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let id = scenario.id.get_ref();
    check(
        scenario.id.span().start,
        if !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            Ok(())
        } else {
            Err(format!(
                "id {id:?} must be lowercase letters, digits and '-'"
            ))
        },
    );
    if !stem.is_empty() && stem != id {
        check(
            scenario.id.span().start,
            Err(format!("id {id:?} must match the file name {stem:?}")),
        );
    }
    // Versions the deploy steps bring up, per service: a fault aimed at
    // another version would select nobody.
    let deployed: BTreeSet<(String, String)> = scenario
        .steps
        .iter()
        .filter_map(|step| step.get_ref().deploy()?.ok())
        .map(|d| (d.target.service, d.version))
        .collect();
    for step in &scenario.steps {
        let result = step.get_ref().check().and_then(|()| {
            let Ok(fault) = step.get_ref().fault() else {
                return Ok(());
            };
            match &fault.target.version {
                Some(version)
                    if !deployed.contains(&(fault.target.service.clone(), version.clone())) =>
                {
                    Err(format!(
                        "target {:?} selects nobody: no deploy step brings {} to version {version}",
                        step.get_ref().target,
                        fault.target.service
                    ))
                }
                _ => Ok(()),
            }
        });
        if let Err(message) = result {
            let offset = pinpoint(text, step.span(), &message);
            check(offset, Err(message));
        }
    }
    let truth = scenario.truth.get_ref();
    let is_control = truth.category == Category::None;
    let roots = scenario
        .steps
        .iter()
        .filter(|s| s.get_ref().role == Role::Root)
        .count();
    check(
        scenario.truth.span().start,
        match (is_control, roots) {
            (true, 0) => Ok(()),
            (true, _) => Err("a no-incident control (category none) has no root step".into()),
            (false, 0) => Err("no step has role = \"root\"".into()),
            (false, _) => Ok(()),
        },
    );
    check(
        scenario.truth.span().start,
        if is_control {
            (truth.root == "none")
                .then_some(())
                .ok_or_else(|| "a control's truth.root is \"none\"".to_string())
        } else if DEPENDENCIES.contains(&truth.root.as_str()) {
            // A dependency shared by many services (the database) can be the
            // root itself, not only one service's use of it.
            Ok(())
        } else {
            Target::parse(&truth.root)
                .map(|_| ())
                .map_err(|e| format!("truth.root: {e}"))
        },
    );
    if truth.chain.is_empty() && !is_control {
        check(
            scenario.truth.span().start,
            Err("truth.chain lists at least the root".into()),
        );
    }
    let mitigation = scenario.mitigation.get_ref();
    check(
        scenario.mitigation.span().start,
        if mitigation.accepted.is_empty() {
            Err("mitigation.accepted needs at least one op".into())
        } else {
            Ok(())
        },
    );
    for op in mitigation.accepted.iter().chain(&mitigation.wrong) {
        check(scenario.mitigation.span().start, check_op(op));
    }
    if let Some(both) = mitigation
        .accepted
        .iter()
        .find(|op| mitigation.wrong.contains(op))
    {
        check(
            scenario.mitigation.span().start,
            Err(format!(
                "{} {} is both accepted and wrong",
                both.op, both.target
            )),
        );
    }
    let recovery = &mitigation.recovery;
    check(
        scenario.mitigation.span().start,
        if !recovery.route.starts_with("/api/") {
            Err(format!(
                "recovery.route {:?} must be a gateway route (/api/...)",
                recovery.route
            ))
        } else if !(0.0..=1.0).contains(&recovery.max_error_ratio) {
            Err("recovery.max_error_ratio must be within 0..1".into())
        } else {
            Ok(())
        },
    );
    check(
        scenario.hints.span().start,
        if scenario.hints.get_ref().len() == 3 {
            Ok(())
        } else {
            Err(format!(
                "hints has {} entries; write exactly three tiers (nudge, direction, near-answer)",
                scenario.hints.get_ref().len()
            ))
        },
    );
    if scenario.symptoms.get_ref().is_empty() {
        check(
            scenario.symptoms.span().start,
            Err("symptoms lists at least one".into()),
        );
    }
    for symptom in scenario.symptoms.get_ref().iter().chain(&scenario.healthy) {
        if let Err(message) = symptom.get_ref().validate() {
            let offset = pinpoint(text, symptom.span(), &message);
            check(offset, Err(message));
        }
    }
    for symptom in &recovery.checks {
        check(scenario.mitigation.span().start, symptom.validate());
    }
    if problems.is_empty() {
        Ok(scenario)
    } else {
        Err(problems)
    }
}

fn check_op(op: &Op) -> Result<(), String> {
    if op.op == Verb::Scale {
        op.replicas()?;
    }
    let takes_settings = matches!(
        op.op,
        Verb::ConfigSet | Verb::FlagSet | Verb::RateLimit | Verb::Scale
    );
    if takes_settings && op.set.is_empty() {
        return Err(format!(
            "{} {} needs its settings, as `firedrill ops` takes them: set = {{ \"retries.budget\" = \"0.1\" }}",
            op.op, op.target
        ));
    }
    if !takes_settings && !op.set.is_empty() {
        return Err(format!("{} takes no settings; drop `set`", op.op));
    }
    match op.op {
        Verb::NoAction => Ok(()),
        _ => Target::parse(&op.target)
            .and_then(|target| crate::ops::operable(&target))
            .map_err(|e| format!("{} target: {e}", op.op)),
    }
}

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

/// Loads every `*.toml` under `dir`, sorted by id; all problems together.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, Vec<Problem>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![Problem {
            file: dir.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read the scenarios directory: {e}"),
        }]
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut scenarios = Vec::new();
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    for path in paths {
        match load(&path) {
            Ok(s) => {
                if !ids.insert(s.id().to_string()) {
                    problems.push(Problem {
                        file: path.clone(),
                        line: 1,
                        column: 1,
                        message: format!("duplicate scenario id {:?}", s.id()),
                    });
                }
                scenarios.push(s);
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(scenarios)
    } else {
        Err(problems)
    }
}

/// Narrows an error reported for a whole table (serde reports errors in
/// flattened fields, such as a step's fault parameters, at the table) to the
/// line that holds the key or value the message quotes.
fn pinpoint(text: &str, span: std::ops::Range<usize>, message: &str) -> usize {
    let start = span.start.min(text.len());
    // The span may cover only the table's header: search to the next table.
    let next_table = text[start..]
        .match_indices("\n[")
        .map(|(i, _)| start + i)
        .find(|&i| i >= span.end)
        .unwrap_or(text.len());
    let end = span.end.max(next_table).min(text.len());
    let region = &text[start..end];
    let quoted = message
        .split(['`', '"'])
        .skip(1)
        .step_by(2)
        .filter(|q| !q.is_empty());
    for needle in quoted {
        // A key at the start of a line, else the value quoted in the text.
        let key = region.lines().scan(0, |pos, line| {
            let here = *pos;
            *pos += line.len() + 1;
            Some((here, line))
        });
        for (pos, line) in key {
            let trimmed = line.trim_start();
            if trimmed.starts_with(needle) && trimmed[needle.len()..].trim_start().starts_with('=')
            {
                return start + pos + (line.len() - trimmed.len());
            }
        }
        if let Some(pos) = region.find(&format!("\"{needle}\"")) {
            return start + pos;
        }
        // A key inside an inline table (`timeouts = { payment = 0 }`), by
        // the last segment of a dotted name (`timeouts.payment`).
        let leaf = needle.rsplit('.').next().unwrap_or(needle);
        if let Some(pos) = inline_key(region, leaf) {
            return start + pos;
        }
    }
    start
}

/// Where `key` is written as a key of an inline table: after `{` or `,`,
/// before `=`.
fn inline_key(region: &str, key: &str) -> Option<usize> {
    region.match_indices(key).map(|(i, _)| i).find(|&i| {
        let before = region[..i].trim_end().chars().last();
        let after = region[i + key.len()..].trim_start();
        matches!(before, Some('{' | ',')) && after.starts_with('=')
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal valid scenario (a slow catalog, mitigated by a restart),
    /// for tests here and in `state`, independent of the shipped files.
    pub(crate) const GOOD: &str = r#"
id = "slow-catalog"
title = "Products page slow"
difficulty = "beginner"
goals = ["find the slow hop"]
page = "Product listing p99 is 6x normal."
hints = ["look at the slowest span", "which service owns it?", "catalog adds 300 ms"]
debrief = "The catalog span widened by 300 ms."

[[steps]]
at = "0s"
lasts = "until-mitigated"
role = "root"
target = "catalog"
kind = "latency"
latency = "300ms"

[truth]
root = "catalog"
category = "dependency-latency"
chain = ["catalog", "gateway"]

[mitigation]
accepted = [{ op = "restart", target = "catalog" }]
wrong = [{ op = "restart", target = "gateway" }]
recovery = { route = "/api/products", max_error_ratio = 0.01, max_latency_ms = 150 }

[[symptoms]]
signal = "metric"
service = "gateway"
check = "latency-above"
route = "/api/products"
ms = 250
"#;

    fn problems(text: &str) -> Vec<String> {
        parse(Path::new("scenarios/slow-catalog.toml"), text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn a_good_scenario_parses() {
        let s = parse(Path::new("scenarios/slow-catalog.toml"), GOOD).unwrap();
        assert_eq!(s.id(), "slow-catalog");
        assert_eq!(s.steps[0].get_ref().lasts, Some(Lasts::UntilMitigated));
        let fault = s.steps[0].get_ref().fault().unwrap();
        assert_eq!(fault.target.service, "catalog");
    }

    #[test]
    fn the_newer_fault_kinds_are_written_as_documented() {
        let steps = r#"[[steps]]
at = "0s"
lasts = "until-mitigated"
role = "root"
target = "catalog"
kind = "latency"
latency = "300ms"

[[steps]]
lasts = "1m"
role = "trigger"
target = "cache"
kind = "cache-flush"
ttl = "10s"

[[steps]]
lasts = "1m"
role = "root"
target = "projector->queue-consumer"
kind = "poison-message"
toxicity = 0.1

[[steps]]
lasts = "1m"
role = "root"
target = "catalog"
kind = "data-corruption"
field = "price"
toxicity = 0.3

[[steps]]
lasts = "1m"
role = "herring"
target = "payment-2"
kind = "telemetry-drop"

[[steps]]
lasts = "1m"
role = "root"
target = "catalog"
route = "/products"
kind = "worker-pool"
size = 2

[[steps]]
lasts = "1m"
role = "root"
target = "checkout->payment"
kind = "lb-skew"
instance = "payment-1"
percent = 90

[[steps]]
lasts = "1m"
role = "trigger"
target = "loadgen"
kind = "traffic-spike"
multiplier = 4
hotKey = 42

[[steps]]
lasts = "1m"
role = "root"
target = "catalog->db"
kind = "drop-index"
"#;
        let start = GOOD.find("[[steps]]").unwrap();
        let end = GOOD.find("[truth]").unwrap();
        let text = format!("{}{steps}\n{}", &GOOD[..start], &GOOD[end..]);
        let s = parse(Path::new("scenarios/slow-catalog.toml"), &text)
            .unwrap_or_else(|p| panic!("{p:?}"));
        let kinds: Vec<&str> = s
            .steps
            .iter()
            .map(|step| step.get_ref().fault().unwrap().kind.name())
            .collect();
        assert_eq!(
            kinds,
            [
                "latency",
                "cache-flush",
                "poison-message",
                "data-corruption",
                "telemetry-drop",
                "worker-pool",
                "lb-skew",
                "traffic-spike",
                "drop-index"
            ]
        );
    }

    #[test]
    fn syntax_errors_point_at_the_line() {
        let broken = GOOD.replace("latency = \"300ms\"", "latency = ");
        let p = problems(&broken);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("scenarios/slow-catalog.toml:16:"), "{p:?}");
    }

    #[test]
    fn semantic_errors_point_at_their_step() {
        let broken = GOOD.replace("target = \"catalog\"\nkind", "target = \"warehouse\"\nkind");
        let p = problems(&broken);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains(":10:") && p[0].contains("unknown service"),
            "{p:?}"
        );
    }

    #[test]
    fn missing_and_wrong_parts_are_each_reported() {
        let broken = GOOD
            .replace("hints = [\"look at the slowest span\", ", "hints = [")
            .replace("id = \"slow-catalog\"", "id = \"other\"")
            .replace("latency = \"300ms\"", "latency = \"soon\"");
        let p = problems(&broken);
        assert!(p.iter().any(|m| m.contains("not a duration")), "{p:?}");
        let fixed = broken.replace("latency = \"soon\"", "latency = 5");
        let p = problems(&fixed);
        assert!(p.iter().any(|m| m.contains("exactly three")), "{p:?}");
        assert!(
            p.iter().any(|m| m.contains("must match the file name")),
            "{p:?}"
        );
    }

    /// GOOD with a deploy of catalog 2.4.0 and its defect as the root.
    fn with_deploy() -> String {
        GOOD.replace(
            "[[steps]]\nat = \"0s\"\nlasts = \"until-mitigated\"\nrole = \"root\"\ntarget = \"catalog\"\n",
            "[[steps]]\nrole = \"root\"\ntarget = \"catalog\"\nkind = \"deploy\"\nversion = \"2.4.0\"\ninstances = 1\n\n\
             [[steps]]\nat = \"0s\"\nlasts = \"until-mitigated\"\nrole = \"root\"\ntarget = \"catalog@2.4.0\"\n",
        )
    }

    /// The 1-based line of the first line of `text` containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn deploy_steps_parse_and_version_targets_need_them() {
        let text = with_deploy();
        let s = parse(Path::new("scenarios/slow-catalog.toml"), &text).unwrap();
        let deploy = s.steps[0].get_ref().deploy().unwrap().unwrap();
        assert_eq!(
            (
                deploy.target.service.as_str(),
                deploy.version.as_str(),
                deploy.instances
            ),
            ("catalog", "2.4.0", Some(1))
        );
        assert!(s.steps[0].get_ref().fault().is_err());
        let fault = s.steps[1].get_ref().fault().unwrap();
        assert_eq!(fault.target.version.as_deref(), Some("2.4.0"));
        // Shown back as written.
        let shown = serde_json::to_value(&s).unwrap();
        assert_eq!(shown["steps"][0]["kind"], "deploy");
        assert_eq!(shown["steps"][0]["version"], "2.4.0");
        assert_eq!(shown["steps"][1]["kind"], "latency");

        // A defect aimed at a version no step deploys selects nobody.
        let orphan = text.replace("target = \"catalog@2.4.0\"", "target = \"catalog@2.5.0\"");
        let p = problems(&orphan);
        let line = line_of(&orphan, "catalog@2.5.0");
        assert!(
            p.len() == 1 && p[0].contains(&format!(":{line}:")) && p[0].contains("selects nobody"),
            "{p:?}"
        );
    }

    #[test]
    fn deploy_step_errors_point_at_their_line() {
        let text = with_deploy();
        for (from, to, needle, at) in [
            (
                "version = \"2.4.0\"",
                "version = \"2.4 beta\"",
                "must be 1..64",
                "2.4 beta",
            ),
            (
                "version = \"2.4.0\"",
                "version = \"0.1.0\"",
                "runs already",
                "0.1.0",
            ),
            (
                "instances = 1",
                "instances = 0",
                "at least 1",
                "instances = 0",
            ),
            (
                "instances = 1",
                "instances = 1\nlasts = \"5m\"",
                "drop `lasts`",
                "lasts = \"5m\"",
            ),
            (
                "instances = 1",
                "instances = 1\ntoxicity = 0.5",
                "drop `toxicity`",
                "toxicity",
            ),
            (
                "instances = 1",
                "instances = 1\ncolour = 2",
                "unknown field",
                "colour",
            ),
            (
                "target = \"catalog\"\nkind = \"deploy\"",
                "target = \"catalog->db\"\nkind = \"deploy\"",
                "service or one instance",
                "catalog->db",
            ),
        ] {
            let broken = text.replacen(from, to, 1);
            let p = problems(&broken);
            let line = line_of(&broken, at);
            assert!(
                p.iter()
                    .any(|m| m.contains(needle) && m.contains(&format!(":{line}:"))),
                "{to}: expected {needle:?} at line {line}: {p:?}"
            );
        }
        // A fault step still needs `lasts`; an unknown kind names `deploy`
        // among the choices.
        let no_lasts = GOOD.replace("lasts = \"until-mitigated\"\n", "");
        assert!(problems(&no_lasts)[0].contains("needs `lasts`"));
        let unknown = GOOD.replace("kind = \"latency\"", "kind = \"explode\"");
        let p = problems(&unknown);
        assert!(
            p[0].contains("or `deploy`")
                && p[0].contains(&format!(":{}:", line_of(&unknown, "explode"))),
            "{p:?}"
        );
    }

    #[test]
    fn symptom_and_healthy_checks_are_checked_where_written() {
        let with_healthy = format!(
            "{GOOD}\n[[healthy]]\nsignal = \"metric\"\nservice = \"gateway\"\ncheck = \"latency-below\"\nroute = \"/api/cart\"\nms = 50\n"
        );
        let s = parse(Path::new("scenarios/slow-catalog.toml"), &with_healthy).unwrap();
        assert_eq!(s.healthy.len(), 1);
        let broken = with_healthy.replace("ms = 50", "ms = 50\nquantile = 1.5");
        let p = problems(&broken);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains(":41:") && p[0].contains("quantile"), "{p:?}");
        let broken = with_healthy.replace("route = \"/api/cart\"", "route = \"api/cart\"");
        assert!(problems(&broken)[0].contains("must start with '/'"));
        let broken = with_healthy.replace(
            "service = \"gateway\"\ncheck = \"latency-below\"",
            "service = \"warehouse\"\ncheck = \"latency-below\"",
        );
        assert!(problems(&broken)[0].contains("unknown service"));
    }

    #[test]
    fn a_config_push_step_is_checked_line_by_line() {
        let push = GOOD.replace(
            "target = \"catalog\"\nkind = \"latency\"\nlatency = \"300ms\"",
            "target = \"checkout\"\nkind = \"config-push\"\ntimeouts = { payment = \"1ms\" }\nretries = { count = 0, jitter = false }\nflags = { recommendations = 1.0 }",
        );
        let s = parse(Path::new("scenarios/slow-catalog.toml"), &push).unwrap();
        let fault = s.steps[0].get_ref().fault().unwrap();
        let FaultKind::ConfigPush(values) = &fault.kind else {
            panic!("{fault:?}")
        };
        assert_eq!(
            firedrill_runtime::live::describe(values),
            "timeouts.payment=1ms, retries.count=0, retries.jitter=false, flags.recommendations=1"
        );
        // Each mistake is reported on the line that holds it.
        let line_of =
            |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        for (from, to, message) in [
            (
                "payment = \"1ms\"",
                "warehouse = \"1ms\"",
                "unknown peer service",
            ),
            ("payment = \"1ms\"", "payment = \"fast\"", "not a duration"),
            ("payment = \"1ms\"", "payment = 0", "between 1ms and 60s"),
            ("count = 0", "cuont = 0", "unknown field `cuont`"),
            (
                "recommendations = 1.0",
                "recommendations = 3",
                "share of users",
            ),
            (
                "target = \"checkout\"",
                "target = \"checkout-1\"",
                "target the service",
            ),
            ("timeouts = {", "timeout = {", "unknown field `timeout`"),
        ] {
            let broken = push.replace(from, to);
            let p = problems(&broken);
            assert_eq!(p.len(), 1, "{to}: {p:?}");
            let line = line_of(&broken, to);
            assert!(
                p[0].contains(&format!(":{line}:")) && p[0].contains(message),
                "{to}: expected line {line}: {p:?}"
            );
        }
    }

    #[test]
    fn a_shared_dependency_may_be_the_root() {
        let shared = GOOD.replace("root = \"catalog\"", "root = \"db\"");
        assert!(problems(&shared).is_empty(), "{:?}", problems(&shared));
        let nowhere = GOOD.replace("root = \"catalog\"", "root = \"moon\"");
        let p = problems(&nowhere);
        assert!(
            p[0].contains("truth.root") && p[0].contains("unknown service"),
            "{p:?}"
        );
    }

    #[test]
    fn span_duration_checks_parse_and_need_an_operation() {
        let slow_span = format!(
            "{GOOD}\n[[symptoms]]\nsignal = \"trace\"\nservice = \"catalog\"\ncheck = \"span-duration-above\"\noperation = \"SELECT products\"\nms = 60\n"
        );
        let s = parse(Path::new("scenarios/slow-catalog.toml"), &slow_span).unwrap();
        assert_eq!(
            s.symptoms.get_ref()[1].get_ref().check,
            Check::SpanDurationAbove {
                operation: "SELECT products".into(),
                ms: 60
            }
        );
        let broken = slow_span.replace("operation = \"SELECT products\"", "operation = \"\"");
        assert!(problems(&broken)[0].contains("`operation` must not be empty"));
    }

    #[test]
    fn ops_that_change_config_carry_their_settings() {
        let bare = GOOD.replace(
            "accepted = [{ op = \"restart\", target = \"catalog\" }]",
            "accepted = [{ op = \"config-set\", target = \"catalog\" }]",
        );
        assert!(
            problems(&bare)[0].contains("needs its settings"),
            "{:?}",
            problems(&bare)
        );
        let with = bare.replace(
            "target = \"catalog\" }]",
            "target = \"catalog\", set = { \"retries.count\" = \"0\" } }]",
        );
        assert!(problems(&with).is_empty(), "{:?}", problems(&with));
        let stray = GOOD.replace(
            "accepted = [{ op = \"restart\", target = \"catalog\" }]",
            "accepted = [{ op = \"restart\", target = \"catalog\", set = { a = \"1\" } }]",
        );
        assert!(problems(&stray)[0].contains("takes no settings"));
        let third_party = GOOD.replace(
            "accepted = [{ op = \"restart\", target = \"catalog\" }]",
            "accepted = [{ op = \"restart\", target = \"payment-provider\" }]",
        );
        assert!(
            problems(&third_party)[0].contains("payment-provider is a third party"),
            "{:?}",
            problems(&third_party)
        );
    }

    #[test]
    fn a_scale_names_its_instances_and_matches_by_direction() {
        let accepted = "accepted = [{ op = \"restart\", target = \"catalog\" }]";
        for (scale, needle) in [
            (
                "{ op = \"scale\", target = \"catalog\" }",
                "needs one setting",
            ),
            (
                "{ op = \"scale\", target = \"catalog\", set = { replicas = \"x\" } }",
                "not a whole number",
            ),
            (
                "{ op = \"scale\", target = \"catalog\", set = { replicas = \"9\" } }",
                "1 to 8",
            ),
            (
                "{ op = \"scale\", target = \"catalog\", set = { replicas = \"2\", x = \"1\" } }",
                "needs one setting",
            ),
        ] {
            let bad = GOOD.replace(accepted, &format!("accepted = [{scale}]"));
            let found = problems(&bad);
            assert!(
                found.iter().any(|p| p.contains(needle)),
                "{scale}: {found:?}"
            );
        }
        let good = GOOD.replace(
            accepted,
            "accepted = [{ op = \"scale\", target = \"catalog\", set = { replicas = \"4\" } }]",
        );
        assert!(problems(&good).is_empty(), "{:?}", problems(&good));

        let op = Op {
            op: Verb::Scale,
            target: "catalog".into(),
            set: BTreeMap::from([("replicas".into(), "4".into())]),
        };
        let with = |v: Value| BTreeMap::from([("replicas".to_string(), v)]);
        assert!(op.matches(Verb::Scale, "catalog", &with(json!(4))));
        assert!(
            op.matches(Verb::Scale, "catalog", &with(json!("6"))),
            "more is the op too"
        );
        assert!(
            !op.matches(Verb::Scale, "catalog", &with(json!(3))),
            "fewer is not"
        );
        assert!(!op.matches(Verb::Scale, "cart", &with(json!(4))));
        assert!(!op.matches(Verb::Scale, "catalog", &BTreeMap::new()));
        let restart = Op {
            op: Verb::Restart,
            target: "catalog".into(),
            set: BTreeMap::new(),
        };
        assert!(restart.matches(Verb::Restart, "catalog", &BTreeMap::new()));
        assert!(!restart.matches(Verb::Scale, "catalog", &with(json!(4))));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let broken = GOOD.replace(
            "difficulty = \"beginner\"",
            "difficulty = \"beginner\"\ncolour = 3",
        );
        let p = problems(&broken);
        assert!(
            p[0].contains("unknown field") && p[0].contains(":5:"),
            "{p:?}"
        );
    }
}
