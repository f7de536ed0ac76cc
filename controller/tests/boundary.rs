//! The learner-token boundary, over the whole shipped catalogue: for each
//! scenario, an exercise runs and every operation `/openapi.json` describes
//! is called with a learner's token; no answer names the scenario, its
//! truth, a fault kind it injects, its debrief or a hint not yet taken.

use std::time::Duration;

use firedrill_controller::{Controller, ControllerArgs};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const INSTRUCTOR: &str = "instructor-token";
const LEARNER: &str = "learner-token-1";

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The text of every answer a learner's token gets from every operation.
async fn everything_a_learner_reads(
    base: &str,
    doc: &Value,
    exercise: &str,
) -> Vec<(String, String)> {
    let mut answers = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let url = format!(
                "{base}{}",
                path.replace("{id}", exercise).replace("{name}", "x")
            );
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Bodies a learner could send: the shapes that pass parsing, so
            // the answers come from the handlers, not the parser.
            let bodies: Vec<Value> = match path.as_str() {
                "/v1/exercise/actions" => vec![
                    json!({"action": "ack"}),
                    json!({"action": "status", "text": "looking"}),
                ],
                "/v1/ops" => vec![json!({"op": "no-action"})],
                _ => vec![json!({})],
            };
            for body in bodies {
                let r = http()
                    .request(method.clone(), &url)
                    .bearer_auth(LEARNER)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                answers.push((format!("{method} {path} {status}"), text));
            }
            if path.ends_with("/report") {
                for format in ["md", "html"] {
                    let text = http()
                        .get(format!("{url}?format={format}"))
                        .bearer_auth(LEARNER)
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    answers.push((format!("GET {path}?format={format}"), text));
                }
            }
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_learner_answer_tells_the_truth_of_any_catalogue_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let controller = Controller::open(ControllerArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        instructor_token: INSTRUCTOR.into(),
        agent_token: "agent-token-1".into(),
        learner_token: Some(LEARNER.into()),
        learner_name: "lee".into(),
        alerts: false,
        alerts_token: None,
        query_url: None,
        lease: Duration::from_secs(5),
        state_dir: dir.path().join("state"),
        scenarios: None,
        run_dir: Some(run),
        peers: String::new(),
    })
    .unwrap();
    let catalogue = firedrill_controller::scenarios::Catalogue::shipped();
    assert!(catalogue.scenarios.len() >= 30);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let server = tokio::spawn(firedrill_controller::run(
        controller,
        listener,
        stop.clone(),
    ));
    let doc: Value = http()
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    for scenario in &catalogue.scenarios {
        let id = scenario.id();
        let started: Value = http()
            .post(format!("{base}/v1/exercises"))
            .bearer_auth(INSTRUCTOR)
            .json(&json!({"scenario": id, "warmup": "0s", "pageAfter": "0s", "seed": 1}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let exercise = started["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: {started}"))
            .to_string();
        // The page goes out at the exercise clock's next tick.
        let mut paged = false;
        for _ in 0..50 {
            let s: Value = http()
                .get(format!("{base}/v1/exercise"))
                .bearer_auth(LEARNER)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if s["phase"] == "paged" {
                paged = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(paged, "{id}: no page");
        // One hint taken: that one may be read, the others never.
        let hint = http()
            .post(format!("{base}/v1/exercise/actions"))
            .bearer_auth(LEARNER)
            .json(&json!({"action": "hint"}))
            .send()
            .await
            .unwrap();
        assert_eq!(hint.status().as_u16(), 201, "{id}");

        let truth = scenario.truth.get_ref();
        let kinds: Vec<String> = scenario
            .steps
            .iter()
            .filter_map(|s| s.get_ref().fault().ok())
            .map(|f| f.kind.name().to_string())
            .filter(|k| k.contains('-'))
            .collect();
        let mut secrets: Vec<(String, String)> = vec![("scenario id".into(), id.to_string())];
        if truth.root != "none" {
            secrets.push(("truth root".into(), format!("\"{}\"", truth.root)));
        }
        for kind in &kinds {
            secrets.push(("fault kind".into(), kind.clone()));
        }
        for (n, hint) in scenario.hints.get_ref().iter().enumerate().skip(1) {
            secrets.push((format!("hint {}", n + 1), hint.chars().take(60).collect()));
        }
        for line in scenario
            .debrief
            .lines()
            .map(str::trim)
            .filter(|l| l.len() >= 50)
        {
            secrets.push(("debrief".into(), line.to_string()));
        }
        for (what, answer) in everything_a_learner_reads(&base, &doc, &exercise).await {
            for (name, secret) in &secrets {
                // The document describes the API (fault kinds and services
                // are in its schemas); it is the same for every lab.
                if what.contains("/openapi.json") && (name == "fault kind" || name == "truth root")
                {
                    continue;
                }
                assert!(
                    !answer.contains(secret.as_str()),
                    "{id}: {what} gives away the {name} ({secret:?}):\n{}",
                    answer.chars().take(600).collect::<String>()
                );
            }
        }
        let stopped = http()
            .delete(format!("{base}/v1/exercise"))
            .bearer_auth(INSTRUCTOR)
            .send()
            .await
            .unwrap();
        assert_eq!(stopped.status().as_u16(), 200, "{id}");
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}
