//! The mechanisms that make failures cascade (or not) the way they do in
//! production: backoff, circuit breakers, load shedding and rate limits.
//! Every state change is counted in a metric and logged.

pub mod backoff;
pub mod breaker;
pub mod rate_limit;
pub mod retry_budget;
pub mod shed;
