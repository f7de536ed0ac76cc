//! Telemetry setup: one call wires traces, metrics and logs for a process.
//!
//! `tracing` is the only instrumentation API the services use. Spans become
//! OTel spans through `tracing-opentelemetry`; events become OTel log records
//! through the appender bridge (so they carry `trace_id`/`span_id`); metrics
//! go through [`crate::metrics::Meters`], which records each instrument both to
//! the OTel SDK (pushed over OTLP) and to the Prometheus registry.
//!
//! Every exporter sits behind [`gate`], which counts what it exported and
//! can make every export fail (a telemetry-drop fault).
//!
//! With no OTLP endpoint the SDK providers still exist, without exporters:
//! spans still get ids (exemplars, log correlation) and the local log still
//! flows, so the cost of exporting can be measured by toggling one flag.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{Identity, OtlpProtocol};

pub mod gate;

use self::gate::Gated;

/// Where and how telemetry is exported.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// `http://host:port`; `None` keeps telemetry in-process only.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    pub metrics_interval: Duration,
    /// `EnvFilter` directives for the local log and OTLP logs.
    pub log_filter: String,
}

/// Keeps the SDK providers alive; [`TelemetryGuard::shutdown`] flushes them.
pub struct TelemetryGuard {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    logger: SdkLoggerProvider,
}

/// Crates whose own logs must never be exported over OTLP: the exporter uses
/// them, so exporting their logs would feed back into itself.
const EXPORTER_CRATES: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "tonic",
    "tower",
    "tower_http",
    "reqwest",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
];

/// Installs the global tracing subscriber and OTel providers.
///
/// Must be called from inside a multi-threaded tokio runtime: the tonic
/// exporter binds its channel to the current runtime.
pub fn init(identity: &Identity, export: &ExportConfig) -> anyhow::Result<TelemetryGuard> {
    if let Some(endpoint) = &export.endpoint
        && !endpoint.starts_with("http://")
        && !endpoint.starts_with("https://")
    {
        anyhow::bail!(
            "--otlp-endpoint {endpoint:?} must start with http:// (an endpoint without scheme would mean https)"
        );
    }
    let resource = resource(identity);
    let tracer = tracer_provider(resource.clone(), export)?;
    let meter = meter_provider(resource.clone(), export)?;
    let logger = logger_provider(resource, export)?;

    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
    opentelemetry::global::set_tracer_provider(tracer.clone());
    opentelemetry::global::set_meter_provider(meter.clone());

    let local_filter = EnvFilter::try_new(&export.log_filter)
        .with_context(|| format!("invalid --log filter {:?}", export.log_filter))?;

    let otel_traces = tracing_opentelemetry::layer()
        .with_tracer(tracer.tracer(identity.service.clone()))
        .with_error_records_to_exceptions(true);
    let otel_logs = opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&logger);
    let local_log = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(colour())
        .with_writer(std::io::stderr)
        .with_filter(local_filter);

    tracing_subscriber::registry()
        .with(otel_traces.with_filter(otlp_filter(&export.log_filter)?))
        .with(otel_logs.with_filter(otlp_filter(&export.log_filter)?))
        .with(local_log)
        .try_init()
        .context("a tracing subscriber is already installed")?;

    Ok(TelemetryGuard {
        tracer,
        meter,
        logger,
    })
}

/// What may become OTel spans and log records: the configured level, minus
/// the exporter's own crates. Without the exclusion, every HTTP/2 frame the
/// OTLP exporter writes would become a span to export — a feedback loop.
fn otlp_filter(directives: &str) -> anyhow::Result<EnvFilter> {
    let mut filter = EnvFilter::try_new(directives)
        .with_context(|| format!("invalid --log filter {directives:?}"))?;
    for krate in EXPORTER_CRATES {
        filter = filter.add_directive(format!("{krate}=off").parse()?);
    }
    Ok(filter)
}

/// Installs only a local stderr log: for the CLI verbs and `firedrill up`.
pub fn init_local_log(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(colour())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Colour codes only where someone reads them: a terminal, unless
/// `NO_COLOR` is set. A log file (every process of `up` writes one) gets
/// plain text.
fn colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn resource(identity: &Identity) -> Resource {
    Resource::builder()
        .with_service_name(identity.service.clone())
        .with_attributes([
            KeyValue::new("service.version", identity.version.clone()),
            KeyValue::new("service.instance.id", identity.instance_id.clone()),
            KeyValue::new("deployment.environment", identity.environment.clone()),
            KeyValue::new("service.namespace", "firedrill"),
        ])
        .build()
}

fn tracer_provider(resource: Resource, export: &ExportConfig) -> anyhow::Result<SdkTracerProvider> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &export.endpoint {
        let exporter = match export.protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build(),
            OtlpProtocol::Http => {
                let url = format!("{endpoint}/v1/traces");
                off_runtime(move || {
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_http()
                        .with_endpoint(url)
                        .build()
                })?
            }
        }
        .context("building the OTLP span exporter")?;
        builder = builder.with_batch_exporter(Gated::new(exporter));
    }
    Ok(builder.build())
}

fn meter_provider(resource: Resource, export: &ExportConfig) -> anyhow::Result<SdkMeterProvider> {
    let mut builder = SdkMeterProvider::builder().with_resource(resource);
    if let Some(endpoint) = &export.endpoint {
        let exporter = match export.protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build(),
            OtlpProtocol::Http => {
                let url = format!("{endpoint}/v1/metrics");
                off_runtime(move || {
                    opentelemetry_otlp::MetricExporter::builder()
                        .with_http()
                        .with_endpoint(url)
                        .build()
                })?
            }
        }
        .context("building the OTLP metric exporter")?;
        // The SDK default is 60 s, far too slow for a lab where a learner
        // watches an incident unfold.
        let reader = PeriodicReader::builder(Gated::new(exporter))
            .with_interval(export.metrics_interval)
            .build();
        builder = builder.with_reader(reader);
    }
    Ok(builder.build())
}

fn logger_provider(resource: Resource, export: &ExportConfig) -> anyhow::Result<SdkLoggerProvider> {
    let mut builder = SdkLoggerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &export.endpoint {
        let exporter = match export.protocol {
            OtlpProtocol::Grpc => opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build(),
            OtlpProtocol::Http => {
                let url = format!("{endpoint}/v1/logs");
                off_runtime(move || {
                    opentelemetry_otlp::LogExporter::builder()
                        .with_http()
                        .with_endpoint(url)
                        .build()
                })?
            }
        }
        .context("building the OTLP log exporter")?;
        builder = builder.with_batch_exporter(Gated::new(exporter));
    }
    Ok(builder.build())
}

/// Builds an OTLP/HTTP exporter on a plain thread. Its blocking HTTP client
/// owns a small runtime of its own, which must not be created (or dropped)
/// on a tokio worker; the SDK then drives it from its own export thread.
fn off_runtime<T: Send + 'static>(build: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    std::thread::spawn(build)
        .join()
        .map_err(|_| anyhow::anyhow!("building the OTLP/HTTP exporter panicked"))
}

impl TelemetryGuard {
    /// Flushes and stops every provider. Runs on a blocking thread: the SDK's
    /// batch processors export from their own threads and block on shutdown,
    /// which would deadlock a runtime worker that they need.
    pub async fn shutdown(self) {
        let result = tokio::task::spawn_blocking(move || {
            let _ = self.tracer.shutdown();
            let _ = self.logger.shutdown();
            let _ = self.meter.shutdown();
        });
        let _ = tokio::time::timeout(Duration::from_secs(5), result).await;
    }
}
