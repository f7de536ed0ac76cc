//! The two OTLP receivers: gRPC (tonic) and HTTP (axum).
//!
//! Both are thin: they decode the transport's framing and hand the request
//! to the shared [`Ingest`](crate::ingest::Ingest) stage, so protobuf over
//! gRPC, protobuf over HTTP and JSON over HTTP store and count exactly the
//! same way. Each `serve` runs until its cancellation token fires, then stops
//! accepting connections and lets in-flight exports finish.

pub mod grpc;
pub mod http;
mod rpc_status;
