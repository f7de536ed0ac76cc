//! Grading: one rubric for every scenario (`controller/rubric.toml`,
//! compiled in and documented in docs/exercises.md), applied to an
//! exercise's recorded timeline. [`grade`] is a pure function of the
//! exercise, its timeline and its scenario, so a score is reproducible
//! from what was recorded.

use firedrill_runtime::faults::model::{Millis, Target};
use serde::{Deserialize, Serialize};

use super::exercise::{Diagnosis, Entry, Event, Exercise, SliSample};
use super::op::{Op, Verb};
use super::scenario::{Category, Scenario};

/// The rubric as shipped.
pub const RUBRIC: &str = include_str!("../../rubric.toml");

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rubric {
    pub acknowledge: Acknowledge,
    pub detect: Detect,
    pub localize: Localize,
    pub category: Points,
    pub mitigate: Mitigate,
    pub budget: Budget,
    pub communicate: Communicate,
    pub penalties: Penalties,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Points {
    pub points: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Acknowledge {
    pub points: f64,
    pub full_within: Millis,
    pub none_after: Millis,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    pub points: f64,
    pub after_page: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Localize {
    pub points: f64,
    pub on_chain: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mitigate {
    pub points: f64,
    pub windows: usize,
    pub full_within: Millis,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub points: f64,
    pub objective: f64,
    pub window: Millis,
    pub none_at: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Communicate {
    pub points: f64,
    pub first_within: Millis,
    pub every: Millis,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Penalties {
    pub wrong_op: f64,
    pub hints: Vec<f64>,
    pub worse_by: f64,
    pub worse_within: Millis,
}

impl Rubric {
    pub fn shipped() -> Rubric {
        toml::from_str(RUBRIC).expect("controller/rubric.toml is checked by a test")
    }

    /// The most an exercise can score.
    pub fn max(&self) -> f64 {
        self.acknowledge.points
            + self.detect.points
            + self.localize.points
            + self.category.points
            + self.mitigate.points
            + self.budget.points
            + self.communicate.points
    }
}

/// One part of the score.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    pub name: String,
    pub points: f64,
    pub max: f64,
    /// Why, in words.
    pub detail: String,
}

/// An op graded as wrong, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WrongOp {
    pub at_ms: i64,
    pub actor: String,
    pub op: String,
    pub why: String,
}

/// The times that matter, from the timeline (ms since the Unix epoch).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Times {
    pub incident_ms: i64,
    pub page_ms: Option<i64>,
    pub declared_ms: Option<i64>,
    pub ack_ms: Option<i64>,
    pub mitigated_ms: Option<i64>,
    pub end_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Scorecard {
    pub total: f64,
    pub max: f64,
    pub parts: Vec<Part>,
    pub penalties: Vec<Part>,
    pub wrong_ops: Vec<WrongOp>,
    pub hints_taken: usize,
    /// Error budget burned during the incident, as a share of what the
    /// objective allows over the exercise.
    pub budget_burned: f64,
    pub times: Times,
    /// The diagnosis that counted (the last one), if any.
    pub diagnosis: Option<Diagnosis>,
    /// Whether a learner declared the incident before any page.
    pub detected_first: bool,
}

/// Grades `exercise` (with its `entries`) against `scenario` by `rubric`,
/// as of `now` when it has not ended.
pub fn grade(
    rubric: &Rubric,
    exercise: &Exercise,
    entries: &[Entry],
    scenario: &Scenario,
    now: i64,
) -> Scorecard {
    let truth = scenario.truth.get_ref();
    let control = truth.category == Category::None;
    let end = exercise.ended.as_ref().map_or(now, |e| e.at_ms);
    let page = exercise.page.as_ref().map(|p| p.at_ms);
    let declared = first(entries, |e| matches!(e, Event::Declare { .. }));
    let ack = first(entries, |e| matches!(e, Event::Ack));
    let detected_first = declared.is_some_and(|d| page.is_none_or(|p| d < p));
    let incident = match (declared, page) {
        (Some(d), Some(p)) => d.min(p),
        (Some(d), None) => d,
        (None, Some(p)) => p,
        (None, None) => exercise.starts_ms,
    };
    let samples: Vec<(i64, SliSample)> = entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Sli(s) => Some((e.at_ms, *s)),
            _ => None,
        })
        .collect();
    let mitigated = mitigated_at(&samples, exercise.starts_ms, rubric.mitigate.windows);
    let diagnosis = entries.iter().rev().find_map(|e| match &e.event {
        Event::Diagnose(d) => Some(d.clone()),
        _ => None,
    });

    let mut parts = Vec::new();
    // Acknowledge.
    let (points, detail) = match (page, ack) {
        (None, _) => (rubric.acknowledge.points, "no page was sent".to_string()),
        (Some(_), None) => (0.0, "the page was never acknowledged".to_string()),
        (Some(p), Some(a)) => {
            let after = (a - p).max(0);
            (
                decay(
                    rubric.acknowledge.points,
                    after,
                    ms(rubric.acknowledge.full_within),
                    ms(rubric.acknowledge.none_after),
                ),
                format!("acknowledged {} after the page", human(after)),
            )
        }
    };
    parts.push(part(
        "acknowledge",
        points,
        rubric.acknowledge.points,
        detail,
    ));

    // Detect.
    let (points, detail) = if control {
        match declared {
            Some(_) => (0.0, "declared an incident where there was none".to_string()),
            None => (
                rubric.detect.points,
                "rightly declared no incident".to_string(),
            ),
        }
    } else if detected_first {
        (
            rubric.detect.points,
            "declared the incident before any page".to_string(),
        )
    } else if declared.is_some() || ack.is_some() {
        (
            rubric.detect.after_page,
            "responded to the page (did not detect it first)".to_string(),
        )
    } else {
        (0.0, "neither declared nor acknowledged".to_string())
    };
    parts.push(part("detect", points, rubric.detect.points, detail));

    // Localize and category.
    let (localize, category) = localize_and_categorize(rubric, scenario, diagnosis.as_ref());
    parts.push(localize);
    parts.push(category);

    // Mitigate, from the SLIs.
    let wrong_ops = wrong_ops(rubric, scenario, entries, &samples);
    let (points, detail) = if control {
        if wrong_ops.is_empty() {
            (
                rubric.mitigate.points,
                "left a healthy system alone".to_string(),
            )
        } else {
            (0.0, "changed a healthy system".to_string())
        }
    } else {
        match mitigated {
            Some(at) => {
                let after = (at - incident).max(0);
                (
                    decay(
                        rubric.mitigate.points,
                        after,
                        ms(rubric.mitigate.full_within),
                        (exercise.deadline_ms - incident).max(ms(rubric.mitigate.full_within) + 1),
                    ),
                    format!(
                        "the SLIs recovered {} after the incident began",
                        human(after)
                    ),
                )
            }
            None => (0.0, "the SLIs did not recover".to_string()),
        }
    };
    parts.push(part("mitigate", points, rubric.mitigate.points, detail));

    // Error budget.
    let budget_burned = budget_burned(rubric, &samples, incident, mitigated.unwrap_or(end));
    parts.push(part(
        "budget",
        rubric.budget.points * (1.0 - budget_burned / rubric.budget.none_at).clamp(0.0, 1.0),
        rubric.budget.points,
        format!(
            "the incident burned {:.2} % of a {} error budget at this request rate",
            budget_burned * 100.0,
            human_days(rubric.budget.window)
        ),
    ));

    // Communicate.
    let updates: Vec<i64> = entries
        .iter()
        .filter(|e| matches!(e.event, Event::Status { .. }) && e.at_ms >= incident)
        .map(|e| e.at_ms)
        .collect();
    parts.push(communicate(
        rubric,
        &updates,
        incident,
        mitigated.unwrap_or(end),
    ));

    // Penalties.
    let mut penalties = Vec::new();
    if !wrong_ops.is_empty() {
        penalties.push(part(
            "wrong ops",
            -(wrong_ops.len() as f64) * rubric.penalties.wrong_op,
            0.0,
            wrong_ops
                .iter()
                .map(|w| format!("{} ({})", w.op, w.why))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    let hints_taken = Exercise::hints_taken(entries);
    if hints_taken > 0 {
        let cost: f64 = rubric.penalties.hints.iter().take(hints_taken).sum();
        penalties.push(part(
            "hints",
            -cost,
            0.0,
            format!("{hints_taken} hint(s) taken"),
        ));
    }
    let total = (parts
        .iter()
        .chain(&penalties)
        .map(|p| p.points)
        .sum::<f64>())
    .max(0.0);
    Scorecard {
        total: round(total),
        max: rubric.max(),
        parts,
        penalties,
        wrong_ops,
        hints_taken,
        budget_burned,
        times: Times {
            incident_ms: incident,
            page_ms: page,
            declared_ms: declared,
            ack_ms: ack,
            mitigated_ms: mitigated,
            end_ms: end,
        },
        diagnosis,
        detected_first,
    }
}

fn part(name: &str, points: f64, max: f64, detail: String) -> Part {
    Part {
        name: name.to_string(),
        points: round(points),
        max,
        detail,
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn ms(d: Millis) -> i64 {
    d.0 as i64
}

/// `12 min 5 s`.
pub fn human(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        _ => format!("{} min {} s", s / 60, s % 60),
    }
}

/// `30 days`, `12 hours`.
fn human_days(d: Millis) -> String {
    let hours = d.0 / 3_600_000;
    if hours >= 24 && hours.is_multiple_of(24) {
        format!("{}-day", hours / 24)
    } else {
        format!("{hours}-hour")
    }
}

fn first(entries: &[Entry], is: impl Fn(&Event) -> bool) -> Option<i64> {
    entries.iter().find(|e| is(&e.event)).map(|e| e.at_ms)
}

/// Full `points` up to `full`, then linearly fewer, to none at `none`.
fn decay(points: f64, after: i64, full: i64, none: i64) -> f64 {
    if after <= full {
        points
    } else if after >= none {
        0.0
    } else {
        points * (none - after) as f64 / (none - full) as f64
    }
}

/// When the SLIs recovered for good: the first of `windows` consecutive
/// recovered samples after the incident's start, when every sample from
/// there to the end held too.
pub fn mitigated_at(samples: &[(i64, SliSample)], since: i64, windows: usize) -> Option<i64> {
    let after: Vec<&(i64, SliSample)> = samples.iter().filter(|(at, _)| *at >= since).collect();
    // The samples before the incident broke the SLIs are not a recovery:
    // find the last sample that did not hold, and look after it.
    let last_bad = after.iter().rposition(|(_, s)| !s.recovered)?;
    let run = &after[last_bad + 1..];
    (run.len() >= windows.max(1)).then(|| run[0].0)
}

/// Bad answers from `from` to `to`, as a share of what the objective
/// allows over the rubric's window at the request rate the samples show.
fn budget_burned(rubric: &Rubric, samples: &[(i64, SliSample)], from: i64, to: i64) -> f64 {
    let requests: f64 = samples.iter().map(|(_, s)| s.requests).sum();
    let observed_ms: f64 = samples.iter().map(|(_, s)| s.window_ms as f64).sum();
    if requests <= 0.0 || observed_ms <= 0.0 {
        return 0.0;
    }
    let per_ms = requests / observed_ms;
    let allowed = (1.0 - rubric.budget.objective) * per_ms * rubric.budget.window.0 as f64;
    let bad: f64 = samples
        .iter()
        .filter(|(at, _)| *at >= from && *at <= to)
        .map(|(_, s)| (s.errors + s.slow).min(s.requests))
        .sum();
    bad / allowed
}

fn communicate(rubric: &Rubric, updates: &[i64], from: i64, to: i64) -> Part {
    let c = &rubric.communicate;
    let half = c.points / 2.0;
    let first = updates
        .first()
        .is_some_and(|&at| at - from <= ms(c.first_within));
    let every = ms(c.every).max(1);
    let stretches = (((to - from).max(1) + every - 1) / every) as usize;
    let covered = (0..stretches)
        .filter(|&i| {
            let start = from + i as i64 * every;
            updates.iter().any(|&at| at >= start && at < start + every)
        })
        .count();
    let points = if first { half } else { 0.0 } + half * covered as f64 / stretches as f64;
    part(
        "communicate",
        points,
        c.points,
        format!(
            "{} status update(s); first {}; {covered} of {stretches} stretch(es) of {} covered",
            updates.len(),
            match updates.first() {
                Some(&at) => format!("{} after the incident began", human((at - from).max(0))),
                None => "never".to_string(),
            },
            human(every)
        ),
    )
}

/// The service a target shorthand names (`payment-2` → payment, `db` →
/// db).
fn service_of(target: &str) -> String {
    Target::parse(target)
        .map(|t| t.service)
        .unwrap_or_else(|_| target.to_string())
}

fn localize_and_categorize(
    rubric: &Rubric,
    scenario: &Scenario,
    diagnosis: Option<&Diagnosis>,
) -> (Part, Part) {
    let truth = scenario.truth.get_ref();
    let control = truth.category == Category::None;
    let l = &rubric.localize;
    let c = rubric.category.points;
    let Some(d) = diagnosis else {
        return if control {
            (
                part(
                    "localize",
                    l.points,
                    l.points,
                    "no diagnosis: right for a control".into(),
                ),
                part("category", c, c, "no incident: right for a control".into()),
            )
        } else {
            (
                part("localize", 0.0, l.points, "no diagnosis".into()),
                part("category", 0.0, c, "no diagnosis".into()),
            )
        };
    };
    if control {
        let right = d.category == Category::None;
        let points = if right { 1.0 } else { 0.0 };
        return (
            part(
                "localize",
                l.points * points,
                l.points,
                if right {
                    "no root cause named: right for a control".into()
                } else {
                    format!("named {} as a root cause where there was none", d.service)
                },
            ),
            part("category", c * points, c, format!("said {}", d.category)),
        );
    }
    let root = Target::parse(&truth.root).ok();
    let root_service = root
        .as_ref()
        .map_or(truth.root.clone(), |t| t.service.clone());
    let instance_needed = root.as_ref().and_then(|t| t.instance.clone());
    let exact = d.service == root_service
        && instance_needed
            .as_ref()
            .is_none_or(|i| d.instance.as_deref() == Some(i.as_str()));
    let on_chain = truth.chain.iter().any(|link| service_of(link) == d.service);
    let localize = if exact {
        part(
            "localize",
            l.points,
            l.points,
            format!("named the root, {}", truth.root),
        )
    } else if on_chain {
        part(
            "localize",
            l.on_chain,
            l.points,
            format!(
                "named {}, on the way the failure spread, not its root ({})",
                d.service, truth.root
            ),
        )
    } else {
        part(
            "localize",
            0.0,
            l.points,
            format!("named {}; the root was {}", d.service, truth.root),
        )
    };
    let right = d.category == truth.category;
    let category = part(
        "category",
        if right { c } else { 0.0 },
        c,
        if right {
            truth.category.to_string()
        } else {
            format!("said {}; it was {}", d.category, truth.category)
        },
    );
    (localize, category)
}

/// Ops graded as wrong (see the rubric).
fn wrong_ops(
    rubric: &Rubric,
    scenario: &Scenario,
    entries: &[Entry],
    samples: &[(i64, SliSample)],
) -> Vec<WrongOp> {
    let truth = scenario.truth.get_ref();
    let control = truth.category == Category::None;
    let chain: Vec<String> = truth.chain.iter().map(|l| service_of(l)).collect();
    let mitigation = scenario.mitigation.get_ref();
    let mut wrong = Vec::new();
    for entry in entries {
        let Event::Op { op, target, .. } = &entry.event else {
            continue;
        };
        if *op == Verb::NoAction {
            continue;
        }
        let text = format!("{op} {target}");
        let parsed = Op::parse(*op, target, &Default::default(), None).ok();
        let why = if control {
            Some("an op on a healthy system".to_string())
        } else if parsed
            .as_ref()
            .is_some_and(|p| mitigation.lists_as_wrong(p))
        {
            Some("a known wrong mitigation for this incident".to_string())
        } else if *op == Verb::Restart && !chain.contains(&service_of(target)) {
            Some("restarted a service the incident did not touch".to_string())
        } else {
            made_worse(rubric, samples, entry.at_ms)
        };
        if let Some(why) = why {
            wrong.push(WrongOp {
                at_ms: entry.at_ms,
                actor: entry.actor.clone(),
                op: text,
                why,
            });
        }
    }
    wrong
}

/// Whether the SLIs got clearly worse within the rubric's window after an
/// op at `at`, compared with the window before it.
fn made_worse(rubric: &Rubric, samples: &[(i64, SliSample)], at: i64) -> Option<String> {
    let within = ms(rubric.penalties.worse_within);
    let bad_share = |from: i64, to: i64| {
        let (bad, all) = samples
            .iter()
            .filter(|(t, _)| *t > from && *t <= to)
            .fold((0.0, 0.0), |(b, a), (_, s)| {
                (b + (s.errors + s.slow).min(s.requests), a + s.requests)
            });
        (all > 0.0).then(|| bad / all)
    };
    let before = bad_share(at - within, at)?;
    let after = bad_share(at, at + within)?;
    (after - before >= rubric.penalties.worse_by).then(|| {
        format!(
            "the share of failing or slow answers rose from {:.0} % to {:.0} %",
            before * 100.0,
            after * 100.0
        )
    })
}

#[cfg(test)]
mod tests;
