//! Stock and reservations in SQL.
//!
//! Functions here take a plain `rusqlite::Connection` so the rules can be
//! tested without a server; `routes` runs them on the pool via `Db::run`.
//! Every multi-row change runs in one `BEGIN IMMEDIATE` transaction: SQLite
//! takes the write lock up front, so two checkouts cannot both read "3 left"
//! and both take them.

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

/// Products seeded at start-up (the catalog's ids).
pub const SEED_PRODUCTS: i64 = 240;
/// Units each seeded product starts with.
pub const INITIAL_STOCK: i64 = 1000;

/// Idempotent schema and seed; several processes may run it at once.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS stock (
             product_id INTEGER PRIMARY KEY,
             available  INTEGER NOT NULL CHECK (available >= 0),
             reserved   INTEGER NOT NULL CHECK (reserved >= 0)
         );
         CREATE TABLE IF NOT EXISTS reservations (
             order_id   INTEGER NOT NULL,
             product_id INTEGER NOT NULL,
             quantity   INTEGER NOT NULL CHECK (quantity > 0),
             status     TEXT NOT NULL CHECK (status IN ('reserved', 'committed', 'released')),
             created_at INTEGER NOT NULL,
             PRIMARY KEY (order_id, product_id)
         );
         CREATE INDEX IF NOT EXISTS reservations_by_status ON reservations (status);",
    )?;
    // A recursive CTE seeds every product in one statement; OR IGNORE keeps
    // the counts of a database that already has them.
    conn.execute(
        "WITH RECURSIVE ids(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM ids WHERE n < ?1)
         INSERT OR IGNORE INTO stock (product_id, available, reserved)
         SELECT n, ?2, 0 FROM ids",
        params![SEED_PRODUCTS, INITIAL_STOCK],
    )?;
    Ok(())
}

/// One line of a reservation request.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Item {
    pub product_id: i64,
    pub quantity: i64,
}

/// Where a reservation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Reserved,
    Committed,
    Released,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Reserved => "reserved",
            Status::Committed => "committed",
            Status::Released => "released",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "committed" => Status::Committed,
            "released" => Status::Released,
            _ => Status::Reserved,
        }
    }
}

/// What a reservation request did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Stock was taken for every item.
    New,
    /// The order already had a reservation (a retry): nothing changed.
    Existing(Status),
    /// This product lacked stock; nothing was taken for any item.
    Insufficient { product_id: i64 },
}

/// What a commit or release did.
#[derive(Debug, PartialEq, Eq)]
pub enum Transition {
    /// The reservation moved to this status.
    Changed(Status),
    /// The reservation was already in (or past) the target: here it is.
    Unchanged(Status),
    NotFound,
}

/// Checks a request's items and merges repeated products, so one order holds
/// one row per product (the table's key).
pub fn normalize(items: &[Item]) -> Result<Vec<Item>, String> {
    if items.is_empty() {
        return Err("items must not be empty".into());
    }
    let mut merged: Vec<Item> = Vec::with_capacity(items.len());
    for item in items {
        if item.product_id <= 0 {
            return Err(format!("invalid product_id {}", item.product_id));
        }
        if item.quantity <= 0 {
            return Err(format!(
                "quantity must be positive (product {})",
                item.product_id
            ));
        }
        match merged.iter_mut().find(|m| m.product_id == item.product_id) {
            Some(m) => {
                m.quantity = m
                    .quantity
                    .checked_add(item.quantity)
                    .ok_or_else(|| format!("quantity too large (product {})", item.product_id))?;
            }
            None => merged.push(*item),
        }
    }
    merged.sort_by_key(|i| i.product_id);
    Ok(merged)
}

/// Reserves every item for `order_id`, or nothing. A repeat for an order
/// that already has a reservation returns it unchanged.
pub fn reserve(
    conn: &mut Connection,
    order_id: i64,
    items: &[Item],
    now_ms: i64,
) -> rusqlite::Result<Reserved> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(status) = order_status(&tx, order_id)? {
        return Ok(Reserved::Existing(status));
    }
    for item in items {
        let taken = tx.execute(
            "UPDATE stock SET available = available - ?2, reserved = reserved + ?2
             WHERE product_id = ?1 AND available >= ?2",
            params![item.product_id, item.quantity],
        )?;
        if taken == 0 {
            // Dropping the transaction rolls back the items already taken.
            return Ok(Reserved::Insufficient {
                product_id: item.product_id,
            });
        }
        tx.execute(
            "INSERT INTO reservations (order_id, product_id, quantity, status, created_at)
             VALUES (?1, ?2, ?3, 'reserved', ?4)",
            params![order_id, item.product_id, item.quantity, now_ms],
        )?;
    }
    tx.commit()?;
    Ok(Reserved::New)
}

