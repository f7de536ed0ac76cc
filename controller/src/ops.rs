//! What each mitigation verb does to the live lab.
//!
//! Ops act the way an on-call engineer's tools would:
//!
//! - `restart`: under `firedrill up` the controller acts on processes
//!   through the run directory: it declares the restart (so the supervisor
//!   starts the process again at once, without counting a crash) and sends
//!   SIGTERM, as an orchestrator replaces a deleted pod.
//! - `config-set`, `flag-set`, `rate-limit`: a change to the service's live
//!   config, which becomes its next version; every process of the service
//!   picks it up with its next poll (`firedrill_runtime::live`).
//! - `drain` / `undrain`: the instance leaves (or rejoins) the rotation of
//!   every caller; it stays up and healthy.
//! - `dlq-replay` / `dlq-purge`: the queue's dead-letter endpoints.
//! - `rollback`: a rolling restart to the service's previous version
//!   (`deploys`) and the end of its latest config change (an op's or a
//!   config push), whichever exist.
//! - `scale`: the service's desired instance count; under `firedrill up`
//!   the supervisor starts or stops instances to match, and callers learn
//!   where the instances are from the controller's answers to their agents
//!   (`agents`).
//!
//! An op arrives parsed and checked against `policy`; what is left to find
//! out here is what the live lab has (does that instance exist?).

use axum::http::StatusCode;
use firedrill_rundir::RunDir;
use firedrill_runtime::AppError;
use firedrill_runtime::config::BUILD_VERSION;
use firedrill_runtime::faults::model::{FaultKind, Target};
use firedrill_runtime::live::describe;
use serde_json::Value;

use crate::controller::Controller;
use crate::model::exercise::Event;
use crate::model::op::{Op, Settings, Verb};
use crate::model::scenario::Scenario;
use crate::model::state::{ActiveFault, ConfigChange, OpRecord, State, now_ms};
use crate::{agents, deploys, exercise};

/// Performs `op` for `actor` and records it: in the ops log (a journal,
/// appended and synced before the answer), and, when it is an accepted
/// mitigation of the running scenario, as the moment the incident was
/// mitigated, which ends the faults that wait for one.
pub async fn record(ctl: &Controller, op: &Op, actor: &str) -> Result<OpRecord, AppError> {
    let result = perform(ctl, op, actor).await?;
    let mut record = OpRecord {
        at_ms: now_ms(),
        actor: actor.to_string(),
        op: op.verb,
        target: op.target_text(),
        result,
    };
    let accepted = {
        let state = ctl.state.lock();
        state.scenario.as_ref().is_some_and(|running| {
            running.mitigated_ms.is_none()
                && ctl
                    .scenario(&running.id)
                    .is_ok_and(|s| s.mitigation.get_ref().accepts(op))
        })
    };
    // Only an accepted mitigation changes the state here: any other op
    // costs one line in the ops log, never a rewrite of the state.
    if accepted {
        ctl.update(|state| {
            if let Some(running) = state.scenario.as_mut() {
                running.mitigated_ms.get_or_insert(record.at_ms);
            }
            // Config pushes that waited for a mitigation end with it: their
            // services move to a new version now, and the answer says so,
            // rather than naming a version that is already gone.
            for service in firedrill_runtime::faults::model::SERVICES {
                if state.refresh_config(&ctl.scenarios, service, record.at_ms) {
                    let version = state.config_version(service).version;
                    record.result.push_str(&format!(
                        "; the config push it mitigates ended: {service} config is now v{version}"
                    ));
                }
            }
        })?;
    }
    ctl.ops_log
        .lock()
        .append(record.clone())
        .map_err(AppError::internal)?;
    exercise::record_op(
        ctl,
        actor,
        Event::Op {
            op: record.op,
            target: record.target.clone(),
            result: record.result.clone(),
        },
    );
    ctl.ops.inc(&[("op", record.op.to_string().as_str())]);
    tracing::info!(actor, op = %record.op, target = %record.target, result = %record.result, "op performed");
    Ok(record)
}

