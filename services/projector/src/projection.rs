//! What an event means for the read models: parsing, without side effects.

use serde::Deserialize;
use serde_json::Value;

pub const ORDER_EVENTS: &str = "order-events";
pub const CART_EVENTS: &str = "cart-events";

/// The change one event makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Projection {
    /// A confirmed order joins its user's history.
    Order {
        order_id: i64,
        user_id: i64,
        total_cents: i64,
        item_count: i64,
        at_ms: Option<i64>,
    },
    /// A cart changed (`item_added`, `item_removed`, `cart_cleared`).
    Cart {
        user_id: i64,
        kind: String,
        at_ms: Option<i64>,
    },
    /// Nothing to project (another event type); still recorded as processed.
    Nothing { kind: String },
}

impl Projection {
    /// When the event happened, if it says.
    pub fn at_ms(&self) -> Option<i64> {
        match self {
            Projection::Order { at_ms, .. } | Projection::Cart { at_ms, .. } => *at_ms,
            Projection::Nothing { .. } => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct OrderConfirmed {
    order_id: i64,
    user_id: i64,
    total_cents: i64,
    #[serde(default)]
    items: Vec<OrderItem>,
    #[serde(default)]
    at_ms: Option<i64>,
}

#[derive(Deserialize)]
struct OrderItem {
    #[serde(default = "one")]
    quantity: i64,
}

fn one() -> i64 {
    1
}

#[derive(Deserialize)]
struct CartEvent {
    user_id: i64,
    #[serde(default)]
    at_ms: Option<i64>,
}

const CART_EVENT_TYPES: &[&str] = &["item_added", "item_removed", "cart_cleared"];

/// Reads a message of `topic`; an error is the reason to nack it.
pub fn parse(topic: &str, payload: &Value) -> Result<Projection, String> {
    let envelope =
        Envelope::deserialize(payload).map_err(|e| format!("unreadable {topic} event: {e}"))?;
    let unreadable = |e: serde_json::Error| format!("unreadable {} event: {e}", envelope.kind);
    match (topic, envelope.kind.as_str()) {
        (ORDER_EVENTS, "order_confirmed") => {
            let order = OrderConfirmed::deserialize(payload).map_err(unreadable)?;
            Ok(Projection::Order {
                order_id: order.order_id,
                user_id: order.user_id,
                total_cents: order.total_cents,
                item_count: order.items.iter().map(|i| i.quantity.max(0)).sum(),
                at_ms: order.at_ms,
            })
        }
        (CART_EVENTS, kind) if CART_EVENT_TYPES.contains(&kind) => {
            let event = CartEvent::deserialize(payload).map_err(unreadable)?;
            Ok(Projection::Cart {
                user_id: event.user_id,
                kind: kind.to_string(),
                at_ms: event.at_ms,
            })
        }
        _ => Ok(Projection::Nothing {
            kind: envelope.kind.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_order_counts_its_units() {
        let event = json!({"type": "order_confirmed", "order_id": 3, "user_id": 8, "total_cents": 900,
                           "items": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 3}], "at_ms": 50});
        assert_eq!(
            parse(ORDER_EVENTS, &event),
            Ok(Projection::Order {
                order_id: 3,
                user_id: 8,
                total_cents: 900,
                item_count: 5,
                at_ms: Some(50)
            })
        );
    }

    #[test]
    fn cart_events_keep_their_type() {
        let event = json!({"type": "item_removed", "user_id": 4, "product_id": 1, "quantity": 1, "at_ms": 9});
        assert_eq!(
            parse(CART_EVENTS, &event),
            Ok(Projection::Cart {
                user_id: 4,
                kind: "item_removed".into(),
                at_ms: Some(9)
            })
        );
        let cleared = json!({"type": "cart_cleared", "user_id": 4});
        assert!(matches!(
            parse(CART_EVENTS, &cleared),
            Ok(Projection::Cart { at_ms: None, .. })
        ));
    }

    #[test]
    fn other_types_project_nothing() {
        assert_eq!(
            parse(ORDER_EVENTS, &json!({"type": "order_shipped"})),
            Ok(Projection::Nothing {
                kind: "order_shipped".into()
            })
        );
        assert!(matches!(
            parse(CART_EVENTS, &json!({"type": "order_confirmed"})),
            Ok(Projection::Nothing { .. })
        ));
    }

    #[test]
    fn unreadable_events_are_errors() {
        assert!(parse(ORDER_EVENTS, &json!([1, 2])).is_err());
        assert!(
            parse(
                ORDER_EVENTS,
                &json!({"type": "order_confirmed", "order_id": 1})
            )
            .is_err()
        );
        assert!(parse(CART_EVENTS, &json!({"type": "item_added", "user_id": "u"})).is_err());
    }
}
