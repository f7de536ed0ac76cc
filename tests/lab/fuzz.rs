//! The controller API fuzzed from its own description: Schemathesis reads
//! `/openapi.json` and sends generated requests, valid and invalid, to a
//! real `firedrill controller` process. Any 5xx, any status, content type or
//! body the document does not describe, any request the document calls
//! invalid that the controller accepts, and any protected route that
//! answers without its token fails the test, as does the controller dying.
//!
//! Not checked: Schemathesis's `positive_data_acceptance`, which expects
//! every schema-valid request to succeed. The document describes shapes;
//! the handlers check meaning (a duration within 24 h, a target that fits
//! the op, a version that differs from the running one) and answer 400 with
//! a message, which that check would count as a failure.
//!
//! Schemathesis comes from `scripts/deps/schemathesis` (run by
//! `scripts/test`), which sets `FIREDRILL_SCHEMATHESIS`.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "fuzz-instructor-token";
/// Fixed, so a failure reproduces with the same command.
const SEED: &str = "20251123";
/// Test cases per operation and phase: about 500 requests, ~15 s on 2 cores.
const MAX_EXAMPLES: &str = "25";

/// A `firedrill controller` process on a free port, killed on drop.
struct ControllerProcess {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl ControllerProcess {
    /// Starts a controller with its own state directory; `with_run_dir`
    /// gives it an empty run directory (as under `firedrill up`, with no
    /// process to act on). The agent token equals the instructor token so
    /// the fuzzer, which sends one token, reaches the agent route too.
    fn start(with_run_dir: bool) -> ControllerProcess {
        let dir = tempfile::tempdir().unwrap();
        let mut command = crate::support::firedrill();
        command
            .args(["controller", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path().join("state"))
            .args(["--scenarios", "scenarios"])
            .env("FIREDRILL_INSTRUCTOR_TOKEN", TOKEN)
            .env("FIREDRILL_AGENT_TOKEN", TOKEN)
            .env("NO_COLOR", "1")
            .env_remove("FIREDRILL_RUN_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if with_run_dir {
            let run = dir.path().join("run");
            std::fs::create_dir_all(&run).unwrap();
            command.arg("--run-dir").arg(run);
        }
        let mut child = command.spawn().expect("start firedrill controller");
        // The readiness signal is the "listening" log line with the port the
        // kernel picked; the rest of the log is kept for failure messages.
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("controller listening")
                    && let Some(address) = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("address="))
                {
                    let _ = tx.send(address.to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the controller did not start listening:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        ControllerProcess {
            child,
            url: format!("http://{address}"),
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn schemathesis() -> String {
    std::env::var("FIREDRILL_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!(
            "FIREDRILL_SCHEMATHESIS is not set: run scripts/test, which installs Schemathesis \
             (scripts/deps/schemathesis) and points this variable at its `st` command"
        )
    })
}

/// Runs `command` to completion, killing it after `limit`.
fn run_bounded(mut command: Command, limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("st.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = command
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start schemathesis");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(status) => (status.success(), output),
        None => (false, format!("killed after {limit:?}\n{output}")),
    }
}

#[test]
fn the_controller_api_survives_schemathesis() {
    let st = schemathesis();
    let mut controller = ControllerProcess::start(true);
    let mut command = Command::new(&st);
    command
        .arg("run")
        .arg(format!("{}/openapi.json", controller.url))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", "all"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .arg("--no-color");
    let (ok, output) = run_bounded(command, Duration::from_secs(240));
    let alive = controller.child.try_wait().unwrap().is_none();
    let log = controller.log();
    assert!(
        ok && alive && !log.contains("panicked"),
        "schemathesis found problems (controller alive: {alive}); reproduce with\n  \
         {st} run {}/openapi.json --header 'Authorization: Bearer {TOKEN}' --checks all \
         --exclude-checks positive_data_acceptance --max-examples {MAX_EXAMPLES} --seed {SEED} --workers 1\n\
         {output}\ncontroller log:\n{log}",
        controller.url
    );
    assert!(
        output.contains("API Operations") && output.contains("Tested: 29"),
        "schemathesis did not test every operation:\n{output}"
    );
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = http
        .post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_answer_honestly_without_process_control() {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // Not under `firedrill up`: nothing to roll, and the answers say so.
    let bare = ControllerProcess::start(false);
    let (status, body) = post(
        &http,
        format!("{}/v1/deploys", bare.url),
        json!({"target": "catalog", "version": "2.4.0"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no process control")
    );
    let (status, body) = post(
        &http,
        format!("{}/v1/scenarios/catalog-bad-deploy/start", bare.url),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    for (op, set, needle) in [
        ("rollback", json!({}), "no deploy of catalog to roll back"),
        ("scale", json!({"replicas": 3}), "not performed"),
    ] {
        let (status, body) = post(
            &http,
            format!("{}/v1/ops", bare.url),
            json!({"op": op, "target": "catalog", "actor": "eve", "set": set}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let result = body["result"].as_str().unwrap();
        assert!(
            result.contains(needle) && result.contains("no process control"),
            "{op}: {result}"
        );
    }
    let deploys: Value = http
        .get(format!("{}/v1/deploys", bare.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deploys["processControl"], false, "{deploys}");

    // With a run directory but no such process, and with bad input: 4xx
    // that say what is wrong.
    let lab = ControllerProcess::start(true);
    for (body, status, needle) in [
        (
            json!({"target": "catalog", "version": "2.4.0"}),
            404,
            "no instance of catalog runs",
        ),
        (
            json!({"target": "catalog", "version": "2.4 beta"}),
            400,
            "version",
        ),
        (
            json!({"target": "catalog", "version": "0.1.0"}),
            400,
            "runs already",
        ),
        (
            json!({"target": "catalog->db", "version": "2.4.0"}),
            400,
            "service or one instance",
        ),
        (
            json!({"target": "catalog-2", "version": "2.4.0", "instances": 1}),
            400,
            "one instance already",
        ),
        (
            json!({"target": "catalog", "version": "2.4.0", "colour": 1}),
            400,
            "unknown field",
        ),
    ] {
        let (got, answer) = post(&http, format!("{}/v1/deploys", lab.url), body.clone()).await;
        assert_eq!(got, status, "{body} -> {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body} -> {answer}"
        );
    }
    let (status, body) = post(
        &http,
        format!("{}/v1/ops", lab.url),
        json!({"op": "rollback", "target": "catalog-2", "actor": "eve"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // No pid files yet: nothing to restart is a 404, not a 500.
    let (status, body) = post(
        &http,
        format!("{}/v1/ops", lab.url),
        json!({"op": "restart", "target": "catalog@2.4.0", "actor": "eve"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no running process matches catalog@2.4.0"),
        "{body}"
    );
    assert!(Path::new("scenarios/catalog-bad-deploy.toml").exists());
}
