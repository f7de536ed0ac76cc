//! The controller's HTTP API (described at `/openapi.json`).
//!
//! Three audiences, three rules:
//! - instructors (faults, scenarios) present the instructor token;
//! - fault agents (`/v1/agent/*`) present the agent token and see only
//!   their own process's faults, their service's live config and the
//!   drained instances;
//! - learners reach `/health`, `/openapi.json` and the ops, which change the
//!   live system and are recorded with time and actor — nothing a learner
//!   can reach tells what is injected.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use firedrill_runtime::AppError;
use firedrill_runtime::extract::{Json, Path, Query};
use firedrill_runtime::faults::model::{Assignment, FaultSpec, Millis, Target};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::scenario::{DeployStep, Verb};
use crate::state::{OpRecord, RunningScenario, StoredFault, now_ms};
use crate::{Controller, deploys};

type Ctl = State<Arc<Controller>>;
type ApiResult<T> = Result<T, AppError>;

pub fn router(controller: Arc<Controller>) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/agent/faults", get(agent_faults))
        .route(
            "/v1/faults",
            post(inject).get(list_faults).delete(clear_faults),
        )
        .route("/v1/faults/{id}", delete(clear_fault))
        .route("/v1/scenarios", get(list_scenarios))
        .route("/v1/scenarios/{id}", get(show_scenario))
        .route("/v1/scenarios/{id}/start", post(start_scenario))
        .route("/v1/scenario", get(running_scenario).delete(stop_scenario))
        .route("/v1/ops", post(perform_op).get(list_ops))
        .route("/v1/deploys", post(start_deploy).get(list_deploys))
        .fallback(|| async { AppError::not_found("no such route; see /openapi.json") })
        .with_state(controller)
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::DOCUMENT,
    )
        .into_response()
}

/// The controller's own metrics: ops performed (what learners did) and agent
/// polls. Nothing here tells which faults are active.
async fn metrics(State(ctl): Ctl) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            firedrill_runtime::metrics::OPENMETRICS_CONTENT_TYPE,
        )],
        ctl.meters.encode(),
    )
        .into_response()
}

