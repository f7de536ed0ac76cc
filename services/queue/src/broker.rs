//! The broker: durable topics over `store`, long polling, and the metrics
//! that show a backlog building.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use firedrill_runtime::db::{Db, Query};
use firedrill_runtime::{AppError, AppResult, clock};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{DESTINATION, QueueMetrics};
use crate::store::{self, Message, Nacked, Stats};

/// Longest a receive may wait for a message.
pub const MAX_WAIT: Duration = Duration::from_secs(5);
/// How often the gauges are refreshed when nothing changes (ages grow).
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Least time between two refreshes triggered by changes, so a busy broker
/// does not spend its database on counting itself.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_millis(100);

const PUBLISH: Query = Query {
    operation: "INSERT",
    collection: "messages",
    text: "INSERT INTO messages (topic, payload, headers, attempts, enqueued_at_ms, visible_at_ms, state) VALUES (?1, ?2, ?3, 0, ?4, ?4, 'ready') RETURNING id",
};
const CLAIM: Query = Query {
    operation: "UPDATE",
    collection: "messages",
    text: "UPDATE messages SET state = 'inflight', attempts = attempts + 1, visible_at_ms = ?4 WHERE id IN (SELECT id FROM messages WHERE topic = ?1 AND state IN ('ready', 'inflight') AND visible_at_ms <= ?2 ORDER BY id LIMIT ?3) RETURNING id, payload, headers, attempts, enqueued_at_ms",
};
const ACK: Query = Query {
    operation: "DELETE",
    collection: "messages",
    text: "DELETE FROM messages WHERE id = ?1 AND topic = ?2 AND state != 'dead'",
};
const NACK: Query = Query {
    operation: "UPDATE",
    collection: "messages",
    text: "UPDATE messages SET state = 'ready', visible_at_ms = ?2, last_error = ?3 WHERE id = ?1",
};
const STATS: Query = Query {
    operation: "SELECT",
    collection: "messages",
    text: "SELECT state, COUNT(*), MIN(enqueued_at_ms) FROM messages WHERE topic = ?1 GROUP BY state",
};
const ALL_STATS: Query = Query {
    operation: "SELECT",
    collection: "messages",
    text: "SELECT topic, state, COUNT(*), MIN(enqueued_at_ms) FROM messages GROUP BY topic, state",
};
const REPLAY: Query = Query {
    operation: "UPDATE",
    collection: "messages",
    text: "UPDATE messages SET state = 'ready', attempts = 0, visible_at_ms = ?2, last_error = NULL WHERE topic = ?1 AND state = 'dead'",
};
const PURGE: Query = Query {
    operation: "DELETE",
    collection: "messages",
    text: "DELETE FROM messages WHERE topic = ?1 AND state = 'dead'",
};

/// How a consumer receives.
#[derive(Clone, Copy, Debug)]
pub struct Receive {
    pub max: i64,
    pub wait: Duration,
    pub visibility_ms: i64,
}

pub struct Broker {
    db: Db,
    metrics: QueueMetrics,
    /// One waker per topic. Whatever makes a message ready (publish, nack,
    /// replay) wakes that topic's waiting receives, so a long poll answers
    /// as soon as there is something, without polling the database.
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Pinged on every change; the gauge refresher follows shortly after.
    changed: Notify,
    /// Topics whose gauges were ever set, so a topic that empties completely
    /// is reported as 0 rather than keeping its last value.
    reported: Mutex<BTreeSet<String>>,
    /// Ends waiting receives when the process stops.
    shutdown: CancellationToken,
}

impl Broker {
    pub fn new(db: Db, metrics: QueueMetrics, shutdown: CancellationToken) -> Self {
        Broker {
            db,
            metrics,
            wakers: Mutex::default(),
            changed: Notify::new(),
            reported: Mutex::default(),
            shutdown,
        }
    }

    fn waker(&self, topic: &str) -> Arc<Notify> {
        self.wakers
            .lock()
            .entry(topic.to_string())
            .or_default()
            .clone()
    }

    /// Wakes the topic's receives and schedules a gauge refresh.
    fn wake(&self, topic: &str) {
        self.waker(topic).notify_waiters();
        self.changed.notify_one();
    }

    pub async fn publish(
        &self,
        topic: &str,
        payload: &Value,
        headers: &HashMap<String, String>,
    ) -> AppResult<i64> {
        let payload = serde_json::to_string(payload).map_err(AppError::internal)?;
        let headers = serde_json::to_string(headers).map_err(AppError::internal)?;
        let now = clock::now_unix_ms();
        let owned = topic.to_string();
        let id = self
            .db
            .run(PUBLISH, move |conn| {
                store::publish(conn, &owned, &payload, &headers, now)
            })
            .await?;
        self.metrics.sent.inc(&[(DESTINATION, topic)]);
        tracing::debug!(topic, message_id = id, "message published");
        self.wake(topic);
        Ok(id)
    }

