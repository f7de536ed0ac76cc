//! The `users` table: schema, seed and lookups.

use firedrill_runtime::db::{Db, DbError, Query};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use crate::password;

/// Seeded users are `user1` ..= `user{SEED_USERS}`.
pub const SEED_USERS: i64 = 500;
/// Every seeded user's password.
pub const SEED_PASSWORD: &str = "firedrill";

/// Creates the table and seeds the users, idempotently: several instances
/// may run this at once against the same file.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front, so concurrent migrators queue
    // on the busy timeout instead of failing a read-to-write upgrade.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS users (
             id            INTEGER PRIMARY KEY,
             username      TEXT    NOT NULL UNIQUE,
             password_salt TEXT    NOT NULL,
             password_hash TEXT    NOT NULL,
             created_at    INTEGER NOT NULL
         );",
    )?;
    let now = firedrill_runtime::clock::now_unix_ms();
    {
        let mut insert = tx.prepare(
            "INSERT OR IGNORE INTO users (id, username, password_salt, password_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for id in 1..=SEED_USERS {
            let username = format!("user{id}");
            let salt = password::seed_salt(&username);
            let hash = password::hash(&salt, SEED_PASSWORD);
            insert.execute(params![id, username, salt, hash, now])?;
        }
    }
    tx.commit()
}

/// What login needs to check a password.
#[derive(Debug)]
pub struct Credentials {
    pub user_id: i64,
    pub salt: String,
    pub hash: String,
}

pub async fn credentials(db: &Db, username: String) -> Result<Option<Credentials>, DbError> {
    let query = Query {
        operation: "SELECT",
        collection: "users",
        text: "SELECT id, password_salt, password_hash FROM users WHERE username = ?1",
    };
    db.run(query, move |conn| {
        conn.prepare_cached(query.text)?
            .query_row([username], |row| {
                Ok(Credentials {
                    user_id: row.get(0)?,
                    salt: row.get(1)?,
                    hash: row.get(2)?,
                })
            })
            .optional()
    })
    .await
}
