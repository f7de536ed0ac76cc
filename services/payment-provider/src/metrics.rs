//! The provider's metrics.

use firedrill_runtime::metrics::{Counter, Meters};

#[derive(Clone)]
pub struct ProviderMetrics {
    /// Charge requests by `outcome`: `succeeded`, `declined`, `replayed`
    /// (an idempotent repeat), `rejected` (invalid or conflicting request).
    pub charges: Counter,
    /// Refund requests by `outcome`: `succeeded`, `replayed`, `rejected`.
    pub refunds: Counter,
}

impl ProviderMetrics {
    pub fn new(meters: &Meters) -> Self {
        ProviderMetrics {
            charges: meters.counter(
                "provider.charges",
                "Card charges processed, by outcome (succeeded, declined, replayed, rejected)",
            ),
            refunds: meters.counter(
                "provider.refunds",
                "Refunds processed, by outcome (succeeded, replayed, rejected)",
            ),
        }
    }
}
