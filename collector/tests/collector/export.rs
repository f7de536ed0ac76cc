//! Real OTel SDK exporters → collector → query API.

use opentelemetry::{
    Context, KeyValue,
    logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity},
    metrics::MeterProvider as _,
    trace::{
        Link, Span as _, SpanKind, Status, TraceContextExt as _, TraceFlags, Tracer as _,
        TracerProvider as _,
    },
};
use opentelemetry_otlp::{
    Compression, LogExporter, MetricExporter, SpanExporter, WithExportConfig as _,
    WithHttpConfig as _, WithTonicConfig as _,
};
use opentelemetry_sdk::{
    Resource,
    logs::SdkLoggerProvider,
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::SdkTracerProvider,
};
use serde_json::{Value, json};

use crate::harness::{TestCollector, off_runtime, spawn_collector};

// === exporters ===

/// Where and how an SDK exporter sends.
#[derive(Debug, Clone)]
enum Target {
    /// `http://host:port` of the gRPC receiver.
    Grpc { endpoint: String, gzip: bool },
    /// `http://host:port` of the HTTP receiver; the signal path is appended.
    Http { base: String, gzip: bool },
}

impl Target {
    fn grpc(collector: &TestCollector, gzip: bool) -> Self {
        Self::Grpc {
            endpoint: collector.grpc_endpoint(),
            gzip,
        }
    }

    fn http(collector: &TestCollector, gzip: bool) -> Self {
        Self::Http {
            base: collector.http_url(""),
            gzip,
        }
    }
}

fn compression(gzip: bool) -> Option<Compression> {
    gzip.then_some(Compression::Gzip)
}

fn span_exporter(target: &Target) -> SpanExporter {
    let built = match target {
        Target::Grpc { endpoint, gzip } => {
            let builder = SpanExporter::builder().with_tonic().with_endpoint(endpoint);
            match compression(*gzip) {
                Some(c) => builder.with_compression(c).build(),
                None => builder.build(),
            }
        }
        Target::Http { base, gzip } => {
            let builder = SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{base}/v1/traces"));
            match compression(*gzip) {
                Some(c) => builder.with_compression(c).build(),
                None => builder.build(),
            }
        }
    };
    built.expect("span exporter")
}

fn log_exporter(target: &Target) -> LogExporter {
    let built = match target {
        Target::Grpc { endpoint, gzip } => {
            let builder = LogExporter::builder().with_tonic().with_endpoint(endpoint);
            match compression(*gzip) {
                Some(c) => builder.with_compression(c).build(),
                None => builder.build(),
            }
        }
        Target::Http { base, gzip } => {
            let builder = LogExporter::builder()
                .with_http()
                .with_endpoint(format!("{base}/v1/logs"));
            match compression(*gzip) {
                Some(c) => builder.with_compression(c).build(),
                None => builder.build(),
            }
        }
    };
    built.expect("log exporter")
}

fn resource(service: &str, instance: &str) -> Resource {
    Resource::builder_empty()
        .with_service_name(service.to_owned())
        .with_attributes([
            KeyValue::new("service.instance.id", instance.to_owned()),
            KeyValue::new("service.version", "1.4.2"),
            KeyValue::new("deployment.environment", "lab"),
        ])
        .build()
}

fn tracer_provider(target: &Target, service: &str, instance: &str) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(resource(service, instance))
        .with_simple_exporter(span_exporter(target))
        .build()
}

// === telemetry ===

/// Ids of what `emit_checkout_trace` sent, as lowercase hex.
#[derive(Debug)]
struct Emitted {
    trace_id: String,
    root_span_id: String,
    child_span_id: String,
    linked_trace_id: String,
    linked_span_id: String,
}

/// gateway `GET /checkout` (server) → checkout `POST /checkout` (server,
/// failed, one event, linked to an unrelated producer span). Two providers,
/// so two services and two processes, like two real microservices.
fn emit_checkout_trace(target: Target) -> Emitted {
    let gateway = tracer_provider(&target, "gateway", "gateway-1");
    let checkout = tracer_provider(&target, "checkout", "checkout-7");
    let gateway_tracer = gateway.tracer("firedrill-test");
    let checkout_tracer = checkout.tracer("firedrill-test");

    let mut producer = gateway_tracer
        .span_builder("publish orders")
        .with_kind(SpanKind::Producer)
        .start(&gateway_tracer);
    let linked = producer.span_context().clone();
    producer.end();

    let root = gateway_tracer
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/checkout"),
            KeyValue::new("http.response.status_code", 502),
        ])
        .start(&gateway_tracer);
    let root_cx = Context::current_with_span(root);
    let mut child = checkout_tracer
        .span_builder("POST /checkout")
        .with_kind(SpanKind::Server)
        .with_links(vec![Link::with_context(linked.clone())])
        .start_with_context(&checkout_tracer, &root_cx);
    child.add_event("payment retried", vec![KeyValue::new("attempt", 2)]);
    child.set_status(Status::error("payment provider timed out"));
    let emitted = Emitted {
        trace_id: child.span_context().trace_id().to_string(),
        root_span_id: root_cx.span().span_context().span_id().to_string(),
        child_span_id: child.span_context().span_id().to_string(),
        linked_trace_id: linked.trace_id().to_string(),
        linked_span_id: linked.span_id().to_string(),
    };
    child.end();
    root_cx.span().end();
    gateway.shutdown().expect("gateway provider shutdown");
    checkout.shutdown().expect("checkout provider shutdown");
    emitted
}

