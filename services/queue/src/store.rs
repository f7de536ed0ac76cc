//! Messages in SQL: the broker's durable state.
//!
//! A topic fans out to its subscriptions: every consumer group (a service,
//! e.g. `notification`) that ever received from a topic is subscribed to it
//! from then on, and each message published to the topic is stored once per
//! subscription, so every group gets every message and groups never compete
//! (within a group, its processes share the work). A message published
//! before any group subscribed is stored once, for whichever comes first.
//!
//! A message's life: `ready` → (receive) `inflight` until `visible_at_ms` →
//! deleted on ack, or back to `ready` on nack or when its visibility expires
//! and it is received again; after [`MAX_ATTEMPTS`] deliveries a failure moves
//! it to `dead`, where it waits for an operator to replay or purge it.
//! Everything a consumer can see survives a restart of the broker.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use serde::Serialize;
use serde_json::Value;

/// Deliveries after which a failed message is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 5;

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS messages (
             id             INTEGER PRIMARY KEY AUTOINCREMENT,
             topic          TEXT NOT NULL,
             payload        TEXT NOT NULL,
             headers        TEXT NOT NULL,
             attempts       INTEGER NOT NULL DEFAULT 0,
             enqueued_at_ms INTEGER NOT NULL,
             visible_at_ms  INTEGER NOT NULL,
             state          TEXT NOT NULL CHECK (state IN ('ready', 'inflight', 'dead')),
             last_error     TEXT
         );
         CREATE TABLE IF NOT EXISTS subscriptions (
             topic TEXT NOT NULL,
             grp   TEXT NOT NULL,
             PRIMARY KEY (topic, grp)
         );",
    )?;
    // A store from before subscriptions: its messages belong to no group.
    let has_group: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = 'grp'",
        [],
        |row| row.get(0),
    )?;
    if !has_group {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN grp TEXT NOT NULL DEFAULT ''")?;
    }
    conn.execute_batch(
        "DROP INDEX IF EXISTS messages_by_topic_state_visibility;
         CREATE INDEX IF NOT EXISTS messages_by_topic_group_state_visibility
             ON messages (topic, grp, state, visible_at_ms);",
    )
}

/// A message as delivered (the contract's `Message`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Message {
    pub id: i64,
    pub topic: String,
    pub payload: Value,
    pub headers: HashMap<String, String>,
    pub attempts: i64,
    pub enqueued_at_ms: i64,
}

/// Stores a message, ready at once, once per subscription of `topic` (or
/// once, for no group yet); returns the id of its first copy.
pub fn publish(
    conn: &Connection,
    topic: &str,
    payload: &str,
    headers: &str,
    now_ms: i64,
) -> rusqlite::Result<i64> {
    // Not nested in another transaction: every caller hands a plain
    // connection.
    let tx = conn.unchecked_transaction()?;
    let ids = {
        let mut stmt = tx.prepare(
            "INSERT INTO messages (topic, payload, headers, attempts, enqueued_at_ms, visible_at_ms, state, grp)
             SELECT ?1, ?2, ?3, 0, ?4, ?4, 'ready', grp FROM subscriptions WHERE topic = ?1
             ORDER BY grp
             RETURNING id",
        )?;
        let rows = stmt.query_map(params![topic, payload, headers, now_ms], |row| row.get(0))?;
        rows.collect::<rusqlite::Result<Vec<i64>>>()?
    };
    let id = match ids.iter().min() {
        Some(&id) => id,
        None => tx.query_row(
            "INSERT INTO messages (topic, payload, headers, attempts, enqueued_at_ms, visible_at_ms, state, grp)
             VALUES (?1, ?2, ?3, 0, ?4, ?4, 'ready', '')
             RETURNING id",
            params![topic, payload, headers, now_ms],
            |row| row.get(0),
        )?,
    };
    tx.commit()?;
    Ok(id)
}

/// What one receive did.
#[derive(Debug, Default)]
pub struct Claimed {
    /// Delivered now, oldest first; each is `inflight` until `now + visibility`.
    pub messages: Vec<Message>,
    /// `(id, attempts)` of messages whose visibility expired once too often:
    /// the consumer keeps dying on them, so they are dead-lettered instead
    /// of being delivered again.
    pub dead_lettered: Vec<(i64, i64)>,
    /// When the next in-flight message of the topic becomes visible again
    /// (only looked up when nothing was delivered), so a long poll can wake
    /// for it.
    pub next_visible_at_ms: Option<i64>,
}