/// Makes a reservation permanent: the units leave `reserved` for good.
pub fn commit(conn: &mut Connection, order_id: i64) -> rusqlite::Result<Transition> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(status) = order_status(&tx, order_id)? else {
        return Ok(Transition::NotFound);
    };
    if status != Status::Reserved {
        return Ok(Transition::Unchanged(status));
    }
    tx.execute(
        "UPDATE stock SET reserved = reserved - r.quantity
         FROM reservations AS r
         WHERE r.order_id = ?1 AND r.status = 'reserved' AND stock.product_id = r.product_id",
        [order_id],
    )?;
    tx.execute(
        "UPDATE reservations SET status = 'committed' WHERE order_id = ?1 AND status = 'reserved'",
        [order_id],
    )?;
    tx.commit()?;
    Ok(Transition::Changed(Status::Committed))
}

/// Gives a reservation's units back, unless it was committed (the order
/// shipped: those units are gone).
pub fn release(conn: &mut Connection, order_id: i64) -> rusqlite::Result<Transition> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(status) = order_status(&tx, order_id)? else {
        return Ok(Transition::NotFound);
    };
    if status != Status::Reserved {
        return Ok(Transition::Unchanged(status));
    }
    tx.execute(
        "UPDATE stock SET available = available + r.quantity, reserved = reserved - r.quantity
         FROM reservations AS r
         WHERE r.order_id = ?1 AND r.status = 'reserved' AND stock.product_id = r.product_id",
        [order_id],
    )?;
    tx.execute(
        "UPDATE reservations SET status = 'released' WHERE order_id = ?1 AND status = 'reserved'",
        [order_id],
    )?;
    tx.commit()?;
    Ok(Transition::Changed(Status::Released))
}

/// The status of an order's reservation (its rows always move together).
fn order_status(conn: &Connection, order_id: i64) -> rusqlite::Result<Option<Status>> {
    conn.query_row(
        "SELECT status FROM reservations WHERE order_id = ?1 LIMIT 1",
        [order_id],
        |row| row.get::<_, String>(0),
    )
    .optional()
    .map(|s| s.as_deref().map(Status::parse))
}

/// One product's counts.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Stock {
    pub product_id: i64,
    pub available: i64,
    pub reserved: i64,
}

pub fn stock(conn: &Connection, product_id: i64) -> rusqlite::Result<Option<Stock>> {
    conn.query_row(
        "SELECT product_id, available, reserved FROM stock WHERE product_id = ?1",
        [product_id],
        |row| {
            Ok(Stock {
                product_id: row.get(0)?,
                available: row.get(1)?,
                reserved: row.get(2)?,
            })
        },
    )
    .optional()
}

