//! The OTLP/gRPC `TraceService`, served by hand instead of through the
//! generated `TraceServiceServer` so that the handler gets the message's
//! bytes rather than a decoded request. That lets a flood be refused
//! before anything else is done (the queue's room is checked against the
//! encoded size, and the refused spans are counted from the wire), and
//! lets accepted exports stay encoded all the way to the store
//! (`otlp::traces`).
//!
//! Everything else is what the generated server does: the same path,
//! gzip accepted, the decoded-size limit, and tonic's framing and status
//! handling (`tonic::server::Grpc`).

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Buf as _, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::{
    Request, Response, Status,
    body::Body,
    codec::{
        Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf,
        Encoder,
    },
    codegen::{BoxFuture, StdError, http},
    server::{Grpc, NamedService, UnaryService},
};

use super::GrpcReceiver;

/// The generated service's path.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Clone)]
pub struct TraceServer {
    receiver: Arc<GrpcReceiver>,
    max_message_bytes: usize,
}

impl TraceServer {
    pub fn new(receiver: Arc<GrpcReceiver>, max_message_bytes: usize) -> Self {
        Self {
            receiver,
            max_message_bytes,
        }
    }
}

impl NamedService for TraceServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tower::Service<http::Request<B>> for TraceServer
where
    B: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let export = Export(Arc::clone(&self.receiver));
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        let mut grpc = Grpc::new(RawCodec)
            .apply_compression_config(accept, EnabledCompressionEncodings::default())
            .apply_max_message_size_config(Some(self.max_message_bytes), None);
        Box::pin(async move { Ok(grpc.unary(export, request).await) })
    }
}

struct Export(Arc<GrpcReceiver>);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let receiver = Arc::clone(&self.0);
        Box::pin(async move { receiver.export_traces(request.into_inner()) })
    }
}

impl GrpcReceiver {
    fn export_traces(
        &self,
        encoded: Bytes,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let ingest = &self.ingest;
        if let Err(refused) = ingest.precheck_traces(&encoded) {
            return self.answer(crate::self_metrics::Signal::Spans, Err(refused));
        }
        let checked = crate::otlp::traces::check(encoded)
            .map_err(|e| Status::invalid_argument(format!("cannot decode the request: {e}")))?;
        self.answer(
            crate::self_metrics::Signal::Spans,
            ingest.checked_traces(checked),
        )
    }
}

/// Requests stay encoded (the handler reads them in place); responses are
/// encoded with prost.
struct RawCodec;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
