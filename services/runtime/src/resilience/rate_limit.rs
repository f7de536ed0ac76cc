//! Token-bucket rate limiting per key (client address, route).
//!
//! A bucket holds up to `burst` tokens and refills at `rate` per second; a
//! request spends one token or is refused with 429.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Beyond this many keys, idle full buckets are forgotten so a flood of
/// distinct client addresses cannot grow memory without bound.
const MAX_KEYS: usize = 10_000;

impl RateLimiter {
    /// `rate` requests per second with bursts of `burst`. A rate of 0 means
    /// unlimited.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.rate <= 0.0
    }

    /// Spends a token for `key` at `now`; false means "refuse".
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        if self.is_unlimited() {
            return true;
        }
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let refill = now.saturating_duration_since(bucket.updated).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_refills_at_rate() {
        let rl = RateLimiter::new(10.0, 3.0);
        let t0 = Instant::now();
        assert!((0..3).all(|_| rl.allow("a", t0)));
        assert!(!rl.allow("a", t0));
        // Another key has its own bucket.
        assert!(rl.allow("b", t0));
        // 100 ms at 10/s refills one token.
        assert!(rl.allow("a", t0 + Duration::from_millis(100)));
        assert!(!rl.allow("a", t0 + Duration::from_millis(100)));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let rl = RateLimiter::new(0.0, 1.0);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| rl.allow("a", t0)));
    }
}
