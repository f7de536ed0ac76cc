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

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use firedrill_controller::model::op::{ListedOp as Op, Settings, Verb};
use firedrill_controller::model::scenario::{Category, Recovery, Scenario, Signal, Symptom};
use firedrill_controller::scenarios::Catalogue;
use serde_json::{Value, json};

use firedrill_observe::observer::{Component, Window};
use firedrill_observe::{Observer, now_us};

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

/// What the verifier can see of the lab.
struct Lab {
    api: Api,
    /// Reads `/metrics` and the collector, as a learner can.
    observer: Observer,
    /// Where `firedrill up` keeps its pid files (to tell a restarted
    /// process from the one it replaces).
    run_dir: Option<PathBuf>,
    /// Where to read the components again after a scale.
    conn: Connection,
}

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
        let window = lab.observer.window(args.window).await;
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
        let window = lab.observer.window(args.window).await;
        let mut any = false;
        for (i, symptom) in symptoms.iter().enumerate() {
            let outcome = lab.observer.evaluate(symptom, &window, started_us).await;
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
                let outcome = lab.observer.evaluate(check, &window, started_us).await;
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

    // What the lab showed during the incident; the names the texts use are
    // checked against it, and against what it shows once it is over (a
    // counter of throttled calls has no series until the first one).
    let (mut seen, mut texts) = lab.vocabulary(started_us).await;

    // 3. Wrong ops change nothing that matters.
    if !is_control {
        for op in &mitigation.wrong {
            let (result, _) = lab.act(op).await?;
            // Two windows' worth of traffic: a partial failure on a low-rate
            // route (a quarter of ~2 checkouts/s) can miss one short window
            // by chance, and would then pass for a recovery.
            let window = lab.observer.window(args.window * WRONG_OP_WINDOWS).await;
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
        let window = lab.observer.window(args.window).await;
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

    // Every metric, label and attribute the texts name is one the lab shows.
    let (more, more_texts) = lab.vocabulary(started_us).await;
    seen.extend(more);
    texts.extend(more_texts);
    let before = failures.len();
    for (what, text) in scenario_texts(scenario) {
        let missing = names::unknown(&names::named(&text), &seen);
        if !missing.is_empty() {
            failures.push(format!(
                "the {what} names {}, which no metric, label, span or log of the lab carries",
                missing.join(", ")
            ));
        }
    }
    if failures.len() == before {
        println!("  every name the page, hints and debrief use is in the telemetry");
    }
    // And nothing the lab shows gives the answer away.
    let kinds: Vec<&str> = firedrill_runtime::faults::params::names().collect();
    let mut secrets: Vec<&str> = scenario
        .hints
        .get_ref()
        .iter()
        .map(String::as_str)
        .collect();
    secrets.push(&scenario.debrief);
    let leaks = names::leaks(scenario.id(), &kinds, &secrets, &seen, &texts);
    if leaks.is_empty() {
        println!("  nothing in the telemetry names the incident");
    } else {
        failures.push(format!(
            "the telemetry gives the incident away: {}",
            leaks.join("; ")
        ));
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
            observer: Observer::new(query, components)?,
            run_dir: conn.run_dir.clone().or_else(super::newest_run),
            conn: conn.clone(),
        })
    }

    /// Every word the lab's telemetry holds now: metric and label names
    /// and label values from every `/metrics`, the series the project's
    /// rules record, and every key and word of a value in recent traces
    /// and logs of every service (since `since_us`).
    async fn vocabulary(&self, since_us: i64) -> (std::collections::HashSet<String>, Vec<String>) {
        let scrape = self.observer.scrape().await;
        let mut seen = scrape.declared.clone();
        let mut texts = Vec::new();
        for sample in scrape.by_component.values().flatten() {
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
        let services: std::collections::BTreeSet<&str> = self
            .observer
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let since = since_us.to_string();
        for service in services {
            for (api, limit) in [("/api/traces", "20"), ("/api/logs", "200")] {
                let query = [("service", service), ("start", &since), ("limit", limit)];
                if let Ok(answer) = self.observer.collector(api, &query).await {
                    collect_words(&answer, &mut seen, &mut texts);
                }
            }
        }
        (seen, texts)
    }

    /// The recovery condition in one window: the gateway SLI and any checks.
    async fn recovered(&self, recovery: &Recovery, window: &Window) -> (bool, String) {
        let outcome = self
            .observer
            .recovered(
                &recovery.route,
                recovery.max_error_ratio,
                recovery.max_latency_ms,
                &recovery.checks,
                window,
            )
            .await;
        (outcome.holds, outcome.seen)
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
        self.observer
            .components
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
                    .observer
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
                    self.breakers_settle(&self.observer.service_of(&op.target))
                        .await;
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
        let service = self.observer.service_of(&op.target);
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
                        .observer
                        .http
                        .get(&c.health)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                }
                if healthy {
                    tokio::time::sleep(FAULT_REAPPLY).await;
                    self.observer.components = listed;
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
            let scrape = self.observer.scrape().await;
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

/// Every object key and every word of a string value in `value`, and
/// every string long enough to hold a sentence into `texts`.
fn collect_words(
    value: &Value,
    seen: &mut std::collections::HashSet<String>,
    texts: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                seen.insert(key.clone());
                collect_words(inner, seen, texts);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_words(v, seen, texts)),
        Value::String(text) => {
            seen.extend(names::words(text).map(String::from));
            if text.len() >= 40 {
                texts.push(text.clone());
            }
        }
        _ => {}
    }
}
