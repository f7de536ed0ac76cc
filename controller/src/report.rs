//! The debrief report of an exercise, as JSON, Markdown or a self-contained
//! HTML page: the scorecard, the page route's SLI over the whole exercise
//! with every event marked on it (the fault steps are revealed here, once
//! the exercise is over), the scenario's debrief with its revealing
//! queries, and a postmortem draft in DETECT order (Detect, Evaluate,
//! Troubleshoot, Execute, Communicate, Track) pre-filled from the timeline.
//!
//! Everything is computed from the exercise and its recorded timeline
//! (`model::grade::grade`), so a report rendered again later says the
//! same. The HTML page fetches nothing: its styles and its SVG plot are
//! inline, and every marker has a shape and a label, not only a colour.

use std::fmt::Write as _;
use std::path::PathBuf;

use firedrill_runtime::AppError;
use serde::{Deserialize, Serialize};

use crate::controller::Controller;
use crate::model::exercise::{Entry, Event, Exercise};
use crate::model::grade::{Scorecard, grade, human};
use crate::model::scenario::{Role, Scenario, StepKind, Truth};

/// Where exercises' timelines and reports are kept.
pub fn dir(ctl: &Controller) -> PathBuf {
    ctl.config.state_dir.join("exercises")
}

/// What a report shows, in one value (the JSON report).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub exercise: Exercise,
    pub scenario: Facts,
    pub scorecard: Scorecard,
    pub timeline: Vec<Entry>,
}

/// The scenario, revealed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    pub id: String,
    pub title: String,
    pub difficulty: String,
    pub page: String,
    pub truth: Truth,
    pub hints: Vec<String>,
    pub debrief: String,
    pub route: String,
    /// Each step of the timeline, at its wall-clock time in this exercise.
    pub steps: Vec<StepFact>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepFact {
    pub at_ms: i64,
    pub role: String,
    pub what: String,
}

/// The report of `exercise` from its `entries`, graded as of `now`.
pub fn build(
    ctl: &Controller,
    exercise: &Exercise,
    entries: &[Entry],
    now: i64,
) -> Result<Report, AppError> {
    let scenario = ctl.scenario(&exercise.scenario)?;
    Ok(Report {
        exercise: exercise.clone(),
        scenario: facts(scenario, exercise),
        scorecard: grade(&ctl.rubric, exercise, entries, scenario, now),
        timeline: entries.to_vec(),
    })
}

fn facts(scenario: &Scenario, exercise: &Exercise) -> Facts {
    let steps = scenario
        .steps
        .iter()
        .map(|s| {
            let step = s.get_ref();
            let what = match &step.kind {
                StepKind::Deploy(d) => format!("deploy {} {}", step.target, d.version),
                StepKind::Fault(kind) => format!("{} on {}", kind.name(), step.target),
            };
            StepFact {
                at_ms: exercise.starts_ms + step.at.0 as i64,
                role: match step.role {
                    Role::Root => "root",
                    Role::Trigger => "trigger",
                    Role::Herring => "red herring",
                }
                .to_string(),
                what,
            }
        })
        .collect();
    Facts {
        id: scenario.id().to_string(),
        title: scenario.title.clone(),
        difficulty: scenario.difficulty.to_string(),
        page: scenario.page.clone(),
        truth: scenario.truth.get_ref().clone(),
        hints: scenario.hints.get_ref().clone(),
        debrief: scenario.debrief.clone(),
        route: scenario.mitigation.get_ref().recovery.route.clone(),
        steps,
    }
}

/// Writes the ended exercise's report beside its timeline.
pub fn write(
    ctl: &Controller,
    exercise: &Exercise,
    entries: &[Entry],
) -> Result<PathBuf, AppError> {
    let end = exercise.ended.as_ref().map_or(0, |e| e.at_ms);
    let report = build(ctl, exercise, entries, end)?;
    let path = dir(ctl).join(format!("{}.report.json", exercise.id));
    let bytes = serde_json::to_vec_pretty(&report).map_err(AppError::internal)?;
    firedrill_rundir::write_atomically(&path, &bytes, 0o600).map_err(AppError::internal)?;
    Ok(path)
}

