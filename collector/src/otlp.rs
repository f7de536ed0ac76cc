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
    collector::logs::v1::ExportLogsServiceRequest,
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value as AnyKind},
    logs::v1::LogRecord,
    metrics::v1::{Metric, NumberDataPoint, metric::Data as MetricData},
    resource::v1::Resource as OtlpResource,
    trace::v1::Span,
};

use crate::model::{
    AttrValue, Attribute, LogEntry, Resource, Scope, SpanId, TraceId, severity_from_name,
};
#[cfg(test)]
use crate::model::{SpanEvent, SpanKind, SpanLink, SpanRecord, StatusCode};
#[cfg(test)]
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};

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

pub fn attributes(kvs: &[KeyValue]) -> Vec<Attribute> {
    kvs.iter()
        .map(|kv| Attribute::new(kv.key.clone(), any_value(kv.value.as_ref())))
        .collect()
}

fn any_value(value: Option<&AnyValue>) -> AttrValue {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyKind::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(AnyKind::BoolValue(b)) => AttrValue::Bool(*b),
        Some(AnyKind::IntValue(i)) => AttrValue::Int(*i),
        Some(AnyKind::DoubleValue(d)) => AttrValue::Double(*d),
        Some(AnyKind::BytesValue(b)) => AttrValue::Bytes(b.clone()),
        Some(AnyKind::ArrayValue(a)) => {
            AttrValue::Array(a.values.iter().map(|v| any_value(Some(v))).collect())
        }
        Some(AnyKind::KvlistValue(kvs)) => AttrValue::Map(attributes(&kvs.values)),
        // String-table indexes only mean something inside profiles, which
        // this collector does not receive.
        Some(AnyKind::StringValueStrindex(_)) | None => AttrValue::Empty,
    }
}

pub fn resource(resource: Option<&OtlpResource>) -> Arc<Resource> {
    let attrs = resource
        .map(|r| attributes(&r.attributes))
        .unwrap_or_default();
    Arc::new(Resource::new(attrs))
}

pub fn scope(scope: Option<&InstrumentationScope>) -> Arc<Scope> {
    let scope = scope.map_or_else(Scope::default, |s| Scope {
        name: s.name.clone(),
        version: s.version.clone(),
    });
    Arc::new(scope)
}

/// An optional id: empty or all-zero bytes mean "absent", any other length
/// is malformed.
pub fn optional_id<T>(
    bytes: &[u8],
    len: usize,
    parse: impl Fn(&[u8]) -> Option<T>,
) -> Result<Option<T>, ()> {
    if bytes.is_empty() || (bytes.len() == len && bytes.iter().all(|b| *b == 0)) {
        return Ok(None);
    }
    parse(bytes).map(Some).ok_or(())
}

// === validation ===
//
// The receivers call these before queueing, so the sender learns about
// invalid items in the export's own response (partial success) even though
// conversion happens later, on the pipeline thread.

pub fn check_span(span: &Span) -> Result<(), Rejection> {
    TraceId::from_slice(&span.trace_id).ok_or(Rejection::InvalidTraceId)?;
    SpanId::from_slice(&span.span_id).ok_or(Rejection::InvalidSpanId)?;
    optional_id(&span.parent_span_id, 8, SpanId::from_slice)
        .map_err(|()| Rejection::InvalidParentSpanId)?;
    Ok(())
}

pub fn check_log_record(record: &LogRecord) -> Result<(), Rejection> {
    optional_id(&record.trace_id, 16, TraceId::from_slice)
        .map_err(|()| Rejection::InvalidTraceId)?;
    optional_id(&record.span_id, 8, SpanId::from_slice).map_err(|()| Rejection::InvalidSpanId)?;
    Ok(())
}

/// Removes the data points of `metric` that cannot be kept and reports
/// each through `refuse`; returns how many remain.
pub fn retain_valid_points(metric: &mut Metric, mut refuse: impl FnMut(Rejection)) -> u64 {
    let Some(data) = metric.data.as_mut() else {
        return 0;
    };
    if metric.name.is_empty() {
        for _ in 0..point_count(data) {
            refuse(Rejection::MissingMetricName);
        }
        metric.data = None;
        return 0;
    }
    let number_ok = |p: &NumberDataPoint| p.value.is_some() || p.flags & NO_RECORDED_VALUE != 0;
    match data {
        MetricData::Gauge(g) => retain_counting(&mut g.data_points, number_ok, &mut refuse),
        MetricData::Sum(s) => retain_counting(&mut s.data_points, number_ok, &mut refuse),
        other => point_count(other),
    }
}

