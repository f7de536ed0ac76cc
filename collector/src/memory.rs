//! The process's resident memory, sampled, and the admission rule built on it.
//!
//! Every store, queue and series map is bounded on its own, but their
//! estimates can be wrong and in-flight request bodies are not counted by
//! any of them. This is the safety net, in the spirit of the OTel
//! Collector's `memory_limiter`: while resident memory is above 90% of the
//! configured limit, receivers refuse new exports with a retryable status,
//! so senders back off instead of the collector being OOM-killed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;

/// How often resident memory is read: often enough to catch a flood within
/// a few export batches, rarely enough to cost nothing.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Refusing starts at this share of the limit, leaving room for the
/// requests already being decoded.
const REFUSE_AT_PERCENT: u64 = 90;

#[derive(Debug)]
pub struct MemoryGuard {
    limit_bytes: u64,
    resident_bytes: AtomicU64,
}

impl MemoryGuard {
    pub fn new(limit_bytes: usize) -> Arc<Self> {
        let guard = Arc::new(Self {
            limit_bytes: limit_bytes as u64,
            resident_bytes: AtomicU64::new(0),
        });
        guard.sample();
        guard
    }

    /// Samples until `stop` fires.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => self.sample(),
            }
        }
    }

    fn sample(&self) {
        if let Some(bytes) = resident_bytes() {
            self.resident_bytes.store(bytes, Ordering::Relaxed);
        }
    }

    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// The latest sample; 0 where the platform does not tell.
    pub fn resident(&self) -> u64 {
        self.resident_bytes.load(Ordering::Relaxed)
    }

    /// True while new exports should be refused.
    pub fn under_pressure(&self) -> bool {
        self.resident() > self.limit_bytes / 100 * REFUSE_AT_PERCENT
    }
}

/// Resident set size from `/proc/self/status` (Linux); `None` elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_applies_the_threshold() {
        let resident = resident_bytes().expect("tests run on Linux");
        assert!(resident > 1024 * 1024, "{resident}");
        assert!(!MemoryGuard::new(usize::MAX / 2).under_pressure());
        assert!(MemoryGuard::new(1024).under_pressure());
    }
}
