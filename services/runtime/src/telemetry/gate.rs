//! A gate in front of the process's OTLP exporters, and the count of what
//! they exported.
//!
//! Each exporter is wrapped so that every export is counted by signal and
//! outcome (`otel.sdk.exporter.{span,log,metric_data_point}.exported`, with
//! `error.type` on failures, per the OTel SDK self-observability
//! conventions), and so that a telemetry-drop fault can make every export
//! fail, as when the collector is unreachable. A failed export is dropped by
//! the SDK's batch processors and periodic reader, not retried or buffered,
//! so the process's memory stays flat while its telemetry has a gap. The
//! Prometheus `/metrics` endpoint does not go through here and keeps
//! answering.
//!
//! The gate is process-wide (an OTLP pipeline is), checked once per export
//! batch: nothing on the request path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use parking_lot::RwLock;

use crate::metrics::{Counter, Meters};

/// Whether every export fails (a telemetry-drop fault).
static FAILING: AtomicBool = AtomicBool::new(false);

/// The export counters, once the process has a metric registry.
static COUNTERS: RwLock<Option<ExportCounters>> = RwLock::new(None);

/// What a failed export reports: the error of an unreachable collector.
const UNREACHABLE: &str = "transport error: connection refused (os error 111)";

/// Makes every export fail (`true`) or lets exports through again.
pub fn set_failing(failing: bool) {
    FAILING.store(failing, Ordering::Relaxed);
}

pub fn failing() -> bool {
    FAILING.load(Ordering::Relaxed)
}

#[derive(Clone)]
struct ExportCounters {
    spans: Counter,
    logs: Counter,
    points: Counter,
}

/// Registers the export counters in `meters` (the process's registry), so
/// `/metrics` shows how much telemetry left the process and how much was
/// lost. Called once per process, after the registry exists.
pub fn count_exports(meters: &Meters) {
    *COUNTERS.write() = Some(ExportCounters {
        spans: meters.counter(
            "otel.sdk.exporter.span.exported",
            "Spans this process's OTLP exporter sent, or failed to send (error.type)",
        ),
        logs: meters.counter(
            "otel.sdk.exporter.log.exported",
            "Log records this process's OTLP exporter sent, or failed to send (error.type)",
        ),
        points: meters.counter(
            "otel.sdk.exporter.metric_data_point.exported",
            "Metric data points this process's OTLP exporter sent, or failed to send (error.type)",
        ),
    });
}

#[derive(Clone, Copy)]
enum Signal {
    Spans,
    Logs,
    Points,
}

/// Counts `n` items of `signal` with the export's outcome.
fn count(signal: Signal, n: usize, result: &OTelSdkResult, gated: bool) {
    let guard = COUNTERS.read();
    let Some(counters) = guard.as_ref() else {
        return;
    };
    let counter = match signal {
        Signal::Spans => &counters.spans,
        Signal::Logs => &counters.logs,
        Signal::Points => &counters.points,
    };
    match (result, gated) {
        (Ok(()), _) => counter.add(n as f64, &[]),
        (Err(_), true) => counter.add(n as f64, &[("error.type", "unavailable")]),
        (Err(_), false) => counter.add(n as f64, &[("error.type", "export_failed")]),
    }
}

fn refused() -> OTelSdkResult {
    Err(OTelSdkError::InternalFailure(UNREACHABLE.into()))
}

/// An exporter behind the gate.
#[derive(Debug)]
pub struct Gated<E> {
    inner: E,
}

impl<E> Gated<E> {
    pub fn new(inner: E) -> Self {
        Gated { inner }
    }
}

// === impl Gated (spans) ===

impl<E: SpanExporter> SpanExporter for Gated<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let gated = failing();
        let result = if gated {
            refused()
        } else {
            self.inner.export(batch).await
        };
        count(Signal::Spans, n, &result, gated);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

// === impl Gated (logs) ===

impl<E: LogExporter> LogExporter for Gated<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count();
        let gated = failing();
        let result = if gated {
            refused()
        } else {
            self.inner.export(batch).await
        };
        count(Signal::Logs, n, &result, gated);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn event_enabled(
        &self,
        level: opentelemetry::logs::Severity,
        target: &str,
        name: Option<&str>,
    ) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

// === impl Gated (metrics) ===

impl<E: PushMetricExporter> PushMetricExporter for Gated<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let n = data_points(metrics);
        let gated = failing();
        let result = if gated {
            refused()
        } else {
            self.inner.export(metrics).await
        };
        count(Signal::Points, n, &result, gated);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// How many data points a metric export carries.
fn data_points(metrics: &ResourceMetrics) -> usize {
    fn points<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    metrics
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .map(|metric| match metric.data() {
            AggregatedMetrics::F64(d) => points(d),
            AggregatedMetrics::U64(d) => points(d),
            AggregatedMetrics::I64(d) => points(d),
        })
        .sum()
}
