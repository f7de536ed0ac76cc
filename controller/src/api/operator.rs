//! Ops: the mitigations learners (and instructors) perform, and their log.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use firedrill_runtime::AppError;
use firedrill_runtime::extract::Query;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::body::Object;
use crate::controller::Controller;
use crate::model::op::{Op, Verb, truncate};
use crate::model::state::OpRecord;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpRequest {
    op: Verb,
    #[serde(default)]
    target: String,
    /// Who performs it. A learner acts as themselves (their token names
    /// them); an instructor may name anyone, and is `instructor` otherwise.
    #[serde(default)]
    actor: Option<String>,
    /// `key → value` for config-set (config keys), flag-set (flag names),
    /// rate-limit (route templates) and scale (`replicas`); values are JSON
    /// or text.
    #[serde(default)]
    set: BTreeMap<String, Value>,
    /// The topic of dlq-replay / dlq-purge (default: every topic with dead
    /// letters).
    #[serde(default)]
    topic: Option<String>,
}

/// Who is recorded as performing the op.
fn actor(caller: &Caller, named: Option<&str>) -> Result<String, AppError> {
    let named = named.map(str::trim);
    match (caller, named) {
        (Caller::Learner(name), None) => Ok(name.clone()),
        (Caller::Learner(name), Some(given)) if given == name => Ok(name.clone()),
        (Caller::Learner(name), Some(given)) => Err(AppError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this token is {name}'s: a learner acts as themselves, not as {:?}",
                truncate(given, 64)
            ),
        )),
        (_, None) => Ok(caller.name().to_string()),
        (_, Some(given)) if (1..=64).contains(&given.chars().count()) => Ok(given.to_string()),
        (_, Some(_)) => Err(AppError::bad_request(
            "actor must name who performs the op (1..64 characters)",
        )),
    }
}

pub async fn perform(
    State(ctl): State<Arc<Controller>>,
    Extension(caller): Extension<Caller>,
    Object(request): Object<OpRequest>,
) -> Result<(StatusCode, axum::Json<OpRecord>), AppError> {
    let actor = actor(&caller, request.actor.as_deref())?;
    let op = Op::parse(
        request.op,
        &request.target,
        &request.set,
        request.topic.as_deref(),
    )
    .and_then(|op| crate::policy::check(&op).map(|()| op))
    .map_err(AppError::bad_request)?;
    let record = crate::ops::record(&ctl, &op, &actor).await?;
    Ok((StatusCode::CREATED, axum::Json(record)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The newest this many (default 200, at most 1000).
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/ops`: the newest ops, oldest first.
pub async fn list(
    State(ctl): State<Arc<Controller>>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Value>, AppError> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::bad_request(format!(
            "limit must be 1..=1000, got {limit}"
        )));
    }
    let log = ctl.ops_log.lock();
    let ops: Vec<&OpRecord> = log.recent(limit).collect();
    Ok(axum::Json(json!({ "ops": ops, "total": log.total() })))
}

/// The exercise `caller` sees: the running one, else the latest that
/// ended; a learner only sees those they take part in.
fn visible_exercise(ctl: &Controller, caller: &Caller) -> Option<crate::model::exercise::Exercise> {
    let state = ctl.state.lock();
    state
        .exercise
        .iter()
        .chain(state.exercises.iter().rev())
        .find(|e| match caller {
            Caller::Learner(name) => e.takes_part(name),
            _ => true,
        })
        .cloned()
}

/// `GET /v1/exercise`: where the exercise is, as a learner may see it.
pub async fn exercise_status(
    State(ctl): State<Arc<Controller>>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<Value>, AppError> {
    let exercise = visible_exercise(&ctl, &caller)
        .ok_or_else(|| AppError::not_found("no exercise you take part in"))?;
    let scenario = ctl.scenario(&exercise.scenario)?;
    let entries = crate::exercise::entries_of(&ctl, &exercise);
    let view = exercise.learner_view(
        &entries,
        &scenario.page,
        scenario.hints.get_ref(),
        crate::model::state::now_ms(),
    );
    let mut answer = serde_json::to_value(view).map_err(AppError::internal)?;
    if caller == Caller::Instructor {
        answer["scenario"] = json!(exercise.scenario);
        answer["startsMs"] = json!(exercise.starts_ms);
    }
    Ok(axum::Json(answer))
}

/// `POST /v1/exercise/actions`: a learner acknowledges, asks for a hint,
/// posts a status update, declares an incident, diagnoses, resolves or
/// gives up.
pub async fn exercise_action(
    State(ctl): State<Arc<Controller>>,
    Extension(caller): Extension<Caller>,
    Object(action): Object<crate::exercise::Action>,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let Caller::Learner(name) = &caller else {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            "exercise actions are the learners': use a learner token",
        ));
    };
    let done = crate::exercise::act(&ctl, name, action)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "entry": done.entry, "said": done.said })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    #[serde(default)]
    format: Option<crate::report::Format>,
}

/// `GET /v1/exercises/{id}/report`: the debrief. A learner reads the
/// reports of exercises they took part in, once they have ended.
pub async fn exercise_report(
    State(ctl): State<Arc<Controller>>,
    Extension(caller): Extension<Caller>,
    firedrill_runtime::extract::Path(id): firedrill_runtime::extract::Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse as _;
    let exercise = {
        let state = ctl.state.lock();
        state
            .exercises
            .iter()
            .chain(&state.exercise)
            .find(|e| e.id == id)
            .cloned()
    };
    let not_yours = || {
        AppError::not_found(format!(
            "no exercise {:?} you took part in",
            truncate(&id, 40)
        ))
    };
    let exercise = exercise.ok_or_else(not_yours)?;
    if let Caller::Learner(name) = &caller {
        if !exercise.takes_part(name) {
            return Err(not_yours());
        }
        if exercise.ended.is_none() {
            return Err(AppError::conflict(
                "the report is ready once the exercise has ended",
            ));
        }
    }
    let entries = crate::exercise::entries_of(&ctl, &exercise);
    let report = crate::report::build(&ctl, &exercise, &entries, crate::model::state::now_ms())?;
    let format = q.format.unwrap_or(crate::report::Format::Json);
    Ok((
        [(axum::http::header::CONTENT_TYPE, format.content_type())],
        crate::report::render(&report, format),
    )
        .into_response())
}
