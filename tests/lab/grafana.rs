//! The dashboards in `dashboards/` and the datasources Grafana is
//! provisioned with, read and linted the way Grafana 13 would load them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Panel types Grafana has removed or replaced (Angular panels and their
/// old ids); a dashboard using one is migrated, or fails, on load.
pub const DEPRECATED_PANEL_TYPES: &[&str] = &[
    "graph",
    "singlestat",
    "table-old",
    "grafana-singlestat-panel",
    "grafana-piechart-panel",
    "grafana-worldmap-panel",
    "grafana-polystat-panel",
    "flant-statusmap-panel",
    "natel-discrete-panel",
];

/// Panel types these dashboards may use.
pub const CURRENT_PANEL_TYPES: &[&str] = &[
    "timeseries",
    "stat",
    "gauge",
    "bargauge",
    "table",
    "heatmap",
    "state-timeline",
    "status-history",
    "nodeGraph",
    "logs",
    "traces",
    "text",
    "row",
];

/// The dashboard schema version of Grafana 13 (no migration runs on load).
pub const SCHEMA_VERSION: u64 = 42;

pub struct Dashboard {
    pub file: String,
    pub json: Value,
}

pub fn dashboards() -> Vec<Dashboard> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join("dashboards"))
        .expect("dashboards/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in dashboards/");
    files
        .into_iter()
        .map(|path| Dashboard {
            file: path.file_name().unwrap().to_string_lossy().into_owned(),
            json: serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        })
        .collect()
}

/// Datasource uids declared in the Grafana provisioning file (read as
/// text: `uid: <value>` lines under `datasources:`).
pub fn provisioned_datasource_uids() -> BTreeSet<String> {
    let path = repo().join("deploy/grafana/provisioning/datasources/firedrill.yml");
    let text = std::fs::read_to_string(&path).expect("datasource provisioning");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("uid: "))
        .map(|s| s.trim().to_string())
        .collect()
}

/// Every panel, rows' nested panels included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// Every problem Grafana 13 would have with the dashboards, or that breaks
/// this project's rules (stable uid, datasource variable, units).
pub fn lint(dashboards: &[Dashboard]) -> Vec<String> {
    let known = provisioned_datasource_uids();
    let mut problems = Vec::new();
    let mut uids: BTreeMap<String, String> = BTreeMap::new();
    for d in dashboards {
        let json = &d.json;
        let f = &d.file;
        match json["uid"].as_str() {
            Some(uid) if !uid.is_empty() && uid.len() <= 40 => {
                if let Some(other) = uids.insert(uid.to_string(), f.clone()) {
                    problems.push(format!(
                        "{f}: duplicate dashboard uid {uid:?} (also {other})"
                    ));
                }
            }
            other => problems.push(format!("{f}: missing or invalid uid {other:?}")),
        }
        if json["schemaVersion"].as_u64() != Some(SCHEMA_VERSION) {
            problems.push(format!(
                "{f}: schemaVersion {} (Grafana 13 is {SCHEMA_VERSION}; an older one is migrated on load)",
                json["schemaVersion"]
            ));
        }
        if json.get("id").is_some_and(|id| !id.is_null()) {
            problems.push(format!(
                "{f}: has a database id; provisioned dashboards must not"
            ));
        }
        let variables = json["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has_ds_var = variables.iter().any(|v| {
            v["type"] == "datasource" && v["name"] == "datasource" && v["query"] == "prometheus"
        });
        if !has_ds_var {
            problems.push(format!(
                "{f}: no `datasource` variable of type datasource (prometheus)"
            ));
        }
        let check_ds = |where_: &str, ds: &Value| -> Option<String> {
            if ds.is_null() {
                return None;
            }
            match ds["uid"].as_str() {
                Some("${datasource}") | Some("$datasource") => None,
                Some("-- Grafana --") if ds["type"] == "grafana" => None,
                Some(uid) if known.contains(uid) => None,
                other => Some(format!(
                    "{f}: {where_}: unknown datasource uid {other:?} (provisioned: {known:?})"
                )),
            }
        };
        for v in &variables {
            problems.extend(check_ds(
                &format!("variable {}", v["name"]),
                &v["datasource"],
            ));
        }
        for a in json["annotations"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            problems.extend(check_ds(
                &format!("annotation {}", a["name"]),
                &a["datasource"],
            ));
        }
        let mut ids = BTreeSet::new();
        for p in panels(json) {
            let title = p["title"].as_str().unwrap_or("<untitled>");
            let kind = p["type"].as_str().unwrap_or("");
            if DEPRECATED_PANEL_TYPES.contains(&kind) {
                problems.push(format!(
                    "{f}: panel {title:?}: deprecated panel type {kind:?}"
                ));
            } else if !CURRENT_PANEL_TYPES.contains(&kind) {
                problems.push(format!(
                    "{f}: panel {title:?}: unexpected panel type {kind:?}"
                ));
            }
            if let Some(id) = p["id"].as_u64() {
                if !ids.insert(id) {
                    problems.push(format!("{f}: panel {title:?}: duplicate panel id {id}"));
                }
            } else {
                problems.push(format!("{f}: panel {title:?}: no id"));
            }
            let grid = &p["gridPos"];
            for k in ["x", "y", "w", "h"] {
                if grid[k].as_u64().is_none() {
                    problems.push(format!("{f}: panel {title:?}: gridPos.{k} missing"));
                }
            }
            if grid["x"].as_u64().unwrap_or(0) + grid["w"].as_u64().unwrap_or(0) > 24 {
                problems.push(format!(
                    "{f}: panel {title:?}: wider than the 24-column grid"
                ));
            }
            if kind == "row" {
                continue;
            }
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            if unit.is_empty() {
                problems.push(format!("{f}: panel {title:?}: no unit"));
            }
            problems.extend(check_ds(&format!("panel {title:?}"), &p["datasource"]));
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{f}: panel {title:?}: no queries"));
            }
            let ref_ids: BTreeSet<_> = targets.iter().filter_map(|t| t["refId"].as_str()).collect();
            if ref_ids.len() != targets.len() {
                problems.push(format!(
                    "{f}: panel {title:?}: queries need distinct refIds"
                ));
            }
            for t in &targets {
                check_ds(
                    &format!("panel {title:?} query {}", t["refId"]),
                    &t["datasource"],
                );
                if t["expr"].as_str().unwrap_or("").trim().is_empty() {
                    problems.push(format!("{f}: panel {title:?}: empty query"));
                }
            }
        }
    }
    problems
}