/// The formats a report comes in.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Md,
    Html,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Md => "text/markdown; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default(),
        Format::Md => markdown(report),
        Format::Html => html(report),
    }
}

// === what both text formats say ===

/// A marker on the timeline: when, what kind (for its shape), and a label.
struct Marker {
    at_ms: i64,
    kind: &'static str,
    label: String,
}

fn markers(report: &Report) -> Vec<Marker> {
    let mut out: Vec<Marker> = report
        .scenario
        .steps
        .iter()
        .map(|s| Marker {
            at_ms: s.at_ms,
            kind: "fault",
            label: format!("{} ({})", s.what, s.role),
        })
        .collect();
    for entry in &report.timeline {
        let (kind, label) = match &entry.event {
            Event::Page { by } => ("page", format!("page ({by})")),
            Event::Declare { .. } => ("learner", format!("declared by {}", entry.actor)),
            Event::Ack => ("learner", format!("ack by {}", entry.actor)),
            Event::Hint { tier } => ("hint", format!("hint {tier} ({})", entry.actor)),
            Event::Status { .. } => ("learner", format!("status by {}", entry.actor)),
            Event::Op { op, target, .. } => ("op", format!("{op} {target} ({})", entry.actor)),
            Event::Diagnose(d) => (
                "learner",
                format!("diagnosis: {} ({})", d.service, entry.actor),
            ),
            Event::Resolve { .. } => ("learner", format!("resolve ({})", entry.actor)),
            Event::GiveUp => ("learner", format!("gave up ({})", entry.actor)),
            Event::Alert {
                name, firing: true, ..
            } => ("alert", format!("alert {name}")),
            _ => continue,
        };
        out.push(Marker {
            at_ms: entry.at_ms,
            kind,
            label,
        });
    }
    if let Some(at) = report.scorecard.times.mitigated_ms {
        out.push(Marker {
            at_ms: at,
            kind: "recovered",
            label: "SLIs recovered".into(),
        });
    }
    out.sort_by_key(|m| m.at_ms);
    out
}

/// `+3 min 5 s` from the exercise's start.
fn clock(report: &Report, at_ms: i64) -> String {
    format!("+{}", human(at_ms - report.exercise.created_ms))
}

fn describe(entry: &Entry) -> String {
    match &entry.event {
        Event::Page { by } => format!("the page went out ({by})"),
        Event::Alert {
            name,
            severity,
            firing,
        } => format!(
            "alert {name} ({severity}) {}",
            if *firing { "firing" } else { "resolved" }
        ),
        Event::Declare { text } => format!("declared an incident: {text}"),
        Event::Ack => "acknowledged the page".into(),
        Event::Hint { tier } => format!("took hint {tier}"),
        Event::Status { text } => format!("status update: {text}"),
        Event::Op { op, target, result } => format!("`{op} {target}`: {result}"),
        Event::Diagnose(d) => format!(
            "diagnosed {}{} as {}{}: {}",
            d.service,
            d.instance
                .as_ref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default(),
            d.category,
            if d.chain.is_empty() {
                String::new()
            } else {
                format!(", spreading {}", d.chain.join(" → "))
            },
            d.summary
        ),
        Event::Resolve { recovered } => format!(
            "declared it resolved ({})",
            if *recovered {
                "the SLIs had recovered"
            } else {
                "the SLIs had not recovered yet"
            }
        ),
        Event::GiveUp => "gave up".into(),
        Event::Ended { why } => format!("the exercise ended ({why:?})"),
        Event::Sli(_) => String::new(),
    }
}

