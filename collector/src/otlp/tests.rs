use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, KeyValue, any_value::Value as AnyKind},
    metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        number_data_point::Value as Number,
    },
    trace::v1::{Span, Status, span::Link},
};

use super::*;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(AnyKind::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn cart_resource() -> Arc<Resource> {
    resource(Some(&OtlpResource {
        attributes: vec![
            kv("service.name", "cart"),
            kv("service.instance.id", "cart-1"),
        ],
        ..Default::default()
    }))
}

fn valid_span() -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "GET /cart".into(),
        kind: 2,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 5_000,
        ..Default::default()
    }
}

#[test]
fn span_keeps_ids_kind_status_and_resource() {
    let mut otlp = valid_span();
    otlp.parent_span_id = vec![3; 8];
    otlp.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    let record = span(&otlp, &cart_resource(), &scope(None)).unwrap();
    assert_eq!(record.trace_id.to_hex(), "01".repeat(16));
    assert_eq!(record.parent_span_id, SpanId::from_slice(&[3; 8]));
    assert_eq!(record.kind, SpanKind::Server);
    assert_eq!(record.status, StatusCode::Error);
    assert_eq!(record.service(), "cart");
    assert_eq!(record.resource.instance(), "cart-1");
    assert_eq!(record.duration_nanos(), 4_000);
}

#[test]
fn span_with_bad_ids_is_rejected() {
    let resource = cart_resource();
    let scope = scope(None);
    let mut short_trace = valid_span();
    short_trace.trace_id = vec![1; 8];
    assert_eq!(
        span(&short_trace, &resource, &scope),
        Err(Rejection::InvalidTraceId)
    );
    let mut zero_trace = valid_span();
    zero_trace.trace_id = vec![0; 16];
    assert_eq!(
        span(&zero_trace, &resource, &scope),
        Err(Rejection::InvalidTraceId)
    );
    let mut no_span_id = valid_span();
    no_span_id.span_id = vec![];
    assert_eq!(
        span(&no_span_id, &resource, &scope),
        Err(Rejection::InvalidSpanId)
    );
    let mut bad_parent = valid_span();
    bad_parent.parent_span_id = vec![1; 3];
    assert_eq!(
        span(&bad_parent, &resource, &scope),
        Err(Rejection::InvalidParentSpanId)
    );
}

#[test]
fn zero_parent_means_root_and_bad_links_are_dropped() {
    let mut otlp = valid_span();
    otlp.parent_span_id = vec![0; 8];
    otlp.links = vec![
        Link {
            trace_id: vec![4; 16],
            span_id: vec![5; 8],
            ..Default::default()
        },
        Link {
            trace_id: vec![4; 3],
            span_id: vec![5; 8],
            ..Default::default()
        },
    ];
    let record = span(&otlp, &cart_resource(), &scope(None)).unwrap();
    assert_eq!(record.parent_span_id, None);
    assert_eq!(record.links.len(), 1);
}

#[test]
fn log_record_infers_severity_and_time() {
    let record = LogRecord {
        severity_text: "warn".into(),
        body: Some(AnyValue {
            value: Some(AnyKind::StringValue("slow query".into())),
        }),
        trace_id: vec![7; 16],
        ..Default::default()
    };
    let entry = log_record(&record, &cart_resource(), 42).unwrap();
    assert_eq!(entry.severity_number, 13);
    assert_eq!(entry.time_unix_nano, 42);
    assert_eq!(entry.body, "slow query");
    assert_eq!(entry.trace_id, TraceId::from_slice(&[7; 16]));
    assert_eq!(entry.span_id, None);
}

#[test]
fn log_record_with_malformed_trace_id_is_rejected() {
    let record = LogRecord {
        trace_id: vec![7; 5],
        ..Default::default()
    };
    assert_eq!(
        log_record(&record, &cart_resource(), 1),
        Err(Rejection::InvalidTraceId)
    );
}

#[test]
fn invalid_metric_points_are_removed_and_reported() {
    let point = |value| NumberDataPoint {
        value,
        ..Default::default()
    };
    let mut metric = Metric {
        name: "queue_depth".into(),
        data: Some(MetricData::Gauge(Gauge {
            data_points: vec![
                point(Some(Number::AsInt(3))),
                point(None),
                NumberDataPoint {
                    flags: NO_RECORDED_VALUE,
                    ..point(None)
                },
            ],
        })),
        ..Default::default()
    };
    let mut refused = Vec::new();
    assert_eq!(retain_valid_points(&mut metric, |r| refused.push(r)), 2);
    assert_eq!(refused, [Rejection::MissingValue]);
}

#[test]
fn unnamed_metric_rejects_every_point() {
    let mut metric = Metric {
        data: Some(MetricData::Histogram(Histogram {
            data_points: vec![HistogramDataPoint::default(), HistogramDataPoint::default()],
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut refused = Vec::new();
    assert_eq!(retain_valid_points(&mut metric, |r| refused.push(r)), 0);
    assert_eq!(refused, vec![Rejection::MissingMetricName; 2]);
    assert!(metric.data.is_none());
}
