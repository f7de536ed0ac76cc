//! The pipeline stage shared by both receivers: OTLP request in, store
//! insert and outcome counts, OTLP response out.
//!
//! Ingestion is synchronous and unbuffered: when `Ingest` returns, every
//! accepted item is in the store. That is what lets shutdown stop the
//! receivers and be done, with no queue to drain, and it makes backpressure
//! trivial: a slow store slows the sender's request, never memory.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse},
    metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    },
    trace::v1::{ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse},
};

use crate::{
    model::now_unix_nano,
    otlp::{self, Rejection},
    self_metrics::{Outcome, SelfMetrics, Signal},
    store::Store,
};

#[derive(Debug, Clone)]
pub struct Ingest {
    store: Arc<Store>,
    metrics: Arc<SelfMetrics>,
}

impl Ingest {
    pub fn new(store: Arc<Store>, metrics: Arc<SelfMetrics>) -> Self {
        Self { store, metrics }
    }

    pub fn metrics(&self) -> &SelfMetrics {
        &self.metrics
    }

    pub fn traces(&self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse {
        let mut spans = Vec::new();
        let mut refused = Refusals::default();
        for resource_spans in request.resource_spans {
            let resource = otlp::resource(resource_spans.resource);
            for scope_spans in resource_spans.scope_spans {
                let scope = otlp::scope(scope_spans.scope);
                for span in scope_spans.spans {
                    refused.collect(otlp::span(span, &resource, &scope), &mut spans);
                }
            }
        }
        let inserted = self.store.insert_spans(spans);
        self.count(Signal::Spans, inserted.accepted, refused.count, 0);
        self.metrics
            .count(Signal::Spans, Outcome::Evicted, inserted.evicted);
        ExportTraceServiceResponse {
            partial_success: refused.message("spans").map(|error_message| {
                ExportTracePartialSuccess {
                    rejected_spans: refused.count_i64(),
                    error_message,
                }
            }),
        }
    }

    pub fn logs(&self, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse {
        let received_at = now_unix_nano();
        let mut entries = Vec::new();
        let mut refused = Refusals::default();
        for resource_logs in request.resource_logs {
            let resource = otlp::resource(resource_logs.resource);
            for record in resource_logs
                .scope_logs
                .into_iter()
                .flat_map(|s| s.log_records)
            {
                refused.collect(
                    otlp::log_record(record, &resource, received_at),
                    &mut entries,
                );
            }
        }
        let inserted = self.store.insert_logs(entries);
        self.count(Signal::LogRecords, inserted.accepted, refused.count, 0);
        self.metrics
            .count(Signal::LogRecords, Outcome::Evicted, inserted.evicted);
        ExportLogsServiceResponse {
            partial_success: refused.message("log records").map(|error_message| {
                ExportLogsPartialSuccess {
                    rejected_log_records: refused.count_i64(),
                    error_message,
                }
            }),
        }
    }

    /// Dropped points (series limit) are reported to the sender together
    /// with refused ones: either way the collector did not keep them.
    pub fn metrics_export(
        &self,
        request: ExportMetricsServiceRequest,
    ) -> ExportMetricsServiceResponse {
        let mut points = Vec::new();
        let mut refused = Refusals::default();
        for resource_metrics in request.resource_metrics {
            let resource = otlp::resource(resource_metrics.resource);
            for metric in resource_metrics
                .scope_metrics
                .into_iter()
                .flat_map(|s| s.metrics)
            {
                for point in otlp::metric_points(metric, &resource) {
                    refused.collect(point, &mut points);
                }
            }
        }
        let recorded = self.store.record_points(points);
        self.count(
            Signal::MetricPoints,
            recorded.accepted,
            refused.count,
            recorded.dropped,
        );
        let not_kept = Refusals {
            count: refused.count + recorded.dropped,
            first: refused
                .first
                .or((recorded.dropped > 0).then_some(NotKept::SeriesLimit)),
        };
        ExportMetricsServiceResponse {
            partial_success: not_kept.message("data points").map(|error_message| {
                ExportMetricsPartialSuccess {
                    rejected_data_points: not_kept.count_i64(),
                    error_message,
                }
            }),
        }
    }

    fn count(&self, signal: Signal, accepted: u64, refused: u64, dropped: u64) {
        self.metrics.count(signal, Outcome::Accepted, accepted);
        self.metrics.count(signal, Outcome::Refused, refused);
        self.metrics.count(signal, Outcome::Dropped, dropped);
    }
}

/// Why an item was not kept, for the partial-success message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum NotKept {
    #[error(transparent)]
    Invalid(#[from] Rejection),
    #[error("the collector's metric series limit is reached; new series are not kept")]
    SeriesLimit,
}

/// Items refused from one request: how many, and the first reason (one
/// example is enough for the sender to find the bug).
#[derive(Debug, Default)]
struct Refusals {
    count: u64,
    first: Option<NotKept>,
}

impl Refusals {
    /// Pushes an accepted item onto `accepted` or notes the rejection.
    fn collect<T>(&mut self, item: Result<T, Rejection>, accepted: &mut Vec<T>) {
        match item {
            Ok(item) => accepted.push(item),
            Err(rejection) => {
                self.count += 1;
                self.first.get_or_insert(NotKept::Invalid(rejection));
            }
        }
    }

    fn count_i64(&self) -> i64 {
        i64::try_from(self.count).unwrap_or(i64::MAX)
    }

    /// `None` when nothing was refused: OTLP wants `partial_success` unset
    /// for a fully accepted request.
    fn message(&self, noun: &str) -> Option<String> {
        let first = self.first?;
        Some(format!(
            "{} {noun} not accepted; first problem: {first}",
            self.count
        ))
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };

    use super::*;
    use crate::store::Capacities;

    fn ingest() -> Ingest {
        let store = Store::new(Capacities {
            spans: 10,
            log_records: 10,
            metric_series: 10,
        });
        Ingest::new(Arc::new(store), Arc::new(SelfMetrics::new()))
    }

    fn span(trace_id: Vec<u8>) -> Span {
        Span {
            trace_id,
            span_id: vec![1; 8],
            ..Default::default()
        }
    }

    #[test]
    fn partial_success_reports_refused_spans() {
        let ingest = ingest();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(vec![1; 16]), span(vec![1; 3]), span(vec![])],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let partial = ingest.traces(request).partial_success.unwrap();
        assert_eq!(partial.rejected_spans, 2);
        assert!(
            partial.error_message.contains("trace_id"),
            "{}",
            partial.error_message
        );
        assert_eq!(ingest.store.sizes().spans, 1);
    }

    #[test]
    fn fully_accepted_logs_leave_partial_success_unset() {
        let ingest = ingest();
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(ingest.logs(request).partial_success, None);
        assert_eq!(ingest.store.sizes().log_records, 1);
    }
}