/// The postmortem draft's sections, in DETECT order, pre-filled.
fn postmortem(report: &Report) -> Vec<(&'static str, Vec<String>)> {
    let card = &report.scorecard;
    let t = &card.times;
    let actions = |is: fn(&Event) -> bool| -> Vec<String> {
        report
            .timeline
            .iter()
            .filter(|e| is(&e.event))
            .map(|e| format!("{} {}: {}", clock(report, e.at_ms), e.actor, describe(e)))
            .collect()
    };
    let mut detect = Vec::new();
    if let Some(first) = report.scenario.steps.first() {
        detect.push(format!(
            "Impact began about {} (the first change).",
            clock(report, first.at_ms)
        ));
    }
    match (t.page_ms, card.detected_first) {
        (_, true) => detect.push(format!(
            "Detected by the team before any page, at {}.",
            clock(report, t.declared_ms.unwrap_or(t.incident_ms))
        )),
        (Some(p), false) => detect.push(format!(
            "Paged at {} ({}).",
            clock(report, p),
            report
                .exercise
                .page
                .as_ref()
                .map(|p| p.by.as_str())
                .unwrap_or("timer")
        )),
        (None, false) => detect.push("No page was sent.".into()),
    }
    if let Some(a) = t.ack_ms {
        detect.push(format!("Acknowledged at {}.", clock(report, a)));
    }
    let evaluate = vec![
        format!(
            "Error budget burned during the incident: {:.2} % of a 30-day budget.",
            card.budget_burned * 100.0
        ),
        format!("User-facing route: {}.", report.scenario.route),
    ];
    let mut troubleshoot = actions(|e| matches!(e, Event::Diagnose(_) | Event::Hint { .. }));
    troubleshoot.push(format!(
        "Root cause: {} ({}); it spread {}.",
        report.scenario.truth.root,
        report.scenario.truth.category,
        report.scenario.truth.chain.join(" → ")
    ));
    let mut execute = actions(|e| matches!(e, Event::Op { .. }));
    match t.mitigated_ms {
        Some(m) => execute.push(format!("The SLIs recovered at {}.", clock(report, m))),
        None => execute.push("The SLIs did not recover before the end.".into()),
    }
    for wrong in &card.wrong_ops {
        execute.push(format!("Wrong op: {} — {}.", wrong.op, wrong.why));
    }
    let communicate = actions(|e| matches!(e, Event::Status { .. } | Event::Declare { .. }));
    let track = vec![
        "Follow-ups (from the debrief): see the debrief above; add one owner and a date to each."
            .into(),
        "What went well: …".into(),
        "What was hard: …".into(),
    ];
    vec![
        ("Detect", detect),
        ("Evaluate", evaluate),
        ("Troubleshoot", troubleshoot),
        ("Execute", execute),
        (
            "Communicate",
            if communicate.is_empty() {
                vec!["No status update was posted.".into()]
            } else {
                communicate
            },
        ),
        ("Track", track),
    ]
}

// === Markdown ===

fn markdown(report: &Report) -> String {
    let card = &report.scorecard;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Exercise {} — {}\n\nScenario `{}` ({}), learners: {}. Score: **{} / {}**.\n",
        report.exercise.id,
        report.scenario.title,
        report.scenario.id,
        report.scenario.difficulty,
        report.exercise.learners.join(", "),
        card.total,
        card.max
    );
    let _ = writeln!(
        md,
        "## Scorecard\n\n| part | points | of | why |\n|---|---:|---:|---|"
    );
    for part in card.parts.iter().chain(&card.penalties) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            part.name,
            part.points,
            part.max,
            part.detail.replace('|', "\\|")
        );
    }
    let _ = writeln!(md, "\n## Timeline\n\n| when | who | what |\n|---|---|---|");
    for step in &report.scenario.steps {
        let _ = writeln!(
            md,
            "| {} | scenario | {} ({}) |",
            clock(report, step.at_ms),
            step.what,
            step.role
        );
    }
    for entry in report
        .timeline
        .iter()
        .filter(|e| !matches!(e.event, Event::Sli(_)))
    {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            clock(report, entry.at_ms),
            entry.actor,
            describe(entry).replace('|', "\\|")
        );
    }
    let _ = writeln!(
        md,
        "\n## The page\n\n```\n{}\n```\n",
        report.scenario.page.trim()
    );
    let _ = writeln!(
        md,
        "## Debrief\n\n```\n{}\n```\n",
        report.scenario.debrief.trim()
    );
    let _ = writeln!(md, "## Postmortem draft\n");
    for (section, lines) in postmortem(report) {
        let _ = writeln!(md, "### {section}\n");
        for line in lines {
            let _ = writeln!(md, "- {line}");
        }
        md.push('\n');
    }
    md
}

