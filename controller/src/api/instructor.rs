//! The instructor's routes: faults, scenarios, deploys, learners and the
//! lab reset. The router admits only the instructor token here.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use firedrill_runtime::AppError;
use firedrill_runtime::extract::Path;
use firedrill_runtime::faults::model::{FaultSpec, Millis};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::{Caller, new_token, token_digest};
use super::body::Object;
use crate::controller::Controller;
use crate::deploys;
use crate::model::deploy::{DeployRecord, desired, revert_scenario};
use crate::model::op::truncate;
use crate::model::run::{RunningScenario, normal_speed};
use crate::model::scenario::{DeployStep, check_deploy};
use crate::model::state::{StoredFault, now_ms};

type Ctl = State<Arc<Controller>>;

/// `POST /v1/faults`: a fault spec plus how long it lasts.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inject {
    #[serde(flatten)]
    spec: FaultSpec,
    duration: Millis,
}

const MAX_FAULT_DURATION: Millis = Millis(24 * 3600 * 1000);

pub async fn inject(
    State(ctl): Ctl,
    Object(request): Object<Inject>,
) -> Result<(StatusCode, axum::Json<StoredFault>), AppError> {
    request.spec.validate().map_err(AppError::bad_request)?;
    if request.duration.0 == 0 || request.duration > MAX_FAULT_DURATION {
        return Err(AppError::bad_request(format!(
            "duration must be between 1ms and 24h, got {}ms",
            request.duration.0
        )));
    }
    let now = now_ms();
    let fault = ctl.update(|state| {
        let id = state.new_id();
        let fault = StoredFault {
            id: id.clone(),
            spec: request.spec,
            created_ms: now,
            expires_ms: now + request.duration.0 as i64,
        };
        state.faults.insert(id, fault.clone());
        fault
    })?;
    tracing::info!(id = %fault.id, kind = fault.spec.kind.name(), target = %fault.spec.target, "fault injected");
    Ok((StatusCode::CREATED, axum::Json(fault)))
}

pub async fn list_faults(State(ctl): Ctl) -> axum::Json<Value> {
    let state = ctl.state.lock();
    axum::Json(json!({ "faults": state.active(&ctl.scenarios, now_ms()) }))
}

pub async fn clear_faults(State(ctl): Ctl) -> Result<axum::Json<Value>, AppError> {
    let (faults, scenario) = ctl.update(|state| {
        let faults = std::mem::take(&mut state.faults).len();
        let scenario = state.scenario.take();
        if let Some(running) = &scenario {
            revert_scenario(&mut state.deploys, running, now_ms());
        }
        (faults, scenario.map(|s| s.id))
    })?;
    deploys::sync_files(&ctl)?;
    tracing::info!(faults, ?scenario, "all faults cleared");
    Ok(axum::Json(
        json!({ "cleared": faults, "stoppedScenario": scenario }),
    ))
}

pub async fn clear_fault(State(ctl): Ctl, Path(id): Path<String>) -> Result<StatusCode, AppError> {
    let removed = ctl.update(|state| state.faults.remove(&id))?;
    match removed {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(AppError::not_found(format!(
            "no active fault {:?}; list them with GET /v1/faults",
            truncate(&id, 64)
        ))),
    }
}

pub async fn list_scenarios(State(ctl): Ctl) -> axum::Json<Value> {
    let list: Vec<Value> = ctl
        .scenarios
        .iter()
        .map(|s| {
            json!({
                "id": s.id(),
                "title": s.title,
                "difficulty": s.difficulty,
                "category": s.truth.get_ref().category,
            })
        })
        .collect();
    let problems: Vec<String> = ctl
        .catalogue_problems
        .iter()
        .map(|p| p.to_string())
        .collect();
    axum::Json(json!({ "scenarios": list, "problems": problems }))
}

pub async fn show_scenario(
    State(ctl): Ctl,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, AppError> {
    let scenario = ctl.scenario(&id)?;
    serde_json::to_value(scenario)
        .map(axum::Json)
        .map_err(AppError::internal)
}

/// The optional body of a scenario start.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartOptions {
    /// Plays the timeline this many times faster (1..=1000).
    #[serde(default = "normal_speed")]
    speed: f64,
}

