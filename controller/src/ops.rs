//! What each mitigation verb does to the live lab.
//!
//! Under `firedrill up` the controller acts on processes through the run
//! directory's pid files: a restart is a SIGTERM, after which the supervisor
//! starts the process again, as an orchestrator replaces a deleted pod.
//! A rollback is a rolling restart to the previous version (`deploys`);
//! `scale` says why it cannot act: callers learn their peers at start.

use std::path::Path;

use firedrill_runtime::AppError;
use firedrill_runtime::faults::model::Target;

use crate::scenario::Verb;
use crate::{Controller, deploys};

/// Performs `verb` on `target` for `actor`; the answer says what happened.
pub async fn perform(
    ctl: &Controller,
    verb: Verb,
    target: &str,
    actor: &str,
) -> Result<String, AppError> {
    match verb {
        Verb::NoAction => Ok("no action taken".into()),
        Verb::Restart => {
            let Some(run_dir) = &ctl.config.run_dir else {
                return Ok(
                    "recorded; this deployment gives the controller no process control".into(),
                );
            };
            let target = Target::parse(target).map_err(AppError::bad_request)?;
            let history = ctl.state.lock().deploys.clone();
            restart(run_dir, &target, |service, instance| {
                deploys::version_of(&history, service, instance)
            })
        }
        Verb::Rollback => {
            let target = Target::parse(target).map_err(AppError::bad_request)?;
            match deploys::rollback(ctl, &target, actor)? {
                Some(done) => Ok(done),
                None if ctl.config.run_dir.is_none() => Ok(format!(
                    "recorded; no deploy of {} to roll back ({})",
                    target.service,
                    deploys::NO_PROCESS_CONTROL
                )),
                None => Ok(format!(
                    "recorded; no deploy of {} to roll back",
                    target.service
                )),
            }
        }
        Verb::Scale => {
            let target = Target::parse(target).map_err(AppError::bad_request)?;
            Ok(match &ctl.config.run_dir {
                None => format!("recorded; not performed: {}", deploys::NO_PROCESS_CONTROL),
                // Callers learn their peers' addresses once, at start
                // (`--peers`): an extra instance would get no traffic, and a
                // stopped one would keep receiving it. Saying so beats a
                // scale that only pretends.
                Some(_) => format!(
                    "recorded; not performed: `firedrill up` fixes each service's instances at start \
                     (callers learn their peers' addresses once), so {} cannot be scaled live; \
                     restart the lab with --instances {}=<n>",
                    target.service, target.service
                ),
            })
        }
        other => Ok(format!("{other} recorded")),
    }
}

/// SIGTERMs every process of `target` listed in `run_dir/pids`;
/// `version_of(service, instance)` tells what each runs, for targets that
/// name a version. The supervisor starts each again at the same version.
fn restart(
    run_dir: &Path,
    target: &Target,
    version_of: impl Fn(&str, &str) -> String,
) -> Result<String, AppError> {
    let pids = run_dir.join("pids");
    // No pid directory yet means no process to restart (a 404 below), not
    // a failure of the controller.
    let entries = match std::fs::read_dir(&pids) {
        Ok(entries) => Some(entries),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(AppError::internal(format!(
                "cannot read {}: {e}",
                pids.display()
            )));
        }
    };
    let mut restarted = Vec::new();
    for entry in entries.into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".pid") else {
            continue;
        };
        let Some((service, _)) = id.rsplit_once('-') else {
            continue;
        };
        if !target.selects_running(service, id, Some(&version_of(service, id))) {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            continue;
        };
        let signal =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM);
        if signal.is_ok() {
            restarted.push(id.to_string());
        }
    }
    if restarted.is_empty() {
        return Err(AppError::not_found(format!(
            "no running process matches {target}"
        )));
    }
    restarted.sort();
    Ok(format!("restarted {}", restarted.join(", ")))
}
