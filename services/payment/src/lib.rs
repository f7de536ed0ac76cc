//! Payment: takes the money for an order through the external card
//! processor (`payment-provider`), and gives it back when an order fails.
//!
//! Every operation is idempotent per order: the processor is called with the
//! idempotency key `order-{order_id}`, so a retried capture (checkout's, or
//! the runtime's after a timeout) can never charge twice, and the `payments`
//! row is the record of what happened. Runs as two instances sharing the
//! database; the key makes their races harmless too.
//!
//! - Data: owns `payments` (one row per order: captured, refunded or failed).
//! - Dependencies: `payment-provider` (`POST /v1/charges`, `POST /v1/refunds`;
//!   the `/v2/` ones for users with the `charges-v2-api` / `refunds-v2-api`
//!   feature flags on). Its declines pass through as 402; its timeouts and
//!   5xx become 504/502.
//! - Emits: `payment.captures{outcome}`, `payment.refunds{outcome}`,
//!   `payment.amount` (cents), DB and client spans.

mod metrics;
mod payments;
mod routes;
mod store;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;

pub const NAME: &str = "payment";

/// The processor's name in `--peers`.
const PROVIDER: &str = "payment-provider";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let db = ctx.db()?;
    let provider = ctx.peer(PROVIDER)?;
    db.migrate("payment", store::migrate).await?;
    let payments = payments::Payments {
        db,
        provider,
        metrics: metrics::PaymentMetrics::new(&ctx.meters),
        live: ctx.live.clone(),
    };
    Ok(routes::router(Arc::new(payments)))
}
