//! Metrics derived from spans, as the OpenTelemetry Collector contrib
//! `spanmetrics` and `servicegraph` connectors name them, so dashboards and
//! alerts written for those work here unchanged.
//!
//! The pipeline thread calls [`Derived::observe_traces`] with every accepted
//! export; `/metrics` renders the result. Both maps are bounded: a series
//! beyond the cap is not created, and the spans that would have fed it are
//! counted in `firedrill_collector_derived_dropped_total`.

mod service_graph;
mod span_metrics;

use std::sync::Arc;

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{KeyValue, any_value::Value as AnyKind},
    trace::v1::Span,
};
use parking_lot::Mutex;

use self::{service_graph::ServiceGraph, span_metrics::SpanMetrics};
use crate::{
    model::{Resource, SpanId, TraceId},
    openmetrics::{Exemplar, Writer},
};

/// Caps and timing of the derived metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivedLimits {
    /// Series per derived metric family.
    pub max_series: usize,
    /// Client or server spans waiting for their other half.
    pub max_pending_edges: usize,
    /// How long a half edge waits before it is resolved as a virtual node
    /// or given up.
    pub edge_wait_nanos: u64,
}

impl Default for DerivedLimits {
    fn default() -> Self {
        Self {
            max_series: 10_000,
            max_pending_edges: 20_000,
            edge_wait_nanos: 10_000_000_000,
        }
    }
}

#[derive(Debug)]
pub struct Derived {
    span_metrics: Mutex<SpanMetrics>,
    service_graph: Mutex<ServiceGraph>,
}

impl Derived {
    pub fn new(limits: DerivedLimits) -> Self {
        Self {
            span_metrics: Mutex::new(SpanMetrics::new(limits.max_series)),
            service_graph: Mutex::new(ServiceGraph::new(limits)),
        }
    }

    pub fn observe_traces(&self, request: &ExportTraceServiceRequest, now_unix_nano: u64) {
        let mut span_metrics = self.span_metrics.lock();
        let mut graph = self.service_graph.lock();
        for resource_spans in &request.resource_spans {
            let service = service_name(resource_spans.resource.as_ref().map(|r| &r.attributes));
            let service: Arc<str> = service.into();
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                let Some(facts) = SpanFacts::new(span, &service) else {
                    continue;
                };
                span_metrics.observe(&facts);
                graph.observe(&facts, span);
            }
        }
        graph.expire(now_unix_nano);
    }

    /// Resolves half edges whose wait is over, even when no spans arrive.
    pub fn tick(&self, now_unix_nano: u64) {
        self.service_graph.lock().expire(now_unix_nano);
    }

    pub fn render(&self, out: &mut Writer) {
        self.span_metrics.lock().render(out);
        self.service_graph.lock().render(out);
        let dropped = [
            ("span_metrics", self.span_metrics.lock().dropped()),
            ("service_graph", self.service_graph.lock().dropped()),
        ];
        let name = "firedrill_collector_derived_dropped";
        out.family(
            name,
            "counter",
            "Spans not reflected in derived metrics: series cap reached, or (service graph) no peer found in time",
            "",
        );
        for (metric, count) in dropped {
            out.sample(name, "_total", &[("metric", metric)], count as f64);
        }
    }
}

/// What the derived metrics need from one span.
#[derive(Debug)]
struct SpanFacts<'a> {
    service: &'a Arc<str>,
    name: &'a str,
    kind: i32,
    status: i32,
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    seconds: f64,
    end_unix_nano: u64,
}

impl<'a> SpanFacts<'a> {
    /// `None` for spans the receiver would have refused.
    fn new(span: &'a Span, service: &'a Arc<str>) -> Option<Self> {
        let nanos = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        Some(Self {
            service,
            name: &span.name,
            kind: span.kind,
            status: span.status.as_ref().map_or(0, |s| s.code),
            trace_id: TraceId::from_slice(&span.trace_id)?,
            span_id: SpanId::from_slice(&span.span_id)?,
            parent: SpanId::from_slice(&span.parent_span_id),
            seconds: nanos as f64 / 1e9,
            end_unix_nano: span.end_time_unix_nano,
        })
    }

    fn failed(&self) -> bool {
        self.status == 2
    }

    fn exemplar(&self) -> Exemplar {
        Exemplar {
            trace_id: self.trace_id,
            value: self.seconds,
            unix_nano: self.end_unix_nano,
        }
    }
}

fn service_name(attributes: Option<&Vec<KeyValue>>) -> &str {
    attributes
        .and_then(|attrs| string_attribute(attrs, "service.name"))
        .filter(|name| !name.is_empty())
        .unwrap_or(Resource::UNKNOWN_SERVICE)
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyKind::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// `SPAN_KIND_SERVER` etc., the OTLP enum names the connectors use as labels.
fn span_kind_label(kind: i32) -> &'static str {
    match kind {
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

fn status_code_label(code: i32) -> &'static str {
    match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

#[cfg(test)]
mod tests;
