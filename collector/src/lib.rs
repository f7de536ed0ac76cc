//! The firedrill collector: receives OTLP traces, metrics and logs from every
//! process of the lab, keeps them in bounded memory, answers Jaeger-style
//! trace queries and log searches, derives span and service-graph metrics,
//! re-exposes the services' OTLP metrics for Prometheus, and forwards all
//! three signals to downstream OTLP endpoints. `docs/collector.md` is the
//! user's guide.
//!
//! # Layout
//!
//! - `config`: flags (`CollectorArgs`) and the resulting `CollectorConfig`.
//! - `topology`: `main` and `run`; wiring, readiness and staged shutdown.
//! - `receivers`: OTLP/gRPC (`receivers/grpc.rs`; the trace service in
//!   `grpc/traces.rs` gets raw bytes) and OTLP/HTTP (`receivers/http.rs`);
//!   both only decode (trace exports: check, see `otlp/traces.rs`) and
//!   hand over to `ingest`, and refuse a trace export the queue has no
//!   room for before reading it.
//! - `otlp`: the validation boundary: conversion of logs and metrics, and
//!   trace exports read in place (`otlp/traces.rs`: a check with prost's
//!   rules on the receiver, views over the checked bytes on the pipeline)
//!   over the wire-format reader (`otlp/wire.rs`).
//! - `ingest`: validates an export (partial success for invalid items),
//!   admits it to the pipeline or refuses it retryably, counts every item.
//! - `pipeline`: the bounded ingest queue and the thread behind it, which
//!   stores the export (spans read straight from the checked protobuf in
//!   one walk that also feeds `derived`, logs converted by `otlp.rs`) and
//!   hands the export on to `exporters`.
//! - `memory`: resident-memory sampling; refuses ingest near the limit.
//! - `model`: the collector's own span / log types.
//! - `store`: the bounded in-memory stores behind one `Store` type, with
//!   the indexes the queries need, and the re-exposed OTLP metrics. Spans
//!   are kept compact (`store/spans/compact.rs`): strings interned as
//!   reference-counted symbols (`store/interner.rs`), attributes, events
//!   and links in one byte buffer per span; queries decode only the spans
//!   they return.
//! - `derived`: span metrics and service-graph metrics.
//! - `exporters`: OTLP forwarding with bounded queues and retries.
//! - `openmetrics`: the text writer for the run-time-named series.
//! - `query`: the query HTTP server: Jaeger API (`query/jaeger.rs`), log
//!   search (`query/logs.rs`), `/health`, and `/metrics`.
//!
//! # Invariants
//!
//! - Receivers never touch the store directly and queries never mutate it:
//!   the pipeline thread is the store's only writer.
//! - Every received item is counted once as accepted or refused; accepted
//!   items may later be counted dropped or evicted; nothing is lost
//!   silently. Forwarded items are counted sent, failed or dropped.
//! - Memory is bounded by configuration: spans and log records by count and
//!   bytes (oldest evicted first), the ingest and exporter queues by bytes
//!   (new exports refused or dropped), metric series and derived series by
//!   count (new series dropped), request bodies by size after
//!   decompression, and the whole process by a resident-memory limit.
//! - Nothing waits on a downstream: exporters never block the pipeline, and
//!   the pipeline never blocks a receiver.
//! - Nothing here panics on bad input: malformed requests get 400/413/415
//!   or partial success, malformed query parameters get a 400 naming them.

mod config;
mod derived;
mod exporters;
mod hashing;
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
