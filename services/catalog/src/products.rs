//! Reads of single products, cache-aside: ask the cache service first, on a
//! miss read the database and fill the cache for [`CACHE_TTL`].
//!
//! The cache is an optimisation, never a dependency that can fail a read: if
//! it errors or times out, the database answers and the error is counted.
//! That is also how a sick cache shows up: `cache.lookups{cache.result=
//! "error"}` rises and so does the database's load.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use firedrill_runtime::client::{CallError, Peer};
use firedrill_runtime::db::{Db, DbError};
use serde::{Deserialize, Serialize};

use crate::metrics::CatalogMetrics;
use crate::store::{self, Product};

pub const CACHE_TTL: Duration = Duration::from_secs(30);

pub struct Products {
    pub db: Db,
    pub cache: Arc<Peer>,
    pub metrics: CatalogMetrics,
}

#[derive(Deserialize)]
struct Cached {
    value: Product,
}

#[derive(Serialize)]
struct Fill<'a> {
    value: &'a Product,
    ttl_ms: u64,
}

impl Products {
    pub async fn get(&self, id: i64) -> Result<Option<Product>, DbError> {
        let path = format!("/keys/product:{id}");
        let fill = match self
            .cache
            .get("/keys/{key}", path.clone())
            .json::<Cached>()
            .await
        {
            Ok(Cached { value }) => {
                self.count_lookup("hit");
                return Ok(Some(value));
            }
            Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {
                self.count_lookup("miss");
                true
            }
            Err(err) => {
                self.count_lookup("error");
                tracing::warn!(product_id = id, error = %err, "cache read failed; reading the database");
                // An unreadable entry is overwritten with the good value; an
                // unreachable cache is left alone rather than waited on twice.
                matches!(err, CallError::Decode { .. })
            }
        };
        let product = store::get(&self.db, id).await?;
        if let (Some(p), true) = (&product, fill) {
            let body = Fill {
                value: p,
                ttl_ms: CACHE_TTL.as_millis() as u64,
            };
            match self.cache.put("/keys/{key}", path, &body).send().await {
                Ok(_) => self.metrics.cache_writes.inc(&[("cache.result", "ok")]),
                Err(err) => {
                    self.metrics.cache_writes.inc(&[("cache.result", "error")]);
                    tracing::warn!(product_id = id, error = %err, "cache fill failed");
                }
            }
        }
        Ok(product)
    }

    fn count_lookup(&self, result: &'static str) {
        self.metrics.cache_lookups.inc(&[("cache.result", result)]);
    }
}
