//! What may be done to what: the rules every op is held to before it acts,
//! and that scenario files are validated against, so a scenario can never
//! list as its answer an op the API would refuse.
//!
//! These rules depend only on the lab's fixed shape (which services exist,
//! which are third parties, which run once); whether an instance exists
//! right now is for the op itself to find out.

use firedrill_runtime::faults::model::{SERVICES, THIRD_PARTIES, Target};

use crate::model::op::{Op, Verb};

/// Checks that `op` may act on its target.
pub fn check(op: &Op) -> Result<(), String> {
    let Some(target) = &op.target else {
        return Ok(());
    };
    operable(target)?;
    match op.verb {
        Verb::Rollback => whole_service(op.verb, target),
        Verb::Scale => {
            whole_service(op.verb, target)?;
            scalable(&target.service)
        }
        Verb::ConfigSet | Verb::FlagSet | Verb::RateLimit => {
            if target.instance.is_some() || target.peer.is_some() || target.route.is_some() {
                return Err(format!(
                    "{} changes the config of every instance of a service; target the service ({}), not {target}",
                    op.verb, target.service
                ));
            }
            Ok(())
        }
        Verb::Drain | Verb::Undrain => match (&target.instance, &target.peer, &target.route) {
            (Some(_), None, None) => Ok(()),
            _ => Err(format!(
                "{} takes one instance, e.g. payment-2; {target:?} is not one",
                op.verb,
                target = target.to_string()
            )),
        },
        Verb::DlqReplay | Verb::DlqPurge => {
            if target.service != "queue" || target.peer.is_some() || target.route.is_some() {
                return Err(format!(
                    "{} acts on the queue's dead letters: target queue, not {target}",
                    op.verb
                ));
            }
            Ok(())
        }
        Verb::Restart | Verb::NoAction => Ok(()),
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

/// Refuses a target narrower than a service (an instance, a version, a
/// link or a route) for an op that acts on every instance of one.
pub fn whole_service(verb: Verb, target: &Target) -> Result<(), String> {
    let narrower = target.instance.is_some()
        || target.version.is_some()
        || target.peer.is_some()
        || target.route.is_some();
    if narrower {
        return Err(format!(
            "{verb} acts on a service (the whole service): name it ({}), not {target}",
            target.service
        ));
    }
    Ok(())
}

/// Why `service` cannot be scaled, if it cannot: the gateway owns the
/// public port, the queue broker's wake-ups and gauges are per broker, and
/// only shop services run as instances. (The card processor is refused as
/// every op on a third party is.) The controller refuses such a scale and
/// the supervisor ignores a replica file for one.
pub fn scalable(service: &str) -> Result<(), String> {
    match service {
        "gateway" => Err(
            "the gateway is the lab's edge: one process owns the public port, so it is not scaled; \
             scale the services behind it"
                .into(),
        ),
        "queue" => Err(
            "the queue broker runs as one process in this lab (its wake-ups and depth gauges are \
             per broker), so it is not scaled; scale its consumers (notification, projector)"
                .into(),
        ),
        _ if !SERVICES.contains(&service) => Err(format!(
            "{service} is not a shop service; scale one of {}",
            SERVICES.join(", ")
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;

    fn op(verb: Verb, target: &str, set: &[(&str, Value)]) -> Op {
        let set: BTreeMap<String, Value> = set
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Op::parse(verb, target, &set, None).unwrap()
    }

    #[test]
    fn each_verb_acts_on_what_it_can() {
        let refused = [
            (op(Verb::Restart, "payment-provider", &[]), "third party"),
            (
                op(Verb::Rollback, "catalog-2", &[]),
                "rollback acts on a service",
            ),
            (
                op(Verb::Scale, "gateway", &[("replicas", json!(2))]),
                "the gateway is the lab's edge",
            ),
            (
                op(Verb::Scale, "queue", &[("replicas", json!(2))]),
                "queue broker runs as one",
            ),
            (
                op(
                    Verb::ConfigSet,
                    "payment-2",
                    &[("retries.budget", json!(0.1))],
                ),
                "target the service (payment)",
            ),
            (op(Verb::Drain, "payment", &[]), "drain takes one instance"),
            (op(Verb::DlqPurge, "catalog", &[]), "target queue"),
        ];
        for (op, needle) in refused {
            let err = check(&op).unwrap_err();
            assert!(err.contains(needle), "{op:?}: {err}");
        }
        for op in [
            op(Verb::Restart, "catalog@2.4.0", &[]),
            op(Verb::Scale, "catalog", &[("replicas", json!(3))]),
            op(Verb::Drain, "payment-2", &[]),
            op(Verb::DlqReplay, "queue", &[]),
            op(Verb::NoAction, "", &[]),
        ] {
            check(&op).unwrap_or_else(|e| panic!("{op:?}: {e}"));
        }
    }
}
