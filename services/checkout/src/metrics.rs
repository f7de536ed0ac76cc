//! Checkout's business metrics.

use firedrill_runtime::metrics::{Counter, Gauge, Meters, Unit};

#[derive(Clone)]
pub struct CheckoutMetrics {
    /// Orders by outcome (`confirmed`, `failed`) and failing step.
    pub orders: Counter,
    /// Revenue of confirmed orders, in cents: the business signal that shows
    /// silent data corruption when traces and logs look clean.
    pub revenue: Counter,
    pub compensations: Counter,
    pub compensations_pending: Gauge,
}

impl CheckoutMetrics {
    pub fn new(meters: &Meters) -> Self {
        CheckoutMetrics {
            orders: meters.counter(
                "checkout.orders",
                "Orders placed, by outcome and failing step",
            ),
            revenue: meters.counter(
                "checkout.revenue.cents",
                "Revenue of confirmed orders in cents",
            ),
            compensations: meters.counter(
                "checkout.compensations",
                "Saga compensation steps, by step and outcome",
            ),
            compensations_pending: meters.gauge(
                "checkout.compensations.pending",
                "Compensations waiting to be retried",
                Unit::Count,
            ),
        }
    }
}
