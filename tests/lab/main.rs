//! The lab's end-to-end and deployment tests, one binary with one shared
//! harness (`support`: `firedrill up` on free ports, waited on through its
//! readiness signal). Each module is one area; `.config/nextest.toml` runs
//! the ones that start a whole lab one at a time, and leaves them out of
//! the `quick` profile.
//!
//! The scenario catalogue's verification is a binary of its own
//! (`tests/scenarios.rs`: one trial per file, found at run time).

mod deploy;
mod exercise;
mod faults;
mod fuzz;
mod grafana;
mod load;
mod mesh;
mod prometheus;
mod reset;
mod scale;
mod support;
