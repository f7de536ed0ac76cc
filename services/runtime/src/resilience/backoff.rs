//! Retry backoff: exponential with optional full jitter.

use std::time::Duration;

use rand::Rng;

/// Longest single backoff, whatever the attempt number.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    /// Full jitter (a uniform draw in `[0, delay]`) de-synchronises clients.
    /// Without it every caller that failed together retries together — the
    /// wave that keeps a metastable retry storm going.
    pub jitter: bool,
}

impl Backoff {
    /// Delay before retry number `attempt` (1 = first retry).
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(MAX_BACKOFF);
        if self.jitter {
            capped.mul_f64(rng.random::<f64>())
        } else {
            capped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn doubles_and_caps_without_jitter() {
        let b = Backoff {
            base: Duration::from_millis(50),
            jitter: false,
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let delays: Vec<_> = (1..=7).map(|a| b.delay(a, &mut rng).as_millis()).collect();
        assert_eq!(delays, vec![50, 100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_the_exponential_envelope() {
        let b = Backoff {
            base: Duration::from_millis(100),
            jitter: true,
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let draws: Vec<_> = (0..200).map(|_| b.delay(2, &mut rng)).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(200)));
        // Jittered delays are spread out, not all equal.
        assert!(draws.iter().any(|d| *d < Duration::from_millis(100)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(100)));
    }
}
