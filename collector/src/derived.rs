//! Metrics derived from spans, as the OpenTelemetry Collector contrib
//! `spanmetrics` and `servicegraph` connectors name them, so dashboards and
//! alerts written for those work here unchanged.
//!
//! The pipeline thread feeds every accepted span through a
//! [`DerivedBatch`] while it stores the export; `/metrics` renders the
//! result. Both maps are bounded: a series
//! beyond the cap is not created, and the spans that would have fed it are
//! counted in `firedrill_collector_derived_dropped_total`.

mod service_graph;
mod span_metrics;

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use self::{service_graph::ServiceGraph, span_metrics::SpanMetrics};
use crate::{
    model::{Resource, SpanId, TraceId},
    openmetrics::{Exemplar, Writer},
    otlp::traces::{SpanView, SpanVisitor, resource_attributes, string_attribute},
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

    /// Locks both metrics for one export: the store's walk over it feeds
    /// them every span it keeps (see [`SpanVisitor`]). So the pipeline
    /// holds these locks, then the store's write lock; nothing takes them
    /// the other way round (`/metrics` takes one lock at a time).
    pub fn batch(&self) -> DerivedBatch<'_> {
        let span_metrics = self.span_metrics.lock();
        let service: Arc<str> = Resource::UNKNOWN_SERVICE.into();
        DerivedBatch {
            service_series: span_metrics.service(&service),
            span_metrics,
            graph: self.service_graph.lock(),
            service,
        }
    }

    /// Feeds every valid span of an export in prost's form to both metrics
    /// (the pipeline has the store's walk do it instead).
    #[cfg(test)]
    pub fn observe_traces(
        &self,
        request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        now_unix_nano: u64,
    ) {
        use prost::Message as _;
        let checked = crate::otlp::traces::check(request.encode_to_vec().into())
            .expect("prost's encoding checks");
        let mut batch = self.batch();
        for resource_spans in checked.export.resource_spans() {
            batch.resource(&resource_spans.resource());
            for scope_spans in resource_spans.scope_spans() {
                for span in scope_spans.spans() {
                    batch.span(&SpanView::parse(span));
                }
            }
        }
        batch.finish(now_unix_nano);
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

/// Both metrics, locked for one export.
pub struct DerivedBatch<'d> {
    span_metrics: MutexGuard<'d, SpanMetrics>,
    graph: MutexGuard<'d, ServiceGraph>,
    /// The current resource's service, and where its span metrics are.
    service: Arc<str>,
    service_series: Option<usize>,
}

impl DerivedBatch<'_> {
    /// Resolves the half edges whose wait is over.
    pub fn finish(mut self, now_unix_nano: u64) {
        self.graph.expire(now_unix_nano);
    }
}

impl SpanVisitor for DerivedBatch<'_> {
    fn resource(&mut self, resource: &[u8]) {
        let service = service_name(resource);
        if *service != *self.service {
            self.service = service.into();
            self.service_series = self.span_metrics.service(&self.service);
        }
    }

    fn span(&mut self, span: &SpanView<'_>) {
        let Some(facts) = SpanFacts::new(span, &self.service) else {
            return;
        };
        self.span_metrics.observe(&mut self.service_series, &facts);
        self.graph.observe(&facts, span);
    }
}

/// What the derived metrics need from one span.
#[derive(Debug)]
struct SpanFacts<'a> {
    service: &'a Arc<str>,
    /// UTF-8 (checked by the receiver).
    name: &'a [u8],
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
    fn new(span: &SpanView<'a>, service: &'a Arc<str>) -> Option<Self> {
        let nanos = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        Some(Self {
            service,
            name: span.name,
            kind: span.kind,
            status: span.status_code,
            trace_id: TraceId::from_slice(span.trace_id)?,
            span_id: SpanId::from_slice(span.span_id)?,
            parent: SpanId::from_slice(span.parent_span_id),
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

/// `service.name` of an encoded resource when it is a non-empty string.
fn service_name(resource: &[u8]) -> std::borrow::Cow<'_, str> {
    string_attribute(resource_attributes(resource), "service.name")
        .filter(|name| !name.is_empty())
        .unwrap_or(std::borrow::Cow::Borrowed(Resource::UNKNOWN_SERVICE))
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
