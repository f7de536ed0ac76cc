//! Exercises end to end, through the CLI as a learner would take them, on a
//! real lab: a beginner, an intermediate and an advanced scenario, graded
//! by the rubric; a resolve before recovery does not end one; the reports
//! parse and show the SLI with every event marked; a controller killed
//! mid-exercise comes back with the exercise, its clock and its actions.

use std::time::Duration;

use crate::support::Lab;
use serde_json::Value;

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

/// The exercise as the learner sees it.
async fn status(lab: &Lab) -> Value {
    lab.learner_get_json(format!("{}/v1/exercise", lab.endpoints.controller))
        .await
}

async fn wait_phase(lab: &Lab, phase: &str, within: Duration) -> Value {
    lab.eventually(&format!("the exercise to be {phase}"), within, || async {
        let s = status(lab).await;
        (s["phase"] == phase).then_some(s)
    })
    .await
}

fn start(lab: &Lab, scenario: &str) -> String {
    let out = ok(&lab.cli(&[
        "exercise",
        "start",
        scenario,
        "--warmup",
        "0s",
        "--page-after",
        "5s",
        "--time-limit",
        "10m",
        "--seed",
        "7",
    ]));
    out.split_whitespace().nth(1).unwrap().to_string()
}

/// Resolves, as a learner watching the SLIs would, every few seconds until
/// the exercise has ended (a resolve before recovery changes nothing).
async fn resolve_until_ended(lab: &Lab) {
    for _ in 0..20 {
        if status(lab).await["phase"] == "ended" {
            return;
        }
        let _ = lab.cli(&["resolve"]);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    panic!(
        "the exercise did not end within 100 s of resolving: {}",
        status(lab).await
    );
}

/// The report of exercise `id` in `format`, as the learner reads it.
async fn report(lab: &Lab, id: &str, format: &str) -> String {
    lab.http
        .get(format!(
            "{}/v1/exercises/{id}/report?format={format}",
            lab.endpoints.controller
        ))
        .bearer_auth(lab.learner_token())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// What the shipped rubric says, read the way the controller reads it.
fn rubric() -> toml::Value {
    toml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/controller/rubric.toml"
        ))
        .unwrap(),
    )
    .unwrap()
}

/// Takes exercise `scenario` the right way: ack, a status update, the
/// diagnosis, the accepted op, resolve; `extra` runs after the ack. Returns
/// the JSON report.
async fn take(
    lab: &Lab,
    scenario: &str,
    diagnose: &[&str],
    fix: &[&str],
    extra: &[&[&str]],
) -> (String, Value) {
    let id = start(lab, scenario);
    let paged = wait_phase(lab, "paged", Duration::from_secs(30)).await;
    let text = paged.to_string();
    assert!(
        !text.contains(scenario),
        "the learner's view names the scenario: {text}"
    );
    assert!(
        paged["page"].as_str().is_some_and(|p| !p.is_empty()),
        "{paged}"
    );
    ok(&lab.cli(&["ack"]));
    for args in extra {
        ok(&lab.cli(args));
    }
    ok(&lab.cli(&[
        "status",
        "investigating the page; next update in 10 minutes",
    ]));
    let mut args = vec!["diagnose"];
    args.extend_from_slice(diagnose);
    ok(&lab.cli(&args));
    let mut args = vec!["ops"];
    args.extend_from_slice(fix);
    ok(&lab.cli(&args));
    ok(&lab.cli(&["status", "mitigated; watching the SLIs"]));
    resolve_until_ended(lab).await;
    let json: Value = serde_json::from_str(&report(lab, &id, "json").await).unwrap();
    assert_eq!(json["exercise"]["ended"]["why"], "resolved", "{json}");
    (id, json)
}

/// A number of the rubric, integer or not.
fn num(v: &toml::Value) -> f64 {
    v.as_float()
        .or(v.as_integer().map(|i| i as f64))
        .unwrap_or_else(|| panic!("{v} is not a number"))
}

