//! `firedrill scenario verify`: plays one scenario against the running lab
//! and checks that it keeps the promises its file makes.
//!
//! An instructor who writes a scenario, and the test suite that guards the
//! catalogue, need the same answer: does this incident really show, can a
//! learner tell the root from the red herrings, and do the ops the file
//! accepts (and only those) end it? The verifier answers from what a learner
//! can see — every process's `/metrics` and the collector's trace and log
//! APIs — never from the controller's knowledge of what it injected.
//!
//! The run, in order:
//! 1. **Baseline**: the recovery condition holds before anything is broken
//!    (otherwise the condition, or the lab, is wrong).
//! 2. **Incident**: the scenario starts (its timeline compressed by
//!    `--speed`); every symptom must be seen within the deadline, and every
//!    `healthy` signal must stay normal in most windows meanwhile.
//! 3. **Wrong ops**: each op the file calls wrong is performed; the recovery
//!    condition must still fail afterwards (judged over two windows).
//! 4. **Mitigation**: the first accepted op is performed; the recovery
//!    condition must hold within the deadline.
//!
//! Signals are read over windows: two scrapes `--window` apart, counters and
//! histograms taken as their increase in between (a restarted process's
//! counters count from zero, as Prometheus's `rate` treats a reset).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use firedrill_controller::model::op::{ListedOp as Op, Settings, Verb};
use firedrill_controller::model::scenario::{Category, Check, Recovery, Scenario, Signal, Symptom};
use firedrill_controller::scenarios::Catalogue;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, Connection};

mod names;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The scenario to play.
    pub id: String,
    /// Where the scenario files are, if the lab was started with
    /// `--scenarios`; the catalogue built into firedrill otherwise.
    #[arg(long, env = "FIREDRILL_SCENARIOS")]
    pub scenarios: Option<PathBuf>,
    /// Play the timeline this many times faster than written.
    #[arg(long, default_value_t = 10.0)]
    pub speed: f64,
    /// Length of one observation window.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub window: Duration,
    /// How long symptoms, and then recovery, may take to appear.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "45s")]
    pub deadline: Duration,
}

#[derive(Deserialize, Clone, Debug)]
struct Component {
    id: String,
    name: String,
    health: String,
    metrics: String,
}

/// What the verifier can see of the lab.
struct Lab {
    api: Api,
    http: reqwest::Client,
    query: String,
    components: Vec<Component>,
    /// Where `firedrill up` keeps its pid files (to tell a restarted
    /// process from the one it replaces).
    run_dir: Option<PathBuf>,
    /// Where to read the components again after a scale.
    conn: Connection,
}

/// One `/metrics` sample.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_labels(&self, wanted: &std::collections::BTreeMap<String, String>) -> bool {
        wanted.iter().all(|(k, v)| self.label(k) == Some(v))
    }
}

/// Every component's samples at one instant; a component that did not
/// answer is absent (not empty).
struct Scrape {
    at: Instant,
    by_component: HashMap<String, Vec<Sample>>,
}

/// Two scrapes: what changed between them is what the window saw.
struct Window {
    from: Scrape,
    to: Scrape,
    /// Wall-clock start, for the collector's time filters (µs).
    start_us: i64,
}

/// Whether a check held in one window, and what was seen.
struct Outcome {
    holds: bool,
    seen: String,
}

const SERVER_HISTOGRAM: &str = "http_server_request_duration_seconds";

/// How many `--window`s of traffic the recovery condition is judged on after
/// a wrong op.
const WRONG_OP_WINDOWS: u32 = 2;

/// How long a restarted process needs to pick its faults up again: two of
/// its agent's polls (`--fault-poll`, 500 ms by default).
const FAULT_REAPPLY: Duration = Duration::from_millis(1000);

/// The longest the verifier waits, after a restart, for its callers'
/// breakers towards the restarted service to close again.
const BREAKER_SETTLE: Duration = Duration::from_secs(8);

/// How long a scale may take to show in the lab: new instances started
/// and healthy, removed ones gone.
const SCALE_SETTLE: Duration = Duration::from_secs(30);

/// The processes `endpoints.json` lists.
fn components_of(endpoints: &Value) -> anyhow::Result<Vec<Component>> {
    serde_json::from_value(endpoints["components"].clone())
        .context("endpoints.json lists no components")
}

/// `circuit_breaker_state` of a breaker that refuses calls.
const BREAKER_OPEN: f64 = 2.0;

