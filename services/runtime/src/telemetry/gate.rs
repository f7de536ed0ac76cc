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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;
    use crate::config::Identity;
    use crate::faults::actuators::Actuators;
    use crate::faults::model::{FaultKind, FaultSpec, Target};
    use crate::faults::{ActiveFault, Faults};

    /// Stands in for the OTLP span exporter: counts what reaches it.
    #[derive(Debug, Default)]
    struct Received(Arc<AtomicUsize>);

    impl SpanExporter for Received {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.fetch_add(batch.len(), Ordering::Relaxed);
            Ok(())
        }
    }

    /// The gate is process-wide, so everything about it is one test.
    #[tokio::test]
    async fn a_failing_gate_drops_exports_counts_them_and_leaves_metrics_served() {
        let meters = Meters::new(&Identity {
            service: "payment".into(),
            instance_id: "payment-1".into(),
            version: "test".into(),
            environment: "test".into(),
        });
        count_exports(&meters);
        let received = Arc::new(AtomicUsize::new(0));
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(Gated::new(Received(received.clone())))
            .build();
        let tracer = provider.tracer("test");

        tracer.in_span("before", |_| {});
        assert_eq!(received.load(Ordering::Relaxed), 1);

        // A telemetry-drop fault starts: its actuator closes the gate.
        let faults = Faults::new("payment", "payment-1", 1);
        let mut actuators = Actuators::new(&faults, None);
        faults.assign(vec![ActiveFault {
            id: "f1".into(),
            spec: FaultSpec {
                kind: FaultKind::TelemetryDrop {},
                target: Target::parse("payment").unwrap(),
                toxicity: 1.0,
            },
            until: std::time::Instant::now() + Duration::from_secs(60),
        }]);
        actuators.reconcile(&faults.active());
        assert!(failing());
        for _ in 0..3 {
            tracer.in_span("during", |_| {});
        }
        assert_eq!(
            received.load(Ordering::Relaxed),
            1,
            "nothing reaches the exporter"
        );
        let metrics = meters.encode();
        assert!(
            metrics.contains("otel_sdk_exporter_span_exported_total{} 1.0"),
            "{metrics}"
        );
        assert!(
            metrics
                .contains(r#"otel_sdk_exporter_span_exported_total{error_type="unavailable"} 3.0"#),
            "{metrics}"
        );

        // The service and its scrape endpoint are untouched.
        let app = crate::server::app(
            axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" })),
            &meters,
            crate::server::Health {
                status: "ok",
                service: "payment".into(),
                instance: "payment-1".into(),
                version: "test".into(),
            },
            crate::server::Limits {
                request_timeout: Duration::from_secs(5),
                max_body_bytes: 1024,
                max_in_flight: 10,
            },
            Faults::none(),
            crate::live::Live::with_defaults("payment", &meters),
        );
        use tower::ServiceExt as _;
        for uri in ["/ping", "/metrics"] {
            let request = axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), axum::http::StatusCode::OK, "{uri}");
        }

        // The fault ends. No backlog was kept: only new spans go out.
        faults.assign(vec![]);
        actuators.reconcile(&faults.active());
        assert!(!failing());
        tracer.in_span("after", |_| {});
        assert_eq!(received.load(Ordering::Relaxed), 2);
    }
}
