//! Payment's business metrics.

use firedrill_runtime::metrics::{Counter, Histogram, Meters, Unit};

/// Bucket bounds for order amounts, in cents ($5 .. $2,500).
const AMOUNT_BUCKETS: &[f64] = &[
    500.0, 1000.0, 2500.0, 5000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0, 250_000.0,
];

#[derive(Clone)]
pub struct PaymentMetrics {
    /// Capture requests by `outcome`: `captured`, `declined`, `replayed`
    /// (an idempotent repeat), `error` (the provider failed or was
    /// unreachable).
    pub captures: Counter,
    /// Refund requests by `outcome`: `refunded`, `replayed`, `error`.
    pub refunds: Counter,
    /// Amounts captured, in cents: a shift here with clean traces is how
    /// silent data corruption upstream shows.
    pub amount: Histogram,
}

impl PaymentMetrics {
    pub fn new(meters: &Meters) -> Self {
        PaymentMetrics {
            captures: meters.counter(
                "payment.captures",
                "Payment captures, by outcome (captured, declined, replayed, error)",
            ),
            refunds: meters.counter(
                "payment.refunds",
                "Payment refunds, by outcome (refunded, replayed, error)",
            ),
            amount: meters.histogram(
                "payment.amount",
                "Amounts captured, in cents",
                Unit::Count,
                AMOUNT_BUCKETS,
            ),
        }
    }
}
