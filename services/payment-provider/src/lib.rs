//! Payment provider: a stand-in for an external card processor (think
//! Stripe), so that payment has a real third-party dependency to be slow,
//! flaky or down.
//!
//! - Data: in memory only, like a remote system we cannot see into: charges
//!   by idempotency key and refunds by charge, bounded to the most recent
//!   [`ledger::MAX_CHARGES`].
//! - Behaviour: every call takes a realistic, seeded, log-normal latency
//!   (median ~40 ms, bounded 10..300 ms); charges are idempotent per
//!   `idempotency_key`; only amounts over 10,000,000 cents are declined (402).
//! - Capacity: a merchant rate limit (`FIREDRILL_PROVIDER_RATE` requests per
//!   second, default [`DEFAULT_RATE`]): calls past it wait their turn in
//!   arrival order, and are processed even when their caller has gone; a
//!   call whose turn is over 15 s away is refused with 503
//!   ([`admission`]). `firedrill up` sizes the rate from its load.
//! - Dependencies: none.
//! - Emits: `provider.charges{outcome}`, `provider.refunds{outcome}`,
//!   `provider.merchant.{queued,queue_wait,throttled,abandoned}`.

pub mod admission;
mod ledger;
mod metrics;
mod routes;

use std::sync::Arc;

use anyhow::Context as _;
use firedrill_runtime::ServiceContext;

use crate::admission::{Admission, Rate};

pub const NAME: &str = "payment-provider";

/// The merchant rate (requests per second) unless `FIREDRILL_PROVIDER_RATE`
/// says otherwise: roomy, for a provider driven by hand or by tests.
pub const DEFAULT_RATE: f64 = 50.0;

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let rate = rate_from_env()?;
    let metrics = metrics::ProviderMetrics::new(&ctx.meters);
    let state = routes::State {
        ledger: parking_lot::Mutex::new(ledger::Ledger::new(ctx.args.seed)),
        admission: Admission::new(rate, metrics.clone()),
        metrics,
    };
    tracing::info!(
        rate = rate.per_second(),
        "merchant rate limit: requests per second"
    );
    Ok(routes::router(Arc::new(state)))
}

fn rate_from_env() -> anyhow::Result<Rate> {
    match std::env::var("FIREDRILL_PROVIDER_RATE") {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse::<f64>()
            .map_err(|e| e.to_string())
            .and_then(Rate::new)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("FIREDRILL_PROVIDER_RATE={raw:?}")),
        _ => Rate::new(DEFAULT_RATE).map_err(anyhow::Error::msg),
    }
}
