//! What each mitigation verb does to the live lab.
//!
//! Ops act the way an on-call engineer's tools would:
//!
//! - `restart`: under `firedrill up` the controller acts on processes
//!   through the run directory's pid files: a restart is a SIGTERM, after
//!   which the supervisor starts the process again, as an orchestrator
//!   replaces a deleted pod.
//! - `config-set`, `flag-set`, `rate-limit`: a change to the service's live
//!   config, which becomes its next version; every process of the service
//!   picks it up with its next poll (`firedrill_runtime::live`).
//! - `drain` / `undrain`: the instance leaves (or rejoins) the rotation of
//!   every caller; it stays up and healthy.
//! - `dlq-replay` / `dlq-purge`: the queue's dead-letter endpoints.
//! - `rollback`: a rolling restart to the service's previous version
//!   (`deploys`) and the end of its latest config change (an op's or a
//!   config push), whichever exist.
//! - `scale`: the service's desired instance count (`replicas`); under
//!   `firedrill up` the supervisor starts or stops instances to match, and
//!   callers learn where the instances are from the controller's answers
//!   to their agents (`replicas::endpoints`).
//!
//! Bad input is refused (400) with a message that names what was wrong,
//! before anything changes.

use std::collections::BTreeMap;
use std::path::Path;

use axum::http::StatusCode;
use firedrill_runtime::AppError;
use firedrill_runtime::config::BUILD_VERSION;
use firedrill_runtime::faults::model::{FaultKind, THIRD_PARTIES, Target};
use firedrill_runtime::live::{ConfigPatch, KEYS, describe};
use serde_json::Value;

use crate::scenario::{Scenario, Verb};
use crate::state::{ConfigChange, State, now_ms};
use crate::{Controller, deploys};

/// What an op acts with besides its target.
#[derive(Clone, Debug, Default)]
pub struct OpArgs {
    /// `key → value`: config keys for `config-set` (`retries.budget`), flag
    /// names for `flag-set`, route templates for `rate-limit`.
    pub set: BTreeMap<String, Value>,
    /// The topic of a `dlq-replay` / `dlq-purge`; without one, every topic
    /// with dead letters.
    pub topic: Option<String>,
}

