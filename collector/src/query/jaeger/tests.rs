use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{Value as Json, json};
use tower::ServiceExt as _;

use super::*;
use crate::{
    model::{AttrValue, Attribute, SpanEvent, SpanLink, SpanRecord, StatusCode as SpanStatus},
    store::{Capacities, Store},
    test_support::{child, resource, span, span_id, trace_id},
};

fn to_json<T: serde::Serialize>(value: &T) -> Json {
    serde_json::to_value(value).unwrap()
}

fn tag<'a>(span: &'a Json, key: &str) -> Option<&'a Json> {
    span["tags"].as_array()?.iter().find(|t| t["key"] == key)
}

fn checkout_trace() -> Vec<SpanRecord> {
    let mut root = span(1, 1, "gateway", "GET /checkout");
    root.attributes.push(Attribute::new(
        "http.response.status_code",
        AttrValue::Int(502),
    ));
    root.status = SpanStatus::Error;
    root.status_message = "upstream failed".into();
    let mut call = child(&root, 2, "checkout", "POST /checkout");
    call.events.push(SpanEvent {
        time_unix_nano: 7_000,
        name: "retry".into(),
        attributes: vec![Attribute::new("attempt", AttrValue::Int(2))],
    });
    call.links.push(SpanLink {
        trace_id: trace_id(9),
        span_id: span_id(9),
        attributes: Vec::new(),
    });
    vec![root, call]
}

#[test]
fn span_json_has_jaeger_shape() {
    let spans: Vec<_> = checkout_trace().into_iter().map(Arc::new).collect();
    let trace = to_json(&model::trace(trace_id(1), &spans));
    assert_eq!(trace["traceID"], "01".repeat(16));
    let root = &trace["spans"][0];
    assert_eq!(root["spanID"], "01".repeat(8));
    assert_eq!(root["operationName"], "GET /checkout");
    assert_eq!(root["references"], json!([]));
    assert_eq!(root["startTime"], 1_000, "microseconds");
    assert_eq!(root["duration"], 1_000);
    assert_eq!(
        tag(root, "http.response.status_code").unwrap()["type"],
        "int64"
    );
    assert_eq!(
        tag(root, "http.response.status_code").unwrap()["value"],
        502
    );
    assert_eq!(tag(root, "span.kind").unwrap()["value"], "server");
    assert_eq!(tag(root, "otel.status_code").unwrap()["value"], "ERROR");
    assert_eq!(
        tag(root, "error").unwrap(),
        &json!({"key": "error", "type": "bool", "value": true})
    );
    assert_eq!(
        tag(root, "otel.status_description").unwrap()["value"],
        "upstream failed"
    );
}

#[test]
fn references_events_and_processes() {
    let spans: Vec<_> = checkout_trace().into_iter().map(Arc::new).collect();
    let trace = to_json(&model::trace(trace_id(1), &spans));
    let call = &trace["spans"][1];
    assert_eq!(
        call["references"],
        json!([
            {"refType": "CHILD_OF", "traceID": "01".repeat(16), "spanID": "01".repeat(8)},
            {"refType": "FOLLOWS_FROM", "traceID": "09".repeat(16), "spanID": "09".repeat(8)},
        ])
    );
    assert_eq!(
        call["logs"],
        json!([{"timestamp": 7, "fields": [
            {"key": "event", "type": "string", "value": "retry"},
            {"key": "attempt", "type": "int64", "value": 2},
        ]}])
    );
    assert_eq!(trace["spans"][0]["processID"], "p1");
    assert_eq!(call["processID"], "p2");
    assert_eq!(
        trace["processes"]["p2"],
        json!({
            "serviceName": "checkout",
            "tags": [{"key": "service.instance.id", "type": "string", "value": "checkout-1"}],
        })
    );
}

#[test]
fn equal_resources_share_one_process() {
    let first = span(1, 1, "cart", "a");
    let mut second = span(1, 2, "cart", "b");
    second.resource = resource("cart");
    assert!(!Arc::ptr_eq(&first.resource, &second.resource));
    let trace = to_json(&model::trace(
        trace_id(1),
        &[Arc::new(first), Arc::new(second)],
    ));
    assert_eq!(trace["processes"].as_object().unwrap().len(), 1);
}

