//! The project's Prometheus config, rules and dashboards against a real
//! Prometheus scraping a live lab.
//!
//! `firedrill up` starts the `prometheus` on PATH with the config and rules
//! from deploy/prometheus (scrape and evaluation interval shortened to 1 s
//! with `--prometheus-interval`; nothing else differs). The tests wait for
//! readiness signals: every target up, rules evaluated, queries answering.
//!
//! Needs Debian's `prometheus` (2.42+); `scripts/test` installs it through
//! scripts/deps/observability.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::Lab;
use serde_json::Value;

/// Grafana's `$__rate_interval` for a 15 s scrape interval is 1 m; with
/// the test's 1 s scrapes, 1 m holds plenty of samples.
const RATE_INTERVAL: &str = "1m";

fn require_prometheus() {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("prometheus").is_file())
    });
    assert!(
        found,
        "`prometheus` is not on PATH: run scripts/test (its scripts/deps/observability \
         installs Debian's prometheus), or `apt-get install prometheus`"
    );
}

struct Prometheus {
    url: String,
    http: reqwest::Client,
}

impl Prometheus {
    fn of(lab: &Lab) -> Prometheus {
        let endpoints: Value =
            serde_json::from_str(&crate::grafana::read(&lab.run_dir.join("endpoints.json")))
                .unwrap();
        let url = endpoints["prometheus"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "endpoints.json has no prometheus although it is on PATH:\n{}",
                    lab.up_log()
                )
            })
            .to_string();
        Prometheus {
            url,
            http: lab.http.clone(),
        }
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .query(params)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(
            status.is_success() && body["status"] == "success",
            "GET {path} {params:?}: {status} {body}"
        );
        body["data"].clone()
    }

    /// An instant query's result, or the error Prometheus gave.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let response = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(match &body["data"]["result"] {
            Value::Array(items) => items.clone(),
            // scalar / string results: one value.
            other => vec![other.clone()],
        })
    }

    /// Waits until every target of the lab (and Prometheus itself) is up.
    async fn wait_for_targets(&self, lab: &Lab, timeout: Duration) {
        let expected = lab.endpoints.components.len() + 1;
        let deadline = Instant::now() + timeout;
        loop {
            let data = self.get("/api/v1/targets", &[("state", "active")]).await;
            let targets = data["activeTargets"].as_array().unwrap();
            let down: Vec<String> = targets
                .iter()
                .filter(|t| t["health"] != "up")
                .map(|t| {
                    format!(
                        "{} ({}: {})",
                        t["labels"]["instance"], t["health"], t["lastError"]
                    )
                })
                .collect();
            if targets.len() == expected && down.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {expected} targets, not up: {down:?}",
                targets.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every rule Prometheus loaded: (group, type, name, query, health, error).
    async fn rules(&self) -> Vec<(String, String, String, String, String, String)> {
        let data = self.get("/api/v1/rules", &[]).await;
        let mut out = Vec::new();
        for group in data["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                let s = |k: &str| rule[k].as_str().unwrap_or("").to_string();
                out.push((
                    group["name"].as_str().unwrap().to_string(),
                    s("type"),
                    s("name"),
                    s("query"),
                    s("health"),
                    s("lastError"),
                ));
            }
        }
        out
    }
}

/// Metric families the collector derives from traces. Until the collector
/// exposes them, panels built on them have nothing to show; once it does,
/// they must show data like every other panel.
const TRACE_DERIVED: &[&str] = &[
    "traces_span_metrics_calls_total",
    "traces_span_metrics_duration_seconds",
    "traces_service_graph_request_total",
    "traces_service_graph_request_failed_total",
    "traces_service_graph_request_server_seconds",
    "traces_service_graph_request_client_seconds",
];

async fn trace_derived_families_missing(lab: &Lab) -> BTreeSet<&'static str> {
    let collector = lab.component("collector");
    let text = lab.get_text(&collector.metrics).await;
    TRACE_DERIVED
        .iter()
        .copied()
        .filter(|family| {
            let base = family.trim_end_matches("_total");
            !text.lines().any(|l| l.starts_with(base))
        })
        .collect()
}