pub async fn run(conn: &Connection, args: VerifyArgs) -> anyhow::Result<()> {
    if !(1.0..=1000.0).contains(&args.speed) {
        bail!("--speed must be within 1..=1000, got {}", args.speed);
    }
    let scenario = match &args.scenarios {
        Some(dir) => {
            let path = dir.join(format!("{}.toml", args.id));
            firedrill_controller::scenarios::load(&path).map_err(|problems| {
                let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                anyhow::anyhow!("cannot use {}:\n{}", path.display(), lines.join("\n"))
            })?
        }
        None => Catalogue::shipped()
            .scenarios
            .into_iter()
            .find(|s| s.id() == args.id)
            .with_context(|| {
                format!(
                    "no scenario {:?} in the built-in catalogue (`firedrill scenario list`)",
                    args.id
                )
            })?,
    };
    let mut lab = Lab::connect(conn)?;
    println!("verifying {}: {}", scenario.id(), scenario.title);
    let running = lab
        .api
        .call(reqwest::Method::GET, "/v1/scenario", None)
        .await?;
    if let Some(id) = running["scenario"]["id"].as_str() {
        bail!("scenario {id:?} is running; stop it first (firedrill scenario stop)");
    }
    let outcome = play(&mut lab, &scenario, &args).await;
    // Whatever happened, leave the lab clean for the next run.
    let _ = lab
        .api
        .call(reqwest::Method::DELETE, "/v1/scenario", None)
        .await;
    let failures = outcome?;
    if failures.is_empty() {
        println!("PASS {}", scenario.id());
        Ok(())
    } else {
        for f in &failures {
            println!("  FAIL: {f}");
        }
        bail!(
            "scenario {} failed verification: {} problem(s)",
            scenario.id(),
            failures.len()
        )
    }
}

