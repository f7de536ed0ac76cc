//! Projector's metrics.

use firedrill_runtime::metrics::{Counter, Histogram, Meters, Unit};

/// Seconds from an event to its projection: near zero when healthy, minutes
/// when a backlog builds.
const LAG_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Clone)]
pub struct ProjectorMetrics {
    /// Messages by topic (`messaging.destination.name`) and `outcome`:
    /// `applied`, `duplicate` (a redelivery, already applied), `ignored`
    /// (an event type with no projection), `rejected` (unreadable, nacked).
    pub events: Counter,
    /// How stale the read models are: event time → projected.
    pub lag: Histogram,
}

impl ProjectorMetrics {
    pub fn new(meters: &Meters) -> Self {
        ProjectorMetrics {
            events: meters.counter(
                "projector.events",
                "Events handled, by topic and outcome (applied, duplicate, ignored, rejected)",
            ),
            lag: meters.histogram(
                "projector.lag",
                "Time from an event to its projection into the read models",
                Unit::Seconds,
                LAG_BUCKETS,
            ),
        }
    }
}
