//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics`, `/v1/logs`.
//!
//! Follows the OTLP/HTTP spec: binary protobuf or JSON (chosen by
//! `Content-Type`, echoed in the response), optional `Content-Encoding:
//! gzip`, and errors answered with a `google.rpc.Status` in the request's
//! format. A full ingest queue is a 429 and memory pressure a 503, both
//! with `Retry-After`, which OTLP clients honour. The body limit is enforced twice: on the wire (a compressed body
//! can never be larger than allowed) and after decompression (a small gzip
//! bomb cannot expand past it).

use std::{io::Read, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse},
    metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse},
    trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
};
use prost::Message as _;
use serde::{Serialize, de::DeserializeOwned};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer, trace::TraceLayer};

use super::rpc_status::RpcStatus;
use crate::{
    ingest::Ingest,
    otlp,
    pipeline::Throttled,
    self_metrics::{RequestResult, Signal, Transport},
};

/// Same budget as the gRPC receiver: SDKs give up after 10 s anyway.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct HttpState {
    ingest: Arc<Ingest>,
    max_body_bytes: usize,
}

pub fn router(ingest: Arc<Ingest>, max_body_bytes: usize) -> Router {
    let state = HttpState {
        ingest,
        max_body_bytes,
    };
    Router::new()
        .route("/v1/traces", post(export::<Traces>))
        .route("/v1/metrics", post(export::<Metrics>))
        .route("/v1/logs", post(export::<Logs>))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                // A tracing span per request for the collector's own logs.
                .layer(TraceLayer::new_for_http())
                // A bug must cost one request a 500, not the connection.
                .layer(CatchPanicLayer::new())
                // Slow senders must not hold a connection forever.
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    REQUEST_TIMEOUT,
                ))
                // Wire-size limit; the decompressed size is checked in `decompress`.
                .layer(DefaultBodyLimit::max(max_body_bytes)),
        )
}

/// Serves until `shutdown` fires, then finishes in-flight exports.
pub async fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    max_body_bytes: usize,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(ingest, max_body_bytes))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

// === signals ===

/// What differs between the three endpoints: message types, decoding and
/// the ingest call. One generic handler serves them all.
trait OtlpSignal: Send + Sync + 'static {
    type Response: prost::Message + Serialize;
    const SIGNAL: Signal;

    /// Decodes a (decompressed) body and hands it to ingest.
    fn receive(
        ingest: &Ingest,
        format: Format,
        body: Bytes,
    ) -> Result<Self::Response, ReceiveError>;
}

struct Traces;
struct Metrics;
struct Logs;

impl OtlpSignal for Traces {
    type Response = ExportTraceServiceResponse;
    const SIGNAL: Signal = Signal::Spans;

    /// Protobuf stays encoded (see `otlp::traces`); JSON is decoded into
    /// prost's messages and encoded again, so both take the same path.
    fn receive(
        ingest: &Ingest,
        format: Format,
        body: Bytes,
    ) -> Result<Self::Response, ReceiveError> {
        let encoded = if format.json {
            let request = format.decode::<ExportTraceServiceRequest>(&body)?;
            Bytes::from(request.encode_to_vec())
        } else {
            // A flood is refused here, before the body is read.
            ingest
                .precheck_traces(&body)
                .map_err(ReceiveError::Throttled)?;
            body
        };
        let checked = otlp::traces::check(encoded).map_err(|e| ReceiveError::Undecodable {
            format: format.name(),
            reason: e.to_string(),
        })?;
        ingest
            .checked_traces(checked)
            .map_err(ReceiveError::Throttled)
    }
}

impl OtlpSignal for Metrics {
    type Response = ExportMetricsServiceResponse;
    const SIGNAL: Signal = Signal::MetricPoints;

    fn receive(
        ingest: &Ingest,
        format: Format,
        body: Bytes,
    ) -> Result<Self::Response, ReceiveError> {
        let request = format.decode::<ExportMetricsServiceRequest>(&body)?;
        ingest
            .metrics_export(request)
            .map_err(ReceiveError::Throttled)
    }
}

impl OtlpSignal for Logs {
    type Response = ExportLogsServiceResponse;
    const SIGNAL: Signal = Signal::LogRecords;

    fn receive(
        ingest: &Ingest,
        format: Format,
        body: Bytes,
    ) -> Result<Self::Response, ReceiveError> {
        let request = format.decode::<ExportLogsServiceRequest>(&body)?;
        ingest.logs(request).map_err(ReceiveError::Throttled)
    }
}

// === handler ===

