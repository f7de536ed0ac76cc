//! When journeys start: the target rate over time and the open-loop arrival
//! process that follows it.
//!
//! Arrivals are a Poisson process whose rate follows the ramp and the spike
//! (a non-homogeneous Poisson process). We draw it by time rescaling: if
//! `Λ(t)` is the expected number of arrivals in `[0, t)`, and `E1, E2, ...`
//! are unit exponential draws, then `Λ⁻¹(E1)`, `Λ⁻¹(E1 + E2)`, ... are the
//! arrival times. The rate is piecewise linear, so `Λ⁻¹` has a closed form;
//! no thinning, no approximation at ramp start where the rate is 0.
//!
//! Arrival times come only from the seeded RNG, never from responses: that
//! is what makes the generator open-loop. A slow shop gets the same arrivals
//! as a fast one; it just has more journeys in flight.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use firedrill_runtime::faults::Spike as SpikeFault;

use crate::plan::{Stream, derive_seed};

/// A temporary multiplier on the rate: `factor` times the rate during
/// `[start, start + length)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spike {
    pub start: Duration,
    pub length: Duration,
    pub factor: f64,
}

/// The target journey rate as a function of time since the run started.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateSchedule {
    /// Journeys per second once the ramp is done (outside a spike).
    rate: f64,
    /// Seconds to go linearly from 0 to `rate`; 0 means start at full rate.
    ramp: f64,
    /// `(start, end, factor)` in seconds.
    spike: Option<(f64, f64, f64)>,
}

/// A stretch of time over which the rate is `a + b·(t − start)`.
#[derive(Clone, Copy, Debug)]
struct Segment {
    start: f64,
    end: f64,
    a: f64,
    b: f64,
}

impl Segment {
    /// Expected arrivals in `[start, start + x)`.
    fn integral(&self, x: f64) -> f64 {
        // Spelled out so the open-ended last segment (x = ∞) gives ∞, or 0
        // for a zero rate, never the NaN of 0 · ∞.
        let linear = if self.a == 0.0 { 0.0 } else { self.a * x };
        let quadratic = if self.b == 0.0 {
            0.0
        } else {
            0.5 * self.b * x * x
        };
        linear + quadratic
    }
}

// === impl RateSchedule ===

impl RateSchedule {
    /// `rate` must be positive and finite and the spike factor non-negative
    /// and finite; the args module validates both before building one.
    pub fn new(rate: f64, ramp: Duration, spike: Option<Spike>) -> Self {
        RateSchedule {
            rate,
            ramp: ramp.as_secs_f64(),
            spike: spike.map(|s| {
                let start = s.start.as_secs_f64();
                (start, start + s.length.as_secs_f64(), s.factor)
            }),
        }
    }

    fn spike_factor(&self, t: f64) -> f64 {
        match self.spike {
            Some((start, end, factor)) if t >= start && t < end => factor,
            _ => 1.0,
        }
    }

    /// Target journeys per second at `t` seconds into the run.
    pub fn rate_at(&self, t: f64) -> f64 {
        let ramp = if self.ramp > 0.0 && t < self.ramp {
            (t / self.ramp).max(0.0)
        } else {
            1.0
        };
        self.rate * ramp * self.spike_factor(t)
    }

