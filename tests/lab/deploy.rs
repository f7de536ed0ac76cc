//! The deployment assets, checked offline with the real tools:
//! promtool (config, rules, rule unit tests), docker-compose (compose
//! file), kubectl kustomize + kubernetes-validate (Kubernetes), Grafana's
//! own schema (dashboards), and the generator that writes the repetitive
//! files (nothing generated is stale).
//!
//! The tools come from scripts/deps/deploy, which `scripts/test` runs; a
//! missing tool fails the test with a pointer there.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    crate::grafana::repo()
}

/// A tool from $`env` (set by scripts/deps/deploy) or PATH.
fn tool(env: &str, name: &str) -> String {
    if let Ok(path) = std::env::var(env) {
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()));
    assert!(
        on_path,
        "{name} not found (${env} unset, not on PATH): run scripts/test, whose scripts/deps/deploy installs it"
    );
    name.to_string()
}

fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    let output = command
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{shown}: {e} (run scripts/test to install the tools)"));
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn generated_files_are_up_to_date() {
    run(Command::new("python3").args(["deploy/generate.py", "--check"]));
}

#[test]
fn promtool_accepts_every_config_and_rule_file() {
    let promtool = tool("FIREDRILL_PROMTOOL", "promtool");
    for config in [
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/prometheus-dns.yml",
    ] {
        let out = run(Command::new(&promtool).args(["check", "config", config]));
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains("WARNING"), "{config}:\n{text}");
    }
    let rules: Vec<String> = std::fs::read_dir(repo().join("deploy/prometheus/rules"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(repo())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    run(Command::new(&promtool)
        .args(["check", "rules"])
        .args(&rules));
}

/// Every alert name in the rule files.
fn alert_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("deploy/prometheus/rules")).unwrap() {
        for line in crate::grafana::read(&entry.unwrap().path()).lines() {
            if let Some(name) = line.trim().strip_prefix("- alert: ") {
                names.insert(name.trim().to_string());
            }
        }
    }
    names
}

#[test]
fn rule_unit_tests_pass_and_cover_every_alert() {
    let promtool = tool("FIREDRILL_PROMTOOL", "promtool");
    let tests: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/prometheus/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    run(Command::new(&promtool).args(["test", "rules"]).args(&tests));

    // Each alert has a test case in which it is expected to fire.
    let mut fired = BTreeSet::new();
    for path in &tests {
        let text = crate::grafana::read(path);
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix("alertname: ") {
                current = Some(name.trim().to_string());
            } else if line.starts_with("exp_alerts:") && line != "exp_alerts: []" {
                fired.extend(current.take());
            }
        }
    }
    let untested: Vec<_> = alert_names().difference(&fired).cloned().collect();
    assert!(
        untested.is_empty(),
        "alerts without a firing unit test: {untested:?}"
    );
}

#[test]
fn every_alert_has_severity_summary_description_and_runbook() {
    let dir = repo().join("deploy/prometheus/rules");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = crate::grafana::read(&path);
        // An alert's block runs until the next rule.
        for block in text.split("      - ").filter(|b| b.starts_with("alert: ")) {
            let name = block.lines().next().unwrap();
            for needle in ["severity: ", "summary: ", "description: ", "runbook_url: "] {
                assert!(
                    block.contains(needle),
                    "{}: {name}: no {needle}",
                    path.display()
                );
            }
            let runbook = block
                .lines()
                .find_map(|l| l.trim().strip_prefix("runbook_url: "))
                .unwrap()
                .trim();
            assert!(
                repo().join(runbook).is_file(),
                "{name}: runbook {runbook} does not exist"
            );
        }
    }
}