async fn export<S: OtlpSignal>(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (format, result) = match Format::from_headers(&headers) {
        Ok(format) => (format, receive::<S>(&state, format, &headers, body)),
        // Nothing says which format the sender understands; JSON is readable.
        Err(error) => (Format::JSON, Err(error)),
    };
    let label = result
        .as_ref()
        .map_or_else(ReceiveError::result, |_| RequestResult::Ok);
    state
        .ingest
        .metrics()
        .request(Transport::Http, S::SIGNAL, label);
    match result {
        Ok(response) => format.respond(StatusCode::OK, &response),
        Err(error) => {
            tracing::debug!(%error, "refused an OTLP/HTTP export");
            let mut response = format.respond(error.status(), &error.rpc_status());
            if let ReceiveError::Throttled(throttled) = error {
                let seconds = throttled.retry_after().as_secs().max(1);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}

fn receive<S: OtlpSignal>(
    state: &HttpState,
    format: Format,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<S::Response, ReceiveError> {
    let body =
        body.map_err(|rejection| ReceiveError::from_rejection(&rejection, state.max_body_bytes))?;
    let body = decompress(headers, body, state.max_body_bytes)?;
    S::receive(&state.ingest, format, body)
}

fn decompress(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, ReceiveError> {
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| {
        v.to_str()
            .unwrap_or("(not text)")
            .trim()
            .to_ascii_lowercase()
    });
    match encoding.as_deref() {
        None | Some("" | "identity") => Ok(body),
        Some("gzip" | "x-gzip") => gunzip(&body, limit),
        Some(other) => Err(ReceiveError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Reads at most `limit + 1` bytes, so an oversized payload is detected
/// without ever being fully inflated.
fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, ReceiveError> {
    let mut inflated = Vec::new();
    let budget = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(compressed)
        .take(budget)
        .read_to_end(&mut inflated)
        .map_err(|e| ReceiveError::Undecodable {
            format: "gzip",
            reason: e.to_string(),
        })?;
    if inflated.len() > limit {
        return Err(ReceiveError::TooLarge { limit });
    }
    Ok(inflated.into())
}

// === formats ===

/// The payload format, chosen by `Content-Type` and echoed in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Format {
    content_type: &'static str,
    json: bool,
}

impl Format {
    const JSON: Self = Self {
        content_type: "application/json",
        json: true,
    };
    const SUPPORTED: [Self; 3] = [
        Self {
            content_type: "application/x-protobuf",
            json: false,
        },
        Self {
            content_type: "application/protobuf",
            json: false,
        },
        Self::JSON,
    ];

    /// Matches the media type, ignoring parameters such as `charset`.
    fn from_headers(headers: &HeaderMap) -> Result<Self, ReceiveError> {
        let raw = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("(not text)"))
            .unwrap_or("(none)");
        let essence = raw
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        Self::SUPPORTED
            .into_iter()
            .find(|f| f.content_type == essence)
            .ok_or_else(|| ReceiveError::UnsupportedContentType(raw.to_owned()))
    }

    fn name(self) -> &'static str {
        if self.json { "JSON" } else { "protobuf" }
    }

    fn decode<T: prost::Message + Default + DeserializeOwned>(
        self,
        body: &[u8],
    ) -> Result<T, ReceiveError> {
        let reason = if self.json {
            serde_json::from_slice(body).map_err(|e| e.to_string())
        } else {
            T::decode(body).map_err(|e| e.to_string())
        };
        reason.map_err(|reason| ReceiveError::Undecodable {
            format: self.name(),
            reason,
        })
    }

    fn respond<T: prost::Message + Serialize>(self, status: StatusCode, message: &T) -> Response {
        let body = if self.json {
            match serde_json::to_vec(message) {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(%error, "cannot encode an OTLP/HTTP response as JSON");
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
            }
        } else {
            message.encode_to_vec()
        };
        let content_type = HeaderValue::from_static(self.content_type);
        (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
    }
}

// === errors ===

/// Why a whole request was refused (item-level problems are partial success).
#[derive(Debug, thiserror::Error)]
enum ReceiveError {
    #[error("unsupported Content-Type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported Content-Encoding {0:?}: use gzip or identity")]
    UnsupportedEncoding(String),
    #[error("request body is larger than {limit} bytes (after decompression)")]
    TooLarge { limit: usize },
    #[error("cannot read the request body: {0}")]
    Body(String),
    #[error("cannot decode the {format} request body: {reason}")]
    Undecodable {
        format: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Throttled(Throttled),
}

impl ReceiveError {
    fn from_rejection(rejection: &BytesRejection, limit: usize) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::TooLarge { limit }
        } else {
            Self::Body(rejection.body_text())
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedContentType(_) | Self::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Body(_) | Self::Undecodable { .. } => StatusCode::BAD_REQUEST,
            Self::Throttled(Throttled::QueueFull) => StatusCode::TOO_MANY_REQUESTS,
            Self::Throttled(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn result(&self) -> RequestResult {
        match self {
            Self::UnsupportedContentType(_) | Self::UnsupportedEncoding(_) => {
                RequestResult::UnsupportedMediaType
            }
            Self::TooLarge { .. } => RequestResult::PayloadTooLarge,
            Self::Body(_) | Self::Undecodable { .. } => RequestResult::BadRequest,
            Self::Throttled(throttled) => (*throttled).into(),
        }
    }

    /// The gRPC-style status OTLP/HTTP puts in error bodies: only the
    /// throttled answers are retryable, and their codes say so.
    fn rpc_status(&self) -> RpcStatus {
        let code = match self {
            Self::TooLarge { .. } => tonic::Code::ResourceExhausted,
            Self::Throttled(_) => tonic::Code::Unavailable,
            _ => tonic::Code::InvalidArgument,
        };
        RpcStatus::new(code, self.to_string())
    }
}

#[cfg(test)]
mod tests;
