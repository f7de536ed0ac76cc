//! The `shipments` table: one booked shipment per order.

use rusqlite::{Connection, OptionalExtension as _, Row, TransactionBehavior, params};
use serde::Serialize;

use crate::quote::{Item, Quote};

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS shipments (
             shipment_id TEXT PRIMARY KEY,
             order_id    INTEGER NOT NULL UNIQUE,
             user_id     INTEGER NOT NULL,
             carrier     TEXT NOT NULL,
             eta_days    INTEGER NOT NULL,
             items_json  TEXT NOT NULL,
             created_at  INTEGER NOT NULL
         );",
    )
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Shipment {
    pub shipment_id: String,
    pub order_id: i64,
    pub user_id: i64,
    pub carrier: String,
    pub eta_days: i64,
    pub items: Vec<Item>,
    pub created_at: i64,
}

/// Books `quote` for the order unless it already has a shipment; returns the
/// order's shipment and whether this call created it.
pub fn book(
    conn: &mut Connection,
    order_id: i64,
    user_id: i64,
    items: &[Item],
    quote: &Quote,
    now_ms: i64,
) -> rusqlite::Result<(Shipment, bool)> {
    let items_json = serde_json::to_string(items)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let created = tx.execute(
        "INSERT INTO shipments (shipment_id, order_id, user_id, carrier, eta_days, items_json, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (order_id) DO NOTHING",
        params![quote.shipment_id, order_id, user_id, quote.carrier, quote.eta_days, items_json, now_ms],
    )? == 1;
    let shipment = find(&tx, order_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    tx.commit()?;
    Ok((shipment, created))
}

pub fn find(conn: &Connection, order_id: i64) -> rusqlite::Result<Option<Shipment>> {
    conn.query_row(
        "SELECT shipment_id, order_id, user_id, carrier, eta_days, items_json, created_at
         FROM shipments WHERE order_id = ?1",
        [order_id],
        from_row,
    )
    .optional()
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Shipment> {
    let items_json: String = row.get(5)?;
    let items = serde_json::from_str(&items_json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Shipment {
        shipment_id: row.get(0)?,
        order_id: row.get(1)?,
        user_id: row.get(2)?,
        carrier: row.get(3)?,
        eta_days: row.get(4)?,
        items,
        created_at: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quote::quote;

    #[test]
    fn an_order_books_one_shipment() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let items = [Item {
            product_id: 1,
            quantity: 2,
        }];
        let q = quote(10, &items);
        let (first, created) = book(&mut conn, 10, 4, &items, &q, 100).unwrap();
        assert!(created);
        assert_eq!(first.shipment_id, q.shipment_id);
        assert_eq!(first.items, items);

        let other_items = [Item {
            product_id: 9,
            quantity: 1,
        }];
        let (again, created) = book(
            &mut conn,
            10,
            4,
            &other_items,
            &quote(10, &other_items),
            200,
        )
        .unwrap();
        assert!(!created);
        assert_eq!(again, first, "a repeat returns the shipment already booked");
        assert_eq!(find(&conn, 11).unwrap(), None);
    }
}
