//! What each mitigation verb does to the live lab.
//!
//! Under `firedrill up` the controller acts on processes through the run
//! directory's pid files: a restart is a SIGTERM, after which the supervisor
//! starts the process again, as an orchestrator replaces a deleted pod.

use std::path::Path;

use firedrill_runtime::AppError;
use firedrill_runtime::faults::model::Target;

use crate::Controller;
use crate::scenario::Verb;

/// Performs `verb` on `target`; the answer says what happened.
pub async fn perform(ctl: &Controller, verb: Verb, target: &str) -> Result<String, AppError> {
    match verb {
        Verb::NoAction => Ok("no action taken".into()),
        Verb::Restart => {
            let Some(run_dir) = &ctl.config.run_dir else {
                return Ok(
                    "recorded; this deployment gives the controller no process control".into(),
                );
            };
            let target = Target::parse(target).map_err(AppError::bad_request)?;
            restart(run_dir, &target)
        }
        other => Ok(format!("{other} recorded")),
    }
}

/// SIGTERMs every process of `target` listed in `run_dir/pids`.
fn restart(run_dir: &Path, target: &Target) -> Result<String, AppError> {
    let pids = run_dir.join("pids");
    let entries = std::fs::read_dir(&pids)
        .map_err(|e| AppError::internal(format!("cannot read {}: {e}", pids.display())))?;
    let mut restarted = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".pid") else {
            continue;
        };
        let Some((service, _)) = id.rsplit_once('-') else {
            continue;
        };
        if !target.selects(service, id) {
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
