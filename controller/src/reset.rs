//! A lab reset: everything anyone changed since the lab started is undone,
//! and the answer waits until the lab really is back.
//!
//! Undone in the controller's state: the running scenario (its deploys
//! rolled back), hand-injected faults, every deploy still in place (rolled
//! back, so the history stays append-only), every config change made by an
//! op (flags, rate limits and config alike: each service's config becomes
//! its flags again, at a new version), drains, and scaled instance counts.
//! Then the run directory's reset generation tells `firedrill up`'s
//! supervisor to forget its restart counts and backoff, start at once any
//! process waiting to be restarted, and replace the processes that run
//! another version all at once rather than one by one.
//!
//! The lab has settled when the supervisor has applied the reset, every
//! service runs exactly its planned instances, and each of them has
//! reported the build's version since the reset began. The reset answers
//! at once; its status says when that is.

use firedrill_rundir::RunDir;
use firedrill_runtime::AppError;
use firedrill_runtime::config::BUILD_VERSION;
use firedrill_runtime::faults::model::SERVICES;
use firedrill_runtime::live::describe;
use serde::Serialize;

use crate::controller::Controller;
use crate::model::deploy::{revert_scenario, rollback_latest};
use crate::model::state::{State, now_ms};
use crate::{agents, deploys};

/// What a reset did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetReport {
    /// One line per thing undone; empty when the lab was already as started.
    pub undone: Vec<String>,
    /// This reset's number: [`status`] tells when the lab has settled.
    pub generation: u64,
}

/// Whether the latest reset has settled.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetStatus {
    /// The latest reset's number (0: none yet).
    pub generation: u64,
    /// Whether the lab is back in its starting state (always, without
    /// process control: there is nothing to wait for).
    pub settled: bool,
    /// What has not settled yet.
    pub pending: Vec<String>,
}

/// Undoes every change and asks the supervisor to do its part; answers at
/// once ([`status`] tells when the lab has settled).
pub fn reset(ctl: &Controller, actor: &str) -> Result<ResetReport, AppError> {
    let now = now_ms();
    let (undone, unscaled, generation) = ctl.update(|state| {
        let unscaled: Vec<String> = state.replicas.keys().cloned().collect();
        let undone = undo_all(ctl, state, actor, now);
        state.resets += 1;
        state.reset_at_ms = now;
        (undone, unscaled, state.resets)
    })?;
    {
        let mut serving = ctl.serving.lock();
        for service in SERVICES {
            let planned = ctl.planned(service);
            if planned > 0 {
                agents::forget_above(&mut serving, service, planned as u32);
            }
        }
    }
    deploys::sync_files(ctl)?;
    if let Some(run_dir) = &ctl.run_dir {
        // Without its file a service runs what was planned.
        for service in &unscaled {
            run_dir.remove_replicas(service).map_err(|e| {
                AppError::internal(format!("cannot remove the {service} instance count: {e}"))
            })?;
        }
        RunDir::write_generation(&run_dir.reset_request(), generation).map_err(|e| {
            AppError::internal(format!("cannot ask the supervisor for a reset: {e}"))
        })?;
    }
    tracing::info!(actor, undone = ?undone, generation, "lab reset");
    Ok(ResetReport { undone, generation })
}

/// Whether the lab has settled since the latest reset.
pub fn status(ctl: &Controller) -> ResetStatus {
    let (generation, since) = {
        let state = ctl.state.lock();
        (state.resets, state.reset_at_ms)
    };
    let pending = match &ctl.run_dir {
        Some(run_dir) if generation > 0 => unsettled(ctl, run_dir, generation, since),
        _ => Vec::new(),
    };
    ResetStatus {
        generation,
        settled: pending.is_empty(),
        pending,
    }
}

/// Undoes every change in `state`; one line per thing undone.
fn undo_all(ctl: &Controller, state: &mut State, actor: &str, now: i64) -> Vec<String> {
    let mut undone = Vec::new();
    if let Some(running) = state.scenario.take() {
        revert_scenario(&mut state.deploys, &running, now);
        undone.push(format!("stopped scenario {}", running.id));
    }
    let faults = std::mem::take(&mut state.faults).len();
    if faults > 0 {
        undone.push(format!("cleared {faults} injected fault(s)"));
    }
    let deployed: std::collections::BTreeSet<String> =
        state.deploys.iter().map(|r| r.service.clone()).collect();
    for service in deployed {
        let who = format!("{actor} (lab reset)");
        while let Some(record) = rollback_latest(&mut state.deploys, &service, &who, now) {
            undone.push(format!("rolled back {service}: {}", record.describe()));
        }
    }
    let configured: Vec<String> = state.config.keys().cloned().collect();
    for service in configured {
        let Some(config) = state.config.get_mut(&service) else {
            continue;
        };
        let changes = std::mem::take(&mut config.changes);
        if state.refresh_config(&ctl.scenarios, &service, now) {
            let what: Vec<String> = changes
                .iter()
                .map(|c| format!("{} {}", c.op, describe(&c.values)))
                .collect();
            let version = state.config_version(&service).version;
            undone.push(format!(
                "{service} config v{version}: back to its flags (undid {})",
                if what.is_empty() {
                    "a config push".to_string()
                } else {
                    what.join("; ")
                }
            ));
        }
    }
    for instance in std::mem::take(&mut state.drained) {
        undone.push(format!("{instance} back in rotation"));
    }
    for (service, count) in std::mem::take(&mut state.replicas) {
        undone.push(format!(
            "{service} back from {count} to its planned {} instance(s)",
            ctl.planned(&service)
        ));
    }
    undone
}

fn unsettled(ctl: &Controller, run_dir: &RunDir, generation: u64, since: i64) -> Vec<String> {
    let mut pending = Vec::new();
    if RunDir::read_generation(&run_dir.reset_done()) < generation {
        pending.push("the supervisor has not applied the reset yet".to_string());
    }
    let reported = ctl.reported.lock();
    for service in SERVICES {
        let planned = ctl.planned(service);
        if planned == 0 {
            continue;
        }
        let want: Vec<String> = (1..=planned).map(|n| format!("{service}-{n}")).collect();
        let running = run_dir.instances_of(service);
        if running != want {
            pending.push(format!(
                "{service} runs {} (planned: {})",
                running.join(", "),
                want.join(", ")
            ));
            continue;
        }
        for instance in &running {
            match reported.get(instance) {
                Some((version, at)) if *at >= since && version == BUILD_VERSION => {}
                Some((version, at)) if *at >= since => {
                    pending.push(format!("{instance} still runs {version}"));
                }
                _ => pending.push(format!("{instance} has not reported since the reset")),
            }
        }
    }
    pending
}
