//! Notification: tells customers their order is confirmed.
//!
//! Consumes `order-events` from the queue broker; for each `order_confirmed`
//! it "sends" an email (records it in `notifications` and logs "order
//! confirmation sent"). Delivery is at least once, so sending is idempotent
//! per order: a redelivered event never emails twice. An event it cannot
//! read is nacked, and the broker dead-letters it after a few attempts.
//!
//! - Data: owns `notifications` (one per order).
//! - Dependencies: `queue` (receive, ack, nack).
//! - Background: the `order-events` consumer.
//! - Emits: `notification.events{outcome}`, `notification.delivery.lag`
//!   (order confirmed → email sent), consumer and DB spans.

mod consumer;
mod metrics;
mod routes;
mod store;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;
use firedrill_runtime::queue::{self, ConsumerConfig};

pub const NAME: &str = "notification";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let db = ctx.db()?;
    let broker = ctx.peer(queue::BROKER)?;
    db.migrate("notification", store::migrate).await?;
    let state = Arc::new(consumer::State {
        db,
        metrics: metrics::NotificationMetrics::new(&ctx.meters),
    });
    let handler_state = state.clone();
    queue::spawn_consumer(
        broker,
        consumer::TOPIC,
        ConsumerConfig::default(),
        ctx.shutdown.clone(),
        move |message| {
            let state = handler_state.clone();
            async move { consumer::handle(&state, message).await }
        },
    );
    Ok(routes::router(state))
}
