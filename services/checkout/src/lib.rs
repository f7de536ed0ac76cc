//! Checkout: places orders with a saga across inventory, payment and
//! shipping.
//!
//! Steps, each idempotent per order so a retry never doubles anything:
//! reserve stock → capture payment → create shipment → commit the
//! reservation → confirm. When a step fails, the steps already done are
//! compensated in reverse (refund, release). A compensation that cannot run
//! now is written to `saga_compensations` and retried by a background job, so
//! a captured payment is never silently left behind.
//!
//! Owns tables `orders` and `saga_compensations`; publishes `order-events`.

mod metrics;
mod routes;
mod saga;
mod store;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;

pub const NAME: &str = "checkout";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let db = ctx.db()?;
    db.migrate("checkout", store::migrate).await?;
    let saga = Arc::new(saga::Saga {
        db,
        cart: ctx.peer("cart")?,
        inventory: ctx.peer("inventory")?,
        payment: ctx.peer("payment")?,
        shipping: ctx.peer("shipping")?,
        broker: ctx.peer(firedrill_runtime::queue::BROKER)?,
        metrics: metrics::CheckoutMetrics::new(&ctx.meters),
    });
    saga::spawn_compensation_retrier(saga.clone(), ctx.shutdown.clone());
    Ok(routes::router(saga))
}