/// Performs `op` for `actor`; the answer says what happened.
async fn perform(ctl: &Controller, op: &Op, actor: &str) -> Result<String, AppError> {
    let Some(target) = &op.target else {
        return Ok("no action taken".into());
    };
    match (&op.verb, &op.settings) {
        (Verb::Restart, _) => restart(ctl, target),
        (Verb::Scale, Settings::Replicas(count)) => scale(ctl, target, *count),
        (Verb::ConfigSet | Verb::FlagSet | Verb::RateLimit, Settings::Config(values)) => {
            let service = &target.service;
            let now = now_ms();
            let change = ConfigChange {
                at_ms: now,
                op: op.verb,
                values: values.clone(),
            };
            let version =
                ctl.update(|state| state.change_config(&ctl.scenarios, service, change, now))?;
            Ok(format!("{service} config v{version}: {}", describe(values)))
        }
        (Verb::Drain | Verb::Undrain, _) => drain(ctl, op.verb, target),
        (Verb::DlqReplay | Verb::DlqPurge, Settings::Topic(topic)) => {
            dlq(ctl, op.verb, topic.as_deref()).await
        }
        (Verb::Rollback, _) => {
            // A rolling restart back to the previous version, then the
            // latest config change taken back: either, both, or neither.
            let deploy = deploys::rollback(ctl, target, actor)?;
            let service = &target.service;
            let now = now_ms();
            let config =
                ctl.update(|state| rollback_config(state, &ctl.scenarios, service, now))?;
            let done: Vec<String> = deploy.into_iter().chain(config).collect();
            if !done.is_empty() {
                Ok(done.join("; "))
            } else if ctl.run_dir.is_none() {
                Ok(format!(
                    "nothing to roll back: no deploy of {service} to roll back ({}), and no config change in force",
                    deploys::NO_PROCESS_CONTROL
                ))
            } else {
                Ok(format!(
                    "nothing to roll back: no deploy of {service} to roll back, and no config change in force"
                ))
            }
        }
        (verb, settings) => Err(AppError::internal(format!(
            "{verb} with {settings:?}: an op the parser should have refused"
        ))),
    }
}

/// Takes back the latest config change to `service` in force at `now`: the
/// last op's change (config-set, flag-set, rate-limit) or the last config
/// push, whichever came later. What it was comes back at a new version.
/// Returns what it did, or `None` when there was nothing to take back.
pub fn rollback_config(
    state: &mut State,
    scenarios: &[Scenario],
    service: &str,
    now: i64,
) -> Option<String> {
    let last_change = state
        .config
        .get(service)
        .and_then(|c| c.changes.last())
        .map(|c| c.at_ms);
    let last_push = state.config_pushes(scenarios, service, now).pop();
    let undone = match (last_change, last_push) {
        (None, None) => return None,
        (Some(at), Some(push)) if push.started_ms > at => end_push(state, push),
        (None, Some(push)) => end_push(state, push),
        (Some(_), _) => {
            let change = state.config.get_mut(service)?.changes.pop()?;
            format!("{} {}", change.op, describe(&change.values))
        }
    };
    state.refresh_config(scenarios, service, now);
    let version = state.config_version(service).version;
    Some(format!(
        "rolled back the config change {undone}; {service} config is now v{version}"
    ))
}

fn end_push(state: &mut State, push: ActiveFault) -> String {
    state.end_fault(&push.id);
    match &push.spec.kind {
        FaultKind::ConfigPush(values) => describe(values),
        _ => String::new(),
    }
}

/// Restarts every process `target` selects, at the version each runs.
fn restart(ctl: &Controller, target: &Target) -> Result<String, AppError> {
    let Some(run_dir) = &ctl.run_dir else {
        return Ok("recorded; this deployment gives the controller no process control".into());
    };
    let versions = deploys::versions_now(ctl, &ctl.state.lock(), &target.service);
    restart_processes(run_dir, target, |_, instance| {
        versions
            .get(instance)
            .cloned()
            .unwrap_or_else(|| BUILD_VERSION.to_string())
    })
}

