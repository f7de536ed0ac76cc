//! One place that defines how a metric is recorded.
//!
//! Every instrument is recorded twice from a single call: into the OTel SDK
//! (pushed to the collector over OTLP) and into a `prometheus-client` registry
//! served at `/metrics` in OpenMetrics format. Histograms attach the current
//! trace id as an exemplar, which the OTel Rust SDK cannot do, so Grafana can
//! jump from a latency bucket to a trace.
//!
//! Names are given once in OTel form (`http.server.request.duration`, unit
//! `s`) and translated the way the OTel→Prometheus convention does
//! (`http_server_request_duration_seconds`, dots in label names → `_`).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit as PromUnit};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::Identity;

/// Label values of one observation, keyed by OTel attribute name.
pub type Attrs<'a> = &'a [(&'static str, &'a str)];

type PromLabels = Vec<(String, String)>;
type TraceExemplar = Vec<(String, String)>;

/// Latency buckets (seconds) shared by every duration histogram, so queries
/// can aggregate across services.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// Units, named the way both conventions understand them.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    Seconds,
    Bytes,
    /// A count of things (connections, messages): no suffix.
    Count,
}

impl Unit {
    fn otel(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Bytes => "By",
            Unit::Count => "{count}",
        }
    }

    fn prom(self) -> Option<PromUnit> {
        match self {
            Unit::Seconds => Some(PromUnit::Seconds),
            Unit::Bytes => Some(PromUnit::Bytes),
            Unit::Count => None,
        }
    }
}

/// The process's metric registry and OTel meter.
#[derive(Clone)]
pub struct Meters {
    inner: Arc<MetersInner>,
}

struct MetersInner {
    registry: Mutex<Registry>,
    meter: opentelemetry::metrics::Meter,
}

impl Meters {
    /// Creates the registry and announces the process identity as
    /// `target_info`, as the OTel→Prometheus mapping does for resources.
    pub fn new(identity: &Identity) -> Self {
        let mut registry = Registry::default();
        let info = Info::new(vec![
            ("service_name".to_string(), identity.service.clone()),
            (
                "service_instance_id".to_string(),
                identity.instance_id.clone(),
            ),
            ("service_version".to_string(), identity.version.clone()),
            (
                "deployment_environment".to_string(),
                identity.environment.clone(),
            ),
        ]);
        registry.register("target", "Target metadata", info);
        let meter = opentelemetry::global::meter("firedrill");
        Meters {
            inner: Arc::new(MetersInner {
                registry: Mutex::new(registry),
                meter,
            }),
        }
    }

    /// A histogram; `buckets` are upper bounds in `unit`.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &str,
        unit: Unit,
        buckets: &'static [f64],
    ) -> Histogram {
        let prom = Family::new_with_constructor(Buckets(buckets));
        self.register(name, help, Some(unit), prom.clone());
        let otel = self
            .inner
            .meter
            .f64_histogram(name)
            .with_description(help.to_string())
            .with_unit(unit.otel())
            .with_boundaries(buckets.to_vec())
            .build();
        Histogram { prom, otel }
    }

    /// A monotonic count of events (`_total` is appended on the Prometheus
    /// side).
    pub fn counter(&self, name: &'static str, help: &str) -> Counter {
        self.counter_of(name, help, Unit::Count)
    }

    /// A monotonic counter of a quantity in `unit`: CPU seconds become
    /// `process_cpu_time_seconds_total`, as Prometheus names them.
    pub fn counter_of(&self, name: &'static str, help: &str, unit: Unit) -> Counter {
        let prom = Family::<PromLabels, PromCounter<f64, AtomicU64>>::default();
        self.register(name, help, Some(unit), prom.clone());
        let mut otel = self
            .inner
            .meter
            .f64_counter(name)
            .with_description(help.to_string());
        if unit.prom().is_some() {
            otel = otel.with_unit(unit.otel());
        }
        Counter {
            prom,
            otel: otel.build(),
        }
    }

    /// A value that goes up and down (pool sizes, queue depth, breaker state).
    pub fn gauge(&self, name: &'static str, help: &str, unit: Unit) -> Gauge {
        let prom = Family::<PromLabels, PromGauge<f64, AtomicU64>>::default();
        self.register(name, help, Some(unit), prom.clone());
        let otel = self
            .inner
            .meter
            .f64_gauge(name)
            .with_description(help.to_string())
            .with_unit(unit.otel())
            .build();
        Gauge { prom, otel }
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        metric: impl prometheus_client::registry::Metric,
    ) {
        let prom_name = name.replace('.', "_");
        let mut registry = self.inner.registry.lock();
        match unit.and_then(Unit::prom) {
            Some(unit) => registry.register_with_unit(prom_name, help, unit, metric),
            None => registry.register(prom_name, help, metric),
        }
    }

    /// The registry in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Encoding into a String cannot fail: fmt::Write for String is
        // infallible and every metric here encodes plain numbers.
        let _ = encode(&mut out, &self.inner.registry.lock());
        out
    }
}

