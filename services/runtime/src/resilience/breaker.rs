//! A consecutive-failure circuit breaker, one per peer instance.
//!
//! Closed: calls flow; `failure_threshold` failures in a row open it.
//! Open: calls are rejected at once for `cooldown`, sparing a struggling
//! instance and failing fast instead of waiting on timeouts.
//! Half-open: one probe call is let through; success closes, failure reopens.
//!
//! The settings are passed in on every call, not kept: they come from the
//! live config, so a config push that sets the threshold to 0 (never opens)
//! or the cooldown to ten minutes (stuck open) acts on breakers already
//! open or counting.
//!
//! A probe whose call never reports back (its caller was cancelled) does
//! not wedge the breaker half-open: after another cooldown a new probe is
//! let through.

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// 0 disables the breaker (it never opens): a real misconfiguration.
    pub failure_threshold: u32,
    pub cooldown: Duration,
}

#[derive(Debug)]
pub struct Breaker {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    /// When the half-open probe now in flight was let through.
    probe_since: Option<Instant>,
}

/// What a caller must do after asking the breaker.
#[derive(Debug, PartialEq, Eq)]
pub enum Permit {
    /// Go ahead (possibly as the half-open probe).
    Allowed,
    /// Fail fast.
    Rejected,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::new()
    }
}

impl Breaker {
    pub fn new() -> Self {
        Breaker {
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_since: None,
            }),
        }
    }

    pub fn state(&self) -> State {
        self.inner.lock().state
    }

    /// Asks to make a call at `now`. Returns the permit and, if the state
    /// changed (open → half-open), the new state.
    pub fn acquire(&self, now: Instant, config: &BreakerConfig) -> (Permit, Option<State>) {
        let mut inner = self.inner.lock();
        let cooled = |since: Option<Instant>| {
            since.is_some_and(|at| now.saturating_duration_since(at) >= config.cooldown)
        };
        match inner.state {
            State::Closed => (Permit::Allowed, None),
            State::Open if config.failure_threshold == 0 => {
                // Reconfigured to never open: let calls through again.
                inner.state = State::Closed;
                inner.opened_at = None;
                inner.consecutive_failures = 0;
                (Permit::Allowed, Some(State::Closed))
            }
            State::Open if cooled(inner.opened_at) => {
                inner.state = State::HalfOpen;
                inner.probe_since = Some(now);
                (Permit::Allowed, Some(State::HalfOpen))
            }
            State::Open => (Permit::Rejected, None),
            State::HalfOpen if inner.probe_since.is_none() || cooled(inner.probe_since) => {
                inner.probe_since = Some(now);
                (Permit::Allowed, None)
            }
            State::HalfOpen => (Permit::Rejected, None),
        }
    }

    /// Reports a call's outcome; returns the new state if it changed.
    pub fn record(&self, success: bool, now: Instant, config: &BreakerConfig) -> Option<State> {
        let mut inner = self.inner.lock();
        let before = inner.state;
        inner.probe_since = None;
        if success {
            inner.consecutive_failures = 0;
            inner.state = State::Closed;
            inner.opened_at = None;
        } else {
            inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
            let trips = config.failure_threshold > 0
                && (before == State::HalfOpen
                    || inner.consecutive_failures >= config.failure_threshold);
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

    fn config(threshold: u32) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: threshold,
            cooldown: Duration::from_secs(5),
        }
    }

    /// A breaker and its settings, called like the client calls them.
    struct Subject {
        breaker: Breaker,
        config: BreakerConfig,
    }

    impl Subject {
        fn acquire(&self, now: Instant) -> (Permit, Option<State>) {
            self.breaker.acquire(now, &self.config)
        }
        fn record(&self, success: bool, now: Instant) -> Option<State> {
            self.breaker.record(success, now, &self.config)
        }
        fn state(&self) -> State {
            self.breaker.state()
        }
    }

    fn breaker(threshold: u32) -> Subject {
        Subject {
            breaker: Breaker::new(),
            config: config(threshold),
        }
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

    #[test]
    fn a_probe_that_never_reports_back_does_not_wedge_it_half_open() {
        let b = breaker(1);
        let t0 = Instant::now();
        b.record(false, t0);
        let probe = t0 + Duration::from_secs(6);
        assert_eq!(b.acquire(probe), (Permit::Allowed, Some(State::HalfOpen)));
        // The probe's caller is cancelled: no outcome is ever recorded.
        assert_eq!(
            b.acquire(probe + Duration::from_secs(1)).0,
            Permit::Rejected
        );
        let later = probe + Duration::from_secs(5);
        assert_eq!(b.acquire(later), (Permit::Allowed, None));
        assert_eq!(b.record(true, later), Some(State::Closed));
    }

    #[test]
    fn settings_changed_live_act_on_a_breaker_already_open() {
        let b = Breaker::new();
        let t0 = Instant::now();
        assert_eq!(b.record(false, t0, &config(1)), Some(State::Open));
        // Stuck open: a ten-minute cooldown keeps refusing a healthy peer.
        let stuck = BreakerConfig {
            failure_threshold: 1,
            cooldown: Duration::from_secs(600),
        };
        assert_eq!(
            b.acquire(t0 + Duration::from_secs(60), &stuck).0,
            Permit::Rejected
        );
        // The normal cooldown again: the next call probes.
        assert_eq!(
            b.acquire(t0 + Duration::from_secs(60), &config(1)),
            (Permit::Allowed, Some(State::HalfOpen))
        );
        // Threshold 0 (never opens) closes an open breaker outright.
        let b = Breaker::new();
        b.record(false, t0, &config(1));
        assert_eq!(
            b.acquire(t0, &config(0)),
            (Permit::Allowed, Some(State::Closed))
        );
    }
}
