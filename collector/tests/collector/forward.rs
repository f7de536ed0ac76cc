//! Forwarding to downstream OTLP endpoints: a second real collector stands
//! in for Jaeger/Loki, reached over gRPC for traces and metrics and over
//! HTTP for logs; a dead downstream never slows ingest down.

use firedrill_collector::{CollectorConfig, Endpoint, Forwarding};
use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::{ExportLogsServiceRequest, logs_service_client::LogsServiceClient},
        metrics::v1::{ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient},
        trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
    },
    common::v1::{AnyValue, KeyValue, any_value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    },
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};

use crate::harness::{TestCollector, bind_any_port, spawn_collector, spawn_collector_with};

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("upstream".into())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn traces() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![0x42; 16],
                    span_id: vec![0x24; 8],
                    name: "forwarded".into(),
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_000_001_000_000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    trace_id: vec![0x42; 16],
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("forwarded log".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metrics() -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "forwarded.depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            value: Some(number_data_point::Value::AsInt(11)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn send_all(upstream: &TestCollector) {
    let endpoint = upstream.grpc_endpoint();
    TraceServiceClient::connect(endpoint.clone())
        .await
        .expect("connect")
        .export(traces())
        .await
        .expect("traces accepted");
    LogsServiceClient::connect(endpoint.clone())
        .await
        .expect("connect")
        .export(logs())
        .await
        .expect("logs accepted");
    MetricsServiceClient::connect(endpoint)
        .await
        .expect("connect")
        .export(metrics())
        .await
        .expect("metrics accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signal_reaches_the_downstream_over_grpc_and_http() {
    let downstream = spawn_collector().await;
    let forward = Forwarding {
        traces: Some(Endpoint::Grpc(downstream.grpc_endpoint())),
        metrics: Some(Endpoint::Grpc(downstream.grpc_endpoint())),
        logs: Some(Endpoint::Http(downstream.http_url("/v1/logs"))),
    };
    let upstream = spawn_collector_with(CollectorConfig {
        forward,
        ..CollectorConfig::default()
    })
    .await;
    send_all(&upstream).await;

    let trace_id = "42".repeat(16);
    let trace = downstream
        .wait_for(&format!("/api/traces/{trace_id}"), |b| {
            b["data"][0]["spans"][0]["operationName"] == "forwarded"
        })
        .await;
    assert_eq!(trace["data"][0]["spans"][0]["spanID"], "24".repeat(8));
    downstream
        .wait_for(&format!("/api/logs?trace_id={trace_id}"), |b| {
            b["data"][0]["body"] == "forwarded log"
        })
        .await;
    crate::harness::eventually("the forwarded gauge", || async {
        let series = r#"forwarded_depth{instance="",job="upstream"}"#;
        (downstream.self_metric(series).await == 11.0).then_some(())
    })
    .await;
    let sent = |signal: &str| {
        format!(r#"firedrill_collector_exported_items_total{{signal="{signal}",outcome="sent"}}"#)
    };
    for signal in ["spans", "log_records", "metric_points"] {
        crate::harness::eventually("the sent counter", || async {
            (upstream.self_metric(&sent(signal)).await == 1.0).then_some(())
        })
        .await;
    }
    upstream.stop().await.expect("clean shutdown");
    downstream.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_downstream_neither_blocks_ingest_nor_shutdown() {
    // A port that was free a moment ago: connections are refused.
    let dead = bind_any_port().await.local_addr().expect("address");
    let forward = Forwarding {
        traces: Some(Endpoint::Grpc(format!("http://{dead}"))),
        metrics: None,
        logs: Some(Endpoint::Http(format!("http://{dead}/v1/logs"))),
    };
    let upstream = spawn_collector_with(CollectorConfig {
        forward,
        shutdown_grace: std::time::Duration::from_secs(1),
        ..CollectorConfig::default()
    })
    .await;
    let started = std::time::Instant::now();
    send_all(&upstream).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    upstream
        .wait_for(&format!("/api/traces/{}", "42".repeat(16)), |b| {
            b["data"][0]["spans"][0]["operationName"] == "forwarded"
        })
        .await;
    let (status, _) = upstream.get_json("/api/services").await;
    assert_eq!(status, 200);
    // Shutdown gives the exporters their grace, then drops and counts.
    let stopping = std::time::Instant::now();
    upstream.stop().await.expect("clean shutdown");
    assert!(stopping.elapsed() < std::time::Duration::from_secs(10));
}