/// Performs `verb` on `target` for `actor`; the answer says what happened.
pub async fn perform(
    ctl: &Controller,
    verb: Verb,
    target: &str,
    actor: &str,
    args: &OpArgs,
) -> Result<String, AppError> {
    check_args(verb, args)?;
    if verb != Verb::NoAction {
        let parsed = Target::parse(target).map_err(AppError::bad_request)?;
        operable(&parsed).map_err(AppError::bad_request)?;
    }
    match verb {
        Verb::NoAction => Ok("no action taken".into()),
        Verb::Restart => {
            let Some(run_dir) = &ctl.config.run_dir else {
                return Ok(
                    "recorded; this deployment gives the controller no process control".into(),
                );
            };
            let target = Target::parse(target).map_err(AppError::bad_request)?;
            let versions = deploys::desired_now(
                &ctl.state.lock(),
                &target.service,
                ctl.planned(&target.service),
            );
            restart(run_dir, &target, |_, instance| {
                versions
                    .get(instance)
                    .cloned()
                    .unwrap_or_else(|| BUILD_VERSION.to_string())
            })
        }
        Verb::Scale => scale(ctl, target, &args.set),
        Verb::ConfigSet | Verb::FlagSet | Verb::RateLimit => {
            let service = service_of(verb, target)?;
            let values = settings(verb, &args.set)?;
            let now = now_ms();
            let change = ConfigChange {
                at_ms: now,
                op: verb,
                values: values.clone(),
            };
            let version =
                ctl.update(|state| state.change_config(&ctl.scenarios, &service, change, now))?;
            Ok(format!(
                "{service} config v{version}: {}",
                describe(&values)
            ))
        }
        Verb::Drain | Verb::Undrain => drain(ctl, verb, target),
        Verb::DlqReplay | Verb::DlqPurge => dlq(ctl, verb, target, args.topic.as_deref()).await,
        Verb::Rollback => {
            let parsed = Target::parse(target).map_err(AppError::bad_request)?;
            whole_service(Verb::Rollback, &parsed)?;
            // A rolling restart back to the previous version, then the
            // latest config change taken back: either, both, or neither.
            let deploy = deploys::rollback(ctl, &parsed, actor)?;
            let service = parsed.service;
            let now = now_ms();
            let config =
                ctl.update(|state| rollback_config(state, &ctl.scenarios, &service, now))?;
            let done: Vec<String> = deploy.into_iter().chain(config).collect();
            if !done.is_empty() {
                Ok(done.join("; "))
            } else if ctl.config.run_dir.is_none() {
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

fn end_push(state: &mut State, push: crate::state::ActiveFault) -> String {
    state.end_fault(&push.id);
    match &push.spec.kind {
        FaultKind::ConfigPush(values) => describe(values),
        _ => String::new(),
    }
}

/// Refuses an op on a third party: the shop's engineers cannot restart,
/// roll back, drain or reconfigure someone else's service.
pub fn operable(target: &Target) -> Result<(), String> {
    if THIRD_PARTIES.contains(&target.service.as_str()) {
        return Err(format!(
            "{} is a third party (the card processor), outside the shop: no op reaches it; \
             mitigate on the shop's side (e.g. payment's config, flags or rate limits)",
            target.service
        ));
    }
    Ok(())
}

/// Scales a service out or in: `replicas=N` becomes its desired instance
/// count. Instances are `<service>-1..=N`, so scaling in removes the
/// highest-numbered ones; they leave their callers' rotation with the
/// next poll, before the supervisor stops them.
fn scale(
    ctl: &Controller,
    target: &str,
    set: &BTreeMap<String, Value>,
) -> Result<String, AppError> {
    let parsed = Target::parse(target).map_err(AppError::bad_request)?;
    whole_service(Verb::Scale, &parsed)?;
    let count = crate::replicas::replicas_setting(set).map_err(AppError::bad_request)?;
    let service = parsed.service;
    crate::replicas::scalable(&service).map_err(AppError::bad_request)?;
    if ctl.config.run_dir.is_none() {
        return Ok(format!(
            "recorded; not performed: {} (there, scale the service's deployment)",
            deploys::NO_PROCESS_CONTROL
        ));
    }
    let planned = ctl.planned(&service);
    let before = ctl
        .update(|state| {
            crate::replicas::forget_above(&mut ctl.serving.lock(), &service, count);
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

/// Refuses a target narrower than a service (an instance, a version, a
/// link or a route) for an op that acts on every instance of one.
pub(crate) fn whole_service(verb: Verb, target: &Target) -> Result<(), AppError> {
    let narrower = target.instance.is_some()
        || target.version.is_some()
        || target.peer.is_some()
        || target.route.is_some();
    if narrower {
        return Err(AppError::bad_request(format!(
            "{verb} acts on a service (the whole service): name it ({}), not {target}",
            target.service
        )));
    }
    Ok(())
}

/// Refuses settings or a topic given to an op that takes none.
fn check_args(verb: Verb, args: &OpArgs) -> Result<(), AppError> {
    let takes_settings = matches!(
        verb,
        Verb::ConfigSet | Verb::FlagSet | Verb::RateLimit | Verb::Scale
    );
    if !takes_settings && !args.set.is_empty() {
        return Err(AppError::bad_request(format!(
            "{verb} takes no key=value settings"
        )));
    }
    let takes_topic = matches!(verb, Verb::DlqReplay | Verb::DlqPurge);
    if !takes_topic && args.topic.is_some() {
        return Err(AppError::bad_request(format!("{verb} takes no topic")));
    }
    Ok(())
}

/// The service a config op changes: a service, not an instance or link
/// (a service has one config).
fn service_of(verb: Verb, target: &str) -> Result<String, AppError> {
    let parsed = Target::parse(target).map_err(AppError::bad_request)?;
    if parsed.instance.is_some() || parsed.peer.is_some() || parsed.route.is_some() {
        return Err(AppError::bad_request(format!(
            "{verb} changes the config of every instance of a service; target the service ({}), not {target}",
            parsed.service
        )));
    }
    Ok(parsed.service)
}

/// The config values an op's settings stand for, checked.
fn settings(verb: Verb, set: &BTreeMap<String, Value>) -> Result<ConfigPatch, AppError> {
    let (prefix, example) = match verb {
        Verb::FlagSet => ("flags.", "recommendations=0.5 (the share of users, 0..1)"),
        Verb::RateLimit => (
            "rateLimits.",
            "/api/products=50 (requests per second; 0 lifts it)",
        ),
        _ => ("", "retries.budget=0.1"),
    };
    if set.is_empty() {
        let keys = if prefix.is_empty() {
            format!("; keys are {KEYS}")
        } else {
            String::new()
        };
        return Err(AppError::bad_request(format!(
            "{verb} needs at least one key=value setting, e.g. {example}{keys}"
        )));
    }
    let mut values = ConfigPatch::default();
    for (key, value) in set {
        let key = key.trim();
        let full = if key.starts_with(prefix) {
            key.to_string()
        } else {
            format!("{prefix}{key}")
        };
        values.set(&full, value).map_err(AppError::bad_request)?;
    }
    values.validate().map_err(AppError::bad_request)?;
    Ok(values)
}

/// Takes one instance out of (or back into) every caller's rotation.
fn drain(ctl: &Controller, verb: Verb, target: &str) -> Result<String, AppError> {
    let parsed = Target::parse(target).map_err(AppError::bad_request)?;
    let instance = match (&parsed.instance, &parsed.peer, &parsed.route) {
        (Some(instance), None, None) => instance.clone(),
        _ => {
            return Err(AppError::bad_request(format!(
                "{verb} takes one instance, e.g. payment-2; {target:?} is not one"
            )));
        }
    };
    let service = parsed.service;
    // Under a lab that told us its layout, the instance must exist.
    let scaled = ctl.state.lock().replicas.get(&service).map(|&n| n as usize);
    let count = scaled.or(ctl.peers.get(&service).map(Vec::len));
    if let Some(count) = count {
        let n: usize = instance
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0);
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
async fn dlq(
    ctl: &Controller,
    verb: Verb,
    target: &str,
    topic: Option<&str>,
) -> Result<String, AppError> {
    let parsed = Target::parse(target).map_err(AppError::bad_request)?;
    if parsed.service != "queue" || parsed.peer.is_some() || parsed.route.is_some() {
        return Err(AppError::bad_request(format!(
            "{verb} acts on the queue's dead letters: target queue, not {target}"
        )));
    }
    if let Some(topic) = topic {
        let plain = (1..=64).contains(&topic.len())
            && topic
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !plain {
            return Err(AppError::bad_request(format!(
                "invalid topic {topic:?}: use 1 to 64 of [a-z0-9-], e.g. order-events"
            )));
        }
    }
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

#[cfg(test)]
mod tests {
    use firedrill_runtime::faults::model::FaultSpec;
    use serde_json::json;

    use super::*;
    use crate::state::StoredFault;

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

    #[test]
    fn settings_are_named_per_op_and_checked() {
        let set = |pairs: &[(&str, Value)]| -> BTreeMap<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        let flags = settings(Verb::FlagSet, &set(&[("recommendations", json!("0"))])).unwrap();
        assert_eq!(describe(&flags), "flags.recommendations=0");
        let limits = settings(Verb::RateLimit, &set(&[("/api/products", json!(50))])).unwrap();
        assert_eq!(describe(&limits), "rateLimits./api/products=50");
        let config = settings(
            Verb::ConfigSet,
            &set(&[
                ("retries.budget", json!("0.1")),
                ("timeouts.payment", json!("2s")),
            ]),
        )
        .unwrap();
        assert_eq!(
            describe(&config),
            "timeouts.payment=2000ms, retries.budget=0.1"
        );
        for (verb, pairs, needle) in [
            (Verb::ConfigSet, set(&[]), "needs at least one key=value"),
            (
                Verb::ConfigSet,
                set(&[("retries.budgte", json!(1))]),
                "`retries.budgte`",
            ),
            (
                Verb::FlagSet,
                set(&[("recommendations", json!(2))]),
                "within 0..1",
            ),
            (
                Verb::RateLimit,
                set(&[("api", json!(2))]),
                "starts with '/'",
            ),
        ] {
            let err = settings(verb, &pairs).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.contains(needle), "{verb}: {}", err.message);
        }
        let err = check_args(
            Verb::Restart,
            &OpArgs {
                set: set(&[("x", json!(1))]),
                topic: None,
            },
        )
        .unwrap_err();
        assert!(
            err.message.contains("restart takes no key=value"),
            "{}",
            err.message
        );
        let err = service_of(Verb::ConfigSet, "payment-2").unwrap_err();
        assert!(
            err.message.contains("target the service (payment)"),
            "{}",
            err.message
        );
    }
}
