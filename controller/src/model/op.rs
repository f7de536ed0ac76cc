//! Mitigation ops: the verbs, an op as a scenario file lists it, and an op
//! parsed once into typed values ([`Op::parse`]) wherever it enters — the
//! API or a scenario file — so nothing below parses a target or a setting
//! again (mini-redis turns a frame into a `Command` once, then applies it).
//!
//! Parsing checks the op's shape: its target is a target, its settings are
//! the ones its verb takes, within bounds. What an op may be done to (a
//! third party, a service that is not scaled) is `policy`'s.

use std::collections::BTreeMap;
use std::fmt;

use firedrill_rundir::formats::{MAX_REPLICAS, check_replicas};
use firedrill_runtime::faults::model::Target;
use firedrill_runtime::live::{ConfigPatch, KEYS};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Mitigation verbs, as `firedrill ops` spells them.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
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

impl Verb {
    pub const ALL: [Verb; 11] = [
        Verb::Rollback,
        Verb::Restart,
        Verb::Scale,
        Verb::Drain,
        Verb::Undrain,
        Verb::ConfigSet,
        Verb::FlagSet,
        Verb::RateLimit,
        Verb::DlqReplay,
        Verb::DlqPurge,
        Verb::NoAction,
    ];

    /// The verbs that change a service's live config.
    pub fn changes_config(self) -> bool {
        matches!(self, Verb::ConfigSet | Verb::FlagSet | Verb::RateLimit)
    }

    fn takes_settings(self) -> bool {
        self.changes_config() || self == Verb::Scale
    }

    fn takes_topic(self) -> bool {
        matches!(self, Verb::DlqReplay | Verb::DlqPurge)
    }
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

/// Bounds on what an op may carry, so that one request cannot grow the
/// controller's state or log without limit.
pub const MAX_TARGET_CHARS: usize = 128;
pub const MAX_SETTINGS: usize = 16;
pub const MAX_SETTING_CHARS: usize = 256;

/// What an op acts with besides its target.
#[derive(Clone, Debug, PartialEq)]
pub enum Settings {
    None,
    /// `config-set`, `flag-set`, `rate-limit`: the values, checked.
    Config(ConfigPatch),
    /// `scale`: the desired instance count.
    Replicas(u32),
    /// `dlq-replay`, `dlq-purge`: one topic, or every topic with dead letters.
    Topic(Option<String>),
}

/// An op, parsed: a verb, what it acts on, and its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub verb: Verb,
    /// `None` only for `no-action`, which acts on nothing.
    pub target: Option<Target>,
    pub settings: Settings,
}

impl Op {
    /// Parses an op as the API gives it: `set` holds JSON values (numbers or
    /// text), `topic` the dead-letter ops' topic. Every message names what
    /// was wrong.
    pub fn parse(
        verb: Verb,
        target: &str,
        set: &BTreeMap<String, Value>,
        topic: Option<&str>,
    ) -> Result<Op, String> {
        if !verb.takes_settings() && !set.is_empty() {
            return Err(format!("{verb} takes no key=value settings"));
        }
        if !verb.takes_topic() && topic.is_some() {
            return Err(format!("{verb} takes no topic"));
        }
        if set.len() > MAX_SETTINGS {
            return Err(format!(
                "{} settings given; an op takes at most {MAX_SETTINGS}",
                set.len()
            ));
        }
        for (key, value) in set {
            let chars = key.chars().count() + value.to_string().chars().count();
            if chars > MAX_SETTING_CHARS {
                return Err(format!(
                    "setting {:?} is {chars} characters long; at most {MAX_SETTING_CHARS}",
                    truncate(key, 40)
                ));
            }
        }
        let target = match verb {
            Verb::NoAction if target.trim().is_empty() => None,
            Verb::NoAction => {
                return Err(format!(
                    "no-action acts on nothing: drop the target {:?}",
                    truncate(target, 40)
                ));
            }
            _ => Some(parse_target(verb, target)?),
        };
        let settings = match verb {
            Verb::ConfigSet | Verb::FlagSet | Verb::RateLimit => {
                Settings::Config(config_settings(verb, set)?)
            }
            Verb::Scale => Settings::Replicas(replicas_setting(set)?),
            Verb::DlqReplay | Verb::DlqPurge => Settings::Topic(
                topic
                    .map(|t| check_topic(t).map(|()| t.to_string()))
                    .transpose()?,
            ),
            _ => Settings::None,
        };
        Ok(Op {
            verb,
            target,
            settings,
        })
    }

    /// What the op acts on; `no-action` acts on nothing and names no target.
    pub fn target_text(&self) -> String {
        self.target
            .as_ref()
            .map(Target::to_string)
            .unwrap_or_default()
    }

    /// The target of an op that has one (every verb but `no-action`).
    pub fn target(&self) -> Result<&Target, String> {
        self.target
            .as_ref()
            .ok_or_else(|| format!("{} acts on nothing", self.verb))
    }

