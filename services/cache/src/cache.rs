//! The shared cache: the [`Store`] behind one lock, with its metrics and
//! running totals for `/stats`, and the sweeper that drops expired entries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use firedrill_runtime::faults::Faults;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::CacheMetrics;
use crate::store::{Store, Value};

/// How often expired entries are swept out.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub struct Cache {
    store: Mutex<Store>,
    metrics: CacheMetrics,
    totals: Totals,
    /// Consulted on every set: a cache-flush fault with a `ttl` overrides
    /// the TTL callers ask for ("bad TTL").
    faults: Faults,
    /// The origin of aligned expiries (see [`aligned_ttl`]).
    started: Instant,
}

#[derive(Default)]
struct Totals {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

/// The answer of `GET /stats`.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub entries: usize,
    pub capacity: usize,
    pub hits: u64,
    pub misses: u64,
    pub sets: u64,
    pub evictions: u64,
    pub expirations: u64,
}

impl Cache {
    pub fn new(capacity: usize, metrics: CacheMetrics, faults: Faults) -> Self {
        let cache = Cache {
            store: Mutex::new(Store::new(capacity)),
            metrics,
            totals: Totals::default(),
            faults,
            started: Instant::now(),
        };
        cache.metrics.entries.set(0.0, &[]);
        cache
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        let (value, len) = {
            let mut store = self.store.lock();
            (store.get(key, Instant::now()), store.len())
        };
        let result = if value.is_some() {
            self.totals.hits.fetch_add(1, Ordering::Relaxed);
            "hit"
        } else {
            self.totals.misses.fetch_add(1, Ordering::Relaxed);
            "miss"
        };
        self.metrics
            .requests
            .inc(&[("cache.operation", "get"), ("cache.result", result)]);
        self.metrics.entries.set(len as f64, &[]);
        value
    }

    pub fn set(&self, key: &str, value: Value, ttl: Duration) {
        let now = Instant::now();
        let ttl = match self.faults.cache_ttl() {
            Some(bad) => aligned_ttl(bad, now - self.started),
            None => ttl,
        };
        let (outcome, len) = {
            let mut store = self.store.lock();
            let outcome = store.set(key, value, ttl, now);
            (outcome, store.len())
        };
        self.totals.sets.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .requests
            .inc(&[("cache.operation", "set"), ("cache.result", "ok")]);
        self.metrics.entries.set(len as f64, &[]);
        self.count_expired(outcome.expired);
        if outcome.evicted > 0 {
            self.totals
                .evictions
                .fetch_add(outcome.evicted as u64, Ordering::Relaxed);
            self.metrics.evictions.add(
                outcome.evicted as f64,
                &[("cache.eviction.reason", "capacity")],
            );
        }
    }

    pub fn flush(&self) -> usize {
        let flushed = self.store.lock().flush();
        self.metrics
            .requests
            .inc(&[("cache.operation", "flush"), ("cache.result", "ok")]);
        self.metrics.entries.set(0.0, &[]);
        tracing::info!(flushed, "cache flushed");
        flushed
    }

    /// Drops expired entries now.
    pub fn sweep(&self) -> usize {
        let (expired, len) = {
            let mut store = self.store.lock();
            (store.sweep(Instant::now()), store.len())
        };
        self.count_expired(expired);
        self.metrics.entries.set(len as f64, &[]);
        expired
    }

    pub fn stats(&self) -> Stats {
        let (entries, capacity) = {
            let store = self.store.lock();
            (store.len(), store.capacity())
        };
        let t = &self.totals;
        Stats {
            entries,
            capacity,
            hits: t.hits.load(Ordering::Relaxed),
            misses: t.misses.load(Ordering::Relaxed),
            sets: t.sets.load(Ordering::Relaxed),
            evictions: t.evictions.load(Ordering::Relaxed),
            expirations: t.expirations.load(Ordering::Relaxed),
        }
    }

    fn count_expired(&self, expired: usize) {
        if expired > 0 {
            self.totals
                .expirations
                .fetch_add(expired as u64, Ordering::Relaxed);
            self.metrics
                .evictions
                .add(expired as f64, &[("cache.eviction.reason", "expired")]);
        }
    }
}

/// A "bad TTL": what is left of the current `period`, counted from the
/// cache's start, so every entry stored within one period expires at the
/// same instant, and the misses arrive together instead of spread out.
pub fn aligned_ttl(period: Duration, since_start: Duration) -> Duration {
    let period_ms = period.as_millis().max(1);
    let into = since_start.as_millis() % period_ms;
    Duration::from_millis((period_ms - into) as u64)
}

/// Sweeps expired entries every [`SWEEP_EVERY`] until `shutdown`. Without it
/// an entry nobody reads again would hold memory (and count in
/// `cache.entries`) until capacity pressure pushed it out.
pub fn spawn_sweeper(cache: Arc<Cache>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => { cache.sweep(); }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_ttls_end_at_the_next_period_boundary() {
        let period = Duration::from_secs(5);
        let ms = Duration::from_millis;
        assert_eq!(aligned_ttl(period, ms(0)), period);
        assert_eq!(aligned_ttl(period, ms(1_200)), ms(3_800));
        assert_eq!(aligned_ttl(period, ms(4_999)), ms(1));
        assert_eq!(aligned_ttl(period, ms(5_000)), period);
        assert_eq!(aligned_ttl(period, ms(12_000)), ms(3_000));
    }
}
