//! The collector's own metrics, served on the query listener at `/metrics`.
//!
//! This is the one place each metric is defined. The item counter answers
//! "is telemetry getting lost, and where": every item a receiver decodes is
//! counted exactly once as `accepted`, `refused` (invalid, reported back to
//! the sender as partial success) or `dropped` (valid but not kept). Items
//! leave the store later as `evicted`, so for spans and log records
//! `accepted - evicted` equals the store size.

use std::fmt::{self, Write as _};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::store::{Capacities, Sizes};

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
label_value!(Signal, Outcome, RequestResult, Transport, StoreKind);

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

#[derive(Debug)]
pub struct SelfMetrics {
    registry: Registry,
    items: Family<ItemLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    store_items: Family<StoreLabels, Gauge>,
    store_capacity: Family<StoreLabels, Gauge>,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SelfMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("firedrill_collector");
        let items = Family::<ItemLabels, Counter>::default();
        registry.register(
            "items",
            "Telemetry items by outcome: accepted + refused + dropped = received; evicted leave the store later",
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
        let metrics = Self {
            registry,
            items,
            requests,
            store_items,
            store_capacity,
        };
        metrics.create_every_series();
        metrics
    }

    /// Every label combination exists from the start, at zero, so rate()
    /// and absence alerts work before the first item of a kind arrives.
    /// The sets are small and fixed (12 item and 24 request series).
    fn create_every_series(&self) {
        const SIGNALS: [Signal; 3] = [Signal::Spans, Signal::LogRecords, Signal::MetricPoints];
        const OUTCOMES: [Outcome; 4] = [
            Outcome::Accepted,
            Outcome::Refused,
            Outcome::Evicted,
            Outcome::Dropped,
        ];
        const RESULTS: [RequestResult; 4] = [
            RequestResult::Ok,
            RequestResult::BadRequest,
            RequestResult::PayloadTooLarge,
            RequestResult::UnsupportedMediaType,
        ];
        for signal in SIGNALS {
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

    /// OpenMetrics text with the store gauges refreshed from `sizes`.
    pub fn render(&self, sizes: Sizes, capacities: Capacities) -> String {
        self.set_store_gauges(sizes, capacities);
        let mut text = String::new();
        // Writing into a String cannot fail; an error here would be a bug in
        // the encoder, and an empty scrape is the safe answer to it.
        if encode(&mut text, &self.registry).is_err() {
            tracing::error!("failed to encode the collector's own metrics");
            text.clear();
        }
        text
    }

    fn set_store_gauges(&self, sizes: Sizes, capacities: Capacities) {
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
        };
        let text = metrics.render(sizes, capacities);
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
        assert!(text.ends_with("# EOF\n"));
    }
}
