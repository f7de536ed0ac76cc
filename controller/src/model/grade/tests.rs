//! The rubric applied to timelines written to show each rule.

use std::path::Path;

use super::*;
use crate::model::exercise::{EndReason, Ending, Page, Paging};

const MIN: i64 = 60_000;

fn scenario(edit: impl FnOnce(String) -> String) -> Scenario {
    let text = edit(crate::scenarios::tests::GOOD.to_string());
    crate::scenarios::parse(Path::new("slow-catalog.toml"), &text).unwrap()
}

fn exercise(page_at: Option<i64>, end_at: i64) -> Exercise {
    Exercise {
        id: "x1".into(),
        scenario: "slow-catalog".into(),
        seed: 1,
        learners: vec!["alice".into()],
        created_ms: 0,
        starts_ms: MIN,
        deadline_ms: 31 * MIN,
        paging: Paging::Timer { after_ms: MIN },
        page: page_at.map(|at_ms| Page {
            at_ms,
            by: "timer".into(),
        }),
        resolve_asked_ms: None,
        ended: Some(Ending {
            at_ms: end_at,
            why: EndReason::Resolved,
        }),
    }
}

fn at(at_ms: i64, event: Event) -> Entry {
    Entry {
        at_ms,
        actor: "alice".into(),
        event,
    }
}

/// An SLI sample every 30 s from `from` to `to`, broken before `fixed`.
fn slis(from: i64, to: i64, fixed: i64) -> Vec<Entry> {
    (0..)
        .map(|i| from + i * 30_000)
        .take_while(|t| *t <= to)
        .map(|t| {
            let broken = t >= 2 * MIN && t < fixed;
            at(
                t,
                Event::Sli(SliSample {
                    window_ms: 30_000,
                    requests: 100.0,
                    errors: 0.0,
                    slow: if broken { 60.0 } else { 0.0 },
                    error_ratio: 0.0,
                    p50_ms: Some(if broken { 400.0 } else { 30.0 }),
                    p95_ms: Some(if broken { 600.0 } else { 60.0 }),
                    recovered: !broken,
                }),
            )
        })
        .collect()
}

fn diagnose(service: &str, category: Category) -> Event {
    Event::Diagnose(Diagnosis {
        service: service.into(),
        instance: None,
        category,
        chain: vec![],
        summary: "x".into(),
    })
}

fn op(verb: Verb, target: &str) -> Event {
    Event::Op {
        op: verb,
        target: target.into(),
        result: "done".into(),
    }
}

/// The path a good on-call engineer takes, graded.
fn good_path(extra: Vec<Entry>) -> Scorecard {
    let s = scenario(|t| t);
    let mut entries = slis(MIN, 12 * MIN, 6 * MIN);
    entries.extend([
        at(3 * MIN, Event::Ack),
        at(
            3 * MIN + 1,
            Event::Status {
                text: "looking".into(),
            },
        ),
        at(4 * MIN, diagnose("catalog", Category::DependencyLatency)),
        at(5 * MIN, op(Verb::Restart, "catalog")),
        at(
            8 * MIN,
            Event::Status {
                text: "fixed".into(),
            },
        ),
    ]);
    entries.extend(extra);
    entries.sort_by_key(|e| e.at_ms);
    grade(
        &Rubric::shipped(),
        &exercise(Some(2 * MIN + 30_000), 12 * MIN),
        &entries,
        &s,
        12 * MIN,
    )
}

#[test]
fn the_shipped_rubric_parses_and_is_out_of_100() {
    let rubric = Rubric::shipped();
    assert_eq!(rubric.max(), 100.0);
    assert_eq!(rubric.penalties.hints.len(), 3, "one cost per hint tier");
}

#[test]
fn a_correct_path_scores_high_and_every_part_says_why() {
    let card = good_path(vec![]);
    assert!(card.total >= 85.0, "{card:#?}");
    assert!(card.wrong_ops.is_empty(), "{card:#?}");
    assert_eq!(card.times.mitigated_ms, Some(6 * MIN));
    for part in &card.parts {
        assert!(!part.detail.is_empty(), "{part:?}");
        assert!(part.points <= part.max, "{part:?}");
    }
}