/// Runs the four phases; the answer lists every broken promise.
async fn play(
    lab: &mut Lab,
    scenario: &Scenario,
    args: &VerifyArgs,
) -> anyhow::Result<Vec<String>> {
    let mut failures = Vec::new();
    let mitigation = scenario.mitigation.get_ref();
    let recovery = &mitigation.recovery;
    let is_control = scenario.truth.get_ref().category == Category::None;

    // 1. Baseline. A freshly started lab needs a window or two of traffic.
    let mut baseline = None;
    for _ in 0..4 {
        let window = lab.window(args.window).await;
        let (holds, seen) = lab.recovered(recovery, &window).await;
        baseline = Some((holds, seen));
        if holds {
            break;
        }
    }
    if let Some((false, seen)) = baseline {
        bail!("the lab does not meet the recovery condition before the incident: {seen}");
    }
    println!("  baseline ok");

    // 2. Incident.
    let started = Instant::now();
    let started_us = now_us();
    lab.api
        .call(
            reqwest::Method::POST,
            &format!("/v1/scenarios/{}/start", scenario.id()),
            Some(json!({ "speed": args.speed })),
        )
        .await?;
    let onset = scenario
        .steps
        .iter()
        .map(|s| Duration::from_secs_f64(s.get_ref().at.0 as f64 / 1000.0 / args.speed))
        .max()
        .unwrap_or_default();
    let symptoms: Vec<&Symptom> = scenario
        .symptoms
        .get_ref()
        .iter()
        .map(|s| s.get_ref())
        .collect();
    let healthy: Vec<&Symptom> = scenario.healthy.iter().map(|s| s.get_ref()).collect();
    let mut seen: Vec<Option<String>> = vec![None; symptoms.len()];
    let mut last: Vec<String> = vec![String::new(); symptoms.len()];
    let mut healthy_held = vec![0usize; healthy.len()];
    let mut healthy_last = vec![String::new(); healthy.len()];
    let mut incident_windows = 0usize;
    let deadline = started + onset + args.deadline;
    loop {
        let window = lab.window(args.window).await;
        let mut any = false;
        for (i, symptom) in symptoms.iter().enumerate() {
            let outcome = lab.evaluate(symptom, &window, started_us).await;
            if outcome.holds {
                any = true;
                if seen[i].is_none() {
                    println!(
                        "  symptom after {:.1}s: {} — {}",
                        started.elapsed().as_secs_f64(),
                        describe(symptom),
                        outcome.seen
                    );
                    seen[i] = Some(outcome.seen.clone());
                }
            }
            last[i] = outcome.seen;
        }
        if any || seen.iter().any(Option::is_some) {
            incident_windows += 1;
            for (i, check) in healthy.iter().enumerate() {
                let outcome = lab.evaluate(check, &window, started_us).await;
                healthy_held[i] += usize::from(outcome.holds);
                healthy_last[i] = outcome.seen;
            }
        }
        let all_seen = seen.iter().all(Option::is_some);
        if (all_seen && started.elapsed() >= onset) || Instant::now() >= deadline {
            break;
        }
    }
    for (i, symptom) in symptoms.iter().enumerate() {
        if seen[i].is_none() {
            failures.push(format!(
                "symptom never appeared: {} (last seen: {})",
                describe(symptom),
                last[i]
            ));
        }
    }
    for (i, check) in healthy.iter().enumerate() {
        // Most windows, not all: a bystander has noisy moments too.
        if incident_windows > 0 && healthy_held[i] * 2 < incident_windows {
            failures.push(format!(
                "a signal that should stay normal did not ({} of {} windows): {} (last seen: {})",
                healthy_held[i],
                incident_windows,
                describe(check),
                healthy_last[i]
            ));
        } else if incident_windows > 0 {
            println!(
                "  stays normal in {}/{} windows: {}",
                healthy_held[i],
                incident_windows,
                describe(check)
            );
        }
    }
    if !failures.is_empty() {
        return Ok(failures);
    }

    // Every metric, label and attribute the texts name is one the lab shows.
    let seen = lab.vocabulary(started_us).await;
    for (what, text) in scenario_texts(scenario) {
        let missing = names::unknown(&names::named(&text), &seen);
        if !missing.is_empty() {
            failures.push(format!(
                "the {what} names {}, which no metric, label, span or log of the lab carries",
                missing.join(", ")
            ));
        }
    }
    if !failures.is_empty() {
        return Ok(failures);
    }
    println!("  every name the page, hints and debrief use is in the telemetry");

    // 3. Wrong ops change nothing that matters.
    if !is_control {
        for op in &mitigation.wrong {
            let (result, _) = lab.act(op).await?;
            // Two windows' worth of traffic: a partial failure on a low-rate
            // route (a quarter of ~2 checkouts/s) can miss one short window
            // by chance, and would then pass for a recovery.
            let window = lab.window(args.window * WRONG_OP_WINDOWS).await;
            let (holds, seen) = lab.recovered(recovery, &window).await;
            if holds {
                failures.push(format!(
                    "the wrong op `{} {}` restored the SLIs ({seen}); it should not",
                    op.op, op.target
                ));
            } else {
                println!(
                    "  wrong op `{} {}` ({result}): still broken — {seen}",
                    op.op, op.target
                );
            }
        }
    }

    // 4. An accepted op ends it.
    let Some(op) = mitigation.accepted.first() else {
        bail!("the scenario accepts no op");
    };
    let (result, mitigated) = lab.act(op).await?;
    let deadline = mitigated + args.deadline;
    loop {
        let window = lab.window(args.window).await;
        let (holds, seen) = lab.recovered(recovery, &window).await;
        if holds {
            println!(
                "  accepted op `{} {}` ({result}): recovered after {:.1}s — {seen}",
                op.op,
                op.target,
                mitigated.elapsed().as_secs_f64()
            );
            break;
        }
        if Instant::now() >= deadline {
            failures.push(format!(
                "the accepted op `{} {}` did not restore the SLIs within {:?}: {seen}",
                op.op, op.target, args.deadline
            ));
            break;
        }
    }
    Ok(failures)
}

/// The texts a learner reads, by what they are.
fn scenario_texts(scenario: &Scenario) -> Vec<(String, String)> {
    let mut texts = vec![
        ("page".to_string(), scenario.page.clone()),
        ("debrief".to_string(), scenario.debrief.clone()),
    ];
    for (n, hint) in scenario.hints.get_ref().iter().enumerate() {
        texts.push((format!("hint {}", n + 1), hint.clone()));
    }
    texts
}

fn describe(s: &Symptom) -> String {
    let signal = match s.signal {
        Signal::Metric => "metric",
        Signal::Trace => "trace",
        Signal::Log => "log",
    };
    let check = serde_json::to_value(&s.check)
        .map(|v| v.to_string())
        .unwrap_or_default();
    format!("{signal} of {} {check}", s.service)
}

fn now_us() -> i64 {
    firedrill_runtime::clock::now_unix_ms() * 1000
}

impl Lab {
    fn connect(conn: &Connection) -> anyhow::Result<Lab> {
        let endpoints = conn.endpoints().context(
            "cannot find the lab's endpoints.json: pass --run-dir (the directory `firedrill up` prints)",
        )?;
        let components = components_of(&endpoints)?;
        let query = endpoints["query"]
            .as_str()
            .context("endpoints.json names no collector query endpoint")?
            .trim_end_matches('/')
            .to_string();
        Ok(Lab {
            api: Api::new(conn, true)?,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()?,
            query,
            components,
            run_dir: conn.run_dir.clone().or_else(super::newest_run),
            conn: conn.clone(),
        })
    }

