//! Handling one message of either topic.

use firedrill_runtime::clock;
use firedrill_runtime::db::{Db, Query};
use firedrill_runtime::queue::Message;

use crate::metrics::ProjectorMetrics;
use crate::projection::{self, Projection};
use crate::store::{self, Applied};

pub struct State {
    pub db: Db,
    pub metrics: ProjectorMetrics,
}

const APPLY: Query = Query {
    operation: "INSERT",
    collection: "projector_processed",
    text: "INSERT INTO projector_processed (topic, message_id, processed_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
};

/// Handles one message: `Ok` acks it, `Err` nacks it for redelivery.
pub async fn handle(state: &State, topic: &'static str, message: Message) -> Result<(), String> {
    let destination = ("messaging.destination.name", topic);
    let projection = match projection::parse(topic, &message.payload) {
        Ok(p) => p,
        Err(reason) => {
            state
                .metrics
                .events
                .inc(&[destination, ("outcome", "rejected")]);
            return Err(reason);
        }
    };
    let now = clock::now_unix_ms();
    let id = message.id;
    let applied_projection = projection.clone();
    let applied = state
        .db
        .run(APPLY, move |conn| {
            store::apply(conn, topic, id, &applied_projection, now)
        })
        .await
        .map_err(|e| format!("cannot apply projection: {e}"))?;
    let outcome = match (&applied, &projection) {
        (Applied::Duplicate, _) => "duplicate",
        (Applied::Applied, Projection::Nothing { .. }) => "ignored",
        (Applied::Applied, _) => "applied",
    };
    state
        .metrics
        .events
        .inc(&[destination, ("outcome", outcome)]);
    if let (Applied::Applied, Some(at)) = (&applied, projection.at_ms()) {
        state
            .metrics
            .lag
            .record((now - at).max(0) as f64 / 1000.0, &[destination]);
    }
    match &projection {
        Projection::Order {
            order_id, user_id, ..
        } if applied == Applied::Applied => {
            tracing::debug!(order_id, user_id, message_id = id, "order projected");
        }
        Projection::Nothing { kind } => {
            tracing::debug!(topic, kind, message_id = id, "event has no projection")
        }
        _ => {}
    }
    Ok(())
}