    /// Whether `performed` is this (listed) op. A scale is matched by its
    /// direction too: scaling out to at least the replicas listed is the op,
    /// scaling to fewer is not. Other settings are not compared: any config
    /// change of the listed kind to the listed service counts.
    pub fn matches(&self, performed: &Op) -> bool {
        if self.verb != performed.verb || self.target != performed.target {
            return false;
        }
        match (&self.settings, &performed.settings) {
            (Settings::Replicas(wanted), Settings::Replicas(done)) => done >= wanted,
            _ => true,
        }
    }
}

/// An op as a scenario file lists it (`accepted`, `wrong`): settings are
/// text, as `firedrill ops` takes them.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListedOp {
    pub op: Verb,
    /// What the op acts on (target shorthand); empty for `no-action`.
    #[serde(default)]
    pub target: String,
    /// The op's settings: config keys for `config-set`, flags for
    /// `flag-set`, `route = rps` for `rate-limit`, `replicas` for `scale`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
}

impl ListedOp {
    /// The op this entry stands for, parsed as the API parses one.
    pub fn parse(&self) -> Result<Op, String> {
        // A scale without its count gets the scale's own usage, below.
        if self.op.changes_config() && self.set.is_empty() {
            return Err(format!(
                "{} {} needs its settings, as `firedrill ops` takes them: set = {{ \"retries.budget\" = \"0.1\" }}",
                self.op, self.target
            ));
        }
        if !self.op.takes_settings() && !self.set.is_empty() {
            return Err(format!("{} takes no settings; drop `set`", self.op));
        }
        let set: BTreeMap<String, Value> = self
            .set
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Op::parse(self.op, &self.target, &set, None)
            .map_err(|e| format!("{} {}: {e}", self.op, self.target))
    }
}

fn parse_target(verb: Verb, target: &str) -> Result<Target, String> {
    let chars = target.chars().count();
    if chars > MAX_TARGET_CHARS {
        return Err(format!(
            "target is {chars} characters long; a target is at most {MAX_TARGET_CHARS} \
             (e.g. payment-2, gateway->catalog)"
        ));
    }
    if target.trim().is_empty() {
        return Err(format!(
            "{verb} needs a target, e.g. catalog, payment-2 or gateway->catalog"
        ));
    }
    Target::parse(target).map_err(|e| format!("target: {e}"))
}

/// The config values an op's settings stand for, checked.
fn config_settings(verb: Verb, set: &BTreeMap<String, Value>) -> Result<ConfigPatch, String> {
    let (prefix, example) = match verb {
        Verb::FlagSet => ("flags.", "recommendations=0.5 (the share of users, 0..1)"),
        Verb::RateLimit => (
            "rateLimits.",
            "/api/products=50 (requests per second; 0 lifts it)",
        ),
        _ => ("", "retries.budget=0.1"),
    };
    if set.is_empty() {
        let keys = if prefix.is_empty() {
            format!("; keys are {KEYS}")
        } else {
            String::new()
        };
        return Err(format!(
            "{verb} needs at least one key=value setting, e.g. {example}{keys}"
        ));
    }
    let mut values = ConfigPatch::default();
    for (key, value) in set {
        let key = key.trim();
        let full = if key.starts_with(prefix) {
            key.to_string()
        } else {
            format!("{prefix}{key}")
        };
        values.set(&full, value)?;
    }
    values.validate()?;
    Ok(values)
}

/// A scale's `replicas=N` setting, as the API (JSON numbers or text) and
/// scenario files (text) give it: the one setting, a whole number within
/// the limits.
fn replicas_setting(set: &BTreeMap<String, Value>) -> Result<u32, String> {
    let usage = format!(
        "scale needs one setting, replicas=N (1 to {MAX_REPLICAS}): \
         `firedrill ops scale catalog replicas=3`, in a scenario set = {{ replicas = \"3\" }}"
    );
    let (Some(value), 1) = (set.get("replicas"), set.len()) else {
        return Err(usage);
    };
    let count = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
    .ok_or_else(|| format!("replicas {value} is not a whole number; {usage}"))?;
    check_replicas(count)
}

/// A topic name: 1 to 64 of `[a-z0-9-]`.
fn check_topic(topic: &str) -> Result<(), String> {
    let plain = (1..=64).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plain {
        Ok(())
    } else {
        Err(format!(
            "invalid topic {:?}: use 1 to 64 of [a-z0-9-], e.g. order-events",
            truncate(topic, 70)
        ))
    }
}

