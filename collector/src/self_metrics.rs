//! The collector's own metrics, served on the query listener at `/metrics`
//! (the derived and re-exposed series follow them; see `query.rs`).
//!
//! This is the one place each metric is defined. The item counter answers
//! "is telemetry getting lost, and where": every item a receiver decodes is
//! counted in `received_items_total` and exactly once as `accepted` (queued
//! for the pipeline) or `refused` (invalid, reported back as partial
//! success, or the whole export refused with a retryable status because
//! the queue was full or memory short). Accepted items may later be
//! `dropped` (not kept: metric series cap, exporter gone at shutdown) or
//! leave the store as `evicted`, so for spans and log records, once the
//! queue is empty, `accepted - dropped - evicted` equals the store size.

use std::fmt::{self, Write as _};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    pipeline::Throttled,
    store::{Capacities, Sizes},
};

/// Which kind of telemetry item (named as the OTel Collector names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Spans,
    LogRecords,
    MetricPoints,
}

/// What happened to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Accepted,
    Refused,
    Evicted,
    Dropped,
}

/// How an export request ended, whatever its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestResult {
    Ok,
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Refused with a retryable status: queue full.
    QueueFull,
    /// Refused with a retryable status: memory near the limit.
    MemoryPressure,
    ShuttingDown,
}

impl From<Throttled> for RequestResult {
    fn from(throttled: Throttled) -> Self {
        match throttled {
            Throttled::QueueFull => Self::QueueFull,
            Throttled::MemoryPressure => Self::MemoryPressure,
            Throttled::ShuttingDown => Self::ShuttingDown,
        }
    }
}

/// What became of an item handed to an exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportOutcome {
    Sent,
    /// Given up: a non-retryable answer, or retries exhausted.
    Failed,
    /// Never sent: the exporter's queue was full, or shutdown's deadline
    /// passed.
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Grpc,
    Http,
}

/// Which bounded store a gauge describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    Spans,
    Traces,
    LogRecords,
    MetricSeries,
}

impl Signal {
    fn as_str(self) -> &'static str {
        match self {
            Self::Spans => "spans",
            Self::LogRecords => "log_records",
            Self::MetricPoints => "metric_points",
        }
    }
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Refused => "refused",
            Self::Evicted => "evicted",
            Self::Dropped => "dropped",
        }
    }
}

impl RequestResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::BadRequest => "bad_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::QueueFull => "queue_full",
            Self::MemoryPressure => "memory_pressure",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

impl ExportOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
        }
    }
}

impl StoreKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Spans => "spans",
            Self::Traces => "traces",
            Self::LogRecords => "log_records",
            Self::MetricSeries => "metric_series",
        }
    }
}

