//! The processor's per-merchant rate limit, the way card processors enforce
//! one: a merchant's requests are admitted at `rate` per second, bursts of
//! up to `burst` at once, and past that they wait their turn in arrival
//! order. A request whose turn is more than [`MAX_WAIT`] away is refused at
//! once (503 with `Retry-After`).
//!
//! Admitted work runs to the end whether or not its caller is still
//! waiting, as a processor's does: a charge whose caller gave up still
//! moves money (which is why charges carry idempotency keys), and it still
//! spends the merchant's rate. So a caller that times out and retries pays
//! twice for one answer; when every caller does, the queue fills with work
//! nobody waits for.
//!
//! The turns are kept by GCRA (the "virtual scheduling" form of a token
//! bucket): one theoretical arrival time, moved on by `1 / rate` per
//! admitted request, so a turn is reserved in O(1) with no queue to walk.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::metrics::ProviderMetrics;

/// The longest a request may wait for its turn before it is refused instead.
pub const MAX_WAIT: Duration = Duration::from_secs(15);

/// A merchant's rate in requests per second, checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate(f64);

impl Rate {
    /// Within 0.1..=10,000 requests per second.
    pub fn new(per_second: f64) -> Result<Rate, String> {
        if per_second.is_finite() && (0.1..=10_000.0).contains(&per_second) {
            Ok(Rate(per_second))
        } else {
            Err(format!(
                "the merchant rate must be within 0.1..=10000 requests per second, got {per_second}"
            ))
        }
    }

    pub fn per_second(self) -> f64 {
        self.0
    }

    /// Requests admitted back to back: one second's worth, at least two.
    fn burst(self) -> f64 {
        self.0.max(2.0).floor()
    }
}

/// Why a request was not done.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// Its turn was more than [`MAX_WAIT`] away; it would have come after
    /// `retry_after`.
    Busy { retry_after: Duration },
    /// The process is stopping and dropped the work unanswered.
    ShuttingDown,
}

pub struct Admission {
    /// Time between two turns.
    interval: Duration,
    /// How far ahead of the schedule a burst may run.
    tolerance: Duration,
    /// The theoretical arrival time of the next request.
    next: Mutex<Instant>,
    /// Requests waiting for their turn (the `queued` gauge).
    waiting: Arc<AtomicU64>,
    metrics: ProviderMetrics,
}

impl Admission {
    pub fn new(rate: Rate, metrics: ProviderMetrics) -> Admission {
        let interval = Duration::from_secs_f64(1.0 / rate.per_second());
        Admission {
            interval,
            tolerance: interval.mul_f64(rate.burst() - 1.0),
            next: Mutex::new(Instant::now()),
            waiting: Arc::new(AtomicU64::new(0)),
            metrics,
        }
    }

    /// Reserves the next turn: how long until it comes, or a refusal when
    /// that is more than [`MAX_WAIT`] away (nothing is reserved then).
    pub fn reserve(&self, now: Instant) -> Result<Duration, Refused> {
        let mut next = self.next.lock();
        let earliest = next.checked_sub(self.tolerance).unwrap_or(now);
        let wait = earliest.saturating_duration_since(now);
        if wait > MAX_WAIT {
            return Err(Refused::Busy { retry_after: wait });
        }
        *next = (*next).max(now) + self.interval;
        Ok(wait)
    }

