//! An exercise: one scenario taken by one learner or a team, from the page
//! to a graded debrief, as plain data.
//!
//! What is fixed when it starts ([`Exercise`]) lives in the controller's
//! state; what happens during it is a timeline of [`Entry`]s, appended to a
//! journal of its own as it happens and never rewritten. Grading (`grade`)
//! and every report are computed from the two, so a score can be
//! recomputed from the recorded timeline at any time and always comes out
//! the same.
//!
//! The learner's view ([`LearnerView`]) is built from the same data and
//! names no scenario, fault, truth or hint not taken: the page text (once
//! sent), times, and what the learners themselves did.

use serde::{Deserialize, Serialize};

use super::op::Verb;
use super::scenario::Category;

/// How the page reaches the learners.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "by")]
pub enum Paging {
    /// When one of the project's alert rules with `severity=page` fires
    /// on the lab's telemetry (Prometheus runs), or after `fallback_ms`
    /// from the start if none has by then.
    Alerts {
        #[serde(rename = "fallbackMs")]
        fallback_ms: i64,
    },
    /// `after_ms` from the start (no Prometheus to alert).
    Timer {
        #[serde(rename = "afterMs")]
        after_ms: i64,
    },
}

/// An exercise as started.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Exercise {
    /// `x1`, `x2`, ... in start order.
    pub id: String,
    pub scenario: String,
    /// Fixes the warm-up, a random scenario choice and the lab's load.
    pub seed: u64,
    /// Who takes part; actions of anyone else are refused.
    pub learners: Vec<String>,
    pub created_ms: i64,
    /// When the scenario's timeline starts: after a warm-up of normal
    /// traffic whose length learners are not told.
    pub starts_ms: i64,
    /// When it ends at the latest.
    pub deadline_ms: i64,
    pub paging: Paging,
    /// When the page was sent, and by what (an alert's name, or `timer`).
    #[serde(default)]
    pub page: Option<Page>,
    /// A learner declared it resolved: it ends once the SLIs have recovered.
    #[serde(default)]
    pub resolve_asked_ms: Option<i64>,
    #[serde(default)]
    pub ended: Option<Ending>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub at_ms: i64,
    /// The alert that fired (`ErrorBudgetBurnFast`), or `timer`.
    pub by: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Ending {
    pub at_ms: i64,
    pub why: EndReason,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// A learner resolved it and the SLIs held recovered.
    Resolved,
    TimeLimit,
    GaveUp,
    /// The instructor stopped it.
    Stopped,
}

/// One thing that happened, when, and by whom (`system` for the lab's own
/// doings: the page, alerts, SLI samples).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub at_ms: i64,
    pub actor: String,
    #[serde(flatten)]
    pub event: Event,
}

/// The learner's diagnosis: where the root cause is, what kind it is, and
/// how it spread.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub category: Category,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
    pub summary: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum Event {
    /// The page reached the learners.
    Page {
        by: String,
    },
    /// An alert changed state (every alert, not only pages).
    Alert {
        name: String,
        severity: String,
        firing: bool,
    },
    /// A learner declared an incident (before or after the page).
    Declare {
        text: String,
    },
    Ack,
    Hint {
        tier: usize,
    },
    Status {
        text: String,
    },
    Op {
        op: Verb,
        target: String,
        result: String,
    },
    Diagnose(Diagnosis),
    /// A learner declared it over; `recovered` says whether the SLIs had.
    Resolve {
        recovered: bool,
    },
    GiveUp,
    /// The page's SLI over one window, sampled through the whole exercise.
    Sli(SliSample),
    Ended {
        why: EndReason,
    },
}

/// The page route's SLI at the gateway over one window.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SliSample {
    pub window_ms: i64,
    pub requests: f64,
    /// Answers that were 5xx.
    pub errors: f64,
    /// Answers slower than the scenario's latency objective.
    pub slow: f64,
    pub error_ratio: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// Whether the scenario's recovery condition held in this window.
    pub recovered: bool,
}

/// Where an exercise is, as a learner may see it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Started; no page yet (the incident may or may not have begun).
    Waiting,
    Paged,
    Ended,
}

/// What a learner sees of the exercise they take part in: nothing that
/// names the scenario, its faults, its truth or a hint not taken.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LearnerView {
    pub id: String,
    pub phase: Phase,
    pub learners: Vec<String>,
    /// Since the exercise was started (the warm-up included: learners are
    /// not told when the incident begins).
    pub elapsed_ms: i64,
    pub time_limit_ms: i64,
    /// The page, once sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paged_at_ms: Option<i64>,
    /// The hints taken so far, in order.
    pub hints: Vec<String>,
    /// How many hints there are in all.
    pub hints_total: usize,
    /// What the learners did: every action but SLI samples and alerts.
    pub actions: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ending>,
}

impl Exercise {
    pub fn phase(&self) -> Phase {
        match (&self.ended, &self.page) {
            (Some(_), _) => Phase::Ended,
            (None, Some(_)) => Phase::Paged,
            (None, None) => Phase::Waiting,
        }
    }