fn rule_names_in_files(kind: &str) -> BTreeSet<String> {
    let dir = crate::grafana::repo().join("deploy/prometheus/rules");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = crate::grafana::read(&entry.unwrap().path());
        for line in text.lines() {
            if let Some(name) = line.trim().strip_prefix(&format!("- {kind}: ")) {
                names.insert(name.trim().to_string());
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_recording_rule_returns_data_from_the_live_lab() {
    require_prometheus();
    let dashboards = crate::grafana::dashboards();
    let problems = crate::grafana::lint(&dashboards);
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );

    let started = Instant::now();
    let lab = Lab::start(&["--prometheus-interval", "1s", "--load-rate", "10"]).await;
    let prom = Prometheus::of(&lab);
    prom.wait_for_targets(&lab, Duration::from_secs(30)).await;
    let targets_up = started.elapsed();

    // Every rule file loaded, every rule healthy.
    let loaded = prom.rules().await;
    let loaded_names = |kind: &str| -> BTreeSet<String> {
        loaded
            .iter()
            .filter(|r| r.1 == kind)
            .map(|r| r.2.clone())
            .collect()
    };
    assert_eq!(loaded_names("recording"), rule_names_in_files("record"));
    assert_eq!(loaded_names("alerting"), rule_names_in_files("alert"));

    let pending_families = trace_derived_families_missing(&lab).await;
    let queries = crate::grafana::queries(&dashboards, RATE_INTERVAL);
    let recording: Vec<(String, String)> = loaded
        .iter()
        .filter(|r| r.1 == "recording")
        .map(|r| (format!("rule {} ({})", r.2, r.0), r.3.clone()))
        .collect();

    // Poll until every query answers with data (rates need a few scrapes,
    // recording rules an evaluation, journeys of every kind some time), or
    // report what still has none.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut allowed_empty = Vec::new();
    loop {
        let mut failures = Vec::new();
        allowed_empty.clear();
        for q in &queries {
            match prom.query(&q.expr).await {
                Err(e) => failures.push(format!(
                    "{} {}: error {e}\n    {}",
                    q.dashboard, q.what, q.expr
                )),
                Ok(result) if result.is_empty() && !q.annotation => {
                    let waits_for_collector = pending_families
                        .iter()
                        .any(|f| q.expr.contains(f.trim_end_matches("_total")));
                    if waits_for_collector {
                        allowed_empty.push(format!("{} {}", q.dashboard, q.what));
                    } else {
                        failures.push(format!(
                            "{} {}: no data\n    {}",
                            q.dashboard, q.what, q.expr
                        ));
                    }
                }
                Ok(_) => {}
            }
        }
        for (what, expr) in &recording {
            match prom.query(expr).await {
                Err(e) => failures.push(format!("{what}: error {e}")),
                Ok(result) if result.is_empty() => {
                    failures.push(format!("{what}: no data\n    {expr}"))
                }
                Ok(_) => {}
            }
        }
        let unhealthy: Vec<String> = prom
            .rules()
            .await
            .into_iter()
            .filter(|r| r.4 != "ok" && r.4 != "unknown" || !r.5.is_empty())
            .map(|r| format!("rule {} ({}): {} {}", r.2, r.0, r.4, r.5))
            .collect();
        failures.extend(unhealthy);
        if failures.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} queries or rules without data after {:?}:\n{}",
            failures.len(),
            started.elapsed(),
            failures.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!(
        "{} dashboard queries and {} recording rules return data ({:?} after start; targets up after {targets_up:?})",
        queries.len(),
        recording.len(),
        started.elapsed()
    );
    if !allowed_empty.is_empty() {
        eprintln!(
            "empty until the collector exposes {pending_families:?}:\n  {}",
            allowed_empty.join("\n  ")
        );
    }

    // Each query variable's default value is one its query offers.
    for d in &dashboards {
        let defaults = crate::grafana::variable_defaults(&d.json);
        for v in d.json["templating"]["list"].as_array().unwrap() {
            if v["type"] != "query" || v["includeAll"] == true {
                continue;
            }
            let definition = crate::grafana::substitute(
                v["definition"].as_str().unwrap(),
                &defaults,
                RATE_INTERVAL,
            );
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| {
                    panic!("{}: variable {}: not label_values(...)", d.file, v["name"])
                });
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let values = prom
                .get(
                    &format!("/api/v1/label/{}/values", label.trim()),
                    &[("match[]", selector.trim())],
                )
                .await;
            let name = v["name"].as_str().unwrap();
            assert!(
                values
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x.as_str() == Some(&defaults[name])),
                "{}: variable {name}: default {:?} not among {values}",
                d.file,
                defaults[name]
            );
        }
    }

    // Exemplars are stored and carry trace ids, so Grafana can link to traces.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 300).to_string(), (now + 5).to_string());
    let exemplars = prom
        .get(
            "/api/v1/query_exemplars",
            &[
                (
                    "query",
                    "http_server_request_duration_seconds_bucket{job=\"gateway\"}",
                ),
                ("start", &start),
                ("end", &end),
            ],
        )
        .await;
    let with_trace = exemplars
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default())
        .filter(|e| {
            e["labels"]["trace_id"]
                .as_str()
                .is_some_and(|t| t.len() == 32)
        })
        .count();
    assert!(with_trace > 0, "no exemplars with a trace_id: {exemplars}");
}