// === HTML ===

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(report: &Report) -> String {
    let card = &report.scorecard;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>Exercise {id} — {title}</title>\n<style>{css}</style></head><body>\n<h1>Exercise {id}: {title}</h1>\n<p>Scenario <code>{scenario}</code> ({difficulty}); learners: {learners}.</p>\n<p class=\"total\">Score: <strong>{total} / {max}</strong></p>\n",
        id = esc(&report.exercise.id),
        title = esc(&report.scenario.title),
        css = CSS,
        scenario = esc(&report.scenario.id),
        difficulty = esc(&report.scenario.difficulty),
        learners = esc(&report.exercise.learners.join(", ")),
        total = card.total,
        max = card.max,
    );
    h.push_str("<h2>Scorecard</h2>\n<table class=\"scorecard\"><thead><tr><th>part</th><th>points</th><th>of</th><th>why</th></tr></thead><tbody>\n");
    for part in card.parts.iter().chain(&card.penalties) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&part.name),
            part.points,
            part.max,
            esc(&part.detail)
        );
    }
    h.push_str("</tbody></table>\n<h2>The page route's SLI</h2>\n");
    h.push_str(&svg(report));
    h.push_str("<h2>Timeline</h2>\n<table class=\"timeline\"><thead><tr><th>when</th><th>who</th><th>what</th></tr></thead><tbody>\n");
    for step in &report.scenario.steps {
        let _ = writeln!(
            h,
            "<tr class=\"fault\"><td>{}</td><td>scenario</td><td>▲ {} ({})</td></tr>",
            clock(report, step.at_ms),
            esc(&step.what),
            esc(&step.role)
        );
    }
    for entry in report
        .timeline
        .iter()
        .filter(|e| !matches!(e.event, Event::Sli(_)))
    {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            clock(report, entry.at_ms),
            esc(&entry.actor),
            esc(&describe(entry))
        );
    }
    h.push_str("</tbody></table>\n");
    let _ = write!(
        h,
        "<h2>The page</h2>\n<pre>{}</pre>\n<h2>Debrief</h2>\n<pre class=\"debrief\">{}</pre>\n<h2>Postmortem draft</h2>\n",
        esc(report.scenario.page.trim()),
        esc(report.scenario.debrief.trim())
    );
    for (section, lines) in postmortem(report) {
        let _ = write!(h, "<h3>{section}</h3>\n<ul>\n");
        for line in lines {
            let _ = writeln!(h, "<li>{}</li>", esc(&line));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#1d1d1f}\
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}\
td.num{text-align:right}pre{background:#f6f6f6;padding:1em;overflow-x:auto;white-space:pre-wrap}.total{font-size:1.3em}\
svg text{font:11px system-ui,sans-serif}tr.fault td{font-weight:600}";

/// One SLI sample on the plot: when, the error ratio, the p95.
type Point = (i64, f64, Option<f64>);

/// The page route's error ratio and p95 over the exercise, with a marker
/// for every event: a vertical line, a shape per kind and a label.
fn svg(report: &Report) -> String {
    const W: f64 = 960.0;
    const H: f64 = 360.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 60.0;
    const TOP: f64 = 20.0;
    const PLOT: f64 = 200.0;
    let start = report.exercise.created_ms;
    let end = report.scorecard.times.end_ms.max(start + 1);
    let x = |at: i64| LEFT + (W - LEFT - RIGHT) * (at - start) as f64 / (end - start) as f64;
    let samples: Vec<Point> = report
        .timeline
        .iter()
        .filter_map(|e| match &e.event {
            Event::Sli(s) => Some((e.at_ms, s.error_ratio, s.p95_ms)),
            _ => None,
        })
        .collect();
    let max_ratio = samples.iter().map(|s| s.1).fold(0.05_f64, f64::max);
    let max_p95 = samples.iter().filter_map(|s| s.2).fold(100.0_f64, f64::max);
    let y_ratio = |r: f64| TOP + PLOT - PLOT * r / max_ratio;
    let y_p95 = |ms: f64| TOP + PLOT - PLOT * ms / max_p95;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" aria-label=\"error ratio and p95 latency of {route} over the exercise, with markers\">\n<title>SLI of {route}</title>\n<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{PLOT}\" fill=\"none\" stroke=\"#999\"/>",
        route = esc(&report.scenario.route),
        pw = W - LEFT - RIGHT,
    );
    // Axes: error ratio on the left, p95 on the right.
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let y = TOP + PLOT - PLOT * f;
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{x2}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{tl}\" y=\"{ty:.1}\" text-anchor=\"end\">{r:.0} %</text><text x=\"{tr}\" y=\"{ty:.1}\">{ms:.0} ms</text>",
            x2 = W - RIGHT,
            tl = LEFT - 4.0,
            tr = W - RIGHT + 4.0,
            ty = y + 4.0,
            r = f * max_ratio * 100.0,
            ms = f * max_p95,
        );
    }
    let points = |values: &dyn Fn(&Point) -> Option<f64>, y: &dyn Fn(f64) -> f64| {
        samples
            .iter()
            .filter_map(|p| values(p).map(|v| format!("{:.1},{:.1}", x(p.0), y(v))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        s,
        "<polyline class=\"sli error-ratio\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" points=\"{}\"><title>5xx ratio</title></polyline>",
        points(&|p| Some(p.1), &y_ratio)
    );
    let _ = writeln!(
        s,
        "<polyline class=\"sli p95\" fill=\"none\" stroke=\"#2c6fbb\" stroke-width=\"2\" stroke-dasharray=\"6 3\" points=\"{}\"><title>p95 latency</title></polyline>",
        points(&|p| p.2, &y_p95)
    );
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"12\">— 5xx ratio (left)   - - p95 latency (right)</text>"
    );
    // Markers: a line, a shape by kind, a label, below the plot.
    for (i, m) in markers(report).iter().enumerate() {
        let mx = x(m.at_ms);
        let shape = match m.kind {
            "fault" => format!(
                "<polygon points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"/>",
                mx - 5.0,
                TOP + PLOT + 12.0,
                mx + 5.0,
                TOP + PLOT + 12.0,
                mx,
                TOP + PLOT + 3.0
            ),
            "page" | "alert" => format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"9\" height=\"9\"/>",
                mx - 4.5,
                TOP + PLOT + 3.0
            ),
            "op" => format!(
                "<polygon points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"/>",
                mx,
                TOP + PLOT + 2.0,
                mx + 5.0,
                TOP + PLOT + 7.0,
                mx,
                TOP + PLOT + 12.0,
                mx - 5.0,
                TOP + PLOT + 7.0
            ),
            "recovered" => format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">✓</text>",
                mx,
                TOP + PLOT + 12.0
            ),
            _ => format!(
                "<circle cx=\"{mx:.1}\" cy=\"{:.1}\" r=\"4\"/>",
                TOP + PLOT + 7.0
            ),
        };
        let label_y = TOP + PLOT + 24.0 + (i % 8) as f64 * 14.0;
        let _ = writeln!(
            s,
            "<g class=\"marker {kind}\"><line x1=\"{mx:.1}\" y1=\"{TOP}\" x2=\"{mx:.1}\" y2=\"{ly:.1}\" stroke=\"#777\" stroke-dasharray=\"2 2\"/>{shape}<text x=\"{tx:.1}\" y=\"{ty:.1}\">{label}</text><title>{when} {label}</title></g>",
            kind = m.kind,
            ly = label_y - 10.0,
            tx = mx + 3.0,
            ty = label_y,
            label = esc(&m.label),
            when = clock(report, m.at_ms),
        );
    }
    s.push_str("</svg>\n");
    s
}