impl StartOptions {
    /// An empty body starts at normal speed.
    fn parse(body: &[u8]) -> Result<StartOptions, AppError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(StartOptions {
                speed: normal_speed(),
            });
        }
        let options: StartOptions = serde_json::from_slice(body)
            .map_err(|e| AppError::bad_request(format!("invalid start options: {e}")))?;
        if !(1.0..=1000.0).contains(&options.speed) {
            return Err(AppError::bad_request(format!(
                "speed must be within 1..=1000, got {}",
                options.speed
            )));
        }
        Ok(options)
    }
}

pub async fn start_scenario(
    State(ctl): Ctl,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let options = StartOptions::parse(&body)?;
    let scenario = ctl.scenario(&id)?;
    if ctl.run_dir.is_none()
        && scenario
            .steps
            .iter()
            .any(|s| s.get_ref().deploy().is_some())
    {
        return Err(AppError::conflict(format!(
            "scenario {id:?} deploys a new version, and {}",
            deploys::NO_PROCESS_CONTROL
        )));
    }
    let page = scenario.page.clone();
    let running = ctl.update(|state| {
        if let Some(running) = &state.scenario {
            return Err(AppError::conflict(format!(
                "scenario {:?} is running; stop it first",
                running.id
            )));
        }
        let running = RunningScenario {
            id: id.clone(),
            started_ms: now_ms(),
            mitigated_ms: None,
            speed: options.speed,
            ended_steps: Default::default(),
        };
        state.scenario = Some(running.clone());
        Ok(running)
    })??;
    tracing::info!(scenario = %id, "scenario started");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "scenario": running, "page": page })),
    ))
}

pub async fn running_scenario(State(ctl): Ctl) -> axum::Json<Value> {
    let state = ctl.state.lock();
    axum::Json(json!({ "scenario": state.scenario }))
}

pub async fn stop_scenario(State(ctl): Ctl) -> Result<axum::Json<Value>, AppError> {
    let stopped = ctl.update(|state| {
        let stopped = state.scenario.take();
        if let Some(running) = &stopped {
            revert_scenario(&mut state.deploys, running, now_ms());
        }
        stopped
    })?;
    deploys::sync_files(&ctl)?;
    match stopped {
        Some(s) => Ok(axum::Json(json!({ "stopped": s.id }))),
        None => Err(AppError::not_found("no scenario is running")),
    }
}

/// `POST /v1/deploys`: roll a service (or one instance) to a version.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// `catalog` or `catalog-2`.
    target: String,
    version: String,
    /// A canary: only this many instances (the lowest-numbered).
    #[serde(default)]
    instances: Option<u32>,
    /// Who deploys (recorded); `instructor` when absent.
    #[serde(default)]
    actor: Option<String>,
}

pub async fn start_deploy(
    State(ctl): Ctl,
    Object(request): Object<DeployRequest>,
) -> Result<(StatusCode, axum::Json<DeployRecord>), AppError> {
    let actor = request.actor.as_deref().unwrap_or("instructor").trim();
    if actor.is_empty() || actor.chars().count() > 64 {
        return Err(AppError::bad_request(
            "actor must name who deploys (1..64 characters)",
        ));
    }
    let deploy = check_deploy(
        &request.target,
        &DeployStep {
            version: request.version,
            instances: request.instances,
        },
    )
    .map_err(AppError::bad_request)?;
    let record = deploys::deploy(&ctl, &deploy, actor)?;
    Ok((StatusCode::CREATED, axum::Json(record)))
}

pub async fn list_deploys(State(ctl): Ctl) -> axum::Json<Value> {
    let state = ctl.state.lock();
    let services: std::collections::BTreeSet<&str> =
        state.deploys.iter().map(|r| r.service.as_str()).collect();
    let versions: serde_json::Map<String, Value> = services
        .into_iter()
        .map(|s| (s.to_string(), json!(desired(&state.deploys, s))))
        .collect();
    axum::Json(json!({
        "deploys": state.deploys,
        "versions": versions,
        "processControl": ctl.run_dir.is_some(),
    }))
}

