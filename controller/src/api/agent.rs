//! Fault agents' route: each process's faults, its service's live config,
//! the drained instances and where scaled services serve, under one lease.

use std::sync::Arc;

use axum::extract::State;
use firedrill_runtime::AppError;
use firedrill_runtime::extract::{Json, Query};
use firedrill_runtime::faults::model::Assignment;
use serde::Deserialize;

use super::body::Object;
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

/// One alert as Prometheus sends it to Alertmanager's API
/// (`POST /api/v2/alerts`).
#[derive(Deserialize)]
pub struct PostableAlert {
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default, rename = "endsAt")]
    ends_at: Option<String>,
}

/// `POST /api/v2/alerts`: Prometheus' alerts, as it posts them to an
/// Alertmanager. An alert whose `endsAt` has passed is resolved.
pub async fn prometheus_alerts(
    State(ctl): State<Arc<Controller>>,
    Json(alerts): Json<Vec<PostableAlert>>,
) -> Result<axum::http::StatusCode, AppError> {
    let now = now_ms();
    let alerts = alerts
        .into_iter()
        .filter_map(|a| {
            let firing = a
                .ends_at
                .as_deref()
                .and_then(unix_ms)
                .is_none_or(|ends| ends > now);
            Some(crate::exercise::Alert {
                name: a.labels.get("alertname")?.clone(),
                severity: a.labels.get("severity").cloned().unwrap_or_default(),
                firing,
            })
        })
        .collect();
    crate::exercise::alerts(&ctl, alerts)?;
    Ok(axum::http::StatusCode::OK)
}

/// Alertmanager's webhook body.
#[derive(Deserialize)]
pub struct Webhook {
    alerts: Vec<WebhookAlert>,
}

#[derive(Deserialize)]
pub struct WebhookAlert {
    status: String,
    labels: std::collections::BTreeMap<String, String>,
}

/// `POST /v1/alerts`: Alertmanager's webhook receiver (docker-compose,
/// Kubernetes).
pub async fn alertmanager_webhook(
    State(ctl): State<Arc<Controller>>,
    Object(hook): Object<Webhook>,
) -> Result<axum::http::StatusCode, AppError> {
    let alerts = hook
        .alerts
        .into_iter()
        .filter_map(|a| {
            Some(crate::exercise::Alert {
                name: a.labels.get("alertname")?.clone(),
                severity: a.labels.get("severity").cloned().unwrap_or_default(),
                firing: a.status == "firing",
            })
        })
        .collect();
    crate::exercise::alerts(&ctl, alerts)?;
    Ok(axum::http::StatusCode::OK)
}

/// An RFC 3339 time (`2026-12-05T10:00:00.123Z`, or with an offset such as
/// `+01:00`) as milliseconds since the Unix epoch.
fn unix_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let (local, offset_ms) = match text.strip_suffix('Z') {
        Some(local) => (local, 0),
        None => {
            let at = text.len().checked_sub(6)?;
            let (local, offset) = text.split_at(at);
            let sign = match offset.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = offset[1..].split_once(':')?;
            let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
            (local, sign * minutes * 60_000)
        }
    };
    let utc = humantime::parse_rfc3339_weak(&format!("{local}Z")).ok()?;
    let ms = utc.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
    Some(ms - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::unix_ms;

    #[test]
    fn alert_times_parse_with_and_without_an_offset() {
        assert_eq!(unix_ms("1970-01-01T00:00:01.500Z"), Some(1_500));
        assert_eq!(unix_ms("1970-01-01T01:00:01+01:00"), Some(1_000));
        assert_eq!(unix_ms("yesterday"), None);
    }
}
