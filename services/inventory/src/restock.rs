//! The restock job: the warehouse refilling shelves.
//!
//! Without it, synthetic load would sell every product out within minutes and
//! every checkout would fail with 409. With it, "out of stock" only happens
//! when demand for one product outruns a refill period, as in a real shop.
//!
//! With the flag [`FULL_RESCAN`] on, the job also rescans every stock row
//! each second, in one write transaction that stays open while it asks the
//! warehouse for each product's count ([`RESCAN_HOLD`]): a batch job that
//! holds the shared database's only write lock most of the time, so every
//! other service's writes queue behind it (reads go on, under WAL).

use std::time::Duration;

use firedrill_runtime::db::{Db, Query};
use firedrill_runtime::live::Live;
use rusqlite::TransactionBehavior;
use tokio_util::sync::CancellationToken;

use crate::metrics::InventoryMetrics;
use crate::store;

/// How often the job runs.
pub const EVERY: Duration = Duration::from_secs(10);
/// Products with fewer units available than this are refilled.
pub const LOW_STOCK: i64 = 50;
/// What a refilled product is topped back up to.
pub const REFILL_TO: i64 = 1000;

/// The flag that turns on the full rescan.
pub const FULL_RESCAN: &str = "restock-full-rescan";
/// How often the full rescan runs while its flag is on.
pub const RESCAN_EVERY: Duration = Duration::from_secs(1);
/// How long one rescan keeps its write transaction open.
pub const RESCAN_HOLD: Duration = Duration::from_millis(900);

const RESCAN: Query = Query {
    operation: "UPDATE",
    collection: "stock",
    text: "UPDATE stock SET available = available",
};

const RESTOCK: Query = Query {
    operation: "UPDATE",
    collection: "stock",
    text: "UPDATE stock SET available = ?2 WHERE available < ?1",
};

/// Runs the job every [`EVERY`] until `shutdown`, and the full rescan every
/// [`RESCAN_EVERY`] while [`FULL_RESCAN`] is on. The first pass waits one
/// period: a fresh start has just been seeded.
pub fn spawn(db: Db, metrics: InventoryMetrics, live: Live, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut tick = tokio::time::interval_at(start + RESCAN_EVERY, RESCAN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_restock = start + EVERY;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                now = tick.tick() => {
                    if now >= next_restock {
                        next_restock = now + EVERY;
                        run_once(&db, &metrics).await;
                    }
                    if live.flag(FULL_RESCAN, "") {
                        rescan(&db).await;
                    }
                }
            }
        }
    });
}

/// One full rescan: every stock row rewritten in a transaction held open
/// for [`RESCAN_HOLD`].
async fn rescan(db: &Db) {
    let result = db
        .run(RESCAN, |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows = tx.execute(RESCAN.text, [])?;
            // The warehouse is asked for each product while the
            // transaction, and the database's write lock, stay held.
            std::thread::sleep(RESCAN_HOLD);
            tx.commit()?;
            Ok(rows)
        })
        .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "stock rescan failed");
    }
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
