//! The shared service runtime: everything a firedrill microservice needs that
//! is not its own domain logic.
//!
//! # Layout
//!
//! - [`config`]: the flags every service process accepts (identity, peers,
//!   telemetry, database, resilience knobs), with `FIREDRILL_*` fallbacks.
//! - [`telemetry`]: tracing subscriber + OTLP traces, metrics and logs,
//!   every exporter behind one gate (export counts, telemetry-drop faults).
//! - [`metrics`]: one place that defines instruments recorded both to OTLP and
//!   to the process's Prometheus `/metrics` endpoint (with trace exemplars).
//! - [`server`]: the HTTP server stack (timeout, body limit, server spans,
//!   RED metrics) and the testable `serve(router, listener, shutdown)`.
//! - [`client`]: calls to peer services: client-side load balancing, timeouts,
//!   retries with backoff and jitter, circuit breakers, context propagation.
//! - [`resilience`]: the mechanisms behind the client and server guards.
//! - [`db`]: the SQLite connection pool with database-convention spans.
//! - [`queue`]: producer/consumer helpers for the queue broker.
//! - [`faults`]: the fault agent: polls the controller and applies faults at
//!   the hooks above (server, client, pool, consumer), to the process, and
//!   through watchers a service registers for its own mechanisms.
//! - [`live`]: the live config (timeouts, retries, pool size, rate limits,
//!   feature flags, drained instances) the controller hands out in versions.
//! - [`clock`]: the process's notion of "now" (a fault can skew it).
//! - [`error`]: one error type that maps to an HTTP response; [`extract`]:
//!   extractors whose rejections use it.
//! - [`service`]: [`ServiceContext`], the bundle handed to each service.
//! - [`shutdown`]: SIGINT/SIGTERM → one cancellation token.
//! - `testing` (feature `testing`, tests only): build a service in-process,
//!   send it requests, stand in for its peers and the queue broker.

pub mod client;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod faults;
pub mod live;
pub mod metrics;
pub mod process;
pub mod queue;
pub mod resilience;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{AppError, AppResult};
pub use service::ServiceContext;
