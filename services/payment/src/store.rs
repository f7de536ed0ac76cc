//! The `payments` table: one row per order, the record of what the processor
//! did with its money.

use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Serialize;

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS payments (
             order_id     INTEGER PRIMARY KEY,
             user_id      INTEGER NOT NULL,
             amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
             status       TEXT NOT NULL CHECK (status IN ('captured', 'refunded', 'failed')),
             charge_id    TEXT,
             created_at   INTEGER NOT NULL,
             updated_at   INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS payments_by_user ON payments (user_id);",
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Captured,
    Refunded,
    Failed,
}

impl Status {
    fn parse(s: &str) -> Status {
        match s {
            "captured" => Status::Captured,
            "refunded" => Status::Refunded,
            _ => Status::Failed,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub order_id: i64,
    pub user_id: i64,
    pub amount_cents: i64,
    pub status: Status,
    pub charge_id: Option<String>,
}

pub fn find(conn: &Connection, order_id: i64) -> rusqlite::Result<Option<Payment>> {
    conn.query_row(
        "SELECT order_id, user_id, amount_cents, status, charge_id FROM payments WHERE order_id = ?1",
        [order_id],
        |row| {
            Ok(Payment {
                order_id: row.get(0)?,
                user_id: row.get(1)?,
                amount_cents: row.get(2)?,
                status: Status::parse(&row.get::<_, String>(3)?),
                charge_id: row.get(4)?,
            })
        },
    )
    .optional()
}

/// Records a successful capture and returns the row as it now stands. A row
/// that already moved on (captured by the other instance, or refunded) is
/// kept: the processor charged once, whoever recorded it.
pub fn record_captured(
    conn: &Connection,
    payment: &Payment,
    now_ms: i64,
) -> rusqlite::Result<Payment> {
    conn.execute(
        "INSERT INTO payments (order_id, user_id, amount_cents, status, charge_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'captured', ?4, ?5, ?5)
         ON CONFLICT (order_id) DO UPDATE SET status = 'captured', charge_id = excluded.charge_id, updated_at = excluded.updated_at
         WHERE payments.status = 'failed'",
        params![payment.order_id, payment.user_id, payment.amount_cents, payment.charge_id, now_ms],
    )?;
    find(conn, payment.order_id).map(|p| p.unwrap_or_else(|| payment.clone()))
}

/// Records a declined capture, unless the order already has a payment.
pub fn record_failed(
    conn: &Connection,
    order_id: i64,
    user_id: i64,
    amount_cents: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO payments (order_id, user_id, amount_cents, status, charge_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'failed', NULL, ?4, ?4)
         ON CONFLICT (order_id) DO NOTHING",
        params![order_id, user_id, amount_cents, now_ms],
    )?;
    Ok(())
}

pub fn mark_refunded(conn: &Connection, order_id: i64, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE payments SET status = 'refunded', updated_at = ?2 WHERE order_id = ?1 AND status = 'captured'",
        params![order_id, now_ms],
    )?;
    Ok(())
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

    fn captured(order_id: i64, charge: &str) -> Payment {
        Payment {
            order_id,
            user_id: 3,
            amount_cents: 1200,
            status: Status::Captured,
            charge_id: Some(charge.into()),
        }
    }

    #[test]
    fn a_capture_is_recorded_once() {
        let conn = db();
        assert_eq!(
            record_captured(&conn, &captured(1, "ch_a"), 10).unwrap(),
            captured(1, "ch_a")
        );
        // A racing instance with the same (idempotent) charge changes nothing.
        assert_eq!(
            record_captured(&conn, &captured(1, "ch_a"), 20).unwrap(),
            captured(1, "ch_a")
        );
        assert_eq!(find(&conn, 1).unwrap(), Some(captured(1, "ch_a")));
        assert_eq!(find(&conn, 2).unwrap(), None);
    }

    #[test]
    fn refunds_and_failures_do_not_overwrite_each_other() {
        let conn = db();
        record_captured(&conn, &captured(1, "ch_a"), 10).unwrap();
        mark_refunded(&conn, 1, 11).unwrap();
        assert_eq!(find(&conn, 1).unwrap().unwrap().status, Status::Refunded);
        assert_eq!(
            record_captured(&conn, &captured(1, "ch_a"), 12)
                .unwrap()
                .status,
            Status::Refunded
        );
        record_failed(&conn, 1, 3, 1200, 13).unwrap();
        assert_eq!(find(&conn, 1).unwrap().unwrap().status, Status::Refunded);

        record_failed(&conn, 2, 3, 1200, 10).unwrap();
        assert_eq!(find(&conn, 2).unwrap().unwrap().status, Status::Failed);
        mark_refunded(&conn, 2, 11).unwrap();
        assert_eq!(
            find(&conn, 2).unwrap().unwrap().status,
            Status::Failed,
            "nothing to refund"
        );
    }

    #[test]
    fn amounts_must_be_positive() {
        let conn = db();
        assert!(record_failed(&conn, 1, 3, 0, 10).is_err());
    }
}
