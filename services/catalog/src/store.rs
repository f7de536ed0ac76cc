//! The `products` and `product_prices` tables: schema, seed and queries.
//!
//! Prices are effective-dated: `product_prices` keeps every price a product
//! has had (its seeded history runs two years back), and a product's price
//! is its newest entry there, found through [`HOT_INDEX`] on every read.
//! Without that index each read scans the whole history (48 000 rows), which
//! is what a drop-index fault on `catalog->db` shows.

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

/// The index every product read relies on (the current-price lookup).
pub const HOT_INDEX: &str = "product_prices_by_product";

/// Prices each seeded product has had, the current one included.
pub const PRICE_REVISIONS: i64 = 200;
/// Time between two seeded price changes: three and a half days.
const PRICE_REVISION_EVERY_MS: i64 = 302_400_000;

/// The columns of a [`Product`], `p` being the `products` row: the price is
/// the newest entry of its history (the list price if it has none).
macro_rules! product_columns {
    () => {
        "p.id, p.sku, p.name, p.category, \
         COALESCE((SELECT pp.price_cents FROM product_prices AS pp \
                   WHERE pp.product_id = p.id ORDER BY pp.valid_from DESC LIMIT 1), p.price_cents), \
         p.description"
    };
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

/// Creates the tables and their indexes and seeds the catalog and its
/// price history, idempotently: several instances may run this at once on
/// one file.
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
         CREATE INDEX IF NOT EXISTS products_category ON products (category, id);
         CREATE TABLE IF NOT EXISTS product_prices (
             id          INTEGER PRIMARY KEY,
             product_id  INTEGER NOT NULL,
             valid_from  INTEGER NOT NULL,
             price_cents INTEGER NOT NULL CHECK (price_cents > 0)
         );",
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
    // The history, once (a second migrator finds it there): revision 0 is
    // the current price, the list price; older ones wander within about
    // ±15 % of it. One statement, and the index is built after it, in one
    // sorted pass rather than row by row: seeding stays cheap.
    let seeded: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM product_prices)", [], |r| {
        r.get(0)
    })?;
    if !seeded {
        tx.execute(
            "WITH RECURSIVE revision(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM revision WHERE k < ?1 - 1)
             INSERT INTO product_prices (product_id, valid_from, price_cents)
             SELECT p.id,
                    p.created_at + (?1 - 1 - revision.k) * ?2,
                    CASE WHEN revision.k = 0 THEN p.price_cents
                         ELSE MAX(99, p.price_cents * (85 + (p.id * 31 + revision.k * 17) % 31) / 100) END
             FROM revision, products AS p",
            params![PRICE_REVISIONS, PRICE_REVISION_EVERY_MS],
        )?;
    }
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS product_prices_by_product
             ON product_prices (product_id, valid_from);",
    )?;
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
                text: concat!(
                    "SELECT ",
                    product_columns!(),
                    " FROM products AS p ORDER BY p.id LIMIT ?1 OFFSET ?2"
                ),
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
                text: concat!(
                    "SELECT ",
                    product_columns!(),
                    " FROM products AS p WHERE p.category = ?1 ORDER BY p.id LIMIT ?2 OFFSET ?3"
                ),
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
        text: concat!(
            "SELECT ",
            product_columns!(),
            " FROM products AS p WHERE p.id = ?1"
        ),
    };
    db.run(query, move |conn| {
        conn.prepare_cached(query.text)?
            .query_row([id], product)
            .optional()
    })
    .await
}

/// Every revision's reference price; see [`lowest_price`].
const ALL_REFERENCE_PRICES: Query = Query {
    operation: "SELECT",
    collection: "product_prices",
    text: "SELECT cur.product_id, cur.valid_from, MIN(prev.price_cents) \
               FROM product_prices AS cur JOIN product_prices AS prev \
                 ON prev.product_id = cur.product_id \
                AND prev.valid_from >= cur.valid_from - ?1 AND prev.valid_from <= cur.valid_from \
               GROUP BY cur.product_id, cur.valid_from",
};