/// Scales a service out or in: `count` becomes its desired instance count.
/// Instances are `<service>-1..=N`, so scaling in removes the
/// highest-numbered ones; they leave their callers' rotation with the next
/// poll, before the supervisor stops them.
fn scale(ctl: &Controller, target: &Target, count: u32) -> Result<String, AppError> {
    let service = &target.service;
    if ctl.run_dir.is_none() {
        return Ok(format!(
            "recorded; not performed: {} (there, scale the service's deployment)",
            deploys::NO_PROCESS_CONTROL
        ));
    }
    let planned = ctl.planned(service);
    let before = ctl
        .update(|state| {
            agents::forget_above(&mut ctl.serving.lock(), service, count);
            state.replicas.insert(service.clone(), count)
        })?
        .map_or(planned, |n| n as usize);
    deploys::sync_files(ctl)?;
    let count = count as usize;
    let ids = |range: std::ops::RangeInclusive<usize>| {
        range
            .map(|n| format!("{service}-{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(match count.cmp(&before) {
        std::cmp::Ordering::Equal => format!("{service} already runs {count} instance(s)"),
        std::cmp::Ordering::Greater => format!(
            "scaling {service} out from {before} to {count} instances: starting {}; callers add \
             each to their rotation once it serves",
            ids(before + 1..=count)
        ),
        std::cmp::Ordering::Less => format!(
            "scaling {service} in from {before} to {count} instances: taking {} out of their \
             callers' rotation now, and stopping them 2 s later",
            ids(count + 1..=before)
        ),
    })
}

/// Takes one instance out of (or back into) every caller's rotation.
fn drain(ctl: &Controller, verb: Verb, target: &Target) -> Result<String, AppError> {
    let service = &target.service;
    let instance = target.instance.clone().unwrap_or_default();
    // Under a lab that told us its layout, the instance must exist.
    let scaled = ctl.state.lock().replicas.get(service).map(|&n| n as usize);
    let count = scaled.or(ctl.peers.get(service).map(Vec::len));
    if let Some(count) = count {
        let n = firedrill_rundir::instance_number(&instance) as usize;
        if n == 0 || n > count {
            return Err(AppError::bad_request(format!(
                "no instance {instance}: {service} runs {}",
                (1..=count)
                    .map(|i| format!("{service}-{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let drain = verb == Verb::Drain;
    let (changed, drained_of_service) = ctl.update(|state| {
        let changed = if drain {
            state.drained.insert(instance.clone())
        } else {
            state.drained.remove(&instance)
        };
        let prefix = format!("{service}-");
        let drained = state
            .drained
            .iter()
            .filter(|i| {
                i.strip_prefix(&prefix)
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count();
        (changed, drained)
    })?;
    Ok(match (drain, changed) {
        (true, true) if count == Some(drained_of_service) => format!(
            "drained {instance}; no instance of {service} is left in rotation: its callers will fail"
        ),
        (true, true) => format!("drained {instance}: callers leave it out of rotation"),
        (true, false) => format!("{instance} was already drained"),
        (false, true) => format!("{instance} is back in rotation"),
        (false, false) => format!("{instance} was not drained"),
    })
}

/// Replays or purges the queue's dead letters, on `topic` or on every topic
/// that has some.
async fn dlq(ctl: &Controller, verb: Verb, topic: Option<&str>) -> Result<String, AppError> {
    let Some(queue) = ctl.peers.get("queue").and_then(|urls| urls.first()) else {
        return Ok(
            "recorded; this deployment does not tell the controller where the queue is (--peers)"
                .into(),
        );
    };
    let topics = match topic {
        Some(topic) => vec![topic.to_string()],
        None => {
            let listed = queue_call(ctl, reqwest::Method::GET, &format!("{queue}/topics")).await?;
            listed["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["dead_letters"].as_i64().unwrap_or(0) > 0)
                .filter_map(|t| t["topic"].as_str().map(String::from))
                .collect()
        }
    };
    let (done, method, suffix) = match verb {
        Verb::DlqReplay => ("replayed", reqwest::Method::POST, "/replay"),
        _ => ("purged", reqwest::Method::DELETE, ""),
    };
    if topics.is_empty() {
        return Ok(format!("no dead letters: nothing {done}"));
    }
    let mut counts = Vec::new();
    let mut total = 0;
    for topic in &topics {
        let url = format!("{queue}/topics/{topic}/dead-letters{suffix}");
        let answer = queue_call(ctl, method.clone(), &url).await?;
        let count = answer["count"].as_u64().unwrap_or(0);
        total += count;
        counts.push(format!("{topic} {count}"));
    }
    Ok(format!(
        "{done} {total} dead letter(s): {}",
        counts.join(", ")
    ))
}

/// One call to the queue's API; a failure is a 502 that says where.
async fn queue_call(
    ctl: &Controller,
    method: reqwest::Method,
    url: &str,
) -> Result<Value, AppError> {
    let bad_gateway = |message: String| AppError::new(StatusCode::BAD_GATEWAY, message);
    let response = ctl
        .http
        .request(method, url)
        .send()
        .await
        .map_err(|e| bad_gateway(format!("cannot reach the queue at {url}: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(bad_gateway(format!(
            "the queue answered {status} to {url}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        )));
    }
    Ok(body)
}

/// Stops every running process of `target` (`version_of(service, instance)`
/// tells what each runs, for targets that name a version), declaring each
/// restart first so the supervisor starts it again at once, at the same
/// version, and does not take it for a crash.
fn restart_processes(
    run_dir: &RunDir,
    target: &Target,
    version_of: impl Fn(&str, &str) -> String,
) -> Result<String, AppError> {
    let mut restarted = Vec::new();
    for (id, pid) in run_dir.running() {
        let Some((service, _)) = id.rsplit_once('-') else {
            continue;
        };
        if !target.selects_running(service, &id, Some(&version_of(service, &id))) {
            continue;
        }
        run_dir
            .request_restart(&id, pid)
            .map_err(|e| AppError::internal(format!("cannot declare the restart of {id}: {e}")))?;
        let signal = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::SIGTERM,
        );
        if signal.is_ok() {
            restarted.push(id);
        }
    }
    if restarted.is_empty() {
        return Err(AppError::not_found(format!(
            "no running process matches {target}"
        )));
    }
    restarted.sort_by_key(|id| firedrill_rundir::instance_number(id));
    Ok(format!("restarted {}", restarted.join(", ")))
}

#[cfg(test)]
mod tests {
    use firedrill_runtime::faults::model::FaultSpec;
    use firedrill_runtime::live::ConfigPatch;
    use serde_json::json;

    use super::*;
    use crate::model::state::StoredFault;

    fn values(key: &str, value: Value) -> ConfigPatch {
        let mut values = ConfigPatch::default();
        values.set(key, &value).unwrap();
        values
    }

    #[test]
    fn rollback_takes_back_the_latest_config_change_first() {
        let mut state = State::default();
        let change = ConfigChange {
            at_ms: 10,
            op: Verb::ConfigSet,
            values: values("timeouts.payment", json!("50ms")),
        };
        state.change_config(&[], "checkout", change, 10);
        state.faults.insert(
            "f1".into(),
            StoredFault {
                id: "f1".into(),
                spec: FaultSpec {
                    kind: FaultKind::ConfigPush(values("timeouts.payment", json!("1ms"))),
                    target: Target::parse("checkout").unwrap(),
                    toxicity: 1.0,
                },
                created_ms: 20,
                expires_ms: 1_000,
            },
        );
        state.refresh_config(&[], "checkout", 30);
        assert_eq!(state.config_version("checkout").version, 2);

        let done = rollback_config(&mut state, &[], "checkout", 30).unwrap();
        assert_eq!(
            done,
            "rolled back the config change timeouts.payment=1ms; checkout config is now v3"
        );
        assert!(state.faults.is_empty(), "the push is over");
        let done = rollback_config(&mut state, &[], "checkout", 30).unwrap();
        assert_eq!(
            done,
            "rolled back the config change config-set timeouts.payment=50ms; checkout config is now v4"
        );
        assert!(state.config_version("checkout").values.is_empty());
        assert_eq!(rollback_config(&mut state, &[], "checkout", 30), None);
        assert_eq!(rollback_config(&mut state, &[], "payment", 30), None);
        assert_eq!(state.config_version("checkout").version, 4);
    }

    #[test]
    fn an_op_made_after_a_push_is_rolled_back_first() {
        let mut state = State::default();
        state.faults.insert(
            "f1".into(),
            StoredFault {
                id: "f1".into(),
                spec: FaultSpec {
                    kind: FaultKind::ConfigPush(values("retries.count", json!(5))),
                    target: Target::parse("checkout").unwrap(),
                    toxicity: 1.0,
                },
                created_ms: 5,
                expires_ms: 1_000,
            },
        );
        let change = ConfigChange {
            at_ms: 10,
            op: Verb::FlagSet,
            values: values("flags.recommendations", json!(0)),
        };
        state.change_config(&[], "checkout", change, 10);
        let done = rollback_config(&mut state, &[], "checkout", 20).unwrap();
        assert!(done.contains("flag-set flags.recommendations=0"), "{done}");
        assert!(state.faults.contains_key("f1"));
    }
}
