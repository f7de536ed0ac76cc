use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value as AnyKind},
    resource::v1::Resource as OtlpResource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status},
};

use super::*;

const SECOND: u64 = 1_000_000_000;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(AnyKind::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn span(id: u8, parent: u8, kind: i32, millis: u64, error: bool) -> Span {
    Span {
        trace_id: vec![9; 16],
        span_id: vec![id; 8],
        parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
        name: format!("op{id}"),
        kind,
        start_time_unix_nano: 100 * SECOND,
        end_time_unix_nano: 100 * SECOND + millis * 1_000_000,
        status: error.then(|| Status {
            code: 2,
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(OtlpResource {
                attributes: vec![kv("service.name", service)],
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

fn render(derived: &Derived) -> String {
    let mut out = Writer::new();
    derived.render(&mut out);
    out.into_text()
}

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix} in:\n{text}"))
}

#[test]
fn span_metrics_count_calls_and_durations_with_exemplars() {
    let derived = Derived::new(DerivedLimits::default());
    let spans = vec![span(1, 0, 2, 3, false), span(2, 0, 2, 300, true)];
    let mut same_name = spans;
    same_name[1].name = "op1".into();
    derived.observe_traces(&export("gateway", same_name), 100 * SECOND);
    let text = render(&derived);
    let labels = r#"service_name="gateway",span_name="op1",span_kind="SPAN_KIND_SERVER""#;
    let ok = line(
        &text,
        &format!(
            r#"traces_span_metrics_calls_total{{{labels},status_code="STATUS_CODE_UNSET"}} 1 # {{trace_id="09090909090909090909090909090909"}} 1 "#
        ),
    );
    assert!(ok.ends_with(" 100.003"), "{ok}");
    line(
        &text,
        &format!(
            r#"traces_span_metrics_calls_total{{{labels},status_code="STATUS_CODE_ERROR"}} 1"#
        ),
    );
    line(
        &text,
        &format!(
            r#"traces_span_metrics_duration_seconds_bucket{{{labels},status_code="STATUS_CODE_ERROR",le="0.2"}} 0"#
        ),
    );
    line(
        &text,
        &format!(
            r#"traces_span_metrics_duration_seconds_bucket{{{labels},status_code="STATUS_CODE_ERROR",le="0.4"}} 1 # {{trace_id="#
        ),
    );
    assert!(text.contains("# TYPE traces_span_metrics_duration_seconds histogram"));
}

#[test]
fn service_graph_pairs_client_and_server_in_either_order() {
    let derived = Derived::new(DerivedLimits::default());
    // The server half arrives first, in its own export.
    derived.observe_traces(&export("cart", vec![span(3, 2, 2, 5, true)]), 100 * SECOND);
    derived.observe_traces(
        &export(
            "gateway",
            vec![span(1, 0, 2, 20, false), span(2, 1, 3, 8, false)],
        ),
        100 * SECOND,
    );
    let text = render(&derived);
    let edge = r#"client="gateway",server="cart",connection_type="""#;
    line(
        &text,
        &format!("traces_service_graph_request_total{{{edge}}} 1 # "),
    );
    line(
        &text,
        &format!("traces_service_graph_request_failed_total{{{edge}}} 1 # "),
    );
    line(
        &text,
        &format!(r#"traces_service_graph_request_client_seconds_bucket{{{edge},le="0.01"}} 1"#),
    );
    line(
        &text,
        &format!(r#"traces_service_graph_request_server_seconds_bucket{{{edge},le="0.006"}} 1"#),
    );
    line(
        &text,
        r#"traces_service_graph_request_total{client="user",server="gateway",connection_type="virtual_node"} 1"#,
    );
}

#[test]
fn unanswered_client_spans_become_database_or_virtual_edges_after_the_wait() {
    let limits = DerivedLimits::default();
    let derived = Derived::new(limits);
    let mut db = span(2, 1, 3, 4, false);
    db.attributes.push(kv("db.system.name", "postgresql"));
    let lonely = span(3, 1, 3, 4, false);
    derived.observe_traces(&export("inventory", vec![db, lonely]), 100 * SECOND);
    assert!(!render(&derived).contains("postgresql"));

    derived.tick(100 * SECOND + 4_000_000 + limits.edge_wait_nanos);
    let text = render(&derived);
    line(
        &text,
        r#"traces_service_graph_request_total{client="inventory",server="postgresql",connection_type="database"} 1"#,
    );
    line(
        &text,
        r#"firedrill_collector_derived_dropped_total{metric="service_graph"} 1"#,
    );
}

#[test]
fn series_beyond_the_cap_are_counted_not_created() {
    let derived = Derived::new(DerivedLimits {
        max_series: 1,
        ..DerivedLimits::default()
    });
    let spans = vec![span(1, 0, 1, 1, false), span(2, 0, 1, 1, false)];
    derived.observe_traces(&export("a", spans), 100 * SECOND);
    let text = render(&derived);
    assert!(text.contains(r#"span_name="op1""#));
    assert!(!text.contains(r#"span_name="op2""#));
    line(
        &text,
        r#"firedrill_collector_derived_dropped_total{metric="span_metrics"} 1"#,
    );
}