#[test]
fn tag_types_follow_jaeger() {
    let kv = |value| to_json(&model::key_value(&Attribute::new("k", value)));
    assert_eq!(kv(AttrValue::Double(0.5))["type"], "float64");
    assert_eq!(kv(AttrValue::Bytes(vec![1, 2]))["type"], "binary");
    assert_eq!(kv(AttrValue::Bytes(vec![1, 2]))["value"], "AQI=");
    let array = kv(AttrValue::Array(vec![AttrValue::Int(1)]));
    assert_eq!(
        (array["type"].clone(), array["value"].clone()),
        (json!("string"), json!("[1]"))
    );
    assert_eq!(kv(AttrValue::Double(f64::INFINITY))["value"], "inf");
}

// === handlers ===

fn app() -> Router {
    let store = Store::new(Capacities {
        spans: 100,
        log_records: 100,
        metric_series: 100,
        span_bytes: usize::MAX,
        log_bytes: usize::MAX,
    });
    store.insert_spans(checkout_trace());
    let state = crate::test_support::query_state(store);
    super::super::router(state)
}

async fn get_json(uri: &str) -> (StatusCode, Json) {
    let response = app()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn services_use_the_jaeger_envelope() {
    let (status, body) = get_json("/api/services").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "data": ["checkout", "gateway"], "total": 2, "limit": 0, "offset": 0, "errors": null
        })
    );
}

#[tokio::test]
async fn operations_in_both_forms() {
    let (_, body) = get_json("/api/services/gateway/operations").await;
    assert_eq!(body["data"], json!(["GET /checkout"]));
    let (_, body) = get_json("/api/operations?service=checkout&spanKind=server").await;
    assert_eq!(
        body["data"],
        json!([{"name": "POST /checkout", "spanKind": "server"}])
    );
    let (_, body) = get_json("/api/operations?service=checkout&spanKind=client").await;
    assert_eq!(body["data"], json!([]));
    let (status, body) = get_json("/api/operations?spanKind=client").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["msg"], "service: is required");
}

#[tokio::test]
async fn trace_by_id_404_and_400() {
    let (status, body) = get_json(&format!("/api/traces/{}", "01".repeat(16))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["spans"].as_array().unwrap().len(), 2);
    let (status, body) = get_json(&format!("/api/traces/{}", "ab".repeat(16))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["errors"],
        json!([{"code": 404, "msg": "trace not found"}])
    );
    assert_eq!(body["data"], Json::Null);
    let (status, body) = get_json("/api/traces/not-hex").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["msg"], "traceID: must be hexadecimal");
}

#[tokio::test]
async fn search_filters_and_bad_parameters() {
    let (_, body) =
        get_json("/api/traces?service=gateway&tags=%7B%22error%22%3A%22true%22%7D&minDuration=1ms")
            .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let (_, body) = get_json("/api/traces?service=gateway&minDuration=2ms").await;
    assert_eq!(body["data"], json!([]));
    let (_, body) = get_json("/api/traces?service=checkout&operation=GET%20%2Fcheckout").await;
    assert_eq!(body["data"], json!([]));
    for (uri, msg) in [
        ("/api/traces?limit=0", "limit: must be a positive integer"),
        (
            "/api/traces?minDuration=fast",
            "minDuration: must be a duration such as 10ms, 1.5s or 2m",
        ),
        (
            "/api/traces?start=20&end=10",
            "start: must not be after end",
        ),
        (
            "/api/traces?tags=error",
            r#"tags: must be a JSON object of strings, e.g. {"error":"true"}"#,
        ),
    ] {
        let (status, body) = get_json(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["errors"][0]["msg"], msg, "{uri}");
    }
}

#[tokio::test]
async fn dependencies_cover_the_window() {
    let (_, body) = get_json("/api/dependencies?endTs=1000&lookback=1000").await;
    assert_eq!(
        body["data"],
        json!([{"parent": "gateway", "child": "checkout", "callCount": 1}])
    );
    let (_, body) = get_json("/api/dependencies?endTs=1&lookback=1").await;
    assert_eq!(body["data"], json!([]));
    let (status, _) = get_json("/api/dependencies?lookback=-5").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_paths_are_404_in_jaeger_shape() {
    let (status, body) = get_json("/api/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errors"][0]["code"], 404);
}
