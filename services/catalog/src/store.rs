//! The `products` table: schema, seed and queries.

use firedrill_runtime::db::{Db, DbError, Query};
use rusqlite::{Connection, OptionalExtension as _, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::seed;

/// A product as every service sees it (docs/shop-api.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub sku: String,
    pub name: String,
    pub category: String,
    pub price_cents: i64,
    pub description: String,
}

fn product(row: &Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        id: row.get(0)?,
        sku: row.get(1)?,
        name: row.get(2)?,
        category: row.get(3)?,
        price_cents: row.get(4)?,
        description: row.get(5)?,
    })
}

/// Creates the table and its category index and seeds the catalog,
/// idempotently: several instances may run this at once on one file.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front, so concurrent migrators queue
    // on the busy timeout instead of failing a read-to-write upgrade.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS products (
             id          INTEGER PRIMARY KEY,
             sku         TEXT    NOT NULL UNIQUE,
             name        TEXT    NOT NULL,
             category    TEXT    NOT NULL,
             price_cents INTEGER NOT NULL CHECK (price_cents > 0),
             description TEXT    NOT NULL,
             created_at  INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS products_category ON products (category, id);",
    )?;
    {
        let mut insert = tx.prepare(
            "INSERT OR IGNORE INTO products (id, sku, name, category, price_cents, description, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for p in seed::products() {
            insert.execute(params![
                p.id,
                p.sku,
                p.name,
                p.category,
                p.price_cents,
                p.description,
                seed::created_at_ms(p.id)
            ])?;
        }
    }
    tx.commit()
}

/// One page of the catalog, optionally in one category, and how many
/// products match in all.
pub async fn list(
    db: &Db,
    category: Option<String>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Product>, i64), DbError> {
    match category {
        None => {
            let query = Query {
                operation: "SELECT",
                collection: "products",
                text: "SELECT id, sku, name, category, price_cents, description FROM products ORDER BY id LIMIT ?1 OFFSET ?2",
            };
            db.run(query, move |conn| {
                let products = conn
                    .prepare_cached(query.text)?
                    .query_map(params![limit, offset], product)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let total = conn
                    .prepare_cached("SELECT COUNT(*) FROM products")?
                    .query_row([], |r| r.get(0))?;
                Ok((products, total))
            })
            .await
        }
        Some(category) => {
            let query = Query {
                operation: "SELECT",
                collection: "products",
                text: "SELECT id, sku, name, category, price_cents, description FROM products WHERE category = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
            };
            db.run(query, move |conn| {
                let products = conn
                    .prepare_cached(query.text)?
                    .query_map(params![category, limit, offset], product)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let total = conn
                    .prepare_cached("SELECT COUNT(*) FROM products WHERE category = ?1")?
                    .query_row([&category], |r| r.get(0))?;
                Ok((products, total))
            })
            .await
        }
    }
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Product>, DbError> {
    let query = Query {
        operation: "SELECT",
        collection: "products",
        text: "SELECT id, sku, name, category, price_cents, description FROM products WHERE id = ?1",
    };
    db.run(query, move |conn| {
        conn.prepare_cached(query.text)?
            .query_row([id], product)
            .optional()
    })
    .await
}

/// The products among `ids` that exist, in the order asked (each once).
pub async fn lookup(db: &Db, ids: Vec<i64>) -> Result<Vec<Product>, DbError> {
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<i64> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One statement whatever the number of ids: the list travels as one
    // JSON parameter and json_each turns it into rows to join on.
    let query = Query {
        operation: "SELECT",
        collection: "products",
        text: "SELECT p.id, p.sku, p.name, p.category, p.price_cents, p.description FROM json_each(?1) AS j JOIN products AS p ON p.id = j.value ORDER BY j.key",
    };
    let ids = serde_json::to_string(&ids).expect("a list of integers serialises");
    db.run(query, move |conn| {
        conn.prepare_cached(query.text)?
            .query_map([ids], product)?
            .collect()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_twice_seeds_once_and_lookup_sql_works() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM products", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 240);
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM products WHERE category = 'toys' ORDER BY id",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(
            plan.contains("products_category"),
            "category filter must use the index: {plan}"
        );
        let names: Vec<i64> = conn
            .prepare("SELECT p.id FROM json_each(?1) AS j JOIN products AS p ON p.id = j.value ORDER BY j.key")
            .unwrap()
            .query_map(["[9, 400, 2]"], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(names, vec![9, 2]);
    }
}
