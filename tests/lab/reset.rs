//! A lab reset on a real lab: everything an instructor and a learner
//! changed (a deploy, config, a drain, a rate limit, a scale, a fault, a
//! scenario, crash backoffs) is undone and the lab settles back to how it
//! started; an op's restart is not a crash; and the run directory keeps
//! the answer (the controller's state and log) out of learners' sight.

use std::os::unix::fs::PermissionsExt as _;
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

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

async fn instructor_get(lab: &Lab, path: &str) -> Value {
    lab.http
        .get(format!("{}{path}", lab.endpoints.controller))
        .bearer_auth(lab.instructor_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_undoes_every_change_and_the_answer_stays_private() {
    let lab = Lab::start(&["--load-rate", "2", "--instances", "catalog=2,payment=2"]).await;
    let run = lab.run_dir.clone();

    // Issue 13, item 4: the controller's state and log are the
    // instructor's, in a directory only its owner may enter.
    let instructor = run.join("instructor");
    assert_eq!(mode(&instructor), 0o700);
    assert_eq!(mode(&instructor.join("instructor-token")), 0o600);
    assert_eq!(mode(&run.join("learner-token")), 0o600);
    assert!(!run.join("logs/controller.log").exists());
    assert!(!run.join("controller").exists());

    // Change everything a learner and an instructor can change.
    ok(&lab.cli(&["deploy", "roll", "catalog", "2.4.0", "--instances", "1"]));
    ok(&lab.cli(&["ops", "config-set", "payment", "retries.budget=0.1"]));
    ok(&lab.cli(&["ops", "drain", "payment-2"]));
    ok(&lab.cli(&["ops", "rate-limit", "gateway", "/api/products", "50"]));
    ok(&lab.cli(&["ops", "scale", "cart", "replicas=2"]));
    ok(&lab.cli(&[
        "fault",
        "inject",
        "latency",
        "--target",
        "search",
        "latency=100ms",
        "--duration",
        "10m",
    ]));
    ok(&lab.cli(&["scenario", "start", "gray-failure-payment-2"]));
    assert!(std::fs::metadata(instructor.join("controller/controller-state.json")).is_ok());
    assert_eq!(
        mode(&instructor.join("controller/controller-state.json")),
        0o600
    );

    // An op's restart is not a crash: no backoff, no restart counted.
    let search = lab.pid("search-1");
    ok(&lab.cli(&["ops", "restart", "search-1"]));
    lab.eventually("search-1 to come back", Duration::from_secs(10), || async {
        let pid = std::fs::read_to_string(run.join("pids/search-1.pid")).ok()?;
        (pid.trim().parse::<u32>().ok()? != search).then_some(())
    })
    .await;
    // A real crash is counted.
    let shipping = lab.pid("shipping-1");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &shipping.to_string()])
            .status()
            .unwrap()
            .success()
    );
    lab.eventually(
        "shipping-1 to be restarted",
        Duration::from_secs(10),
        || async { lab.up_log().contains("component=shipping-1").then_some(()) },
    )
    .await;
    let log = lab.up_log();
    assert!(
        log.lines()
            .any(|l| l.contains("search-1") && l.contains("restarted by an op")),
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("search-1") && l.contains("restarting after backoff")),
        "an op's restart was taken for a crash:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("shipping-1") && l.contains("restarting after backoff")),
        "{log}"
    );
    // Wait for the scale-out and the canary, so the reset has them to undo.
    lab.eventually(
        "cart-2 and catalog-1@2.4.0",
        Duration::from_secs(30),
        || async {
            let cart2 = run.join("pids/cart-2.pid").exists();
            let catalog1: Value = lab
                .http
                .get(lab.component("catalog-1").health.clone())
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (cart2 && catalog1["version"] == "2.4.0").then_some(())
        },
    )
    .await;

    // The learner-facing logs name no scenario and no fault kind.
    for file in files_under(&run.join("logs")) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for secret in [
            "gray-failure-payment-2",
            "kind=latency",
            "scenario started",
            "fault injected",
        ] {
            assert!(
                !text.contains(secret),
                "{} names {secret:?}",
                file.display()
            );
        }
    }
    let controller_log = std::fs::read_to_string(instructor.join("controller.log")).unwrap();
    assert!(
        controller_log.contains("scenario started"),
        "{controller_log}"
    );

    // The reset.
    let out = ok(&lab.cli(&["lab", "reset"]));
    for undone in [
        "stopped scenario gray-failure-payment-2",
        "cleared 1 injected fault(s)",
        "rolled back catalog",
        "payment config",
        "gateway config",
        "payment-2 back in rotation",
        "cart back from 2 to its planned 1 instance(s)",
        "the lab is back to its starting state",
    ] {
        assert!(out.contains(undone), "{undone:?} missing from:\n{out}");
    }
    // Back as started: nothing in force, planned instances at the build's
    // version, no scaled instance left.
    assert_eq!(
        instructor_get(&lab, "/v1/faults").await["faults"],
        serde_json::json!([])
    );
    assert_eq!(
        instructor_get(&lab, "/v1/scenario").await["scenario"],
        Value::Null
    );
    assert!(!run.join("pids/cart-2.pid").exists());
    let catalog1: Value = lab
        .http
        .get(lab.component("catalog-1").health.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(catalog1["version"], "0.1.0");
    let log = lab.up_log();
    assert!(
        log.contains("lab reset: restart counts and backoffs cleared"),
        "{log}"
    );
    // A second reset has nothing to undo.
    let again = ok(&lab.cli(&["lab", "reset"]));
    assert!(again.contains("nothing to undo"), "{again}");
}
