//! The bounded ingest queue and the thread that works through it.
//!
//! Receivers decode and validate an export, then [`PipelineSender::try_send`]
//! it. The queue is bounded by the bytes of the exports in it (and in the
//! worker's hands): when a new export does not fit, it is refused at once
//! with a retryable status, so a flood costs the sender a retry and the
//! collector nothing. Everything after the queue runs on one dedicated
//! thread, so CPU-heavy conversion never delays the receivers' or the query
//! server's I/O, and the store has a single writer.
//!
//! Shutdown: [`Pipeline::drain`] stops accepting, lets the worker finish
//! what is queued (within a deadline), and counts anything left as dropped.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    derived::Derived,
    exporters::Exporters,
    model::now_unix_nano,
    otlp::{self, traces::TraceExport},
    self_metrics::{Outcome, SelfMetrics, Signal},
    store::Store,
};

/// One accepted export, already validated. Traces stay encoded (see
/// `otlp::traces`); the worker reads them in place.
#[derive(Debug)]
pub enum Batch {
    Traces(TraceExport),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

impl Batch {
    pub fn signal(&self) -> Signal {
        match self {
            Self::Traces(_) => Signal::Spans,
            Self::Logs(_) => Signal::LogRecords,
            Self::Metrics(_) => Signal::MetricPoints,
        }
    }
}

#[derive(Debug)]
struct Queued {
    batch: Batch,
    /// Encoded size, charged against the queue budget until processed.
    bytes: usize,
    items: u64,
}

enum Message {
    Batch(Queued),
    /// Everything sent before this is processed; then the worker stops.
    Drain,
}

/// Why an export was not queued. All are retryable for the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Throttled {
    #[error("the collector's ingest queue is full; retry later")]
    QueueFull,
    #[error("the collector is near its memory limit; retry later")]
    MemoryPressure,
    #[error("the collector is shutting down")]
    ShuttingDown,
}

impl Throttled {
    /// What the sender should wait before retrying: a full queue empties
    /// within a second; memory takes longer to come down.
    pub fn retry_after(self) -> Duration {
        match self {
            Self::QueueFull => Duration::from_secs(1),
            Self::MemoryPressure | Self::ShuttingDown => Duration::from_secs(5),
        }
    }
}

/// The receivers' end: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct PipelineSender {
    tx: mpsc::UnboundedSender<Message>,
    budget: Arc<Budget>,
}

#[derive(Debug)]
struct Budget {
    capacity: usize,
    used: AtomicUsize,
    closed: AtomicBool,
}

impl PipelineSender {
    /// Queues `batch` if its `bytes` fit in the budget.
    pub fn try_send(&self, batch: Batch, bytes: usize, items: u64) -> Result<(), Throttled> {
        if self.budget.closed.load(Ordering::Acquire) {
            return Err(Throttled::ShuttingDown);
        }
        let reserved = self
            .budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = used.checked_add(bytes)?;
                // An export larger than the whole budget is still let in
                // when the queue is empty, or it could never be accepted.
                (after <= self.budget.capacity || used == 0).then_some(after)
            });
        if reserved.is_err() {
            return Err(Throttled::QueueFull);
        }
        let queued = Queued {
            batch,
            bytes,
            items,
        };
        self.tx.send(Message::Batch(queued)).map_err(|_| {
            self.budget.used.fetch_sub(bytes, Ordering::AcqRel);
            Throttled::ShuttingDown
        })
    }

    /// Whether an export of `bytes` would be queued now, or the reason it
    /// would not: the cheap check receivers make before decoding. Reserves
    /// nothing, so [`Self::try_send`] still decides.
    pub fn check_room(&self, bytes: usize) -> Result<(), Throttled> {
        if self.budget.closed.load(Ordering::Acquire) {
            return Err(Throttled::ShuttingDown);
        }
        let used = self.budget.used.load(Ordering::Acquire);
        let fits = used
            .checked_add(bytes)
            .is_some_and(|after| after <= self.budget.capacity);
        if fits || used == 0 {
            Ok(())
        } else {
            Err(Throttled::QueueFull)
        }
    }

    pub fn gauge(&self) -> QueueGauge {
        QueueGauge(Arc::clone(&self.budget))
    }
}