    pub fn takes_part(&self, learner: &str) -> bool {
        self.learners.iter().any(|l| l == learner)
    }

    /// The hint tiers taken, from the timeline.
    pub fn hints_taken(entries: &[Entry]) -> usize {
        entries
            .iter()
            .filter(|e| matches!(e.event, Event::Hint { .. }))
            .count()
    }

    /// The learner's view at `now`, from the exercise, its timeline, the
    /// scenario's page and its hints.
    pub fn learner_view(
        &self,
        entries: &[Entry],
        page: &str,
        hints: &[String],
        now: i64,
    ) -> LearnerView {
        let taken = Exercise::hints_taken(entries).min(hints.len());
        let end = self.ended.as_ref().map_or(now, |e| e.at_ms);
        LearnerView {
            id: self.id.clone(),
            phase: self.phase(),
            learners: self.learners.clone(),
            elapsed_ms: (end - self.created_ms).max(0),
            time_limit_ms: self.deadline_ms - self.created_ms,
            page: self.page.as_ref().map(|_| page.to_string()),
            paged_at_ms: self.page.as_ref().map(|p| p.at_ms),
            hints: hints[..taken].to_vec(),
            hints_total: hints.len(),
            actions: entries
                .iter()
                .filter(|e| e.is_learner_action())
                .cloned()
                .collect(),
            ended: self.ended.clone(),
        }
    }
}

impl Entry {
    /// Whether a learner did this (as opposed to the lab: the page, alerts,
    /// SLI samples, the end).
    pub fn is_learner_action(&self) -> bool {
        !matches!(
            self.event,
            Event::Page { .. } | Event::Alert { .. } | Event::Sli(_) | Event::Ended { .. }
        )
    }
}

/// What a random pick of a scenario and a warm-up is drawn from: a small,
/// explicit generator (SplitMix64), so the same seed gives the same
/// exercise on any build.
pub struct Draw(u64);

impl Draw {
    pub fn new(seed: u64) -> Draw {
        Draw(seed)
    }

    pub fn number(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.number() % (high - low + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise() -> Exercise {
        Exercise {
            id: "x1".into(),
            scenario: "slow-catalog".into(),
            seed: 7,
            learners: vec!["alice".into(), "bob".into()],
            created_ms: 1_000,
            starts_ms: 31_000,
            deadline_ms: 1_801_000,
            paging: Paging::Timer { after_ms: 60_000 },
            page: None,
            resolve_asked_ms: None,
            ended: None,
        }
    }

    fn at(at_ms: i64, actor: &str, event: Event) -> Entry {
        Entry {
            at_ms,
            actor: actor.into(),
            event,
        }
    }

    #[test]
    fn a_learner_sees_the_page_only_once_sent_and_only_hints_taken() {
        let hints: Vec<String> = ["one", "two", "three"].map(String::from).to_vec();
        let mut ex = exercise();
        let entries = vec![
            at(
                2_000,
                "alice",
                Event::Declare {
                    text: "slow?".into(),
                },
            ),
            at(
                3_000,
                "system",
                Event::Sli(SliSample {
                    window_ms: 5_000,
                    requests: 10.0,
                    errors: 0.0,
                    slow: 0.0,
                    error_ratio: 0.0,
                    p50_ms: Some(20.0),
                    p95_ms: Some(40.0),
                    recovered: true,
                }),
            ),
            at(4_000, "bob", Event::Hint { tier: 1 }),
        ];
        let view = ex.learner_view(&entries, "the page", &hints, 5_000);
        assert_eq!(view.phase, Phase::Waiting);
        assert_eq!(view.page, None);
        assert_eq!(view.hints, ["one"]);
        assert_eq!(view.actions.len(), 2, "SLI samples are not actions");
        assert_eq!(view.elapsed_ms, 4_000);
        ex.page = Some(Page {
            at_ms: 90_000,
            by: "timer".into(),
        });
        let view = ex.learner_view(&entries, "the page", &hints, 100_000);
        assert_eq!(view.phase, Phase::Paged);
        assert_eq!(view.page.as_deref(), Some("the page"));
        let json = serde_json::to_string(&view).unwrap();
        assert!(!json.contains("slow-catalog"), "{json}");
        assert!(!json.contains("two"), "{json}");
    }

    #[test]
    fn the_same_seed_draws_the_same_numbers() {
        let draws = |seed| {
            let mut d = Draw::new(seed);
            (0..5).map(|_| d.between(30, 120)).collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
        assert!(draws(3).iter().all(|n| (30..=120).contains(n)));
    }

    #[test]
    fn entries_round_trip_as_json_lines() {
        let entry = at(
            5,
            "alice",
            Event::Diagnose(Diagnosis {
                service: "catalog".into(),
                instance: None,
                category: Category::BadDeploy,
                chain: vec!["catalog".into(), "gateway".into()],
                summary: "2.4.0 is slow".into(),
            }),
        );
        let line = serde_json::to_string(&entry).unwrap();
        assert!(line.contains(r#""event":"diagnose""#), "{line}");
        assert_eq!(serde_json::from_str::<Entry>(&line).unwrap(), entry);
    }
}
