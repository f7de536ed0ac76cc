//! How many instances each service should run: the `scale` op's desired
//! state, declared to `firedrill up`'s supervisor the way versions are.
//!
//! The controller writes one file per scaled service,
//! `<run>/replicas/<service>`, holding one number:
//!
//! ```text
//! # Desired instances: written by the firedrill controller ...
//! 3
//! ```
//!
//! A service without a file runs the instances `up` planned
//! (`--instances`). Instances are always `<service>-1` to `<service>-<n>`:
//! scaling out adds the next numbers, scaling in removes the highest.
//!
//! # Invariants
//!
//! - Only the controller writes these files (whole, by rename); only the
//!   supervisor acts on them.
//! - Callers learn a scaled service's instances from the controller (the
//!   agent's answer), not from the file: an instance joins their rotation
//!   once it has reported where it listens, and leaves it as soon as the
//!   count drops, before the supervisor stops it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use firedrill_runtime::faults::model::{Endpoint, SERVICES};
use serde_json::Value;

/// The run directory's folder of replica files.
pub const REPLICAS_DIR: &str = "replicas";

/// The most instances one service may run: a laptop runs the whole lab.
pub const MAX_REPLICAS: u32 = 8;

pub fn replicas_file(run_dir: &Path, service: &str) -> PathBuf {
    run_dir.join(REPLICAS_DIR).join(service)
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

/// A scale's `replicas=N` setting, as the API (JSON numbers or text) and
/// scenario files (text) give it: the one setting, a whole number within
/// the limits.
pub fn replicas_setting(set: &BTreeMap<String, Value>) -> Result<u32, String> {
    let usage = format!(
        "scale needs one setting, replicas=N (1 to {MAX_REPLICAS}): \
         `firedrill ops scale catalog replicas=3`, in a scenario set = {{ replicas = \"3\" }}"
    );
    let (Some(value), 1) = (set.get("replicas"), set.len()) else {
        return Err(usage);
    };
    let count = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
    .ok_or_else(|| format!("replicas {value} is not a whole number; {usage}"))?;
    check_replicas(count)
}

/// Checks a desired count: 1 to [`MAX_REPLICAS`].
pub fn check_replicas(count: u32) -> Result<u32, String> {
    if (1..=MAX_REPLICAS).contains(&count) {
        Ok(count)
    } else {
        Err(format!(
            "replicas must be 1 to {MAX_REPLICAS} (a laptop runs the whole lab), got {count}"
        ))
    }
}

/// The file's text: a comment, then the count.
pub fn render(count: u32) -> String {
    format!(
        "# Desired instances: written by the firedrill controller (ops scale),\n\
         # acted on by the `firedrill up` supervisor.\n{count}\n"
    )
}

/// Parses a replica file; blank lines and `#` comments are skipped, and
/// exactly one count in 1..=[`MAX_REPLICAS`] must remain.
pub fn parse_replicas(text: &str) -> Result<u32, String> {
    let mut found = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if found.is_some() {
            return Err(format!("line {}: a second count, {line:?}", n + 1));
        }
        let count: u32 = line.parse().map_err(|_| {
            format!(
                "line {}: expected a number of instances, got {line:?}",
                n + 1
            )
        })?;
        found = Some(check_replicas(count).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    found.ok_or_else(|| "no count: expected one line with a number of instances".into())
}

/// Reads `<run>/replicas/<service>`: `None` when the service was never
/// scaled (it runs what `up` planned).
pub fn read_replicas(run_dir: &Path, service: &str) -> Result<Option<u32>, String> {
    crate::deploys::read_parsed(&replicas_file(run_dir, service), parse_replicas)
}

/// Replaces the service's replica file when its content differs (write,
/// then rename, so the supervisor never reads half a file). Whether it
/// changed.
pub fn write_replicas(run_dir: &Path, service: &str, count: u32) -> std::io::Result<bool> {
    crate::deploys::replace_whole(&replicas_file(run_dir, service), &render(count))
}

/// Instance id → where it serves, as its agent last reported (`Some`), or
/// `None` once a scale-in removed it: such an instance is not called at
/// its `--peers` address either, until a new process reports again.
pub type Serving = BTreeMap<String, Option<String>>;

/// Records that `instance` serves at `url`, if it is one of its service's
/// instances now. An instance a scale-in removed keeps polling until the
/// supervisor stops it; its report is ignored, so a later scale-out never
/// sends callers to the old process's address.
pub fn record_serving(
    serving: &mut Serving,
    replicas: &BTreeMap<String, u32>,
    instance: &str,
    url: &str,
) {
    let Some((service, n)) = instance.rsplit_once('-') else {
        return;
    };
    let current = replicas
        .get(service)
        .is_none_or(|&count| n.parse::<u32>().is_ok_and(|n| n <= count));
    if current {
        serving.insert(instance.to_string(), Some(url.to_string()));
    }
}

/// Marks the instances of `service` above `count` as not serving: those
/// that reported, and planned ones that never did (they still have a
/// `--peers` address). No instance is numbered above [`MAX_REPLICAS`].
pub fn forget_above(serving: &mut Serving, service: &str, count: u32) {
    for n in count + 1..=MAX_REPLICAS {
        serving.insert(format!("{service}-{n}"), None);
    }
}

/// Where the instances of every scaled service are, for the agents'
/// answers: `<service>-1..=<n>`, each where it last reported serving, else
/// at its `--peers` address. An instance known at neither (just started by
/// a scale-out, not serving yet) is left out until it reports, as a pod
/// joins a Service's endpoints once it is ready.
pub fn endpoints(
    replicas: &BTreeMap<String, u32>,
    peers: &BTreeMap<String, Vec<String>>,
    serving: &Serving,
) -> BTreeMap<String, Vec<Endpoint>> {
    replicas
        .iter()
        .filter_map(|(service, &count)| {
            let configured = peers.get(service);
            let listed: Vec<Endpoint> = (1..=count as usize)
                .filter_map(|n| {
                    let id = format!("{service}-{n}");
                    let url = match serving.get(&id) {
                        Some(reported) => reported.clone()?,
                        None => configured?.get(n - 1)?.clone(),
                    };
                    Some(Endpoint { id, url })
                })
                .collect();
            // None known yet: callers keep their --peers.
            (!listed.is_empty()).then(|| (service.clone(), listed))
        })
        .collect()
}

/// Checks what an agent reports as where it serves: `<service>-<n>` at a
/// plain `http://host:port` URL.
pub fn check_serving(service: &str, instance: &str, url: &str) -> Result<(), String> {
    let numbered = instance
        .strip_prefix(service)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1));
    if !numbered {
        return Err(format!(
            "instance {instance:?} is not an instance of {service} (<service>-<n>)"
        ));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url {url:?}: {e}"))?;
    let plain = url.len() <= 200
        && parsed.scheme() == "http"
        && parsed.host_str().is_some()
        && parsed.port().is_some()
        && matches!(parsed.path(), "" | "/")
        && parsed.query().is_none()
        && parsed.username().is_empty();
    if !plain {
        return Err(format!(
            "url {url:?} is not where a process serves: expected http://host:port"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_services_list_their_instances_where_they_serve() {
        let peers = BTreeMap::from([(
            "catalog".to_string(),
            vec!["http://h:1".to_string(), "http://h:2".to_string()],
        )]);
        let mut serving = Serving::new();
        let replicas = BTreeMap::from([("catalog".to_string(), 3), ("cart".to_string(), 2)]);
        record_serving(&mut serving, &replicas, "catalog-1", "http://h:1");
        let listed = endpoints(&replicas, &peers, &serving);
        // catalog-3 has not reported yet; cart is known nowhere.
        let ids: Vec<&str> = listed["catalog"].iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["catalog-1", "catalog-2"]);
        assert_eq!(listed["catalog"][1].url, "http://h:2", "from --peers");
        assert!(!listed.contains_key("cart"));

        record_serving(&mut serving, &replicas, "catalog-3", "http://h:9");
        let listed = endpoints(&replicas, &peers, &serving);
        assert_eq!(listed["catalog"][2].url, "http://h:9");

        // Scaled in: only the lowest numbers stay, and the removed ones'
        // last words (they poll until stopped) are not taken.
        let one = BTreeMap::from([("catalog".to_string(), 1)]);
        forget_above(&mut serving, "catalog", 1);
        record_serving(&mut serving, &one, "catalog-3", "http://h:9");
        let listed = endpoints(&one, &peers, &serving);
        assert_eq!(listed["catalog"].len(), 1);
        assert!(endpoints(&BTreeMap::new(), &peers, &serving).is_empty());

        // Scaled out again: catalog-2 and catalog-3 are new processes,
        // called once they report, not at their old or --peers addresses.
        let listed = endpoints(&replicas, &peers, &serving);
        let ids: Vec<&str> = listed["catalog"].iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["catalog-1"]);
        record_serving(&mut serving, &replicas, "catalog-2", "http://h:7");
        assert_eq!(
            endpoints(&replicas, &peers, &serving)["catalog"][1].url,
            "http://h:7"
        );
    }

    #[test]
    fn a_reported_address_must_be_plain_http() {
        assert!(check_serving("catalog", "catalog-3", "http://127.0.0.1:7131").is_ok());
        for (instance, url, needle) in [
            ("cart-1", "http://127.0.0.1:1", "not an instance of catalog"),
            ("catalog-0", "http://127.0.0.1:1", "not an instance"),
            ("catalog-x", "http://127.0.0.1:1", "not an instance"),
            ("catalog-1", "ftp://h:1", "expected http://host:port"),
            ("catalog-1", "http://h", "expected http://host:port"),
            ("catalog-1", "http://h:1/x?y", "expected http://host:port"),
            ("catalog-1", "not a url", "url \"not a url\""),
        ] {
            let err = check_serving("catalog", instance, url).unwrap_err();
            assert!(err.contains(needle), "{instance} {url}: {err}");
        }
    }

    #[test]
    fn replica_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_replicas(dir.path(), "catalog").unwrap(), None);
        assert!(write_replicas(dir.path(), "catalog", 3).unwrap());
        assert!(!write_replicas(dir.path(), "catalog", 3).unwrap(), "same");
        assert_eq!(read_replicas(dir.path(), "catalog").unwrap(), Some(3));
        assert!(write_replicas(dir.path(), "catalog", 1).unwrap());
        assert_eq!(read_replicas(dir.path(), "catalog").unwrap(), Some(1));
    }

    #[test]
    fn bad_replica_files_say_which_line() {
        for (bad, needle) in [
            ("", "no count"),
            ("# only a comment\n", "no count"),
            ("three\n", "line 1: expected a number"),
            ("# c\n0\n", "line 2: replicas must be 1 to 8"),
            ("9", "got 9"),
            ("2\n3\n", "line 2: a second count"),
            ("-1", "line 1"),
        ] {
            let err = parse_replicas(bad).unwrap_err();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(REPLICAS_DIR)).unwrap();
        std::fs::write(replicas_file(dir.path(), "cart"), "x").unwrap();
        let err = read_replicas(dir.path(), "cart").unwrap_err();
        assert!(
            err.contains("replicas/cart") && err.contains("line 1"),
            "{err}"
        );
    }
}
