//! Forwarding to downstream OTLP endpoints (Jaeger, Tempo, Loki, another
//! collector), one exporter per configured signal.
//!
//! Each exporter has a queue bounded by bytes and one task that sends its
//! exports in order, retrying transient failures with exponential backoff.
//! The pipeline hands exports over with [`Exporters::traces`] (and the
//! others), which never waits: when the queue is full the export is dropped
//! and counted. So a slow or dead downstream costs forwarded data, never
//! ingest or query latency.
//!
//! Shutdown: the queues close when the pipeline (their only sender) stops;
//! each task then sends what is left until [`ExporterTasks::flush`]'s
//! deadline, and what remains after it is dropped and counted.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsServiceRequest, logs_service_client::LogsServiceClient},
    metrics::v1::{ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient},
    trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
};
use prost::Message as _;
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::{
    config::{Endpoint, Forwarding},
    otlp::traces::TraceExport,
    self_metrics::{ExportOutcome, SelfMetrics, Signal},
};

/// Per attempt: a downstream that takes longer is treated as failing.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// After this long an export is given up (and counted as failed), so one
/// bad batch cannot hold the queue forever.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// The pipeline's handle on the exporters; empty when nothing is forwarded.
#[derive(Debug, Clone, Default)]
pub struct Exporters {
    traces: Option<Forwarder>,
    metrics: Option<Forwarder>,
    logs: Option<Forwarder>,
}

/// The exporter tasks, owned by the topology for the shutdown stage.
#[derive(Debug)]
pub struct ExporterTasks {
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

impl Exporters {
    /// Starts one task per configured endpoint; each queue gets
    /// `queue_bytes`.
    pub fn start(
        forward: &Forwarding,
        queue_bytes: usize,
        metrics: &Arc<SelfMetrics>,
    ) -> anyhow::Result<(Self, ExporterTasks)> {
        let mut tasks = JoinSet::new();
        let stop = CancellationToken::new();
        let mut start = |signal: Signal, endpoint: &Option<Endpoint>| {
            endpoint
                .as_ref()
                .map(|endpoint| {
                    let client = Client::new(endpoint)?;
                    let (tx, rx) = mpsc::unbounded_channel();
                    let forwarder = Forwarder {
                        signal,
                        tx,
                        used: Arc::new(AtomicUsize::new(0)),
                        capacity: queue_bytes,
                        metrics: Arc::clone(metrics),
                    };
                    // The task gets no sender, or its queue would never close.
                    let sending = Sending {
                        signal,
                        used: Arc::clone(&forwarder.used),
                        metrics: Arc::clone(metrics),
                    };
                    tasks.spawn(sending.run(rx, client, stop.clone()));
                    anyhow::Ok(forwarder)
                })
                .transpose()
        };
        let exporters = Self {
            traces: start(Signal::Spans, &forward.traces)?,
            metrics: start(Signal::MetricPoints, &forward.metrics)?,
            logs: start(Signal::LogRecords, &forward.logs)?,
        };
        Ok((exporters, ExporterTasks { tasks, stop }))
    }

    /// Forwards the valid spans of an export. Only forwarding needs the
    /// export in prost's form, so it is decoded here, when configured.
    pub fn traces(&self, export: &TraceExport) {
        if let Some(forwarder) = &self.traces {
            let request = export.to_request();
            let items = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum();
            forwarder.offer(Payload::Traces(request), items);
        }
    }

    pub fn metrics(&self, request: ExportMetricsServiceRequest) {
        if let Some(forwarder) = &self.metrics {
            let items = request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .filter_map(|m| m.data.as_ref())
                .map(crate::otlp::point_count)
                .sum();
            forwarder.offer(Payload::Metrics(request), items);
        }
    }

    pub fn logs(&self, request: ExportLogsServiceRequest) {
        if let Some(forwarder) = &self.logs {
            let items = request
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len() as u64)
                .sum();
            forwarder.offer(Payload::Logs(request), items);
        }
    }
}

impl ExporterTasks {
    /// Waits up to `grace` for the exporters to send what is queued, then
    /// makes them drop the rest. Returns false when the deadline passed.
    pub async fn flush(mut self, grace: Duration) -> bool {
        let flushed = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !flushed {
            self.stop.cancel();
            // Cancelled tasks only count what is left: quick, but bounded
            // anyway.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while self.tasks.join_next().await.is_some() {}
            })
            .await;
            self.tasks.abort_all();
        }
        flushed
    }
}

#[derive(Debug)]
enum Payload {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

impl Payload {
    fn encoded_len(&self) -> usize {
        match self {
            Self::Traces(r) => r.encoded_len(),
            Self::Metrics(r) => r.encoded_len(),
            Self::Logs(r) => r.encoded_len(),
        }
    }

