//! The scenario file checks, on text written to show each rule.

use std::collections::BTreeMap;
use std::path::Path;

use firedrill_runtime::faults::model::FaultKind;
use serde_json::json;

use super::*;
use crate::model::op::Verb;
use crate::model::scenario::*;

/// A minimal valid scenario (a slow catalog, mitigated by a restart),
/// for tests here and in `state`, independent of the shipped files.
pub(crate) const GOOD: &str = r#"
id = "slow-catalog"
title = "Products page slow"
difficulty = "beginner"
goals = ["find the slow hop"]
page = "Product listing p99 is 6x normal."
hints = ["look at the slowest span", "which service owns it?", "catalog adds 300 ms"]
debrief = "The catalog span widened by 300 ms."

[[steps]]
at = "0s"
lasts = "until-mitigated"
role = "root"
target = "catalog"
kind = "latency"
latency = "300ms"

[truth]
root = "catalog"
category = "dependency-latency"
chain = ["catalog", "gateway"]

[mitigation]
accepted = [{ op = "restart", target = "catalog" }]
wrong = [{ op = "restart", target = "gateway" }]
recovery = { route = "/api/products", max_error_ratio = 0.01, max_latency_ms = 150 }

[[symptoms]]
signal = "metric"
service = "gateway"
check = "latency-above"
route = "/api/products"
ms = 250
"#;

fn problems(text: &str) -> Vec<String> {
    parse(Path::new("scenarios/slow-catalog.toml"), text)
        .err()
        .unwrap_or_default()
        .iter()
        .map(|p| p.to_string())
        .collect()
}

#[test]
fn a_good_scenario_parses() {
    let s = parse(Path::new("scenarios/slow-catalog.toml"), GOOD).unwrap();
    assert_eq!(s.id(), "slow-catalog");
    assert_eq!(s.steps[0].get_ref().lasts, Some(Lasts::UntilMitigated));
    let fault = s.steps[0].get_ref().fault().unwrap();
    assert_eq!(fault.target.service, "catalog");
}

#[test]
fn the_newer_fault_kinds_are_written_as_documented() {
    let steps = r#"[[steps]]
at = "0s"
lasts = "until-mitigated"
role = "root"
target = "catalog"
kind = "latency"
latency = "300ms"

[[steps]]
lasts = "1m"
role = "trigger"
target = "cache"
kind = "cache-flush"
ttl = "10s"

[[steps]]
lasts = "1m"
role = "root"
target = "projector->queue-consumer"
kind = "poison-message"
toxicity = 0.1

[[steps]]
lasts = "1m"
role = "root"
target = "catalog"
kind = "data-corruption"
field = "price"
toxicity = 0.3

[[steps]]
lasts = "1m"
role = "herring"
target = "payment-2"
kind = "telemetry-drop"

[[steps]]
lasts = "1m"
role = "root"
target = "catalog"
route = "/products"
kind = "worker-pool"
size = 2

[[steps]]
lasts = "1m"
role = "root"
target = "checkout->payment"
kind = "lb-skew"
instance = "payment-1"
percent = 90

[[steps]]
lasts = "1m"
role = "trigger"
target = "loadgen"
kind = "traffic-spike"
multiplier = 4
hotKey = 42

[[steps]]
lasts = "1m"
role = "root"
target = "catalog->db"
kind = "drop-index"
"#;
    let start = GOOD.find("[[steps]]").unwrap();
    let end = GOOD.find("[truth]").unwrap();
    let text = format!("{}{steps}\n{}", &GOOD[..start], &GOOD[end..]);
    let s =
        parse(Path::new("scenarios/slow-catalog.toml"), &text).unwrap_or_else(|p| panic!("{p:?}"));
    let kinds: Vec<&str> = s
        .steps
        .iter()
        .map(|step| step.get_ref().fault().unwrap().kind.name())
        .collect();
    assert_eq!(
        kinds,
        [
            "latency",
            "cache-flush",
            "poison-message",
            "data-corruption",
            "telemetry-drop",
            "worker-pool",
            "lb-skew",
            "traffic-spike",
            "drop-index"
        ]
    );
}

#[test]
fn syntax_errors_point_at_the_line() {
    let broken = GOOD.replace("latency = \"300ms\"", "latency = ");
    let p = problems(&broken);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("scenarios/slow-catalog.toml:16:"), "{p:?}");
}

#[test]
fn semantic_errors_point_at_their_step() {
    let broken = GOOD.replace("target = \"catalog\"\nkind", "target = \"warehouse\"\nkind");
    let p = problems(&broken);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains(":10:") && p[0].contains("unknown service"),
        "{p:?}"
    );
}