/// Label values are the snake_case names above, never Rust variant names.
macro_rules! label_value {
    ($($ty:ty),*) => {$(
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
                encoder.write_str(self.as_str())
            }
        }
    )*};
}
label_value!(
    Signal,
    Outcome,
    RequestResult,
    Transport,
    StoreKind,
    ExportOutcome
);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ItemLabels {
    signal: Signal,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    transport: Transport,
    signal: Signal,
    result: RequestResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    store: StoreKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SignalLabels {
    signal: Signal,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ExportLabels {
    signal: Signal,
    outcome: ExportOutcome,
}

/// Levels read at scrape time rather than counted as they change.
#[derive(Debug, Clone, Copy, Default)]
pub struct Health {
    pub sizes: Sizes,
    pub capacities: Capacities,
    pub queue_bytes: usize,
    pub queue_capacity_bytes: usize,
    pub resident_bytes: u64,
    pub memory_limit_bytes: u64,
}

#[derive(Debug)]
pub struct SelfMetrics {
    registry: Registry,
    received: Family<SignalLabels, Counter>,
    items: Family<ItemLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    store_items: Family<StoreLabels, Gauge>,
    store_capacity: Family<StoreLabels, Gauge>,
    store_bytes: Family<StoreLabels, Gauge>,
    store_capacity_bytes: Family<StoreLabels, Gauge>,
    queue_bytes: Gauge,
    queue_capacity_bytes: Gauge,
    resident_bytes: Gauge,
    memory_limit_bytes: Gauge,
    exported: Family<ExportLabels, Counter>,
    exporter_queue_bytes: Family<SignalLabels, Gauge>,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SelfMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("firedrill_collector");
        let received = Family::<SignalLabels, Counter>::default();
        registry.register(
            "received_items",
            "Telemetry items decoded from exports, valid or not",
            received.clone(),
        );
        let items = Family::<ItemLabels, Counter>::default();
        registry.register(
            "items",
            "Telemetry items by outcome: accepted + refused = received; accepted items may later be dropped or evicted",
            items.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "export_requests",
            "OTLP export requests by transport, signal and result",
            requests.clone(),
        );
        let store_items = Family::<StoreLabels, Gauge>::default();
        registry.register(
            "store_items",
            "Items currently held by each store",
            store_items.clone(),
        );
        let store_capacity = Family::<StoreLabels, Gauge>::default();
        registry.register(
            "store_capacity",
            "Maximum items each store holds before evicting (or dropping, for metric series)",
            store_capacity.clone(),
        );
        let store_bytes = Family::<StoreLabels, Gauge>::default();
        registry.register(
            "store_bytes",
            "Estimated bytes held by each store",
            store_bytes.clone(),
        );
        let store_capacity_bytes = Family::<StoreLabels, Gauge>::default();
        registry.register(
            "store_capacity_bytes",
            "Bytes each store holds before evicting",
            store_capacity_bytes.clone(),
        );
        let queue_bytes = Gauge::default();
        registry.register(
            "queue_bytes",
            "Encoded bytes of exports waiting for (or in) the pipeline",
            queue_bytes.clone(),
        );
        let queue_capacity_bytes = Gauge::default();
        registry.register(
            "queue_capacity_bytes",
            "Ingest queue budget; exports beyond it are refused with a retryable status",
            queue_capacity_bytes.clone(),
        );
        let resident_bytes = Gauge::default();
        registry.register(
            "resident_memory_bytes",
            "Resident memory of the collector process",
            resident_bytes.clone(),
        );
        let memory_limit_bytes = Gauge::default();
        registry.register(
            "memory_limit_bytes",
            "Configured memory limit; ingest is refused above 90% of it",
            memory_limit_bytes.clone(),
        );
        let exported = Family::<ExportLabels, Counter>::default();
        registry.register(
            "exported_items",
            "Items handed to a forwarding exporter, by outcome",
            exported.clone(),
        );
        let exporter_queue_bytes = Family::<SignalLabels, Gauge>::default();
        registry.register(
            "exporter_queue_bytes",
            "Encoded bytes waiting in each forwarding exporter's queue",
            exporter_queue_bytes.clone(),
        );
        let metrics = Self {
            registry,
            received,
            items,
            requests,
            store_items,
            store_capacity,
            store_bytes,
            store_capacity_bytes,
            queue_bytes,
            queue_capacity_bytes,
            resident_bytes,
            memory_limit_bytes,
            exported,
            exporter_queue_bytes,
        };
        metrics.create_every_series();
        metrics
    }

    /// Every label combination exists from the start, at zero, so rate()
    /// and absence alerts work before the first item of a kind arrives.
    /// The sets are small and fixed (12 item and 42 request series).
    fn create_every_series(&self) {
        const SIGNALS: [Signal; 3] = [Signal::Spans, Signal::LogRecords, Signal::MetricPoints];
        const OUTCOMES: [Outcome; 4] = [
            Outcome::Accepted,
            Outcome::Refused,
            Outcome::Evicted,
            Outcome::Dropped,
        ];
        const RESULTS: [RequestResult; 7] = [
            RequestResult::Ok,
            RequestResult::BadRequest,
            RequestResult::PayloadTooLarge,
            RequestResult::UnsupportedMediaType,
            RequestResult::QueueFull,
            RequestResult::MemoryPressure,
            RequestResult::ShuttingDown,
        ];
        for signal in SIGNALS {
            let _ = self.received.get_or_create(&SignalLabels { signal });
            for outcome in OUTCOMES {
                let _ = self.items.get_or_create(&ItemLabels { signal, outcome });
            }
            for transport in [Transport::Grpc, Transport::Http] {
                for result in RESULTS {
                    let labels = RequestLabels {
                        transport,
                        signal,
                        result,
                    };
                    let _ = self.requests.get_or_create(&labels);
                }
            }
        }
    }

    pub fn received(&self, signal: Signal, n: u64) {
        self.received
            .get_or_create(&SignalLabels { signal })
            .inc_by(n);
    }

    #[cfg(test)]
    pub fn item_count(&self, signal: Signal, outcome: Outcome) -> u64 {
        self.items
            .get_or_create(&ItemLabels { signal, outcome })
            .get()
    }

    pub fn exported(&self, signal: Signal, outcome: ExportOutcome, n: u64) {
        self.exported
            .get_or_create(&ExportLabels { signal, outcome })
            .inc_by(n);
    }

    pub fn exporter_queue(&self, signal: Signal, bytes: usize) {
        self.exporter_queue_bytes
            .get_or_create(&SignalLabels { signal })
            .set(saturating_i64(bytes));
    }

    /// Adds `n` items of `signal` to `outcome`; zero is a no-op.
    pub fn count(&self, signal: Signal, outcome: Outcome, n: u64) {
        if n > 0 {
            self.items
                .get_or_create(&ItemLabels { signal, outcome })
                .inc_by(n);
        }
    }

    pub fn request(&self, transport: Transport, signal: Signal, result: RequestResult) {
        let labels = RequestLabels {
            transport,
            signal,
            result,
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// OpenMetrics text with the gauges refreshed from `health`, without
    /// the closing `# EOF` (the query server appends the other families).
    pub fn render(&self, health: &Health) -> String {
        self.set_store_gauges(health.sizes, health.capacities);
        self.queue_bytes.set(saturating_i64(health.queue_bytes));
        self.queue_capacity_bytes
            .set(saturating_i64(health.queue_capacity_bytes));
        self.resident_bytes
            .set(i64::try_from(health.resident_bytes).unwrap_or(i64::MAX));
        self.memory_limit_bytes
            .set(i64::try_from(health.memory_limit_bytes).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing into a String cannot fail; an error here would be a bug in
        // the encoder, and an empty scrape is the safe answer to it.
        if encode(&mut text, &self.registry).is_err() {
            tracing::error!("failed to encode the collector's own metrics");
            text.clear();
        }
        text.strip_suffix("# EOF\n")
            .map(str::to_owned)
            .unwrap_or(text)
    }

    fn set_store_gauges(&self, sizes: Sizes, capacities: Capacities) {
        for (store, bytes, capacity) in [
            (StoreKind::Spans, sizes.span_bytes, capacities.span_bytes),
            (StoreKind::LogRecords, sizes.log_bytes, capacities.log_bytes),
        ] {
            let labels = StoreLabels { store };
            self.store_bytes
                .get_or_create(&labels)
                .set(saturating_i64(bytes));
            self.store_capacity_bytes
                .get_or_create(&labels)
                .set(saturating_i64(capacity));
        }
        let levels = [
            (StoreKind::Spans, sizes.spans, Some(capacities.spans)),
            (StoreKind::Traces, sizes.traces, None),
            (
                StoreKind::LogRecords,
                sizes.log_records,
                Some(capacities.log_records),
            ),
            (
                StoreKind::MetricSeries,
                sizes.metric_series,
                Some(capacities.metric_series),
            ),
        ];
        for (store, size, capacity) in levels {
            let labels = StoreLabels { store };
            self.store_items
                .get_or_create(&labels)
                .set(saturating_i64(size));
            if let Some(capacity) = capacity {
                self.store_capacity
                    .get_or_create(&labels)
                    .set(saturating_i64(capacity));
            }
        }
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_items_by_signal_and_outcome() {
        let metrics = SelfMetrics::new();
        metrics.count(Signal::Spans, Outcome::Accepted, 3);
        metrics.count(Signal::LogRecords, Outcome::Refused, 1);
        metrics.count(Signal::MetricPoints, Outcome::Dropped, 0);
        metrics.request(
            Transport::Http,
            Signal::Spans,
            RequestResult::PayloadTooLarge,
        );
        let sizes = Sizes {
            spans: 3,
            ..Sizes::default()
        };
        let capacities = Capacities {
            spans: 10,
            log_records: 10,
            metric_series: 5,
            span_bytes: 1000,
            log_bytes: 1000,
        };
        let health = Health {
            sizes,
            capacities,
            queue_bytes: 7,
            ..Health::default()
        };
        let text = metrics.render(&health);
        assert!(
            text.contains(
                r#"firedrill_collector_items_total{signal="spans",outcome="accepted"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"firedrill_collector_items_total{signal="log_records",outcome="refused"} 1"#
        ));
        assert!(text.contains(
            r#"firedrill_collector_items_total{signal="metric_points",outcome="dropped"} 0"#
        ));
        assert!(text.contains(
            r#"firedrill_collector_export_requests_total{transport="http",signal="spans",result="payload_too_large"} 1"#
        ));
        assert!(text.contains(r#"firedrill_collector_store_items{store="spans"} 3"#));
        assert!(text.contains(r#"firedrill_collector_store_capacity{store="metric_series"} 5"#));
        assert!(text.contains("firedrill_collector_queue_bytes 7"));
        assert!(!text.contains("# EOF"));
    }
}
