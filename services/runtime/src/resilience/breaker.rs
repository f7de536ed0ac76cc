//! A consecutive-failure circuit breaker, one per peer instance.
//!
//! Closed: calls flow; `failure_threshold` failures in a row open it.
//! Open: calls are rejected at once for `cooldown`, sparing a struggling
//! instance and failing fast instead of waiting on timeouts.
//! Half-open: one probe call is let through; success closes, failure reopens.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// Gauge encoding: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::HalfOpen => 1.0,
            State::Open => 2.0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct BreakerConfig {
    /// 0 disables the breaker (it never opens): a real misconfiguration.
    pub failure_threshold: u32,
    pub cooldown: Duration,
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

/// What a caller must do after asking the breaker.
#[derive(Debug, PartialEq, Eq)]
pub enum Permit {
    /// Go ahead (possibly as the half-open probe).
    Allowed,
    /// Fail fast.
    Rejected,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            config,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
        }
    }

    pub fn state(&self) -> State {
        self.inner.lock().state
    }

    /// Asks to make a call at `now`. Returns the permit and, if the state
    /// changed (open → half-open), the new state.
    pub fn acquire(&self, now: Instant) -> (Permit, Option<State>) {
        let mut inner = self.inner.lock();
        match inner.state {
            State::Closed => (Permit::Allowed, None),
            State::Open => {
                let cooled = inner
                    .opened_at
                    .is_some_and(|at| now.duration_since(at) >= self.config.cooldown);
                if cooled {
                    inner.state = State::HalfOpen;
                    inner.probe_in_flight = true;
                    (Permit::Allowed, Some(State::HalfOpen))
                } else {
                    (Permit::Rejected, None)
                }
            }
            State::HalfOpen if inner.probe_in_flight => (Permit::Rejected, None),
            State::HalfOpen => {
                inner.probe_in_flight = true;
                (Permit::Allowed, None)
            }
        }
    }

    /// Reports a call's outcome; returns the new state if it changed.
    pub fn record(&self, success: bool, now: Instant) -> Option<State> {
        let mut inner = self.inner.lock();
        let before = inner.state;
        inner.probe_in_flight = false;
        if success {
            inner.consecutive_failures = 0;
            inner.state = State::Closed;
            inner.opened_at = None;
        } else {
            inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
            let trips = self.config.failure_threshold > 0
                && (before == State::HalfOpen
                    || inner.consecutive_failures >= self.config.failure_threshold);
            if trips {
                inner.state = State::Open;
                inner.opened_at = Some(now);
            }
        }
        (inner.state != before).then_some(inner.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Breaker {
        Breaker::new(BreakerConfig {
            failure_threshold: threshold,
            cooldown: Duration::from_secs(5),
        })
    }

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let b = breaker(3);
        let t0 = Instant::now();
        assert_eq!(b.record(false, t0), None);
        assert_eq!(b.record(false, t0), None);
        assert_eq!(b.record(false, t0), Some(State::Open));
        assert_eq!(b.acquire(t0 + Duration::from_secs(1)).0, Permit::Rejected);
        let later = t0 + Duration::from_secs(6);
        assert_eq!(b.acquire(later), (Permit::Allowed, Some(State::HalfOpen)));
        // Only one probe at a time.
        assert_eq!(b.acquire(later).0, Permit::Rejected);
        assert_eq!(b.record(true, later), Some(State::Closed));
        assert_eq!(b.acquire(later).0, Permit::Allowed);
    }

    #[test]
    fn failed_probe_reopens() {
        let b = breaker(1);
        let t0 = Instant::now();
        b.record(false, t0);
        let later = t0 + Duration::from_secs(6);
        b.acquire(later);
        assert_eq!(b.record(false, later), Some(State::Open));
        assert_eq!(
            b.acquire(later + Duration::from_secs(1)).0,
            Permit::Rejected
        );
    }

    #[test]
    fn success_resets_the_failure_streak() {
        let b = breaker(2);
        let t0 = Instant::now();
        b.record(false, t0);
        b.record(true, t0);
        assert_eq!(b.record(false, t0), None);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn threshold_zero_never_opens() {
        let b = breaker(0);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(b.record(false, t0), None);
        }
        assert_eq!(b.acquire(t0).0, Permit::Allowed);
    }
}
