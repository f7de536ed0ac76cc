//! Reading a firedrill lab the way a learner can, and only that way: every
//! process's `/metrics`, and the collector's trace and log APIs.
//!
//! The scenario verifier (`firedrill scenario verify`) and the exercise
//! grader in the controller both judge an incident through this crate, so
//! neither can lean on the controller's record of what it injected, and
//! both read the SLIs the same way.
//!
//! - `exposition`: `/metrics` text into samples; PromQL's histogram quantile.
//! - `checks`: the checks scenario files state (symptoms, healthy signals,
//!   recovery checks).
//! - `observer`: scrapes, windows between two scrapes, a route's SLI, and
//!   each check evaluated over a window.

pub mod checks;
pub mod exposition;
pub mod observer;

pub use observer::{Component, Observer, Outcome, Sli, Window, now_us};
