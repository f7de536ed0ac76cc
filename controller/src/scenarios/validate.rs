//! Checking a scenario file completely: every problem is reported as
//! `file:line:column: message`, as many as the file has, not only the
//! first. A file is checked against the same rules the API holds ops and
//! faults to (`model`, `policy`), so a scenario cannot list an answer the
//! lab would refuse.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use firedrill_runtime::faults::model::{DEPENDENCIES, Target};

use crate::model::scenario::{Category, Check, OBSERVABLE_COMPONENTS, Role, Scenario, Symptom};
use crate::policy;

/// A problem in a scenario file, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Problem {
    /// A problem with a whole file (it cannot be read), at its start.
    pub fn whole_file(file: &Path, message: String) -> Problem {
        Problem {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message,
        }
    }
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
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Problem::whole_file(path, format!("cannot read: {e}"))])?;
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
    let read = deserialize(text);
    let mut problems: Vec<Problem> = read
        .problems
        .into_iter()
        .map(|(offset, message)| at(offset, message))
        .collect();
    let Some(scenario) = read.scenario else {
        return Err(problems);
    };
    // With entries left out, checks across entries (is there a root step?)
    // would report what follows from the problems already found.
    let whole = !read.left_out;
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
            _ if !whole => Ok(()),
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
        check(
            scenario.mitigation.span().start,
            op.parse().and_then(|op| policy::check(&op)),
        );
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
    if whole && scenario.symptoms.get_ref().is_empty() {
        check(
            scenario.symptoms.span().start,
            Err("symptoms lists at least one".into()),
        );
    }
    for symptom in scenario.symptoms.get_ref().iter().chain(&scenario.healthy) {
        if let Err(message) = check_symptom(symptom.get_ref()) {
            let offset = pinpoint(text, symptom.span(), &message);
            check(offset, Err(message));
        }
    }
    for symptom in &recovery.checks {
        check(scenario.mitigation.span().start, check_symptom(symptom));
    }
    if problems.is_empty() {
        Ok(scenario)
    } else {
        Err(problems)
    }
}

/// What deserializing a file gave: the scenario if one could be read, and
/// every problem found on the way.
struct Read {
    scenario: Option<Scenario>,
    /// (byte offset, message)
    problems: Vec<(usize, String)>,
    /// Whether entries with problems were left out to read the rest.
    left_out: bool,
}

/// How many problems one file may report before reading stops.
const MAX_PROBLEMS: usize = 32;

/// Deserializes `text`, reporting every entry with a problem rather than
/// only the first: an entry of an array of tables (`[[steps]]`,
/// `[[symptoms]]`, `[[healthy]]`) that fails is blanked out (its bytes
/// become spaces, so positions stay true) and the rest read again. A
/// problem outside such an entry ends the reading.
fn deserialize(text: &str) -> Read {
    let mut current = text.to_string();
    let mut problems = Vec::new();
    let mut left_out = false;
    while problems.len() < MAX_PROBLEMS {
        match toml::from_str::<Scenario>(&current) {
            Ok(scenario) => {
                return Read {
                    scenario: Some(scenario),
                    problems,
                    left_out,
                };
            }
            Err(e) => {
                let message = e.message().trim().to_string();
                let offset = e
                    .span()
                    .map_or(0, |span| pinpoint(&current, span, &message));
                problems.push((offset, message));
                let Some(entry) = array_entry_around(&current, offset) else {
                    break;
                };
                blank(&mut current, entry);
                left_out = true;
            }
        }
    }
    Read {
        scenario: None,
        problems,
        left_out,
    }
}

/// The byte range of the `[[steps]]`, `[[symptoms]]` or `[[healthy]]` entry
/// that holds `offset`: from its header to the next table header.
fn array_entry_around(text: &str, offset: usize) -> Option<std::ops::Range<usize>> {
    let offset = offset.min(text.len());
    let header_starts = line_starts(text).filter(|&at| text[at..].trim_start().starts_with('['));
    let mut start = None;
    let mut end = text.len();
    for at in header_starts {
        if at <= offset {
            start = Some(at);
        } else {
            end = at;
            break;
        }
    }
    let start = start?;
    let header = text[start..].trim_start();
    ["[[steps]]", "[[symptoms]]", "[[healthy]]"]
        .iter()
        .any(|h| header.starts_with(h))
        .then_some(start..end)
}

fn line_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1))
}

/// Replaces every byte of `range` but newlines with a space (a multi-byte
/// character becomes one space per byte), so offsets stay true.
fn blank(text: &mut String, range: std::ops::Range<usize>) {
    let mut bytes = std::mem::take(text).into_bytes();
    for b in &mut bytes[range] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
    *text = String::from_utf8(bytes).unwrap_or_default();
}

/// Range checks on a check's parameters; the message names the parameter.
fn check_check(check: &Check) -> Result<(), String> {
    let route = |route: &str| {
        if route.starts_with('/') {
            Ok(())
        } else {
            Err(format!("`route` {route:?} must start with '/'"))
        }
    };
    match check {
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
        Check::ErrorRatioAbove { route: r, ratio } | Check::ErrorRatioBelow { route: r, ratio } => {
            route(r)?;
            if (0.0..=1.0).contains(ratio) {
                Ok(())
            } else {
                Err(format!("`ratio` must be within 0..1, got {ratio}"))
            }
        }
        Check::LogContains { text } if text.is_empty() => Err("`text` must not be empty".into()),
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

/// Whose telemetry a symptom reads (a service, an instance, `collector` or
/// `loadgen`) and whether its check's parameters make sense.
pub fn check_symptom(symptom: &Symptom) -> Result<(), String> {
    if !OBSERVABLE_COMPONENTS.contains(&symptom.service.as_str()) {
        Target::parse(&symptom.service).map_err(|e| format!("symptom `service`: {e}"))?;
    }
    check_check(&symptom.check)
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
