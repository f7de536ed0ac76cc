//! Handling one `order-events` message.

use firedrill_runtime::clock;
use firedrill_runtime::db::{Db, Query};
use firedrill_runtime::queue::Message;
use serde::Deserialize;

use crate::metrics::NotificationMetrics;
use crate::store;

/// The topic this service consumes.
pub const TOPIC: &str = "order-events";
/// The only channel so far.
const CHANNEL: &str = "email";

pub struct State {
    pub db: Db,
    pub metrics: NotificationMetrics,
}

const RECORD: Query = Query {
    operation: "INSERT",
    collection: "notifications",
    text: "INSERT INTO notifications (order_id, user_id, channel, body, sent_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (order_id) DO NOTHING",
};

/// Just the event type, to route before parsing the rest.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

/// The fields of `order_confirmed` this service needs.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct OrderConfirmed {
    pub order_id: i64,
    pub user_id: i64,
    pub total_cents: i64,
    #[serde(default)]
    pub items: Vec<serde_json::Value>,
    #[serde(default)]
    pub at_ms: Option<i64>,
}

/// What an event asks of this service.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    OrderConfirmed(OrderConfirmed),
    /// Another event type: nothing to send.
    Other(String),
}

/// Reads a payload; an error is the reason to nack it.
pub fn parse(payload: &serde_json::Value) -> Result<Event, String> {
    let envelope =
        Envelope::deserialize(payload).map_err(|e| format!("unreadable order event: {e}"))?;
    if envelope.kind != "order_confirmed" {
        return Ok(Event::Other(envelope.kind));
    }
    OrderConfirmed::deserialize(payload)
        .map(Event::OrderConfirmed)
        .map_err(|e| format!("unreadable order_confirmed event: {e}"))
}

/// The email's text.
pub fn confirmation_body(order: &OrderConfirmed) -> String {
    let total = order.total_cents.max(0);
    let items = order.items.len();
    let plural = if items == 1 { "" } else { "s" };
    format!(
        "Your order #{} is confirmed: {items} item{plural}, total ${}.{:02}. Thank you for shopping with us!",
        order.order_id,
        total / 100,
        total % 100
    )
}

/// Handles one message: `Ok` acks it, `Err` nacks it for redelivery.
pub async fn handle(state: &State, message: Message) -> Result<(), String> {
    let order = match parse(&message.payload) {
        Ok(Event::OrderConfirmed(order)) => order,
        Ok(Event::Other(kind)) => {
            state.metrics.events.inc(&[("outcome", "ignored")]);
            tracing::debug!(message_id = message.id, kind, "event ignored");
            return Ok(());
        }
        Err(reason) => {
            state.metrics.events.inc(&[("outcome", "rejected")]);
            return Err(reason);
        }
    };
    let body = confirmation_body(&order);
    let now = clock::now_unix_ms();
    let (order_id, user_id) = (order.order_id, order.user_id);
    let sent = state
        .db
        .run(RECORD, move |conn| {
            store::record(conn, order_id, user_id, CHANNEL, &body, now)
        })
        .await
        .map_err(|e| format!("cannot record notification: {e}"))?;
    if sent {
        state.metrics.events.inc(&[("outcome", "sent")]);
        if let Some(at) = order.at_ms {
            state
                .metrics
                .delivery_lag
                .record((now - at).max(0) as f64 / 1000.0, &[]);
        }
        tracing::info!(
            order_id,
            user_id,
            channel = CHANNEL,
            "order confirmation sent"
        );
    } else {
        state.metrics.events.inc(&[("outcome", "duplicate")]);
        tracing::debug!(
            order_id,
            message_id = message.id,
            "order confirmation already sent"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn order_confirmed_is_read_and_others_are_skipped() {
        let event = json!({"type": "order_confirmed", "order_id": 4, "user_id": 9, "total_cents": 12345, "items": [{}, {}], "at_ms": 1});
        let Ok(Event::OrderConfirmed(order)) = parse(&event) else {
            panic!("not parsed")
        };
        assert_eq!(
            (
                order.order_id,
                order.user_id,
                order.total_cents,
                order.at_ms
            ),
            (4, 9, 12345, Some(1))
        );
        assert_eq!(
            confirmation_body(&order),
            "Your order #4 is confirmed: 2 items, total $123.45. Thank you for shopping with us!"
        );
        assert_eq!(
            parse(&json!({"type": "order_cancelled"})),
            Ok(Event::Other("order_cancelled".into()))
        );
    }

    #[test]
    fn unreadable_events_are_errors() {
        for bad in [
            json!("text"),
            json!({"order_id": 1}),
            json!({"type": "order_confirmed", "order_id": "x", "user_id": 1, "total_cents": 1}),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
