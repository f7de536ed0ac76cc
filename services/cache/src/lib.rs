//! cache: a tiny in-memory key/value store with per-key TTLs, like a
//! one-node Redis that the other services use for cache-aside reads.
//!
//! - Data: values live only in this process's memory (no database), bounded
//!   to [`DEFAULT_MAX_ENTRIES`] entries (`FIREDRILL_CACHE_MAX_ENTRIES`). When
//!   full, the entry that expires soonest (the oldest on ties) is evicted, so
//!   a burst of writes costs the entries that were about to go anyway.
//!   Expired entries are misses; a background sweeper drops them every
//!   second so memory and the `cache.entries` gauge stay honest.
//! - Routes: `GET /keys/{key}` (200 `{"value"}` or 404 miss),
//!   `PUT /keys/{key}` (`{"value","ttl_ms"}`, 204), `DELETE /keys`
//!   (`{"flushed"}`), `GET /stats`.
//! - Depends on: nothing.
//! - Emits: `cache.requests` {`cache.operation`, `cache.result`},
//!   `cache.entries`, `cache.evictions` {`cache.eviction.reason`}.
//! - Faults: a `cache-flush` fault empties the cache when it starts (as
//!   `DELETE /keys` would); with `ttl`, entries stored meanwhile all expire
//!   at the end of the current `ttl` period (`cache::aligned_ttl`).

mod cache;
mod metrics;
mod routes;
mod store;

use std::sync::Arc;

use anyhow::Context as _;
use firedrill_runtime::ServiceContext;
use firedrill_runtime::faults::Transition;
use firedrill_runtime::faults::model::FaultKind;

pub const NAME: &str = "cache";

/// Default bound on stored entries.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let capacity = max_entries_from_env()?;
    let cache = Arc::new(cache::Cache::new(
        capacity,
        metrics::CacheMetrics::new(&ctx.meters),
        ctx.faults.clone(),
    ));
    cache::spawn_sweeper(cache.clone(), ctx.shutdown.clone());
    // A cache-flush fault empties the cache once, when it starts, through
    // the same path as `DELETE /keys`. Weak: the fault handle must not keep
    // the cache alive.
    let flushable = Arc::downgrade(&cache);
    ctx.faults.on_transition(move |kind, transition| {
        if transition == Transition::Started
            && matches!(kind, FaultKind::CacheFlush { .. })
            && let Some(cache) = flushable.upgrade()
        {
            cache.flush();
        }
    });
    tracing::info!(capacity, "cache ready");
    Ok(routes::router(cache))
}

fn max_entries_from_env() -> anyhow::Result<usize> {
    match std::env::var("FIREDRILL_CACHE_MAX_ENTRIES") {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| {
                format!("FIREDRILL_CACHE_MAX_ENTRIES={raw:?} is not a positive integer")
            }),
        _ => Ok(DEFAULT_MAX_ENTRIES),
    }
}
