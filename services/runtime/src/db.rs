//! The SQLite connection pool shared by the stateful services.
//!
//! Every stateful service opens the same database file (WAL mode), each with
//! its own bounded pool, the way services share one database server. A query
//! first waits for a pooled connection — a wait that shows up as a gap before
//! the DB span and in `db.client.connection.wait_time`, which is how pool
//! exhaustion looks in production — then runs on a blocking thread inside a
//! client span that follows the OTel database conventions.
//!
//! The pool's size is live config (`db.poolSize`): [`Db::resize`] swaps in a
//! pool of the new size, the way a reconfigured production pool does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OptionalExtension as _};
use tokio::sync::Semaphore;
use tracing::{Instrument as _, field::Empty};

use crate::faults::Faults;
use crate::metrics::{Counter, Gauge, Histogram, LATENCY_BUCKETS, Meters, Unit};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool {pool}: no connection free after {waited:?} ({size} in use)")]
    PoolTimeout {
        pool: String,
        waited: Duration,
        size: usize,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database worker failed: {0}")]
    Worker(String),
}

/// What a query is, for its span and metrics: `SELECT` on `products`.
#[derive(Clone, Copy, Debug)]
pub struct Query {
    pub operation: &'static str,
    pub collection: &'static str,
    /// The statement text (parameterised: never holds user values).
    pub text: &'static str,
}

#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pool: String,
    path: PathBuf,
    namespace: String,
    connections: Mutex<Vec<Connection>>,
    /// One permit per connection a query may hold; replaced on a resize.
    permits: RwLock<Arc<Semaphore>>,
    size: AtomicUsize,
    acquire_timeout: Duration,
    metrics: DbMetrics,
    faults: Faults,
    /// Permits taken by a pool-leak fault and never released.
    leaked: AtomicUsize,
    /// The index the service's hot query relies on (what a drop-index fault
    /// drops when it names none).
    hot_index: Mutex<Option<String>>,
}

#[derive(Clone)]
struct DbMetrics {
    duration: Histogram,
    connections: Gauge,
    max: Gauge,
    pending: Gauge,
    wait: Histogram,
    timeouts: Counter,
}

impl DbMetrics {
    fn new(meters: &Meters) -> Self {
        DbMetrics {
            duration: meters.histogram(
                "db.client.operation.duration",
                "Duration of database operations",
                Unit::Seconds,
                LATENCY_BUCKETS,
            ),
            connections: meters.gauge(
                "db.client.connection.count",
                "Connections in the pool, by state (idle, used)",
                Unit::Count,
            ),
            max: meters.gauge(
                "db.client.connection.max",
                "Size of the connection pool",
                Unit::Count,
            ),
            pending: meters.gauge(
                "db.client.connection.pending_requests",
                "Queries waiting for a pooled connection",
                Unit::Count,
            ),
            wait: meters.histogram(
                "db.client.connection.wait_time",
                "Time spent waiting for a pooled connection",
                Unit::Seconds,
                LATENCY_BUCKETS,
            ),
            timeouts: meters.counter(
                "db.client.connection.timeouts",
                "Queries that gave up waiting for a pooled connection",
            ),
        }
    }
}

/// Opens one connection with the settings every pool member shares.
pub fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // WAL lets readers proceed during a write; busy_timeout makes writers
    // wait for the lock (as a real server would) instead of failing at once.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

