//! Exercises acting on the lab: starting one, its clock (warm-up, page,
//! time limit), the learners' actions, the alerts that page them, the SLI
//! samples its grade is measured from, and its end.
//!
//! An exercise plays its scenario: the scenario's timeline starts after a
//! seeded warm-up of normal traffic, whose length learners are not told.
//! The page reaches them when one of the project's alert rules with
//! `severity=page` really fires on the lab's telemetry (Prometheus posts
//! its alerts here, directly under `firedrill up`, through Alertmanager in
//! docker-compose and Kubernetes), or after a delay where no Prometheus
//! runs. While it lasts, the page route's SLI is sampled every window from
//! the gateway's `/metrics`, as a learner could read it (`observe`), and
//! every sample goes to the timeline with everything the learners do.
//!
//! It ends when a learner resolves it and the recovery condition then
//! holds in consecutive windows, at the time limit, when the learners give
//! up, or when the instructor stops it; the lab is then reset (`reset`) and
//! the report written next to the timeline.
//!
//! # Invariants
//!
//! - What is fixed at the start is in the controller's state; the timeline
//!   is a journal of its own, appended as things happen, never rewritten.
//!   A controller restart resumes both: clocks are wall-clock times
//!   computed from the state, not timers.
//! - Nothing a learner reaches here names the scenario, a fault, the truth
//!   or a hint not yet taken (`model::exercise::LearnerView`).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use firedrill_observe::{Component, Observer};
use firedrill_runtime::AppError;
use firedrill_runtime::faults::model::{DEPENDENCIES, SERVICES, Target};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::controller::Controller;
use crate::model::exercise::{
    Diagnosis, Draw, EndReason, Ending, Entry, Event, Exercise, Page, Paging, SliSample,
};
use crate::model::op::truncate;
use crate::model::run::RunningScenario;
use crate::model::scenario::{Category, Difficulty, Scenario};
use crate::model::state::now_ms;
use crate::report::dir;
use crate::reset;
use crate::timeline::Timeline;

/// How long one SLI window is.
pub const SLI_WINDOW: Duration = Duration::from_secs(5);

/// How often the exercise's clocks (page timer, time limit, a resolve
/// waiting for recovery) are looked at.
const TICK: Duration = Duration::from_millis(500);

/// With alerts, the page still goes out this long after the incident
/// began if no paging alert fired by then (an incident no rule covers).
const ALERT_FALLBACK: Duration = Duration::from_secs(300);

/// Without alerts, the page goes out this long after the scenario's last
/// fault step began: about when an alert would have fired.
const TIMER_PAGE_AFTER: Duration = Duration::from_secs(60);

/// The bounds of a learner's free text (status updates, declarations,
/// summaries).
const MAX_TEXT_CHARS: usize = 2000;

/// `POST /v1/exercises`: what an instructor asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StartRequest {
    /// The scenario; without it, one drawn with the seed.
    #[serde(default)]
    pub scenario: Option<String>,
    /// Draw only among scenarios of this difficulty.
    #[serde(default)]
    pub difficulty: Option<Difficulty>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Who takes part (default: the lab's own learner).
    #[serde(default)]
    pub learners: Vec<String>,
    /// Default 30 minutes; 1 minute to 4 hours.
    #[serde(default)]
    pub time_limit: Option<firedrill_runtime::faults::model::Millis>,
    /// Default: drawn between 30 s and 2 min; `0s` starts at once.
    #[serde(default)]
    pub warmup: Option<firedrill_runtime::faults::model::Millis>,
    /// Without alerts: how long after the incident begins the page goes
    /// out (default: a minute after the scenario's last step begins).
    #[serde(default)]
    pub page_after: Option<firedrill_runtime::faults::model::Millis>,
}

