//! Live scaling end to end: a real `firedrill up`, its replica file written
//! as the controller's `ops scale` writes it, and the supervisor starting
//! and stopping real instances, with the lab's published lists
//! (`endpoints.json`, Prometheus' targets) following.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use firedrill_controller::replicas::write_replicas;
use serde_json::Value;
use support::Lab;

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
    write_replicas(&run, "catalog", 3).unwrap();
    let pid3 = lab
        .eventually("catalog-3's pid file", WAIT, || async {
            read_pid(&run, "catalog-3")
        })
        .await;
    let health_url = lab
        .eventually("endpoints.json to list catalog-3", WAIT, || async {
            let endpoints = read_json(&run.join("endpoints.json"))?;
            let c = endpoints["components"]
                .as_array()?
                .iter()
                .find(|c| c["id"] == "catalog-3")?
                .clone();
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
    write_replicas(&run, "catalog", 1).unwrap();
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
    let catalog1 = lab
        .endpoints
        .components
        .iter()
        .find(|c| c.id == "catalog-1")
        .unwrap()
        .health
        .clone();
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
