//! Shipping: books a carrier for a paid order.
//!
//! The carrier and delivery estimate come from a small, deterministic quote
//! (a hash of the order and its parcel weight), so the same order always
//! gets the same shipment, and a retried request gets the one already
//! booked.
//!
//! - Data: owns `shipments` (one per order).
//! - Dependencies: none besides its database.
//! - Emits: `shipping.shipments{shipping.carrier}`, DB spans.

mod metrics;
mod quote;
mod routes;
mod store;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;

pub const NAME: &str = "shipping";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let db = ctx.db()?;
    db.migrate("shipping", store::migrate).await?;
    let state = routes::State {
        db,
        metrics: metrics::ShippingMetrics::new(&ctx.meters),
    };
    Ok(routes::router(Arc::new(state)))
}