/// `POST /v1/learners`: a learner by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddLearner {
    name: String,
}

/// A learner's name: 1 to 32 of `[a-z0-9_-]`, starting with a letter.
fn check_learner_name(name: &str) -> Result<(), AppError> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(format!(
            "learner name {:?} must be 1 to 32 of [a-z0-9_-], starting with a letter (e.g. alice)",
            truncate(name, 40)
        )))
    }
}

/// Adds a learner and answers their token, the only time it is shown.
pub async fn add_learner(
    State(ctl): Ctl,
    Object(request): Object<AddLearner>,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let name = request.name.trim().to_string();
    check_learner_name(&name)?;
    if name == ctl.config.learner_name {
        return Err(AppError::conflict(format!(
            "{name} is the lab's own learner; their token is in the run directory (learner-token)"
        )));
    }
    let token = new_token();
    let added = ctl.update(|state| {
        if state.learners.contains_key(&name) {
            return false;
        }
        state.learners.insert(name.clone(), token_digest(&token));
        true
    })?;
    if !added {
        return Err(AppError::conflict(format!(
            "learner {name} exists; remove them first to issue a new token"
        )));
    }
    tracing::info!(learner = %name, "learner added");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "name": name, "token": token })),
    ))
}

pub async fn list_learners(State(ctl): Ctl) -> axum::Json<Value> {
    let state = ctl.state.lock();
    let mut names: Vec<&str> = state.learners.keys().map(String::as_str).collect();
    if ctl.config.learner_token.is_some() {
        names.push(&ctl.config.learner_name);
    }
    names.sort_unstable();
    axum::Json(json!({ "learners": names }))
}

pub async fn remove_learner(
    State(ctl): Ctl,
    Path(name): Path<String>,
) -> Result<StatusCode, AppError> {
    let removed = ctl.update(|state| state.learners.remove(&name))?;
    match removed {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(AppError::not_found(format!(
            "no learner {:?} was added; list them with GET /v1/learners",
            truncate(&name, 40)
        ))),
    }
}

/// `POST /v1/lab/reset`: the lab back to how it started.
pub async fn reset_lab(
    State(ctl): Ctl,
    Extension(caller): Extension<Caller>,
) -> Result<(StatusCode, axum::Json<crate::reset::ResetReport>), AppError> {
    let report = crate::reset::reset(&ctl, caller.name())?;
    Ok((StatusCode::ACCEPTED, axum::Json(report)))
}

/// `GET /v1/lab/reset`: whether the lab has settled since the latest reset.
pub async fn reset_status(State(ctl): Ctl) -> axum::Json<crate::reset::ResetStatus> {
    axum::Json(crate::reset::status(&ctl))
}

/// `POST /v1/exercises`: an exercise starts (its scenario after a warm-up).
pub async fn start_exercise(
    State(ctl): Ctl,
    Object(request): Object<crate::exercise::StartRequest>,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let exercise = crate::exercise::start(&ctl, request)?;
    let mut answer = crate::exercise::summary(&exercise, true);
    answer["startsInMs"] = json!(exercise.starts_ms - exercise.created_ms);
    Ok((StatusCode::CREATED, axum::Json(answer)))
}

/// `GET /v1/exercises`: every exercise, running and ended.
pub async fn list_exercises(State(ctl): Ctl) -> axum::Json<Value> {
    let state = ctl.state.lock();
    let list: Vec<Value> = state
        .exercises
        .iter()
        .chain(&state.exercise)
        .map(|e| crate::exercise::summary(e, true))
        .collect();
    axum::Json(json!({ "exercises": list }))
}

/// `DELETE /v1/exercise`: the running exercise ends now.
pub async fn stop_exercise(State(ctl): Ctl) -> Result<axum::Json<Value>, AppError> {
    match crate::exercise::end(&ctl, crate::model::exercise::EndReason::Stopped)? {
        Some(e) => Ok(axum::Json(json!({ "stopped": e.id }))),
        None => Err(AppError::not_found("no exercise is running")),
    }
}
