//! Log search: `GET /api/logs`, newest first.
//!
//! Parameters: `trace_id` (hex), `service`, `severity` (minimum, by name such
//! as `WARN` or by number 1..=24), `q` (case-sensitive substring of the
//! body or of a string attribute value),
//! `start`/`end` (microseconds, like the trace API) and `limit` (default
//! 100). `total` counts every match, not just the returned page, so a
//! client can tell when to narrow the search.

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;
use serde_json::Value as JsonValue;

use super::{ApiError, QueryState, params::Params};
use crate::{
    model::{LogEntry, TraceId, attributes_json, severity_from_name, severity_name},
    store::LogQuery,
};

const DEFAULT_LIMIT: usize = 100;

pub fn routes() -> Router<QueryState> {
    Router::new().route("/api/logs", get(find_logs))
}

#[derive(Debug, Serialize)]
struct LogsResponse {
    data: Vec<LogJson>,
    total: usize,
}

#[derive(Debug, Serialize)]
struct LogJson {
    /// RFC 3339 with nanoseconds, UTC.
    timestamp: String,
    time_unix_nano: u64,
    service: String,
    instance: String,
    severity: String,
    severity_number: i32,
    body: String,
    trace_id: Option<String>,
    span_id: Option<String>,
    attributes: JsonValue,
}

async fn find_logs(
    State(state): State<QueryState>,
    params: Params,
) -> Result<Json<LogsResponse>, ApiError> {
    let page = state.store.find_logs(&log_query(&params)?);
    Ok(Json(LogsResponse {
        data: page.entries.iter().map(|e| log_json(e)).collect(),
        total: page.total,
    }))
}

fn log_query(params: &Params) -> Result<LogQuery, ApiError> {
    let start = params.unix_micros("start")?;
    let end = params.unix_micros("end")?;
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(ApiError::BadParam {
            param: "start",
            reason: "must not be after end".into(),
        });
    }
    Ok(LogQuery {
        trace_id: params.parse("trace_id", |v| v.parse::<TraceId>())?,
        service: params.text("service").map(str::to_owned),
        min_severity: params.parse("severity", parse_severity)?,
        text: params.text("q").map(str::to_owned),
        start_min_unix_nano: start,
        start_max_unix_nano: end,
        limit: params.limit("limit", DEFAULT_LIMIT)?,
    })
}

fn parse_severity(text: &str) -> Result<i32, &'static str> {
    let reason = "must be TRACE, DEBUG, INFO, WARN, ERROR, FATAL or a number from 1 to 24";
    match text.parse::<i32>() {
        Ok(n) if (1..=24).contains(&n) => Ok(n),
        Ok(_) => Err(reason),
        Err(_) => severity_from_name(text).ok_or(reason),
    }
}

fn log_json(entry: &LogEntry) -> LogJson {
    // A record whose severity is unknown keeps whatever text its sender used.
    let severity = match (entry.severity_number, entry.severity_text.is_empty()) {
        (0, false) => entry.severity_text.clone(),
        (n, _) => severity_name(n).to_owned(),
    };
    LogJson {
        timestamp: rfc3339_nanos(entry.time_unix_nano),
        time_unix_nano: entry.time_unix_nano,
        service: entry.service().to_owned(),
        instance: entry.resource.instance(),
        severity,
        severity_number: entry.severity_number,
        body: entry.body.clone(),
        trace_id: entry.trace_id.map(TraceId::to_hex),
        span_id: entry.span_id.map(|s| s.to_hex()),
        attributes: attributes_json(&entry.attributes),
    }
}

fn rfc3339_nanos(unix_nano: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_nano);
    humantime::format_rfc3339_nanos(time).to_string()
}

#[cfg(test)]
mod tests {

    use axum::body::Body;
    use http::{Request, StatusCode};
    use serde_json::json;
    use tower::ServiceExt as _;

    use super::*;
    use crate::{
        model::{AttrValue, Attribute},
        store::{Capacities, Store},
        test_support::{log, span_id, trace_id},
    };

    async fn get_json(store: Store, uri: &str) -> (StatusCode, JsonValue) {
        let state = crate::test_support::query_state(store);
        let request = Request::get(uri).body(Body::empty()).unwrap();
        let response = super::super::router(state).oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn store() -> Store {
        let store = Store::new(Capacities {
            spans: 10,
            log_records: 10,
            metric_series: 10,
            span_bytes: usize::MAX,
            log_bytes: usize::MAX,
        });
        let mut declined = log(1_700_000_000_123_456_789, "payment", 17, "card declined");
        declined.trace_id = Some(trace_id(3));
        declined.span_id = Some(span_id(4));
        declined
            .attributes
            .push(Attribute::new("attempt", AttrValue::Int(2)));
        store.insert_logs(vec![
            log(1_700_000_000_000_000_000, "payment", 9, "charging"),
            declined,
        ]);
        store
    }

    #[tokio::test]
    async fn renders_entries_newest_first() {
        let (status, body) = get_json(store(), "/api/logs?service=payment").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], 2);
        assert_eq!(
            body["data"][0],
            json!({
                "timestamp": "2023-11-14T22:13:20.123456789Z",
                "time_unix_nano": 1_700_000_000_123_456_789u64,
                "service": "payment",
                "instance": "payment-1",
                "severity": "ERROR",
                "severity_number": 17,
                "body": "card declined",
                "trace_id": "03".repeat(16),
                "span_id": "04".repeat(8),
                "attributes": {"attempt": 2},
            })
        );
        assert_eq!(body["data"][1]["trace_id"], JsonValue::Null);
    }

    #[tokio::test]
    async fn filters_by_severity_text_and_trace() {
        let (_, body) = get_json(store(), "/api/logs?severity=warn").await;
        assert_eq!(body["total"], 1);
        let (_, body) = get_json(store(), "/api/logs?q=charg").await;
        assert_eq!(body["data"][0]["body"], "charging");
        let uri = format!("/api/logs?trace_id={}", "03".repeat(16));
        let (_, body) = get_json(store(), &uri).await;
        assert_eq!(body["data"][0]["body"], "card declined");
    }

    #[tokio::test]
    async fn bad_parameters_name_themselves() {
        for (uri, msg) in [
            (
                "/api/logs?severity=LOUD",
                "severity: must be TRACE, DEBUG, INFO, WARN, ERROR, FATAL or a number from 1 to 24",
            ),
            ("/api/logs?trace_id=xyz", "trace_id: must be hexadecimal"),
            ("/api/logs?limit=-1", "limit: must be a positive integer"),
            (
                "/api/logs?start=soon",
                "start: must be microseconds since the Unix epoch",
            ),
        ] {
            let (status, body) = get_json(store(), uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(body["errors"][0]["msg"], msg, "{uri}");
        }
    }
}