    /// The pieces on which the rate is linear, in order; the last one runs
    /// to infinity at full rate.
    fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        let mut cuts = vec![0.0, self.ramp];
        if let Some((start, end, _)) = self.spike {
            cuts.extend([start, end]);
        }
        cuts.push(f64::INFINITY);
        cuts.sort_by(f64::total_cmp);
        cuts.dedup();
        let cuts: Vec<f64> = cuts.into_iter().filter(|c| *c >= 0.0).collect();
        (0..cuts.len().saturating_sub(1)).map(move |i| {
            let (start, end) = (cuts[i], cuts[i + 1]);
            let b = if start < self.ramp {
                self.rate * self.spike_factor(start) / self.ramp
            } else {
                0.0
            };
            Segment {
                start,
                end,
                a: self.rate_at(start),
                b,
            }
        })
    }

    /// `Λ(t)`: expected number of arrivals in `[0, t)`.
    pub fn expected_arrivals(&self, t: f64) -> f64 {
        let mut total = 0.0;
        for seg in self.segments() {
            if t <= seg.start {
                break;
            }
            total += seg.integral(t.min(seg.end) - seg.start);
        }
        total
    }

    /// `Λ⁻¹(n)`: the earliest time by which `n` arrivals are expected, or
    /// `None` if the rate drops to zero forever before then (it cannot with a
    /// positive rate, but we answer honestly rather than loop).
    pub fn time_of_expected(&self, n: f64) -> Option<f64> {
        let mut before = 0.0;
        for seg in self.segments() {
            let here = seg.integral(seg.end - seg.start);
            let left = n - before;
            if left <= 0.0 {
                return Some(seg.start);
            }
            if left <= here {
                // Solve a·x + b·x²/2 = left for x ≥ 0. This form of the
                // quadratic root stays exact when b = 0 (x = left / a) and
                // does not cancel catastrophically when b is tiny.
                let x = 2.0 * left / (seg.a + (seg.a * seg.a + 2.0 * seg.b * left).sqrt());
                return Some(seg.start + x);
            }
            before += here;
        }
        None
    }

    /// The seeded arrival times, in seconds since the run started.
    pub fn arrivals(&self, seed: u64) -> Arrivals {
        Arrivals {
            schedule: *self,
            rng: SmallRng::seed_from_u64(derive_seed(seed, Stream::Arrivals, 0)),
            expected: 0.0,
        }
    }
}

/// The arrival times of a run, in seconds from its start, nondecreasing.
#[derive(Clone, Debug)]
pub struct Arrivals {
    schedule: RateSchedule,
    rng: SmallRng,
    /// Running sum of unit exponentials: the `Λ` of the last arrival.
    expected: f64,
}

impl Iterator for Arrivals {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        // 1 − U is in (0, 1], so the log is finite.
        let u: f64 = 1.0 - self.rng.random::<f64>();
        self.expected += -u.ln();
        self.schedule.time_of_expected(self.expected)
    }
}

/// Launches journeys at their arrival times until `end` (if any) or until
/// `shutdown`; returns how many arrivals were reached.
///
/// `launch(seq, intended)` is called at (or, if the scheduler fell behind,
/// just after) `intended` and must not block: it spawns the journey and
/// returns. The scheduler never waits for a journey, so a slow shop cannot
/// slow the arrivals down (no coordinated omission). `on_rate` is told the
/// current target rate at each arrival and at least once a second, for the
/// target-rate gauge.
pub async fn drive(
    schedule: &RateSchedule,
    seed: u64,
    start: Instant,
    end: Option<Duration>,
    shutdown: &CancellationToken,
    mut on_rate: impl FnMut(f64),
    mut launch: impl FnMut(u64, Instant),
) -> u64 {
    let end_secs = end.map(|d| d.as_secs_f64());
    let mut ticker = tokio::time::interval_at(start, Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut launched = 0u64;

    for (seq, at) in (0u64..).zip(schedule.arrivals(seed)) {
        if end_secs.is_some_and(|e| at >= e) {
            break;
        }
        let Ok(offset) = Duration::try_from_secs_f64(at) else {
            break;
        };
        let intended = start + offset;
        let sleep = tokio::time::sleep_until(intended);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                // Shutdown first: once asked to stop, start nothing new even
                // if an arrival is due at the same instant.
                biased;
                _ = shutdown.cancelled() => return launched,
                _ = &mut sleep => break,
                _ = ticker.tick() => on_rate(schedule.rate_at(secs_since(start))),
            }
        }
        on_rate(schedule.rate_at(at));
        launch(seq, intended);
        launched += 1;
    }

    // The arrivals ran out before the end of the run (or the next one is
    // past it): keep the run going for its full duration so `--duration`
    // means wall time, then return.
    if let Some(end) = end {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep_until(start + end) => {}
        }
    }
    launched
}