/// The Content-Type of [`Meters::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
struct Buckets(&'static [f64]);

impl MetricConstructor<HistogramWithExemplars<TraceExemplar>> for Buckets {
    fn new_metric(&self) -> HistogramWithExemplars<TraceExemplar> {
        HistogramWithExemplars::new(self.0.iter().copied())
    }
}

// === impl Histogram ===

#[derive(Clone)]
pub struct Histogram {
    prom: Family<PromLabels, HistogramWithExemplars<TraceExemplar>, Buckets>,
    otel: opentelemetry::metrics::Histogram<f64>,
}

impl Histogram {
    /// Records `value`, with the current span's trace id as exemplar.
    pub fn record(&self, value: f64, attrs: Attrs<'_>) {
        self.record_with_trace(value, attrs, current_trace_id().as_deref());
    }

    /// Records `value` with an explicit exemplar trace id.
    pub fn record_with_trace(&self, value: f64, attrs: Attrs<'_>, trace_id: Option<&str>) {
        let exemplar = trace_id.map(|id| vec![("trace_id".to_string(), id.to_string())]);
        self.prom
            .get_or_create(&prom_labels(attrs))
            .observe(value, exemplar, None);
        self.otel.record(value, &otel_attrs(attrs));
    }
}

// === impl Counter ===

#[derive(Clone)]
pub struct Counter {
    prom: Family<PromLabels, PromCounter<f64, AtomicU64>>,
    otel: opentelemetry::metrics::Counter<f64>,
}

impl Counter {
    pub fn add(&self, value: f64, attrs: Attrs<'_>) {
        self.prom.get_or_create(&prom_labels(attrs)).inc_by(value);
        self.otel.add(value, &otel_attrs(attrs));
    }

    pub fn inc(&self, attrs: Attrs<'_>) {
        self.add(1.0, attrs);
    }

    /// The Prometheus-side value of one series (for tests and status views).
    pub fn get(&self, attrs: Attrs<'_>) -> f64 {
        self.prom
            .get(&prom_labels(attrs))
            .map(|c| c.get())
            .unwrap_or(0.0)
    }
}

// === impl Gauge ===

#[derive(Clone)]
pub struct Gauge {
    prom: Family<PromLabels, PromGauge<f64, AtomicU64>>,
    otel: opentelemetry::metrics::Gauge<f64>,
}

impl Gauge {
    pub fn set(&self, value: f64, attrs: Attrs<'_>) {
        self.prom.get_or_create(&prom_labels(attrs)).set(value);
        self.otel.record(value, &otel_attrs(attrs));
    }
}

fn prom_labels(attrs: Attrs<'_>) -> PromLabels {
    attrs
        .iter()
        .map(|(k, v)| (k.replace('.', "_"), (*v).to_string()))
        .collect()
}

/// OTel attributes; semantic-convention integer attributes are sent as ints.
fn otel_attrs(attrs: Attrs<'_>) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(
            |(k, v)| match (k.ends_with("status_code"), v.parse::<i64>()) {
                (true, Ok(n)) => KeyValue::new(*k, n),
                _ => KeyValue::new(*k, (*v).to_string()),
            },
        )
        .collect()
}

/// The trace id of the current `tracing` span, if it is being traced.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meters() -> Meters {
        Meters::new(&Identity {
            service: "svc".into(),
            instance_id: "svc-1".into(),
            version: "1.2.3".into(),
            environment: "test".into(),
        })
    }

    #[test]
    fn names_follow_the_otel_to_prometheus_translation() {
        let m = meters();
        let h = m.histogram(
            "http.server.request.duration",
            "d",
            Unit::Seconds,
            LATENCY_BUCKETS,
        );
        h.record_with_trace(
            0.02,
            &[("http.request.method", "GET"), ("http.route", "/x")],
            Some("abc"),
        );
        let c = m.counter("db.client.connection.timeouts", "t");
        c.inc(&[("db.client.connection.pool.name", "main")]);
        let text = m.encode();
        assert!(
            text.contains("# TYPE http_server_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.contains("http_request_method=\"GET\""), "{text}");
        assert!(
            text.contains("# {trace_id=\"abc\"} 0.02"),
            "exemplar missing: {text}"
        );
        assert!(
            text.contains(
                "db_client_connection_timeouts_total{db_client_connection_pool_name=\"main\"} 1.0"
            ),
            "{text}"
        );
        assert!(text.contains("target_info{service_name=\"svc\""), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn status_codes_become_integer_attributes() {
        let kv = otel_attrs(&[("http.response.status_code", "503"), ("http.route", "/x")]);
        assert_eq!(kv[0].value, opentelemetry::Value::I64(503));
        assert_eq!(kv[1].value, opentelemetry::Value::from("/x"));
    }
}