/// Delivers up to `max` visible messages of `topic` to the consumer group
/// `group` (subscribing it to the topic from now on; `""` is no group and
/// subscribes nothing), in one transaction so concurrent receivers never
/// get the same message.
pub fn claim(
    conn: &mut Connection,
    topic: &str,
    group: &str,
    max: i64,
    now_ms: i64,
    visibility_ms: i64,
) -> rusqlite::Result<Claimed> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !group.is_empty() {
        tx.execute(
            "INSERT OR IGNORE INTO subscriptions (topic, grp) VALUES (?1, ?2)",
            params![topic, group],
        )?;
    }
    let dead_lettered = {
        let mut stmt = tx.prepare(
            "UPDATE messages SET state = 'dead',
                 last_error = 'visibility timeout expired after ' || attempts || ' deliveries'
             WHERE topic = ?1 AND grp IN (?4, '') AND state = 'inflight' AND visible_at_ms <= ?2
                 AND attempts >= ?3
             RETURNING id, attempts",
        )?;
        let rows = stmt.query_map(params![topic, now_ms, MAX_ATTEMPTS, group], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        rows.collect::<rusqlite::Result<Vec<(i64, i64)>>>()?
    };
    let mut messages = {
        let mut stmt = tx.prepare(
            "UPDATE messages SET state = 'inflight', attempts = attempts + 1, visible_at_ms = ?4
             WHERE id IN (
                 SELECT id FROM messages
                 WHERE topic = ?1 AND grp IN (?5, '') AND state IN ('ready', 'inflight')
                     AND visible_at_ms <= ?2
                 ORDER BY id LIMIT ?3)
             RETURNING id, payload, headers, attempts, enqueued_at_ms",
        )?;
        let rows = stmt.query_map(
            params![
                topic,
                now_ms,
                max,
                now_ms.saturating_add(visibility_ms),
                group
            ],
            |row| {
                Ok(Message {
                    id: row.get(0)?,
                    topic: topic.to_string(),
                    payload: parse_json(row.get::<_, String>(1)?, 1)?,
                    headers: parse_json(row.get::<_, String>(2)?, 2)?,
                    attempts: row.get(3)?,
                    enqueued_at_ms: row.get(4)?,
                })
            },
        )?;
        rows.collect::<rusqlite::Result<Vec<Message>>>()?
    };
    messages.sort_by_key(|m| m.id);
    let next_visible_at_ms = if messages.is_empty() {
        tx.query_row(
            "SELECT MIN(visible_at_ms) FROM messages
             WHERE topic = ?1 AND grp IN (?2, '') AND state IN ('ready', 'inflight')",
            [topic, group],
            |row| row.get(0),
        )?
    } else {
        None
    };
    tx.commit()?;
    Ok(Claimed {
        messages,
        dead_lettered,
        next_visible_at_ms,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(text: String, column: usize) -> rusqlite::Result<T> {
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Deletes a delivered message; false if it was not there (already acked,
/// or dead-lettered meanwhile).
pub fn ack(conn: &Connection, topic: &str, id: i64) -> rusqlite::Result<bool> {
    let deleted = conn.execute(
        "DELETE FROM messages WHERE id = ?1 AND topic = ?2 AND state != 'dead'",
        params![id, topic],
    )?;
    Ok(deleted == 1)
}

/// What a nack did.
#[derive(Debug, PartialEq, Eq)]
pub enum Nacked {
    /// Back to `ready` for another delivery.
    Requeued,
    /// Out of attempts: moved to `dead` now.
    DeadLettered {
        attempts: i64,
    },
    /// It was already dead.
    AlreadyDead,
    NotFound,
}

pub fn nack(
    conn: &mut Connection,
    topic: &str,
    id: i64,
    reason: &str,
    now_ms: i64,
) -> rusqlite::Result<Nacked> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: Option<(String, i64)> = tx
        .query_row(
            "SELECT state, attempts FROM messages WHERE id = ?1 AND topic = ?2",
            params![id, topic],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let outcome = match found {
        None => Nacked::NotFound,
        Some((state, _)) if state == "dead" => Nacked::AlreadyDead,
        Some((_, attempts)) if attempts >= MAX_ATTEMPTS => {
            tx.execute(
                "UPDATE messages SET state = 'dead', last_error = ?2 WHERE id = ?1",
                params![id, reason],
            )?;
            Nacked::DeadLettered { attempts }
        }
        Some(_) => {
            tx.execute(
                "UPDATE messages SET state = 'ready', visible_at_ms = ?2, last_error = ?3 WHERE id = ?1",
                params![id, now_ms, reason],
            )?;
            Nacked::Requeued
        }
    };
    tx.commit()?;
    Ok(outcome)
}

/// Dead letters back to `ready` with a fresh attempt budget.
pub fn replay_dead(conn: &Connection, topic: &str, now_ms: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE messages SET state = 'ready', attempts = 0, visible_at_ms = ?2, last_error = NULL
         WHERE topic = ?1 AND state = 'dead'",
        params![topic, now_ms],
    )
}

pub fn purge_dead(conn: &Connection, topic: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM messages WHERE topic = ?1 AND state = 'dead'",
        [topic],
    )
}

/// A topic's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub ready: i64,
    pub in_flight: i64,
    pub dead: i64,
    /// Enqueue time of the oldest message not yet acked (ready or in flight).
    pub oldest_enqueued_at_ms: Option<i64>,
}

impl Stats {
    fn add(&mut self, state: &str, count: i64, oldest: Option<i64>) {
        match state {
            "ready" => self.ready = count,
            "inflight" => self.in_flight = count,
            _ => {
                self.dead = count;
                return;
            }
        }
        self.oldest_enqueued_at_ms = match (self.oldest_enqueued_at_ms, oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Age of the oldest unacked message, 0 when there is none.
    pub fn oldest_age_ms(&self, now_ms: i64) -> i64 {
        self.oldest_enqueued_at_ms
            .map(|t| (now_ms - t).max(0))
            .unwrap_or(0)
    }
}

pub fn stats(conn: &Connection, topic: &str) -> rusqlite::Result<Stats> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, COUNT(*), MIN(enqueued_at_ms) FROM messages WHERE topic = ?1 GROUP BY state",
    )?;
    let mut stats = Stats::default();
    let mut rows = stmt.query([topic])?;
    while let Some(row) = rows.next()? {
        stats.add(&row.get::<_, String>(0)?, row.get(1)?, row.get(2)?);
    }
    Ok(stats)
}

/// Counts for every topic that has messages.
pub fn all_stats(conn: &Connection) -> rusqlite::Result<BTreeMap<String, Stats>> {
    let mut stmt = conn.prepare_cached(
        "SELECT topic, state, COUNT(*), MIN(enqueued_at_ms) FROM messages GROUP BY topic, state",
    )?;
    let mut all: BTreeMap<String, Stats> = BTreeMap::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        all.entry(row.get(0)?).or_default().add(
            &row.get::<_, String>(1)?,
            row.get(2)?,
            row.get(3)?,
        );
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    fn put(conn: &Connection, topic: &str, n: i64, now: i64) -> i64 {
        publish(
            conn,
            topic,
            &format!("{{\"n\":{n}}}"),
            r#"{"traceparent":"00-x"}"#,
            now,
        )
        .unwrap()
    }

    #[test]
    fn a_topic_fans_out_to_every_group_and_a_group_shares_its_copy() {
        let mut conn = db();
        // Before anyone subscribed: one copy, for whoever comes first.
        let early = put(&conn, "orders", 0, 10);
        let got = claim(&mut conn, "orders", "mail", 10, 20, 1000).unwrap();
        assert_eq!(
            got.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            [early]
        );
        assert!(
            claim(&mut conn, "orders", "history", 10, 20, 1000)
                .unwrap()
                .messages
                .is_empty()
        );

        // Both groups have received now: each later message is theirs twice.
        put(&conn, "orders", 1, 30);
        let mail = claim(&mut conn, "orders", "mail", 1, 40, 1000).unwrap();
        assert_eq!(mail.messages.len(), 1);
        assert!(
            claim(&mut conn, "orders", "mail", 10, 40, 1000)
                .unwrap()
                .messages
                .is_empty(),
            "the mail group's copy is in flight with one of its consumers"
        );
        let history = claim(&mut conn, "orders", "history", 10, 40, 1000).unwrap();
        assert_eq!(history.messages.len(), 1);
        assert_ne!(mail.messages[0].id, history.messages[0].id);
        assert_eq!(mail.messages[0].payload, history.messages[0].payload);
        // One group acking leaves the other's copy alone.
        assert!(ack(&conn, "orders", mail.messages[0].id).unwrap());
        assert_eq!(stats(&conn, "orders").unwrap().in_flight, 2);
        // Other topics are not subscribed by receiving here.
        put(&conn, "other", 2, 50);
        assert_eq!(stats(&conn, "other").unwrap().ready, 1);
    }

    #[test]
    fn receive_delivers_oldest_first_once() {
        let mut conn = db();
        let a = put(&conn, "t", 1, 100);
        let b = put(&conn, "t", 2, 101);
        put(&conn, "other", 3, 102);
        let first = claim(&mut conn, "t", "", 1, 200, 1000).unwrap();
        assert_eq!(first.messages.len(), 1);
        let m = &first.messages[0];
        assert_eq!((m.id, m.attempts, m.enqueued_at_ms), (a, 1, 100));
        assert_eq!(m.payload, serde_json::json!({"n": 1}));
        assert_eq!(m.headers["traceparent"], "00-x");
        let second = claim(&mut conn, "t", "", 10, 200, 1000).unwrap();
        assert_eq!(
            second.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![b]
        );
        let none = claim(&mut conn, "t", "", 10, 200, 1000).unwrap();
        assert!(none.messages.is_empty());
        assert_eq!(
            none.next_visible_at_ms,
            Some(1200),
            "the poll should wake when a message reappears"
        );
    }

    #[test]
    fn an_unacked_message_reappears_after_its_visibility() {
        let mut conn = db();
        let id = put(&conn, "t", 1, 0);
        claim(&mut conn, "t", "", 1, 10, 100).unwrap();
        assert!(
            claim(&mut conn, "t", "", 1, 109, 100)
                .unwrap()
                .messages
                .is_empty()
        );
        let again = claim(&mut conn, "t", "", 1, 110, 100).unwrap();
        assert_eq!(again.messages[0].id, id);
        assert_eq!(again.messages[0].attempts, 2);
        assert!(ack(&conn, "t", id).unwrap());
        assert!(!ack(&conn, "t", id).unwrap(), "a second ack finds nothing");
        assert_eq!(stats(&conn, "t").unwrap(), Stats::default());
    }

    #[test]
    fn nack_requeues_until_attempts_run_out() {
        let mut conn = db();
        let id = put(&conn, "t", 1, 0);
        for attempt in 1..MAX_ATTEMPTS {
            let got = claim(&mut conn, "t", "", 1, attempt, 1000).unwrap();
            assert_eq!(got.messages[0].attempts, attempt);
            assert_eq!(
                nack(&mut conn, "t", id, "boom", attempt).unwrap(),
                Nacked::Requeued
            );
        }
        claim(&mut conn, "t", "", 1, 10, 1000).unwrap();
        assert_eq!(
            nack(&mut conn, "t", id, "boom", 10).unwrap(),
            Nacked::DeadLettered {
                attempts: MAX_ATTEMPTS
            }
        );
        assert_eq!(
            nack(&mut conn, "t", id, "boom", 10).unwrap(),
            Nacked::AlreadyDead
        );
        assert_eq!(
            nack(&mut conn, "t", 999, "boom", 10).unwrap(),
            Nacked::NotFound
        );
        assert!(
            claim(&mut conn, "t", "", 1, 20, 1000)
                .unwrap()
                .messages
                .is_empty()
        );
        assert!(
            !ack(&conn, "t", id).unwrap(),
            "dead letters are not acked away"
        );
        let error: String = conn
            .query_row("SELECT last_error FROM messages WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(error, "boom");
        assert_eq!(stats(&conn, "t").unwrap().dead, 1);

        assert_eq!(replay_dead(&conn, "t", 30).unwrap(), 1);
        let replayed = claim(&mut conn, "t", "", 1, 30, 1000).unwrap();
        assert_eq!(
            replayed.messages[0].attempts, 1,
            "a replay starts a fresh attempt budget"
        );
    }

    #[test]
    fn a_message_that_keeps_timing_out_is_dead_lettered() {
        let mut conn = db();
        let id = put(&conn, "t", 1, 0);
        for attempt in 0..MAX_ATTEMPTS {
            assert_eq!(
                claim(&mut conn, "t", "", 1, attempt * 10, 5)
                    .unwrap()
                    .messages
                    .len(),
                1
            );
        }
        let got = claim(&mut conn, "t", "", 1, 1000, 5).unwrap();
        assert!(got.messages.is_empty());
        assert_eq!(got.dead_lettered, vec![(id, MAX_ATTEMPTS)]);
        assert_eq!(stats(&conn, "t").unwrap().dead, 1);
    }

    #[test]
    fn stats_count_by_state_and_age_the_oldest_unacked() {
        let mut conn = db();
        put(&conn, "t", 1, 100);
        put(&conn, "t", 2, 200);
        let dead = put(&conn, "t", 3, 50);
        conn.execute("UPDATE messages SET state = 'dead' WHERE id = ?1", [dead])
            .unwrap();
        claim(&mut conn, "t", "", 1, 300, 1000).unwrap();
        let s = stats(&conn, "t").unwrap();
        assert_eq!((s.ready, s.in_flight, s.dead), (1, 1, 1));
        assert_eq!(
            s.oldest_age_ms(1100),
            1000,
            "dead letters do not count towards age"
        );
        let all = all_stats(&conn).unwrap();
        assert_eq!(all["t"], s);
        assert_eq!(purge_dead(&conn, "t").unwrap(), 1);
        assert_eq!(stats(&conn, "t").unwrap().dead, 0);
        assert_eq!(Stats::default().oldest_age_ms(5), 0);
    }
}