/// Starts an exercise; answers it (the instructor sees the scenario).
pub fn start(ctl: &Controller, request: StartRequest) -> Result<Exercise, AppError> {
    let seed = request.seed.unwrap_or_else(|| now_ms() as u64);
    let mut draw = Draw::new(seed);
    let scenario = match &request.scenario {
        Some(id) => ctl.scenario(id)?,
        None => {
            let pool: Vec<&Scenario> = ctl
                .scenarios
                .iter()
                .filter(|s| request.difficulty.is_none_or(|d| s.difficulty == d))
                .collect();
            if pool.is_empty() {
                return Err(AppError::conflict(
                    "no scenario of that difficulty in the catalogue",
                ));
            }
            pool[draw.between(0, pool.len() as u64 - 1) as usize]
        }
    };
    if ctl.run_dir.is_none()
        && scenario
            .steps
            .iter()
            .any(|s| s.get_ref().deploy().is_some())
    {
        return Err(AppError::conflict(format!(
            "this scenario deploys a new version, and {}",
            crate::deploys::NO_PROCESS_CONTROL
        )));
    }
    let learners = learners(ctl, &request.learners)?;
    let time_limit = request.time_limit.map_or(30 * 60_000, |t| t.0 as i64);
    if !(60_000..=4 * 3_600_000).contains(&time_limit) {
        return Err(AppError::bad_request("timeLimit must be between 1m and 4h"));
    }
    let warmup = match request.warmup {
        Some(w) if w.0 > 10 * 60_000 => {
            return Err(AppError::bad_request("warmup must be at most 10m"));
        }
        Some(w) => w.0 as i64,
        None => draw.between(30_000, 120_000) as i64,
    };
    let onset = scenario
        .steps
        .iter()
        .map(|s| s.get_ref().at.0 as i64)
        .max()
        .unwrap_or(0);
    let paging = match request.page_after {
        Some(after) if after.0 > 3_600_000 => {
            return Err(AppError::bad_request("pageAfter must be at most 1h"));
        }
        Some(after) => Paging::Timer {
            after_ms: after.0 as i64,
        },
        None if ctl.config.alerts => Paging::Alerts {
            fallback_ms: onset + ALERT_FALLBACK.as_millis() as i64,
        },
        None => Paging::Timer {
            after_ms: onset + TIMER_PAGE_AFTER.as_millis() as i64,
        },
    };
    let now = now_ms();
    let exercise = ctl.update(|state| {
        if let Some(running) = &state.exercise {
            return Err(AppError::conflict(format!(
                "exercise {} is running; stop it first (firedrill exercise stop)",
                running.id
            )));
        }
        if let Some(running) = &state.scenario {
            return Err(AppError::conflict(format!(
                "scenario {} is running; stop it first",
                running.id
            )));
        }
        state.next_exercise += 1;
        let exercise = Exercise {
            id: format!("x{}", state.next_exercise),
            scenario: scenario.id().to_string(),
            seed,
            learners,
            created_ms: now,
            starts_ms: now + warmup,
            deadline_ms: now + time_limit,
            paging,
            page: None,
            resolve_asked_ms: None,
            ended: None,
        };
        // The scenario's clock starts after the warm-up: until then its
        // timeline is empty (faults and deploy steps come due from it).
        state.scenario = Some(RunningScenario {
            id: exercise.scenario.clone(),
            started_ms: exercise.starts_ms,
            mitigated_ms: None,
            speed: 1.0,
            ended_steps: Default::default(),
        });
        state.exercise = Some(exercise.clone());
        Ok(exercise)
    })??;
    let timeline = Timeline::open(&dir(ctl), &exercise.id).map_err(AppError::internal)?;
    *ctl.timeline.lock() = Some(timeline);
    tracing::info!(exercise = %exercise.id, scenario = %exercise.scenario, seed, learners = ?exercise.learners, "exercise started");
    Ok(exercise)
}