/// A panel or annotation query with the dashboard's variables at their
/// default values, as a user opening the dashboard sees it.
pub struct Query {
    pub dashboard: String,
    pub what: String,
    pub expr: String,
    /// Annotations may be empty (nothing happened); panels may not.
    pub annotation: bool,
}

/// Every query of every dashboard, variables substituted. `rate_interval`
/// stands in for Grafana's `$__rate_interval`.
pub fn queries(dashboards: &[Dashboard], rate_interval: &str) -> Vec<Query> {
    let mut out = Vec::new();
    for d in dashboards {
        let values = variable_defaults(&d.json);
        let subst = |expr: &str| substitute(expr, &values, rate_interval);
        for p in panels(&d.json) {
            for t in p["targets"].as_array().cloned().unwrap_or_default() {
                out.push(Query {
                    dashboard: d.file.clone(),
                    what: format!(
                        "panel {:?} query {}",
                        p["title"].as_str().unwrap_or(""),
                        t["refId"]
                    ),
                    expr: subst(t["expr"].as_str().unwrap_or("")),
                    annotation: false,
                });
            }
        }
        for a in d.json["annotations"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            if let Some(expr) = a["target"]["expr"].as_str() {
                out.push(Query {
                    dashboard: d.file.clone(),
                    what: format!("annotation {:?}", a["name"].as_str().unwrap_or("")),
                    expr: subst(expr),
                    annotation: true,
                });
            }
        }
    }
    out
}

/// Each query variable's default: its `current` value, or its `allValue`
/// when the default is "All".
pub fn variable_defaults(dashboard: &Value) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for v in dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if v["type"] != "query" {
            continue;
        }
        let current = &v["current"]["value"];
        let value = match current {
            Value::Array(items) => items.first().and_then(Value::as_str).unwrap_or(""),
            other => other.as_str().unwrap_or(""),
        };
        let value = if value == "$__all" {
            v["allValue"].as_str().unwrap_or(".*")
        } else {
            value
        };
        values.insert(v["name"].as_str().unwrap().to_string(), value.to_string());
    }
    values
}

pub fn substitute(expr: &str, values: &BTreeMap<String, String>, rate_interval: &str) -> String {
    let mut out = expr
        .replace("${__rate_interval}", rate_interval)
        .replace("$__rate_interval", rate_interval);
    // Longest names first, so `$service_x` is not cut by `$service`.
    let mut names: Vec<_> = values.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &values[name])
            .replace(&format!("${name}"), &values[name]);
    }
    out
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
