//! Conversion from OTLP protobuf messages to the collector's model.
//!
//! This is the validation boundary: an item that breaks an invariant the
//! store and the query APIs rely on (ids of the right length, a metric name)
//! is rejected here with a [`Rejection`], which the receivers report back to
//! the sender as OTLP partial success. Everything else is accepted leniently:
//! a span whose end precedes its start, or a log record without a timestamp,
//! is still worth keeping during an incident.

use std::sync::Arc;

use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value as AnyKind},
    logs::v1::LogRecord,
    metrics::v1::{
        Metric, NumberDataPoint, metric::Data as MetricData, number_data_point::Value as Number,
    },
    resource::v1::Resource as OtlpResource,
    trace::v1::{
        Span,
        span::{Event, Link},
    },
};

use crate::model::{
    AttrValue, Attribute, LogEntry, MetricPoint, PointValue, Resource, Scope, SpanEvent, SpanId,
    SpanKind, SpanLink, SpanRecord, StatusCode, TraceId, severity_from_name,
};

/// Why one item was refused; the message is sent back to the exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("trace_id must be 16 bytes and not all zero")]
    InvalidTraceId,
    #[error("span_id must be 8 bytes and not all zero")]
    InvalidSpanId,
    #[error("parent_span_id must be empty or 8 bytes")]
    InvalidParentSpanId,
    #[error("data point has no value")]
    MissingValue,
    #[error("metric has no name")]
    MissingMetricName,
}

// === common ===

pub fn attributes(kvs: Vec<KeyValue>) -> Vec<Attribute> {
    kvs.into_iter()
        .map(|kv| Attribute::new(kv.key, any_value(kv.value)))
        .collect()
}

fn any_value(value: Option<AnyValue>) -> AttrValue {
    match value.and_then(|v| v.value) {
        Some(AnyKind::StringValue(s)) => AttrValue::Str(s),
        Some(AnyKind::BoolValue(b)) => AttrValue::Bool(b),
        Some(AnyKind::IntValue(i)) => AttrValue::Int(i),
        Some(AnyKind::DoubleValue(d)) => AttrValue::Double(d),
        Some(AnyKind::BytesValue(b)) => AttrValue::Bytes(b),
        Some(AnyKind::ArrayValue(a)) => {
            AttrValue::Array(a.values.into_iter().map(|v| any_value(Some(v))).collect())
        }
        Some(AnyKind::KvlistValue(kvs)) => AttrValue::Map(attributes(kvs.values)),
        // String-table indexes only mean something inside profiles, which
        // this collector does not receive.
        Some(AnyKind::StringValueStrindex(_)) | None => AttrValue::Empty,
    }
}

pub fn resource(resource: Option<OtlpResource>) -> Arc<Resource> {
    let attrs = resource
        .map(|r| attributes(r.attributes))
        .unwrap_or_default();
    Arc::new(Resource::new(attrs))
}

pub fn scope(scope: Option<InstrumentationScope>) -> Arc<Scope> {
    let scope = scope.map_or_else(Scope::default, |s| Scope {
        name: s.name,
        version: s.version,
    });
    Arc::new(scope)
}

/// An optional id: empty or all-zero bytes mean "absent", any other length
/// is malformed.
fn optional_id<T>(
    bytes: &[u8],
    len: usize,
    parse: impl Fn(&[u8]) -> Option<T>,
) -> Result<Option<T>, ()> {
    if bytes.is_empty() || (bytes.len() == len && bytes.iter().all(|b| *b == 0)) {
        return Ok(None);
    }
    parse(bytes).map(Some).ok_or(())
}

// === spans ===