fn part<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["scorecard"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["scorecard"]["penalties"].as_array().unwrap())
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no part {name} in {}", report["scorecard"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_exercises_through_the_cli_are_graded_by_the_rubric() {
    let lab = Lab::start(&["--load-rate", "20", "--prometheus", "off"]).await;
    let rubric = rubric();

    // Beginner, and a resolve before recovery changes nothing.
    let id = start(&lab, "slow-catalog");
    wait_phase(&lab, "paged", Duration::from_secs(30)).await;
    let early = ok(&lab.cli(&["resolve"]));
    assert!(early.contains("have not recovered"), "{early}");
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        status(&lab).await["phase"],
        "paged",
        "a resolve before recovery ended it"
    );
    ok(&lab.cli(&["ack"]));
    ok(&lab.cli(&["status", "catalog latency is 6x; looking"]));
    ok(&lab.cli(&[
        "diagnose",
        "--service",
        "catalog",
        "--category",
        "bad-deploy",
        "--chain",
        "catalog,gateway",
        "--summary",
        "catalog 2.3.1 adds 300 ms per request",
    ]));
    ok(&lab.cli(&["ops", "rollback", "catalog"]));
    resolve_until_ended(&lab).await;
    let first: Value = serde_json::from_str(&report(&lab, &id, "json").await).unwrap();
    let total = first["scorecard"]["total"].as_f64().unwrap();
    assert!(
        total >= 70.0,
        "a correct path scores high: {}",
        first["scorecard"]
    );
    assert_eq!(
        part(&first, "localize")["points"].as_f64(),
        Some(num(&rubric["localize"]["points"]))
    );
    assert_eq!(
        part(&first, "category")["points"].as_f64(),
        Some(num(&rubric["category"]["points"]))
    );
    assert!(
        first["scorecard"]["wrongOps"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        first["scorecard"]["times"]["mitigatedMs"]
            .as_i64()
            .is_some()
    );
    // The parts are the rubric's, each within its maximum.
    for name in [
        "acknowledge",
        "detect",
        "localize",
        "category",
        "mitigate",
        "budget",
        "communicate",
    ] {
        let p = part(&first, name);
        assert_eq!(
            p["max"].as_f64().unwrap(),
            num(&rubric[name]["points"]),
            "{name}"
        );
        assert!(
            p["points"].as_f64().unwrap() <= p["max"].as_f64().unwrap(),
            "{name}"
        );
    }

    // The HTML report: well-formed, with the SLI series and the markers.
    let html = report(&lab, &id, "html").await;
    let start_at = html.find("<html").expect("an html element");
    let doc = roxmltree::Document::parse(&html[start_at..]).expect("the report parses");
    let svg = doc
        .descendants()
        .find(|n| n.has_tag_name("svg"))
        .expect("an SVG plot");
    let class_of = |n: &roxmltree::Node<'_, '_>| n.attribute("class").unwrap_or("").to_string();
    let series: Vec<String> = svg
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| {
            n.attribute("points")
                .is_some_and(|p| p.split(' ').count() >= 3)
        })
        .map(|n| class_of(&n))
        .collect();
    assert!(
        series.iter().any(|c| c.contains("error-ratio")),
        "{series:?}"
    );
    assert!(series.iter().any(|c| c.contains("p95")), "{series:?}");
    let markers: Vec<String> = svg
        .descendants()
        .filter(|n| n.has_tag_name("g") && class_of(n).starts_with("marker"))
        .map(|n| class_of(&n))
        .collect();
    for kind in ["fault", "page", "op", "recovered", "learner"] {
        assert!(
            markers.iter().any(|m| m.ends_with(kind)),
            "no {kind} marker: {markers:?}"
        );
    }
    let text: String = doc.descendants().filter_map(|n| n.text()).collect();
    for section in [
        "Detect",
        "Evaluate",
        "Troubleshoot",
        "Execute",
        "Communicate",
        "Track",
    ] {
        assert!(
            text.contains(section),
            "the postmortem draft has no {section}"
        );
    }

    // Intermediate, with a hint and a wrong op: each costs exactly what
    // the rubric says.
    let (_, second) = take(
        &lab,
        "cert-expiry-provider",
        &[
            "--service",
            "payment",
            "--category",
            "time",
            "--chain",
            "payment->payment-provider,payment,checkout,gateway",
            "--summary",
            "payment's client certificate to the processor has expired",
        ],
        &["flag-set", "payment", "renewed-cert=1"],
        &[&["hint"], &["ops", "restart", "payment"]],
    )
    .await;
    let hint_cost = num(&rubric["penalties"]["hints"][0]);
    let wrong_cost = num(&rubric["penalties"]["wrong_op"]);
    assert_eq!(
        part(&second, "hints")["points"].as_f64().unwrap(),
        -hint_cost
    );
    assert_eq!(
        part(&second, "wrong ops")["points"].as_f64().unwrap(),
        -wrong_cost
    );
    let wrong = &second["scorecard"]["wrongOps"][0];
    assert_eq!(wrong["op"], "restart payment", "{second}");

    // Advanced: one instance, named exactly.
    let (_, third) = take(
        &lab,
        "gray-failure-payment-2",
        &[
            "--service",
            "payment",
            "--instance",
            "payment-2",
            "--category",
            "resource-exhaustion",
            "--chain",
            "payment-2,checkout,gateway",
            "--summary",
            "payment-2 stalls 1.5 s on every payment while /health stays green",
        ],
        &["drain", "payment-2"],
        &[],
    )
    .await;
    assert_eq!(
        part(&third, "localize")["points"].as_f64(),
        Some(num(&rubric["localize"]["points"]))
    );

    // A cohort's table, from this run's reports.
    let compared = lab.cli(&["exercise", "compare", lab.run_dir.to_str().unwrap()]);
    let table = ok(&compared);
    assert_eq!(
        table.lines().count(),
        4,
        "a header and three rows:\n{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_comes_back_with_the_exercise() {
    let lab = Lab::start(&["--load-rate", "10", "--prometheus", "off"]).await;
    let _ = start(&lab, "slow-catalog");
    wait_phase(&lab, "paged", Duration::from_secs(30)).await;
    ok(&lab.cli(&["ack"]));
    ok(&lab.cli(&["hint"]));
    let before = status(&lab).await;
    let controller = lab.pid("controller");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &controller.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let after = lab
        .eventually(
            "the controller to come back",
            Duration::from_secs(30),
            || async {
                let r = lab
                    .http
                    .get(format!("{}/v1/exercise", lab.endpoints.controller))
                    .bearer_auth(lab.learner_token())
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())?;
                r.json::<Value>().await.ok()
            },
        )
        .await;
    assert_ne!(lab.pid("controller"), controller);
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["phase"], "paged");
    assert_eq!(after["pagedAtMs"], before["pagedAtMs"]);
    assert_eq!(after["hints"], before["hints"]);
    assert_eq!(after["actions"], before["actions"]);
    assert!(after["elapsedMs"].as_i64() >= before["elapsedMs"].as_i64());
    // The clock goes on and the timeline grows: it can still be finished.
    ok(&lab.cli(&["ops", "rollback", "catalog"]));
    resolve_until_ended(&lab).await;
}

