//! OTLP/gRPC receiver: the generated `MetricsService` and `LogsService`
//! servers from opentelemetry-proto and a hand-served `TraceService`
//! (`grpc/traces.rs`, which refuses floods before decoding), all backed by
//! [`Ingest`].

use std::{sync::Arc, time::Duration};

use opentelemetry_proto::tonic::collector::{
    logs::v1::{
        ExportLogsServiceRequest, ExportLogsServiceResponse,
        logs_service_server::{LogsService, LogsServiceServer},
    },
    metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    Request, Response, Status,
    codec::CompressionEncoding,
    transport::{Server, server::TcpIncoming},
};
use tower_http::trace::TraceLayer;

use prost::Message as _;

mod traces;

use super::rpc_status::RpcStatus;
use crate::{
    ingest::Ingest,
    pipeline::Throttled,
    self_metrics::{RequestResult, Signal, Transport},
};

/// A stuck export must not pin a connection forever; OTel SDKs time out
/// after 10 s themselves, so anything longer only wastes our resources.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` fires, then finishes in-flight exports.
///
/// `max_message_bytes` bounds a decoded message, the same budget the HTTP
/// receiver applies after decompression; tonic answers RESOURCE_EXHAUSTED
/// beyond it.
pub async fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    max_message_bytes: usize,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let receiver = Arc::new(GrpcReceiver { ingest });
    let traces = traces::TraceServer::new(Arc::clone(&receiver), max_message_bytes);
    let metrics = MetricsServiceServer::from_arc(Arc::clone(&receiver))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes);
    let logs = LogsServiceServer::from_arc(receiver)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes);
    Server::builder()
        .timeout(REQUEST_TIMEOUT)
        // One tracing span per RPC, so slow or failing exports show up in
        // the collector's own logs.
        .layer(TraceLayer::new_for_grpc())
        .add_service(traces)
        .add_service(metrics)
        .add_service(logs)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown.cancelled_owned())
        .await
}

/// One value implements all three services; they share the ingest stage.
struct GrpcReceiver {
    ingest: Arc<Ingest>,
}

impl GrpcReceiver {
    /// Counts the request and turns a refusal into its gRPC status.
    fn answer<T>(
        &self,
        signal: Signal,
        result: Result<T, Throttled>,
    ) -> Result<Response<T>, Status> {
        let label = result
            .as_ref()
            .map_or_else(|t| RequestResult::from(*t), |_| RequestResult::Ok);
        self.ingest
            .metrics()
            .request(Transport::Grpc, signal, label);
        result.map(Response::new).map_err(unavailable)
    }
}

/// UNAVAILABLE with a `google.rpc.RetryInfo` detail: the OTLP spec's way
/// of saying "retry, but not before this delay".
fn unavailable(throttled: Throttled) -> Status {
    let details = RpcStatus::retry_after(
        tonic::Code::Unavailable,
        &throttled.to_string(),
        throttled.retry_after(),
    );
    Status::with_details(
        tonic::Code::Unavailable,
        throttled.to_string(),
        details.encode_to_vec().into(),
    )
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let result = self.ingest.metrics_export(request.into_inner());
        self.answer(Signal::MetricPoints, result)
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.answer(Signal::LogRecords, self.ingest.logs(request.into_inner()))
    }
}
