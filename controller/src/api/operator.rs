//! Ops: the mitigations learners (and instructors) perform, and their log.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use firedrill_runtime::AppError;
use firedrill_runtime::extract::{Json, Query};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
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
    Json(request): Json<OpRequest>,
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