/// At most `chars` characters of `text`, for quoting input in a message.
pub fn truncate(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if text.chars().count() > chars {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use firedrill_runtime::live::describe;
    use serde_json::json;

    use super::*;

    fn set(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn config(op: &Op) -> String {
        match &op.settings {
            Settings::Config(values) => describe(values),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_are_named_per_op_and_checked() {
        let op = |verb, pairs: &[(&str, Value)]| Op::parse(verb, "checkout", &set(pairs), None);
        let flags = op(Verb::FlagSet, &[("recommendations", json!("0"))]).unwrap();
        assert_eq!(config(&flags), "flags.recommendations=0");
        let limits = op(Verb::RateLimit, &[("/api/products", json!(50))]).unwrap();
        assert_eq!(config(&limits), "rateLimits./api/products=50");
        let values = op(
            Verb::ConfigSet,
            &[
                ("retries.budget", json!("0.1")),
                ("timeouts.payment", json!("2s")),
            ],
        )
        .unwrap();
        assert_eq!(
            config(&values),
            "timeouts.payment=2000ms, retries.budget=0.1"
        );
        for (verb, pairs, needle) in [
            (Verb::ConfigSet, vec![], "needs at least one key=value"),
            (
                Verb::ConfigSet,
                vec![("retries.budgte", json!(1))],
                "`retries.budgte`",
            ),
            (
                Verb::FlagSet,
                vec![("recommendations", json!(2))],
                "within 0..1",
            ),
            (Verb::RateLimit, vec![("api", json!(2))], "starts with '/'"),
            (
                Verb::Restart,
                vec![("x", json!(1))],
                "restart takes no key=value",
            ),
        ] {
            let err = op(verb, &pairs).unwrap_err();
            assert!(err.contains(needle), "{verb}: {err}");
        }
    }

    #[test]
    fn every_field_is_bounded() {
        let long = "c".repeat(2_000_000);
        let err = Op::parse(Verb::Restart, &long, &BTreeMap::new(), None).unwrap_err();
        assert!(err.contains("at most 128"), "{}", truncate(&err, 200));
        assert!(err.len() < 200, "the message does not echo the input");
        let err = Op::parse(Verb::NoAction, &long, &BTreeMap::new(), None).unwrap_err();
        assert!(
            err.contains("no-action acts on nothing"),
            "{}",
            truncate(&err, 200)
        );
        assert!(err.len() < 200);
        let many: BTreeMap<String, Value> = (0..17).map(|i| (format!("k{i}"), json!(1))).collect();
        let err = Op::parse(Verb::ConfigSet, "checkout", &many, None).unwrap_err();
        assert!(err.contains("at most 16"), "{err}");
        let big = set(&[("retries.budget", json!("9".repeat(300)))]);
        let err = Op::parse(Verb::ConfigSet, "checkout", &big, None).unwrap_err();
        assert!(err.contains("at most 256"), "{err}");
        let err = Op::parse(Verb::DlqPurge, "queue", &BTreeMap::new(), Some(&long)).unwrap_err();
        assert!(
            err.contains("invalid topic") && err.len() < 200,
            "{}",
            truncate(&err, 200)
        );
        let err = Op::parse(Verb::Drain, "", &BTreeMap::new(), None).unwrap_err();
        assert!(err.contains("drain needs a target"), "{err}");
        assert_eq!(
            Op::parse(Verb::NoAction, "", &BTreeMap::new(), None).unwrap(),
            Op {
                verb: Verb::NoAction,
                target: None,
                settings: Settings::None
            }
        );
    }

    #[test]
    fn a_scale_names_its_instances_and_matches_by_direction() {
        let listed = ListedOp {
            op: Verb::Scale,
            target: "notification".into(),
            set: BTreeMap::from([("replicas".to_string(), "3".to_string())]),
        }
        .parse()
        .unwrap();
        let scale = |n: Value| {
            Op::parse(Verb::Scale, "notification", &set(&[("replicas", n)]), None).unwrap()
        };
        assert!(listed.matches(&scale(json!(3))));
        assert!(listed.matches(&scale(json!("4"))));
        assert!(!listed.matches(&scale(json!(2))));
        for bad in [json!(0), json!(9), json!("three"), json!(1.5), json!(null)] {
            let err = Op::parse(
                Verb::Scale,
                "catalog",
                &set(&[("replicas", bad.clone())]),
                None,
            )
            .unwrap_err();
            assert!(err.contains("replicas"), "{bad}: {err}");
        }
        let err = Op::parse(Verb::Scale, "catalog", &BTreeMap::new(), None).unwrap_err();
        assert!(err.starts_with("scale needs one setting"), "{err}");
        let unlisted = ListedOp {
            op: Verb::Scale,
            target: "catalog".into(),
            set: BTreeMap::new(),
        };
        assert!(unlisted.parse().unwrap_err().contains("needs one setting"));
    }

    #[test]
    fn a_listed_op_matches_the_same_verb_and_target_only() {
        let listed = ListedOp {
            op: Verb::Rollback,
            target: "catalog".into(),
            set: BTreeMap::new(),
        }
        .parse()
        .unwrap();
        let op = |verb, target: &str| Op::parse(verb, target, &BTreeMap::new(), None).unwrap();
        assert!(listed.matches(&op(Verb::Rollback, "catalog")));
        assert!(
            listed.matches(&op(Verb::Rollback, " catalog ")),
            "parsed, not compared as text"
        );
        assert!(!listed.matches(&op(Verb::Rollback, "catalog-1")));
        assert!(!listed.matches(&op(Verb::Restart, "catalog")));
    }
}
