//! The receivers' shared front half: validate an export, admit it to the
//! pipeline or refuse it, count every item, and build the OTLP response.
//!
//! Validation happens here, before queueing, so the sender's response can
//! report invalid items as partial success. Admission is all-or-nothing per
//! export: when the queue is full or memory is short, the whole export is
//! refused with a retryable status and every item in it counted as refused,
//! so a retry never duplicates half a batch.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse},
    metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    },
    trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse},
};
use prost::Message as _;

use crate::{
    memory::MemoryGuard,
    otlp::{self, Rejection, traces::Checked},
    pipeline::{Batch, PipelineSender, Throttled},
    self_metrics::{Outcome, SelfMetrics, Signal},
};

#[derive(Debug, Clone)]
pub struct Ingest {
    pipeline: PipelineSender,
    memory: Arc<MemoryGuard>,
    metrics: Arc<SelfMetrics>,
}

impl Ingest {
    pub fn new(
        pipeline: PipelineSender,
        memory: Arc<MemoryGuard>,
        metrics: Arc<SelfMetrics>,
    ) -> Self {
        Self {
            pipeline,
            memory,
            metrics,
        }
    }

    pub fn metrics(&self) -> &SelfMetrics {
        &self.metrics
    }

    /// Refuses an encoded trace export that could not be queued anyway,
    /// before it is decoded: the pipeline is shutting down, memory is short,
    /// or the queue has no room for `encoded.len()` bytes. The refused
    /// spans are counted from the wire (see `otlp::wire`). `Ok` means
    /// "check it and call [`Self::checked_traces`]", which decides for real.
    pub fn precheck_traces(&self, encoded: &[u8]) -> Result<(), Throttled> {
        let refusal = if self.memory.under_pressure() {
            Throttled::MemoryPressure
        } else {
            match self.pipeline.check_room(encoded.len()) {
                Ok(()) => return Ok(()),
                Err(refusal) => refusal,
            }
        };
        // An empty export is accepted whatever the queue's state, and bytes
        // the skim cannot read get their proper error from the decoder.
        match otlp::wire::count_spans(encoded) {
            Some(0) | None => Ok(()),
            Some(spans) => {
                self.metrics.received(Signal::Spans, spans);
                self.metrics.count(Signal::Spans, Outcome::Refused, spans);
                Err(refusal)
            }
        }
    }

    /// Admits the valid spans of a checked export (see `otlp::traces`),
    /// charging the queue its encoded size.
    pub fn checked_traces(
        &self,
        checked: Checked,
    ) -> Result<ExportTraceServiceResponse, Throttled> {
        let Checked {
            export,
            valid,
            refused,
            first_refusal,
        } = checked;
        let refused = Refusals {
            count: refused,
            first: first_refusal,
        };
        let bytes = export.encoded_len();
        self.admit(Batch::Traces(export), Some(bytes), valid, &refused)?;
        Ok(ExportTraceServiceResponse {
            partial_success: refused.message("spans").map(|error_message| {
                ExportTracePartialSuccess {
                    rejected_spans: refused.count_i64(),
                    error_message,
                }
            }),
        })
    }

