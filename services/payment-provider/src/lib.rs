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
//! - Dependencies: none.
//! - Emits: `provider.charges{outcome}`, `provider.refunds{outcome}`.

mod ledger;
mod metrics;
mod routes;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;

pub const NAME: &str = "payment-provider";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let state = routes::State {
        ledger: parking_lot::Mutex::new(ledger::Ledger::new(ctx.args.seed)),
        metrics: metrics::ProviderMetrics::new(&ctx.meters),
    };
    Ok(routes::router(Arc::new(state)))
}
