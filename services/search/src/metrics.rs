//! Search's instruments, defined once.

use firedrill_runtime::metrics::{Counter, Gauge, Histogram, LATENCY_BUCKETS, Meters, Unit};

#[derive(Clone)]
pub struct SearchMetrics {
    /// Products in the live index (0 until the first load).
    pub documents: Gauge,
    /// Index (re)loads from catalog by `outcome` (`ok`, `error`).
    pub refreshes: Counter,
    /// Time spent ranking one query (CPU only, no I/O): the signal that
    /// separates "search is slow" from "search's dependencies are slow".
    pub query_duration: Histogram,
}

impl SearchMetrics {
    pub fn new(meters: &Meters) -> Self {
        SearchMetrics {
            documents: meters.gauge(
                "search.index.documents",
                "Products in the live search index",
                Unit::Count,
            ),
            refreshes: meters.counter(
                "search.index.refreshes",
                "Search index loads from catalog, by outcome",
            ),
            query_duration: meters.histogram(
                "search.query.duration",
                "Time spent ranking one search or recommendation query",
                Unit::Seconds,
                LATENCY_BUCKETS,
            ),
        }
    }
}
