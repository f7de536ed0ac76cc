//! What the controller tells each fault agent besides its faults: where
//! the instances of every scaled service serve.
//!
//! Each agent reports where its process serves (once it serves); the
//! answer lists a scaled service's instances, `<service>-1..n`, at those
//! addresses (else at their `--peers` URL). A new instance joins its
//! callers' rotation once it reports; an instance a scale-in removed leaves
//! at once, and its last reports are ignored.

use std::collections::BTreeMap;

use firedrill_rundir::formats::MAX_REPLICAS;
use firedrill_runtime::faults::model::Endpoint;

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

/// Instance id → the version its agent last reported, and when.
pub type Reported = BTreeMap<String, (String, i64)>;

/// Records what `instance` reported it runs at `now`.
pub fn record_version(reported: &mut Reported, instance: &str, version: &str, now: i64) {
    match reported.get_mut(instance) {
        Some(entry) => {
            if entry.0 != version {
                entry.0 = version.to_string();
            }
            entry.1 = now;
        }
        None => {
            reported.insert(instance.to_string(), (version.to_string(), now));
        }
    }
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
}
