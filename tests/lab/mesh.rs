//! End-to-end tests of the lab: real `firedrill up`, real processes, real
//! OTLP, real SQLite. Each test starts its own lab on free ports.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::support::{Lab, firedrill};
use serde_json::{Value, json};

/// Services that only consume the queue get no public traffic; these routes
/// of theirs are read directly so every process serves some HTTP.
const DIRECT_READS: &[(&str, &str)] = &[
    ("notification-1", "/notifications?user_id=7"),
    ("projector-1", "/users/7/orders"),
];

fn spans(trace: &Value) -> Vec<Value> {
    trace["spans"].as_array().cloned().unwrap_or_default()
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

fn service_of(trace: &Value, span: &Value) -> String {
    let pid = span["processID"].as_str().unwrap_or_default();
    trace["processes"][pid]["serviceName"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_trace_crosses_the_mesh_with_logs_metrics_and_exemplars() {
    let lab = Lab::start(&["--load-rate", "2"]).await;
    assert!(
        lab.endpoints.ready_ms < 30_000,
        "ready in {} ms",
        lab.endpoints.ready_ms
    );

    // The catalogue answers through the gateway.
    let products: Value = lab.get_json(lab.url("/api/products")).await;
    assert_eq!(products["total"], 240, "{products}");
    assert_eq!(products["products"].as_array().unwrap().len(), 20);

    // A checkout continuing an external trace.
    let token = lab.login(7).await;
    let added = lab
        .http
        .post(lab.url("/api/cart/items"))
        .bearer_auth(&token)
        .json(&json!({"product_id": 3, "quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200, "{}", added.text().await.unwrap());
    let trace_id = "5b8efff798038103d269b633813fc60c";
    let external_parent = "eee19b7ec3c1b174";
    let checkout = lab
        .http
        .post(lab.url("/api/checkout"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-{external_parent}-01"))
        .header("baggage", "lab.session=test")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(checkout.status(), 201, "{}", checkout.text().await.unwrap());
    let order: Value = checkout.json().await.unwrap();
    assert_eq!(order["status"], "confirmed");

    // Both consumers of order-events see the order: the confirmation email
    // and the order history (a topic fans out to every consuming service).
    let order_id = order["order_id"].clone();
    for (id, path, list) in [
        (
            "notification-1",
            "/notifications?user_id=7",
            "notifications",
        ),
        ("projector-1", "/users/7/orders", "orders"),
    ] {
        let base = lab
            .component(id)
            .health
            .trim_end_matches("/health")
            .to_string();
        lab.eventually(
            &format!("{id} to record order {order_id}"),
            Duration::from_secs(10),
            || {
                let url = format!("{base}{path}");
                let http = lab.http.clone();
                let order_id = order_id.clone();
                async move {
                    let body: Value = http.get(url).send().await.ok()?.json().await.ok()?;
                    body[list]
                        .as_array()?
                        .iter()
                        .any(|o| o["order_id"] == order_id)
                        .then_some(())
                }
            },
        )
        .await;
    }

    // The same trace id is queryable, spans from >= 5 services, with DB and
    // queue (producer + consumer) spans, all correctly parented.
    let query = lab.endpoints.query.clone();
    let trace = lab
        .eventually(
            "the checkout trace with DB and queue spans",
            Duration::from_secs(10),
            || {
                let url = format!("{query}/api/traces/{trace_id}");
                let http = lab.http.clone();
                async move {
                    let body: Value = http.get(url).send().await.ok()?.json().await.ok()?;
                    let trace = body["data"].as_array()?.first()?.clone();
                    let spans = spans(&trace);
                    let services: BTreeSet<_> =
                        spans.iter().map(|s| service_of(&trace, s)).collect();
                    let has_db = spans.iter().any(|s| tag(s, "db.system.name").is_some());
                    let kinds: BTreeSet<_> = spans
                        .iter()
                        .filter_map(|s| tag(s, "span.kind")?.as_str().map(String::from))
                        .collect();
                    // Export is batched per process, so wait until every
                    // parent has arrived as well.
                    let complete = dangling_parents(&spans, external_parent).is_empty();
                    (services.len() >= 5
                        && complete
                        && has_db
                        && kinds.contains("producer")
                        && kinds.contains("consumer"))
                    .then_some(trace)
                }
            },
        )
        .await;
    let all = spans(&trace);
    for span in &all {
        assert_eq!(span["traceID"], trace_id);
    }
    assert!(dangling_parents(&all, external_parent).is_empty());
    let root = all
        .iter()
        .find(|s| {
            s["references"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["spanID"] == external_parent)
        })
        .expect("a span whose parent is the external caller");
    assert_eq!(service_of(&trace, root), "gateway");
    assert_eq!(
        tag(root, "span.kind").and_then(Value::as_str),
        Some("server")
    );
    let consumer = all
        .iter()
        .find(|s| tag(s, "span.kind").and_then(Value::as_str) == Some("consumer"))
        .unwrap();
    assert!(
        consumer["references"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["refType"] == "FOLLOWS_FROM"),
        "consumer span links to the producer: {consumer}"
    );

    // Logs from >= 3 services carry the trace id.
    let logs_url = format!("{query}/api/logs?trace_id={trace_id}&limit=500");
    let services = lab
        .eventually(
            "logs from 3 services for the trace",
            Duration::from_secs(10),
            || {
                let http = lab.http.clone();
                let url = logs_url.clone();
                async move {
                    let body: Value = http.get(url).send().await.ok()?.json().await.ok()?;
                    let services: BTreeSet<String> = body["data"]
                        .as_array()?
                        .iter()
                        .filter(|l| l["trace_id"] == trace_id)
                        .filter_map(|l| l["service"].as_str().map(String::from))
                        .collect();
                    (services.len() >= 3).then_some(services)
                }
            },
        )
        .await;
    assert!(services.contains("checkout"), "{services:?}");

    // Every service process exposes the server histogram with the semantic
    // convention labels and trace-id exemplars.
    let direct: HashMap<_, _> = DIRECT_READS.iter().copied().collect();
    for component in lab
        .endpoints
        .components
        .iter()
        .filter(|c| !["collector", "loadgen", "controller"].contains(&c.name.as_str()))
    {
        if let Some(path) = direct.get(component.id.as_str()) {
            let base = component.health.trim_end_matches("/health");
            let r = lab
                .http
                .get(format!("{base}{path}"))
                .header("traceparent", format!("00-{trace_id}-{external_parent}-01"))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_success(),
                "{} {path}: {}",
                component.id,
                r.status()
            );
        }
        let id = component.id.clone();
        let url = component.metrics.clone();
        let text = lab
            .eventually(
                &format!("{id} to serve a request with an exemplar"),
                Duration::from_secs(20),
                || {
                    let http = lab.http.clone();
                    let url = url.clone();
                    async move {
                        let text = http.get(url).send().await.ok()?.text().await.ok()?;
                        (text.contains("http_server_request_duration_seconds_bucket{")
                            && text.contains("# {trace_id=\""))
                        .then_some(text)
                    }
                },
            )
            .await;
        let line = text
            .lines()
            .find(|l| l.starts_with("http_server_request_duration_seconds_bucket{"))
            .unwrap();
        for label in [
            "http_request_method=",
            "http_route=",
            "http_response_status_code=",
        ] {
            assert!(line.contains(label), "{id}: {line}");
        }
        assert!(text.contains("target_info{"), "{id} has no target_info");
        assert!(
            text.contains("process_memory_usage_bytes"),
            "{id} has no RSS metric"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_client_errors() {
    let lab = Lab::start(&["--load-rate", "0"]).await;
    let http = &lab.http;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (http.get(lab.url("/api/products/999999")), 404, "not found"),
        (
            http.get(lab.url("/api/products/abc")),
            400,
            "positive integer",
        ),
        (http.get(lab.url("/api/products?limit=5000")), 400, "limit"),
        (http.get(lab.url("/api/search?q=")), 400, "q must be"),
        (
            http.post(lab.url("/api/login"))
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "",
        ),
        (
            http.post(lab.url("/api/login"))
                .json(&json!({"username": "user1", "password": "wrong"})),
            401,
            "",
        ),
        (http.get(lab.url("/api/cart")), 401, "bearer"),
        (
            http.get(lab.url("/api/cart")).bearer_auth("garbage"),
            401,
            "",
        ),
        (
            http.post(lab.url("/api/login"))
                .header("content-type", "application/json")
                .body(vec![b' '; 2 * 1024 * 1024]),
            413,
            "",
        ),
        (http.get(lab.url("/no/such/route")), 404, "no such route"),
    ];
    for (request, status, needle) in cases {
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(got, status, "body: {body}");
        let parsed: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("error body is JSON: {body}"));
        let message = parsed["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {body}"));
        assert!(
            message.to_lowercase().contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    let token = lab.login(3).await;
    for (body, status) in [
        (json!({"product_id": 999999, "quantity": 1}), 404),
        (json!({"product_id": 1, "quantity": 0}), 400),
        (json!({"product_id": 1}), 400),
    ] {
        let r = http
            .post(lab.url("/api/cart/items"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            status,
            "{body}: {}",
            r.text().await.unwrap()
        );
    }
    let r = http
        .post(lab.url("/api/checkout"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "empty cart");
    // Nothing above crashed a process.
    assert!(!lab.up_log().contains("restarting"), "{}", lab.up_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_fails_its_callers_then_is_restarted() {
    let mut lab = Lab::start(&["--load-rate", "0"]).await;
    let search = || lab.http.get(lab.url("/api/search?q=lamp")).send();
    assert_eq!(search().await.unwrap().status(), 200);
    let old_pid = lab.pid("search-1");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &old_pid.to_string()])
            .status()
            .unwrap()
            .success()
    );

    // The caller sees the failure...
    let status = search().await.unwrap().status();
    assert!(
        status.is_server_error(),
        "gateway answered {status} with search down"
    );
    // ...then the supervisor brings search back and the route recovers.
    lab.eventually(
        "search to be restarted and answer",
        Duration::from_secs(20),
        || async {
            let ok = search().await.ok()?.status() == 200;
            (ok && lab.pid("search-1") != old_pid).then_some(())
        },
    )
    .await;
    let log = lab.up_log();
    assert!(
        log.contains("search-1") && log.contains("restarting"),
        "{log}"
    );
    let gateway_metrics = lab
        .get_text(lab.component("gateway-1").metrics.clone())
        .await;
    assert!(
        gateway_metrics.lines().any(|l| l
            .starts_with("http_client_request_duration_seconds_count{")
            && l.contains("server_address=\"search\"")
            && l.contains("error_type=")),
        "gateway records failed calls to search"
    );

    // A clean stop takes every child down.
    let pids: Vec<u32> = lab
        .endpoints
        .components
        .iter()
        .map(|c| lab.pid(&c.id))
        .collect();
    assert!(lab.stop().success());
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid),
            "process {pid} survived"
        );
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

#[test]
fn bad_flags_are_named_in_one_clear_line() {
    let out = firedrill()
        .args(["up", "--instances", "nope=2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--instances") && err.contains("nope"), "{err}");

    let out = firedrill().args(["service", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gateway"),
        "lists valid names"
    );

    let out = firedrill()
        .args(["up", "--load-rate", "fast"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--load-rate"));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = firedrill()
        .args([
            "up",
            "--gateway-port",
            &port,
            "--status-every",
            "0s",
            "--run-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&port) && err.contains("in use") && err.contains("--gateway-port"),
        "{err}"
    );
}

/// Spans whose CHILD_OF parent is neither in the trace nor the external
/// caller's span, described for an assertion message.
fn dangling_parents(spans: &[Value], external_parent: &str) -> Vec<String> {
    let ids: BTreeSet<&str> = spans.iter().filter_map(|s| s["spanID"].as_str()).collect();
    spans
        .iter()
        .flat_map(|span| {
            let ids = &ids;
            span["references"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["refType"] == "CHILD_OF")
                .filter_map(|r| r["spanID"].as_str())
                .filter(move |parent| !ids.contains(parent) && *parent != external_parent)
                .map(move |parent| format!("{} -> {parent}", span["operationName"]))
        })
        .collect()
}

/// Issue 13, item 13: a component that cannot stay up makes `up` fail at
/// once, naming it and why (here every stateful service finds its database
/// path taken by a directory), instead of a crash loop and no banner.
#[test]
fn up_fails_loudly_when_a_component_cannot_stay_up() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(run.join("shop.db")).unwrap();
    let started = std::time::Instant::now();
    let output = firedrill()
        .args([
            "up",
            "--base-port",
            "0",
            "--load-rate",
            "0",
            "--status-every",
            "0s",
        ])
        .args(["--prometheus", "off", "--ready-timeout", "60s", "--run-dir"])
        .arg(&run)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot stay up") && stderr.contains("cannot open database"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "it failed at the ready timeout, not at the crash loop"
    );
}

/// Issue 13, item 13: the catalogue is built in, so `up` works from any
/// directory; a scenario directory with a bad file serves the good ones and
/// reports the bad one at file:line:col.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_works_anywhere_and_a_bad_scenario_file_is_reported_not_fatal() {
    let elsewhere = tempfile::tempdir().unwrap();
    let lab = Lab::start_in(Some(elsewhere.path()), &["--load-rate", "0"]).await;
    let list = |lab: &Lab| {
        let request = lab
            .http
            .get(format!("{}/v1/scenarios", lab.endpoints.controller))
            .bearer_auth(lab.instructor_token());
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let shipped = list(&lab).await;
    let shipped_ids = shipped["scenarios"].as_array().unwrap().len();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "toml"))
        })
        .count();
    assert_eq!(shipped_ids, files, "{shipped}");
    drop(lab);

    let dir = elsewhere.path().join("mine");
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/slow-catalog.toml"
    ))
    .unwrap();
    std::fs::write(dir.join("slow-catalog.toml"), &good).unwrap();
    std::fs::write(
        dir.join("broken.toml"),
        "id = \"broken\"\ntitle = \"x\"\ndifficulty = \"expert\"\n",
    )
    .unwrap();
    let lab = Lab::start_in(
        Some(elsewhere.path()),
        &["--load-rate", "0", "--scenarios", "mine"],
    )
    .await;
    let served = list(&lab).await;
    let ids: Vec<&str> = served["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["slow-catalog"], "{served}");
    let problems = served["problems"].to_string();
    assert!(
        problems.contains("broken.toml:3:") && problems.contains("expert"),
        "{problems}"
    );
}

/// A client verb whose output pipe closes (`firedrill ... | head -1`) stops
/// quietly, as `cat` does, instead of panicking.
#[test]
fn a_client_verb_stops_quietly_when_its_output_pipe_closes() {
    let mut child = firedrill()
        .args(["scenario", "validate"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the verb writes.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
