//! The restock job: the warehouse refilling shelves.
//!
//! Without it, synthetic load would sell every product out within minutes and
//! every checkout would fail with 409. With it, "out of stock" only happens
//! when demand for one product outruns a refill period, as in a real shop.

use std::time::Duration;

use firedrill_runtime::db::{Db, Query};
use tokio_util::sync::CancellationToken;

use crate::metrics::InventoryMetrics;
use crate::store;

/// How often the job runs.
pub const EVERY: Duration = Duration::from_secs(10);
/// Products with fewer units available than this are refilled.
pub const LOW_STOCK: i64 = 50;
/// What a refilled product is topped back up to.
pub const REFILL_TO: i64 = 1000;

const RESTOCK: Query = Query {
    operation: "UPDATE",
    collection: "stock",
    text: "UPDATE stock SET available = ?2 WHERE available < ?1",
};

/// Runs the job every [`EVERY`] until `shutdown`. The first pass waits one
/// period: a fresh start has just been seeded.
pub fn spawn(db: Db, metrics: InventoryMetrics, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => run_once(&db, &metrics).await,
            }
        }
    });
}

async fn run_once(db: &Db, metrics: &InventoryMetrics) {
    match db
        .run(RESTOCK, |conn| store::restock(conn, LOW_STOCK, REFILL_TO))
        .await
    {
        Ok(refilled) => {
            metrics.stock_low.set(refilled as f64, &[]);
            if refilled > 0 {
                tracing::info!(products = refilled, "restocked {refilled} products");
            }
        }
        // The next pass retries; a few missed refills only matter if they
        // persist, which the 409 rate will show.
        Err(err) => tracing::warn!(error = %err, "restock pass failed"),
    }
}