/// Tops every product under `threshold` back up to `refill_to`; returns how
/// many were refilled.
pub fn restock(conn: &mut Connection, threshold: i64, refill_to: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE stock SET available = ?2 WHERE available < ?1",
        params![threshold, refill_to],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    fn set_available(conn: &Connection, product_id: i64, available: i64) {
        conn.execute(
            "UPDATE stock SET available = ?2 WHERE product_id = ?1",
            params![product_id, available],
        )
        .unwrap();
    }

    fn item(product_id: i64, quantity: i64) -> Item {
        Item {
            product_id,
            quantity,
        }
    }

    #[test]
    fn migration_seeds_every_product_once() {
        let mut conn = db();
        set_available(&conn, 7, 3);
        migrate(&mut conn).unwrap();
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM stock", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, SEED_PRODUCTS);
        assert_eq!(
            stock(&conn, 7).unwrap().unwrap().available,
            3,
            "a re-run must not reset counts"
        );
        assert_eq!(stock(&conn, 240).unwrap().unwrap().available, INITIAL_STOCK);
        assert!(stock(&conn, 241).unwrap().is_none());
    }

    #[test]
    fn normalize_merges_repeats_and_rejects_bad_lines() {
        assert_eq!(
            normalize(&[item(2, 1), item(1, 2), item(2, 3)]).unwrap(),
            vec![item(1, 2), item(2, 4)]
        );
        assert!(normalize(&[]).is_err());
        assert!(normalize(&[item(1, 0)]).is_err());
        assert!(normalize(&[item(1, -2)]).is_err());
        assert!(normalize(&[item(0, 1)]).is_err());
        assert!(normalize(&[item(1, i64::MAX), item(1, 1)]).is_err());
    }

    #[test]
    fn reserve_is_all_or_nothing() {
        let mut conn = db();
        set_available(&conn, 2, 1);
        let outcome = reserve(&mut conn, 10, &[item(1, 5), item(2, 2)], 0).unwrap();
        assert_eq!(outcome, Reserved::Insufficient { product_id: 2 });
        assert_eq!(
            stock(&conn, 1).unwrap().unwrap(),
            Stock {
                product_id: 1,
                available: 1000,
                reserved: 0
            }
        );
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM reservations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn unknown_products_count_as_out_of_stock() {
        let mut conn = db();
        assert_eq!(
            reserve(&mut conn, 1, &[item(999, 1)], 0).unwrap(),
            Reserved::Insufficient { product_id: 999 }
        );
    }

    #[test]
    fn a_reservation_lives_reserve_commit() {
        let mut conn = db();
        assert_eq!(
            reserve(&mut conn, 1, &[item(1, 5)], 0).unwrap(),
            Reserved::New
        );
        assert_eq!(
            stock(&conn, 1).unwrap().unwrap(),
            Stock {
                product_id: 1,
                available: 995,
                reserved: 5
            }
        );
        assert_eq!(
            reserve(&mut conn, 1, &[item(1, 5)], 0).unwrap(),
            Reserved::Existing(Status::Reserved)
        );
        assert_eq!(
            stock(&conn, 1).unwrap().unwrap().available,
            995,
            "a repeat must not take stock twice"
        );
        assert_eq!(
            commit(&mut conn, 1).unwrap(),
            Transition::Changed(Status::Committed)
        );
        assert_eq!(
            stock(&conn, 1).unwrap().unwrap(),
            Stock {
                product_id: 1,
                available: 995,
                reserved: 0
            }
        );
        assert_eq!(
            commit(&mut conn, 1).unwrap(),
            Transition::Unchanged(Status::Committed)
        );
        assert_eq!(
            release(&mut conn, 1).unwrap(),
            Transition::Unchanged(Status::Committed)
        );
        assert_eq!(
            stock(&conn, 1).unwrap().unwrap().available,
            995,
            "a committed order keeps its units"
        );
    }

    #[test]
    fn a_reservation_lives_reserve_release() {
        let mut conn = db();
        reserve(&mut conn, 1, &[item(1, 5), item(3, 1)], 0).unwrap();
        assert_eq!(
            release(&mut conn, 1).unwrap(),
            Transition::Changed(Status::Released)
        );
        assert_eq!(
            stock(&conn, 1).unwrap().unwrap(),
            Stock {
                product_id: 1,
                available: 1000,
                reserved: 0
            }
        );
        assert_eq!(
            stock(&conn, 3).unwrap().unwrap(),
            Stock {
                product_id: 3,
                available: 1000,
                reserved: 0
            }
        );
        assert_eq!(
            release(&mut conn, 1).unwrap(),
            Transition::Unchanged(Status::Released)
        );
        assert_eq!(
            stock(&conn, 1).unwrap().unwrap().available,
            1000,
            "a repeat must not add stock twice"
        );
        assert_eq!(
            commit(&mut conn, 1).unwrap(),
            Transition::Unchanged(Status::Released)
        );
        assert_eq!(release(&mut conn, 2).unwrap(), Transition::NotFound);
        assert_eq!(commit(&mut conn, 2).unwrap(), Transition::NotFound);
    }

    #[test]
    fn the_schema_refuses_negative_stock() {
        let conn = db();
        let err = conn
            .execute("UPDATE stock SET available = -1 WHERE product_id = 1", [])
            .unwrap_err();
        assert!(err.to_string().contains("CHECK"), "{err}");
        let err = conn
            .execute("UPDATE stock SET reserved = -1 WHERE product_id = 1", [])
            .unwrap_err();
        assert!(err.to_string().contains("CHECK"), "{err}");
    }

    #[test]
    fn restock_refills_only_low_products() {
        let mut conn = db();
        set_available(&conn, 1, 49);
        set_available(&conn, 2, 50);
        set_available(&conn, 3, 0);
        assert_eq!(restock(&mut conn, 50, 1000).unwrap(), 2);
        assert_eq!(stock(&conn, 1).unwrap().unwrap().available, 1000);
        assert_eq!(stock(&conn, 2).unwrap().unwrap().available, 50);
        assert_eq!(stock(&conn, 3).unwrap().unwrap().available, 1000);
        assert_eq!(restock(&mut conn, 50, 1000).unwrap(), 0);
    }
}
