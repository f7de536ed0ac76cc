//! The `notifications` table: one confirmation per order, ever.

use rusqlite::{Connection, params};
use serde::Serialize;

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS notifications (
             id       INTEGER PRIMARY KEY AUTOINCREMENT,
             order_id INTEGER NOT NULL UNIQUE,
             user_id  INTEGER NOT NULL,
             channel  TEXT NOT NULL,
             body     TEXT NOT NULL,
             sent_at  INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS notifications_by_user ON notifications (user_id, id);",
    )
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub channel: String,
    pub body: String,
    pub sent_at: i64,
}

/// Records a notification unless the order already has one; true when this
/// call recorded it (and so should send it).
pub fn record(
    conn: &Connection,
    order_id: i64,
    user_id: i64,
    channel: &str,
    body: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let inserted = conn.execute(
        "INSERT INTO notifications (order_id, user_id, channel, body, sent_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (order_id) DO NOTHING",
        params![order_id, user_id, channel, body, now_ms],
    )?;
    Ok(inserted == 1)
}

/// A user's notifications, newest first.
pub fn for_user(
    conn: &Connection,
    user_id: i64,
    limit: i64,
) -> rusqlite::Result<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, order_id, user_id, channel, body, sent_at FROM notifications
         WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![user_id, limit], |row| {
        Ok(Notification {
            id: row.get(0)?,
            order_id: row.get(1)?,
            user_id: row.get(2)?,
            channel: row.get(3)?,
            body: row.get(4)?,
            sent_at: row.get(5)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_notification_per_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert!(record(&conn, 1, 7, "email", "hi", 10).unwrap());
        assert!(!record(&conn, 1, 7, "email", "hi again", 11).unwrap());
        assert!(record(&conn, 2, 7, "email", "second", 12).unwrap());
        record(&conn, 3, 8, "email", "other user", 13).unwrap();
        let mine = for_user(&conn, 7, 10).unwrap();
        assert_eq!(
            mine.iter().map(|n| n.order_id).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(mine[1].body, "hi");
        assert_eq!(for_user(&conn, 7, 1).unwrap().len(), 1);
    }
}
