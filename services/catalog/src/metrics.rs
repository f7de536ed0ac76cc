//! Catalog's instruments, defined once.

use firedrill_runtime::metrics::{Counter, Meters};

#[derive(Clone)]
pub struct CatalogMetrics {
    /// Product reads through the cache by `cache.result`: `hit`, `miss`, or
    /// `error` (the cache could not answer and the database served the read).
    pub cache_lookups: Counter,
    /// Cache fills after a miss by `cache.result` (`ok`, `error`).
    pub cache_writes: Counter,
}

impl CatalogMetrics {
    pub fn new(meters: &Meters) -> Self {
        CatalogMetrics {
            cache_lookups: meters.counter(
                "cache.lookups",
                "Product reads through the cache, by result",
            ),
            cache_writes: meters.counter("cache.writes", "Cache fills after a miss, by result"),
        }
    }
}