/// The reference price of `id`'s current price: the lowest price it had in
/// the `window_ms` before its latest change, the current price included
/// (`None` for an unknown product). Shops must show it next to a discount.
///
/// This is the query the feature shipped with: it works out the reference
/// price of every revision of every product, a join of the whole price
/// history with itself, and keeps one. Correct, and hundreds of thousands of
/// rows per call, which nobody noticed while the flag was off.
pub async fn lowest_price(db: &Db, id: i64, window_ms: i64) -> Result<Option<i64>, DbError> {
    let Some(current) = get(db, id).await? else {
        return Ok(None);
    };
    let reference = db
        .run(ALL_REFERENCE_PRICES, move |conn| {
            reference_price(conn, ALL_REFERENCE_PRICES.text, id, window_ms)
        })
        .await?;
    Ok(Some(reference.map_or(current.price_cents, |lowest| {
        lowest.min(current.price_cents)
    })))
}

/// Runs `all_reference_prices` and keeps the reference price of `id`'s
/// newest revision.
fn reference_price(
    conn: &Connection,
    all_reference_prices: &str,
    id: i64,
    window_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    let mut newest: Option<(i64, i64)> = None;
    let mut statement = conn.prepare_cached(all_reference_prices)?;
    let mut rows = statement.query([window_ms])?;
    while let Some(row) = rows.next()? {
        if row.get::<_, i64>(0)? != id {
            continue;
        }
        let (from, lowest) = (row.get::<_, i64>(1)?, row.get::<_, i64>(2)?);
        if newest.is_none_or(|(newest_from, _)| from > newest_from) {
            newest = Some((from, lowest));
        }
    }
    Ok(newest.map(|(_, lowest)| lowest))
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
        text: concat!(
            "SELECT ",
            product_columns!(),
            " FROM json_each(?1) AS j JOIN products AS p ON p.id = j.value ORDER BY j.key"
        ),
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

    /// Reads one page of a category the way `list` does, and counts the
    /// rows its statement stepped through in full-table scans.
    fn page_scans(conn: &Connection) -> (Vec<i64>, i32) {
        let text = concat!(
            "SELECT ",
            product_columns!(),
            " FROM products AS p WHERE p.category = ?1 ORDER BY p.id LIMIT ?2 OFFSET ?3"
        );
        let mut stmt = conn.prepare_cached(text).unwrap();
        stmt.reset_status(rusqlite::StatementStatus::FullscanStep);
        let prices = stmt
            .query_map(params!["toys", 20, 0], product)
            .unwrap()
            .map(|p| p.unwrap().price_cents)
            .collect();
        (
            prices,
            stmt.get_status(rusqlite::StatementStatus::FullscanStep),
        )
    }

    #[test]
    fn prices_come_from_the_newest_revision_through_the_hot_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let revisions: i64 = conn
            .query_row("SELECT COUNT(*) FROM product_prices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(revisions, 240 * PRICE_REVISIONS, "seeded once");
        let seeded = seed::products();
        let (prices, scanned) = page_scans(&conn);
        let toys: Vec<i64> = seeded
            .iter()
            .filter(|p| p.category == "toys")
            .take(20)
            .map(|p| p.price_cents)
            .collect();
        assert_eq!(prices, toys, "the price served is the list price");
        assert_eq!(scanned, 0, "the price lookup uses {HOT_INDEX}");
        let older: i64 = conn
            .query_row(
                "SELECT COUNT(DISTINCT price_cents) FROM product_prices WHERE product_id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(older > 10, "the history has real price changes: {older}");

        // Without the index, every product on the page scans the whole
        // history: a drop-index fault's cost, measured in rows.
        conn.execute_batch(&format!("DROP INDEX {HOT_INDEX}"))
            .unwrap();
        let (prices, scanned) = page_scans(&conn);
        assert_eq!(prices, toys, "same answer");
        assert!(
            scanned as i64 >= 20 * 240 * PRICE_REVISIONS - 20,
            "{scanned} rows scanned"
        );
    }

    #[test]
    fn the_reference_price_is_the_lowest_in_the_window_before_the_current_price() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let window = 30 * 86_400_000;
        for id in [1, 77, 240] {
            let expected: i64 = conn
                .query_row(
                    "SELECT MIN(price_cents) FROM product_prices WHERE product_id = ?1 \
                     AND valid_from >= (SELECT MAX(valid_from) FROM product_prices WHERE product_id = ?1) - ?2",
                    params![id, window],
                    |r| r.get(0),
                )
                .unwrap();
            let got = reference_price(&conn, ALL_REFERENCE_PRICES.text, id, window).unwrap();
            assert_eq!(got, Some(expected), "product {id}");
        }
        assert_eq!(
            reference_price(&conn, ALL_REFERENCE_PRICES.text, 9_999, window).unwrap(),
            None
        );
    }
}