/// SIGSTOP on a process: it hangs (accepts connections, never answers), as
/// a wedged instance does. Resumed on drop so `up` can stop it.
struct Frozen(Vec<u32>);

impl Frozen {
    fn freeze(pids: Vec<u32>) -> Frozen {
        for pid in &pids {
            let status = std::process::Command::new("kill")
                .args(["-STOP", &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "kill -STOP {pid}");
        }
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_payment_instances_make_the_checkout_burn_rate_alert_pend() {
    require_prometheus();
    let lab = Lab::start(&["--prometheus-interval", "1s", "--load-rate", "10"]).await;
    let prom = Prometheus::of(&lab);
    prom.wait_for_targets(&lab, Duration::from_secs(30)).await;

    let alert = r#"ALERTS{alertname="ErrorBudgetBurnFast", slo="checkout-availability"}"#;
    // Healthy first: checkouts succeed and the page is quiet.
    lab.eventually(
        "checkout traffic at the gateway",
        Duration::from_secs(60),
        || async {
            let r = prom
                .query(r#"slo:sli_error:ratio_rate5m{slo="checkout-availability"} >= 0"#)
                .await
                .ok()?;
            (!r.is_empty()).then_some(())
        },
    )
    .await;
    assert!(
        prom.query(alert).await.unwrap().is_empty(),
        "page fires on a healthy lab"
    );

    // Both payment instances hang: checkout's calls time out, the saga
    // fails, the gateway answers 5xx for checkouts (and only for them).
    let frozen = Frozen::freeze(vec![lab.pid("payment-1"), lab.pid("payment-2")]);
    let fired_after = Instant::now();
    let state = lab
        .eventually(
            "ErrorBudgetBurnFast for checkout-availability",
            Duration::from_secs(120),
            || async {
                let r = prom.query(alert).await.ok()?;
                r.first()
                    .map(|a| a["metric"]["alertstate"].as_str().unwrap_or("").to_string())
            },
        )
        .await;
    assert!(state == "pending" || state == "firing", "{state}");
    eprintln!(
        "ErrorBudgetBurnFast (checkout-availability) {state} {:?} after payment hung",
        fired_after.elapsed()
    );

    // The alert names the SLO, not the cause; browsing is not paged.
    let browse = prom
        .query(r#"ALERTS{alertname=~"ErrorBudgetBurn.*", slo=~"browse-.*"}"#)
        .await
        .unwrap();
    assert!(browse.is_empty(), "browse SLOs paged too: {browse:?}");
    drop(frozen);
}
