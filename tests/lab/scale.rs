//! Live scaling end to end: a real `firedrill up`, its replica file written
//! as the controller's `ops scale` writes it, and the supervisor starting
//! and stopping real instances, with the lab's published lists
//! (`endpoints.json`, Prometheus' targets) following.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::Lab;
use firedrill_rundir::RunDir;
use serde_json::Value;

/// Long enough for a service process to start, or for a scale-in's drain
/// (2 s) and stop; far below what a broken supervisor would need.
const WAIT: Duration = Duration::from_secs(20);

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The component ids `endpoints.json` lists now.
fn listed(run_dir: &Path) -> Vec<String> {
    read_json(&run_dir.join("endpoints.json"))
        .and_then(|e| {
            e["components"]
                .as_array()?
                .iter()
                .map(|c| c["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The process `id` as `endpoints.json` lists it now, if it does.
fn listed_component(run_dir: &Path, id: &str) -> Option<Value> {
    let endpoints = read_json(&run_dir.join("endpoints.json"))?;
    endpoints["components"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
}

/// The `instance` labels of the Prometheus target file, when `up` started a
/// Prometheus (it does when one is installed).
fn targeted(run_dir: &Path) -> Option<Vec<String>> {
    let groups = read_json(&run_dir.join("prometheus/targets/lab.json"))?;
    Some(
        groups
            .as_array()?
            .iter()
            .filter_map(|g| g["labels"]["instance"].as_str().map(String::from))
            .collect(),
    )
}

fn pid_file(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join("pids").join(format!("{id}.pid"))
}

fn read_pid(run_dir: &Path, id: &str) -> Option<u32> {
    std::fs::read_to_string(pid_file(run_dir, id))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is gone (or only a zombie nobody reaped yet).
fn is_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// The active targets' `instance` labels, from Prometheus' API.
async fn scraped(lab: &Lab, prometheus: &str) -> Option<Vec<String>> {
    let body: Value = lab
        .http
        .get(format!("{prometheus}/api/v1/targets?state=active"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        body["data"]["activeTargets"]
            .as_array()?
            .iter()
            .filter_map(|t| t["labels"]["instance"].as_str().map(String::from))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_file_scales_a_service_out_and_back_in() {
    // Planned: catalog-1 and catalog-2, one instance of everything else.
    let lab = Lab::start(&["--load-rate", "1", "--instances", "catalog=2"]).await;
    let run = lab.run_dir.clone();
    let before = listed(&run);
    assert!(
        before.contains(&"catalog-2".into()) && !before.contains(&"catalog-3".into()),
        "{before:?}"
    );
    let prometheus = read_json(&run.join("endpoints.json"))
        .and_then(|e| e["prometheus"].as_str().map(String::from));

    // Scale out to 3, as `ops scale catalog replicas=3` does.
    RunDir::new(&run).write_replicas("catalog", 3).unwrap();
    let pid3 = lab
        .eventually("catalog-3's pid file", WAIT, || async {
            read_pid(&run, "catalog-3")
        })
        .await;
    let health_url = lab
        .eventually("endpoints.json to list catalog-3", WAIT, || async {
            let c = listed_component(&run, "catalog-3")?;
            assert_eq!(c["name"], "catalog");
            Some(c["health"].as_str()?.to_string())
        })
        .await;
    let health: Value = lab
        .eventually("catalog-3 to answer /health", WAIT, || async {
            let r = lab.http.get(&health_url).send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            r.json().await.ok()
        })
        .await;
    assert_eq!(health["instance"], "catalog-3", "{health}");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"), "{health}");
    assert!(!is_gone(pid3), "the pid file names the running process");
    let up_log = lab.up_log();
    assert!(
        up_log.contains("scaled out") && up_log.contains("catalog-3"),
        "{up_log}"
    );
    // Listed once, after the planned instances of its service.
    let now = listed(&run);
    let at = |id: &str| now.iter().position(|c| c == id).unwrap();
    assert_eq!(at("catalog-3"), at("catalog-2") + 1, "{now:?}");
    if let Some(targets) = targeted(&run) {
        assert!(targets.contains(&"catalog-3".into()), "{targets:?}");
    }
    if let Some(prometheus) = &prometheus {
        lab.eventually("Prometheus to scrape catalog-3", WAIT, || async {
            scraped(&lab, prometheus)
                .await?
                .contains(&"catalog-3".into())
                .then_some(())
        })
        .await;
    }

    // Scale in to 1: catalog-3, then catalog-2, each drained and stopped.
    let pid2 = read_pid(&run, "catalog-2").expect("catalog-2's pid file");
    RunDir::new(&run).write_replicas("catalog", 1).unwrap();
    lab.eventually(
        "the pid files of catalog-2 and catalog-3 to go",
        WAIT,
        || async {
            (!pid_file(&run, "catalog-2").exists() && !pid_file(&run, "catalog-3").exists())
                .then_some(())
        },
    )
    .await;
    // A pid file goes only after its process has exited.
    assert!(is_gone(pid2) && is_gone(pid3), "{pid2} or {pid3} survived");
    let now = listed(&run);
    assert!(
        now.contains(&"catalog-1".into())
            && !now.contains(&"catalog-2".into())
            && !now.contains(&"catalog-3".into()),
        "{now:?}"
    );
    if let Some(targets) = targeted(&run) {
        assert!(
            targets.contains(&"catalog-1".into())
                && !targets.iter().any(|t| t == "catalog-2" || t == "catalog-3"),
            "{targets:?}"
        );
    }
    let catalog1 = lab.component("catalog-1").health.clone();
    let r = lab.http.get(&catalog1).send().await.unwrap();
    assert!(r.status().is_success(), "catalog-1 answers {}", r.status());
    let up_log = lab.up_log();
    assert!(up_log.contains("scaled in"), "{up_log}");
    assert!(
        !up_log.contains("restarting"),
        "a scale-in is not a crash:\n{up_log}"
    );
    if let Some(prometheus) = &prometheus {
        lab.eventually("Prometheus to stop scraping catalog-3", WAIT, || async {
            let scraped = scraped(&lab, prometheus).await?;
            (scraped.contains(&"catalog-1".into()) && !scraped.contains(&"catalog-3".into()))
                .then_some(())
        })
        .await;
    }
}

/// The sum of the samples of `metric` in a `/metrics` text whose labels
/// contain every one of `labels`.
fn sum_of(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && labels.iter().all(|needle| l.contains(needle)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The gateway's failed attempts to call catalog so far. Failed attempts,
/// not failed requests: a retry would hide a call to a stopped instance
/// from the shop's answers, not from the caller.
async fn failed_calls(lab: &Lab) -> f64 {
    let text = lab.get_text(lab.url("/metrics")).await;
    sum_of(
        &text,
        "http_client_request_duration_seconds_count{",
        &["server_address=\"catalog\"", "error_type="],
    )
}

/// The product pages the gateway has served so far.
async fn product_pages(lab: &Lab) -> f64 {
    let text = lab.get_text(lab.url("/metrics")).await;
    sum_of(
        &text,
        "http_server_request_duration_seconds_count{",
        &["http_route=\"/api/products"],
    )
}

/// Waits until the load has made 20 more product pages go through the
/// gateway: enough traffic to have called every catalog in rotation.
async fn more_product_pages(lab: &Lab, what: &str) {
    let before = product_pages(lab).await;
    lab.eventually(what, WAIT, || async {
        (product_pages(lab).await >= before + 20.0).then_some(())
    })
    .await;
}

/// The shop's failed answers so far, as the gateway counts them.
async fn gateway_5xx(lab: &Lab) -> f64 {
    let text = lab.get_text(lab.url("/metrics")).await;
    sum_of(
        &text,
        "http_server_request_duration_seconds_count{",
        &["http_response_status_code=\"5"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_scale_sends_traffic_to_new_instances_and_loses_none_scaling_in() {
    let lab = Lab::start(&[
        "--load-rate",
        "20",
        "--instances",
        "catalog=2",
        "--fault-lease",
        "1s",
    ])
    .await;
    let run = lab.run_dir.clone();

    // Out: the controller declares three, the supervisor starts catalog-3,
    // and the gateway's calls reach it once it serves.
    let out = lab.cli(&["ops", "scale", "catalog", "replicas=3"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("from 2 to 3") && said.contains("catalog-3"),
        "{said}"
    );
    let metrics = lab
        .eventually("endpoints.json to list catalog-3", WAIT, || async {
            let c = listed_component(&run, "catalog-3")?;
            Some(c["metrics"].as_str()?.to_string())
        })
        .await;
    lab.eventually("catalog-3 to serve the gateway's calls", WAIT, || async {
        let text = lab
            .http
            .get(&metrics)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (sum_of(
            &text,
            "http_server_request_duration_seconds_count{",
            &["http_route=\"/products"],
        ) >= 5.0)
            .then_some(())
    })
    .await;
    let gateway_log = lab.component_log("gateway-1");
    assert!(
        gateway_log.contains("peer instances changed"),
        "{gateway_log}"
    );

    // In: catalog-2 and catalog-3 leave the rotation before they stop, so
    // the shop fails no request on their account.
    let failed_before = gateway_5xx(&lab).await;
    let calls_failed_before = failed_calls(&lab).await;
    let out = lab.cli(&["ops", "scale", "catalog", "replicas=1"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("from 3 to 1"), "{said}");
    lab.eventually("catalog-2 and catalog-3 to stop", WAIT, || async {
        (!pid_file(&run, "catalog-2").exists() && !pid_file(&run, "catalog-3").exists())
            .then_some(())
    })
    .await;
    // A few more seconds of traffic on catalog-1 alone.
    more_product_pages(&lab, "more product pages served").await;
    assert_eq!(
        gateway_5xx(&lab).await,
        failed_before,
        "the gateway failed requests while catalog scaled in"
    );
    assert_eq!(
        failed_calls(&lab).await,
        calls_failed_before,
        "the gateway's calls to catalog failed while it scaled in"
    );

    // Without the controller, callers keep calling where the instances
    // are: a wedged controller's lease lapses (the gateway's config goes
    // back to version 0), and no call to catalog fails, where going back
    // to --peers would send calls to the stopped catalog-2.
    let out = lab.cli(&["ops", "config-set", "gateway", "retries.count=2"]);
    assert!(out.status.success(), "{out:?}");
    let config_version = || async {
        let text = lab.get_text(lab.url("/metrics")).await;
        sum_of(&text, "firedrill_config_version{", &[])
    };
    lab.eventually("the gateway to run config v1", WAIT, || async {
        (config_version().await >= 1.0).then_some(())
    })
    .await;
    let controller = lab.pid("controller");
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &controller.to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    lab.eventually("the gateway's lease to lapse", WAIT, || async {
        (config_version().await == 0.0).then_some(())
    })
    .await;
    let failed_before = failed_calls(&lab).await;
    more_product_pages(&lab, "more product pages served without the controller").await;
    let failed = failed_calls(&lab).await - failed_before;
    let resumed = std::process::Command::new("kill")
        .args(["-CONT", &controller.to_string()])
        .status()
        .unwrap();
    assert!(resumed.success());
    assert_eq!(
        failed, 0.0,
        "the gateway's calls to catalog failed without the controller"
    );

    // Bad input is refused with what was wrong, and changes nothing.
    let out = lab.cli(&["ops", "scale", "gateway", "replicas=2"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("edge"),
        "{out:?}"
    );
    assert!(!pid_file(&run, "catalog-2").exists());
}
