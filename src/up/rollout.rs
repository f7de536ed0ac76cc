//! A rolling update's decisions, as pure functions of what the supervisor
//! observes, so they are tested on paused time without processes.
//!
//! One instance at a time, in instance order: the first instance running
//! another version than its service's version file names is replaced, and
//! the rollout waits until the new process has answered `/health` with the
//! new version for `min_ready` without being replaced again (a release that
//! crashes on start never gets there, and stops the rollout at its first
//! instance). A new desired version for that instance ends the wait at once
//! (so a rollback is never stuck behind a release that cannot start), and
//! a pending scale pauses it.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// What each running instance runs, in instance order.
pub type Running<'a> = &'a [(String, String)];

/// The version `id` should run: what the version file names, else the
/// build's.
pub fn wanted<'a>(desired: &'a BTreeMap<String, String>, id: &str, build: &'a str) -> &'a str {
    desired.get(id).map_or(build, String::as_str)
}

/// The next instance to replace and the version it should come up at:
/// the first, in instance order, that runs another version than wanted.
pub fn next_step(
    running: Running<'_>,
    desired: &BTreeMap<String, String>,
    build: &str,
) -> Option<(String, String)> {
    running
        .iter()
        .find(|(id, version)| version != wanted(desired, id, build))
        .map(|(id, _)| (id.clone(), wanted(desired, id, build).to_string()))
}

/// The instances a lab reset replaces at once: every one that runs
/// another version than wanted.
pub fn off_version(
    running: Running<'_>,
    desired: &BTreeMap<String, String>,
    build: &str,
) -> Vec<String> {
    running
        .iter()
        .filter(|(id, version)| version != wanted(desired, id, build))
        .map(|(id, _)| id.clone())
        .collect()
}

/// One look at a step's instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// It answered `/health` with the step's version.
    pub healthy_at_version: bool,
    /// The pid it runs as now.
    pub pid: u32,
}

/// How a step goes on after a look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy at its version for `min_ready`: on to the next instance.
    RolledOut,
    /// The version file asks for another version for this instance.
    Superseded,
    /// A scale is due: pause, and resume this step after it.
    Paused,
    /// Keep looking; `stuck` when it has taken long enough to say so.
    Wait { stuck: bool },
}

/// A step in progress: the instance being replaced and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub id: String,
    pub version: String,
    pub started: Instant,
    /// Since when, and as which pid, it has been healthy at its version.
    pub ready: Option<(Instant, u32)>,
    pub warned: bool,
}

impl Step {
    pub fn new(id: String, version: String, now: Instant) -> Step {
        Step {
            id,
            version,
            started: now,
            ready: None,
            warned: false,
        }
    }

    /// Takes one look at the instance (`seen`), with what its version file
    /// wants for it now and whether a scale is due, at `now`.
    pub fn judge(
        &mut self,
        seen: Seen,
        wanted_now: &str,
        scale_due: bool,
        now: Instant,
        min_ready: Duration,
        stuck_after: Duration,
    ) -> Verdict {
        // A restart (another pid) starts the count again: minReadySeconds
        // is "without restarting".
        self.ready = match self.ready {
            Some((since, pid)) if seen.healthy_at_version && pid == seen.pid => Some((since, pid)),
            _ if seen.healthy_at_version => Some((now, seen.pid)),
            _ => None,
        };
        if self
            .ready
            .is_some_and(|(since, _)| now.duration_since(since) >= min_ready)
        {
            return Verdict::RolledOut;
        }
        if wanted_now != self.version {
            return Verdict::Superseded;
        }
        if scale_due {
            return Verdict::Paused;
        }
        let stuck = !self.warned && now.duration_since(self.started) >= stuck_after;
        self.warned |= stuck;
        Verdict::Wait { stuck }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN_READY: Duration = Duration::from_secs(3);
    const STUCK: Duration = Duration::from_secs(30);

    fn running(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(id, v)| (id.to_string(), v.to_string()))
            .collect()
    }

    fn desired(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(id, v)| (id.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn instances_are_replaced_in_order_until_all_run_what_is_wanted() {
        let now = running(&[("catalog-1", "0.1.0"), ("catalog-2", "0.1.0")]);
        let want = desired(&[("catalog-1", "2.4.0"), ("catalog-2", "2.4.0")]);
        assert_eq!(
            next_step(&now, &want, "0.1.0"),
            Some(("catalog-1".into(), "2.4.0".into()))
        );
        let half = running(&[("catalog-1", "2.4.0"), ("catalog-2", "0.1.0")]);
        assert_eq!(
            next_step(&half, &want, "0.1.0"),
            Some(("catalog-2".into(), "2.4.0".into()))
        );
        let done = running(&[("catalog-1", "2.4.0"), ("catalog-2", "2.4.0")]);
        assert_eq!(next_step(&done, &want, "0.1.0"), None);
        // Unlisted instances run the build's version; a canary lists one.
        let canary = desired(&[("catalog-1", "2.4.0")]);
        assert_eq!(next_step(&done, &canary, "0.1.0").unwrap().0, "catalog-2");
        assert_eq!(off_version(&now, &canary, "0.1.0"), ["catalog-1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_is_done_after_min_ready_healthy_at_its_version() {
        let mut step = Step::new("catalog-1".into(), "2.4.0".into(), Instant::now());
        let healthy = Seen {
            healthy_at_version: true,
            pid: 10,
        };
        let judge = |step: &mut Step, seen| {
            step.judge(seen, "2.4.0", false, Instant::now(), MIN_READY, STUCK)
        };
        assert_eq!(judge(&mut step, healthy), Verdict::Wait { stuck: false });
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(judge(&mut step, healthy), Verdict::Wait { stuck: false });
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(judge(&mut step, healthy), Verdict::RolledOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_that_crashes_never_rolls_out_and_says_it_is_stuck_once() {
        let mut step = Step::new("catalog-1".into(), "2.4.0".into(), Instant::now());
        let mut verdicts = Vec::new();
        for pid in 10..50 {
            // Healthy for a second, then a crash brings another pid.
            verdicts.push(step.judge(
                Seen {
                    healthy_at_version: true,
                    pid,
                },
                "2.4.0",
                false,
                Instant::now(),
                MIN_READY,
                STUCK,
            ));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert!(!verdicts.contains(&Verdict::RolledOut), "{verdicts:?}");
        let stuck = verdicts
            .iter()
            .filter(|v| **v == Verdict::Wait { stuck: true })
            .count();
        assert_eq!(stuck, 1, "said once: {verdicts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollback_supersedes_a_waiting_step_and_a_scale_pauses_it() {
        let mut step = Step::new("catalog-1".into(), "2.4.0".into(), Instant::now());
        let down = Seen {
            healthy_at_version: false,
            pid: 10,
        };
        let now = Instant::now();
        assert_eq!(
            step.judge(down, "2.4.0", true, now, MIN_READY, STUCK),
            Verdict::Paused
        );
        assert_eq!(
            step.judge(down, "0.1.0", true, now, MIN_READY, STUCK),
            Verdict::Superseded,
            "a new desired version wins over a pending scale"
        );
    }
}
