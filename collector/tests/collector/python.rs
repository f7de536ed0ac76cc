//! Interop with a client no one here wrote: the official OpenTelemetry
//! Python SDK exports a trace, a log record and metrics over OTLP/gRPC and
//! OTLP/HTTP (protobuf, gzip; the Python SDK has no JSON encoding), and the
//! same data must come back through the query API and `/metrics`.
//!
//! `scripts/test` installs the SDK (`scripts/deps/python-otel`) and sets
//! `FIREDRILL_PYTHON`. Set `FIREDRILL_SKIP_PYTHON_INTEROP=1` to skip these
//! tests deliberately; without either, they fail and say what to run.

use std::{path::PathBuf, time::Duration};

use serde_json::Value;

use crate::harness::{TestCollector, spawn_collector};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/export_all.py");

/// The venv's interpreter, `None` when skipping was asked for.
fn python() -> Option<PathBuf> {
    if std::env::var_os("FIREDRILL_SKIP_PYTHON_INTEROP").is_some() {
        eprintln!("FIREDRILL_SKIP_PYTHON_INTEROP is set: skipping the Python SDK interop test");
        return None;
    }
    let python = std::env::var_os("FIREDRILL_PYTHON").unwrap_or_else(|| {
        panic!(
            "FIREDRILL_PYTHON is not set. Run scripts/test, or scripts/deps/python-otel and \
             export the FIREDRILL_PYTHON=... line it prints (or set \
             FIREDRILL_SKIP_PYTHON_INTEROP=1 to skip on purpose)"
        )
    });
    Some(PathBuf::from(python))
}

/// Runs the Python exporter script and returns what it says it sent.
async fn run_python_sdk(python: PathBuf, transport: &str, endpoint: &str, service: &str) -> Value {
    let run = tokio::process::Command::new(&python)
        .args([SCRIPT, transport, endpoint, service])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the Python SDK finishes within a minute")
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "the Python SDK script failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the script's output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn tag<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["key"] == key))
        .unwrap_or_else(|| panic!("span has no tag {key}: {span}"))
}

