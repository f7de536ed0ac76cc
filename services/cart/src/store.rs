//! The `cart_items` table: one row per (user, product) line, holding the
//! name and price the product had when it was last added.

use firedrill_runtime::db::{Db, DbError, Query};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

/// Most units of one product in one cart.
pub const MAX_QUANTITY: i64 = 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub user_id: i64,
    pub items: Vec<Item>,
    pub total_cents: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub product_id: i64,
    pub name: String,
    pub quantity: i64,
    pub price_cents: i64,
    /// The lowest price of the last 30 days, shown next to the price for
    /// users with the `lowest-price-badge` feature (not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lowest_price_cents: Option<i64>,
}

impl Cart {
    fn new(user_id: i64, items: Vec<Item>) -> Cart {
        let total_cents = items.iter().map(|i| i.quantity * i.price_cents).sum();
        Cart {
            user_id,
            items,
            total_cents,
        }
    }
}

/// A product line as it is added.
#[derive(Clone, Debug)]
pub struct NewLine {
    pub product_id: i64,
    pub name: String,
    pub price_cents: i64,
    pub quantity: i64,
}

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS cart_items (
             user_id     INTEGER NOT NULL,
             product_id  INTEGER NOT NULL,
             quantity    INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 10),
             price_cents INTEGER NOT NULL,
             name        TEXT    NOT NULL,
             updated_at  INTEGER NOT NULL,
             PRIMARY KEY (user_id, product_id)
         );",
    )
}

const SELECT_CART: &str = "SELECT product_id, name, quantity, price_cents FROM cart_items WHERE user_id = ?1 ORDER BY product_id";

fn read_cart(conn: &Connection, user_id: i64) -> rusqlite::Result<Cart> {
    let items = conn
        .prepare_cached(SELECT_CART)?
        .query_map([user_id], |row| {
            Ok(Item {
                product_id: row.get(0)?,
                name: row.get(1)?,
                quantity: row.get(2)?,
                price_cents: row.get(3)?,
                lowest_price_cents: None,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Cart::new(user_id, items))
}

/// A write transaction that takes the lock up front, so concurrent writers
/// queue on the busy timeout rather than fail a read-to-write upgrade.
fn write(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

pub async fn cart(db: &Db, user_id: i64) -> Result<Cart, DbError> {
    let query = Query {
        operation: "SELECT",
        collection: "cart_items",
        text: SELECT_CART,
    };
    db.run(query, move |conn| read_cart(conn, user_id)).await
}

/// Adds `line` to the user's cart: a new line, or more of an existing one
/// (summed, capped at [`MAX_QUANTITY`], name and price refreshed).
pub async fn add(db: &Db, user_id: i64, line: NewLine, now_ms: i64) -> Result<Cart, DbError> {
    let query = Query {
        operation: "UPSERT",
        collection: "cart_items",
        text: "INSERT INTO cart_items (user_id, product_id, quantity, price_cents, name, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
               ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = MIN(10, quantity + excluded.quantity), \
               price_cents = excluded.price_cents, name = excluded.name, updated_at = excluded.updated_at",
    };
    db.run(query, move |conn| {
        let tx = write(conn)?;
        tx.prepare_cached(query.text)?.execute(params![
            user_id,
            line.product_id,
            line.quantity.min(MAX_QUANTITY),
            line.price_cents,
            line.name,
            now_ms
        ])?;
        let cart = read_cart(&tx, user_id)?;
        tx.commit()?;
        Ok(cart)
    })
    .await
}

/// Removes one line; also returns how many units it held (`None`: it was
/// not in the cart).
pub async fn remove(
    db: &Db,
    user_id: i64,
    product_id: i64,
) -> Result<(Option<i64>, Cart), DbError> {
    let query = Query {
        operation: "DELETE",
        collection: "cart_items",
        text: "DELETE FROM cart_items WHERE user_id = ?1 AND product_id = ?2 RETURNING quantity",
    };
    db.run(query, move |conn| {
        let tx = write(conn)?;
        let removed = {
            let mut statement = tx.prepare_cached(query.text)?;
            let mut rows = statement.query(params![user_id, product_id])?;
            match rows.next()? {
                Some(row) => Some(row.get(0)?),
                None => None,
            }
        };
        let cart = read_cart(&tx, user_id)?;
        tx.commit()?;
        Ok((removed, cart))
    })
    .await
}

/// Empties the cart; returns how many units were removed.
pub async fn clear(db: &Db, user_id: i64) -> Result<i64, DbError> {
    let query = Query {
        operation: "DELETE",
        collection: "cart_items",
        text: "DELETE FROM cart_items WHERE user_id = ?1 RETURNING quantity",
    };
    db.run(query, move |conn| {
        let tx = write(conn)?;
        let units = tx
            .prepare_cached(query.text)?
            .query_map([user_id], |row| row.get::<_, i64>(0))?
            .sum::<rusqlite::Result<i64>>()?;
        tx.commit()?;
        Ok(units)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_quantity_times_price() {
        let item = |product_id, quantity, price_cents| Item {
            product_id,
            name: "x".into(),
            quantity,
            price_cents,
            lowest_price_cents: None,
        };
        let cart = Cart::new(1, vec![item(1, 2, 250), item(2, 3, 1_000)]);
        assert_eq!(cart.total_cents, 3_500);
        assert_eq!(Cart::new(1, vec![]).total_cents, 0);
    }

    #[test]
    fn the_schema_refuses_quantities_outside_one_to_ten() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let insert = "INSERT INTO cart_items VALUES (1, 1, ?1, 100, 'x', 0)";
        assert!(conn.execute(insert, [11]).is_err());
        assert!(conn.execute(insert, [0]).is_err());
        conn.execute(insert, [10]).unwrap();
    }
}
