//! The scenario being played and its clock.
//!
//! Times are wall-clock milliseconds, persisted with the rest of the
//! controller's state, so a restarted controller resumes a timeline where
//! its clock says it is: nothing here runs on a timer.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The scenario being played, and its clock.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunningScenario {
    pub id: String,
    pub started_ms: i64,
    /// When an accepted mitigation was performed; faults that last
    /// `until-mitigated` end here.
    pub mitigated_ms: Option<i64>,
    /// How much faster than written the timeline plays: step offsets and
    /// durations are divided by it (a verification run compresses a
    /// ten-minute cascade into a minute). 1 plays the file as written.
    #[serde(default = "normal_speed")]
    pub speed: f64,
    /// Steps (by index) ended early: config pushes a rollback took back.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub ended_steps: BTreeSet<usize>,
}

/// The speed a scenario plays at unless told otherwise: as written.
pub fn normal_speed() -> f64 {
    1.0
}

impl RunningScenario {
    /// Wall-clock length of `ms` of scenario time at this run's speed.
    pub fn scaled(&self, ms: u64) -> i64 {
        (ms as f64 / self.speed.max(f64::MIN_POSITIVE)).round() as i64
    }
}
