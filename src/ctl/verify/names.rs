//! The telemetry a scenario's texts name must exist: every metric, label
//! and attribute a page, hint or debrief mentions is one a learner can
//! find in the lab while the incident runs. A hint that sends a learner to
//! a `ttl_ms` attribute no span carries is a broken hint.
//!
//! Names are recognised by shape: `snake_case` words (metric and label
//! names, Prometheus spellings of attributes) and `dotted.words`
//! (attribute names). Each must appear somewhere in what the lab shows —
//! a metric or label name, a label value, a span or log attribute key or
//! value, a span name — or be one of the few words the texts use that are
//! not telemetry: PromQL's own functions and keywords, config keys (which
//! ops set), and the handful listed in [`NOT_TELEMETRY`].

use std::collections::{BTreeSet, HashSet};

/// PromQL functions and modifiers the debriefs' queries use.
const PROMQL: &[&str] = &[
    "histogram_quantile",
    "group_left",
    "group_right",
    "label_replace",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "quantile_over_time",
    "last_over_time",
    "clamp_min",
    "clamp_max",
];

/// Words in snake or dotted shape that name something other than
/// telemetry, each explained where a debrief uses it.
const NOT_TELEMETRY: &[&str] = &[
    // SQLite's lock wait, which explains why writers queue.
    "busy_timeout",
    // tokio's API for blocking work, which a runtime stall misuses.
    "spawn_blocking",
];

/// The sections of the live config: `timeouts.payment`, `flags.x` are
/// settings learners change with ops, not telemetry.
const CONFIG_SECTIONS: &[&str] = &[
    "timeouts",
    "retries",
    "breaker",
    "db",
    "rateLimits",
    "flags",
];

/// Files the texts may name (`queue.db`).
const FILE_SUFFIXES: &[&str] = &[".db", ".toml", ".json", ".log", ".yml", ".yaml"];

/// The telemetry-shaped names in `text`.
pub fn named(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c))) {
        let word = word.trim_matches(|c: char| c == '.' || c == '-');
        if snake(word) || dotted(word) {
            found.insert(word.to_string());
        }
    }
    found
}

/// `http_server_request_duration_seconds`, `cache_result`: lowercase words
/// joined by underscores.
fn snake(word: &str) -> bool {
    // `http_server_*` names a family of metrics by its prefix.
    word.contains('_')
        && !word.ends_with('_')
        && !word.contains('.')
        && !word.contains('-')
        && word.starts_with(|c: char| c.is_ascii_lowercase())
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `url.full`, `messaging.message.delivery_count`: two or more segments of
/// at least two characters, the first starting with a letter. Version
/// numbers (`2.4.0`), abbreviations (`e.g.`) and file names are not.
fn dotted(word: &str) -> bool {
    let segments: Vec<&str> = word.split('.').collect();
    segments.len() >= 2
        && segments.iter().all(|s| s.len() >= 2)
        && word.starts_with(|c: char| c.is_ascii_lowercase())
        && !FILE_SUFFIXES.iter().any(|suffix| word.ends_with(suffix))
}

/// The names among `named` the lab does not show (`seen`: every word its
/// telemetry holds).
pub fn unknown(named: &BTreeSet<String>, seen: &HashSet<String>) -> Vec<String> {
    named
        .iter()
        .filter(|name| !known(name, seen))
        .cloned()
        .collect()
}

fn known(name: &str, seen: &HashSet<String>) -> bool {
    if seen.contains(name) || PROMQL.contains(&name) || NOT_TELEMETRY.contains(&name) {
        return true;
    }
    if let Some((section, _)) = name.split_once('.')
        && CONFIG_SECTIONS.contains(&section)
    {
        return true;
    }
    // A histogram's or counter's series (`_bucket`, `_count`, `_sum`,
    // `_total`) of a family the lab has, and the other way round.
    ["_bucket", "_count", "_sum", "_total", "_created"]
        .iter()
        .any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| seen.contains(base))
                || seen.contains(&format!("{name}{suffix}"))
        })
}

/// Every word of `value` that could be a name: split on what names never
/// contain.
pub fn words(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
        .map(|w| w.trim_matches(|c: char| c == '.' || c == '-'))
        .filter(|w| !w.is_empty())
}

/// Words that would tell a learner something was injected: no attribute,
/// label, metric, span or log of the lab says them.
const TELLTALES: &[&str] = &["fault", "faults", "inject", "injected", "scenario", "chaos"];

/// What the lab's telemetry gives away of `scenario` (its id, a fault
/// kind, a word that says something was injected, a sentence of its hints
/// or debrief), given every word it holds (`seen`) and its longer strings
/// (`texts`). Empty when it gives nothing away.
pub fn leaks(
    scenario_id: &str,
    kinds: &[&str],
    secrets: &[&str],
    seen: &HashSet<String>,
    texts: &[String],
) -> Vec<String> {
    let mut found = Vec::new();
    if seen.contains(scenario_id) || texts.iter().any(|t| t.contains(scenario_id)) {
        found.push(format!("the scenario's id {scenario_id:?}"));
    }
    for kind in kinds.iter().filter(|k| k.contains('-')) {
        if seen.contains(*kind) {
            found.push(format!("the fault kind {kind:?}"));
        }
    }
    for word in seen {
        if TELLTALES.contains(&word.to_ascii_lowercase().as_str()) {
            found.push(format!("the word {word:?}"));
        }
    }
    for secret in secrets {
        for sentence in secret
            .split(['.', '\n', '?', '!', ':', ';'])
            .map(str::trim)
            .filter(|s| s.len() >= 40)
        {
            if texts.iter().any(|t| t.contains(sentence)) {
                found.push(format!(
                    "the sentence {sentence:?} of a hint or the debrief"
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_by_shape() {
        let text = "Compare cache_requests_total by cache_result (url.full, e.g. \
                    payment-2 at 2.4.0), in queue.db; histogram_quantile(0.9, ...). \
                    Set timeouts.payment=500ms. Look at ttl_ms.";
        let found: Vec<String> = named(text).into_iter().collect();
        assert_eq!(
            found,
            [
                "cache_requests_total",
                "cache_result",
                "histogram_quantile",
                "timeouts.payment",
                "ttl_ms",
                "url.full"
            ]
        );
        let seen: HashSet<String> = ["cache_requests", "cache_result", "url.full"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(unknown(&named(text), &seen), ["ttl_ms"]);
    }

    #[test]
    fn what_gives_the_answer_away_is_found() {
        let seen: HashSet<String> = ["http_route", "dns-failure", "Injected", "shipping"]
            .into_iter()
            .map(String::from)
            .collect();
        let texts = vec![
            "connection refused while calling stale-dns-shipping".to_string(),
            "the processor sheds a share of charges and payment retries them quietly".to_string(),
        ];
        let found = leaks(
            "stale-dns-shipping",
            &["dns-failure", "latency"],
            &[
                "The processor sheds a share. the processor sheds a share of charges and payment retries them quietly.",
            ],
            &seen,
            &texts,
        );
        assert_eq!(found.len(), 4, "{found:#?}");
        let clean = leaks(
            "slow-catalog",
            &["latency"],
            &[],
            &["http_route".to_string()].into_iter().collect(),
            &[],
        );
        assert!(clean.is_empty(), "{clean:?}");
    }
}
