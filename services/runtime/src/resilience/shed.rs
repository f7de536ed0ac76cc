//! Load shedding by concurrency: past `max_in_flight` requests, answer 503 at
//! once instead of queueing. A queue in front of a saturated server only adds
//! latency until every client times out; shedding keeps the accepted requests
//! fast and tells callers to back off.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Debug)]
pub struct LoadShedder {
    in_flight: Arc<AtomicUsize>,
    max: usize,
}

/// Held while a request is in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct InFlight {
    in_flight: Arc<AtomicUsize>,
}

impl LoadShedder {
    pub fn new(max: usize) -> Self {
        LoadShedder {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max: max.max(1),
        }
    }

    /// A slot, or `None` when the server is at capacity.
    pub fn try_acquire(&self) -> Option<InFlight> {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| InFlight {
            in_flight: self.in_flight.clone(),
        })
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheds_past_capacity_and_recovers() {
        let s = LoadShedder::new(2);
        let a = s.try_acquire().unwrap();
        let _b = s.try_acquire().unwrap();
        assert!(s.try_acquire().is_none());
        drop(a);
        assert!(s.try_acquire().is_some());
    }
}
