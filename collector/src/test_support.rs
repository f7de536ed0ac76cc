//! Builders for unit tests: records with just the fields a test cares about.

pub mod trace_exports;

use std::sync::Arc;

use crate::{
    derived::{Derived, DerivedLimits},
    exporters::Exporters,
    ingest::Ingest,
    memory::MemoryGuard,
    model::{
        AttrValue, Attribute, LogEntry, Resource, Scope, SpanId, SpanKind, SpanRecord, StatusCode,
        TraceId,
    },
    pipeline::{Pipeline, QueueGauge, Sinks},
    query::QueryState,
    self_metrics::SelfMetrics,
    store::{Capacities, Store},
};

/// Query-server state around `store`, with idle everything else.
pub fn query_state(store: Store) -> QueryState {
    QueryState {
        store: Arc::new(store),
        metrics: Arc::new(SelfMetrics::new()),
        derived: Arc::new(Derived::new(DerivedLimits::default())),
        queue: QueueGauge::idle(1024),
        memory: MemoryGuard::new(usize::MAX / 2),
    }
}

/// A running pipeline with a roomy store and no exporters, and the ingest
/// stage in front of it; `queue_bytes` sizes the ingest queue.
pub fn test_pipeline(queue_bytes: usize) -> (Ingest, Pipeline, Arc<Store>) {
    let store = Arc::new(Store::new(Capacities {
        spans: 100,
        log_records: 100,
        metric_series: 100,
        span_bytes: usize::MAX,
        log_bytes: usize::MAX,
    }));
    let metrics = Arc::new(SelfMetrics::new());
    let sinks = Sinks {
        store: Arc::clone(&store),
        derived: Arc::new(Derived::new(DerivedLimits::default())),
        exporters: Exporters::default(),
        metrics: Arc::clone(&metrics),
    };
    let pipeline = Pipeline::start(queue_bytes, sinks).expect("start the pipeline thread");
    let memory = MemoryGuard::new(usize::MAX / 2);
    let ingest = Ingest::new(pipeline.sender(), memory, metrics);
    (ingest, pipeline, store)
}

pub fn trace_id(n: u8) -> TraceId {
    TraceId::from_bytes([n; 16]).expect("test ids are non-zero")
}

pub fn span_id(n: u8) -> SpanId {
    SpanId::from_bytes([n; 8]).expect("test ids are non-zero")
}

pub fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource::new(vec![
        Attribute::new("service.name", AttrValue::Str(service.into())),
        Attribute::new(
            "service.instance.id",
            AttrValue::Str(format!("{service}-1")),
        ),
    ]))
}

/// A 1 ms server span starting at `trace * 1_000_000 + span` ns.
pub fn span(trace: u8, span: u8, service: &str, name: &str) -> SpanRecord {
    let start = u64::from(trace) * 1_000_000 + u64::from(span);
    SpanRecord {
        trace_id: trace_id(trace),
        span_id: span_id(span),
        parent_span_id: None,
        name: name.into(),
        kind: SpanKind::Server,
        start_unix_nano: start,
        end_unix_nano: start + 1_000_000,
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        status: StatusCode::Unset,
        status_message: String::new(),
        resource: resource(service),
        scope: Arc::new(Scope::default()),
    }
}

pub fn child(parent: &SpanRecord, span_n: u8, service: &str, name: &str) -> SpanRecord {
    SpanRecord {
        trace_id: parent.trace_id,
        parent_span_id: Some(parent.span_id),
        start_unix_nano: parent.start_unix_nano + 10,
        end_unix_nano: parent.start_unix_nano + 20,
        ..span(1, span_n, service, name)
    }
}

pub fn log(time: u64, service: &str, severity: i32, body: &str) -> LogEntry {
    LogEntry {
        time_unix_nano: time,
        severity_number: severity,
        severity_text: String::new(),
        body: body.into(),
        trace_id: None,
        span_id: None,
        attributes: Vec::new(),
        resource: resource(service),
    }
}