/// Checks a bearer token against `expected`, naming what is missing.
fn authorize(headers: &HeaderMap, expected: &str, who: &str, how: &str) -> ApiResult<()> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        None | Some("") => Err(AppError::unauthorized(format!(
            "this needs the {who} token: {how}"
        ))),
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(AppError::new(
            StatusCode::FORBIDDEN,
            format!("the {who} token given is not valid"),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn instructor(ctl: &Controller, headers: &HeaderMap) -> ApiResult<()> {
    authorize(
        headers,
        &ctl.config.instructor_token,
        "instructor",
        "send `Authorization: Bearer <token>` (firedrill reads it from --instructor-token or FIREDRILL_INSTRUCTOR_TOKEN)",
    )
}

#[derive(Deserialize)]
struct AgentQuery {
    service: String,
    instance: String,
    /// The `service.version` the process runs; faults aimed at a version
    /// reach only processes that report it.
    #[serde(default)]
    version: Option<String>,
    /// Where the process serves (`http://host:port`), once it does: where
    /// callers of a scaled service are sent.
    #[serde(default)]
    url: Option<String>,
}

async fn agent_faults(
    State(ctl): Ctl,
    headers: HeaderMap,
    Query(q): Query<AgentQuery>,
) -> ApiResult<axum::Json<Assignment>> {
    authorize(
        &headers,
        &ctl.config.agent_token,
        "agent",
        "fault agents get it from FIREDRILL_AGENT_TOKEN",
    )?;
    ctl.agent_polls.inc(&[]);
    let serving_at = q.url.as_deref().filter(|u| !u.is_empty());
    if let Some(url) = serving_at {
        crate::replicas::check_serving(&q.service, &q.instance, url)
            .map_err(AppError::bad_request)?;
    }
    let now = now_ms();
    let mut state = ctl.state.lock();
    if let Some(url) = serving_at {
        crate::replicas::record_serving(&mut ctl.serving.lock(), &state.replicas, &q.instance, url);
    }
    // A config push that started or ended since the last poll becomes the
    // service's next version now, and is persisted before anyone sees it.
    if state.refresh_config(&ctl.scenarios, &q.service, now) {
        state.save(&ctl.state_file).map_err(AppError::internal)?;
    }
    Ok(axum::Json(Assignment {
        lease_ms: ctl.config.lease.as_millis() as u64,
        faults: state.assignment(
            &ctl.scenarios,
            &q.service,
            &q.instance,
            q.version.as_deref().filter(|v| !v.is_empty()),
            now,
        ),
        config: state.config_version(&q.service),
        drained: state.drained.clone(),
        endpoints: crate::replicas::endpoints(&state.replicas, &ctl.peers, &ctl.serving.lock()),
    }))
}

/// `POST /v1/faults`: a fault spec plus how long it lasts.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Inject {
    #[serde(flatten)]
    spec: FaultSpec,
    duration: Millis,
}

const MAX_FAULT_DURATION: Millis = Millis(24 * 3600 * 1000);

async fn inject(
    State(ctl): Ctl,
    headers: HeaderMap,
    request: ApiResult<Json<Inject>>,
) -> ApiResult<(StatusCode, axum::Json<StoredFault>)> {
    // The token first: without it, nothing about the body is revealed.
    instructor(&ctl, &headers)?;
    let Json(request) = request?;
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

async fn list_faults(State(ctl): Ctl, headers: HeaderMap) -> ApiResult<axum::Json<Value>> {
    instructor(&ctl, &headers)?;
    let state = ctl.state.lock();
    Ok(axum::Json(
        json!({ "faults": state.active(&ctl.scenarios, now_ms()) }),
    ))
}

async fn clear_faults(State(ctl): Ctl, headers: HeaderMap) -> ApiResult<axum::Json<Value>> {
    instructor(&ctl, &headers)?;
    let (faults, scenario) = ctl.update(|state| {
        let faults = std::mem::take(&mut state.faults).len();
        let scenario = state.scenario.take();
        if let Some(running) = &scenario {
            deploys::revert_scenario(state, running, now_ms());
        }
        (faults, scenario.map(|s| s.id))
    })?;
    deploys::sync_files(&ctl)?;
    tracing::info!(faults, ?scenario, "all faults cleared");
    Ok(axum::Json(
        json!({ "cleared": faults, "stoppedScenario": scenario }),
    ))
}

async fn clear_fault(
    State(ctl): Ctl,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    instructor(&ctl, &headers)?;
    let removed = ctl.update(|state| state.faults.remove(&id))?;
    match removed {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(AppError::not_found(format!(
            "no active fault {id:?}; list them with GET /v1/faults"
        ))),
    }
}

async fn list_scenarios(State(ctl): Ctl, headers: HeaderMap) -> ApiResult<axum::Json<Value>> {
    instructor(&ctl, &headers)?;
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
    Ok(axum::Json(json!({ "scenarios": list })))
}

async fn show_scenario(
    State(ctl): Ctl,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    instructor(&ctl, &headers)?;
    let scenario = ctl.scenario(&id)?;
    serde_json::to_value(scenario)
        .map(axum::Json)
        .map_err(AppError::internal)
}

async fn start_scenario(
    State(ctl): Ctl,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    instructor(&ctl, &headers)?;
    let options = StartOptions::parse(&body)?;
    let scenario = ctl.scenario(&id)?;
    if ctl.config.run_dir.is_none()
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

/// The optional body of a scenario start.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartOptions {
    /// Plays the timeline this many times faster (1..=1000).
    #[serde(default = "crate::state::normal_speed")]
    speed: f64,
}

impl StartOptions {
    /// An empty body starts at normal speed.
    fn parse(body: &[u8]) -> ApiResult<StartOptions> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(StartOptions {
                speed: crate::state::normal_speed(),
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

async fn running_scenario(State(ctl): Ctl, headers: HeaderMap) -> ApiResult<axum::Json<Value>> {
    instructor(&ctl, &headers)?;
    let state = ctl.state.lock();
    Ok(axum::Json(json!({ "scenario": state.scenario })))
}

async fn stop_scenario(State(ctl): Ctl, headers: HeaderMap) -> ApiResult<axum::Json<Value>> {
    instructor(&ctl, &headers)?;
    let stopped = ctl.update(|state| {
        let stopped = state.scenario.take();
        if let Some(running) = &stopped {
            deploys::revert_scenario(state, running, now_ms());
        }
        stopped
    })?;
    deploys::sync_files(&ctl)?;
    match stopped {
        Some(s) => Ok(axum::Json(json!({ "stopped": s.id }))),
        None => Err(AppError::not_found("no scenario is running")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpRequest {
    op: Verb,
    #[serde(default)]
    target: String,
    /// Who performs it (a learner's name); recorded with the op.
    actor: String,
    /// `key → value` for config-set (config keys), flag-set (flag names)
    /// and rate-limit (route templates); values are JSON or text.
    #[serde(default)]
    set: std::collections::BTreeMap<String, Value>,
    /// The topic of dlq-replay / dlq-purge (default: every topic with dead
    /// letters).
    #[serde(default)]
    topic: Option<String>,
}

async fn perform_op(
    State(ctl): Ctl,
    Json(request): Json<OpRequest>,
) -> ApiResult<(StatusCode, axum::Json<OpRecord>)> {
    let actor = request.actor.trim();
    if actor.is_empty() || actor.chars().count() > 64 {
        return Err(AppError::bad_request(
            "actor must name who performs the op (1..64 characters)",
        ));
    }
    if request.op != Verb::NoAction {
        Target::parse(&request.target)
            .map_err(|e| AppError::bad_request(format!("target: {e}")))?;
    }
    let args = crate::ops::OpArgs {
        set: request.set.clone(),
        topic: request.topic,
    };
    let result = crate::ops::perform(&ctl, request.op, &request.target, actor, &args).await?;
    let mut record = OpRecord {
        at_ms: now_ms(),
        actor: actor.to_string(),
        op: request.op,
        target: request.target.clone(),
        result,
    };
    let record = ctl.update(|state| {
        // An accepted mitigation of the running scenario ends the faults
        // that wait for one; any other op changes only what it did itself.
        if let Some(running) = state.scenario.as_mut()
            && running.mitigated_ms.is_none()
            && ctl.scenario(&running.id).is_ok_and(|s| {
                s.mitigation
                    .get_ref()
                    .accepted
                    .iter()
                    .any(|accepted| accepted.matches(request.op, &request.target, &request.set))
            })
        {
            running.mitigated_ms = Some(record.at_ms);
            // Config pushes that waited for a mitigation end with it: their
            // services move to a new version now, and the answer says so,
            // rather than naming a version that is already gone.
            for service in firedrill_runtime::faults::model::SERVICES {
                if state.refresh_config(&ctl.scenarios, service, record.at_ms) {
                    let version = state.config_version(service).version;
                    record.result.push_str(&format!(
                        "; the config push it mitigates ended: {service} config is now v{version}"
                    ));
                }
            }
        }
        state.ops.push(record.clone());
        record
    })?;
    ctl.ops.inc(&[("op", record.op.to_string().as_str())]);
    tracing::info!(actor, op = %record.op, target = %record.target, result = %record.result, "op performed");
    Ok((StatusCode::CREATED, axum::Json(record)))
}

async fn list_ops(State(ctl): Ctl) -> axum::Json<Value> {
    let state = ctl.state.lock();
    axum::Json(json!({ "ops": state.ops }))
}

/// `POST /v1/deploys`: roll a service (or one instance) to a version.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployRequest {
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

async fn start_deploy(
    State(ctl): Ctl,
    headers: HeaderMap,
    request: ApiResult<Json<DeployRequest>>,
) -> ApiResult<(StatusCode, axum::Json<deploys::DeployRecord>)> {
    instructor(&ctl, &headers)?;
    let Json(request) = request?;
    let actor = request.actor.as_deref().unwrap_or("instructor").trim();
    if actor.is_empty() || actor.chars().count() > 64 {
        return Err(AppError::bad_request(
            "actor must name who deploys (1..64 characters)",
        ));
    }
    let deploy = crate::scenario::check_deploy(
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

async fn list_deploys(State(ctl): Ctl, headers: HeaderMap) -> ApiResult<axum::Json<Value>> {
    instructor(&ctl, &headers)?;
    let state = ctl.state.lock();
    let services: std::collections::BTreeSet<&str> =
        state.deploys.iter().map(|r| r.service.as_str()).collect();
    let versions: serde_json::Map<String, Value> = services
        .into_iter()
        .map(|s| (s.to_string(), json!(deploys::desired(&state.deploys, s))))
        .collect();
    Ok(axum::Json(json!({
        "deploys": state.deploys,
        "versions": versions,
        "processControl": ctl.config.run_dir.is_some(),
    })))
}
