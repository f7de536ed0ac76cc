//! The provider's metrics.

use firedrill_runtime::metrics::{Counter, Gauge, Histogram, LATENCY_BUCKETS, Meters, Unit};

#[derive(Clone)]
pub struct ProviderMetrics {
    /// Charge requests by `outcome`: `succeeded`, `declined`, `replayed`
    /// (an idempotent repeat), `rejected` (invalid or conflicting request).
    pub charges: Counter,
    /// Refund requests by `outcome`: `succeeded`, `replayed`, `rejected`.
    pub refunds: Counter,
    /// Requests waiting for their turn under the merchant rate limit.
    pub queued: Gauge,
    /// How long admitted requests waited for their turn.
    pub queue_wait: Histogram,
    /// Requests refused because their turn was too far away, by route.
    pub throttled: Counter,
    /// Requests processed after their caller had hung up, by route.
    pub abandoned: Counter,
}

/// The routes the merchant rate limit admits: their refusal and abandon
/// counters start at 0, so an operator sees them (and `rate()` works)
/// before the first throttled charge, not only after.
const ADMITTED_ROUTES: &[&str] = &["/v1/charges", "/v1/refunds", "/v2/charges", "/v2/refunds"];

impl ProviderMetrics {
    pub fn new(meters: &Meters) -> Self {
        let metrics = ProviderMetrics::register(meters);
        for route in ADMITTED_ROUTES {
            metrics.throttled.add(0.0, &[("http.route", route)]);
            metrics.abandoned.add(0.0, &[("http.route", route)]);
        }
        metrics
    }

    fn register(meters: &Meters) -> Self {
        ProviderMetrics {
            charges: meters.counter(
                "provider.charges",
                "Card charges processed, by outcome (succeeded, declined, replayed, rejected)",
            ),
            refunds: meters.counter(
                "provider.refunds",
                "Refunds processed, by outcome (succeeded, replayed, rejected)",
            ),
            queued: meters.gauge(
                "provider.merchant.queued",
                "Requests waiting for their turn under the merchant rate limit",
                Unit::Count,
            ),
            queue_wait: meters.histogram(
                "provider.merchant.queue_wait",
                "Time admitted requests waited for their turn under the merchant rate limit",
                Unit::Seconds,
                LATENCY_BUCKETS,
            ),
            throttled: meters.counter(
                "provider.merchant.throttled",
                "Requests refused (503) because their turn under the merchant rate limit was too far away",
            ),
            abandoned: meters.counter(
                "provider.merchant.abandoned",
                "Requests processed after their caller had hung up",
            ),
        }
    }
}