    /// Scrapes every component at once; one that does not answer (it is
    /// restarting, or crashed) contributes nothing.
    async fn scrape(&self) -> Scrape {
        let at = Instant::now();
        let fetches = self.components.iter().map(|c| async move {
            let text = async {
                self.http
                    .get(&c.metrics)
                    .send()
                    .await
                    .ok()?
                    .error_for_status()
                    .ok()?
                    .text()
                    .await
                    .ok()
            }
            .await;
            text.map(|t| (c.id.clone(), parse_exposition(&t)))
        });
        Scrape {
            at,
            by_component: futures::future::join_all(fetches)
                .await
                .into_iter()
                .flatten()
                .collect(),
        }
    }

    /// Every word the lab's telemetry holds now: metric and label names
    /// and label values from every `/metrics`, the series the project's
    /// rules record, and every key and word of a value in recent traces
    /// and logs of every service (since `since_us`).
    async fn vocabulary(&self, since_us: i64) -> std::collections::HashSet<String> {
        let mut seen = std::collections::HashSet::new();
        for sample in self.scrape().await.by_component.values().flatten() {
            seen.insert(sample.name.clone());
            for (label, value) in &sample.labels {
                seen.insert(label.clone());
                seen.extend(names::words(value).map(String::from));
            }
        }
        for (_, rules) in crate::up::prometheus::RULES {
            for line in rules.lines() {
                let line = line.trim().trim_start_matches("- ");
                if let Some(name) = line
                    .strip_prefix("record:")
                    .or_else(|| line.strip_prefix("alert:"))
                {
                    seen.insert(name.trim().to_string());
                }
            }
        }
        let services: std::collections::BTreeSet<&str> =
            self.components.iter().map(|c| c.name.as_str()).collect();
        let since = since_us.to_string();
        for service in services {
            for (api, limit) in [("/api/traces", "20"), ("/api/logs", "200")] {
                let query = [("service", service), ("start", &since), ("limit", limit)];
                if let Ok(answer) = self.collector(api, &query).await {
                    collect_words(&answer, &mut seen);
                }
            }
        }
        seen
    }

    async fn window(&self, length: Duration) -> Window {
        let start_us = now_us();
        let from = self.scrape().await;
        tokio::time::sleep_until((from.at + length).into()).await;
        let to = self.scrape().await;
        Window { from, to, start_us }
    }