    fn encode_to_vec(&self) -> Vec<u8> {
        match self {
            Self::Traces(r) => r.encode_to_vec(),
            Self::Metrics(r) => r.encode_to_vec(),
            Self::Logs(r) => r.encode_to_vec(),
        }
    }
}

#[derive(Debug)]
struct Outbound {
    payload: Payload,
    bytes: usize,
    items: u64,
}

#[derive(Debug, Clone)]
struct Forwarder {
    signal: Signal,
    tx: mpsc::UnboundedSender<Outbound>,
    /// Bytes queued or being sent.
    used: Arc<AtomicUsize>,
    capacity: usize,
    metrics: Arc<SelfMetrics>,
}

impl Forwarder {
    fn offer(&self, payload: Payload, items: u64) {
        let bytes = payload.encoded_len();
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = used.checked_add(bytes)?;
                (after <= self.capacity || used == 0).then_some(after)
            });
        let queued = reserved.is_ok()
            && self
                .tx
                .send(Outbound {
                    payload,
                    bytes,
                    items,
                })
                .is_ok();
        if queued {
            self.report_queue();
        } else {
            if reserved.is_ok() {
                self.used.fetch_sub(bytes, Ordering::AcqRel);
            }
            self.metrics
                .exported(self.signal, ExportOutcome::Dropped, items);
        }
    }

    fn report_queue(&self) {
        self.metrics
            .exporter_queue(self.signal, self.used.load(Ordering::Acquire));
    }
}

/// The sending task's share of a forwarder.
#[derive(Debug)]
struct Sending {
    signal: Signal,
    used: Arc<AtomicUsize>,
    metrics: Arc<SelfMetrics>,
}

impl Sending {
    async fn run(
        self,
        mut rx: mpsc::UnboundedReceiver<Outbound>,
        client: Client,
        stop: CancellationToken,
    ) {
        while let Some(outbound) = rx.recv().await {
            let outcome = if stop.is_cancelled() {
                ExportOutcome::Dropped
            } else {
                client.send_with_retry(&outbound.payload, &stop).await
            };
            self.metrics.exported(self.signal, outcome, outbound.items);
            let left = self.used.fetch_sub(outbound.bytes, Ordering::AcqRel) - outbound.bytes;
            self.metrics.exporter_queue(self.signal, left);
        }
    }
}

#[derive(Debug, Clone)]
enum Client {
    Grpc(Channel),
    Http {
        client: reqwest::Client,
        url: String,
    },
}

/// Why one attempt failed, and whether another may succeed.
#[derive(Debug)]
struct AttemptError {
    retryable: bool,
    reason: String,
}

impl Client {
    fn new(endpoint: &Endpoint) -> anyhow::Result<Self> {
        Ok(match endpoint {
            Endpoint::Grpc(url) => Self::Grpc(
                Channel::from_shared(url.clone())
                    .with_context(|| format!("invalid gRPC endpoint {url}"))?
                    .connect_timeout(ATTEMPT_TIMEOUT)
                    .timeout(ATTEMPT_TIMEOUT)
                    .connect_lazy(),
            ),
            Endpoint::Http(url) => Self::Http {
                client: reqwest::Client::builder()
                    .timeout(ATTEMPT_TIMEOUT)
                    .build()
                    .context("cannot build the OTLP/HTTP client")?,
                url: url.clone(),
            },
        })
    }

    async fn send_with_retry(&self, payload: &Payload, stop: &CancellationToken) -> ExportOutcome {
        let started = tokio::time::Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let attempt = tokio::select! {
                () = stop.cancelled() => return ExportOutcome::Dropped,
                result = self.send(payload) => result,
            };
            let error = match attempt {
                Ok(()) => return ExportOutcome::Sent,
                Err(error) => error,
            };
            if !error.retryable || started.elapsed() + backoff > GIVE_UP_AFTER {
                tracing::warn!(reason = %error.reason, "giving up forwarding an export");
                return ExportOutcome::Failed;
            }
            tracing::debug!(reason = %error.reason, ?backoff, "forwarding failed; retrying");
            tokio::select! {
                () = stop.cancelled() => return ExportOutcome::Dropped,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn send(&self, payload: &Payload) -> Result<(), AttemptError> {
        match self {
            Self::Grpc(channel) => {
                let channel = channel.clone();
                let result = match payload {
                    Payload::Traces(r) => TraceServiceClient::new(channel)
                        .export(r.clone())
                        .await
                        .map(drop),
                    Payload::Metrics(r) => MetricsServiceClient::new(channel)
                        .export(r.clone())
                        .await
                        .map(drop),
                    Payload::Logs(r) => LogsServiceClient::new(channel)
                        .export(r.clone())
                        .await
                        .map(drop),
                };
                result.map_err(|status| AttemptError {
                    retryable: retryable_code(status.code()),
                    reason: format!("gRPC {:?}: {}", status.code(), status.message()),
                })
            }
            Self::Http { client, url } => {
                let response = client
                    .post(url)
                    .header("content-type", "application/x-protobuf")
                    .body(payload.encode_to_vec())
                    .send()
                    .await
                    .map_err(|e| AttemptError {
                        retryable: true,
                        reason: format!("POST {url}: {e}"),
                    })?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                Err(AttemptError {
                    retryable: matches!(status.as_u16(), 429 | 502 | 503 | 504),
                    reason: format!("POST {url}: HTTP {status}"),
                })
            }
        }
    }
}

/// The codes OTLP says a client may retry.
fn retryable_code(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
            | Code::ResourceExhausted
    )
}