/// A payment span, and a WARN log record carrying its trace context.
fn emit_span_and_log(traces_target: Target, logs_target: Target) -> (String, String) {
    let traces = tracer_provider(&traces_target, "payment", "payment-3");
    let tracer = traces.tracer("firedrill-test");
    let mut span = tracer
        .span_builder("charge card")
        .with_kind(SpanKind::Client)
        .start(&tracer);
    let context = span.span_context().clone();

    let logs = SdkLoggerProvider::builder()
        .with_resource(resource("payment", "payment-3"))
        .with_simple_exporter(log_exporter(&logs_target))
        .build();
    let logger = logs.logger("firedrill-test");
    let mut record = logger.create_log_record();
    record.set_body(AnyValue::from("card declined by provider".to_owned()));
    record.set_severity_number(Severity::Warn);
    record.set_severity_text("WARN");
    record.set_timestamp(std::time::SystemTime::now());
    record.add_attribute("payment.provider", "acme");
    record.set_trace_context(
        context.trace_id(),
        context.span_id(),
        Some(TraceFlags::SAMPLED),
    );
    logger.emit(record);

    span.end();
    traces.shutdown().expect("trace provider shutdown");
    logs.shutdown().expect("log provider shutdown");
    (
        context.trace_id().to_string(),
        context.span_id().to_string(),
    )
}

// === helpers ===

fn span_named<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["operationName"] == name))
        .unwrap_or_else(|| panic!("no span {name:?} in {trace}"))
}

fn tag<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["key"] == key))
        .map_or(&Value::Null, |t| &t["value"])
}

