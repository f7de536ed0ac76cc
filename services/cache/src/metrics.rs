//! The cache's own instruments, defined once.

use firedrill_runtime::metrics::{Counter, Gauge, Meters, Unit};

#[derive(Clone)]
pub struct CacheMetrics {
    /// Requests by `cache.operation` (get, set, flush) and `cache.result`
    /// (hit/miss for gets, ok otherwise): the hit ratio is
    /// `hit / (hit + miss)` over `cache.operation="get"`.
    pub requests: Counter,
    /// Entries currently stored.
    pub entries: Gauge,
    /// Entries dropped before anyone deleted them, by `cache.eviction.reason`
    /// (`capacity`: the store was full; `expired`: their TTL ran out).
    pub evictions: Counter,
}

impl CacheMetrics {
    pub fn new(meters: &Meters) -> Self {
        CacheMetrics {
            requests: meters.counter("cache.requests", "Cache requests by operation and result"),
            entries: meters.gauge(
                "cache.entries",
                "Entries currently stored in the cache",
                Unit::Count,
            ),
            evictions: meters.counter(
                "cache.evictions",
                "Entries removed by expiry or to make room",
            ),
        }
    }
}