    /// [`Self::checked_traces`] for an export in prost's form.
    #[cfg(test)]
    pub fn traces(
        &self,
        request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, Throttled> {
        let encoded = request.encode_to_vec().into();
        self.checked_traces(otlp::traces::check(encoded).expect("prost's encoding checks"))
    }

    pub fn logs(
        &self,
        mut request: ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse, Throttled> {
        let mut refused = Refusals::default();
        let mut valid = 0;
        for scope_logs in request
            .resource_logs
            .iter_mut()
            .flat_map(|r| &mut r.scope_logs)
        {
            scope_logs
                .log_records
                .retain(|record| refused.keep(otlp::check_log_record(record), &mut valid));
        }
        self.admit(Batch::Logs(request), None, valid, &refused)?;
        Ok(ExportLogsServiceResponse {
            partial_success: refused.message("log records").map(|error_message| {
                ExportLogsPartialSuccess {
                    rejected_log_records: refused.count_i64(),
                    error_message,
                }
            }),
        })
    }

    pub fn metrics_export(
        &self,
        mut request: ExportMetricsServiceRequest,
    ) -> Result<ExportMetricsServiceResponse, Throttled> {
        let mut refused = Refusals::default();
        let mut valid = 0;
        for metric in request
            .resource_metrics
            .iter_mut()
            .flat_map(|r| &mut r.scope_metrics)
            .flat_map(|s| &mut s.metrics)
        {
            valid += otlp::retain_valid_points(metric, |r| refused.note(r));
        }
        self.admit(Batch::Metrics(request), None, valid, &refused)?;
        Ok(ExportMetricsServiceResponse {
            partial_success: refused.message("data points").map(|error_message| {
                ExportMetricsPartialSuccess {
                    rejected_data_points: refused.count_i64(),
                    error_message,
                }
            }),
        })
    }

    /// Queues the valid part of an export and counts every item of it.
    /// `encoded_bytes` is the export's size when the receiver knows it
    /// (charged to the queue); otherwise it is computed.
    fn admit(
        &self,
        batch: Batch,
        encoded_bytes: Option<usize>,
        valid: u64,
        refused: &Refusals,
    ) -> Result<(), Throttled> {
        let signal = batch.signal();
        self.metrics.received(signal, valid + refused.count);
        self.metrics.count(signal, Outcome::Refused, refused.count);
        if valid == 0 {
            return Ok(());
        }
        let admitted = if self.memory.under_pressure() {
            Err(Throttled::MemoryPressure)
        } else {
            let bytes = encoded_bytes.unwrap_or_else(|| match &batch {
                Batch::Traces(export) => export.encoded_len(),
                Batch::Logs(r) => r.encoded_len(),
                Batch::Metrics(r) => r.encoded_len(),
            });
            self.pipeline.try_send(batch, bytes, valid)
        };
        let outcome = if admitted.is_ok() {
            Outcome::Accepted
        } else {
            Outcome::Refused
        };
        self.metrics.count(signal, outcome, valid);
        admitted
    }
}

/// Items refused from one request: how many, and the first reason (one
/// example is enough for the sender to find the bug).
#[derive(Debug, Default)]
struct Refusals {
    count: u64,
    first: Option<Rejection>,
}

impl Refusals {
    fn note(&mut self, rejection: Rejection) {
        self.count += 1;
        self.first.get_or_insert(rejection);
    }

    /// For `retain`: true keeps a valid item (counted in `valid`).
    fn keep(&mut self, checked: Result<(), Rejection>, valid: &mut u64) -> bool {
        match checked {
            Ok(()) => {
                *valid += 1;
                true
            }
            Err(rejection) => {
                self.note(rejection);
                false
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
        collector::trace::v1::ExportTraceServiceRequest,
        logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };

    use super::*;
    use crate::{self_metrics::Signal, test_support::test_pipeline};

    fn span(trace_id: Vec<u8>) -> Span {
        Span {
            trace_id,
            span_id: vec![1; 8],
            ..Default::default()
        }
    }

    fn traces(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[tokio::test]
    async fn partial_success_reports_refused_spans() {
        let (ingest, pipeline, store) = test_pipeline(1 << 20);
        let request = traces(vec![span(vec![1; 16]), span(vec![1; 3]), span(vec![])]);
        let partial = ingest.traces(request).unwrap().partial_success.unwrap();
        assert_eq!(partial.rejected_spans, 2);
        assert!(
            partial.error_message.contains("trace_id"),
            "{}",
            partial.error_message
        );
        assert!(pipeline.drain(std::time::Duration::from_secs(5)).await);
        assert_eq!(store.sizes().spans, 1);
    }

    #[tokio::test]
    async fn fully_accepted_logs_leave_partial_success_unset() {
        let (ingest, pipeline, store) = test_pipeline(1 << 20);
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(ingest.logs(request).unwrap().partial_success, None);
        assert!(pipeline.drain(std::time::Duration::from_secs(5)).await);
        assert_eq!(store.sizes().log_records, 1);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_the_whole_export_and_counts_it() {
        // A budget of one byte: the first export gets in (an empty queue
        // always admits one), the next is refused while it waits.
        let (ingest, pipeline, _store) = test_pipeline(1);
        let mut outcomes = Vec::new();
        for _ in 0..50 {
            outcomes.push(ingest.traces(traces(vec![span(vec![7; 16])])).is_ok());
        }
        assert!(outcomes[0]);
        let refused = outcomes.iter().filter(|ok| !**ok).count() as u64;
        let accepted = 50 - refused;
        let metrics = ingest.metrics();
        assert_eq!(metrics.item_count(Signal::Spans, Outcome::Refused), refused);
        assert_eq!(
            metrics.item_count(Signal::Spans, Outcome::Accepted),
            accepted
        );
        assert!(pipeline.drain(std::time::Duration::from_secs(5)).await);
        assert_eq!(
            ingest.traces(traces(vec![span(vec![7; 16])])),
            Err(Throttled::ShuttingDown)
        );
    }
}
