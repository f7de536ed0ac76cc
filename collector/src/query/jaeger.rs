//! Jaeger's HTTP query API (the one the Jaeger UI calls), served from the
//! store: services, operations, trace search, trace by id, dependencies.
//!
//! Units follow Jaeger: `start`/`end` in microseconds, `minDuration`/
//! `maxDuration`/`lookback` as Go durations, and the dependencies API's
//! `endTs`/`lookback` in milliseconds.

mod model;

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, State, rejection::PathRejection},
    routing::get,
};

use self::model::{DependencyJson, OperationJson, Trace};
use super::{ApiError, Envelope, QueryState, envelope, params::Params};
use crate::{
    model::{SpanKind, TraceId, now_unix_nano},
    store::TraceQuery,
};

/// Jaeger's default for `/api/traces` when `limit` is absent.
const DEFAULT_TRACE_LIMIT: usize = 100;

/// Jaeger's default window for `/api/dependencies`.
const DEFAULT_DEPENDENCY_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

type JsonList<T> = Result<Json<Envelope<Vec<T>>>, ApiError>;

pub fn routes() -> Router<QueryState> {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(find_traces))
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/dependencies", get(dependencies))
}

async fn services(State(state): State<QueryState>) -> JsonList<String> {
    Ok(envelope(state.store.services()))
}

/// The legacy form: operation names only, each once whatever its kinds.
async fn service_operations(
    State(state): State<QueryState>,
    service: Result<Path<String>, PathRejection>,
) -> JsonList<String> {
    let Path(service) = service.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut names: Vec<String> = state
        .store
        .operations(&service)
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.dedup();
    Ok(envelope(names))
}

async fn operations(State(state): State<QueryState>, params: Params) -> JsonList<OperationJson> {
    let service = params.text("service").ok_or_else(|| ApiError::BadParam {
        param: "service",
        reason: "is required".into(),
    })?;
    let kind = params.parse("spanKind", parse_span_kind)?;
    let operations = state
        .store
        .operations(service)
        .into_iter()
        .filter(|o| kind.is_none_or(|k| o.kind == k))
        .map(model::operation)
        .collect();
    Ok(envelope(operations))
}

fn parse_span_kind(text: &str) -> Result<SpanKind, &'static str> {
    let kinds = [
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Producer,
        SpanKind::Consumer,
        SpanKind::Internal,
    ];
    kinds
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(text))
        .ok_or("must be one of server, client, producer, consumer, internal")
}

async fn find_traces(State(state): State<QueryState>, params: Params) -> JsonList<Trace> {
    let query = trace_query(&params, now_unix_nano())?;
    let traces = state
        .store
        .find_traces(&query)
        .iter()
        .filter_map(|spans| Some(model::trace(spans.first()?.trace_id, spans)))
        .collect();
    Ok(envelope(traces))
}

/// Builds the store query. Without `start`, a `lookback` (`1h`, `2d`)
/// counts back from `end` or now; the UI's `lookback=custom` means "use
/// start/end", so anything unparsable there is ignored rather than refused.
fn trace_query(params: &Params, now: u64) -> Result<TraceQuery, ApiError> {
    let end = params.unix_micros("end")?;
    let lookback = params
        .text("lookback")
        .and_then(super::params::parse_duration);
    let start = match (params.unix_micros("start")?, lookback) {
        (Some(start), _) => Some(start),
        (None, Some(lookback)) => Some(end.unwrap_or(now).saturating_sub(nanos(lookback))),
        (None, None) => None,
    };
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(ApiError::BadParam {
            param: "start",
            reason: "must not be after end".into(),
        });
    }
    let min_duration = params.duration("minDuration")?;
    let max_duration = params.duration("maxDuration")?;
    if let (Some(min), Some(max)) = (min_duration, max_duration)
        && min > max
    {
        return Err(ApiError::BadParam {
            param: "minDuration",
            reason: "must not exceed maxDuration".into(),
        });
    }
    Ok(TraceQuery {
        service: params.text("service").map(str::to_owned),
        operation: params.text("operation").map(str::to_owned),
        tags: params.tags("tags")?,
        start_min_unix_nano: start,
        start_max_unix_nano: end,
        min_duration,
        max_duration,
        limit: params.limit("limit", DEFAULT_TRACE_LIMIT)?,
    })
}

async fn trace(
    State(state): State<QueryState>,
    trace_id: Result<Path<String>, PathRejection>,
) -> JsonList<Trace> {
    let Path(trace_id) = trace_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let trace_id: TraceId =
        trace_id
            .parse()
            .map_err(|e: crate::model::IdParseError| ApiError::BadParam {
                param: "traceID",
                reason: e.to_string(),
            })?;
    let spans = state.store.trace(trace_id);
    if spans.is_empty() {
        return Err(ApiError::TraceNotFound);
    }
    Ok(envelope(vec![model::trace(trace_id, &spans)]))
}

async fn dependencies(State(state): State<QueryState>, params: Params) -> JsonList<DependencyJson> {
    let end = params.unix_millis("endTs")?.unwrap_or_else(now_unix_nano);
    let lookback = params.parse("lookback", |v| match v.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err("must be a positive number of milliseconds"),
    })?;
    let start = end.saturating_sub(nanos(lookback.unwrap_or(DEFAULT_DEPENDENCY_LOOKBACK)));
    let links = state.store.dependencies(start, end);
    Ok(envelope(links.into_iter().map(model::dependency).collect()))
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
