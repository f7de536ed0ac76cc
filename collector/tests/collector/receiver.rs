//! Hand-made OTLP requests: what the receivers refuse, and how.

use std::io::Write as _;

use firedrill_collector::CollectorConfig;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_client::TraceServiceClient,
    },
    common::v1::{AnyValue, KeyValue, any_value},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use prost::Message as _;
use serde_json::{Value, json};

use crate::harness::{spawn_collector, spawn_collector_with};

const PROTOBUF: &str = "application/x-protobuf";

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn span(trace_byte: u8, trace_len: usize, name: &str) -> Span {
    Span {
        trace_id: vec![trace_byte; trace_len],
        span_id: vec![trace_byte; 8],
        name: name.into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_010_000_000,
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "raw-client")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

fn requests_series(result: &str) -> String {
    format!(
        r#"firedrill_collector_export_requests_total{{transport="http",signal="spans",result="{result}"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_a_400_and_is_counted() {
    let collector = spawn_collector().await;
    let response = collector
        .post_otlp("/v1/traces", PROTOBUF, None, vec![0x0a, 0xff, 0xff, 0xff])
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], PROTOBUF);
    assert_eq!(
        collector.self_metric(&requests_series("bad_request")).await,
        1.0
    );
    let (_, services) = collector.get_json("/api/services").await;
    assert_eq!(services["data"], json!([]));
    collector.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_400_answered_in_json() {
    let collector = spawn_collector().await;
    for body in [
        &b"{\"resourceSpans\": [{"[..],
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"not hex"}]}]}]}"#,
    ] {
        let response = collector
            .post_otlp("/v1/traces", "application/json", None, body.to_vec())
            .await;
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["content-type"], "application/json");
        let status: Value = response.json().await.expect("JSON status");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .starts_with("cannot decode the JSON request body"),
            "{status}"
        );
    }
    collector.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_content_type_is_a_415() {
    let collector = spawn_collector().await;
    let body = request(vec![span(1, 16, "op")]).encode_to_vec();
    let response = collector
        .post_otlp("/v1/traces", "text/plain", None, body)
        .await;
    assert_eq!(response.status(), 415);
    let status: Value = response.json().await.expect("JSON status");
    assert!(
        status["message"].as_str().unwrap().contains("text/plain"),
        "{status}"
    );
    collector.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_before_and_after_decompression() {
    let collector = spawn_collector_with(CollectorConfig {
        max_body_bytes: 2048,
        ..CollectorConfig::default()
    })
    .await;
    let mut big = span(1, 16, "big");
    big.attributes.push(string_kv("padding", &"x".repeat(4096)));
    let body = request(vec![big]).encode_to_vec();

    let plain = collector
        .post_otlp("/v1/traces", PROTOBUF, None, body.clone())
        .await;
    assert_eq!(plain.status(), 413);
    let compressed = gzip(&body);
    assert!(
        compressed.len() < 2048,
        "the wire size alone is within the limit"
    );
    let inflated = collector
        .post_otlp("/v1/traces", PROTOBUF, Some("gzip"), compressed)
        .await;
    assert_eq!(inflated.status(), 413);

    assert_eq!(
        collector
            .self_metric(&requests_series("payload_too_large"))
            .await,
        2.0
    );
    let (_, services) = collector.get_json("/api/services").await;
    assert_eq!(services["data"], json!([]));
    collector.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_json_export_is_stored_and_answered_in_json() {
    let collector = spawn_collector().await;
    let trace_id = "5b8efff798038103d269b633813fc60c";
    let json = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-client"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": "eee19b7ec3c1b174", "name": "GET /json",
            "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000005000000",
            "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}}]
        }]}]
    }]});
    let body = gzip(json.to_string().as_bytes());
    let response = collector
        .post_otlp("/v1/traces", "application/json", Some("gzip"), body)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");

    let trace = collector
        .wait_for(&format!("/api/traces/{trace_id}"), |b| {
            b["data"][0]["spans"][0].is_object()
        })
        .await;
    let span = &trace["data"][0]["spans"][0];
    assert_eq!(span["spanID"], "eee19b7ec3c1b174");
    assert_eq!(span["duration"], 5_000);
    assert_eq!(
        span["tags"][0],
        json!({"key": "http.response.status_code", "type": "int64", "value": 200})
    );
    collector.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spans_get_partial_success_over_both_transports() {
    let collector = spawn_collector().await;
    let mixed = |n: u8| request(vec![span(n, 16, "valid"), span(n, 8, "short trace id")]);

    let response = collector
        .post_otlp("/v1/traces", PROTOBUF, None, mixed(1).encode_to_vec())
        .await;
    assert_eq!(response.status(), 200);
    let decoded = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = decoded.partial_success.expect("partial success over HTTP");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("trace_id"),
        "{}",
        partial.error_message
    );

    let mut client = TraceServiceClient::connect(collector.grpc_endpoint())
        .await
        .unwrap();
    let grpc = client
        .export(mixed(2))
        .await
        .expect("gRPC export")
        .into_inner();
    assert_eq!(
        grpc.partial_success
            .expect("partial success over gRPC")
            .rejected_spans,
        1
    );

    let outcome =
        |o: &str| format!(r#"firedrill_collector_items_total{{signal="spans",outcome="{o}"}}"#);
    assert_eq!(collector.self_metric(&outcome("accepted")).await, 2.0);
    assert_eq!(collector.self_metric(&outcome("refused")).await, 2.0);
    // Accepted means queued; the store's worker inserts asynchronously.
    let found = collector
        .wait_for("/api/traces?service=raw-client", |b| {
            b["data"].as_array().is_some_and(|d| d.len() >= 2)
        })
        .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 2);
    collector.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_span_store_evicts_the_oldest_trace() {
    let collector = spawn_collector_with(CollectorConfig {
        max_spans: 2,
        ..CollectorConfig::default()
    })
    .await;
    for n in 1..=3 {
        let response = collector
            .post_otlp(
                "/v1/traces",
                PROTOBUF,
                None,
                request(vec![span(n, 16, "op")]).encode_to_vec(),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    // 200 means queued; the store's worker inserts asynchronously. Wait
    // until it has taken all three (the third insert evicts the first).
    let evicted = r#"firedrill_collector_items_total{signal="spans",outcome="evicted"}"#;
    crate::harness::eventually("the third span to be stored", || async {
        (collector.self_metric(evicted).await > 0.0).then_some(())
    })
    .await;
    let (status, body) = collector
        .get_json(&format!("/api/traces/{}", "01".repeat(16)))
        .await;
    assert_eq!(
        (status, &body["errors"][0]["msg"]),
        (404, &json!("trace not found"))
    );
    let (status, _) = collector
        .get_json(&format!("/api/traces/{}", "03".repeat(16)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(collector.self_metric(evicted).await, 1.0);
    assert_eq!(
        collector
            .self_metric(r#"firedrill_collector_store_items{store="spans"}"#)
            .await,
        2.0
    );
    collector.stop().await.expect("clean shutdown");
}
