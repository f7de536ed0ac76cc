//! The firedrill collector: receives OTLP traces, metrics and logs from every
//! process of the lab, keeps them in bounded memory, and answers Jaeger-style
//! trace queries and log searches.
//!
//! # Layout
//!
//! - `config`: flags (`CollectorArgs`) and the resulting `CollectorConfig`.
//! - `topology`: `main` and `run`; wiring, readiness and staged shutdown.
//! - `receivers`: OTLP/gRPC (`receivers/grpc.rs`) and OTLP/HTTP
//!   (`receivers/http.rs`); both only decode and hand over to `ingest`.
//! - `ingest`: validates and converts requests (`otlp.rs` does the item
//!   conversion), inserts into the store, counts every item's outcome and
//!   builds the OTLP response with partial success.
//! - `model`: the collector's own span / log / metric-point types.
//! - `store`: the bounded in-memory stores behind one `Store` type, with
//!   the indexes the queries need (trace id, service, operations).
//! - `query`: the query HTTP server: Jaeger API (`query/jaeger.rs`), log
//!   search (`query/logs.rs`), `/health`, and `/metrics` from
//!   `self_metrics`.
//!
//! # Invariants
//!
//! - Receivers never touch the store directly and queries never mutate it:
//!   `Store` is the only seam, so it can be replaced without touching either.
//! - Every received item is counted once as accepted, refused or dropped;
//!   nothing is lost silently.
//! - Memory is bounded by configuration: spans and log records by count
//!   (oldest evicted first), metric series by count (new series dropped),
//!   request bodies by size after decompression.
//! - Nothing here panics on bad input: malformed requests get 400/413/415
//!   or partial success, malformed query parameters get a 400 naming them.

mod config;
mod derived;
mod exporters;
mod ingest;
mod memory;
mod model;
mod openmetrics;
mod otlp;
mod pipeline;
mod query;
mod receivers;
mod self_metrics;
mod store;
#[cfg(test)]
mod test_support;
mod topology;

pub use self::{
    config::{CollectorArgs, CollectorConfig, Endpoint, Forwarding},
    topology::{BindError, Listeners, main, run},
};