async fn check_round_trip(collector: &TestCollector, sent: &Value, service: &str) {
    let trace_id = sent["trace_id"].as_str().unwrap();
    let ns = |key: &str| sent[key].as_u64().unwrap();

    // Trace: ids, names, kinds, attributes with their types, timestamps.
    let body = collector
        .wait_for(&format!("/api/traces/{trace_id}"), |b| {
            b["data"][0]["spans"]
                .as_array()
                .is_some_and(|s| s.len() == 2)
        })
        .await;
    let trace = &body["data"][0];
    assert_eq!(trace["traceID"], trace_id);
    let spans = trace["spans"].as_array().unwrap();
    let root = spans
        .iter()
        .find(|s| s["spanID"] == sent["root_span_id"])
        .unwrap();
    let child = spans
        .iter()
        .find(|s| s["spanID"] == sent["child_span_id"])
        .unwrap();
    assert_eq!(root["operationName"], "GET /py");
    assert_eq!(root["startTime"], ns("root_start_ns") / 1_000);
    assert_eq!(
        root["duration"],
        (ns("root_end_ns") - ns("root_start_ns")) / 1_000
    );
    assert_eq!(tag(root, "http.request.method")["value"], "GET");
    assert_eq!(tag(root, "http.response.status_code")["type"], "int64");
    assert_eq!(tag(root, "http.response.status_code")["value"], 200);
    assert_eq!(tag(root, "py.flag")["value"], true);
    assert_eq!(tag(root, "py.ratio")["value"], 0.5);
    assert_eq!(tag(root, "span.kind")["value"], "server");
    assert_eq!(tag(root, "otel.scope.name")["value"], "firedrill.interop");
    assert_eq!(child["operationName"], "SELECT orders");
    assert_eq!(child["startTime"], ns("child_start_ns") / 1_000);
    assert_eq!(child["references"][0]["refType"], "CHILD_OF");
    assert_eq!(child["references"][0]["spanID"], sent["root_span_id"]);
    assert_eq!(tag(child, "db.system.name")["value"], "postgresql");
    assert_eq!(tag(child, "otel.status_code")["value"], "ERROR");
    assert_eq!(tag(child, "otel.status_description")["value"], "deadlock");
    assert_eq!(child["logs"][0]["fields"][0]["value"], "retrying");
    assert_eq!(child["logs"][0]["fields"][1]["key"], "attempt");
    let process = &trace["processes"][root["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], service);
    let process_tags = process["tags"].as_array().unwrap();
    assert!(
        process_tags
            .iter()
            .any(|t| t["key"] == "telemetry.sdk.language" && t["value"] == "python"),
        "{process}"
    );

    // Log record: correlated to the child span, severity, body, attributes.
    let logs = collector
        .wait_for(&format!("/api/logs?trace_id={trace_id}"), |b| {
            b["total"] == 1
        })
        .await;
    let log = &logs["data"][0];
    assert_eq!(log["service"], service);
    assert_eq!(log["instance"], format!("{service}-1"));
    assert_eq!(log["severity"], "WARN");
    assert_eq!(log["severity_number"], 13);
    assert_eq!(log["body"], "python says the query deadlocked");
    assert_eq!(log["span_id"], sent["child_span_id"]);
    assert_eq!(log["attributes"]["db.attempt"], 2);

    // Metrics: re-exposed under the Prometheus translation, and derived.
    let identity = format!(r#"instance="{service}-1",job="{service}""#);
    let expected = [
        (format!(r#"py_orders_total{{{identity},route="/py"}}"#), 7.0),
        (
            format!(r#"py_latency_seconds_count{{{identity},route="/py"}}"#),
            1.0,
        ),
        (
            format!(r#"py_latency_seconds_sum{{{identity},route="/py"}}"#),
            0.25,
        ),
        // The Python SDK's default bounds are 0, 5, 10, 25, ...
        (
            format!(r#"py_latency_seconds_bucket{{{identity},route="/py",le="0"}}"#),
            0.0,
        ),
        (
            format!(r#"py_latency_seconds_bucket{{{identity},route="/py",le="5"}}"#),
            1.0,
        ),
        (format!(r#"py_queue_depth{{{identity}}}"#), 3.0),
        (format!(r#"py_pool_usage_ratio{{{identity}}}"#), 0.75),
        (
            format!(
                r#"traces_span_metrics_calls_total{{service_name="{service}",span_name="GET /py",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET"}}"#
            ),
            1.0,
        ),
        (
            format!(
                r#"traces_span_metrics_calls_total{{service_name="{service}",span_name="SELECT orders",span_kind="SPAN_KIND_CLIENT",status_code="STATUS_CODE_ERROR"}}"#
            ),
            1.0,
        ),
        (
            format!(
                r#"traces_service_graph_request_total{{client="user",server="{service}",connection_type="virtual_node"}}"#
            ),
            1.0,
        ),
    ];
    let text = crate::harness::eventually("the Python SDK's metrics", || async {
        let (_, _, text) = collector.get_text("/metrics").await;
        text.contains("py_pool_usage_ratio").then_some(text)
    })
    .await;
    for (series, value) in expected {
        let line = text
            .lines()
            .find(|l| l.starts_with(series.as_str()))
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"));
        let got: f64 = line[series.len()..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unparsable sample: {line}"));
        assert_eq!(got, value, "{line}");
    }
    let target_info = text
        .lines()
        .find(|l| l.starts_with("target_info{") && l.contains(&identity))
        .unwrap_or_else(|| panic!("no target_info for {service}:\n{text}"));
    assert!(
        target_info.contains(r#"telemetry_sdk_language="python""#),
        "{target_info}"
    );
    assert!(
        target_info.contains(r#"service_version="3.1.4""#),
        "{target_info}"
    );
    // The span-metrics counter carries the Python trace as its exemplar.
    assert!(
        text.contains(&format!(r#"# {{trace_id="{trace_id}"}}"#)),
        "no exemplar for {trace_id}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc_round_trips_traces_logs_and_metrics() {
    let Some(python) = python() else { return };
    let collector = spawn_collector().await;
    let sent = run_python_sdk(python, "grpc", &collector.grpc_endpoint(), "py-grpc").await;
    check_round_trip(&collector, &sent, "py-grpc").await;
    collector.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http_gzip_round_trips_traces_logs_and_metrics() {
    let Some(python) = python() else { return };
    let collector = spawn_collector().await;
    let sent = run_python_sdk(python, "http", &collector.http_url(""), "py-http").await;
    check_round_trip(&collector, &sent, "py-http").await;
    collector.stop().await.expect("clean shutdown");
}
