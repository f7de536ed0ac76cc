//! `firedrill exercise ...` and the learner's verbs (`ack`, `hint`,
//! `status`, `diagnose`, `resolve`, `give-up`, `incident declare`):
//! clients of the controller's exercise API.
//!
//! Learner verbs send a learner's token (`--token`, else
//! `FIREDRILL_LEARNER_TOKEN`, else the run directory's `learner-token`),
//! which also names the learner; `exercise start|stop|list` are the
//! instructor's.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Api, Connection};

#[derive(Subcommand, Debug)]
pub enum ExerciseCommand {
    /// Start an exercise (instructor): a scenario, or one drawn with the
    /// seed, after a warm-up of normal traffic learners are not told about.
    Start(StartArgs),
    /// Where the exercise is: the page once sent, the time, hints taken,
    /// what the learners did.
    Status,
    /// The debrief report of an exercise (default: the latest you took
    /// part in), once it has ended.
    Report {
        /// `x1`, `x2`, ...
        id: Option<String>,
        #[arg(long, value_parser = ["html", "md", "json"], default_value = "md")]
        format: String,
        /// Write it to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Every exercise, running and ended (instructor).
    List,
    /// Stop the running exercise now (instructor).
    Stop,
    /// A table of learners' scores and times across runs: each RUN is a
    /// report (`firedrill exercise report --format json`) or a run
    /// directory (its exercises' reports, the instructor's).
    Compare {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// The scenario; leave it out with --random.
    pub scenario: Option<String>,
    /// Draw the scenario with the seed.
    #[arg(long, conflicts_with = "scenario")]
    pub random: bool,
    /// With --random: only this difficulty.
    #[arg(long, value_parser = ["beginner", "intermediate", "advanced"], requires = "random")]
    pub difficulty: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Who takes part, e.g. alice,bob (default: the lab's own learner).
    #[arg(long, value_delimiter = ',')]
    pub learners: Vec<String>,
    #[arg(long, default_value = "30m")]
    pub time_limit: String,
    /// Normal traffic before the incident (default: drawn between 30 s and
    /// 2 min; 0s starts at once).
    #[arg(long)]
    pub warmup: Option<String>,
    /// Page this long after the incident begins, rather than when an alert
    /// fires (default: on the first paging alert where Prometheus runs,
    /// else a minute after the scenario's last step).
    #[arg(long)]
    pub page_after: Option<String>,
}

/// The learner's diagnosis.
#[derive(Args, Debug)]
pub struct DiagnoseArgs {
    /// The root cause's service (or `db`, or `none` when there is no incident).
    #[arg(long)]
    pub service: String,
    /// One instance, when it is one (payment-2).
    #[arg(long)]
    pub instance: Option<String>,
    /// bad-deploy, config-change, dependency-latency, dependency-failure,
    /// resource-exhaustion, network, time, data, load, telemetry, none.
    #[arg(long)]
    pub category: String,
    /// How it spread, root first: catalog,gateway.
    #[arg(long, value_delimiter = ',')]
    pub chain: Vec<String>,
    #[arg(long)]
    pub summary: String,
}

pub async fn exercise(conn: Connection, command: ExerciseCommand) -> anyhow::Result<()> {
    match command {
        ExerciseCommand::Start(args) => {
            let api = Api::new(&conn, true)?;
            let mut body = json!({ "learners": args.learners, "timeLimit": args.time_limit });
            if let Some(s) = &args.scenario {
                body["scenario"] = json!(s);
            } else if !args.random {
                bail!("name a scenario, or draw one with --random");
            }
            if let Some(d) = &args.difficulty {
                body["difficulty"] = json!(d);
            }
            if let Some(seed) = args.seed {
                body["seed"] = json!(seed);
            }
            if let Some(w) = &args.warmup {
                body["warmup"] = json!(w);
            }
            if let Some(p) = &args.page_after {
                body["pageAfter"] = json!(p);
            }
            let started = api
                .call(reqwest::Method::POST, "/v1/exercises", Some(body))
                .await?;
            println!(
                "exercise {} started for {}: scenario {} (seed {}); the incident begins in {} s, learners are not told when",
                started["id"].as_str().unwrap_or("?"),
                started["learners"]
                    .as_array()
                    .map(|l| l
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default(),
                started["scenario"].as_str().unwrap_or("?"),
                started["seed"],
                started["startsInMs"].as_i64().unwrap_or(0) / 1000
            );
        }
        ExerciseCommand::Status => {
            let api = Api::new(&conn, false)?;
            let status = api.call(reqwest::Method::GET, "/v1/exercise", None).await?;
            print_status(&status);
        }
        ExerciseCommand::Report { id, format, out } => {
            let api = Api::new(&conn, false)?;
            let id = match id {
                Some(id) => id,
                None => api.call(reqwest::Method::GET, "/v1/exercise", None).await?["id"]
                    .as_str()
                    .context("no exercise to report on")?
                    .to_string(),
            };
            let text = api
                .text(&format!("/v1/exercises/{id}/report?format={format}"))
                .await?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!("report of {id} written to {}", path.display());
                }
                None => print!("{text}"),
            }
        }
        ExerciseCommand::List => {
            let api = Api::new(&conn, true)?;
            let list = api
                .call(reqwest::Method::GET, "/v1/exercises", None)
                .await?;
            for e in list["exercises"].as_array().into_iter().flatten() {
                println!(
                    "{:<5} {:<32} {:<24} {}",
                    e["id"].as_str().unwrap_or(""),
                    e["scenario"].as_str().unwrap_or(""),
                    e["learners"]
                        .as_array()
                        .map(|l| l
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default(),
                    match e["ended"]["why"].as_str() {
                        Some(why) => format!("ended ({why})"),
                        None => "running".into(),
                    }
                );
            }
        }
        ExerciseCommand::Stop => {
            let api = Api::new(&conn, true)?;
            let stopped = api
                .call(reqwest::Method::DELETE, "/v1/exercise", None)
                .await?;
            println!(
                "exercise {} stopped; the lab is reset",
                stopped["stopped"].as_str().unwrap_or("?")
            );
        }
        ExerciseCommand::Compare { runs } => compare(&runs)?,
    }
    Ok(())
}

fn print_status(status: &Value) {
    let minutes = |ms: i64| format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60);
    println!(
        "exercise {} ({}), {} of {}; learners: {}",
        status["id"].as_str().unwrap_or("?"),
        status["phase"].as_str().unwrap_or("?"),
        minutes(status["elapsedMs"].as_i64().unwrap_or(0)),
        minutes(status["timeLimitMs"].as_i64().unwrap_or(0)),
        status["learners"]
            .as_array()
            .map(|l| l
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    match status["page"].as_str() {
        Some(page) => println!("\n{}\n", page.trim()),
        None => println!("no page yet"),
    }
    for (n, hint) in status["hints"].as_array().into_iter().flatten().enumerate() {
        println!("hint {}: {}", n + 1, hint.as_str().unwrap_or(""));
    }
    for action in status["actions"].as_array().into_iter().flatten() {
        let what = match action["event"].as_str() {
            Some("op") => format!(
                "{} {}",
                action["op"].as_str().unwrap_or(""),
                action["target"].as_str().unwrap_or("")
            ),
            Some("diagnose") => format!(
                "{} ({}): {}",
                action["service"].as_str().unwrap_or(""),
                action["category"].as_str().unwrap_or(""),
                action["summary"].as_str().unwrap_or("")
            ),
            Some("hint") => format!("tier {}", action["tier"]),
            _ => action["text"].as_str().unwrap_or("").to_string(),
        };
        println!(
            "  {:<10} {:<9} {what}",
            action["actor"].as_str().unwrap_or(""),
            action["event"].as_str().unwrap_or(""),
        );
    }
    if let Some(why) = status["ended"]["why"].as_str() {
        println!("ended: {why} — `firedrill exercise report` shows the debrief");
    }
}

/// A learner's action.
pub async fn act(conn: &Connection, body: Value) -> anyhow::Result<()> {
    let api = Api::new(conn, false)?;
    let done = api
        .call(reqwest::Method::POST, "/v1/exercise/actions", Some(body))
        .await?;
    println!("{}", done["said"].as_str().unwrap_or("done"));
    Ok(())
}

pub fn diagnosis(args: &DiagnoseArgs) -> Value {
    let mut body = json!({
        "action": "diagnose",
        "service": args.service,
        "category": args.category,
        "chain": args.chain,
        "summary": args.summary,
    });
    if let Some(instance) = &args.instance {
        body["instance"] = json!(instance);
    }
    body
}

/// Reads each run's reports and prints one row per exercise and learner.
fn compare(runs: &[PathBuf]) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for run in runs {
        for report in reports_in(run)? {
            let card = &report["scorecard"];
            let times = &card["times"];
            let since = |key: &str| {
                let from = times["incidentMs"].as_i64()?;
                Some((times[key].as_i64()? - from) / 1000)
            };
            let secs =
                |v: Option<i64>| v.map_or("—".into(), |s| format!("{}:{:02}", s / 60, s % 60));
            for learner in report["exercise"]["learners"]
                .as_array()
                .into_iter()
                .flatten()
            {
                rows.push(vec![
                    run.display().to_string(),
                    report["exercise"]["id"].as_str().unwrap_or("").to_string(),
                    learner.as_str().unwrap_or("").to_string(),
                    report["scenario"]["id"].as_str().unwrap_or("").to_string(),
                    format!("{} / {}", card["total"], card["max"]),
                    secs(since("ackMs")),
                    secs(since("mitigatedMs")),
                    card["wrongOps"].as_array().map_or(0, Vec::len).to_string(),
                    card["hintsTaken"].to_string(),
                ]);
            }
        }
    }
    if rows.is_empty() {
        bail!(
            "no exercise report in {}",
            runs.iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let header = [
        "run",
        "exercise",
        "learner",
        "scenario",
        "score",
        "ack",
        "mitigated",
        "wrong ops",
        "hints",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("{}", line(header.to_vec()));
    for row in &rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
    Ok(())
}

/// The reports a RUN names: one report file, or every report under a run
/// directory's controller state.
fn reports_in(run: &Path) -> anyhow::Result<Vec<Value>> {
    let read = |path: &Path| -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON report", path.display()))
    };
    if run.is_file() {
        return Ok(vec![read(run)?]);
    }
    let dir = firedrill_rundir::RunDir::new(run)
        .controller_state()
        .join("exercises");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{} holds no exercises ({})", run.display(), dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".report.json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| read(p)).collect()
}
