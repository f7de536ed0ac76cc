//! The broker's metrics, per topic (`messaging.destination.name`), named
//! after the OTel messaging conventions.
//!
//! Counters move as things happen; gauges are set from the database by
//! [`QueueMetrics::record`], which the broker calls on a one-second timer,
//! shortly after every change, and whenever someone reads a topic's stats.

use firedrill_runtime::metrics::{Counter, Gauge, Meters, Unit};

use crate::store::Stats;

/// The per-topic attribute.
pub const DESTINATION: &str = "messaging.destination.name";

#[derive(Clone)]
pub struct QueueMetrics {
    pub depth: Gauge,
    pub in_flight: Gauge,
    pub oldest_age: Gauge,
    pub dead_letter_depth: Gauge,
    pub consumer_lag: Gauge,
    pub sent: Counter,
    pub consumed: Counter,
    pub acked: Counter,
    pub dead_lettered: Counter,
}

impl QueueMetrics {
    pub fn new(meters: &Meters) -> Self {
        QueueMetrics {
            depth: meters.gauge(
                "messaging.queue.depth",
                "Messages ready for delivery",
                Unit::Count,
            ),
            in_flight: meters.gauge(
                "messaging.queue.in_flight",
                "Messages delivered and not yet acked (until their visibility timeout)",
                Unit::Count,
            ),
            oldest_age: meters.gauge(
                "messaging.queue.oldest_message_age",
                "Age of the oldest message not yet acked (ready or in flight)",
                Unit::Seconds,
            ),
            dead_letter_depth: meters.gauge(
                "messaging.queue.dead_letter.depth",
                "Messages in the dead-letter state, waiting for replay or purge",
                Unit::Count,
            ),
            consumer_lag: meters.gauge(
                "messaging.queue.consumer_lag",
                "Messages published but not yet acked (ready + in flight)",
                Unit::Count,
            ),
            sent: meters.counter(
                "messaging.client.sent.messages",
                "Messages published to the broker",
            ),
            consumed: meters.counter(
                "messaging.client.consumed.messages",
                "Messages delivered to consumers (including redeliveries)",
            ),
            acked: meters.counter(
                "messaging.client.acked.messages",
                "Messages acknowledged by consumers",
            ),
            dead_lettered: meters.counter(
                "messaging.queue.dead_lettered.messages",
                "Messages moved to the dead-letter state after too many failed deliveries",
            ),
        }
    }

    /// Sets the gauges of `topic` from its counts.
    pub fn record(&self, topic: &str, stats: &Stats, now_ms: i64) {
        let attrs = [(DESTINATION, topic)];
        self.depth.set(stats.ready as f64, &attrs);
        self.in_flight.set(stats.in_flight as f64, &attrs);
        self.oldest_age
            .set(stats.oldest_age_ms(now_ms) as f64 / 1000.0, &attrs);
        self.dead_letter_depth.set(stats.dead as f64, &attrs);
        self.consumer_lag
            .set((stats.ready + stats.in_flight) as f64, &attrs);
    }
}
