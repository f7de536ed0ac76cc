//! A retry budget, as Finagle and Linkerd have: retries may add at most a
//! set share of the calls made, so a failing peer sees at most
//! (1 + ratio) × its load instead of (1 + retries) ×, and a retry storm
//! cannot keep it down once the trigger has passed.
//!
//! Each call deposits `ratio` tokens; each retry spends one. The balance is
//! capped, so a quiet spell cannot save up a storm of retries.

use parking_lot::Mutex;

/// Most retries a budget can hold in reserve.
pub const MAX_BALANCE: f64 = 10.0;

#[derive(Debug, Default)]
pub struct RetryBudget {
    balance: Mutex<f64>,
}

impl RetryBudget {
    /// A call was made under a budget of `ratio` retries per call.
    pub fn deposit(&self, ratio: f64) {
        let mut balance = self.balance.lock();
        *balance = (*balance + ratio.max(0.0)).min(MAX_BALANCE);
    }

    /// Spends one retry; false means the budget is exhausted.
    pub fn try_spend(&self) -> bool {
        let mut balance = self.balance.lock();
        if *balance >= 1.0 {
            *balance -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_a_share_of_calls() {
        let budget = RetryBudget::default();
        let mut retried = 0;
        for _ in 0..100 {
            budget.deposit(0.1);
            if budget.try_spend() {
                retried += 1;
            }
        }
        assert!((9..=10).contains(&retried), "{retried}");
    }

    #[test]
    fn a_zero_budget_allows_none_and_the_reserve_is_capped() {
        let budget = RetryBudget::default();
        budget.deposit(0.0);
        assert!(!budget.try_spend());
        for _ in 0..1000 {
            budget.deposit(1.0);
        }
        let spent = (0..100).filter(|_| budget.try_spend()).count();
        assert_eq!(spent, MAX_BALANCE as usize);
    }
}