    /// The components a symptom reads: a service's instances, or one.
    fn selected<'a>(&'a self, who: &'a str) -> impl Iterator<Item = &'a Component> + 'a {
        self.components
            .iter()
            .filter(move |c| c.id == who || c.name == who)
    }

    /// The increase of every series `keep` selects, summed per key `key`.
    fn increase(
        &self,
        window: &Window,
        who: &str,
        name: &str,
        keep: impl Fn(&Sample) -> bool,
        key: impl Fn(&Sample) -> String,
    ) -> HashMap<String, f64> {
        let mut sums = HashMap::new();
        for component in self.selected(who) {
            // Unknown at either end (restarting, or too busy to answer its
            // scrape): what it did in the window cannot be told, and
            // counting its whole life as the window's would inflate rates.
            let (Some(before), Some(after)) = (
                window.from.by_component.get(&component.id),
                window.to.by_component.get(&component.id),
            ) else {
                continue;
            };
            for sample in after.iter().filter(|s| s.name == name && keep(s)) {
                let earlier = before
                    .iter()
                    .find(|s| s.name == sample.name && s.labels == sample.labels)
                    .map(|s| s.value);
                let delta = match earlier {
                    Some(v) if v <= sample.value => sample.value - v,
                    // A reset (the process restarted) or a new series.
                    _ => sample.value,
                };
                *sums.entry(key(sample)).or_insert(0.0) += delta;
            }
        }
        sums
    }

    fn current(
        &self,
        window: &Window,
        who: &str,
        name: &str,
        keep: impl Fn(&Sample) -> bool,
    ) -> (f64, usize) {
        let mut sum = 0.0;
        let mut n = 0;
        for component in self.selected(who) {
            for sample in window
                .to
                .by_component
                .get(&component.id)
                .into_iter()
                .flatten()
                .filter(|s| s.name == name && keep(s))
            {
                sum += sample.value;
                n += 1;
            }
        }
        (sum, n)
    }

    /// `quantile` of server latency on `route` in ms, and the request count.
    fn latency(
        &self,
        window: &Window,
        who: &str,
        route: &str,
        quantile: f64,
    ) -> Option<(f64, f64)> {
        let buckets = self.increase(
            window,
            who,
            &format!("{SERVER_HISTOGRAM}_bucket"),
            |s| s.label("http_route") == Some(route),
            |s| s.label("le").unwrap_or("").to_string(),
        );
        let mut buckets: Vec<(f64, f64)> = buckets
            .into_iter()
            .filter_map(|(le, n)| Some((le.parse::<f64>().ok()?, n)))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
        if total <= 0.0 {
            return None;
        }
        Some((histogram_quantile(&buckets, quantile) * 1000.0, total))
    }

    /// 5xx share of answers on `route`, and the answer count.
    fn error_ratio(&self, window: &Window, who: &str, route: &str) -> Option<(f64, f64)> {
        let counts = self.increase(
            window,
            who,
            &format!("{SERVER_HISTOGRAM}_count"),
            |s| s.label("http_route") == Some(route),
            |s| {
                let code: u16 = s
                    .label("http_response_status_code")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                if code >= 500 { "error" } else { "ok" }.to_string()
            },
        );
        let errors = counts.get("error").copied().unwrap_or(0.0);
        let total = errors + counts.get("ok").copied().unwrap_or(0.0);
        (total > 0.0).then(|| (errors / total, total))
    }

    async fn evaluate(&self, symptom: &Symptom, window: &Window, since_us: i64) -> Outcome {
        let who = symptom.service.as_str();
        let no_traffic = |route: &str| Outcome {
            holds: false,
            seen: format!("no requests on {route} at {who}"),
        };
        match &symptom.check {
            Check::LatencyAbove {
                route,
                ms,
                quantile,
            }
            | Check::LatencyBelow {
                route,
                ms,
                quantile,
            } => {
                let q = quantile.unwrap_or(0.5);
                let Some((latency, n)) = self.latency(window, who, route, q) else {
                    return no_traffic(route);
                };
                let above = matches!(symptom.check, Check::LatencyAbove { .. });
                Outcome {
                    holds: if above {
                        latency > *ms as f64
                    } else {
                        latency <= *ms as f64
                    },
                    seen: format!("p{} {route} = {latency:.0} ms over {n} requests", q * 100.0),
                }
            }
            Check::ErrorRatioAbove { route, ratio } | Check::ErrorRatioBelow { route, ratio } => {
                let Some((share, n)) = self.error_ratio(window, who, route) else {
                    return no_traffic(route);
                };
                let above = matches!(symptom.check, Check::ErrorRatioAbove { .. });
                Outcome {
                    holds: if above {
                        share > *ratio
                    } else {
                        share <= *ratio
                    },
                    seen: format!("5xx ratio {route} = {share:.3} over {n} answers"),
                }
            }
            Check::MetricAbove {
                metric,
                labels,
                value,
            }
            | Check::MetricBelow {
                metric,
                labels,
                value,
            } => {
                let (sum, n) = self.current(window, who, metric, |s| s.has_labels(labels));
                // No matching series is a sum of 0 when every process
                // answered and reports the metric with other labels (no
                // instance runs version X); otherwise it is unknown.
                let family_seen =
                    || {
                        let mut selected = self.selected(who).peekable();
                        selected.peek().is_some()
                            && selected.all(|c| {
                                window.to.by_component.get(&c.id).is_some_and(|samples| {
                                    samples.iter().any(|s| s.name == *metric)
                                })
                            })
                    };
                if n == 0 && !family_seen() {
                    return Outcome {
                        holds: false,
                        seen: format!("no {metric} series at {who}"),
                    };
                }
                let above = matches!(symptom.check, Check::MetricAbove { .. });
                Outcome {
                    holds: if above { sum > *value } else { sum <= *value },
                    seen: format!("{metric} = {sum}"),
                }
            }
            Check::RateAbove {
                metric,
                labels,
                value,
            }
            | Check::RateBelow {
                metric,
                labels,
                value,
            } => {
                let increase: f64 = self
                    .increase(
                        window,
                        who,
                        metric,
                        |s| s.has_labels(labels),
                        |_| String::new(),
                    )
                    .values()
                    .sum();
                let seconds = window.to.at.duration_since(window.from.at).as_secs_f64();
                let rate = increase / seconds.max(0.001) + 0.0; // no "-0.00"
                let above = matches!(symptom.check, Check::RateAbove { .. });
                Outcome {
                    holds: if above { rate > *value } else { rate <= *value },
                    seen: format!("rate({metric}) = {rate:.2}/s"),
                }
            }
            Check::LogContains { text } => self.log_contains(who, text, since_us).await,
            Check::SpanError { operation } => self.span_error(who, operation, since_us).await,
            Check::SpanDurationAbove { operation, ms } => {
                self.span_duration_above(who, operation, *ms, since_us)
                    .await
            }
        }
    }

    async fn log_contains(&self, who: &str, text: &str, since_us: i64) -> Outcome {
        let service = self.service_of(who);
        let answer = match self
            .collector(
                "/api/logs",
                &[
                    ("service", service.as_str()),
                    ("q", text),
                    ("start", &since_us.to_string()),
                    ("limit", "200"),
                ],
            )
            .await
        {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        let matching = answer["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| who == service || l["instance"].as_str() == Some(who))
            .count();
        Outcome {
            holds: matching > 0,
            seen: format!("{matching} log record(s) containing {text:?}"),
        }
    }

    async fn span_error(&self, who: &str, operation: &str, since_us: i64) -> Outcome {
        let service = self.service_of(who);
        let answer = match self
            .collector(
                "/api/traces",
                &[
                    ("service", service.as_str()),
                    ("tags", r#"{"error":"true"}"#),
                    ("start", &since_us.to_string()),
                    ("limit", "50"),
                ],
            )
            .await
        {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        let mut matching = 0;
        for trace in answer["data"].as_array().into_iter().flatten() {
            let processes = &trace["processes"];
            for span in trace["spans"].as_array().into_iter().flatten() {
                let pid = span["processID"].as_str().unwrap_or("");
                let failed = span["tags"].as_array().into_iter().flatten().any(|t| {
                    t["key"] == "error" && (t["value"] == json!(true) || t["value"] == "true")
                });
                if failed
                    && processes[pid]["serviceName"].as_str() == Some(service.as_str())
                    && span["operationName"]
                        .as_str()
                        .is_some_and(|name| name.contains(operation))
                {
                    matching += 1;
                }
            }
        }
        Outcome {
            holds: matching > 0,
            seen: format!("{matching} error span(s) named like {operation:?}"),
        }
    }

    /// Spans of `who` named `operation` that lasted longer than `ms`: the
    /// trace search (`operation`, `minDuration`) a learner would run.
    async fn span_duration_above(
        &self,
        who: &str,
        operation: &str,
        ms: u64,
        since_us: i64,
    ) -> Outcome {
        let service = self.service_of(who);
        let answer = match self
            .collector(
                "/api/traces",
                &[
                    ("service", service.as_str()),
                    ("operation", operation),
                    ("minDuration", &format!("{ms}ms")),
                    ("start", &since_us.to_string()),
                    ("limit", "50"),
                ],
            )
            .await
        {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        let matching = slow_spans(&answer, &service, operation, ms);
        Outcome {
            holds: matching > 0,
            seen: format!("{matching} span(s) {operation:?} longer than {ms} ms"),
        }
    }

    /// The service name of a component or instance id.
    fn service_of(&self, who: &str) -> String {
        self.components
            .iter()
            .find(|c| c.id == who || c.name == who)
            .map_or_else(|| who.to_string(), |c| c.name.clone())
    }

    /// Asks the collector's query API; a failed query is an outcome that
    /// does not hold, and says why.
    async fn collector(&self, api: &str, query: &[(&str, &str)]) -> Result<Value, Outcome> {
        self.get_json(&format!("{}{api}", self.query), query)
            .await
            .map_err(|e| Outcome {
                holds: false,
                seen: format!("{api} query failed: {e}"),
            })
    }

    async fn get_json(&self, url: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let response = self.http.get(url).query(query).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("{url} answered {status}: {body}");
        }
        Ok(body)
    }

    /// The recovery condition in one window: the gateway SLI and any checks.
    async fn recovered(&self, recovery: &Recovery, window: &Window) -> (bool, String) {
        let route = &recovery.route;
        let mut parts = Vec::new();
        let mut holds = true;
        match self.error_ratio(window, "gateway", route) {
            Some((share, n)) => {
                holds &= share <= recovery.max_error_ratio;
                parts.push(format!("5xx ratio {share:.3} over {n}"));
            }
            None => {
                holds = false;
                parts.push(format!("no requests on {route}"));
            }
        }
        if let Some((latency, _)) = self.latency(window, "gateway", route, 0.5) {
            holds &= latency <= recovery.max_latency_ms as f64;
            parts.push(format!("median {latency:.0} ms"));
        }
        for check in &recovery.checks {
            let outcome = self.evaluate(check, window, window.start_us).await;
            holds &= outcome.holds;
            parts.push(outcome.seen);
        }
        (holds, format!("{route}: {}", parts.join(", ")))
    }

    /// Performs `op` and waits for the lab to settle (see [`Lab::settle`]);
    /// returns the op's result and when it was performed.
    async fn act(&mut self, op: &Op) -> anyhow::Result<(String, Instant)> {
        let touched = self.touched(op);
        let before: Vec<Option<String>> = touched.iter().map(|c| self.pid(c)).collect();
        let record = self
            .api
            .call(
                reqwest::Method::POST,
                "/v1/ops",
                Some(
                    json!({ "op": op.op, "target": op.target, "actor": "verifier", "set": op.set }),
                ),
            )
            .await
            .with_context(|| format!("performing `{} {}`", op.op, op.target))?;
        let performed = Instant::now();
        if op.op == Verb::Scale {
            self.settle_scale(op).await;
        } else {
            self.settle(op, &touched, &before).await;
        }
        let result = record["result"].as_str().unwrap_or("done").to_string();
        Ok((result, performed))
    }

    /// The processes an op acts on: its target's service or instance.
    fn touched(&self, op: &Op) -> Vec<&Component> {
        let Some(target) = op.target.split("->").next().filter(|t| !t.is_empty()) else {
            return Vec::new();
        };
        self.components
            .iter()
            .filter(|c| c.id == target || c.name == target)
            .collect()
    }

    /// The pid `component` runs as now, from the run directory's pid file
    /// (`None` when the lab keeps none).
    fn pid(&self, component: &Component) -> Option<String> {
        let run_dir = firedrill_rundir::RunDir::new(self.run_dir.as_ref()?);
        run_dir.pid(&component.id).map(|pid| pid.to_string())
    }

    /// After an op, waits (at most 10 s) until every process in `touched`
    /// answers its health check again. After a restart, the answering
    /// process must be the new one (its pid differs from `before`), or a
    /// window could open on the old process and close on the new one; it
    /// must have picked its faults up again, and its callers' breakers
    /// must have closed.
    async fn settle(&self, op: &Op, touched: &[&Component], before: &[Option<String>]) {
        let restart = op.op == Verb::Restart;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let mut all = true;
            for (c, old) in touched.iter().zip(before) {
                if restart && old.is_some() && self.pid(c) == *old {
                    all = false;
                    continue;
                }
                let ok = self
                    .http
                    .get(&c.health)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                all &= ok;
            }
            if all {
                if restart {
                    // A restarted process applies its faults only after its
                    // agent's first poll; judging before that would credit
                    // the restart with a recovery it does not bring.
                    tokio::time::sleep(FAULT_REAPPLY).await;
                    self.breakers_settle(&self.service_of(&op.target)).await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// After a scale: waits (at most 30 s) until `endpoints.json` lists the
    /// service's new number of instances and each answers its health check,
    /// then for their agents' first polls (faults, and callers learning
    /// where they are), and from then on reads the new set of processes.
    async fn settle_scale(&mut self, op: &Op) {
        let service = self.service_of(&op.target);
        let Ok(Settings::Replicas(wanted)) = op.parse().map(|op| op.settings) else {
            return;
        };
        let wanted = wanted as usize;
        let deadline = Instant::now() + SCALE_SETTLE;
        while Instant::now() < deadline {
            let listed = self
                .conn
                .endpoints()
                .and_then(|e| components_of(&e).ok())
                .unwrap_or_default();
            let instances: Vec<&Component> = listed.iter().filter(|c| c.name == service).collect();
            if instances.len() == wanted {
                let mut healthy = true;
                for c in &instances {
                    healthy &= self
                        .http
                        .get(&c.health)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                }
                if healthy {
                    tokio::time::sleep(FAULT_REAPPLY).await;
                    self.components = listed;
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// After a restart of `service`: waits (at most [`BREAKER_SETTLE`])
    /// until no caller holds a breaker open towards it. Callers trip them
    /// while it is down; judging while they are still open would charge
    /// the restart's own brief outage to the op, so a wrong restart would
    /// look "still broken" whatever the fault. A service the fault keeps
    /// breaking trips them again at once, and then the wait runs out.
    async fn breakers_settle(&self, service: &str) {
        let deadline = Instant::now() + BREAKER_SETTLE;
        while Instant::now() < deadline {
            let scrape = self.scrape().await;
            let open = scrape.by_component.values().flatten().any(|s| {
                s.name == "circuit_breaker_state"
                    && s.label("server_address") == Some(service)
                    && s.value >= BREAKER_OPEN
            });
            if !open {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Every object key and every word of a string value in `value`.
fn collect_words(value: &Value, seen: &mut std::collections::HashSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                seen.insert(key.clone());
                collect_words(inner, seen);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_words(v, seen)),
        Value::String(text) => seen.extend(names::words(text).map(String::from)),
        _ => {}
    }
}

/// Counts the spans in a Jaeger `/api/traces` answer that belong to
/// `service`, are named `operation` and lasted longer than `ms` (Jaeger
/// durations are in microseconds).
fn slow_spans(answer: &Value, service: &str, operation: &str, ms: u64) -> usize {
    let mut matching = 0;
    for trace in answer["data"].as_array().into_iter().flatten() {
        let processes = &trace["processes"];
        for span in trace["spans"].as_array().into_iter().flatten() {
            let pid = span["processID"].as_str().unwrap_or("");
            if processes[pid]["serviceName"].as_str() == Some(service)
                && span["operationName"].as_str() == Some(operation)
                && span["duration"]
                    .as_f64()
                    .is_some_and(|us| us > ms as f64 * 1000.0)
            {
                matching += 1;
            }
        }
    }
    matching
}

/// Linear interpolation within the bucket holding the rank, as PromQL's
/// `histogram_quantile` does; `buckets` are cumulative, sorted by bound.
fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return f64::NAN;
    };
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return lower.0;
            }
            let in_bucket = count - lower.1;
            if in_bucket <= 0.0 {
                return bound;
            }
            return lower.0 + (bound - lower.0) * (rank - lower.1) / in_bucket;
        }
        lower = (bound, count);
    }
    lower.0
}

/// Parses Prometheus text or OpenMetrics exposition into samples; comment
/// lines, exemplars and timestamps are skipped.
fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_sample).collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    // A quoted value with `\"`, `\\` and `\n` escapes.
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        }
        rest = &body[end?..];
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_parse_with_escapes_and_exemplars() {
        let text = "# HELP x y\n\
            http_server_request_duration_seconds_bucket{http_route=\"/api/products\",le=\"0.005\"} 3\n\
            odd{a=\"say \\\"hi\\\"\",b=\"x,y\"} 1.5 1700000000\n\
            up 1\n\
            c_total{k=\"v\"} 7 # {trace_id=\"abc\"} 1.0\n\
            b_bucket{le=\"+Inf\"} 9\n";
        let samples = parse_exposition(text);
        assert_eq!(samples.len(), 5, "{samples:?}");
        assert_eq!(samples[0].label("http_route"), Some("/api/products"));
        assert_eq!(samples[1].label("a"), Some("say \"hi\""));
        assert_eq!(samples[1].label("b"), Some("x,y"));
        assert_eq!(samples[1].value, 1.5);
        assert_eq!(samples[2].name, "up");
        assert_eq!(samples[3].value, 7.0);
        assert_eq!(
            samples[4].label("le").unwrap().parse::<f64>().unwrap(),
            f64::INFINITY
        );
    }

    #[test]
    fn slow_spans_count_only_the_named_operation_of_the_service() {
        let answer = json!({ "data": [{
            "processes": { "p1": { "serviceName": "catalog" }, "p2": { "serviceName": "gateway" } },
            "spans": [
                { "processID": "p1", "operationName": "SELECT products", "duration": 85_000 },
                { "processID": "p1", "operationName": "SELECT products", "duration": 2_000 },
                { "processID": "p1", "operationName": "GET /products", "duration": 90_000 },
                { "processID": "p2", "operationName": "SELECT products", "duration": 95_000 },
            ],
        }]});
        assert_eq!(slow_spans(&answer, "catalog", "SELECT products", 60), 1);
        assert_eq!(slow_spans(&answer, "catalog", "SELECT products", 1), 2);
        assert_eq!(slow_spans(&answer, "catalog", "SELECT products", 90), 0);
        assert_eq!(slow_spans(&json!({}), "catalog", "SELECT products", 1), 0);
    }

    #[test]
    fn quantiles_interpolate_like_promql() {
        let buckets = [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        assert!((histogram_quantile(&buckets, 0.5) - 0.1).abs() < 1e-9);
        assert!((histogram_quantile(&buckets, 0.75) - 0.15).abs() < 1e-9);
        // Everything above the last finite bound: that bound is the answer.
        let slow = [(0.1, 0.0), (0.2, 0.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(&slow, 0.5), 0.2);
    }
}
