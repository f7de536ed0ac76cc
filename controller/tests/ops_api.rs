//! The controller's ops and agent answer over HTTP, on a real port: config
//! changes become versions agents receive, a restarted controller continues
//! the count, drains reach every agent, dead-letter ops call the queue, and
//! bad input is refused with a message that names what was wrong.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use firedrill_controller::{Controller, ControllerArgs};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const INSTRUCTOR: &str = "instructor-token";
const AGENT: &str = "agent-token-1";
const LEARNER: &str = "learner-token-1";
const ALERTS: &str = "alerts-token-1";

struct Running {
    url: String,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Starts a controller on a free port over `state` (kept across restarts).
async fn start(state: &std::path::Path, peers: &str) -> Running {
    start_in(state, peers, None).await
}

/// As [`start`], with process control through `run_dir` (as under `up`).
async fn start_in(
    state: &std::path::Path,
    peers: &str,
    run_dir: Option<std::path::PathBuf>,
) -> Running {
    let scenarios = state.join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    let args = ControllerArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        instructor_token: INSTRUCTOR.into(),
        agent_token: AGENT.into(),
        learner_token: Some(LEARNER.into()),
        learner_name: "lee".into(),
        alerts: false,
        alerts_token: Some(ALERTS.into()),
        query_url: None,
        lease: Duration::from_secs(5),
        state_dir: state.join("controller"),
        scenarios: Some(scenarios),
        run_dir,
        peers: peers.into(),
    };
    let controller = Controller::open(args).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let task = tokio::spawn(firedrill_controller::run(
        controller,
        listener,
        stop.clone(),
    ));
    Running { url, stop, task }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// `POST /v1/ops`; returns the status and the answer.
async fn op(base: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(format!("{base}/v1/ops"))
        .bearer_auth(INSTRUCTOR)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn ok(base: &str, body: Value) -> String {
    let (status, answer) = op(base, body.clone()).await;
    assert_eq!(status, 201, "{body} -> {answer}");
    answer["result"].as_str().unwrap().to_string()
}

/// What the agent of `instance` hears.
async fn poll(base: &str, service: &str, instance: &str) -> Value {
    poll_serving(base, service, instance, None).await.1
}

/// What the agent of `instance`, serving at `url`, hears; with the status.
async fn poll_serving(
    base: &str,
    service: &str,
    instance: &str,
    url: Option<&str>,
) -> (u16, Value) {
    let mut query = vec![("service", service), ("instance", instance)];
    query.extend(url.map(|u| ("url", u)));
    let r = http()
        .get(format!("{base}/v1/agent/faults"))
        .query(&query)
        .bearer_auth(AGENT)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The instances the agent of checkout-1 is told `service` has, as
/// `id url` lines (none: it keeps its --peers).
async fn rotation(base: &str, service: &str) -> Vec<String> {
    poll(base, "checkout", "checkout-1").await["endpoints"][service]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["id"].as_str().unwrap(),
                        e["url"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A stand-in queue: two topics, one with dead letters; records calls.
async fn stand_in_queue(calls: Arc<Mutex<Vec<String>>>) -> String {
    let (replayed, purged) = (calls.clone(), calls);
    let routes = Router::new()
        .route(
            "/topics",
            get(|| async {
                axum::Json(json!({"topics": [
                    {"topic": "order-events", "depth": 0, "in_flight": 0, "oldest_age_ms": 0, "dead_letters": 3},
                    {"topic": "cart-events", "depth": 5, "in_flight": 0, "oldest_age_ms": 0, "dead_letters": 0},
                ]}))
            }),
        )
        .route(
            "/topics/{topic}/dead-letters/replay",
            post(move |Path(topic): Path<String>| {
                replayed.lock().push(format!("replay {topic}"));
                async { axum::Json(json!({"count": 3})) }
            }),
        )
        .route(
            "/topics/{topic}/dead-letters",
            axum::routing::delete(move |Path(topic): Path<String>| {
                purged.lock().push(format!("purge {topic}"));
                async { axum::Json(json!({"count": 1})) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, routes).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_become_versions_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let peers = "checkout=http://127.0.0.1:1;payment=http://127.0.0.1:2,http://127.0.0.1:3";
    let lab = start(dir.path(), peers).await;
    let base = lab.url.clone();
    assert_eq!(
        poll(&base, "checkout", "checkout-1").await["config"]["version"],
        0
    );

    let done = ok(
        &base,
        json!({"op": "config-set", "target": "checkout", "actor": "alice",
               "set": {"timeouts.payment": "500ms", "retries.budget": 0.1}}),
    )
    .await;
    assert_eq!(
        done,
        "checkout config v1: timeouts.payment=500ms, retries.budget=0.1"
    );
    let heard = poll(&base, "checkout", "checkout-2").await;
    assert_eq!(heard["config"]["version"], 1);
    assert_eq!(heard["config"]["values"]["timeouts"]["payment"], 500);
    assert_eq!(heard["config"]["values"]["retries"]["budget"], 0.1);
    assert_eq!(
        poll(&base, "payment", "payment-1").await["config"]["version"],
        0
    );

    // A config push (instructor) lays its values over the op's; agents get
    // it as config, not as a fault.
    let r = http()
        .post(format!("{base}/v1/faults"))
        .bearer_auth(INSTRUCTOR)
        .json(
            &json!({"kind": "config-push", "target": {"service": "checkout"},
                      "timeouts": {"payment": "1ms"}, "duration": "1h"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let heard = poll(&base, "checkout", "checkout-1").await;
    assert_eq!(heard["config"]["version"], 2);
    assert_eq!(heard["config"]["values"]["timeouts"]["payment"], 1);
    assert_eq!(heard["faults"], json!([]));

    // The flag and rate-limit ops are config changes too.
    let done = ok(
        &base,
        json!({"op": "flag-set", "target": "checkout", "actor": "bob", "set": {"recommendations": "0"}}),
    )
    .await;
    assert_eq!(done, "checkout config v3: flags.recommendations=0");

    // Restarted, the controller continues the count.
    lab.stop().await;
    let lab = start(dir.path(), peers).await;
    let base = lab.url.clone();
    assert_eq!(
        poll(&base, "checkout", "checkout-1").await["config"]["version"],
        3
    );

    // Rollback takes back the latest change first: the flag-set, then the
    // push, then the config-set; each result is a new version.
    let rollback = json!({"op": "rollback", "target": "checkout", "actor": "alice"});
    let done = ok(&base, rollback.clone()).await;
    assert_eq!(
        done,
        "rolled back the config change flag-set flags.recommendations=0; checkout config is now v4"
    );
    let done = ok(&base, rollback.clone()).await;
    assert_eq!(
        done,
        "rolled back the config change timeouts.payment=1ms; checkout config is now v5"
    );
    assert_eq!(
        poll(&base, "checkout", "checkout-1").await["config"]["values"]["timeouts"]["payment"],
        500
    );
    ok(&base, rollback.clone()).await;
    let done = ok(&base, rollback).await;
    assert!(done.starts_with("nothing to roll back"), "{done}");
    let heard = poll(&base, "checkout", "checkout-1").await;
    assert_eq!(heard["config"], json!({"version": 6, "values": {}}));

    // Every op is in the log with its actor.
    let log: Value = http()
        .get(format!("{base}/v1/ops"))
        .bearer_auth(INSTRUCTOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ops: Vec<&str> = log["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "config-set",
            "flag-set",
            "rollback",
            "rollback",
            "rollback",
            "rollback"
        ]
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_reach_every_agent_and_name_real_instances() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start(
        dir.path(),
        "payment=http://127.0.0.1:2,http://127.0.0.1:3;checkout=http://127.0.0.1:1",
    )
    .await;
    let base = lab.url.clone();
    let drain = |verb: &str, target: &str| json!({"op": verb, "target": target, "actor": "carol"});

    let done = ok(&base, drain("drain", "payment-2")).await;
    assert_eq!(done, "drained payment-2: callers leave it out of rotation");
    for (service, instance) in [("checkout", "checkout-1"), ("payment", "payment-2")] {
        assert_eq!(
            poll(&base, service, instance).await["drained"],
            json!(["payment-2"])
        );
    }
    assert_eq!(
        ok(&base, drain("drain", "payment-2")).await,
        "payment-2 was already drained"
    );
    let done = ok(&base, drain("drain", "payment-1")).await;
    assert!(
        done.contains("no instance of payment is left in rotation"),
        "{done}"
    );
    ok(&base, drain("undrain", "payment-1")).await;
    assert_eq!(
        ok(&base, drain("undrain", "payment-2")).await,
        "payment-2 is back in rotation"
    );
    assert_eq!(
        poll(&base, "checkout", "checkout-1").await["drained"],
        json!([])
    );

    for (body, needle) in [
        (
            drain("drain", "payment-3"),
            "no instance payment-3: payment runs payment-1, payment-2",
        ),
        (drain("drain", "payment"), "takes one instance"),
        (drain("drain", "gateway->payment"), "takes one instance"),
        (drain("undrain", "warehouse-1"), "unknown service"),
    ] {
        let (status, answer) = op(&base, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body} -> {answer}"
        );
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_ops_call_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let queue = stand_in_queue(calls.clone()).await;
    let lab = start(dir.path(), &format!("queue={queue}")).await;
    let base = lab.url.clone();

    let done = ok(
        &base,
        json!({"op": "dlq-replay", "target": "queue", "actor": "dan"}),
    )
    .await;
    assert_eq!(done, "replayed 3 dead letter(s): order-events 3");
    let done = ok(
        &base,
        json!({"op": "dlq-purge", "target": "queue", "actor": "dan", "topic": "cart-events"}),
    )
    .await;
    assert_eq!(done, "purged 1 dead letter(s): cart-events 1");
    assert_eq!(*calls.lock(), ["replay order-events", "purge cart-events"]);

    for (body, needle) in [
        (
            json!({"op": "dlq-purge", "target": "catalog", "actor": "dan"}),
            "target queue, not catalog",
        ),
        (
            json!({"op": "dlq-purge", "target": "queue", "actor": "dan", "topic": "Order Events"}),
            "invalid topic",
        ),
    ] {
        let (status, answer) = op(&base, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body} -> {answer}"
        );
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_op_input_is_refused_with_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start(dir.path(), "").await;
    let base = lab.url.clone();
    let body = |op: &str, target: &str, set: Value| json!({"op": op, "target": target, "actor": "eve", "set": set});
    for (request, needle) in [
        (
            body("config-set", "payment", json!({})),
            "needs at least one key=value",
        ),
        (
            body("config-set", "payment", json!({"retries.cuont": 1})),
            "unknown config key `retries.cuont`",
        ),
        (
            body("config-set", "payment", json!({"timeouts.warehouse": "1s"})),
            "unknown peer service",
        ),
        (
            body("config-set", "payment", json!({"db.poolSize": 0})),
            "`db.poolSize` must be 1..64",
        ),
        (
            body("config-set", "payment-2", json!({"retries.count": 1})),
            "target the service (payment), not payment-2",
        ),
        (
            body("config-set", "warehouse", json!({"retries.count": 1})),
            "unknown service",
        ),
        (
            body("flag-set", "catalog", json!({"recommendations": 1.5})),
            "`flags.recommendations` is the share of users",
        ),
        (
            body("rate-limit", "gateway", json!({"api/products": 10})),
            "starts with '/'",
        ),
        (
            body("restart", "catalog", json!({"x": 1})),
            "restart takes no key=value",
        ),
        (
            json!({"op": "drain", "target": "payment-2", "actor": "eve", "topic": "x"}),
            "drain takes no topic",
        ),
        (
            json!({"op": "rollback", "target": "gateway->catalog", "actor": "eve"}),
            "rollback acts on a service",
        ),
        (
            json!({"op": "explode", "target": "x", "actor": "eve"}),
            "unknown variant",
        ),
        (
            body("restart", "payment-provider", json!({})),
            "payment-provider is a third party",
        ),
        (
            body(
                "config-set",
                "payment-provider",
                json!({"retries.count": 1}),
            ),
            "payment-provider is a third party",
        ),
    ] {
        let (status, answer) = op(&base, request.clone()).await;
        assert_eq!(status, 400, "{request} -> {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{request} -> {answer}"
        );
    }
    // Nothing was changed or logged by a refused op.
    let log: Value = http()
        .get(format!("{base}/v1/ops"))
        .bearer_auth(INSTRUCTOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["ops"], json!([]));
    assert_eq!(
        poll(&base, "payment", "payment-1").await["config"]["version"],
        0
    );

    // Without a lab layout, drains are not checked against it and the
    // dead-letter ops cannot act.
    let done = ok(
        &base,
        json!({"op": "drain", "target": "payment-7", "actor": "eve"}),
    )
    .await;
    assert!(done.starts_with("drained payment-7"), "{done}");
    let done = ok(
        &base,
        json!({"op": "dlq-replay", "target": "queue", "actor": "eve"}),
    )
    .await;
    assert!(done.starts_with("recorded;"), "{done}");
    lab.stop().await;
}

/// A timeout pushed too low, and accepted when someone sets it back.
const PUSHED_TIMEOUT: &str = r#"
id = "pushed-timeout"
title = "Checkouts time out"
difficulty = "beginner"
goals = ["align errors with a config version"]
page = "Checkouts fail."
hints = ["what changed?", "checkout's config", "timeouts.payment is 20ms"]
debrief = "A config push set timeouts.payment to 20 ms."

[[steps]]
at = "0s"
lasts = "until-mitigated"
role = "root"
target = "checkout"
kind = "config-push"
timeouts = { payment = "20ms" }

[truth]
root = "checkout"
category = "config-change"
chain = ["checkout", "gateway"]

[mitigation]
accepted = [{ op = "config-set", target = "checkout", set = { "timeouts.payment" = "2s" } }]
recovery = { route = "/api/checkout", max_error_ratio = 0.05, max_latency_ms = 800 }

[[symptoms]]
signal = "metric"
service = "gateway"
check = "error-ratio-above"
route = "/api/checkout"
ratio = 0.5
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mitigating_op_names_the_version_its_mitigation_leaves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
    std::fs::write(
        dir.path().join("scenarios/pushed-timeout.toml"),
        PUSHED_TIMEOUT,
    )
    .unwrap();
    let lab = start(dir.path(), "").await;
    let base = lab.url.clone();
    let r = http()
        .post(format!("{base}/v1/scenarios/pushed-timeout/start"))
        .bearer_auth(INSTRUCTOR)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let pushed = poll(&base, "checkout", "checkout-1").await;
    assert_eq!(pushed["config"]["version"], 1);

    // The op's own value is laid under the push (v1 stays in force), then
    // the mitigation ends the push: the answer names the version after it.
    let result = ok(
        &base,
        json!({"op": "config-set", "target": "checkout", "actor": "eve",
               "set": {"timeouts.payment": "2s"}}),
    )
    .await;
    let heard = poll(&base, "checkout", "checkout-1").await;
    let version = heard["config"]["version"].as_u64().unwrap();
    assert_eq!(heard["config"]["values"]["timeouts"]["payment"], 2000);
    assert!(
        result.ends_with(&format!(
            "the config push it mitigates ended: checkout config is now v{version}"
        )),
        "{result} (agents hear v{version})"
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_declares_the_count_and_sends_callers_to_the_instances() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // Two catalog processes run, as `up` would have started them.
    std::fs::create_dir_all(run.join("pids")).unwrap();
    for id in ["catalog-1", "catalog-2"] {
        std::fs::write(run.join("pids").join(format!("{id}.pid")), "1").unwrap();
    }
    let lab = start_in(
        dir.path(),
        "catalog=http://127.0.0.1:11,http://127.0.0.1:12;checkout=http://127.0.0.1:1",
        Some(run.clone()),
    )
    .await;
    let base = lab.url.clone();
    let scale = |target: &str, replicas: Value| json!({"op": "scale", "target": target, "actor": "dan", "set": {"replicas": replicas}});
    // Never scaled: callers keep their --peers.
    assert!(rotation(&base, "catalog").await.is_empty());

    // A release is out on both instances; then catalog scales out.
    let (status, answer) = post_instructor(
        &base,
        "/v1/deploys",
        json!({"target": "catalog", "version": "2.4.0"}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let done = ok(&base, scale("catalog", json!(3))).await;
    assert!(
        done.contains("from 2 to 3") && done.contains("catalog-3"),
        "{done}"
    );
    assert_eq!(
        firedrill_rundir::RunDir::new(&run)
            .read_replicas("catalog")
            .unwrap(),
        Some(3)
    );
    // The new instance comes up on the current release.
    let versions = firedrill_rundir::RunDir::new(&run)
        .read_versions("catalog")
        .unwrap();
    assert_eq!(versions["catalog-3"], "2.4.0", "{versions:?}");
    // Until catalog-3 says where it serves, callers get the two they know.
    assert_eq!(
        rotation(&base, "catalog").await,
        [
            "catalog-1 http://127.0.0.1:11",
            "catalog-2 http://127.0.0.1:12"
        ]
    );
    let (status, _) =
        poll_serving(&base, "catalog", "catalog-3", Some("http://127.0.0.1:13")).await;
    assert_eq!(status, 200);
    assert_eq!(
        rotation(&base, "catalog").await,
        [
            "catalog-1 http://127.0.0.1:11",
            "catalog-2 http://127.0.0.1:12",
            "catalog-3 http://127.0.0.1:13"
        ]
    );
    // A scaled instance can be drained like any other.
    let drained = json!({"op": "drain", "target": "catalog-3", "actor": "dan"});
    assert!(ok(&base, drained).await.contains("drained catalog-3"));

    // Scaled in: the highest numbers leave every caller's rotation now.
    let done = ok(&base, scale("catalog", json!("1"))).await;
    assert!(
        done.contains("from 3 to 1") && done.contains("catalog-2, catalog-3"),
        "{done}"
    );
    assert_eq!(
        rotation(&base, "catalog").await,
        ["catalog-1 http://127.0.0.1:11"]
    );
    let (status, answer) = op(
        &base,
        json!({"op": "drain", "target": "catalog-2", "actor": "dan"}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("catalog runs catalog-1"),
        "{answer}"
    );
    assert_eq!(
        ok(&base, scale("catalog", json!(1))).await,
        "catalog already runs 1 instance(s)"
    );

    // The count survives a controller restart.
    lab.stop().await;
    let lab = start_in(
        dir.path(),
        "catalog=http://127.0.0.1:11,http://127.0.0.1:12;checkout=http://127.0.0.1:1",
        Some(run.clone()),
    )
    .await;
    assert_eq!(
        rotation(&lab.url, "catalog").await,
        ["catalog-1 http://127.0.0.1:11"]
    );

    for (body, needle) in [
        (scale("gateway", json!(2)), "edge"),
        (scale("queue", json!(2)), "one process"),
        (scale("payment-provider", json!(2)), "third party"),
        (scale("catalog-1", json!(2)), "whole service"),
        (scale("catalog", json!(0)), "1 to 8"),
        (scale("catalog", json!(9)), "1 to 8"),
        (scale("catalog", json!("two")), "whole number"),
        (scale("catalog", json!(-1)), "whole number"),
        (
            json!({"op": "scale", "target": "catalog", "actor": "dan"}),
            "replicas=N",
        ),
        (
            json!({"op": "scale", "target": "catalog", "actor": "dan", "set": {"replicas": 2, "x": 1}}),
            "replicas=N",
        ),
    ] {
        let (status, answer) = op(&lab.url, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body} -> {answer}"
        );
    }
    // An agent reporting a bogus address is refused, and changes nothing.
    let (status, answer) =
        poll_serving(&lab.url, "catalog", "catalog-1", Some("file:///etc/passwd")).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        rotation(&lab.url, "catalog").await,
        ["catalog-1 http://127.0.0.1:11"]
    );
    lab.stop().await;
}

async fn post_instructor(base: &str, path: &str, body: Value) -> (u16, Value) {
    let r = http()
        .post(format!("{base}{path}"))
        .bearer_auth(INSTRUCTOR)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Sends `body` to `path` with `token` (none: no Authorization header).
async fn send_as(base: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut request = http()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Issue 13, item 3: ops need a token, checked before the body is read;
/// a learner acts as themselves; every field is bounded; and the ops log is
/// a journal, so ops do not rewrite the state or grow the controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_need_a_token_and_bounded_input_and_are_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start(dir.path(), "").await;
    let base = lab.url.clone();
    let restart = serde_json::to_vec(&json!({"op": "no-action"})).unwrap();

    // No token: 401, whatever the body (even one that would not parse).
    for body in [restart.clone(), b"{not json".to_vec()] {
        let (status, answer) = send_as(&base, "/v1/ops", None, body).await;
        assert_eq!(status, 401, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("learner token"),
            "{answer}"
        );
    }
    // A wrong token and an agent's token: 403, still before parsing.
    for token in ["nobody-knows-this", AGENT] {
        let (status, answer) = send_as(&base, "/v1/ops", Some(token), b"{not json".to_vec()).await;
        assert_eq!(status, 403, "{token}: {answer}");
    }
    // GET /v1/ops needs one too.
    let r = http().get(format!("{base}/v1/ops")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A learner acts as themselves.
    let (status, answer) = send_as(&base, "/v1/ops", Some(LEARNER), restart.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["actor"], "lee");
    let as_bob = serde_json::to_vec(&json!({"op": "no-action", "actor": "bob"})).unwrap();
    let (status, answer) = send_as(&base, "/v1/ops", Some(LEARNER), as_bob).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("lee's"),
        "{answer}"
    );

    // Learners may not reach the instructor's routes.
    let r = http()
        .get(format!("{base}/v1/faults"))
        .bearer_auth(LEARNER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Bounded input: a 2 MB target is refused as a body over the limit, a
    // long target and a target on no-action are refused by name, and none
    // echoes the input back.
    let huge =
        serde_json::to_vec(&json!({"op": "no-action", "target": "x".repeat(2_000_000)})).unwrap();
    let sent = http()
        .post(format!("{base}/v1/ops"))
        .header("content-type", "application/json")
        .bearer_auth(INSTRUCTOR)
        .body(huge)
        .send()
        .await;
    // Refused with 413, or the connection closed on the rest of the body.
    match sent {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    for (body, needle) in [
        (
            json!({"op": "restart", "target": "c".repeat(10_000)}),
            "at most 128",
        ),
        (
            json!({"op": "no-action", "target": "catalog"}),
            "no-action acts on nothing",
        ),
        (
            json!({"op": "no-action", "actor": "a".repeat(65)}),
            "1..64 characters",
        ),
    ] {
        let (status, answer) = op(&base, body.clone()).await;
        assert_eq!(status, 400, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(needle), "{error}");
        assert!(error.len() < 300, "{error}");
    }

    // Ops are appended to a journal: 300 of them leave the state file as it
    // was, and all are listed and survive a restart.
    let state_file = dir.path().join("controller/controller-state.json");
    let before = std::fs::read(&state_file).ok();
    for _ in 0..300 {
        let (status, _) = send_as(&base, "/v1/ops", Some(LEARNER), restart.clone()).await;
        assert_eq!(status, 201);
    }
    assert_eq!(
        std::fs::read(&state_file).ok(),
        before,
        "the state was not rewritten"
    );
    let journal = std::fs::read_to_string(dir.path().join("controller/ops.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 301);
    lab.stop().await;
    let lab = start(dir.path(), "").await;
    let r = http()
        .get(format!("{}/v1/ops?limit=5", lab.url))
        .bearer_auth(LEARNER)
        .send()
        .await
        .unwrap();
    let log: Value = r.json().await.unwrap();
    assert_eq!(log["total"], 301);
    assert_eq!(log["ops"].as_array().unwrap().len(), 5);
    lab.stop().await;
}

/// Every operation `/openapi.json` describes admits exactly the role it
/// states: without a token 401 (but for `anyone`), with a token of another
/// role 403, with its own role neither — all before any body is read (the
/// requests carry none, or a broken one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_admits_the_role_the_document_states() {
    let dir = tempfile::tempdir().unwrap();
    let lab = start(dir.path(), "").await;
    let doc: Value = http()
        .get(format!("{}/openapi.json", lab.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let role = op["x-role"].as_str().unwrap();
            let url = format!(
                "{}{}",
                lab.url,
                path.replace("{id}", "x").replace("{name}", "x")
            );
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let send = |token: Option<&str>| {
                let mut request = http()
                    .request(method.clone(), &url)
                    .header("content-type", "application/json")
                    .body("{broken");
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                async move { request.send().await.unwrap().status().as_u16() }
            };
            let anonymous = send(None).await;
            assert_eq!(
                anonymous == 401,
                role != "anyone",
                "{method} {path} ({role}) without a token: {anonymous}"
            );
            for (who, token) in [
                ("learner", LEARNER),
                ("agent", AGENT),
                ("instructor", INSTRUCTOR),
            ] {
                let status = send(Some(token)).await;
                let admitted =
                    role == "anyone" || role == who || (role == "learner" && who == "instructor");
                assert_eq!(
                    !matches!(status, 401 | 403),
                    admitted,
                    "{method} {path} ({role}) with the {who} token: {status}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 30);
    lab.stop().await;
}