/// The learners named, checked; none means the lab's own learner.
fn learners(ctl: &Controller, named: &[String]) -> Result<Vec<String>, AppError> {
    if named.is_empty() {
        return Ok(vec![ctl.config.learner_name.clone()]);
    }
    let known = ctl.state.lock().learners.clone();
    let mut out = Vec::new();
    for name in named {
        let name = name.trim();
        if name != ctl.config.learner_name && !known.contains_key(name) {
            return Err(AppError::bad_request(format!(
                "no learner {:?}; add them first (firedrill learner add {})",
                truncate(name, 40),
                truncate(name, 40)
            )));
        }
        if !out.iter().any(|n: &String| n == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// Appends `event` by `actor` to the running exercise's timeline.
pub fn record(ctl: &Controller, actor: &str, event: Event) -> Result<Entry, AppError> {
    let entry = Entry {
        at_ms: now_ms(),
        actor: actor.to_string(),
        event,
    };
    let mut timeline = ctl.timeline.lock();
    let Some(timeline) = timeline.as_mut() else {
        return Err(AppError::conflict("no exercise is running"));
    };
    timeline
        .log
        .append(entry.clone())
        .map_err(AppError::internal)?;
    Ok(entry)
}

/// An op a learner of the running exercise performed goes on its timeline.
pub fn record_op(ctl: &Controller, actor: &str, event: Event) {
    let takes_part = ctl
        .state
        .lock()
        .exercise
        .as_ref()
        .is_some_and(|e| e.ended.is_none() && e.takes_part(actor));
    if takes_part && let Err(e) = record(ctl, actor, event) {
        tracing::warn!(error = %e.message, "cannot record an op on the exercise timeline");
    }
}

/// What a learner does, as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    Ack,
    Hint,
    Status {
        text: String,
    },
    Declare {
        text: String,
    },
    Diagnose {
        service: String,
        #[serde(default)]
        instance: Option<String>,
        category: Category,
        #[serde(default)]
        chain: Vec<String>,
        summary: String,
    },
    Resolve,
    GiveUp,
}

/// What an action answers: the hint's text for a hint, else a line.
pub struct Done {
    pub entry: Entry,
    pub said: String,
}

/// Performs a learner's action on the running exercise.
pub fn act(ctl: &Controller, learner: &str, action: Action) -> Result<Done, AppError> {
    let exercise = running(ctl)?;
    if !exercise.takes_part(learner) {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            format!("{learner} does not take part in the running exercise"),
        ));
    }
    let scenario = ctl.scenario(&exercise.scenario)?;
    let entries = ctl
        .timeline
        .lock()
        .as_ref()
        .map(Timeline::entries)
        .unwrap_or_default();
    let text = |text: &str, what: &str| -> Result<String, AppError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
            return Err(AppError::bad_request(format!(
                "{what} must be 1 to {MAX_TEXT_CHARS} characters"
            )));
        }
        Ok(text.to_string())
    };
    let (event, said) = match action {
        Action::Ack => {
            if exercise.page.is_none() {
                return Err(AppError::conflict("no page to acknowledge yet"));
            }
            if entries.iter().any(|e| matches!(e.event, Event::Ack)) {
                return Err(AppError::conflict("the page is acknowledged already"));
            }
            (Event::Ack, "page acknowledged".to_string())
        }
        Action::Hint => {
            let hints = scenario.hints.get_ref();
            let taken = Exercise::hints_taken(&entries);
            let Some(hint) = hints.get(taken) else {
                return Err(AppError::conflict(format!(
                    "all {} hints are taken",
                    hints.len()
                )));
            };
            (Event::Hint { tier: taken + 1 }, hint.clone())
        }
        Action::Status { text: t } => (
            Event::Status {
                text: text(&t, "a status update")?,
            },
            "status update posted".to_string(),
        ),
        Action::Declare { text: t } => {
            if entries
                .iter()
                .any(|e| matches!(e.event, Event::Declare { .. }))
            {
                return Err(AppError::conflict("an incident is declared already"));
            }
            (
                Event::Declare {
                    text: text(&t, "a declaration")?,
                },
                "incident declared".to_string(),
            )
        }
        Action::Diagnose {
            service,
            instance,
            category,
            chain,
            summary,
        } => {
            let diagnosis = check_diagnosis(
                service,
                instance,
                category,
                chain,
                text(&summary, "summary")?,
            )?;
            (
                Event::Diagnose(diagnosis),
                "diagnosis recorded (the last one counts)".to_string(),
            )
        }
        Action::Resolve => {
            let recovered = entries
                .iter()
                .rev()
                .find_map(|e| match &e.event {
                    Event::Sli(s) => Some(s.recovered),
                    _ => None,
                })
                .unwrap_or(false);
            // A resolve while the SLIs are bad is recorded and changes
            // nothing: the learner resolves again once they have recovered.
            if recovered {
                ctl.update(|state| {
                    if let Some(e) = state.exercise.as_mut() {
                        e.resolve_asked_ms.get_or_insert(now_ms());
                    }
                })?;
            }
            (
                Event::Resolve { recovered },
                if recovered {
                    "resolve recorded; the exercise ends once the SLIs hold recovered".to_string()
                } else {
                    "resolve recorded, but the SLIs have not recovered: the exercise goes on \
                     (resolve again once they have)"
                        .to_string()
                },
            )
        }
        Action::GiveUp => (Event::GiveUp, "given up; the exercise ends".to_string()),
    };
    let give_up = matches!(event, Event::GiveUp);
    let entry = record(ctl, learner, event)?;
    if give_up {
        end(ctl, EndReason::GaveUp)?;
    }
    Ok(Done { entry, said })
}

