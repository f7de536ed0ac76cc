//! Auth's business metrics, defined once.

use firedrill_runtime::metrics::{Counter, Meters};

#[derive(Clone)]
pub struct AuthMetrics {
    /// Login attempts by `outcome` (`success`, `bad_credentials`).
    pub logins: Counter,
    /// Token checks by `outcome` (`valid`, `expired`, `not_yet_valid`,
    /// `bad_signature`, `malformed`): a jump in `not_yet_valid` on one
    /// instance is what a skewed clock looks like from outside.
    pub verifications: Counter,
}

impl AuthMetrics {
    pub fn new(meters: &Meters) -> Self {
        AuthMetrics {
            logins: meters.counter("auth.logins", "Login attempts by outcome"),
            verifications: meters.counter("auth.verifications", "Token verifications by outcome"),
        }
    }
}
