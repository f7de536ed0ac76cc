use std::io::Write as _;

use axum::body::Body;
use http::Request;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use tower::ServiceExt as _;

use super::*;
use crate::{pipeline::Pipeline, store::Store, test_support::test_pipeline};

const LIMIT: usize = 4096;

/// The router, and the pipeline to drain before looking into the store.
fn app() -> (Router, Pipeline, Arc<Store>) {
    let (ingest, pipeline, store) = test_pipeline(1 << 20);
    (router(Arc::new(ingest), LIMIT), pipeline, store)
}

const GRACE: Duration = Duration::from_secs(5);

fn traces_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn valid_span() -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "op".into(),
        ..Default::default()
    }
}

fn post(content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut request = Request::post("/v1/traces").header("content-type", content_type);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request.body(Body::from(body)).unwrap()
}

async fn send(app: Router, request: Request<Body>) -> (StatusCode, String, Bytes) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, content_type, body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn protobuf_export_is_stored_and_answered_in_protobuf() {
    let (app, pipeline, store) = app();
    let body = traces_request(vec![valid_span()]).encode_to_vec();
    let (status, content_type, body) = send(app, post("application/x-protobuf", None, body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/x-protobuf");
    let response = ExportTraceServiceResponse::decode(body).unwrap();
    assert_eq!(response.partial_success, None);
    assert!(pipeline.drain(GRACE).await);
    assert_eq!(store.sizes().spans, 1);
}

#[tokio::test]
async fn json_export_reports_partial_success_in_json() {
    let (app, pipeline, store) = app();
    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"ok"},
        {"traceId":"0102","spanId":"0102030405060708","name":"short trace id"}]}]}]}"#;
    let (status, content_type, body) = send(
        app,
        post("application/json; charset=utf-8", None, json.into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let response: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(response["partialSuccess"]["rejectedSpans"], 1, "{response}");
    assert!(pipeline.drain(GRACE).await);
    assert_eq!(store.sizes().spans, 1);
}

#[tokio::test]
async fn gzip_body_is_inflated() {
    let (app, pipeline, store) = app();
    let body = gzip(&traces_request(vec![valid_span()]).encode_to_vec());
    let (status, ..) = send(app, post("application/x-protobuf", Some("gzip"), body)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(pipeline.drain(GRACE).await);
    assert_eq!(store.sizes().spans, 1);
}

#[tokio::test]
async fn malformed_protobuf_is_a_bad_request_with_a_status_body() {
    let (app, _pipeline, _) = app();
    let (status, content_type, body) = send(
        app,
        post("application/x-protobuf", None, vec![0xff, 0xff, 0xff]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type, "application/x-protobuf");
    let rpc = RpcStatus::decode(body).unwrap();
    assert_eq!(rpc.code, tonic::Code::InvalidArgument as i32);
    assert!(rpc.message.contains("protobuf"), "{}", rpc.message);
}

#[tokio::test]
async fn unknown_content_type_and_encoding_are_unsupported_media() {
    let (app, _pipeline, _) = app();
    let (status, _, body) = send(app.clone(), post("text/plain", None, b"hi".to_vec())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(String::from_utf8_lossy(&body).contains("text/plain"));
    let (status, ..) = send(app, post("application/json", Some("br"), b"{}".to_vec())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_and_after_inflation() {
    let (app, pipeline, store) = app();
    let (status, ..) = send(
        app.clone(),
        post("application/json", None, vec![b' '; LIMIT + 1]),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Compresses to a few dozen bytes, inflates past the limit.
    let bomb = gzip(&vec![b' '; LIMIT * 4]);
    assert!(bomb.len() < LIMIT);
    let (status, _, body) = send(app, post("application/json", Some("gzip"), bomb)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let rpc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(rpc["code"], tonic::Code::ResourceExhausted as i32);
    assert!(pipeline.drain(GRACE).await);
    assert_eq!(store.sizes().spans, 0);
}

#[tokio::test]
async fn corrupt_gzip_is_a_bad_request() {
    let (app, _pipeline, _) = app();
    let (status, ..) = send(
        app,
        post("application/x-protobuf", Some("gzip"), b"not gzip".to_vec()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
