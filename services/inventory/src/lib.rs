//! Inventory: how many units of each product can still be sold.
//!
//! Checkout reserves stock for an order before taking payment, commits the
//! reservation once the order ships, and releases it when the order fails.
//! Every change is one `BEGIN IMMEDIATE` transaction, so concurrent
//! checkouts for the last units never oversell: the `UPDATE ... WHERE
//! available >= ?` guard is evaluated under the write lock, and `CHECK`
//! constraints on the table make a negative count impossible even for a bug.
//!
//! - Data: owns `stock` (one row per product, seeded with 1000 units for
//!   products 1..=240) and `reservations` (one row per order and product).
//! - Dependencies: none besides its database.
//! - Background: a restock job tops products under [`restock::LOW_STOCK`] back
//!   up to [`restock::REFILL_TO`] every [`restock::EVERY`].
//! - Emits: `inventory.reservations{outcome}`, `inventory.stock.low`, DB spans.

mod metrics;
mod restock;
mod routes;
mod store;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;

pub const NAME: &str = "inventory";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let db = ctx.db()?;
    db.migrate("inventory", store::migrate).await?;
    let metrics = metrics::InventoryMetrics::new(&ctx.meters);
    restock::spawn(
        db.clone(),
        metrics.clone(),
        ctx.live.clone(),
        ctx.shutdown.clone(),
    );
    Ok(routes::router(Arc::new(routes::State { db, metrics })))
}
