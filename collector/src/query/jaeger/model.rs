//! Jaeger's UI JSON model (`model/json` in the Jaeger repository) and the
//! conversion from stored spans, following Jaeger's own OTLP translation:
//! parent → `CHILD_OF`, links → `FOLLOWS_FROM`, events → `logs`, resource →
//! `processes`, kind and status → tags.

use std::{collections::BTreeMap, sync::Arc};

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value as Json;

use crate::{
    model::{AttrValue, Attribute, Resource, SpanRecord, TraceId},
    store::{DependencyLink, Operation},
};

#[derive(Debug, Serialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    trace_id: String,
    spans: Vec<Span>,
    processes: BTreeMap<String, Process>,
    warnings: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
    operation_name: String,
    references: Vec<Reference>,
    /// Microseconds since the Unix epoch.
    start_time: u64,
    /// Microseconds.
    duration: u64,
    tags: Vec<KeyValue>,
    logs: Vec<Log>,
    #[serde(rename = "processID")]
    process_id: String,
    warnings: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    ref_type: &'static str,
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct KeyValue {
    key: String,
    #[serde(rename = "type")]
    kind: &'static str,
    value: Json,
}

#[derive(Debug, Serialize)]
pub struct Log {
    timestamp: u64,
    fields: Vec<KeyValue>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    service_name: String,
    tags: Vec<KeyValue>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationJson {
    name: String,
    span_kind: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyJson {
    parent: String,
    child: String,
    call_count: u64,
}

// === conversion ===

/// One trace; `spans` may be in any order (the UI sorts them).
pub fn trace(trace_id: TraceId, spans: &[Arc<SpanRecord>]) -> Trace {
    let mut processes = Processes::default();
    let spans = spans
        .iter()
        .map(|s| span(s, processes.id_for(&s.resource)))
        .collect();
    Trace {
        trace_id: trace_id.to_hex(),
        spans,
        processes: processes.into_map(),
        warnings: None,
    }
}

fn span(span: &SpanRecord, process_id: String) -> Span {
    let tags = span
        .attributes
        .iter()
        .chain(&span.derived_tags())
        .map(key_value)
        .collect();
    Span {
        trace_id: span.trace_id.to_hex(),
        span_id: span.span_id.to_hex(),
        operation_name: span.name.clone(),
        references: references(span),
        start_time: span.start_unix_nano / 1_000,
        duration: span.duration_nanos() / 1_000,
        tags,
        logs: span.events.iter().map(event_log).collect(),
        process_id,
        warnings: None,
    }
}

/// The parent first: the Jaeger UI takes the first `CHILD_OF` as the parent.
fn references(span: &SpanRecord) -> Vec<Reference> {
    let parent = span.parent_span_id.map(|parent| Reference {
        ref_type: "CHILD_OF",
        trace_id: span.trace_id.to_hex(),
        span_id: parent.to_hex(),
    });
    let links = span.links.iter().map(|link| Reference {
        ref_type: "FOLLOWS_FROM",
        trace_id: link.trace_id.to_hex(),
        span_id: link.span_id.to_hex(),
    });
    parent.into_iter().chain(links).collect()
}

/// A span event as a Jaeger log: the name goes in the `event` field.
fn event_log(event: &crate::model::SpanEvent) -> Log {
    let name = Attribute::new("event", AttrValue::Str(event.name.clone()));
    Log {
        timestamp: event.time_unix_nano / 1_000,
        fields: std::iter::once(&name)
            .chain(&event.attributes)
            .map(key_value)
            .collect(),
    }
}

/// Jaeger tag types; arrays and maps become JSON text, as in Jaeger's own
/// OTLP translator.
pub fn key_value(attribute: &Attribute) -> KeyValue {
    let (kind, value) = match &attribute.value {
        AttrValue::Str(s) => ("string", Json::from(s.as_str())),
        AttrValue::Bool(b) => ("bool", Json::from(*b)),
        AttrValue::Int(i) => ("int64", Json::from(*i)),
        AttrValue::Double(d) => match serde_json::Number::from_f64(*d) {
            Some(n) => ("float64", Json::Number(n)),
            None => ("string", Json::from(d.to_string())),
        },
        AttrValue::Bytes(b) => (
            "binary",
            Json::from(base64::engine::general_purpose::STANDARD.encode(b)),
        ),
        other => ("string", Json::from(other.to_text())),
    };
    KeyValue {
        key: attribute.key.clone(),
        kind,
        value,
    }
}

/// Assigns `p1`, `p2`, ... to the distinct resources of one trace.
#[derive(Default)]
struct Processes {
    resources: Vec<Arc<Resource>>,
}

impl Processes {
    fn id_for(&mut self, resource: &Arc<Resource>) -> String {
        let index = self
            .resources
            .iter()
            .position(|r| Arc::ptr_eq(r, resource) || **r == **resource)
            .unwrap_or_else(|| {
                self.resources.push(Arc::clone(resource));
                self.resources.len() - 1
            });
        format!("p{}", index + 1)
    }

    fn into_map(self) -> BTreeMap<String, Process> {
        self.resources
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("p{}", i + 1), process(r)))
            .collect()
    }
}

/// `service.name` becomes `serviceName`; the other resource attributes
/// (instance id, version, environment, ...) become process tags.
fn process(resource: &Resource) -> Process {
    Process {
        service_name: resource.service_name.to_string(),
        tags: resource
            .attributes
            .iter()
            .filter(|a| a.key != "service.name")
            .map(key_value)
            .collect(),
    }
}

pub fn operation(operation: Operation) -> OperationJson {
    OperationJson {
        name: operation.name,
        span_kind: operation.kind.as_str(),
    }
}

pub fn dependency(link: DependencyLink) -> DependencyJson {
    DependencyJson {
        parent: link.parent,
        child: link.child,
        call_count: link.call_count,
    }
}