#[test]
fn missing_and_wrong_parts_are_each_reported() {
    let broken = GOOD
        .replace("hints = [\"look at the slowest span\", ", "hints = [")
        .replace("id = \"slow-catalog\"", "id = \"other\"")
        .replace("latency = \"300ms\"", "latency = \"soon\"");
    let p = problems(&broken);
    assert!(p.iter().any(|m| m.contains("not a duration")), "{p:?}");
    let fixed = broken.replace("latency = \"soon\"", "latency = 5");
    let p = problems(&fixed);
    assert!(p.iter().any(|m| m.contains("exactly three")), "{p:?}");
    assert!(
        p.iter().any(|m| m.contains("must match the file name")),
        "{p:?}"
    );
}

/// GOOD with a deploy of catalog 2.4.0 and its defect as the root.
fn with_deploy() -> String {
    GOOD.replace(
        "[[steps]]\nat = \"0s\"\nlasts = \"until-mitigated\"\nrole = \"root\"\ntarget = \"catalog\"\n",
        "[[steps]]\nrole = \"root\"\ntarget = \"catalog\"\nkind = \"deploy\"\nversion = \"2.4.0\"\ninstances = 1\n\n\
         [[steps]]\nat = \"0s\"\nlasts = \"until-mitigated\"\nrole = \"root\"\ntarget = \"catalog@2.4.0\"\n",
    )
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn deploy_steps_parse_and_version_targets_need_them() {
    let text = with_deploy();
    let s = parse(Path::new("scenarios/slow-catalog.toml"), &text).unwrap();
    let deploy = s.steps[0].get_ref().deploy().unwrap().unwrap();
    assert_eq!(
        (
            deploy.target.service.as_str(),
            deploy.version.as_str(),
            deploy.instances
        ),
        ("catalog", "2.4.0", Some(1))
    );
    assert!(s.steps[0].get_ref().fault().is_err());
    let fault = s.steps[1].get_ref().fault().unwrap();
    assert_eq!(fault.target.version.as_deref(), Some("2.4.0"));
    // Shown back as written.
    let shown = serde_json::to_value(&s).unwrap();
    assert_eq!(shown["steps"][0]["kind"], "deploy");
    assert_eq!(shown["steps"][0]["version"], "2.4.0");
    assert_eq!(shown["steps"][1]["kind"], "latency");

    // A defect aimed at a version no step deploys selects nobody.
    let orphan = text.replace("target = \"catalog@2.4.0\"", "target = \"catalog@2.5.0\"");
    let p = problems(&orphan);
    let line = line_of(&orphan, "catalog@2.5.0");
    assert!(
        p.len() == 1 && p[0].contains(&format!(":{line}:")) && p[0].contains("selects nobody"),
        "{p:?}"
    );
}

#[test]
fn deploy_step_errors_point_at_their_line() {
    let text = with_deploy();
    for (from, to, needle, at) in [
        (
            "version = \"2.4.0\"",
            "version = \"2.4 beta\"",
            "must be 1..64",
            "2.4 beta",
        ),
        (
            "version = \"2.4.0\"",
            "version = \"0.1.0\"",
            "runs already",
            "0.1.0",
        ),
        (
            "instances = 1",
            "instances = 0",
            "at least 1",
            "instances = 0",
        ),
        (
            "instances = 1",
            "instances = 1\nlasts = \"5m\"",
            "drop `lasts`",
            "lasts = \"5m\"",
        ),
        (
            "instances = 1",
            "instances = 1\ntoxicity = 0.5",
            "drop `toxicity`",
            "toxicity",
        ),
        (
            "instances = 1",
            "instances = 1\ncolour = 2",
            "unknown field",
            "colour",
        ),
        (
            "target = \"catalog\"\nkind = \"deploy\"",
            "target = \"catalog->db\"\nkind = \"deploy\"",
            "service or one instance",
            "catalog->db",
        ),
    ] {
        let broken = text.replacen(from, to, 1);
        let p = problems(&broken);
        let line = line_of(&broken, at);
        assert!(
            p.iter()
                .any(|m| m.contains(needle) && m.contains(&format!(":{line}:"))),
            "{to}: expected {needle:?} at line {line}: {p:?}"
        );
    }
    // A fault step still needs `lasts`; an unknown kind names `deploy`
    // among the choices.
    let no_lasts = GOOD.replace("lasts = \"until-mitigated\"\n", "");
    assert!(problems(&no_lasts)[0].contains("needs `lasts`"));
    let unknown = GOOD.replace("kind = \"latency\"", "kind = \"explode\"");
    let p = problems(&unknown);
    assert!(
        p[0].contains("or `deploy`")
            && p[0].contains(&format!(":{}:", line_of(&unknown, "explode"))),
        "{p:?}"
    );
}

#[test]
fn symptom_and_healthy_checks_are_checked_where_written() {
    let with_healthy = format!(
        "{GOOD}\n[[healthy]]\nsignal = \"metric\"\nservice = \"gateway\"\ncheck = \"latency-below\"\nroute = \"/api/cart\"\nms = 50\n"
    );
    let s = parse(Path::new("scenarios/slow-catalog.toml"), &with_healthy).unwrap();
    assert_eq!(s.healthy.len(), 1);
    let broken = with_healthy.replace("ms = 50", "ms = 50\nquantile = 1.5");
    let p = problems(&broken);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(":41:") && p[0].contains("quantile"), "{p:?}");
    let broken = with_healthy.replace("route = \"/api/cart\"", "route = \"api/cart\"");
    assert!(problems(&broken)[0].contains("must start with '/'"));
    let broken = with_healthy.replace(
        "service = \"gateway\"\ncheck = \"latency-below\"",
        "service = \"warehouse\"\ncheck = \"latency-below\"",
    );
    assert!(problems(&broken)[0].contains("unknown service"));
}