fn check_diagnosis(
    service: String,
    instance: Option<String>,
    category: Category,
    chain: Vec<String>,
    summary: String,
) -> Result<Diagnosis, AppError> {
    let service = service.trim().to_string();
    let known = SERVICES.contains(&service.as_str())
        || DEPENDENCIES.contains(&service.as_str())
        || service == "none";
    if !known {
        return Err(AppError::bad_request(format!(
            "unknown service {:?}: one of {}, {}, or none",
            truncate(&service, 40),
            SERVICES.join(", "),
            DEPENDENCIES.join(", ")
        )));
    }
    if let Some(instance) = &instance {
        let ok = Target::parse(instance)
            .is_ok_and(|t| t.service == service && t.instance.as_deref() == Some(instance));
        if !ok {
            return Err(AppError::bad_request(format!(
                "instance {:?} is not an instance of {service} ({service}-<n>)",
                truncate(instance, 40)
            )));
        }
    }
    if chain.len() > 16 {
        return Err(AppError::bad_request("chain lists at most 16 links"));
    }
    for link in &chain {
        if link.len() > 128
            || (!DEPENDENCIES.contains(&link.as_str()) && Target::parse(link).is_err())
        {
            return Err(AppError::bad_request(format!(
                "chain link {:?} is not a service, instance, link or dependency",
                truncate(link, 40)
            )));
        }
    }
    Ok(Diagnosis {
        service,
        instance,
        category,
        chain,
        summary,
    })
}

/// The running exercise (not ended).
fn running(ctl: &Controller) -> Result<Exercise, AppError> {
    ctl.state
        .lock()
        .exercise
        .clone()
        .filter(|e| e.ended.is_none())
        .ok_or_else(|| AppError::conflict("no exercise is running"))
}

/// An alert as Prometheus (Alertmanager's API) or Alertmanager's webhook
/// reports it.
#[derive(Debug, Clone)]
pub struct Alert {
    pub name: String,
    pub severity: String,
    pub firing: bool,
}

/// Alerts arrived: each change goes on the running exercise's timeline,
/// and the first paging alert after the incident began sends the page.
pub fn alerts(ctl: &Controller, alerts: Vec<Alert>) -> Result<usize, AppError> {
    let Ok(exercise) = running(ctl) else {
        return Ok(0);
    };
    let now = now_ms();
    let mut changes = Vec::new();
    {
        let mut timeline = ctl.timeline.lock();
        let Some(timeline) = timeline.as_mut() else {
            return Ok(0);
        };
        for alert in &alerts {
            let known = timeline.firing.contains(&alert.name);
            if alert.firing != known {
                if alert.firing {
                    timeline.firing.insert(alert.name.clone());
                } else {
                    timeline.firing.remove(&alert.name);
                }
                changes.push(alert.clone());
            }
        }
    }
    for alert in &changes {
        record(
            ctl,
            "system",
            Event::Alert {
                name: alert.name.clone(),
                severity: alert.severity.clone(),
                firing: alert.firing,
            },
        )?;
    }
    let pager = alerts
        .iter()
        .find(|a| a.firing && a.severity == "page" && a.name != "Watchdog");
    if exercise.page.is_none()
        && now >= exercise.starts_ms
        && matches!(exercise.paging, Paging::Alerts { .. })
        && let Some(alert) = pager
    {
        page(ctl, &alert.name)?;
    }
    Ok(changes.len())
}

