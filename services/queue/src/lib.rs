//! Queue: the shop's durable message broker, a small SQS.
//!
//! Producers publish JSON messages to a topic; consumers long-poll for them,
//! hold them invisible while they work (the visibility timeout), then ack
//! (delete) or nack (redeliver). A message that fails
//! [`store::MAX_ATTEMPTS`] deliveries is dead-lettered and waits for an
//! operator to replay or purge it. Messages carry the producer's trace
//! context in their headers, untouched.
//!
//! - Data: owns `messages` in its own SQLite file (`--database queue.db`), so
//!   a backlog survives a restart of the broker.
//! - Dependencies: none.
//! - Background: a gauge refresher (every second and shortly after changes).
//! - Emits, per topic (`messaging.destination.name`):
//!   `messaging.queue.{depth,in_flight,oldest_message_age,dead_letter.depth,consumer_lag}`,
//!   `messaging.client.{sent,consumed,acked}.messages`,
//!   `messaging.queue.dead_lettered.messages`; WARN log "message
//!   dead-lettered".

mod broker;
mod metrics;
mod routes;
mod store;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;

pub const NAME: &str = "queue";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let db = ctx.db()?;
    db.migrate("queue", store::migrate).await?;
    let metrics = metrics::QueueMetrics::new(&ctx.meters);
    let broker = Arc::new(broker::Broker::new(db, metrics, ctx.shutdown.clone()));
    broker::spawn_gauge_refresher(broker.clone(), ctx.shutdown.clone());
    Ok(routes::router(broker))
}
