//! The fault controller against the live lab: faults act within seconds and
//! end within seconds, the instructor token guards them, leases end them
//! when the controller disappears, a controller restart keeps them, and
//! scenarios end on an accepted mitigation and not on a wrong one.

use std::time::{Duration, Instant};

use crate::support::Lab;
use serde_json::{Value, json};

/// Median gateway latency of `GET path` over `n` requests.
async fn median_latency(lab: &Lab, path: &str, n: usize) -> Duration {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let r = lab.http.get(lab.url(path)).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let _ = r.bytes().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    samples[n / 2]
}

async fn wait_latency(lab: &Lab, what: &str, above: bool, threshold: Duration) -> Duration {
    lab.eventually(what, Duration::from_secs(5), || async {
        let median = median_latency(lab, "/api/products", 3).await;
        ((median > threshold) == above).then_some(median)
    })
    .await
}

/// `firedrill fault inject latency --target catalog --latency 300ms`.
fn inject_catalog_latency(lab: &Lab, duration: &str) {
    ok(&lab.cli(&[
        "fault",
        "inject",
        "latency",
        "--target",
        "catalog",
        "latency=300ms",
        "--duration",
        duration,
    ]));
}

fn ok(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "firedrill failed: {}{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_latency_shows_at_the_gateway_and_clears() {
    let lab = Lab::start(&["--load-rate", "0"]).await;
    let baseline = median_latency(&lab, "/api/products", 5).await;
    assert!(baseline < Duration::from_millis(100), "{baseline:?}");

    inject_catalog_latency(&lab, "60s");
    let slow = wait_latency(
        &lab,
        "the latency fault to act",
        true,
        baseline + Duration::from_millis(250),
    )
    .await;
    assert!(
        slow < baseline + Duration::from_millis(450),
        "{slow:?} vs {baseline:?}"
    );
    let listed = ok(&lab.cli(&["fault", "list"]));
    assert!(
        listed.contains("\"latency\"") && listed.contains("catalog"),
        "{listed}"
    );

    ok(&lab.cli(&["fault", "clear", "--all"]));
    wait_latency(
        &lab,
        "the fault to clear",
        false,
        Duration::from_millis(100),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_guards_faults_and_rejects_bad_input() {
    let lab = Lab::start(&["--load-rate", "0"]).await;
    let base = lab.endpoints.controller.clone();
    let token = lab.instructor_token();
    let valid =
        json!({"kind": "errors", "code": 503, "target": {"service": "payment"}, "duration": "1m"});
    let inject = |token: &str, body: &Value| {
        lab.http
            .post(format!("{base}/v1/faults"))
            .bearer_auth(token)
            .json(body)
            .send()
    };

    // No token: 401 naming what is needed; a wrong token: 403.
    for path in ["/v1/faults", "/v1/scenarios", "/v1/scenario"] {
        let r = lab.http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("instructor token"),
            "{body}"
        );
    }
    let r = inject("not-the-token", &valid).await.unwrap();
    assert_eq!(r.status(), 403);
    // Agents see only their own process's faults, with their own token.
    let r = lab
        .http
        .get(format!(
            "{base}/v1/agent/faults?service=payment&instance=payment-1"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "the instructor token is not an agent token"
    );

    // Bad input: 400 with a message that names the problem; never 5xx.
    let cases = [
        (
            json!({"kind": "latency", "target": {"service": "catalog"}, "duration": "1m"}),
            "latency",
        ),
        (
            json!({"kind": "latency", "latency": "soon", "target": {"service": "catalog"}, "duration": "1m"}),
            "not a duration",
        ),
        (
            json!({"kind": "explode", "target": {"service": "catalog"}, "duration": "1m"}),
            "unknown variant",
        ),
        (
            json!({"kind": "errors", "target": {"service": "warehouse"}, "duration": "1m"}),
            "unknown service",
        ),
        (
            json!({"kind": "errors", "toxicity": 3, "target": {"service": "catalog"}, "duration": "1m"}),
            "toxicity",
        ),
        (
            json!({"kind": "reset", "target": {"service": "catalog"}, "duration": "1m"}),
            "needs a link",
        ),
        (
            json!({"kind": "errors", "target": {"service": "catalog"}, "duration": "0s"}),
            "duration",
        ),
        (
            json!({"kind": "errors", "target": {"service": "catalog"}}),
            "duration",
        ),
        (json!([1, 2]), ""),
    ];
    for (body, needle) in cases {
        let r = inject(&token, &body).await.unwrap();
        let status = r.status();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body} -> {answer}"
        );
    }
    let r = lab
        .http
        .post(format!("{base}/v1/faults"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"kind\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = lab
        .http
        .delete(format!("{base}/v1/faults/f999"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = lab
        .http
        .post(format!("{base}/v1/ops"))
        .bearer_auth(lab.learner_token())
        .json(&json!({"op": "restart", "target": "nowhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // What learners can reach does not reveal an injected fault.
    let r = inject(&token, &valid).await.unwrap();
    assert_eq!(r.status(), 201);
    for path in ["/metrics", "/v1/ops", "/health", "/openapi.json"] {
        let text = lab
            .http
            .get(format!("{base}{path}"))
            .bearer_auth(lab.learner_token())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !text.contains("\"payment\"") || path == "/openapi.json",
            "{path}: {text}"
        );
        assert!(!text.contains("f1"), "{path} reveals the fault id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lapse_when_the_controller_disappears_and_survive_its_restart() {
    let lab = Lab::start(&["--load-rate", "0", "--fault-lease", "2s"]).await;
    inject_catalog_latency(&lab, "10m");
    wait_latency(
        &lab,
        "the latency fault to act",
        true,
        Duration::from_millis(250),
    )
    .await;

    // A frozen controller answers nothing: within one lease every fault ends.
    let controller = lab.pid("controller");
    let signal = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, &controller.to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    signal("-STOP");
    let frozen = Instant::now();
    wait_latency(
        &lab,
        "the fault to lapse with its lease",
        false,
        Duration::from_millis(100),
    )
    .await;
    let lapsed = frozen.elapsed();
    signal("-CONT");
    assert!(
        lapsed < Duration::from_secs(4),
        "lease 2s, lapsed after {lapsed:?}"
    );

    // Back, it hands the fault out again; killed and restarted by `up`, it
    // still remembers it.
    wait_latency(
        &lab,
        "the fault to resume",
        true,
        Duration::from_millis(250),
    )
    .await;
    signal("-KILL");
    lab.eventually(
        "up to restart the controller",
        Duration::from_secs(10),
        || async { (lab.pid("controller") != controller).then_some(()) },
    )
    .await;
    let listed = lab
        .eventually(
            "the restarted controller to answer",
            Duration::from_secs(10),
            || async {
                let out = lab.cli(&["fault", "list"]);
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            },
        )
        .await;
    assert!(listed.contains("catalog"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_ends_on_an_accepted_mitigation_only() {
    let lab = Lab::start(&["--load-rate", "0", "--learner-name", "alice"]).await;
    let list = ok(&lab.cli(&["scenario", "list"]));
    assert!(list.contains("slow-catalog"), "{list}");
    let page = ok(&lab.cli(&["scenario", "start", "slow-catalog"]));
    assert!(page.contains("[PAGE]"), "{page}");
    // The slow release rolls out one instance at a time: wait until six
    // requests in a row are slow, so every instance runs it.
    lab.eventually(
        "the release to reach every catalog instance",
        Duration::from_secs(30),
        || async {
            for _ in 0..6 {
                let one = median_latency(&lab, "/api/products", 1).await;
                if one <= Duration::from_millis(250) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    // A wrong op (restarting the gateway) is recorded and changes nothing.
    let done = ok(&lab.cli(&["ops", "restart", "gateway"]));
    assert!(done.contains("restarted gateway-1"), "{done}");
    lab.eventually(
        "the gateway to be back",
        Duration::from_secs(15),
        || async {
            let r = lab.http.get(lab.url("/api/products")).send().await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    let still = median_latency(&lab, "/api/products", 3).await;
    assert!(still > Duration::from_millis(250), "{still:?}");

    // The accepted one (rolling catalog back off the release that
    // carries the slowness) ends the incident.
    ok(&lab.cli(&["ops", "rollback", "catalog"]));
    lab.eventually(
        "recovery after the accepted mitigation",
        Duration::from_secs(30),
        || async {
            let r = lab.http.get(lab.url("/api/products")).send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            (median_latency(&lab, "/api/products", 3).await < Duration::from_millis(200))
                .then_some(())
        },
    )
    .await;
    let ops: Value = lab
        .learner_get_json(format!("{}/v1/ops", lab.endpoints.controller))
        .await;
    let ops = ops["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 2);
    assert!(
        ops.iter()
            .all(|o| o["actor"] == "alice" && o["atMs"].as_i64().unwrap() > 0)
    );
}

#[test]
fn a_broken_scenario_file_gets_a_line_precise_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string("scenarios/slow-catalog.toml").unwrap();
    let broken = good.replace("latency = \"300ms\"", "latency = \"fast\"");
    let line = broken.lines().position(|l| l.contains("\"fast\"")).unwrap() + 1;
    let path = dir.path().join("slow-catalog.toml");
    std::fs::write(&path, broken).unwrap();
    let out = crate::support::firedrill()
        .args(["scenario", "validate"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("slow-catalog.toml:{line}:")) && err.contains("not a duration"),
        "{err}"
    );
    // The shipped catalogue validates.
    let out = crate::support::firedrill()
        .args(["scenario", "validate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `service.version` each catalog instance reports in `target_info`
/// (`None` while one does not answer, e.g. mid-replacement).
async fn catalog_versions(lab: &Lab) -> Option<Vec<String>> {
    let mut versions = Vec::new();
    for c in lab
        .endpoints
        .components
        .iter()
        .filter(|c| c.name == "catalog")
    {
        let text = lab
            .http
            .get(&c.metrics)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let line = text.lines().find(|l| l.starts_with("target_info{"))?;
        let version = line.split("service_version=\"").nth(1)?.split('"').next()?;
        versions.push(version.to_string());
    }
    Some(versions)
}

async fn wait_versions(lab: &Lab, what: &str, want: &[&str]) {
    lab.eventually(what, Duration::from_secs(60), || async {
        let versions = catalog_versions(lab).await?;
        (versions == want).then_some(())
    })
    .await;
}

/// Status of `GET /products` on one catalog instance, bypassing the gateway.
async fn instance_status(lab: &Lab, id: &str) -> Option<u16> {
    let c = lab.endpoints.components.iter().find(|c| c.id == id)?;
    let base = c.health.trim_end_matches("/health");
    let r = lab.http.get(format!("{base}/products")).send().await.ok()?;
    Some(r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deploy_is_a_rolling_restart_that_a_rollback_really_ends() {
    let lab = Lab::start(&["--load-rate", "0", "--learner-name", "alice"]).await;
    wait_versions(&lab, "the build's version", &["0.1.0", "0.1.0"]).await;
    let baseline = median_latency(&lab, "/api/products", 5).await;
    assert!(baseline < Duration::from_millis(100), "{baseline:?}");

    // The scenario deploys catalog 2.4.0, whose database queries are slow.
    ok(&lab.cli(&["scenario", "start", "catalog-bad-deploy"]));
    wait_versions(&lab, "catalog to roll to 2.4.0", &["2.4.0", "2.4.0"]).await;
    wait_latency(
        &lab,
        "the new version's defect",
        true,
        baseline + Duration::from_millis(200),
    )
    .await;
    let log = lab.up_log();
    assert!(
        log.contains("process replaced for a rollout") && log.contains("rolled out"),
        "{log}"
    );

    // Restarting brings the same release back: still slow.
    ok(&lab.cli(&["ops", "restart", "catalog"]));
    lab.eventually(
        "catalog to be back after the restart",
        Duration::from_secs(30),
        || async {
            let r = lab.http.get(lab.url("/api/products")).send().await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    wait_versions(&lab, "the restart to keep 2.4.0", &["2.4.0", "2.4.0"]).await;
    wait_latency(
        &lab,
        "the defect to survive a restart",
        true,
        baseline + Duration::from_millis(200),
    )
    .await;

    // Rolling back replaces the processes with the previous version, and
    // the defect, aimed at 2.4.0, selects nobody.
    let done = ok(&lab.cli(&["ops", "rollback", "catalog"]));
    assert!(
        done.contains("rolling back catalog") && done.contains("2.4.0 → 0.1.0"),
        "{done}"
    );
    wait_versions(&lab, "catalog to roll back", &["0.1.0", "0.1.0"]).await;
    wait_latency(
        &lab,
        "the incident to end",
        false,
        Duration::from_millis(100),
    )
    .await;
    let again = ok(&lab.cli(&["ops", "rollback", "catalog"]));
    assert!(
        again.contains("no deploy of catalog to roll back"),
        "{again}"
    );
    let ops: Value = lab
        .learner_get_json(format!("{}/v1/ops", lab.endpoints.controller))
        .await;
    let rollbacks: Vec<&Value> = ops["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["op"] == "rollback")
        .collect();
    assert!(
        rollbacks.len() == 2 && rollbacks.iter().all(|o| o["actor"] == "alice"),
        "{ops}"
    );

    // A canary by hand: one instance gets 2.4.0, and a fault aimed at that
    // version reaches it and not its sibling.
    ok(&lab.cli(&["scenario", "stop"]));
    let out = ok(&lab.cli(&["deploy", "roll", "catalog", "2.4.0", "--instances", "1"]));
    assert!(out.contains("catalog-1 0.1.0 → 2.4.0"), "{out}");
    wait_versions(&lab, "the canary", &["2.4.0", "0.1.0"]).await;
    ok(&lab.cli(&[
        "fault",
        "inject",
        "errors",
        "--target",
        "catalog@2.4.0",
        "code=500",
        "--duration",
        "5m",
    ]));
    lab.eventually(
        "errors on the canary only",
        Duration::from_secs(10),
        || async {
            let canary = instance_status(&lab, "catalog-1").await?;
            let sibling = instance_status(&lab, "catalog-2").await?;
            (canary == 500 && sibling == 200).then_some(())
        },
    )
    .await;
    let history = ok(&lab.cli(&["deploy", "list"]));
    assert!(history.contains("\"change\": \"rollback\""), "{history}");
    ok(&lab.cli(&["ops", "rollback", "catalog"]));
    wait_versions(&lab, "the canary to roll back", &["0.1.0", "0.1.0"]).await;
    lab.eventually(
        "the canary's errors to end",
        Duration::from_secs(10),
        || async { (instance_status(&lab, "catalog-1").await? == 200).then_some(()) },
    )
    .await;
}

/// Requests `instance` has answered on `route`, from its own `/metrics`.
async fn served(lab: &Lab, instance: &str, route: &str) -> f64 {
    let component = lab.component(instance);
    let route = format!("http_route=\"{route}\"");
    lab.get_text(&component.metrics)
        .await
        .lines()
        .filter(|l| {
            l.starts_with("http_server_request_duration_seconds_count{") && l.contains(&route)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Puts one item in the cart and checks out; returns the checkout's status.
async fn checkout(lab: &Lab, token: &str, product: u32) -> u16 {
    let added = lab
        .http
        .post(lab.url("/api/cart/items"))
        .bearer_auth(token)
        .json(&json!({"product_id": 1 + product % 200, "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200, "{}", added.text().await.unwrap());
    let r = lab
        .http
        .post(lab.url("/api/checkout"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_instance_stops_getting_traffic_and_undrain_brings_it_back() {
    let lab = Lab::start(&["--load-rate", "0"]).await;
    let token = lab.login(21).await;
    let mut n = 0;
    lab.eventually(
        "both payment instances to take payments",
        Duration::from_secs(30),
        || {
            n += 1;
            let (lab, token) = (&lab, &token);
            async move {
                assert_eq!(checkout(lab, token, n).await, 201);
                (served(lab, "payment-1", "/payments").await > 0.0
                    && served(lab, "payment-2", "/payments").await > 0.0)
                    .then_some(())
            }
        },
    )
    .await;

    let done = ok(&lab.cli(&["ops", "drain", "payment-2"]));
    assert!(done.contains("drained payment-2"), "{done}");
    // Once checkout has heard (its next poll), payment-2 gets nothing.
    let mut n = 100;
    lab.eventually(
        "payment-2 to leave the rotation",
        Duration::from_secs(10),
        || {
            n += 5;
            let (lab, token) = (&lab, &token);
            async move {
                let before = served(lab, "payment-2", "/payments").await;
                for i in 0..5 {
                    assert_eq!(checkout(lab, token, n + i).await, 201);
                }
                (served(lab, "payment-2", "/payments").await == before).then_some(())
            }
        },
    )
    .await;
    let (one, two) = (
        served(&lab, "payment-1", "/payments").await,
        served(&lab, "payment-2", "/payments").await,
    );
    for i in 0..10 {
        assert_eq!(checkout(&lab, &token, 200 + i).await, 201);
    }
    assert_eq!(served(&lab, "payment-2", "/payments").await, two);
    assert!(served(&lab, "payment-1", "/payments").await >= one + 10.0);
    // Out of rotation is not down: payment-2 stays up and healthy.
    let health = lab.component("payment-2").health.clone();
    assert_eq!(lab.http.get(&health).send().await.unwrap().status(), 200);

    let done = ok(&lab.cli(&["ops", "undrain", "payment-2"]));
    assert!(done.contains("back in rotation"), "{done}");
    let mut n = 300;
    lab.eventually(
        "payment-2 to take payments again",
        Duration::from_secs(10),
        || {
            n += 1;
            let (lab, token) = (&lab, &token);
            async move {
                assert_eq!(checkout(lab, token, n).await, 201);
                (served(lab, "payment-2", "/payments").await > two).then_some(())
            }
        },
    )
    .await;
    let log = ok(&lab.cli(&["ops", "list"]));
    assert!(
        log.contains("drain") && log.contains("undrain") && log.contains("payment-2"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_push_times_out_a_link_until_it_is_rolled_back() {
    let lab = Lab::start(&["--load-rate", "0"]).await;
    let token = lab.login(22).await;
    assert_eq!(checkout(&lab, &token, 1).await, 201);

    ok(&lab.cli(&[
        "fault",
        "inject",
        "config-push",
        "--target",
        "checkout",
        "timeouts.payment=1ms",
        "--duration",
        "10m",
    ]));
    let mut n = 10;
    let status = lab
        .eventually(
            "checkouts to fail on the payment timeout",
            Duration::from_secs(10),
            || {
                n += 1;
                let (lab, token) = (&lab, &token);
                async move {
                    let status = checkout(lab, token, n).await;
                    (status >= 500).then_some(status)
                }
            },
        )
        .await;
    assert!(status >= 500, "{status}");
    // The effect is visible where a learner looks: a versioned reload in
    // checkout's log and metrics, and timeouts on its payment calls.
    assert!(
        lab.component_log("checkout-1")
            .contains("config reloaded v1"),
        "{}",
        lab.component_log("checkout-1")
    );
    let checkout_metrics = lab.component("checkout-1").metrics.clone();
    let text = lab.get_text(&checkout_metrics).await;
    assert!(
        text.contains("firedrill_config_info{service_name=\"checkout\",config_version=\"1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("server_address=\"payment\",error_type=\"timeout\""),
        "{text}"
    );

    let done = ok(&lab.cli(&["ops", "rollback", "checkout"]));
    assert!(
        done.contains(
            "rolled back the config change timeouts.payment=1ms; checkout config is now v2"
        ),
        "{done}"
    );
    let mut n = 100;
    lab.eventually(
        "checkouts to succeed after the rollback",
        Duration::from_secs(10),
        || {
            n += 1;
            let (lab, token) = (&lab, &token);
            async move { (checkout(lab, token, n).await == 201).then_some(()) }
        },
    )
    .await;
    assert!(
        lab.component_log("checkout-1")
            .contains("config reloaded v2")
    );
    let listed = ok(&lab.cli(&["fault", "list"]));
    assert!(
        !listed.contains("config-push"),
        "the rollback ended the push: {listed}"
    );
}