/// Sends the page: once, recorded with what sent it.
fn page(ctl: &Controller, by: &str) -> Result<(), AppError> {
    let sent = ctl.update(|state| {
        let Some(e) = state.exercise.as_mut() else {
            return false;
        };
        if e.page.is_some() || e.ended.is_some() {
            return false;
        }
        e.page = Some(Page {
            at_ms: now_ms(),
            by: by.to_string(),
        });
        true
    })?;
    if sent {
        record(ctl, "system", Event::Page { by: by.to_string() })?;
        tracing::info!(by, "exercise paged");
    }
    Ok(())
}

/// Ends the running exercise: recorded, the lab reset, the report written.
pub fn end(ctl: &Controller, why: EndReason) -> Result<Option<Exercise>, AppError> {
    let ended = ctl.update(|state| {
        let e = state.exercise.as_mut()?;
        if e.ended.is_some() {
            return None;
        }
        e.ended = Some(Ending {
            at_ms: now_ms(),
            why,
        });
        let done = e.clone();
        state.exercises.push(done.clone());
        state.exercise = None;
        Some(done)
    })?;
    let Some(exercise) = ended else {
        return Ok(None);
    };
    record(ctl, "system", Event::Ended { why })?;
    // The lab back to how it started: the scenario, every op, backoffs.
    reset::reset(ctl, "exercise end")?;
    let entries = ctl
        .timeline
        .lock()
        .take()
        .map(|t| t.entries())
        .unwrap_or_default();
    if let Err(e) = crate::report::write(ctl, &exercise, &entries) {
        tracing::warn!(exercise = %exercise.id, error = %e.message, "cannot write the report");
    }
    tracing::info!(exercise = %exercise.id, ?why, "exercise ended");
    Ok(Some(exercise))
}

/// Keeps the running exercise's clocks: the page timer, a resolve that
/// waits for recovery, the time limit; and samples the SLI every window.
pub async fn run(ctl: Arc<Controller>, shutdown: CancellationToken) {
    // A restarted controller picks its running exercise's timeline up.
    let active = ctl.state.lock().exercise.clone();
    if let Some(exercise) = active {
        match Timeline::open(&dir(&ctl), &exercise.id) {
            Ok(timeline) => *ctl.timeline.lock() = Some(timeline),
            Err(e) => tracing::warn!(error = %e, "cannot reopen the exercise's timeline"),
        }
    }
    let sampler = tokio::spawn(sample(ctl.clone(), shutdown.clone()));
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = keep_time(&ctl) {
            tracing::warn!(error = %e.message, "exercise clock");
        }
    }
    let _ = sampler.await;
}

fn keep_time(ctl: &Controller) -> Result<(), AppError> {
    let Ok(exercise) = running(ctl) else {
        return Ok(());
    };
    let now = now_ms();
    if now >= exercise.deadline_ms {
        end(ctl, EndReason::TimeLimit)?;
        return Ok(());
    }
    if exercise.page.is_none() {
        let due = match exercise.paging {
            Paging::Alerts { fallback_ms } => exercise.starts_ms + fallback_ms,
            Paging::Timer { after_ms } => exercise.starts_ms + after_ms,
        };
        if now >= due {
            page(ctl, "timer")?;
        }
    }
    if let Some(asked) = exercise.resolve_asked_ms {
        // Resolved once the recovery condition has held in `windows`
        // consecutive windows, counting the one the resolve was made in;
        // a window that breaks it takes the resolve back.
        let windows = ctl.rubric.mitigate.windows.max(1);
        let entries = ctl
            .timeline
            .lock()
            .as_ref()
            .map(Timeline::entries)
            .unwrap_or_default();
        let since = asked - SLI_WINDOW.as_millis() as i64;
        let held: Vec<bool> = entries
            .iter()
            .filter(|e| e.at_ms >= since)
            .filter_map(|e| match &e.event {
                Event::Sli(s) => Some(s.recovered),
                _ => None,
            })
            .collect();
        if held.iter().any(|r| !r) {
            ctl.update(|state| {
                if let Some(e) = state.exercise.as_mut() {
                    e.resolve_asked_ms = None;
                }
            })?;
        } else if held.len() >= windows {
            end(ctl, EndReason::Resolved)?;
        }
    }
    Ok(())
}

