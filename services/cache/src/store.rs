//! The bounded TTL map behind the cache, free of locks, clocks and metrics:
//! every operation is told what time it is, so tests can move time freely.
//!
//! Two indexes over the same entries: `entries` answers lookups by key, and
//! `by_expiry` orders them by (expiry, insertion sequence) so that both the
//! sweep of expired entries and capacity eviction take the first elements
//! instead of scanning.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// A stored value: its JSON text, kept serialised so a hit is answered
/// without re-encoding.
pub type Value = Arc<str>;

#[derive(Debug)]
struct Entry {
    value: Value,
    expires_at: Instant,
    seq: u64,
}

/// What a `set` did besides storing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SetOutcome {
    /// Expired entries dropped to make room.
    pub expired: usize,
    /// Live entries evicted because the store was full.
    pub evicted: usize,
}

#[derive(Debug)]
pub struct Store {
    entries: HashMap<String, Entry>,
    by_expiry: BTreeSet<(Instant, u64, String)>,
    capacity: usize,
    next_seq: u64,
}

impl Store {
    pub fn new(capacity: usize) -> Self {
        Store {
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
            capacity: capacity.max(1),
            next_seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The live value of `key`; an expired entry is removed and is a miss.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<Value> {
        let entry = self.entries.get(key)?;
        if entry.expires_at <= now {
            self.remove(key);
            return None;
        }
        Some(entry.value.clone())
    }

    /// Stores `value` under `key` until `now + ttl`, replacing any previous
    /// value. A new key in a full store first drops expired entries, then
    /// evicts the entry that expires soonest.
    pub fn set(&mut self, key: &str, value: Value, ttl: Duration, now: Instant) -> SetOutcome {
        let mut outcome = SetOutcome::default();
        if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            outcome.expired = self.sweep(now);
            while self.entries.len() >= self.capacity {
                let Some((_, _, victim)) = self.by_expiry.first().cloned() else {
                    break;
                };
                self.remove(&victim);
                outcome.evicted += 1;
            }
        }
        self.remove(key);
        let seq = self.next_seq;
        self.next_seq += 1;
        let expires_at = now + ttl;
        self.by_expiry.insert((expires_at, seq, key.to_string()));
        self.entries.insert(
            key.to_string(),
            Entry {
                value,
                expires_at,
                seq,
            },
        );
        outcome
    }

    /// Removes every entry whose time is up; returns how many.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((expires_at, _, key)) = self.by_expiry.first().cloned() {
            if expires_at > now {
                break;
            }
            self.remove(&key);
            removed += 1;
        }
        removed
    }

    /// Empties the store; returns how many entries it held.
    pub fn flush(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        self.by_expiry.clear();
        n
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.by_expiry
            .remove(&(entry.expires_at, entry.seq, key.to_string()));
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn v(s: &str) -> Value {
        Arc::from(s)
    }

    #[test]
    fn a_value_lives_until_its_ttl() {
        let t0 = Instant::now();
        let mut store = Store::new(10);
        store.set("a", v("1"), SEC, t0);
        assert_eq!(store.get("a", t0 + SEC / 2).as_deref(), Some("1"));
        assert_eq!(
            store.get("a", t0 + SEC),
            None,
            "expired at exactly its deadline"
        );
        assert_eq!(store.len(), 0, "an expired read removes the entry");
    }

    #[test]
    fn overwriting_replaces_value_and_deadline() {
        let t0 = Instant::now();
        let mut store = Store::new(10);
        store.set("a", v("1"), SEC, t0);
        store.set("a", v("2"), 10 * SEC, t0);
        assert_eq!(store.len(), 1);
        assert_eq!(store.get("a", t0 + 5 * SEC).as_deref(), Some("2"));
        assert_eq!(
            store.sweep(t0 + 5 * SEC),
            0,
            "the old deadline is gone from the index"
        );
    }

    #[test]
    fn a_full_store_evicts_the_soonest_expiring_entry() {
        let t0 = Instant::now();
        let mut store = Store::new(3);
        store.set("long", v("1"), 100 * SEC, t0);
        store.set("short", v("2"), 5 * SEC, t0);
        store.set("mid", v("3"), 50 * SEC, t0);
        let outcome = store.set("new", v("4"), 10 * SEC, t0);
        assert_eq!(
            outcome,
            SetOutcome {
                expired: 0,
                evicted: 1
            }
        );
        assert_eq!(store.len(), 3);
        assert!(store.get("short", t0).is_none());
        for key in ["long", "mid", "new"] {
            assert!(store.get(key, t0).is_some(), "{key} should survive");
        }
    }

    #[test]
    fn ties_evict_the_oldest_and_expired_entries_go_first() {
        let t0 = Instant::now();
        let mut store = Store::new(2);
        store.set("first", v("1"), SEC, t0);
        store.set("second", v("2"), SEC, t0);
        let outcome = store.set("third", v("3"), SEC, t0);
        assert_eq!(outcome.evicted, 1);
        assert!(
            store.get("first", t0).is_none(),
            "oldest of equal deadlines is evicted"
        );

        let later = t0 + 2 * SEC;
        let outcome = store.set("fourth", v("4"), SEC, later);
        assert_eq!(
            outcome,
            SetOutcome {
                expired: 2,
                evicted: 0
            }
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn updating_a_key_in_a_full_store_evicts_nothing() {
        let t0 = Instant::now();
        let mut store = Store::new(2);
        store.set("a", v("1"), SEC, t0);
        store.set("b", v("2"), SEC, t0);
        assert_eq!(store.set("a", v("3"), SEC, t0), SetOutcome::default());
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn the_store_never_exceeds_its_capacity() {
        let t0 = Instant::now();
        let mut store = Store::new(50);
        for i in 0..1_000u64 {
            store.set(
                &format!("k{i}"),
                v("x"),
                Duration::from_millis(i % 97 + 1),
                t0,
            );
            assert!(store.len() <= 50);
            assert_eq!(store.by_expiry.len(), store.entries.len());
        }
    }

    #[test]
    fn sweep_and_flush_count_what_they_remove() {
        let t0 = Instant::now();
        let mut store = Store::new(10);
        store.set("a", v("1"), SEC, t0);
        store.set("b", v("2"), 3 * SEC, t0);
        store.set("c", v("3"), 3 * SEC, t0);
        assert_eq!(store.sweep(t0 + 2 * SEC), 1);
        assert_eq!(store.flush(), 2);
        assert_eq!(store.len(), 0);
        assert!(store.get("b", t0).is_none());
    }
}