/// Read-only view of the queue's fill, for `/metrics`.
#[derive(Debug, Clone)]
pub struct QueueGauge(Arc<Budget>);

impl QueueGauge {
    /// A gauge of a queue that never fills, for tests of other parts.
    #[cfg(test)]
    pub fn idle(capacity: usize) -> Self {
        Self(Arc::new(Budget {
            capacity,
            used: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }))
    }

    pub fn queued_bytes(&self) -> usize {
        self.0.used.load(Ordering::Acquire)
    }

    pub fn capacity_bytes(&self) -> usize {
        self.0.capacity
    }
}

/// What the worker writes to.
#[derive(Debug, Clone)]
pub struct Sinks {
    pub store: Arc<Store>,
    pub derived: Arc<Derived>,
    pub exporters: Exporters,
    pub metrics: Arc<SelfMetrics>,
}

/// The worker's end, owned by the topology.
#[derive(Debug)]
pub struct Pipeline {
    sender: PipelineSender,
    abort: Arc<AtomicBool>,
    done: oneshot::Receiver<()>,
}

impl Pipeline {
    pub fn start(capacity_bytes: usize, sinks: Sinks) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Budget {
            capacity: capacity_bytes,
            used: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        });
        let abort = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = oneshot::channel();
        let worker = Worker {
            rx,
            budget: Arc::clone(&budget),
            abort: Arc::clone(&abort),
            sinks,
        };
        thread::Builder::new()
            .name("collector-pipeline".into())
            .spawn(move || {
                worker.run();
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            sender: PipelineSender { tx, budget },
            abort,
            done,
        })
    }

    pub fn sender(&self) -> PipelineSender {
        self.sender.clone()
    }

    /// Stops accepting, then waits up to `grace` for the queue to empty.
    /// Returns false when the deadline passed; what was left is counted as
    /// dropped by the worker.
    pub async fn drain(self, grace: Duration) -> bool {
        self.sender.budget.closed.store(true, Ordering::Release);
        let _ = self.sender.tx.send(Message::Drain);
        let mut done = self.done;
        if tokio::time::timeout(grace, &mut done).await.is_ok() {
            return true;
        }
        self.abort.store(true, Ordering::Release);
        let _ = done.await;
        false
    }
}

struct Worker {
    rx: mpsc::UnboundedReceiver<Message>,
    budget: Arc<Budget>,
    abort: Arc<AtomicBool>,
    sinks: Sinks,
}

impl Worker {
    fn run(mut self) {
        while let Some(message) = self.rx.blocking_recv() {
            match message {
                Message::Batch(queued) => self.handle(queued),
                Message::Drain => {
                    // Refuse late senders, then finish what they got in.
                    self.rx.close();
                }
            }
        }
    }

    fn handle(&self, queued: Queued) {
        let Queued {
            batch,
            bytes,
            items,
        } = queued;
        if self.abort.load(Ordering::Acquire) {
            self.sinks
                .metrics
                .count(batch.signal(), Outcome::Dropped, items);
        } else {
            self.process(batch);
        }
        self.budget.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn process(&self, batch: Batch) {
        let Sinks {
            store,
            derived,
            exporters,
            metrics,
        } = &self.sinks;
        match batch {
            Batch::Traces(export) => {
                // One walk over the export feeds the store and the
                // derived metrics.
                let mut derived = derived.batch();
                let inserted = store.insert_export(&export, &mut derived);
                derived.finish(now_unix_nano());
                metrics.count(Signal::Spans, Outcome::Evicted, inserted.evicted);
                exporters.traces(&export);
            }
            Batch::Logs(request) => {
                let entries = otlp::log_entries(&request, now_unix_nano());
                let inserted = store.insert_logs(entries);
                metrics.count(Signal::LogRecords, Outcome::Evicted, inserted.evicted);
                exporters.logs(request);
            }
            Batch::Metrics(request) => {
                let recorded = store.record_metrics(&request);
                metrics.count(Signal::MetricPoints, Outcome::Dropped, recorded.dropped);
                exporters.metrics(request);
            }
        }
    }
}

#[cfg(test)]
mod cost;
