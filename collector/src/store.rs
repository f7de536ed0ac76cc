//! Where received telemetry lives: bounded, in memory, oldest evicted first.
//!
//! [`Store`] is the seam between the receivers (which only insert) and the
//! query APIs (which only read). Nothing outside this module sees the ring
//! buffers or indexes, so the in-memory implementation can later be swapped
//! for a persistent one by changing this type alone.
//!
//! Locking: spans and logs each sit behind a reader/writer lock. Writers hold
//! it for one export batch (a few hundred items; spans are encoded under it,
//! since encoding interns strings: well under a millisecond); readers hold
//! it while they search and decode or clone out what they return, never
//! while rendering JSON.

mod interner;
mod logs;
mod metrics;
mod ring;
mod spans;

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use self::{logs::LogStore, metrics::MetricStore, spans::SpanStore};
pub use self::{
    logs::{LogPage, LogQuery},
    spans::{DependencyLink, Operation, TraceQuery},
};
use crate::{
    model::{LogEntry, SpanRecord, TraceId},
    openmetrics::Writer,
    otlp::traces::{SpanVisitor, TraceExport},
};

/// How much each part of the store may hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacities {
    pub spans: usize,
    pub log_records: usize,
    pub metric_series: usize,
    /// Bytes of spans (as estimated by the store) kept before evicting.
    pub span_bytes: usize,
    pub log_bytes: usize,
}

/// Outcome of inserting a batch of spans or log records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inserted {
    /// Items of the batch that were stored.
    pub accepted: u64,
    /// Previously stored items (or early items of this batch, when the batch
    /// exceeds capacity) pushed out to make room.
    pub evicted: u64,
}

/// Outcome of recording an export of metric points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointsRecorded {
    pub accepted: u64,
    /// Points of new series refused because the series map is full.
    pub dropped: u64,
}

/// Current fill levels, for the collector's own gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    pub spans: usize,
    pub span_bytes: usize,
    pub traces: usize,
    pub log_records: usize,
    pub log_bytes: usize,
    pub metric_series: usize,
}

#[derive(Debug)]
pub struct Store {
    capacities: Capacities,
    spans: RwLock<SpanStore>,
    logs: RwLock<LogStore>,
    metrics: Mutex<MetricStore>,
}

impl Store {
    pub fn new(capacities: Capacities) -> Self {
        Self {
            capacities,
            spans: RwLock::new(SpanStore::new(capacities.spans, capacities.span_bytes)),
            logs: RwLock::new(LogStore::new(capacities.log_records, capacities.log_bytes)),
            metrics: Mutex::new(MetricStore::new(capacities.metric_series)),
        }
    }

    pub fn capacities(&self) -> Capacities {
        self.capacities
    }

    // === writes ===

    /// Stores the valid spans of a checked export, read straight from its
    /// encoding, and shows each to `visitor` (the derived metrics).
    pub fn insert_export(&self, export: &TraceExport, visitor: &mut impl SpanVisitor) -> Inserted {
        let (accepted, evicted) = self.spans.write().insert_export(export, visitor);
        Inserted { accepted, evicted }
    }

    /// Stores spans of the collector's model (tests build these).
    #[cfg(test)]
    pub fn insert_spans(&self, batch: Vec<SpanRecord>) -> Inserted {
        let accepted = batch.len() as u64;
        let mut spans = self.spans.write();
        let evicted = batch.into_iter().map(|s| spans.insert(Arc::new(s))).sum();
        Inserted { accepted, evicted }
    }

    pub fn insert_logs(&self, batch: Vec<LogEntry>) -> Inserted {
        let accepted = batch.len() as u64;
        let mut logs = self.logs.write();
        let evicted = batch.into_iter().map(|e| logs.insert(Arc::new(e))).sum();
        Inserted { accepted, evicted }
    }

    pub fn record_metrics(&self, request: &ExportMetricsServiceRequest) -> PointsRecorded {
        self.metrics.lock().record(request)
    }

    /// The received OTLP metrics in OpenMetrics text.
    pub fn render_metrics(&self, out: &mut Writer) {
        self.metrics.lock().render(out);
    }

    // === trace reads ===

    /// The spans of one trace sorted by start time; empty when unknown.
    pub fn trace(&self, trace_id: TraceId) -> Vec<Arc<SpanRecord>> {
        let mut spans = self.spans.read().trace(trace_id);
        spans.sort_by_key(|s| s.start_unix_nano);
        spans
    }

    /// Matching traces, the most recently received first, each sorted by
    /// span start time.
    pub fn find_traces(&self, query: &TraceQuery) -> Vec<Vec<Arc<SpanRecord>>> {
        let ids = self.spans.read().find_traces(query);
        ids.into_iter()
            .map(|id| self.trace(id))
            .filter(|spans| !spans.is_empty())
            .collect()
    }

    pub fn services(&self) -> Vec<String> {
        self.spans.read().services()
    }

    pub fn operations(&self, service: &str) -> Vec<Operation> {
        self.spans.read().operations(service)
    }

    pub fn dependencies(&self, start_unix_nano: u64, end_unix_nano: u64) -> Vec<DependencyLink> {
        self.spans
            .read()
            .dependencies(start_unix_nano, end_unix_nano)
    }

    // === log reads ===

    pub fn find_logs(&self, query: &LogQuery) -> LogPage {
        self.logs.read().find(query)
    }

    pub fn sizes(&self) -> Sizes {
        let (spans, span_bytes, traces) = {
            let spans = self.spans.read();
            (spans.len(), spans.bytes(), spans.trace_count())
        };
        let (log_records, log_bytes) = {
            let logs = self.logs.read();
            (logs.len(), logs.bytes())
        };
        Sizes {
            spans,
            span_bytes,
            traces,
            log_records,
            log_bytes,
            metric_series: self.metrics.lock().len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{child, span, trace_id};

    fn store(spans: usize) -> Store {
        Store::new(Capacities {
            spans,
            log_records: 10,
            metric_series: 10,
            span_bytes: usize::MAX,
            log_bytes: usize::MAX,
        })
    }

    #[test]
    fn batch_larger_than_capacity_counts_its_own_evictions() {
        let store = store(2);
        let batch = (1..=5).map(|n| span(n, n, "cart", "a")).collect();
        assert_eq!(
            store.insert_spans(batch),
            Inserted {
                accepted: 5,
                evicted: 3
            }
        );
        assert_eq!(store.sizes().spans, 2);
        assert_eq!(store.sizes().traces, 2);
    }

    #[test]
    fn trace_spans_come_back_sorted_by_start() {
        let store = store(10);
        let root = span(1, 1, "gateway", "GET /");
        let late_child = child(&root, 2, "cart", "GET /cart");
        store.insert_spans(vec![late_child, root]);
        let starts: Vec<_> = store
            .trace(trace_id(1))
            .iter()
            .map(|s| s.start_unix_nano)
            .collect();
        assert!(starts.is_sorted(), "{starts:?}");
    }
}
