//! Projector: builds read models from the shop's event streams (CQRS), so
//! "my orders" never queries checkout's tables.
//!
//! Consumes `order-events` into `order_history` and `cart-events` into
//! `cart_activity`. Delivery is at least once, so each message is applied
//! exactly once by recording `(topic, message_id)` in `projector_processed`
//! in the same transaction as the projection: a redelivery finds it there
//! and changes nothing. Unreadable events are nacked (and eventually
//! dead-lettered by the broker).
//!
//! - Data: owns `order_history`, `cart_activity`, `projector_processed`.
//! - Dependencies: `queue` (receive, ack, nack).
//! - Background: one consumer per topic.
//! - Emits: `projector.events{messaging.destination.name, outcome}`,
//!   `projector.lag` (event time → projected), consumer and DB spans.

mod consumer;
mod metrics;
mod projection;
mod routes;
mod store;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;
use firedrill_runtime::queue::{self, ConsumerConfig};

pub const NAME: &str = "projector";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let db = ctx.db()?;
    let broker = ctx.peer(queue::BROKER)?;
    db.migrate("projector", store::migrate).await?;
    let state = Arc::new(consumer::State {
        db,
        metrics: metrics::ProjectorMetrics::new(&ctx.meters),
    });
    for topic in [projection::ORDER_EVENTS, projection::CART_EVENTS] {
        let handler_state = state.clone();
        queue::spawn_consumer(
            broker.clone(),
            topic,
            ConsumerConfig::default(),
            ctx.shutdown.clone(),
            move |message| {
                let state = handler_state.clone();
                async move { consumer::handle(&state, topic, message).await }
            },
        );
    }
    Ok(routes::router(state))
}
