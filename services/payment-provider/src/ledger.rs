//! The processor's books: charges by idempotency key, refunds by charge, and
//! the simulated network-and-bank latency of each call.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

/// Charges over this amount (in cents) are declined: the only decline rule,
/// so that load never fails payments by accident.
pub const DECLINE_OVER_CENTS: i64 = 10_000_000;
/// Charges remembered; older ones (and their refunds) are forgotten, as a
/// processor's idempotency window expires.
pub const MAX_CHARGES: usize = 200_000;

/// Median simulated latency.
const LATENCY_MEDIAN_MS: f64 = 40.0;
/// Spread of the log-normal latency (sigma of the underlying normal): gives
/// a p99 around three times the median, like a real payment API.
const LATENCY_SIGMA: f64 = 0.5;
const LATENCY_MIN_MS: f64 = 10.0;
const LATENCY_MAX_MS: f64 = 300.0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRequest {
    pub amount_cents: i64,
    pub currency: String,
    pub idempotency_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    pub id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub declined: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Charged {
    /// A new charge (which may have been declined).
    New(Charge),
    /// The key was seen before with the same parameters: the same answer.
    Replayed(Charge),
    /// The key was seen before with different parameters.
    KeyReused,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub charge_id: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refunded {
    New(Refund),
    Replayed(Refund),
    NoSuchCharge,
    /// The charge was declined: there is no money to give back.
    Declined,
}

pub struct Ledger {
    charges: HashMap<String, Charge>,
    /// Charge id → idempotency key.
    keys_by_id: HashMap<String, String>,
    /// Charge id → its refund.
    refunds: HashMap<String, Refund>,
    /// Idempotency keys, oldest first, for eviction.
    order: VecDeque<String>,
    rng: SmallRng,
}

impl Ledger {
    pub fn new(seed: u64) -> Self {
        Ledger {
            charges: HashMap::new(),
            keys_by_id: HashMap::new(),
            refunds: HashMap::new(),
            order: VecDeque::new(),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Charges once per idempotency key.
    pub fn charge(&mut self, request: ChargeRequest) -> Charged {
        if let Some(existing) = self.charges.get(&request.idempotency_key) {
            if existing.amount_cents != request.amount_cents
                || existing.currency != request.currency
            {
                return Charged::KeyReused;
            }
            return Charged::Replayed(existing.clone());
        }
        let charge = Charge {
            id: self.new_id("ch"),
            amount_cents: request.amount_cents,
            currency: request.currency,
            declined: request.amount_cents > DECLINE_OVER_CENTS,
        };
        self.keys_by_id
            .insert(charge.id.clone(), request.idempotency_key.clone());
        self.charges
            .insert(request.idempotency_key.clone(), charge.clone());
        self.order.push_back(request.idempotency_key);
        self.evict();
        Charged::New(charge)
    }

    /// Refunds a charge in full, once.
    pub fn refund(&mut self, charge_id: &str) -> Refunded {
        let Some(key) = self.keys_by_id.get(charge_id) else {
            return Refunded::NoSuchCharge;
        };
        if self.charges.get(key).is_some_and(|c| c.declined) {
            return Refunded::Declined;
        }
        if let Some(refund) = self.refunds.get(charge_id) {
            return Refunded::Replayed(refund.clone());
        }
        let refund = Refund {
            id: self.new_id("re"),
            charge_id: charge_id.to_string(),
        };
        self.refunds.insert(charge_id.to_string(), refund.clone());
        Refunded::New(refund)
    }

    /// How long this call takes: log-normal around the median, bounded.
    pub fn latency(&mut self) -> Duration {
        // Box–Muller: two uniforms in (0, 1] give one standard normal.
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let ms = (LATENCY_MEDIAN_MS.ln() + LATENCY_SIGMA * normal).exp();
        Duration::from_secs_f64(ms.clamp(LATENCY_MIN_MS, LATENCY_MAX_MS) / 1000.0)
    }

    fn new_id(&mut self, prefix: &str) -> String {
        format!("{prefix}_{:024x}", self.rng.random::<u128>() >> 32)
    }

    fn evict(&mut self) {
        while self.order.len() > MAX_CHARGES {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if let Some(charge) = self.charges.remove(&key) {
                self.keys_by_id.remove(&charge.id);
                self.refunds.remove(&charge.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &str, amount_cents: i64) -> ChargeRequest {
        ChargeRequest {
            amount_cents,
            currency: "usd".into(),
            idempotency_key: key.into(),
        }
    }

    #[test]
    fn a_key_charges_once() {
        let mut ledger = Ledger::new(1);
        let Charged::New(first) = ledger.charge(request("order-1", 500)) else {
            panic!("expected a new charge")
        };
        assert!(first.id.starts_with("ch_"));
        assert!(!first.declined);
        assert_eq!(
            ledger.charge(request("order-1", 500)),
            Charged::Replayed(first.clone())
        );
        assert_eq!(ledger.charge(request("order-1", 501)), Charged::KeyReused);
        let Charged::New(second) = ledger.charge(request("order-2", 500)) else {
            panic!()
        };
        assert_ne!(first.id, second.id);
    }

    #[test]
    fn only_huge_amounts_are_declined() {
        let mut ledger = Ledger::new(1);
        let Charged::New(limit) = ledger.charge(request("a", DECLINE_OVER_CENTS)) else {
            panic!()
        };
        assert!(!limit.declined);
        let Charged::New(over) = ledger.charge(request("b", DECLINE_OVER_CENTS + 1)) else {
            panic!()
        };
        assert!(over.declined);
        assert_eq!(ledger.refund(&over.id), Refunded::Declined);
    }

    #[test]
    fn a_charge_refunds_once() {
        let mut ledger = Ledger::new(1);
        let Charged::New(charge) = ledger.charge(request("k", 100)) else {
            panic!()
        };
        let Refunded::New(refund) = ledger.refund(&charge.id) else {
            panic!()
        };
        assert!(refund.id.starts_with("re_"));
        assert_eq!(ledger.refund(&charge.id), Refunded::Replayed(refund));
        assert_eq!(ledger.refund("ch_nope"), Refunded::NoSuchCharge);
    }

    #[test]
    fn old_charges_are_forgotten_past_the_window() {
        let mut ledger = Ledger::new(1);
        let Charged::New(oldest) = ledger.charge(request("k0", 100)) else {
            panic!()
        };
        for i in 1..=MAX_CHARGES {
            ledger.charge(request(&format!("k{i}"), 100));
        }
        assert_eq!(ledger.charges.len(), MAX_CHARGES);
        assert_eq!(ledger.refund(&oldest.id), Refunded::NoSuchCharge);
        assert!(matches!(
            ledger.charge(request("k1", 100)),
            Charged::Replayed(_)
        ));
    }

    #[test]
    fn latency_is_bounded_log_normal_and_seeded() {
        let mut ledger = Ledger::new(7);
        let mut samples: Vec<f64> = (0..10_000)
            .map(|_| ledger.latency().as_secs_f64() * 1000.0)
            .collect();
        assert!(samples.iter().all(|&ms| (10.0..=300.0).contains(&ms)));
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        let p99 = samples[samples.len() * 99 / 100];
        assert!((35.0..45.0).contains(&median), "median {median}");
        assert!(p99 > 2.0 * median, "a long tail: p99 {p99}");
        let mut again = Ledger::new(7);
        let mut other = Ledger::new(8);
        let first = Ledger::new(7).latency();
        assert_eq!(
            again.latency(),
            first,
            "the same seed gives the same latencies"
        );
        assert_ne!(
            (0..5).map(|_| other.latency()).collect::<Vec<_>>(),
            (0..5).map(|_| again.latency()).collect::<Vec<_>>()
        );
    }
}