/// Samples the page route's SLI every window while an exercise runs.
async fn sample(ctl: Arc<Controller>, shutdown: CancellationToken) {
    loop {
        let active = running(&ctl).ok();
        let Some(exercise) = active else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => continue,
            }
        };
        let Ok(scenario) = ctl.scenario(&exercise.scenario) else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => continue,
            }
        };
        let recovery = scenario.mitigation.get_ref().recovery.clone();
        let observer = match observer(&ctl) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the lab for the exercise's SLIs");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(SLI_WINDOW) => continue,
                }
            }
        };
        let window = tokio::select! {
            _ = shutdown.cancelled() => return,
            w = observer.window(SLI_WINDOW) => w,
        };
        let outcome = observer
            .recovered(
                &recovery.route,
                recovery.max_error_ratio,
                recovery.max_latency_ms,
                &recovery.checks,
                &window,
            )
            .await;
        let Some(sli) = observer.sli(&window, &recovery.route, recovery.max_latency_ms as f64)
        else {
            continue;
        };
        let event = Event::Sli(SliSample {
            window_ms: SLI_WINDOW.as_millis() as i64,
            requests: sli.requests,
            errors: sli.errors,
            slow: sli.slow,
            error_ratio: sli.error_ratio,
            p50_ms: sli.p50_ms,
            p95_ms: sli.p95_ms,
            recovered: outcome.holds,
        });
        if running(&ctl).is_ok_and(|e| e.id == exercise.id)
            && let Err(e) = record(&ctl, "system", event)
        {
            tracing::warn!(error = %e.message, "cannot record an SLI sample");
        }
    }
}

/// Where the lab's processes and the collector are: `endpoints.json`
/// under `firedrill up`, else `--peers` and `--query-url`.
pub fn observer(ctl: &Controller) -> anyhow::Result<Observer> {
    if let Some(run_dir) = &ctl.run_dir
        && let Ok(bytes) = std::fs::read(run_dir.endpoints())
    {
        let endpoints: serde_json::Value = serde_json::from_slice(&bytes)?;
        let components: Vec<Component> = serde_json::from_value(endpoints["components"].clone())?;
        let query = endpoints["query"].as_str().unwrap_or_default().to_string();
        return Observer::new(query, components);
    }
    let mut components = Vec::new();
    for (service, urls) in &ctl.peers {
        for (n, url) in urls.iter().enumerate() {
            let url = url.trim_end_matches('/');
            components.push(Component {
                id: format!("{service}-{}", n + 1),
                name: service.clone(),
                health: format!("{url}/health"),
                metrics: format!("{url}/metrics"),
            });
        }
    }
    let query = ctl.config.query_url.clone().unwrap_or_default();
    if !query.is_empty() {
        components.push(Component {
            id: "collector".into(),
            name: "collector".into(),
            health: format!("{query}/health"),
            metrics: format!("{query}/metrics"),
        });
    }
    Observer::new(query, components)
}

/// The timeline of `exercise`: the running one's from memory, an ended
/// one's from its journal.
pub fn entries_of(ctl: &Controller, exercise: &Exercise) -> Vec<Entry> {
    if let Some(timeline) = ctl.timeline.lock().as_ref()
        && timeline.id == exercise.id
    {
        return timeline.entries();
    }
    Timeline::open(&dir(ctl), &exercise.id)
        .map(|t| t.entries())
        .unwrap_or_default()
}

/// The exercises as a learner's or the instructor's list: id, learners,
/// when, how it ended; the scenario only for the instructor.
pub fn summary(exercise: &Exercise, instructor: bool) -> serde_json::Value {
    let mut value = serde_json::json!({
        "id": exercise.id,
        "learners": exercise.learners,
        "createdMs": exercise.created_ms,
        "ended": exercise.ended,
    });
    if instructor {
        value["scenario"] = serde_json::json!(exercise.scenario);
        value["seed"] = serde_json::json!(exercise.seed);
        value["startsMs"] = serde_json::json!(exercise.starts_ms);
    }
    value
}
