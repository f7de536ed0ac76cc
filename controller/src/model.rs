//! What the controller reasons about, as plain data with no I/O: scenarios,
//! ops, the running scenario's clock, the deploy history and the desired
//! state. Everything above parses input into these types once and works on
//! them; nothing here reaches the network, the run directory or the API.
//!
//! Inside, the layers point one way: `op` and `run` import nothing of the
//! crate, `scenario` imports `op`, `deploy` imports `scenario` and `run`,
//! `exercise` imports `op` and `scenario`, `grade` imports `exercise`, `op`
//! and `scenario`, `state` imports them all.

pub mod deploy;
pub mod exercise;
pub mod grade;
pub mod op;
pub mod run;
pub mod scenario;
pub mod state;
