//! Integration tests: a real collector started with `run` on port-0
//! listeners, fed by the OpenTelemetry Rust SDK's own OTLP exporters (gRPC
//! and HTTP) and by raw HTTP/gRPC requests, and checked only through its
//! public query API.
//!
//! Set `TEST_LOG=1` to see the collector's logs.

mod harness;

mod export;
mod forward;
mod lifecycle;
mod overload;
mod python;
mod receiver;
