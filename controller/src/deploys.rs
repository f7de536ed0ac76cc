//! Deploys acting on the lab: the controller declares what each instance
//! should run to `firedrill up`'s supervisor, which rolls it out.
//!
//! A bad deploy in the lab is a real rolling restart. The history
//! (`model::deploy`) says what each instance should run; this module writes
//! what follows from it to the run directory's version files (and the
//! instance counts of scaled services), performs a running scenario's
//! deploy steps when they come due, and answers the deploy and rollback
//! requests. The supervisor starts every process at the version its file
//! names and, when a file changes, replaces the instances that run another
//! version one at a time. Agents report their version in every poll, so a
//! fault aimed at `catalog@2.4.0` acts on exactly the processes a deploy
//! brought up, and after a rollback on none.
//!
//! # Invariants
//!
//! - Only the controller writes version and replica files (whole, by
//!   rename); only the supervisor acts on them. Outside `firedrill up`
//!   there is no run directory, and deploys answer that the controller has
//!   no process control.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use firedrill_rundir::RunDir;
use firedrill_runtime::AppError;
use firedrill_runtime::faults::model::Target;
use tokio_util::sync::CancellationToken;

use crate::controller::Controller;
use crate::model::deploy::{DeployRecord, desired_now, due_steps, plan_deploy, rollback_latest};
use crate::model::scenario::Deploy;
use crate::model::state::{State, now_ms};

/// What the answer says when the lab runs without `firedrill up`.
pub const NO_PROCESS_CONTROL: &str = "this deployment gives the controller no process control \
     (under docker-compose or Kubernetes, change the image tag and roll the service there)";

/// How often the controller performs due scenario deploys and checks that
/// the version files say what the history says.
const RECONCILE_EVERY: Duration = Duration::from_millis(250);

fn run_dir(ctl: &Controller) -> Result<&RunDir, AppError> {
    ctl.run_dir
        .as_ref()
        .ok_or_else(|| AppError::conflict(format!("cannot deploy: {NO_PROCESS_CONTROL}")))
}

/// What each instance of `service` should run now (scaled-out instances
/// included).
pub fn versions_now(
    ctl: &Controller,
    state: &State,
    service: &str,
) -> std::collections::BTreeMap<String, String> {
    desired_now(
        &state.deploys,
        state.replicas.get(service).copied(),
        service,
        ctl.planned(service),
    )
}

/// Writes every version file the history implies, and every scaled
/// service's instance count (those that differ).
pub fn sync_files(ctl: &Controller) -> Result<(), AppError> {
    let Some(run_dir) = &ctl.run_dir else {
        return Ok(());
    };
    let state = ctl.state.lock();
    let services: BTreeSet<String> = state
        .deploys
        .iter()
        .map(|r| r.service.clone())
        .chain(state.replicas.keys().cloned())
        .collect();
    for service in &services {
        let versions = versions_now(ctl, &state, service);
        if run_dir
            .write_versions(service, &versions)
            .map_err(|e| AppError::internal(format!("cannot write the {service} versions: {e}")))?
        {
            tracing::info!(service, versions = ?versions, "desired versions written");
        }
    }
    // Versions first: an instance a scale-out starts finds its version.
    for (service, &count) in &state.replicas {
        if run_dir.write_replicas(service, count).map_err(|e| {
            AppError::internal(format!("cannot write the {service} instance count: {e}"))
        })? {
            tracing::info!(service, count, "desired instance count written");
        }
    }
    Ok(())
}

/// [`plan_deploy`] against what each instance should run now.
fn plan_now(
    ctl: &Controller,
    state: &State,
    deploy: &Deploy,
    running: &[String],
    actor: &str,
    origin: Option<String>,
) -> Result<DeployRecord, AppError> {
    let current = versions_now(ctl, state, &deploy.target.service);
    plan_deploy(
        &state.deploys,
        &current,
        deploy,
        running,
        actor,
        origin,
        now_ms(),
    )
}

/// Rolls `deploy.target` to `deploy.version` (an instructor's deploy).
/// A deploy that would change nothing is refused.
pub fn deploy(ctl: &Controller, deploy: &Deploy, actor: &str) -> Result<DeployRecord, AppError> {
    let running = run_dir(ctl)?.instances_of(&deploy.target.service);
    let record = ctl.update(|state| {
        let record = plan_now(ctl, state, deploy, &running, actor, None)?;
        if !record.changes_anything() {
            return Err(AppError::conflict(format!(
                "{} already runs {} ({})",
                deploy.target,
                deploy.version,
                record
                    .versions
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        state.deploys.push(record.clone());
        Ok(record)
    })??;
    sync_files(ctl)?;
    tracing::info!(service = %record.service, actor, change = %record.describe(), "deploy started");
    Ok(record)
}

/// `rollback <service>`: a rolling restart of the service's newest deploy
/// back to what ran before it. `Some(what it did)`, or `None` when no
/// deploy of the service is in place (so other kinds of rollback can be
/// tried after it). The target is a whole service (`policy` checked it).
pub fn rollback(
    ctl: &Controller,
    target: &Target,
    actor: &str,
) -> Result<Option<String>, AppError> {
    let record =
        ctl.update(|state| rollback_latest(&mut state.deploys, &target.service, actor, now_ms()))?;
    let Some(record) = record else {
        return Ok(None);
    };
    sync_files(ctl)?;
    tracing::info!(service = %record.service, actor, change = %record.describe(), "rollback started");
    Ok(Some(format!(
        "rolling back {} ({}), one instance at a time",
        record.service,
        record.describe()
    )))
}

/// Performs the running scenario's deploy steps when they come due, and
/// keeps the version files in step with the history, until `shutdown`.
/// Without a run directory there is nothing to act on.
pub async fn reconcile(ctl: Arc<Controller>, shutdown: CancellationToken) {
    let Some(run_dir) = ctl.run_dir.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Steps that could not be performed, warned about once each.
    let mut failed = BTreeSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let due = {
            let state = ctl.state.lock();
            due_steps(
                &state.deploys,
                state.scenario.as_ref(),
                &ctl.scenarios,
                now_ms(),
            )
        };
        for (origin, deploy) in due {
            if failed.contains(&origin) {
                continue;
            }
            let running = run_dir.instances_of(&deploy.target.service);
            let actor = origin.split('@').next().unwrap_or("scenario").to_string();
            let done = ctl.update(|state| {
                if state
                    .deploys
                    .iter()
                    .any(|r| r.origin.as_ref() == Some(&origin))
                {
                    return Ok(None);
                }
                let record =
                    plan_now(&ctl, state, &deploy, &running, &actor, Some(origin.clone()))?;
                state.deploys.push(record.clone());
                Ok(Some(record))
            });
            match done {
                Ok(Ok(Some(record))) => {
                    tracing::info!(service = %record.service, %origin, change = %record.describe(), "scenario deploy started");
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(%origin, error = %e.message, "cannot perform a scenario deploy");
                    failed.insert(origin);
                }
            }
        }
        if let Err(e) = sync_files(&ctl) {
            tracing::warn!(error = %e.message, "cannot write the version files");
        }
    }
}
