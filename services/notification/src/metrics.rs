//! Notification's metrics.

use firedrill_runtime::metrics::{Counter, Histogram, Meters, Unit};

/// Seconds from order confirmation to email: fine near zero, and wide
/// enough to show a backlog of minutes.
const LAG_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Clone)]
pub struct NotificationMetrics {
    /// `order-events` messages by `outcome`: `sent`, `duplicate` (a
    /// redelivery, not sent again), `ignored` (another event type),
    /// `rejected` (unreadable, nacked).
    pub events: Counter,
    /// Time from the order's confirmation to its email.
    pub delivery_lag: Histogram,
}

impl NotificationMetrics {
    pub fn new(meters: &Meters) -> Self {
        NotificationMetrics {
            events: meters.counter(
                "notification.events",
                "order-events messages handled, by outcome (sent, duplicate, ignored, rejected)",
            ),
            delivery_lag: meters.histogram(
                "notification.delivery.lag",
                "Time from order confirmation to the confirmation email",
                Unit::Seconds,
                LAG_BUCKETS,
            ),
        }
    }
}