impl Db {
    pub fn open(
        path: &Path,
        pool: &str,
        size: usize,
        acquire_timeout: Duration,
        meters: &Meters,
        faults: &Faults,
    ) -> anyhow::Result<Db> {
        let size = size.max(1);
        let connections = (0..size)
            .map(|_| connect(path))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", path.display()))?;
        let namespace = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "main".into());
        let db = Db {
            inner: Arc::new(Inner {
                pool: pool.to_string(),
                path: path.to_path_buf(),
                namespace,
                connections: Mutex::new(connections),
                permits: RwLock::new(Arc::new(Semaphore::new(size))),
                size: AtomicUsize::new(size),
                acquire_timeout,
                metrics: DbMetrics::new(meters),
                faults: faults.clone(),
                leaked: AtomicUsize::new(0),
                hot_index: Mutex::new(None),
            }),
        };
        db.inner
            .metrics
            .max
            .set(size as f64, &[("db.client.connection.pool.name", pool)]);
        db.publish_pool_state();
        Ok(db)
    }

    /// Runs schema statements once at start-up (idempotent DDL and seeds).
    pub async fn migrate(
        &self,
        name: &'static str,
        apply: impl FnOnce(&mut Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let query = Query {
            operation: "MIGRATE",
            collection: name,
            text: "schema migration",
        };
        self.run(query, apply)
            .await
            .map_err(|e| anyhow::anyhow!("migration {name} failed: {e}"))
    }

    /// Runs `work` on a pooled connection inside a DB client span.
    pub async fn run<T: Send + 'static>(
        &self,
        query: Query,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, DbError> {
        let inner = &self.inner;
        let pool_attr = [("db.client.connection.pool.name", inner.pool.as_str())];
        let waiting_since = Instant::now();
        let permits = inner.permits.read().clone();
        let size = inner.size.load(Ordering::Relaxed);
        let pending = size.saturating_sub(permits.available_permits());
        inner.metrics.pending.set(pending as f64, &pool_attr);
        let permit = match tokio::time::timeout(inner.acquire_timeout, permits.acquire_owned())
            .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(DbError::Worker("pool closed".into())),
            Err(_) => {
                inner.metrics.timeouts.inc(&pool_attr);
                tracing::warn!(pool = %inner.pool, waited_ms = inner.acquire_timeout.as_millis() as u64, "database pool exhausted: no free connection");
                return Err(DbError::PoolTimeout {
                    pool: inner.pool.clone(),
                    waited: inner.acquire_timeout,
                    size,
                });
            }
        };
        inner
            .metrics
            .wait
            .record(waiting_since.elapsed().as_secs_f64(), &pool_attr);
        self.publish_pool_state();

        // A pool grown by a resize opens its extra connections on demand.
        let pooled = inner.connections.lock().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => connect(&inner.path)?,
        };
        let span = tracing::info_span!(
            "db",
            otel.name = %format!("{} {}", query.operation, query.collection),
            otel.kind = "client",
            db.system.name = "sqlite",
            db.namespace = %inner.namespace,
            db.operation.name = query.operation,
            db.collection.name = query.collection,
            db.query.text = query.text,
            error.type = Empty,
            otel.status_code = Empty,
        );
        let started = Instant::now();
        let extra = inner.faults.slow_query();
        let disk_full = inner.faults.disk_full();
        // The worker gives the connection and the permit back itself: if
        // the caller is cancelled (an upstream timeout drops its handler)
        // while the query runs, the pool must not keep a permit without a
        // connection.
        let pool = Arc::clone(inner);
        let result = tokio::task::spawn_blocking(move || {
            if let Some(extra) = extra {
                // The query does more work than it should (a missing index,
                // a competing batch job): the connection is held meanwhile.
                std::thread::sleep(extra);
            }
            let result = if disk_full {
                // No free block on the volume: the file may not grow past
                // its size for the length of this query.
                pin_size(&conn).and_then(|()| {
                    let result = work(&mut conn);
                    unpin_size(&conn)?;
                    result
                })
            } else {
                work(&mut conn)
            };
            {
                // Past the pool's size (it shrank), the connection is closed.
                let mut idle = pool.connections.lock();
                if idle.len() < pool.size.load(Ordering::Relaxed) {
                    idle.push(conn);
                }
            }
            drop(permit);
            result
        })
        .instrument(span.clone())
        .await;
        let elapsed = started.elapsed().as_secs_f64();
        let result = match result {
            Ok(result) => result.map_err(DbError::from),
            Err(join) => {
                // The connection was lost with the panicking worker: replace it
                // so the pool keeps its size.
                tracing::error!(error = %join, "database worker panicked");
                if let Ok(conn) = connect(&inner.path) {
                    inner.connections.lock().push(conn);
                }
                Err(DbError::Worker(join.to_string()))
            }
        };
        self.publish_pool_state();
        let mut attrs = vec![
            ("db.system.name", "sqlite"),
            ("db.operation.name", query.operation),
            ("db.collection.name", query.collection),
        ];
        if let Err(err) = &result {
            span.record("error.type", db_error_type(err));
            span.record("otel.status_code", "ERROR");
            attrs.push(("error.type", db_error_type(err)));
        }
        inner.metrics.duration.record(elapsed, &attrs);
        result
    }

    fn publish_pool_state(&self) {
        let inner = &self.inner;
        let idle = inner.permits.read().available_permits();
        let used = inner.size.load(Ordering::Relaxed).saturating_sub(idle);
        let pool = inner.pool.as_str();
        let m = &inner.metrics;
        m.connections.set(
            idle as f64,
            &[
                ("db.client.connection.pool.name", pool),
                ("db.client.connection.state", "idle"),
            ],
        );
        m.connections.set(
            used as f64,
            &[
                ("db.client.connection.pool.name", pool),
                ("db.client.connection.state", "used"),
            ],
        );
    }

    /// Takes one connection and never gives it back (a pool-leak fault).
    /// Waits for a free one, as leaking code holding a connection would.
    pub async fn leak_one(&self) {
        let inner = &self.inner;
        let permits = inner.permits.read().clone();
        if let Ok(permit) = permits.acquire_owned().await {
            permit.forget();
            inner.leaked.fetch_add(1, Ordering::Relaxed);
            self.publish_pool_state();
        }
    }

    /// Returns every leaked connection to the pool (the leaking code was
    /// rolled back or the process restarted).
    pub fn return_leaked(&self) {
        let leaked = self.inner.leaked.swap(0, Ordering::Relaxed);
        if leaked > 0 {
            self.inner.permits.read().add_permits(leaked);
            self.publish_pool_state();
        }
    }

    pub fn pool_size(&self) -> usize {
        self.inner.size.load(Ordering::Relaxed)
    }

    /// Makes the pool `size` connections (a config change). Queries from
    /// now on share the new pool; those holding a connection of the old one
    /// finish on it, and connections past the new size are closed as they
    /// come back. Connections a pool-leak took stay with the old pool.
    pub fn resize(&self, size: usize) {
        let size = size.max(1);
        let inner = &self.inner;
        let previous = inner.size.swap(size, Ordering::Relaxed);
        if previous == size {
            return;
        }
        *inner.permits.write() = Arc::new(Semaphore::new(size));
        inner.leaked.store(0, Ordering::Relaxed);
        inner.metrics.max.set(
            size as f64,
            &[("db.client.connection.pool.name", inner.pool.as_str())],
        );
        tracing::info!(pool = %inner.pool, previous, size, "database pool resized");
        self.publish_pool_state();
    }

    /// Names the index the service's hottest query relies on.
    pub fn declare_hot_index(&self, index: &str) {
        *self.inner.hot_index.lock() = Some(index.to_string());
    }

    pub fn hot_index(&self) -> Option<String> {
        self.inner.hot_index.lock().clone()
    }

    /// Drops `index` and returns the statement that recreates it; `None`
    /// when there is no such index (already dropped, by another instance
    /// sharing the database). Runs on a connection of its own, outside the
    /// pool and without a span: it stands for someone else's session (a
    /// migration, a DBA), not for this service's queries.
    pub async fn drop_index(&self, index: &str) -> Result<Option<String>, DbError> {
        let path = self.inner.path.clone();
        let index = index.to_string();
        run_ddl(move || {
            let mut conn = connect(&path)?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let definition: Option<String> = tx
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1 AND sql IS NOT NULL",
                    [&index],
                    |row| row.get(0),
                )
                .optional()?;
            if definition.is_some() {
                tx.execute_batch(&format!("DROP INDEX \"{index}\""))?;
            }
            tx.commit()?;
            Ok(definition)
        })
        .await
    }

    /// Runs a `CREATE INDEX` statement from [`Db::drop_index`], unless the
    /// index is back already.
    pub async fn create_index(&self, definition: &str) -> Result<(), DbError> {
        let path = self.inner.path.clone();
        let statement = match definition.strip_prefix("CREATE INDEX ") {
            Some(rest) if !rest.starts_with("IF NOT EXISTS") => {
                format!("CREATE INDEX IF NOT EXISTS {rest}")
            }
            _ => definition.to_string(),
        };
        run_ddl(move || connect(&path)?.execute_batch(&statement)).await
    }
}