fn retain_counting<T>(
    points: &mut Vec<T>,
    ok: impl Fn(&T) -> bool,
    refuse: &mut impl FnMut(Rejection),
) -> u64 {
    points.retain(|p| {
        let keep = ok(p);
        if !keep {
            refuse(Rejection::MissingValue);
        }
        keep
    });
    points.len() as u64
}

pub fn point_count(data: &MetricData) -> u64 {
    let n = match data {
        MetricData::Gauge(g) => g.data_points.len(),
        MetricData::Sum(s) => s.data_points.len(),
        MetricData::Histogram(h) => h.data_points.len(),
        MetricData::ExponentialHistogram(h) => h.data_points.len(),
        MetricData::Summary(s) => s.data_points.len(),
    };
    n as u64
}

// === spans ===

/// The model form of one span. The store encodes spans straight from
/// protobuf (`store/spans/compact.rs`); this is the reference its tests
/// check that encoding against.
#[cfg(test)]
pub fn span(
    span: &Span,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Result<SpanRecord, Rejection> {
    let trace_id = TraceId::from_slice(&span.trace_id).ok_or(Rejection::InvalidTraceId)?;
    let span_id = SpanId::from_slice(&span.span_id).ok_or(Rejection::InvalidSpanId)?;
    let parent_span_id = optional_id(&span.parent_span_id, 8, SpanId::from_slice)
        .map_err(|()| Rejection::InvalidParentSpanId)?;
    let (status, status_message) = span
        .status
        .as_ref()
        .map_or((StatusCode::Unset, String::new()), |s| {
            (StatusCode::from_otlp(s.code), s.message.clone())
        });
    Ok(SpanRecord {
        trace_id,
        span_id,
        parent_span_id,
        name: span.name.clone(),
        kind: SpanKind::from_otlp(span.kind),
        start_unix_nano: span.start_time_unix_nano,
        end_unix_nano: span.end_time_unix_nano,
        attributes: attributes(&span.attributes),
        events: span.events.iter().map(event).collect(),
        links: span.links.iter().filter_map(link).collect(),
        status,
        status_message,
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

#[cfg(test)]
fn event(event: &Event) -> SpanEvent {
    SpanEvent {
        time_unix_nano: event.time_unix_nano,
        name: event.name.clone(),
        attributes: attributes(&event.attributes),
    }
}

/// A link with malformed ids points nowhere; the span is still good, so only
/// the link is dropped.
#[cfg(test)]
fn link(link: &Link) -> Option<SpanLink> {
    Some(SpanLink {
        trace_id: TraceId::from_slice(&link.trace_id)?,
        span_id: SpanId::from_slice(&link.span_id)?,
        attributes: attributes(&link.attributes),
    })
}

// === logs ===

/// Every valid log record of an export (see [`check_log_record`]).
pub fn log_entries(request: &ExportLogsServiceRequest, received_at: u64) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    for resource_logs in &request.resource_logs {
        let resource = resource(resource_logs.resource.as_ref());
        let records = resource_logs.scope_logs.iter().flat_map(|s| &s.log_records);
        entries.extend(records.filter_map(|r| log_record(r, &resource, received_at).ok()));
    }
    entries
}

/// `received_at` stands in for the timestamp when the sender set neither
/// the event time nor the observed time.
pub fn log_record(
    record: &LogRecord,
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
        body: any_value(record.body.as_ref()).to_text(),
        severity_text: record.severity_text.clone(),
        trace_id,
        span_id,
        attributes: attributes(&record.attributes),
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

/// Bit 0 of a data point's flags marks "no recorded value" (a staleness
/// marker); such a point is valid without a value.
pub const NO_RECORDED_VALUE: u32 = 1;

pub mod traces;
pub mod wire;

#[cfg(test)]
mod tests;