/// The first sequence number of the extra journeys of a traffic spike, far
/// above any scheduled journey's, so both plan independently.
pub const SURGE_SEQ_BASE: u64 = 1 << 48;

/// How often the surge looks at the fault state when there is no spike, and
/// the longest it commits to one draw of the rate.
const SURGE_TICK: Duration = Duration::from_millis(100);

/// What a traffic spike asks for now, if one is in force.
pub type SpikeShape = Option<SpikeFault>;

/// The extra traffic of a traffic-spike fault, until `shutdown`: while
/// `spike()` answers a spike, journeys arrive on top of the schedule as a
/// seeded Poisson process at `(multiplier − 1) ×` the scheduled rate, so
/// the total is `multiplier` times the usual traffic. Each is launched with
/// `launch(seq, intended, &spike)`, `seq` counting from
/// [`SURGE_SEQ_BASE`]; returns how many were launched.
///
/// The rate is re-read at each arrival and at least every
/// [`SURGE_TICK`] (exponential gaps are memoryless, so redrawing a gap that
/// would cross a tick changes nothing about the process).
pub async fn surge(
    schedule: &RateSchedule,
    seed: u64,
    start: Instant,
    shutdown: &CancellationToken,
    spike: impl Fn() -> SpikeShape,
    mut launch: impl FnMut(u64, Instant, &SpikeFault),
) -> u64 {
    let mut rng = SmallRng::seed_from_u64(derive_seed(seed, Stream::Surge, 0));
    let mut launched = 0u64;
    let mut now = Instant::now();
    loop {
        let shape = spike();
        let extra = shape.map_or(0.0, |spike| {
            (spike.multiplier - 1.0).max(0.0) * schedule.rate_at(secs_since_at(start, now))
        });
        let (wake, arrival) = if extra > 0.0 {
            let u: f64 = 1.0 - rng.random::<f64>();
            let gap = Duration::from_secs_f64((-u.ln() / extra).min(SURGE_TICK.as_secs_f64()));
            let arrives = gap < SURGE_TICK;
            (now + gap, arrives)
        } else {
            (now + SURGE_TICK, false)
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return launched,
            _ = tokio::time::sleep_until(wake) => {}
        }
        now = wake;
        if arrival && let Some(spike) = spike() {
            launch(SURGE_SEQ_BASE + launched, wake, &spike);
            launched += 1;
        }
    }
}

fn secs_since_at(start: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(start).as_secs_f64()
}

