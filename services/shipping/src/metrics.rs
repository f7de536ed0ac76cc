//! Shipping's business metrics.

use firedrill_runtime::metrics::{Counter, Meters};

#[derive(Clone)]
pub struct ShippingMetrics {
    /// Shipments booked, by `shipping.carrier` (idempotent repeats are not
    /// counted).
    pub shipments: Counter,
}

impl ShippingMetrics {
    pub fn new(meters: &Meters) -> Self {
        ShippingMetrics {
            shipments: meters.counter("shipping.shipments", "Shipments booked, by carrier"),
        }
    }
}