pub fn span(
    span: Span,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Result<SpanRecord, Rejection> {
    let trace_id = TraceId::from_slice(&span.trace_id).ok_or(Rejection::InvalidTraceId)?;
    let span_id = SpanId::from_slice(&span.span_id).ok_or(Rejection::InvalidSpanId)?;
    let parent_span_id = optional_id(&span.parent_span_id, 8, SpanId::from_slice)
        .map_err(|()| Rejection::InvalidParentSpanId)?;
    let (status, status_message) = span.status.map_or((StatusCode::Unset, String::new()), |s| {
        (StatusCode::from_otlp(s.code), s.message)
    });
    Ok(SpanRecord {
        trace_id,
        span_id,
        parent_span_id,
        name: span.name,
        kind: SpanKind::from_otlp(span.kind),
        start_unix_nano: span.start_time_unix_nano,
        end_unix_nano: span.end_time_unix_nano,
        attributes: attributes(span.attributes),
        events: span.events.into_iter().map(event).collect(),
        links: span.links.into_iter().filter_map(link).collect(),
        status,
        status_message,
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

fn event(event: Event) -> SpanEvent {
    SpanEvent {
        time_unix_nano: event.time_unix_nano,
        name: event.name,
        attributes: attributes(event.attributes),
    }
}

/// A link with malformed ids points nowhere; the span is still good, so only
/// the link is dropped.
fn link(link: Link) -> Option<SpanLink> {
    Some(SpanLink {
        trace_id: TraceId::from_slice(&link.trace_id)?,
        span_id: SpanId::from_slice(&link.span_id)?,
        attributes: attributes(link.attributes),
    })
}

// === logs ===

/// `received_at` stands in for the timestamp when the sender set neither
/// the event time nor the observed time.
pub fn log_record(
    record: LogRecord,
    resource: &Arc<Resource>,
    received_at: u64,
) -> Result<LogEntry, Rejection> {
    let trace_id = optional_id(&record.trace_id, 16, TraceId::from_slice)
        .map_err(|()| Rejection::InvalidTraceId)?;
    let span_id = optional_id(&record.span_id, 8, SpanId::from_slice)
        .map_err(|()| Rejection::InvalidSpanId)?;
    let time_unix_nano = [
        record.time_unix_nano,
        record.observed_time_unix_nano,
        received_at,
    ]
    .into_iter()
    .find(|t| *t != 0)
    .unwrap_or_default();
    Ok(LogEntry {
        time_unix_nano,
        severity_number: severity_number(record.severity_number, &record.severity_text),
        body: any_value(record.body).to_text(),
        severity_text: record.severity_text,
        trace_id,
        span_id,
        attributes: attributes(record.attributes),
        resource: Arc::clone(resource),
    })
}

/// Some loggers only fill `severity_text`; inferring the number from it keeps
/// those records visible to `severity=` filters.
fn severity_number(number: i32, text: &str) -> i32 {
    if (1..=24).contains(&number) {
        number
    } else {
        severity_from_name(text).unwrap_or(0)
    }
}

// === metrics ===

/// One result per data point of `metric`, so each point is counted once.
pub fn metric_points(metric: Metric, resource: &Resource) -> Vec<Result<MetricPoint, Rejection>> {
    let Some(data) = metric.data else {
        return Vec::new();
    };
    let points = data_points(data);
    if metric.name.is_empty() {
        return points
            .into_iter()
            .map(|_| Err(Rejection::MissingMetricName))
            .collect();
    }
    points
        .into_iter()
        .map(|raw| {
            let value = raw.value?;
            Ok(MetricPoint {
                series: series_key(&metric.name, resource, raw.attributes),
                time_unix_nano: raw.time_unix_nano,
                value,
            })
        })
        .collect()
}

/// The parts of any data point type that this increment keeps.
struct RawPoint {
    attributes: Vec<KeyValue>,
    time_unix_nano: u64,
    value: Result<PointValue, Rejection>,
}

fn data_points(data: MetricData) -> Vec<RawPoint> {
    match data {
        MetricData::Gauge(g) => g.data_points.into_iter().map(number_point).collect(),
        MetricData::Sum(s) => s.data_points.into_iter().map(number_point).collect(),
        MetricData::Histogram(h) => h
            .data_points
            .into_iter()
            .map(|p| distribution(p.attributes, p.time_unix_nano, p.count, p.sum))
            .collect(),
        MetricData::ExponentialHistogram(h) => h
            .data_points
            .into_iter()
            .map(|p| distribution(p.attributes, p.time_unix_nano, p.count, p.sum))
            .collect(),
        MetricData::Summary(s) => s
            .data_points
            .into_iter()
            .map(|p| distribution(p.attributes, p.time_unix_nano, p.count, Some(p.sum)))
            .collect(),
    }
}

/// Bit 0 of a data point's flags marks "no recorded value" (a staleness
/// marker); such a point is valid without a value.
const NO_RECORDED_VALUE: u32 = 1;

fn number_point(p: NumberDataPoint) -> RawPoint {
    let value = match p.value {
        Some(Number::AsDouble(d)) => Ok(PointValue::Number(d)),
        Some(Number::AsInt(i)) => Ok(PointValue::Number(i as f64)),
        None if p.flags & NO_RECORDED_VALUE != 0 => Ok(PointValue::Number(f64::NAN)),
        None => Err(Rejection::MissingValue),
    };
    RawPoint {
        attributes: p.attributes,
        time_unix_nano: p.time_unix_nano,
        value,
    }
}

fn distribution(
    attributes: Vec<KeyValue>,
    time_unix_nano: u64,
    count: u64,
    sum: Option<f64>,
) -> RawPoint {
    RawPoint {
        attributes,
        time_unix_nano,
        value: Ok(PointValue::Distribution { count, sum }),
    }
}

/// A stable identity for a series: the metric name, the process that
/// reported it, and the point's attributes in key order.
fn series_key(name: &str, resource: &Resource, point_attributes: Vec<KeyValue>) -> String {
    let mut labels: Vec<(String, String)> = attributes(point_attributes)
        .into_iter()
        .map(|a| (a.key, a.value.to_text()))
        .collect();
    labels.sort();
    let identity = [
        ("service.name".to_owned(), resource.service_name.to_string()),
        ("service.instance.id".to_owned(), resource.instance()),
    ];
    let rendered: Vec<String> = identity
        .into_iter()
        .chain(labels)
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", rendered.join(","))
}

#[cfg(test)]
mod tests;