    /// Runs `work` at its turn, in a task of its own, and hands its result
    /// back. The task does not depend on the caller: if the caller stops
    /// waiting (its client timed out and hung up), the work is still done
    /// at its turn and its answer is dropped, counted as abandoned.
    pub async fn run<T, F>(&self, route: String, work: F) -> Result<T, Refused>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let wait = self.reserve(Instant::now()).inspect_err(|refused| {
            self.metrics.throttled.inc(&[("http.route", &route)]);
            if let Refused::Busy { retry_after } = refused {
                log_refusal_sometimes(*retry_after);
            }
        })?;
        let (tx, rx) = oneshot::channel();
        let metrics = self.metrics.clone();
        let waiting = self.waiting.clone();
        let queued = waiting.fetch_add(1, Ordering::Relaxed) + 1;
        metrics.queued.set(queued as f64, &[]);
        // The span follows the request's trace, and outlives its server span
        // when the caller has gone: the work a trace shows still running.
        let span = tracing::info_span!(
            "process payment",
            payment.queue.wait_ms = wait.as_millis() as u64,
        );
        tokio::spawn(
            async move {
                tokio::time::sleep(wait).await;
                let queued = waiting.fetch_sub(1, Ordering::Relaxed) - 1;
                metrics.queued.set(queued as f64, &[]);
                metrics.queue_wait.record(wait.as_secs_f64(), &[]);
                let answer = work.await;
                if tx.send(answer).is_err() {
                    metrics.abandoned.inc(&[("http.route", &route)]);
                    tracing::warn!(
                        route,
                        waited_ms = wait.as_millis() as u64,
                        "caller hung up before the answer: processed for nobody"
                    );
                }
            }
            .instrument(span),
        );
        rx.await.map_err(|_| Refused::ShuttingDown)
    }
}

/// One log line per second at most: a full queue refuses many requests.
fn log_refusal_sometimes(retry_after: Duration) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = firedrill_runtime::clock::now_unix_ms() as u64 / 1000;
    if LAST.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(
            retry_after_ms = retry_after.as_millis() as u64,
            "merchant rate limit: request refused, the queue is full"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(rate: f64) -> Admission {
        let meters = firedrill_runtime::metrics::Meters::new(
            &firedrill_runtime::config::parse_service_args(&[])
                .unwrap()
                .identity("payment-provider"),
        );
        Admission::new(Rate::new(rate).unwrap(), ProviderMetrics::new(&meters))
    }

    #[test]
    fn rates_out_of_range_are_refused_with_the_range() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 20_000.0] {
            let err = Rate::new(bad).unwrap_err();
            assert!(err.contains("0.1..=10000"), "{err}");
        }
        assert_eq!(Rate::new(1.5).unwrap().burst(), 2.0);
        assert_eq!(Rate::new(6.0).unwrap().burst(), 6.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_turns_come_at_the_rate_until_the_queue_is_full() {
        let gate = admission(4.0);
        let now = Instant::now();
        // Four back to back (one second's worth), then one every 250 ms.
        let waits: Vec<Duration> = (0..8).map(|_| gate.reserve(now).unwrap()).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 0, 0, 250, 500, 750, 1000]);
        // Up to fifteen seconds of waiting is queued; the next is refused
        // and told when its turn would have been.
        let queued = (0..100).take_while(|_| gate.reserve(now).is_ok()).count();
        assert_eq!(queued, 56, "turns at 1.25 s .. 15 s");
        let Err(Refused::Busy { retry_after }) = gate.reserve(now) else {
            panic!("the 65th request in one instant must be refused");
        };
        assert!(retry_after > MAX_WAIT, "{retry_after:?}");
        // A refusal reserves nothing: time passing frees turns again.
        let later = now + Duration::from_secs(2);
        assert!(gate.reserve(later).unwrap() <= MAX_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_merchant_gets_its_burst_back() {
        let gate = admission(2.0);
        let now = Instant::now();
        for _ in 0..10 {
            gate.reserve(now).unwrap();
        }
        let rested = now + Duration::from_secs(60);
        assert_eq!(gate.reserve(rested).unwrap(), Duration::ZERO);
        assert_eq!(gate.reserve(rested).unwrap(), Duration::ZERO);
        assert_eq!(gate.reserve(rested).unwrap(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn work_whose_caller_gave_up_is_still_done_at_its_turn() {
        let gate = std::sync::Arc::new(admission(2.0));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..4 {
            let done = done.clone();
            let work = async move {
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            };
            // Each caller gives up after 100 ms, long before the later turns.
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                gate.run("/v1/charges".into(), work),
            )
            .await;
        }
        assert_eq!(
            done.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the burst"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            done.load(std::sync::atomic::Ordering::SeqCst),
            4,
            "all of it"
        );
        assert_eq!(
            gate.metrics.abandoned.get(&[("http.route", "/v1/charges")]),
            2.0
        );
    }
}
