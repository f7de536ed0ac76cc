//! The read models in SQL, and the exactly-once bookkeeping behind them.

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use serde::Serialize;

use crate::projection::Projection;

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS order_history (
             order_id     INTEGER PRIMARY KEY,
             user_id      INTEGER NOT NULL,
             total_cents  INTEGER NOT NULL,
             item_count   INTEGER NOT NULL,
             confirmed_at INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS order_history_by_user ON order_history (user_id, confirmed_at);
         CREATE TABLE IF NOT EXISTS cart_activity (
             user_id     INTEGER PRIMARY KEY,
             last_event  TEXT NOT NULL,
             events_seen INTEGER NOT NULL,
             updated_at  INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS projector_processed (
             topic        TEXT NOT NULL,
             message_id   INTEGER NOT NULL,
             processed_at INTEGER NOT NULL,
             PRIMARY KEY (topic, message_id)
         ) WITHOUT ROWID;",
    )
}

/// Whether a message changed the read models.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Already processed (a redelivery): nothing changed.
    Duplicate,
}

/// Applies `projection` for message `message_id` of `topic`, once: the
/// processed marker and the change commit together or not at all.
pub fn apply(
    conn: &mut Connection,
    topic: &str,
    message_id: i64,
    projection: &Projection,
    now_ms: i64,
) -> rusqlite::Result<Applied> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let first_time = tx.execute(
        "INSERT INTO projector_processed (topic, message_id, processed_at) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        params![topic, message_id, now_ms],
    )? == 1;
    if !first_time {
        return Ok(Applied::Duplicate);
    }
    match projection {
        Projection::Order {
            order_id,
            user_id,
            total_cents,
            item_count,
            at_ms,
        } => {
            // The same order published twice (as two messages) is still one
            // order.
            tx.execute(
                "INSERT INTO order_history (order_id, user_id, total_cents, item_count, confirmed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (order_id) DO NOTHING",
                params![order_id, user_id, total_cents, item_count, at_ms.unwrap_or(now_ms)],
            )?;
        }
        Projection::Cart {
            user_id,
            kind,
            at_ms,
        } => {
            // Events may arrive out of order: the latest by event time wins.
            tx.execute(
                "INSERT INTO cart_activity (user_id, last_event, events_seen, updated_at)
                 VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (user_id) DO UPDATE SET
                     events_seen = events_seen + 1,
                     last_event = CASE WHEN excluded.updated_at >= cart_activity.updated_at
                                       THEN excluded.last_event ELSE cart_activity.last_event END,
                     updated_at = MAX(cart_activity.updated_at, excluded.updated_at)",
                params![user_id, kind, at_ms.unwrap_or(now_ms)],
            )?;
        }
        Projection::Nothing { .. } => {}
    }
    tx.commit()?;
    Ok(Applied::Applied)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderSummary {
    pub order_id: i64,
    pub user_id: i64,
    pub total_cents: i64,
    pub item_count: i64,
    pub confirmed_at: i64,
}

/// A user's orders, newest first.
pub fn orders_of(
    conn: &Connection,
    user_id: i64,
    limit: i64,
) -> rusqlite::Result<Vec<OrderSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT order_id, user_id, total_cents, item_count, confirmed_at FROM order_history
         WHERE user_id = ?1 ORDER BY confirmed_at DESC, order_id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![user_id, limit], |row| {
        Ok(OrderSummary {
            order_id: row.get(0)?,
            user_id: row.get(1)?,
            total_cents: row.get(2)?,
            item_count: row.get(3)?,
            confirmed_at: row.get(4)?,
        })
    })?;
    rows.collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CartActivity {
    pub user_id: i64,
    pub last_event: String,
    pub events_seen: i64,
    pub updated_at: i64,
}

pub fn cart_activity(conn: &Connection, user_id: i64) -> rusqlite::Result<Option<CartActivity>> {
    conn.query_row(
        "SELECT user_id, last_event, events_seen, updated_at FROM cart_activity WHERE user_id = ?1",
        [user_id],
        |row| {
            Ok(CartActivity {
                user_id: row.get(0)?,
                last_event: row.get(1)?,
                events_seen: row.get(2)?,
                updated_at: row.get(3)?,
            })
        },
    )
    .optional()
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

    fn order(order_id: i64, user_id: i64, at_ms: i64) -> Projection {
        Projection::Order {
            order_id,
            user_id,
            total_cents: 100 * order_id,
            item_count: 2,
            at_ms: Some(at_ms),
        }
    }

    fn cart(kind: &str, at_ms: i64) -> Projection {
        Projection::Cart {
            user_id: 1,
            kind: kind.into(),
            at_ms: Some(at_ms),
        }
    }

    #[test]
    fn a_message_is_applied_once() {
        let mut conn = db();
        assert_eq!(
            apply(&mut conn, "order-events", 1, &order(10, 5, 100), 0).unwrap(),
            Applied::Applied
        );
        assert_eq!(
            apply(&mut conn, "order-events", 1, &order(10, 5, 100), 0).unwrap(),
            Applied::Duplicate
        );
        // The same id on another topic is another message.
        assert_eq!(
            apply(&mut conn, "cart-events", 1, &cart("item_added", 5), 0).unwrap(),
            Applied::Applied
        );
        assert_eq!(orders_of(&conn, 5, 10).unwrap().len(), 1);
    }

    #[test]
    fn history_is_newest_first_per_user() {
        let mut conn = db();
        apply(&mut conn, "order-events", 1, &order(1, 5, 100), 0).unwrap();
        apply(&mut conn, "order-events", 2, &order(2, 6, 150), 0).unwrap();
        apply(&mut conn, "order-events", 3, &order(3, 5, 200), 0).unwrap();
        // A republished order (new message, same order) is not a new order.
        apply(&mut conn, "order-events", 4, &order(3, 5, 200), 0).unwrap();
        let mine = orders_of(&conn, 5, 10).unwrap();
        assert_eq!(
            mine.iter().map(|o| o.order_id).collect::<Vec<_>>(),
            vec![3, 1]
        );
        assert_eq!(
            mine[0],
            OrderSummary {
                order_id: 3,
                user_id: 5,
                total_cents: 300,
                item_count: 2,
                confirmed_at: 200
            }
        );
    }

    #[test]
    fn cart_activity_counts_and_keeps_the_latest_event() {
        let mut conn = db();
        apply(&mut conn, "cart-events", 1, &cart("item_added", 100), 0).unwrap();
        apply(&mut conn, "cart-events", 2, &cart("cart_cleared", 300), 0).unwrap();
        // Late arrival of an older event: counted, but not the latest.
        apply(&mut conn, "cart-events", 3, &cart("item_removed", 200), 0).unwrap();
        let activity = cart_activity(&conn, 1).unwrap().unwrap();
        assert_eq!(
            activity,
            CartActivity {
                user_id: 1,
                last_event: "cart_cleared".into(),
                events_seen: 3,
                updated_at: 300
            }
        );
        assert_eq!(cart_activity(&conn, 2).unwrap(), None);
    }

    #[test]
    fn a_failed_projection_leaves_no_marker() {
        let mut conn = db();
        conn.execute_batch("DROP TABLE order_history").unwrap();
        assert!(apply(&mut conn, "order-events", 1, &order(1, 5, 100), 0).is_err());
        let markers: i64 = conn
            .query_row("SELECT COUNT(*) FROM projector_processed", [], |r| r.get(0))
            .unwrap();
        assert_eq!(markers, 0, "the message must be retried, not skipped");
    }
}