#[test]
fn a_config_push_step_is_checked_line_by_line() {
    let push = GOOD.replace(
        "target = \"catalog\"\nkind = \"latency\"\nlatency = \"300ms\"",
        "target = \"checkout\"\nkind = \"config-push\"\ntimeouts = { payment = \"1ms\" }\nretries = { count = 0, jitter = false }\nflags = { recommendations = 1.0 }",
    );
    let s = parse(Path::new("scenarios/slow-catalog.toml"), &push).unwrap();
    let fault = s.steps[0].get_ref().fault().unwrap();
    let FaultKind::ConfigPush(values) = &fault.kind else {
        panic!("{fault:?}")
    };
    assert_eq!(
        firedrill_runtime::live::describe(values),
        "timeouts.payment=1ms, retries.count=0, retries.jitter=false, flags.recommendations=1"
    );
    // Each mistake is reported on the line that holds it.
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (from, to, message) in [
        (
            "payment = \"1ms\"",
            "warehouse = \"1ms\"",
            "unknown peer service",
        ),
        ("payment = \"1ms\"", "payment = \"fast\"", "not a duration"),
        ("payment = \"1ms\"", "payment = 0", "between 1ms and 60s"),
        ("count = 0", "cuont = 0", "unknown field `cuont`"),
        (
            "recommendations = 1.0",
            "recommendations = 3",
            "share of users",
        ),
        (
            "target = \"checkout\"",
            "target = \"checkout-1\"",
            "target the service",
        ),
        ("timeouts = {", "timeout = {", "unknown field `timeout`"),
    ] {
        let broken = push.replace(from, to);
        let p = problems(&broken);
        assert_eq!(p.len(), 1, "{to}: {p:?}");
        let line = line_of(&broken, to);
        assert!(
            p[0].contains(&format!(":{line}:")) && p[0].contains(message),
            "{to}: expected line {line}: {p:?}"
        );
    }
}

#[test]
fn a_shared_dependency_may_be_the_root() {
    let shared = GOOD.replace("root = \"catalog\"", "root = \"db\"");
    assert!(problems(&shared).is_empty(), "{:?}", problems(&shared));
    let nowhere = GOOD.replace("root = \"catalog\"", "root = \"moon\"");
    let p = problems(&nowhere);
    assert!(
        p[0].contains("truth.root") && p[0].contains("unknown service"),
        "{p:?}"
    );
}

#[test]
fn span_duration_checks_parse_and_need_an_operation() {
    let slow_span = format!(
        "{GOOD}\n[[symptoms]]\nsignal = \"trace\"\nservice = \"catalog\"\ncheck = \"span-duration-above\"\noperation = \"SELECT products\"\nms = 60\n"
    );
    let s = parse(Path::new("scenarios/slow-catalog.toml"), &slow_span).unwrap();
    assert_eq!(
        s.symptoms.get_ref()[1].get_ref().check,
        Check::SpanDurationAbove {
            operation: "SELECT products".into(),
            ms: 60
        }
    );
    let broken = slow_span.replace("operation = \"SELECT products\"", "operation = \"\"");
    assert!(problems(&broken)[0].contains("`operation` must not be empty"));
}

