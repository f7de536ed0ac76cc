//! Orders and pending compensations in SQL.

use firedrill_runtime::clock;
use firedrill_runtime::db::{Db, DbError, Query};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS orders (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
            total_cents INTEGER NOT NULL,
            items_json TEXT NOT NULL,
            shipment_id TEXT,
            failure_reason TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, id);
        CREATE TABLE IF NOT EXISTS saga_compensations (
            order_id INTEGER NOT NULL,
            step TEXT NOT NULL CHECK (step IN ('refund', 'release')),
            status TEXT NOT NULL CHECK (status IN ('pending', 'done')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (order_id, step)
        );
        CREATE INDEX IF NOT EXISTS compensations_pending ON saga_compensations (status);",
    )
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Item {
    pub product_id: i64,
    pub quantity: i64,
    pub price_cents: i64,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    pub order_id: i64,
    pub user_id: i64,
    pub status: String,
    pub total_cents: i64,
    pub items: Vec<Item>,
    pub shipment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

pub async fn create_pending(
    db: &Db,
    user_id: i64,
    items: &[Item],
    total: i64,
) -> Result<i64, DbError> {
    let items_json = serde_json::to_string(items).unwrap_or_else(|_| "[]".into());
    let query = Query {
        operation: "INSERT",
        collection: "orders",
        text: "INSERT INTO orders (user_id, status, total_cents, items_json, created_at, updated_at) VALUES (?1, 'pending', ?2, ?3, ?4, ?4)",
    };
    db.run(query, move |conn| {
        let now = clock::now_unix_ms();
        conn.execute(query.text, params![user_id, total, items_json, now])?;
        Ok(conn.last_insert_rowid())
    })
    .await
}

pub async fn confirm(db: &Db, order_id: i64, shipment_id: String) -> Result<(), DbError> {
    let query = Query {
        operation: "UPDATE",
        collection: "orders",
        text: "UPDATE orders SET status = 'confirmed', shipment_id = ?2, updated_at = ?3 WHERE id = ?1",
    };
    db.run(query, move |conn| {
        conn.execute(
            query.text,
            params![order_id, shipment_id, clock::now_unix_ms()],
        )?;
        Ok(())
    })
    .await
}

pub async fn fail(db: &Db, order_id: i64, reason: String) -> Result<(), DbError> {
    let query = Query {
        operation: "UPDATE",
        collection: "orders",
        text: "UPDATE orders SET status = 'failed', failure_reason = ?2, updated_at = ?3 WHERE id = ?1",
    };
    db.run(query, move |conn| {
        conn.execute(query.text, params![order_id, reason, clock::now_unix_ms()])?;
        Ok(())
    })
    .await
}

pub async fn find(db: &Db, order_id: i64, user_id: i64) -> Result<Option<Order>, DbError> {
    let query = Query {
        operation: "SELECT",
        collection: "orders",
        text: "SELECT id, user_id, status, total_cents, items_json, shipment_id, failure_reason FROM orders WHERE id = ?1 AND user_id = ?2",
    };
    db.run(query, move |conn| {
        conn.query_row(query.text, params![order_id, user_id], |row| {
            let items_json: String = row.get(4)?;
            Ok(Order {
                order_id: row.get(0)?,
                user_id: row.get(1)?,
                status: row.get(2)?,
                total_cents: row.get(3)?,
                items: serde_json::from_str(&items_json).unwrap_or_default(),
                shipment_id: row.get(5)?,
                failure_reason: row.get(6)?,
            })
        })
        .optional()
    })
    .await
}

/// Records a compensation that must still happen.
pub async fn defer_compensation(
    db: &Db,
    order_id: i64,
    step: &'static str,
    error: String,
) -> Result<(), DbError> {
    let query = Query {
        operation: "INSERT",
        collection: "saga_compensations",
        text: "INSERT INTO saga_compensations (order_id, step, status, attempts, last_error, updated_at) VALUES (?1, ?2, 'pending', 1, ?3, ?4) ON CONFLICT (order_id, step) DO UPDATE SET status = 'pending', attempts = attempts + 1, last_error = ?3, updated_at = ?4",
    };
    db.run(query, move |conn| {
        conn.execute(
            query.text,
            params![order_id, step, error, clock::now_unix_ms()],
        )?;
        Ok(())
    })
    .await
}

pub async fn pending_compensations(db: &Db) -> Result<Vec<(i64, String)>, DbError> {
    let query = Query {
        operation: "SELECT",
        collection: "saga_compensations",
        text: "SELECT order_id, step FROM saga_compensations WHERE status = 'pending' ORDER BY updated_at LIMIT 100",
    };
    db.run(query, move |conn| {
        let mut stmt = conn.prepare(query.text)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    })
    .await
}

pub async fn compensation_done(db: &Db, order_id: i64, step: String) -> Result<(), DbError> {
    let query = Query {
        operation: "UPDATE",
        collection: "saga_compensations",
        text: "UPDATE saga_compensations SET status = 'done', updated_at = ?3 WHERE order_id = ?1 AND step = ?2",
    };
    db.run(query, move |conn| {
        conn.execute(query.text, params![order_id, step, clock::now_unix_ms()])?;
        Ok(())
    })
    .await
}
