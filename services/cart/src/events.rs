//! `cart-events`: what happened to a cart, for the queue's consumers.
//!
//! Publishing is best-effort by design: the cart change is already
//! committed, so a broker outage must not turn a successful add into an
//! error the shopper sees. A failure is logged and counted instead.

use std::sync::Arc;

use firedrill_runtime::client::Peer;
use firedrill_runtime::queue;
use serde::Serialize;

use crate::metrics::CartMetrics;

pub const TOPIC: &str = "cart-events";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ItemAdded,
    ItemRemoved,
    CartCleared,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::ItemAdded => "item_added",
            Kind::ItemRemoved => "item_removed",
            Kind::CartCleared => "cart_cleared",
        }
    }
}

/// The message payload (docs/internal-api.md, topic `cart-events`).
#[derive(Debug, Serialize)]
pub struct CartEvent {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub user_id: i64,
    /// `None` for `cart_cleared`.
    pub product_id: Option<i64>,
    /// Units added or removed.
    pub quantity: i64,
    pub at_ms: i64,
}

pub struct Publisher {
    pub broker: Arc<Peer>,
    pub metrics: CartMetrics,
}

impl Publisher {
    pub async fn publish(&self, event: CartEvent) {
        let kind = event.kind.as_str();
        let payload = serde_json::to_value(&event).expect("cart events serialise");
        match queue::publish(&self.broker, TOPIC, &payload).await {
            Ok(_) => self
                .metrics
                .events_published
                .inc(&[("cart.event.type", kind)]),
            Err(err) => {
                self.metrics
                    .events_publish_failures
                    .inc(&[("cart.event.type", kind)]);
                tracing::warn!(
                    topic = TOPIC,
                    event = kind,
                    user_id = event.user_id,
                    error = %err,
                    "cart event not published; the cart change stands"
                );
            }
        }
    }
}
