//! Inventory's business metrics.

use firedrill_runtime::metrics::{Counter, Gauge, Meters, Unit};

#[derive(Clone)]
pub struct InventoryMetrics {
    /// Reservation changes by `outcome`: `reserved`, `insufficient`,
    /// `committed`, `released`. A rise in `insufficient` is what an
    /// out-of-stock incident looks like from here.
    pub reservations: Counter,
    /// Products with fewer than `LOW_STOCK` units available, as seen by the
    /// last restock pass (before it refilled them).
    pub stock_low: Gauge,
}

impl InventoryMetrics {
    pub fn new(meters: &Meters) -> Self {
        InventoryMetrics {
            reservations: meters.counter(
                "inventory.reservations",
                "Stock reservation changes, by outcome (reserved, insufficient, committed, released)",
            ),
            stock_low: meters.gauge(
                "inventory.stock.low",
                "Products whose available stock was under the restock threshold at the last restock pass",
                Unit::Count,
            ),
        }
    }
}