#[test]
fn docker_compose_accepts_the_compose_file() {
    let compose = tool("FIREDRILL_DOCKER_COMPOSE", "docker-compose");
    // Without the tokens the file refuses to render, naming them.
    let refused = Command::new(&compose)
        .current_dir(repo())
        .args(["-f", "docker-compose.yml", "config"])
        .env_remove("FIREDRILL_INSTRUCTOR_TOKEN")
        .env_remove("FIREDRILL_AGENT_TOKEN")
        .output()
        .expect("run docker-compose");
    assert!(!refused.status.success(), "compose rendered without tokens");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("FIREDRILL_"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let out = run(Command::new(compose)
        .args(["-f", "docker-compose.yml", "config"])
        .env("FIREDRILL_INSTRUCTOR_TOKEN", "instructor-secret")
        .env("FIREDRILL_AGENT_TOKEN", "agent-secret"));
    let config = String::from_utf8_lossy(&out.stdout);
    // Every process of the lab is a service, and the tooling is there.
    for service in [
        "collector",
        "queue",
        "cache",
        "payment-provider",
        "auth-1",
        "auth-2",
        "catalog-1",
        "catalog-2",
        "inventory",
        "payment-1",
        "payment-2",
        "shipping",
        "cart",
        "checkout",
        "search",
        "notification",
        "projector",
        "gateway",
        "loadgen",
        "controller",
        "prometheus",
        "grafana",
        "jaeger",
        "loki",
    ] {
        assert!(
            config.contains(&format!("\n  {service}:\n")),
            "compose has no service {service}"
        );
    }
    // Every image is pinned to a version.
    for line in config
        .lines()
        .filter(|l| l.trim_start().starts_with("image: "))
    {
        let image = line.trim().trim_start_matches("image: ");
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(!tag.is_empty() && tag != "latest", "unpinned image {image}");
    }
    assert!(
        config.contains("--enable-feature=exemplar-storage"),
        "Prometheus without exemplars"
    );
    assert!(
        config.contains("grafana/grafana:13."),
        "Grafana is not 13.x"
    );
    assert!(
        config.contains("prom/prometheus:v3."),
        "Prometheus is not 3.x"
    );
}

#[test]
fn every_scrape_target_matches_a_compose_service_and_a_kubernetes_service() {
    let config = crate::grafana::read(&repo().join("deploy/prometheus/prometheus-dns.yml"));
    let compose = crate::grafana::read(&repo().join("docker-compose.yml"));
    let k8s = repo().join("deploy/k8s/base/lab");
    let mut targets = 0;
    for line in config.lines() {
        let Some(target) = line.trim().strip_prefix("- targets: [\"") else {
            continue;
        };
        let host = target.split(':').next().unwrap();
        if host == "localhost" {
            continue;
        }
        targets += 1;
        assert!(
            compose.contains(&format!("\n  {host}:\n")),
            "scrape target {host}: no compose service"
        );
        assert!(
            k8s.join(format!("{host}.yaml")).is_file(),
            "scrape target {host}: no Kubernetes manifest"
        );
    }
    assert_eq!(targets, 19, "collector, 17 service instances, loadgen");
}

fn kustomize(dir: &str) -> String {
    let kubectl = tool("FIREDRILL_KUBECTL", "kubectl");
    let out = run(Command::new(kubectl).args(["kustomize", dir]));
    String::from_utf8(out.stdout).unwrap()
}

fn validate_kubernetes(yaml: &str, name: &str) {
    let validator = tool("FIREDRILL_KUBERNETES_VALIDATE", "kubernetes-validate");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    run(Command::new(validator)
        .args(["--strict", "--quiet"])
        .arg(&file));
}

#[test]
fn the_kustomize_base_renders_and_validates() {
    let yaml = kustomize("deploy/k8s/base");
    validate_kubernetes(&yaml, "base");
    let count = |kind: &str| {
        yaml.matches(&format!("\nkind: {kind}\n")).count()
            + usize::from(yaml.starts_with(&format!("kind: {kind}\n")))
    };
    // 19 lab processes, the fault controller, Prometheus, Grafana.
    assert_eq!(count("Deployment"), 22, "{yaml}");
    assert_eq!(count("Service"), 22);
    // The controller and every agent read their tokens from the Secret the
    // instructor creates; no token is written into a manifest.
    assert!(
        yaml.contains("name: firedrill-tokens"),
        "no token Secret reference"
    );
    assert!(!yaml.contains("name: FIREDRILL_AGENT_TOKEN\n          value:"));
    for name in [
        "prometheus-config",
        "prometheus-rules",
        "grafana-datasources",
        "grafana-dashboard-providers",
        "grafana-dashboards",
    ] {
        assert!(
            yaml.contains(&format!("name: {name}-")),
            "no ConfigMap {name}"
        );
    }
    // Every container has probes and resource limits.
    let containers =
        yaml.matches("\n      - args:").count() + yaml.matches("\n      - env:").count();
    assert!(containers >= 22, "{containers} containers found");
    assert_eq!(yaml.matches("readinessProbe:").count(), 22);
    assert_eq!(yaml.matches("livenessProbe:").count(), 22);
    assert_eq!(yaml.matches("\n          limits:").count(), 22);
}

#[test]
fn every_learner_gets_an_isolated_namespace() {
    let yaml = kustomize("deploy/k8s/cohort");
    validate_kubernetes(&yaml, "cohort");
    let learners: Vec<String> = std::fs::read_dir(repo().join("deploy/k8s/cohort/learners"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(learners.len() >= 2, "{learners:?}");
    let documents: Vec<&str> = yaml.split("\n---\n").collect();
    for learner in &learners {
        let ns = format!("firedrill-{learner}");
        let line = format!("namespace: {ns}");
        let in_ns = documents
            .iter()
            .filter(|d| d.lines().any(|l| l.trim() == line))
            .count();
        // 21 Deployments + 21 Services + 5 ConfigMaps + PVC + NetworkPolicy + quota.
        assert!(in_ns >= 50, "{ns}: {in_ns} objects");
        assert!(yaml.contains(&format!("name: {ns}\n")), "no Namespace {ns}");
    }
    // Nothing lands outside a learner namespace, except the namespaces.
    for d in &documents {
        if !d.contains("kind: Namespace") {
            assert!(
                d.contains("namespace: firedrill-"),
                "object outside a learner namespace:\n{d}"
            );
        }
    }
    assert_eq!(yaml.matches("kind: NetworkPolicy").count(), learners.len());
}

#[test]
fn the_add_learner_script_adds_a_valid_isolated_lab() {
    let tmp = tempfile::tempdir().unwrap();
    // A copy of deploy/ (the script edits the cohort) and dashboards/.
    let copy = |from: &str| {
        run(Command::new("cp").args(["-r", from]).arg(tmp.path()));
    };
    copy("deploy");
    copy("dashboards");
    let script = tmp.path().join("deploy/k8s/cohort/add-learner");
    run(Command::new(&script).arg("carol"));
    let bad = Command::new(&script)
        .arg("Not_Valid")
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        !bad.status.success(),
        "add-learner accepted an invalid name"
    );
    let kubectl = tool("FIREDRILL_KUBECTL", "kubectl");
    let out = run(Command::new(kubectl)
        .arg("kustomize")
        .arg(tmp.path().join("deploy/k8s/cohort")));
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("namespace: firedrill-carol\n"));
}

#[test]
fn dashboards_pass_the_lint() {
    let problems = crate::grafana::lint(&crate::grafana::dashboards());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_lint_catches_deprecated_panels_unknown_datasources_and_duplicate_uids() {
    let mut dashboards = crate::grafana::dashboards();
    let mut copy = crate::grafana::Dashboard {
        file: "copy.json".into(),
        json: dashboards[0].json.clone(),
    };
    copy.json["panels"][1]["type"] = "graph".into();
    copy.json["panels"][2]["datasource"]["uid"] = "P1809F7CD0C75ACF3".into();
    copy.json["panels"][3]["fieldConfig"]["defaults"]["unit"] = "".into();
    dashboards.push(copy);
    let problems = crate::grafana::lint(&dashboards).join("\n");
    for needle in [
        "deprecated panel type \"graph\"",
        "unknown datasource uid",
        "duplicate dashboard uid",
        "no unit",
    ] {
        assert!(
            problems.contains(needle),
            "lint missed {needle}:\n{problems}"
        );
    }
}

#[test]
fn dashboards_validate_against_grafana_13_schema() {
    let modules = std::env::var("FIREDRILL_GRAFANA_NODE_MODULES").unwrap_or_else(|_| {
        panic!("FIREDRILL_GRAFANA_NODE_MODULES unset: run scripts/test (scripts/deps/deploy installs @grafana/schema)")
    });
    let files: Vec<PathBuf> = crate::grafana::dashboards()
        .iter()
        .map(|d| PathBuf::from("dashboards").join(&d.file))
        .collect();
    let out = run(Command::new("node")
        .arg("deploy/grafana/validate-dashboards.mjs")
        .arg(&modules)
        .args(&files));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(": 0 problems"), "{text}");

    // The validator is not a rubber stamp: a broken dashboard fails.
    let tmp = tempfile::tempdir().unwrap();
    let mut broken = crate::grafana::dashboards().remove(0).json;
    broken["panels"][1]["options"]["colorMode"] = "rainbow".into();
    broken["graphTooltip"] = 7.into();
    let file = tmp.path().join("broken.json");
    std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).unwrap();
    let out = Command::new("node")
        .current_dir(repo())
        .arg("deploy/grafana/validate-dashboards.mjs")
        .arg(&modules)
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("colorMode") && text.contains("graphTooltip"),
        "{text}"
    );
}