#[test]
fn a_wrong_op_and_a_hint_each_cost_what_the_rubric_says() {
    let rubric = Rubric::shipped();
    let base = good_path(vec![]).total;
    let with_wrong = good_path(vec![at(4 * MIN + 1, op(Verb::Restart, "gateway"))]);
    assert_eq!(with_wrong.wrong_ops.len(), 1, "{with_wrong:#?}");
    assert!(
        with_wrong.wrong_ops[0].why.contains("known wrong"),
        "{with_wrong:#?}"
    );
    assert_eq!(base - with_wrong.total, rubric.penalties.wrong_op);
    let with_hint = good_path(vec![at(3 * MIN + 5, Event::Hint { tier: 1 })]);
    assert_eq!(base - with_hint.total, rubric.penalties.hints[0]);
    let untouched = good_path(vec![at(4 * MIN + 2, op(Verb::Restart, "shipping"))]);
    assert!(
        untouched.wrong_ops[0].why.contains("did not touch"),
        "{untouched:#?}"
    );
}

#[test]
fn localization_is_exact_partial_or_wrong() {
    let s = scenario(|t| t);
    let rubric = Rubric::shipped();
    let card = |service: &str, category| {
        grade(
            &rubric,
            &exercise(Some(2 * MIN), 10 * MIN),
            &[at(3 * MIN, diagnose(service, category))],
            &s,
            10 * MIN,
        )
    };
    let points =
        |c: &Scorecard, name: &str| c.parts.iter().find(|p| p.name == name).unwrap().points;
    let exact = card("catalog", Category::DependencyLatency);
    assert_eq!(points(&exact, "localize"), rubric.localize.points);
    assert_eq!(points(&exact, "category"), rubric.category.points);
    let partial = card("gateway", Category::Network);
    assert_eq!(points(&partial, "localize"), rubric.localize.on_chain);
    assert_eq!(points(&partial, "category"), 0.0);
    let wrong = card("shipping", Category::DependencyLatency);
    assert_eq!(points(&wrong, "localize"), 0.0);
}

#[test]
fn mitigation_is_when_the_slis_recover_for_good_not_when_an_op_is_made() {
    let samples: Vec<(i64, SliSample)> = slis(MIN, 12 * MIN, 6 * MIN)
        .into_iter()
        .map(|e| match e.event {
            Event::Sli(s) => (e.at_ms, s),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(mitigated_at(&samples, MIN, 2), Some(6 * MIN));
    // Never broken after `since`: there was nothing to recover from.
    assert_eq!(mitigated_at(&samples, 7 * MIN, 2), None);
    // Broken to the end: not mitigated.
    let broken: Vec<_> = slis(MIN, 12 * MIN, 99 * MIN)
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Sli(s) => Some((e.at_ms, s)),
            _ => None,
        })
        .collect();
    assert_eq!(mitigated_at(&broken, MIN, 2), None);
}

#[test]
fn a_control_rewards_doing_nothing_and_punishes_a_false_alarm() {
    let control = scenario(|t| {
        t.replace("role = \"root\"", "role = \"herring\"")
            .replace(
                "root = \"catalog\"\ncategory = \"dependency-latency\"\nchain = [\"catalog\", \"gateway\"]",
                "root = \"none\"\ncategory = \"none\"\nchain = []",
            )
    });
    let rubric = Rubric::shipped();
    let entries = slis(MIN, 10 * MIN, 0);
    let quiet = grade(
        &rubric,
        &exercise(None, 10 * MIN),
        &entries,
        &control,
        10 * MIN,
    );
    let lost: f64 = quiet.parts.iter().map(|p| p.max - p.points).sum();
    assert!(lost <= rubric.communicate.points, "{quiet:#?}");
    let mut alarmed = entries.clone();
    alarmed.push(at(
        3 * MIN,
        Event::Declare {
            text: "it's on fire".into(),
        },
    ));
    alarmed.push(at(4 * MIN, op(Verb::Restart, "catalog")));
    let card = grade(
        &rubric,
        &exercise(None, 10 * MIN),
        &alarmed,
        &control,
        10 * MIN,
    );
    assert!(card.total < quiet.total - 20.0, "{card:#?}");
    assert_eq!(card.wrong_ops.len(), 1);
}

#[test]
fn a_score_is_reproducible_from_the_recorded_timeline() {
    let first = good_path(vec![at(3 * MIN + 5, Event::Hint { tier: 1 })]);
    let line = serde_json::to_string(&first).unwrap();
    let again = good_path(vec![at(3 * MIN + 5, Event::Hint { tier: 1 })]);
    assert_eq!(serde_json::to_string(&again).unwrap(), line);
}
