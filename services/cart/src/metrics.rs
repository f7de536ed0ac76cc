//! Cart's instruments, defined once.

use firedrill_runtime::metrics::{Counter, Meters};

#[derive(Clone)]
pub struct CartMetrics {
    /// `cart-events` messages accepted by the broker, by `cart.event.type`.
    pub events_published: Counter,
    /// `cart-events` messages the broker did not take, by `cart.event.type`.
    /// The cart change itself succeeded; only downstream consumers miss it.
    pub events_publish_failures: Counter,
}

impl CartMetrics {
    pub fn new(meters: &Meters) -> Self {
        CartMetrics {
            events_published: meters.counter(
                "cart.events.published",
                "Cart events published to the queue, by type",
            ),
            events_publish_failures: meters.counter(
                "cart.events.publish_failures",
                "Cart events that could not be published, by type",
            ),
        }
    }
}