fn secs_since(start: Instant) -> f64 {
    Instant::now()
        .saturating_duration_since(start)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    fn spiky() -> RateSchedule {
        RateSchedule::new(
            10.0,
            Duration::from_secs(10),
            Some(Spike {
                start: Duration::from_secs(20),
                length: Duration::from_secs(10),
                factor: 3.0,
            }),
        )
    }

    #[test]
    fn rate_follows_ramp_and_spike() {
        let s = spiky();
        assert!(close(s.rate_at(0.0), 0.0));
        assert!(close(s.rate_at(5.0), 5.0));
        assert!(close(s.rate_at(10.0), 10.0));
        assert!(close(s.rate_at(15.0), 10.0));
        assert!(close(s.rate_at(20.0), 30.0));
        assert!(close(s.rate_at(29.9), 30.0));
        assert!(close(s.rate_at(30.0), 10.0));
    }

    #[test]
    fn no_ramp_means_full_rate_from_the_start() {
        let s = RateSchedule::new(4.0, Duration::ZERO, None);
        assert!(close(s.rate_at(0.0), 4.0));
        assert!(close(s.expected_arrivals(2.5), 10.0));
        assert!(close(s.time_of_expected(10.0).unwrap(), 2.5));
    }

    #[test]
    fn expected_arrivals_integrate_the_rate() {
        let s = spiky();
        // Ramp: triangle of 10 s × 10/s / 2 = 50.
        assert!(close(s.expected_arrivals(10.0), 50.0));
        assert!(close(s.expected_arrivals(5.0), 12.5));
        // Plateau 10..20 at 10/s.
        assert!(close(s.expected_arrivals(20.0), 150.0));
        // Spike 20..30 at 30/s.
        assert!(close(s.expected_arrivals(30.0), 450.0));
        assert!(close(s.expected_arrivals(40.0), 550.0));
    }

    #[test]
    fn spike_during_ramp_multiplies_the_ramp() {
        let s = RateSchedule::new(
            10.0,
            Duration::from_secs(10),
            Some(Spike {
                start: Duration::from_secs(2),
                length: Duration::from_secs(4),
                factor: 2.0,
            }),
        );
        assert!(close(s.rate_at(4.0), 8.0));
        // ∫0..2 t dt + 2·∫2..6 t dt + ∫6..10 t dt = 2 + 32 + 32 = 66.
        assert!(close(s.expected_arrivals(10.0), 66.0));
        assert!(close(s.time_of_expected(66.0).unwrap(), 10.0));
    }

    #[test]
    fn time_of_expected_inverts_expected_arrivals() {
        let s = spiky();
        for t in [0.1, 1.0, 7.3, 10.0, 12.0, 20.0, 25.5, 30.0, 31.0, 100.0] {
            let n = s.expected_arrivals(t);
            let back = s.time_of_expected(n).unwrap();
            assert!(close(back, t), "t={t} n={n} back={back}");
        }
        assert!(close(s.time_of_expected(0.0).unwrap(), 0.0));
    }

    #[test]
    fn zero_factor_spike_is_a_silent_window() {
        let s = RateSchedule::new(
            5.0,
            Duration::ZERO,
            Some(Spike {
                start: Duration::from_secs(1),
                length: Duration::from_secs(2),
                factor: 0.0,
            }),
        );
        assert!(close(s.expected_arrivals(3.0), 5.0));
        assert!(close(s.time_of_expected(5.5).unwrap(), 3.1));
        assert!(s.arrivals(7).take(200).all(|t| !(1.0..3.0).contains(&t)));
    }

    #[test]
    fn arrivals_are_seeded_ordered_and_at_the_target_rate() {
        let s = spiky();
        let a: Vec<f64> = s.arrivals(11).take_while(|t| *t < 40.0).collect();
        let b: Vec<f64> = s.arrivals(11).take_while(|t| *t < 40.0).collect();
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert_ne!(a, s.arrivals(12).take(a.len()).collect::<Vec<_>>());

        // Poisson counts: mean Λ, sd √Λ. A fixed seed makes this exact per
        // build; 4 sd of slack only matters if the RNG algorithm changes.
        let count_in = |lo: f64, hi: f64| a.iter().filter(|t| (lo..hi).contains(*t)).count() as f64;
        let within = |got: f64, want: f64| (got - want).abs() <= 4.0 * want.sqrt();
        assert!(within(count_in(0.0, 10.0), 50.0), "ramp");
        assert!(within(count_in(10.0, 20.0), 100.0), "plateau");
        assert!(within(count_in(20.0, 30.0), 300.0), "spike");
        assert!(within(count_in(30.0, 40.0), 100.0), "after spike");
    }

    #[test]
    fn long_run_rate_converges() {
        let s = RateSchedule::new(200.0, Duration::ZERO, None);
        let n = s.arrivals(1).take_while(|t| *t < 100.0).count() as f64;
        assert!((n - 20_000.0).abs() < 600.0, "n = {n}");
    }

    #[tokio::test(start_paused = true)]
    async fn drive_launches_each_arrival_at_its_time_until_the_end() {
        let s = RateSchedule::new(20.0, Duration::from_secs(1), None);
        let start = Instant::now();
        let shutdown = CancellationToken::new();
        let mut launched = Vec::new();
        let mut rates = Vec::new();
        let n = drive(
            &s,
            3,
            start,
            Some(Duration::from_secs(3)),
            &shutdown,
            |r| rates.push(r),
            |seq, intended| launched.push((seq, intended, Instant::now())),
        )
        .await;

        let want: Vec<f64> = s.arrivals(3).take_while(|t| *t < 3.0).collect();
        assert_eq!(n as usize, want.len());
        assert_eq!(launched.len(), want.len());
        for (i, ((seq, intended, at), t)) in launched.iter().zip(&want).enumerate() {
            assert_eq!(*seq, i as u64);
            assert_eq!(*intended, start + Duration::from_secs_f64(*t));
            // Paused time: the launch happens at the intended time, give or
            // take the timer wheel's 1 ms granularity.
            assert!(*at >= *intended && *at - *intended < Duration::from_millis(1));
        }
        // The run lasts its duration even though the last arrival is earlier.
        assert_eq!(Instant::now(), start + Duration::from_secs(3));
        assert!(rates.iter().all(|r| (0.0..=20.0).contains(r)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_traffic_spike_multiplies_the_rate_while_it_lasts() {
        let s = RateSchedule::new(10.0, Duration::ZERO, None);
        let start = Instant::now();
        let shutdown = CancellationToken::new();
        // The spike is on during [10 s, 20 s) of a 30 s run.
        let spike = || {
            let t = secs_since(start);
            (10.0..20.0).contains(&t).then_some(SpikeFault {
                multiplier: 4.0,
                hot_key: Some(42),
                journey: None,
            })
        };
        let mut extra: Vec<(u64, f64, Option<i64>)> = Vec::new();
        let stopper = shutdown.clone();
        let (scheduled, surged) = tokio::join!(
            async {
                let n = drive(
                    &s,
                    5,
                    start,
                    Some(Duration::from_secs(30)),
                    &shutdown,
                    |_| {},
                    |_, _| {},
                )
                .await;
                stopper.cancel();
                n
            },
            surge(&s, 5, start, &shutdown, spike, |seq, at, spike| {
                extra.push((seq, (at - start).as_secs_f64(), spike.hot_key))
            }),
        );
        // 4× of 10/s for 10 s is 300 extra journeys on top of the ~300
        // scheduled; a fixed seed makes the count exact per build, the
        // margin (4 sd) only absorbs a change of RNG algorithm.
        assert!((230..=370).contains(&surged), "{surged} extra");
        assert_eq!(surged as usize, extra.len());
        assert!((230..=370).contains(&scheduled), "{scheduled} scheduled");
        assert!(
            extra
                .iter()
                .all(|(_, t, hot)| (10.0..20.01).contains(t) && *hot == Some(42)),
            "extra traffic only during the spike, all on the hot key"
        );
        let seqs: Vec<u64> = extra.iter().map(|(seq, _, _)| *seq).collect();
        assert_eq!(
            seqs,
            (SURGE_SEQ_BASE..SURGE_SEQ_BASE + surged).collect::<Vec<_>>()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_spike_means_no_extra_traffic() {
        let s = RateSchedule::new(10.0, Duration::ZERO, None);
        let start = Instant::now();
        let shutdown = CancellationToken::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            stopper.cancel();
        });
        let n = surge(&s, 1, start, &shutdown, || None, |_, _, _| {}).await;
        assert_eq!(n, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn drive_stops_at_shutdown() {
        let s = RateSchedule::new(10.0, Duration::ZERO, None);
        let start = Instant::now();
        let shutdown = CancellationToken::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            stopper.cancel();
        });
        let mut last = None;
        let n = drive(
            &s,
            1,
            start,
            None,
            &shutdown,
            |_| {},
            |_, at| last = Some(at),
        )
        .await;
        let want = s.arrivals(1).take_while(|t| *t < 2.0).count();
        assert_eq!(n as usize, want);
        assert!(last.is_some_and(|at| at <= start + Duration::from_secs(2)));
        assert_eq!(Instant::now(), start + Duration::from_secs(2));
    }
}