/// With Prometheus, the page goes out when a real alert rule fires on the
/// lab's telemetry (here ErrorBudgetBurnFast, 2 minutes into a latency
/// incident), and the timeline names the alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alert_sends_the_page() {
    let lab = Lab::start(&["--load-rate", "20", "--prometheus-interval", "1s"]).await;
    assert!(
        lab.endpoints.prometheus.is_some(),
        "this test needs Prometheus (scripts/deps installs it)"
    );
    let out = ok(&lab.cli(&[
        "exercise",
        "start",
        "slow-catalog",
        "--warmup",
        "0s",
        "--time-limit",
        "15m",
    ]));
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    wait_phase(&lab, "paged", Duration::from_secs(300)).await;
    let report: Value = lab
        .http
        .get(format!(
            "{}/v1/exercises/{id}/report",
            lab.endpoints.controller
        ))
        .bearer_auth(lab.instructor_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let timeline = report["timeline"].as_array().unwrap();
    let page = timeline
        .iter()
        .find(|e| e["event"] == "page")
        .unwrap_or_else(|| panic!("no page in {timeline:?}"));
    let by = page["by"].as_str().unwrap();
    assert_ne!(
        by, "timer",
        "the page was not sent by an alert: {timeline:?}"
    );
    assert!(
        timeline
            .iter()
            .any(|e| e["event"] == "alert" && e["name"] == by && e["severity"] == "page"),
        "{timeline:?}"
    );
    ok(&lab.cli(&["exercise", "stop"]));
}