async fn wait_for_trace(collector: &TestCollector, trace_id: &str, spans: usize) -> Value {
    let path = format!("/api/traces/{trace_id}");
    let body = collector
        .wait_for(&path, |b| {
            b["data"][0]["spans"]
                .as_array()
                .is_some_and(|s| s.len() == spans)
        })
        .await;
    body["data"][0].clone()
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_gzip_trace_keeps_ids_references_services_and_attributes() {
    let collector = spawn_collector().await;
    let target = Target::grpc(&collector, true);
    let sent = off_runtime(move || emit_checkout_trace(target)).await;

    let trace = wait_for_trace(&collector, &sent.trace_id, 2).await;
    assert_eq!(trace["traceID"], sent.trace_id);
    let root = span_named(&trace, "GET /checkout");
    let child = span_named(&trace, "POST /checkout");
    assert_eq!(root["spanID"], sent.root_span_id);
    assert_eq!(child["spanID"], sent.child_span_id);
    assert_eq!(root["references"], json!([]));
    assert_eq!(
        child["references"],
        json!([
            {"refType": "CHILD_OF", "traceID": sent.trace_id, "spanID": sent.root_span_id},
            {"refType": "FOLLOWS_FROM", "traceID": sent.linked_trace_id, "spanID": sent.linked_span_id},
        ])
    );

    assert_eq!(tag(root, "http.route"), "/checkout");
    assert_eq!(tag(root, "http.response.status_code"), 502);
    assert_eq!(tag(root, "span.kind"), "server");
    assert_eq!(tag(child, "otel.status_code"), "ERROR");
    assert_eq!(tag(child, "error"), true);
    assert_eq!(
        tag(child, "otel.status_description"),
        "payment provider timed out"
    );
    assert_eq!(
        child["logs"][0]["fields"][0],
        json!({"key": "event", "type": "string", "value": "payment retried"})
    );
    assert!(
        child["duration"].as_u64().is_some()
            && child["startTime"].as_u64() > Some(1_600_000_000_000_000)
    );

    let process = &trace["processes"][child["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "checkout");
    let process_tags = process["tags"].as_array().unwrap();
    assert!(
        process_tags.contains(
            &json!({"key": "service.instance.id", "type": "string", "value": "checkout-7"})
        )
    );
    assert!(
        process_tags
            .contains(&json!({"key": "service.version", "type": "string", "value": "1.4.2"}))
    );
    assert_eq!(
        trace["processes"][root["processID"].as_str().unwrap()]["serviceName"],
        "gateway"
    );

    collector.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_traces_feed_services_operations_search_and_dependencies() {
    let collector = spawn_collector().await;
    let target = Target::grpc(&collector, false);
    let sent = off_runtime(move || emit_checkout_trace(target)).await;
    wait_for_trace(&collector, &sent.trace_id, 2).await;

    let (_, services) = collector.get_json("/api/services").await;
    assert_eq!(services["data"], json!(["checkout", "gateway"]));
    assert_eq!(services["total"], 2);
    let (_, operations) = collector.get_json("/api/operations?service=gateway").await;
    assert_eq!(
        operations["data"],
        json!([
            {"name": "GET /checkout", "spanKind": "server"},
            {"name": "publish orders", "spanKind": "producer"},
        ])
    );

    let search = "/api/traces?service=gateway&tags=%7B%22http.route%22%3A%22%2Fcheckout%22%7D&minDuration=0us&limit=5";
    let (status, found) = collector.get_json(search).await;
    assert_eq!(status, 200, "{found}");
    let ids: Vec<&Value> = found["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["traceID"])
        .collect();
    assert_eq!(ids, [&json!(sent.trace_id)]);
    let (_, none) = collector
        .get_json("/api/traces?service=gateway&operation=GET%20%2Fcart")
        .await;
    assert_eq!(none["data"], json!([]));

    let (_, deps) = collector.get_json("/api/dependencies").await;
    assert_eq!(
        deps["data"],
        json!([{"parent": "gateway", "child": "checkout", "callCount": 1}])
    );
    collector.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_trace_and_gzip_log_correlate_by_trace_id() {
    let collector = spawn_collector().await;
    let traces_target = Target::http(&collector, false);
    let logs_target = Target::http(&collector, true);
    // Traces plain, logs gzip: one run covers both body encodings.
    let (trace_id, span_id) =
        off_runtime(move || emit_span_and_log(traces_target, logs_target)).await;
    wait_for_trace(&collector, &trace_id, 1).await;

    let logs = collector
        .wait_for(&format!("/api/logs?trace_id={trace_id}"), |b| {
            b["total"] == 1
        })
        .await;
    let entry = &logs["data"][0];
    assert_eq!(entry["trace_id"], trace_id);
    assert_eq!(entry["span_id"], span_id);
    assert_eq!(entry["service"], "payment");
    assert_eq!(entry["instance"], "payment-3");
    assert_eq!(entry["severity"], "WARN");
    assert_eq!(entry["severity_number"], 13);
    assert_eq!(entry["body"], "card declined by provider");
    assert_eq!(entry["attributes"]["payment.provider"], "acme");
    assert!(entry["timestamp"].as_str().unwrap().ends_with('Z'));

    let (_, filtered) = collector
        .get_json("/api/logs?service=payment&severity=ERROR")
        .await;
    assert_eq!(filtered["total"], 0);
    let (_, by_text) = collector.get_json("/api/logs?q=declined").await;
    assert_eq!(by_text["total"], 1);
    collector.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_logs_and_metrics_are_received_and_counted() {
    let collector = spawn_collector().await;
    let target = Target::grpc(&collector, false);
    let endpoint = collector.grpc_endpoint();
    let (trace_id, _) = off_runtime(move || {
        let sent = emit_span_and_log(target.clone(), target);
        let exporter = MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .expect("metric exporter");
        // A long interval: the only export is the one `shutdown` forces.
        let reader = PeriodicReader::builder(exporter)
            .with_interval(std::time::Duration::from_secs(3600))
            .build();
        let meters = SdkMeterProvider::builder()
            .with_resource(resource("cart", "cart-2"))
            .with_reader(reader)
            .build();
        let orders = meters.meter("firedrill-test").u64_counter("orders").build();
        orders.add(3, &[KeyValue::new("route", "/checkout")]);
        meters.shutdown().expect("meter provider shutdown");
        sent
    })
    .await;

    collector
        .wait_for(&format!("/api/logs?trace_id={trace_id}"), |b| {
            b["total"] == 1
        })
        .await;
    let accepted = |signal: &str| {
        format!(r#"firedrill_collector_items_total{{signal="{signal}",outcome="accepted"}}"#)
    };
    assert_eq!(collector.self_metric(&accepted("metric_points")).await, 1.0);
    assert_eq!(collector.self_metric(&accepted("log_records")).await, 1.0);
    assert_eq!(collector.self_metric(&accepted("spans")).await, 1.0);
    // Re-exposed under the OTLP → Prometheus translation: `_total` for a
    // monotonic sum, job/instance from the resource, plus target_info.
    let reexposed = r#"orders_total{instance="cart-2",job="cart",route="/checkout"}"#;
    crate::harness::eventually("the re-exposed counter", || async {
        (collector.self_metric(reexposed).await == 3.0).then_some(())
    })
    .await;
    let series = r#"firedrill_collector_store_items{store="metric_series"}"#;
    assert_eq!(collector.self_metric(series).await, 2.0);
    collector.stop().await.expect("clean shutdown");
}