#[test]
fn ops_that_change_config_carry_their_settings() {
    let bare = GOOD.replace(
        "accepted = [{ op = \"restart\", target = \"catalog\" }]",
        "accepted = [{ op = \"config-set\", target = \"catalog\" }]",
    );
    assert!(
        problems(&bare)[0].contains("needs its settings"),
        "{:?}",
        problems(&bare)
    );
    let with = bare.replace(
        "target = \"catalog\" }]",
        "target = \"catalog\", set = { \"retries.count\" = \"0\" } }]",
    );
    assert!(problems(&with).is_empty(), "{:?}", problems(&with));
    let stray = GOOD.replace(
        "accepted = [{ op = \"restart\", target = \"catalog\" }]",
        "accepted = [{ op = \"restart\", target = \"catalog\", set = { a = \"1\" } }]",
    );
    assert!(problems(&stray)[0].contains("takes no settings"));
    let third_party = GOOD.replace(
        "accepted = [{ op = \"restart\", target = \"catalog\" }]",
        "accepted = [{ op = \"restart\", target = \"payment-provider\" }]",
    );
    assert!(
        problems(&third_party)[0].contains("payment-provider is a third party"),
        "{:?}",
        problems(&third_party)
    );
}

#[test]
fn a_scale_names_its_instances_and_matches_by_direction() {
    let accepted = "accepted = [{ op = \"restart\", target = \"catalog\" }]";
    for (scale, needle) in [
        (
            "{ op = \"scale\", target = \"catalog\" }",
            "needs one setting",
        ),
        (
            "{ op = \"scale\", target = \"catalog\", set = { replicas = \"x\" } }",
            "not a whole number",
        ),
        (
            "{ op = \"scale\", target = \"catalog\", set = { replicas = \"9\" } }",
            "1 to 8",
        ),
        (
            "{ op = \"scale\", target = \"catalog\", set = { replicas = \"2\", x = \"1\" } }",
            "needs one setting",
        ),
    ] {
        let bad = GOOD.replace(accepted, &format!("accepted = [{scale}]"));
        let found = problems(&bad);
        assert!(
            found.iter().any(|p| p.contains(needle)),
            "{scale}: {found:?}"
        );
    }
    let good = GOOD.replace(
        accepted,
        "accepted = [{ op = \"scale\", target = \"catalog\", set = { replicas = \"4\" } }]",
    );
    assert!(problems(&good).is_empty(), "{:?}", problems(&good));

    let scenario = parse(Path::new("scenarios/slow-catalog.toml"), &good).unwrap();
    let mitigation = scenario.mitigation.get_ref();
    let performed = |verb, target: &str, replicas: Option<serde_json::Value>| {
        let set = replicas
            .map(|v| BTreeMap::from([("replicas".to_string(), v)]))
            .unwrap_or_default();
        crate::model::op::Op::parse(verb, target, &set, None).unwrap()
    };
    assert!(mitigation.accepts(&performed(Verb::Scale, "catalog", Some(json!(4)))));
    assert!(
        mitigation.accepts(&performed(Verb::Scale, "catalog", Some(json!("6")))),
        "more is the op too"
    );
    assert!(
        !mitigation.accepts(&performed(Verb::Scale, "catalog", Some(json!(3)))),
        "fewer is not"
    );
    assert!(!mitigation.accepts(&performed(Verb::Scale, "cart", Some(json!(4)))));
    assert!(!mitigation.accepts(&performed(Verb::Restart, "catalog", None)));
    assert!(mitigation.lists_as_wrong(&performed(Verb::Restart, "gateway", None)));
}

#[test]
fn unknown_keys_are_rejected() {
    let broken = GOOD.replace(
        "difficulty = \"beginner\"",
        "difficulty = \"beginner\"\ncolour = 3",
    );
    let p = problems(&broken);
    assert!(
        p[0].contains("unknown field") && p[0].contains(":5:"),
        "{p:?}"
    );
}

/// Issue 13, item 14: `scenario validate` lists every problem of a file at
/// once, not only the first serde meets: each step, symptom or healthy
/// entry with a problem is reported where it is written.
#[test]
fn every_problem_of_a_file_is_listed_at_once() {
    let text = GOOD
        .replace("latency = \"300ms\"", "latency = \"300 parsecs\"")
        .replace("ms = 250", "ms = 250\ncolour = \"red\"")
        + r#"
[[steps]]
lasts = "1m"
role = "herring"
target = "payment-2"
kind = "telepathy"

[[healthy]]
signal = "metric"
service = "gateway"
check = "latency-below"
route = "api/cart"
ms = 100
"#;
    let found = problems(&text);
    let line = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|n| format!(":{}:", n + 1))
            .unwrap()
    };
    for (needle, at) in [
        ("300 parsecs", line("300 parsecs")),
        ("colour", line("colour")),
        ("telepathy", line("telepathy")),
        ("must start with '/'", line("api/cart")),
    ] {
        assert!(
            found.iter().any(|p| p.contains(needle) && p.contains(&at)),
            "{needle} at {at}: {found:#?}"
        );
    }
    assert_eq!(found.len(), 4, "{found:#?}");
}