    /// Delivers up to `max` messages of `group`'s subscription to `topic`
    /// (see `store`), waiting up to `wait` for the first.
    pub async fn receive(
        &self,
        topic: &str,
        group: &str,
        options: Receive,
    ) -> AppResult<Vec<Message>> {
        let waker = self.waker(topic);
        let deadline = Instant::now() + options.wait.min(MAX_WAIT);
        loop {
            // Register interest before looking, so a publish that lands
            // between the look and the wait still wakes us.
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let now_ms = clock::now_unix_ms();
            let owned = topic.to_string();
            let group = group.to_string();
            let claimed = self
                .db
                .run(CLAIM, move |conn| {
                    store::claim(
                        conn,
                        &owned,
                        &group,
                        options.max,
                        now_ms,
                        options.visibility_ms,
                    )
                })
                .await?;
            for &(id, attempts) in &claimed.dead_lettered {
                self.dead_lettered(
                    topic,
                    id,
                    attempts,
                    "visibility timeout expired too many times",
                );
            }
            if !claimed.messages.is_empty() {
                self.metrics
                    .consumed
                    .add(claimed.messages.len() as f64, &[(DESTINATION, topic)]);
                self.changed.notify_one();
                return Ok(claimed.messages);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Also wake when an in-flight message's visibility runs out.
            let wake_at = match claimed.next_visible_at_ms {
                Some(at) => deadline
                    .min(now + Duration::from_millis((at - now_ms).clamp(1, i64::MAX) as u64)),
                None => deadline,
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = self.shutdown.cancelled() => return Ok(Vec::new()),
            }
        }
    }

    /// Deletes a delivered message; false when it was already gone (a
    /// retried ack): acking is idempotent.
    pub async fn ack(&self, topic: &str, id: i64) -> AppResult<bool> {
        let owned = topic.to_string();
        let acked = self
            .db
            .run(ACK, move |conn| store::ack(conn, &owned, id))
            .await?;
        if acked {
            self.metrics.acked.inc(&[(DESTINATION, topic)]);
            self.changed.notify_one();
        }
        Ok(acked)
    }

    /// Returns a message for redelivery; true when it was dead-lettered.
    pub async fn nack(&self, topic: &str, id: i64, reason: String) -> AppResult<bool> {
        let now = clock::now_unix_ms();
        let owned = topic.to_string();
        let logged_reason = reason.clone();
        let outcome = self
            .db
            .run(NACK, move |conn| {
                store::nack(conn, &owned, id, &reason, now)
            })
            .await?;
        match outcome {
            Nacked::Requeued => {
                tracing::debug!(topic, message_id = id, reason = %logged_reason, "message returned for redelivery");
                self.wake(topic);
                Ok(false)
            }
            Nacked::DeadLettered { attempts } => {
                self.dead_lettered(topic, id, attempts, &logged_reason);
                Ok(true)
            }
            Nacked::AlreadyDead => Ok(true),
            Nacked::NotFound => Err(AppError::not_found(format!(
                "no message {id} on topic {topic}"
            ))),
        }
    }

    fn dead_lettered(&self, topic: &str, id: i64, attempts: i64, reason: &str) {
        self.metrics.dead_lettered.inc(&[(DESTINATION, topic)]);
        self.changed.notify_one();
        tracing::warn!(
            topic,
            message_id = id,
            attempts,
            reason,
            "message dead-lettered"
        );
    }

    /// A topic's counts (and its gauges, refreshed on the way).
    pub async fn stats(&self, topic: &str) -> AppResult<Stats> {
        let owned = topic.to_string();
        let stats = self
            .db
            .run(STATS, move |conn| store::stats(conn, &owned))
            .await?;
        self.metrics.record(topic, &stats, clock::now_unix_ms());
        self.reported.lock().insert(topic.to_string());
        Ok(stats)
    }

    /// Counts for every topic with messages.
    pub async fn topics(&self) -> AppResult<BTreeMap<String, Stats>> {
        Ok(self
            .db
            .run(ALL_STATS, |conn| store::all_stats(conn))
            .await?)
    }

    pub async fn replay_dead(&self, topic: &str) -> AppResult<usize> {
        let now = clock::now_unix_ms();
        let owned = topic.to_string();
        let count = self
            .db
            .run(REPLAY, move |conn| store::replay_dead(conn, &owned, now))
            .await?;
        tracing::info!(topic, count, "dead letters replayed");
        self.wake(topic);
        Ok(count)
    }

    pub async fn purge_dead(&self, topic: &str) -> AppResult<usize> {
        let owned = topic.to_string();
        let count = self
            .db
            .run(PURGE, move |conn| store::purge_dead(conn, &owned))
            .await?;
        tracing::info!(topic, count, "dead letters purged");
        self.changed.notify_one();
        Ok(count)
    }

    /// Sets every topic's gauges from the database.
    async fn refresh_gauges(&self) -> AppResult<()> {
        let all = self.topics().await?;
        let now = clock::now_unix_ms();
        let mut reported = self.reported.lock();
        // Topics with long-polling consumers but no messages yet report 0.
        reported.extend(self.wakers.lock().keys().cloned());
        for topic in all.keys() {
            reported.insert(topic.clone());
        }
        for topic in reported.iter() {
            let stats = all.get(topic).copied().unwrap_or_default();
            self.metrics.record(topic, &stats, now);
        }
        Ok(())
    }
}

/// Keeps the gauges current: every [`REFRESH_EVERY`], and shortly after any
/// change, until `shutdown`.
pub fn spawn_gauge_refresher(broker: Arc<Broker>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = broker.changed.notified() => {}
            }
            if let Err(err) = broker.refresh_gauges().await {
                tracing::warn!(error = %err, "cannot refresh queue gauges");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH_AT_MOST_EVERY) => {}
            }
        }
    });
}
