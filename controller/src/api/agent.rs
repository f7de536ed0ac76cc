//! Fault agents' route: each process's faults, its service's live config,
//! the drained instances and where scaled services serve, under one lease.

use std::sync::Arc;

use axum::extract::State;
use firedrill_runtime::AppError;
use firedrill_runtime::extract::Query;
use firedrill_runtime::faults::model::Assignment;
use serde::Deserialize;

use crate::agents;
use crate::controller::Controller;
use crate::model::state::now_ms;

#[derive(Deserialize)]
pub struct AgentQuery {
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

pub async fn faults(
    State(ctl): State<Arc<Controller>>,
    Query(q): Query<AgentQuery>,
) -> Result<axum::Json<Assignment>, AppError> {
    ctl.agent_polls.inc(&[]);
    let serving_at = q.url.as_deref().filter(|u| !u.is_empty());
    if let Some(url) = serving_at {
        agents::check_serving(&q.service, &q.instance, url).map_err(AppError::bad_request)?;
    }
    let version = q.version.as_deref().filter(|v| !v.is_empty());
    let now = now_ms();
    let mut state = ctl.state.lock();
    if let Some(url) = serving_at {
        agents::record_serving(&mut ctl.serving.lock(), &state.replicas, &q.instance, url);
    }
    if let Some(version) = version {
        agents::record_version(&mut ctl.reported.lock(), &q.instance, version, now);
    }
    // A config push that started or ended since the last poll becomes the
    // service's next version now, and is persisted before anyone sees it.
    if state.refresh_config(&ctl.scenarios, &q.service, now) {
        ctl.save(&state)?;
    }
    Ok(axum::Json(Assignment {
        lease_ms: ctl.config.lease.as_millis() as u64,
        faults: state.assignment(&ctl.scenarios, &q.service, &q.instance, version, now),
        config: state.config_version(&q.service),
        drained: state.drained.clone(),
        endpoints: agents::endpoints(&state.replicas, &ctl.peers, &ctl.serving.lock()),
    }))
}
