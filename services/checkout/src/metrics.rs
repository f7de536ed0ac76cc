//! Checkout's business metrics.

use firedrill_runtime::metrics::{Counter, Gauge, Histogram, Meters, Unit};

/// Order values in cents: a free order, then from a few dollars to a few
/// thousand (the catalog's prices run from $1.99 to $499.99, three lines of
/// up to three units each).
const ORDER_VALUE_BUCKETS: &[f64] = &[
    0.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0, 250_000.0,
    500_000.0,
];

#[derive(Clone)]
pub struct CheckoutMetrics {
    /// Orders by outcome (`confirmed`, `failed`) and failing step.
    pub orders: Counter,
    /// Revenue of confirmed orders, in cents: the business signal that shows
    /// silent data corruption when traces and logs look clean.
    pub revenue: Counter,
    /// The value of each confirmed order, in cents: the average order value
    /// and the share of free orders (`le="0.0"`), which a shop watches
    /// because a pricing bug shows there before anywhere else.
    pub order_value: Histogram,
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
            order_value: meters.histogram(
                "checkout.order.value.cents",
                "Value of confirmed orders in cents",
                Unit::Count,
                ORDER_VALUE_BUCKETS,
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