/// Runs schema work on a blocking thread.
async fn run_ddl<T: Send + 'static>(
    work: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, DbError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DbError::Worker(e.to_string()))?
        .map_err(DbError::from)
}

/// SQLite's own ceiling on the file's size in pages, when none is set.
const NO_PAGE_LIMIT: i64 = 4_294_967_294;

/// Pins the database file at its current size: a write that needs one more
/// page fails with SQLITE_FULL ("database or disk is full").
fn pin_size(conn: &Connection) -> rusqlite::Result<()> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
}

/// Lets the file grow again.
fn unpin_size(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row(
        &format!("PRAGMA max_page_count = {NO_PAGE_LIMIT}"),
        [],
        |_| Ok(()),
    )
}

fn db_error_type(err: &DbError) -> &'static str {
    match err {
        DbError::PoolTimeout { .. } => "pool_timeout",
        DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            "busy"
        }
        DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            "constraint"
        }
        DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DiskFull =>
        {
            "disk_full"
        }
        DbError::Sqlite(_) => "sqlite",
        DbError::Worker(_) => "worker",
    }
}

/// Default database location inside a run directory.
pub fn default_path(run_dir: &Path) -> PathBuf {
    run_dir.join("shop.db")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Identity;

    async fn items_db(dir: &tempfile::TempDir) -> Db {
        let meters = Meters::new(&Identity {
            service: "catalog".into(),
            instance_id: "catalog-1".into(),
            version: "test".into(),
            environment: "test".into(),
        });
        let db = Db::open(
            &dir.path().join("shop.db"),
            "catalog",
            2,
            Duration::from_secs(1),
            &meters,
            &Faults::none(),
        )
        .unwrap();
        db.migrate("items", |conn| {
            conn.execute_batch(
                "CREATE TABLE items (id INTEGER PRIMARY KEY, category TEXT NOT NULL);
                 CREATE INDEX IF NOT EXISTS items_by_category ON items (category, id);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
                 INSERT INTO items SELECT i, CASE i % 4 WHEN 0 THEN 'toys' ELSE 'books' END FROM n;",
            )
        })
        .await
        .unwrap();
        db
    }

    /// Runs the hot query on a pooled connection, as the service would (a
    /// cached statement), and returns its plan and how many rows it stepped
    /// through in full-table scans.
    async fn plan(db: &Db) -> (String, i32) {
        let query = Query {
            operation: "SELECT",
            collection: "items",
            text: "SELECT id FROM items WHERE category = ?1 ORDER BY id",
        };
        db.run(query, move |conn| {
            let mut hot = conn.prepare_cached(query.text)?;
            hot.reset_status(rusqlite::StatementStatus::FullscanStep);
            let found = hot.query_map(["toys"], |row| row.get::<_, i64>(0))?.count();
            assert_eq!(found, 25);
            let scanned = hot.get_status(rusqlite::StatementStatus::FullscanStep);
            let plan = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", query.text))?
                .query_map(["toys"], |row| row.get::<_, String>(3))?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .join("; ");
            Ok((plan, scanned))
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_query_whose_caller_gives_up_still_returns_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = items_db(&dir).await;
        let idle = || db.inner.connections.lock().len();
        assert_eq!(idle(), 2);
        let (running_tx, running_rx) = tokio::sync::oneshot::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let query = Query {
            operation: "SELECT",
            collection: "items",
            text: "SELECT count(*) FROM items",
        };
        let caller = tokio::spawn({
            let db = db.clone();
            async move {
                db.run(query, move |conn| {
                    let _ = running_tx.send(());
                    // Holds the connection until the test lets it go.
                    let _ = finish_rx.recv();
                    conn.query_row(query.text, [], |row| row.get::<_, i64>(0))
                })
                .await
            }
        });
        running_rx.await.unwrap();
        // An upstream timeout drops the handler mid-query.
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        finish_tx.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let free = || db.inner.permits.read().available_permits();
        while idle() < 2 || free() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the connection or its permit was lost: {} idle, {} free",
                idle(),
                free()
            );
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_dropped_index_turns_the_hot_query_into_a_scan_until_it_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let db = items_db(&dir).await;
        let (indexed, scanned) = plan(&db).await;
        assert!(
            indexed.contains("USING COVERING INDEX items_by_category"),
            "{indexed}"
        );
        assert_eq!(scanned, 0);

        let definition = db.drop_index("items_by_category").await.unwrap().unwrap();
        // The pooled connections, with their cached statements, see it too:
        // the same statement now steps through every row.
        let (plan_now, scanned) = plan(&db).await;
        assert_eq!(plan_now, "SCAN items");
        assert_eq!(scanned, 99, "the scan visits all 100 rows");
        assert_eq!(
            db.drop_index("items_by_category").await.unwrap(),
            None,
            "a second dropper finds nothing to drop, and will recreate nothing"
        );

        db.create_index(&definition).await.unwrap();
        db.create_index(&definition).await.unwrap();
        assert_eq!(plan(&db).await.1, 0);
    }

    #[tokio::test]
    async fn a_full_disk_fails_writes_that_need_space_and_keeps_reads() {
        use crate::faults::model::{FaultKind, FaultSpec, Target};
        use crate::faults::{ActiveFault, Faults};

        let dir = tempfile::tempdir().unwrap();
        let meters = Meters::new(&Identity {
            service: "cart".into(),
            instance_id: "cart-1".into(),
            version: "test".into(),
            environment: "test".into(),
        });
        let faults = Faults::new("cart", "cart-1", 1);
        let path = dir.path().join("shop.db");
        let db = Db::open(&path, "cart", 2, Duration::from_secs(1), &meters, &faults).unwrap();
        db.migrate("notes", |conn| {
            conn.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        })
        .await
        .unwrap();
        const INSERT: Query = Query {
            operation: "INSERT",
            collection: "notes",
            text: "INSERT INTO notes (body) VALUES (?1)",
        };
        const COUNT: Query = Query {
            operation: "SELECT",
            collection: "notes",
            text: "SELECT count(*) FROM notes",
        };
        let insert = |db: Db| async move {
            db.run(INSERT, |conn| {
                conn.execute("INSERT INTO notes (body) VALUES (?1)", ["x".repeat(200)])
            })
            .await
        };
        for _ in 0..50 {
            insert(db.clone()).await.unwrap();
        }
        faults.assign(vec![ActiveFault {
            id: "f1".into(),
            spec: FaultSpec {
                kind: FaultKind::DiskFull {},
                target: Target::parse("cart->db").unwrap(),
                toxicity: 1.0,
            },
            until: Instant::now() + Duration::from_secs(60),
        }]);
        // What fits in the last page still goes in; then every write fails.
        let mut written = 0;
        let err = loop {
            match insert(db.clone()).await {
                Ok(_) => written += 1,
                Err(err) => break err,
            }
            assert!(written < 100, "a full disk must stop the writes");
        };
        assert!(
            err.to_string().contains("database or disk is full"),
            "{err}"
        );
        assert_eq!(db_error_type(&err), "disk_full");
        for _ in 0..5 {
            assert!(insert(db.clone()).await.is_err());
        }
        let rows: i64 = db
            .run(COUNT, |conn| {
                conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
            })
            .await
            .unwrap();
        assert_eq!(
            rows,
            50 + written,
            "reads go on, and no write was half-done"
        );
        assert!(
            meters.encode().contains("error_type=\"disk_full\""),
            "failed writes are visible in the DB metrics"
        );

        faults.assign(vec![]);
        insert(db.clone())
            .await
            .expect("space again once the fault ends");
    }

    #[tokio::test]
    async fn the_drop_index_actuator_drops_the_hot_index_for_the_fault_only() {
        use crate::faults::actuators::Actuators;
        use crate::faults::model::{FaultKind, FaultSpec, Target};
        use crate::faults::{ActiveFault, Faults};

        let dir = tempfile::tempdir().unwrap();
        let db = items_db(&dir).await;
        db.declare_hot_index("items_by_category");
        let faults = Faults::new("catalog", "catalog-1", 1);
        let mut actuators = Actuators::new(&faults, Some(db.clone()));
        faults.assign(vec![ActiveFault {
            id: "f1".into(),
            spec: FaultSpec {
                kind: FaultKind::DropIndex { index: None },
                target: Target::parse("catalog->db").unwrap(),
                toxicity: 1.0,
            },
            until: Instant::now() + Duration::from_secs(60),
        }]);
        actuators.reconcile(&faults.active());
        eventually_plan(&db, |(plan, _)| plan == "SCAN items").await;
        faults.assign(vec![]);
        actuators.reconcile(&faults.active());
        eventually_plan(&db, |(plan, scanned)| {
            plan.contains("items_by_category") && scanned == 0
        })
        .await;
    }

    /// Waits (up to 10 s) for the actuator's task to have changed the plan.
    async fn eventually_plan(db: &Db, done: impl Fn((&str, i32)) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (plan, scanned) = plan(db).await;
            if done((&plan, scanned)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "plan stayed {plan} ({scanned} rows scanned)"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
