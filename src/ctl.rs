//! `firedrill fault|scenario|deploy|learner|lab|ops`: thin clients of the
//! controller API.
//!
//! They find the controller and the tokens the way a user expects: flags,
//! then environment, then the newest run under `.firedrill/runs` (whose
//! `endpoints.json` names the controller and the instructor token's file,
//! and which holds the lab's own learner's token), so after `firedrill up`
//! the verbs work from the same directory with no setup. Instructor verbs
//! send the instructor token; learner verbs (`ops`) a learner token, or the
//! instructor's when only that is given.

pub mod exercise;
mod verify;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use firedrill_runtime::faults::params;
use serde_json::{Map, Value, json};

/// Where the controller is, and the instructor's credentials.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Controller URL (default: from the newest run, else http://127.0.0.1:7070).
    #[arg(long, env = "FIREDRILL_CONTROLLER", global = true)]
    pub controller: Option<String>,

    /// Instructor token (default: the newest run's instructor-token file).
    #[arg(
        long,
        env = "FIREDRILL_INSTRUCTOR_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub instructor_token: Option<String>,

    /// A learner's token (default: the newest run's learner-token file).
    #[arg(
        long = "token",
        env = "FIREDRILL_LEARNER_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub learner_token: Option<String>,

    /// Run directory to read endpoints.json and the tokens from.
    #[arg(long, env = "FIREDRILL_RUN_DIR", global = true)]
    pub run_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum FaultCommand {
    /// Inject a fault, e.g. `latency latency=300ms --target catalog --duration 60s`.
    Inject(Box<InjectArgs>),
    /// List the faults in force.
    List,
    /// Every fault kind with its targets and parameters (types, units,
    /// defaults, ranges).
    Kinds,
    /// Clear one fault by id, or all of them (also stops a running scenario).
    Clear {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

#[derive(Args, Debug)]
pub struct InjectArgs {
    /// The fault kind; `firedrill fault kinds` lists them with their
    /// parameters (docs/faults.md too).
    pub kind: String,
    /// The kind's parameters as `KEY=VALUE`, e.g. `latency=300ms
    /// jitter=50ms`, `limit=256`; a config push takes dotted config keys,
    /// `timeouts.payment=1ms retries.count=0`.
    #[arg(value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// `catalog`, `payment-2`, `gateway->catalog`, `catalog->db`,
    /// `projector->queue-consumer` or `loadgen`, each optionally narrowed to
    /// one running version: `catalog@2.4.0`, `catalog@2.4.0->db`.
    #[arg(long)]
    pub target: String,
    /// Only this route template, e.g. `/products/{id}`.
    #[arg(long)]
    pub route: Option<String>,
    /// How long the fault lasts.
    #[arg(long, default_value = "5m")]
    pub duration: String,
    /// Probability (0..1) that a request is affected.
    #[arg(long)]
    pub toxicity: Option<f64>,
}

#[derive(Subcommand, Debug)]
pub enum ScenarioCommand {
    /// The catalogue.
    List,
    /// One scenario in full (ground truth included: instructors only).
    Show { id: String },
    /// Check scenario files offline; errors are `file:line:column: message`.
    Validate {
        /// Files or directories (default: scenarios/).
        paths: Vec<PathBuf>,
    },
    /// Start a scenario; prints the page a learner receives.
    Start {
        id: String,
        /// Play the timeline this many times faster than written.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Stop the running scenario.
    Stop,
    /// Play a scenario against the running lab and check that its symptoms
    /// show, its red herrings stay apart, wrong ops leave it broken and an
    /// accepted op ends it.
    Verify(verify::VerifyArgs),
}

#[derive(Subcommand, Debug)]
pub enum DeployCommand {
    /// Roll a service, or one instance, to a version (a rolling restart).
    ///
    /// One instance at a time, each once the previous is healthy at the new
    /// version; needs `firedrill up`. E.g. `roll catalog 2.4.0`,
    /// `roll catalog 2.4.0 --instances 1` (a canary). Learners undo it with
    /// `firedrill ops rollback catalog`.
    Roll {
        /// `catalog` or `catalog-2`.
        target: String,
        /// The new `service.version`, e.g. 2.4.0.
        version: String,
        /// Only this many instances (the lowest-numbered): a canary.
        #[arg(long)]
        instances: Option<u32>,
    },
    /// The deploy history and the version each changed instance should run.
    List,
}

/// `firedrill ops <op> <target> [settings]`, e.g.
/// `ops drain payment-2`, `ops config-set payment retries.budget=0.1`,
/// `ops flag-set catalog recommendations=0`,
/// `ops rate-limit gateway /api/products 50`, `ops dlq-replay queue
/// order-events`, `ops rollback checkout`, `ops scale catalog replicas=3`;
/// `ops list` shows the log.
#[derive(Args, Debug)]
pub struct OpsArgs {
    /// rollback, restart, scale, drain, undrain, config-set, flag-set,
    /// rate-limit, dlq-replay, dlq-purge, no-action; or `list` for the ops
    /// log.
    pub op: String,
    /// What it acts on: `catalog`, `payment-2`, `queue`, ...
    pub target: Option<String>,
    /// Settings as `KEY=VALUE` (or `KEY VALUE`): config keys for config-set
    /// (`retries.budget=0.1`, `timeouts.payment=500ms`), flag names for
    /// flag-set (`recommendations=0`), route templates for rate-limit
    /// (`/api/products=50`), `replicas=N` for scale; for dlq-replay and
    /// dlq-purge, the topic.
    pub settings: Vec<String>,
    /// A setting, `KEY=VALUE` (repeatable; the same as a positional one).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The topic of dlq-replay / dlq-purge (default: every topic with dead
    /// letters).
    #[arg(long)]
    pub topic: Option<String>,
    /// Who performs it, recorded with the op: an instructor may name
    /// anyone; a learner token always acts as its learner.
    #[arg(long)]
    pub actor: Option<String>,
}

/// `firedrill learner ...` (instructor).
#[derive(Subcommand, Debug)]
pub enum LearnerCommand {
    /// Adds a learner and prints their token (shown only this once).
    Add { name: String },
    /// Lists the learners.
    List,
    /// Removes a learner; their token stops working.
    Remove { name: String },
}

/// How long `firedrill lab reset` waits for the lab to settle.
const RESET_SETTLE: std::time::Duration = std::time::Duration::from_secs(30);

/// `firedrill lab ...` (instructor).
#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// Undoes every change since the lab started (scenario, faults,
    /// deploys, config, flags, rate limits, drains, scale, restart
    /// backoffs) and waits until the lab is back.
    Reset,
}

/// The ops `firedrill ops` knows, as the controller spells them.
const OPS: &[&str] = &[
    "rollback",
    "restart",
    "scale",
    "drain",
    "undrain",
    "config-set",
    "flag-set",
    "rate-limit",
    "dlq-replay",
    "dlq-purge",
    "no-action",
];

impl Connection {
    fn endpoints(&self) -> Option<Value> {
        let dir = self.run_dir.clone().or_else(newest_run)?;
        let bytes = std::fs::read(dir.join("endpoints.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn url(&self) -> String {
        self.controller
            .clone()
            .or_else(|| self.endpoints()?["controller"].as_str().map(String::from))
            .unwrap_or_else(|| "http://127.0.0.1:7070".into())
            .trim_end_matches('/')
            .to_string()
    }

    /// A learner's token: `--token`, `FIREDRILL_LEARNER_TOKEN`, the run
    /// directory's `learner-token`; else the instructor's, when given.
    fn operator_token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.learner_token {
            return Ok(t.clone());
        }
        if let Some(t) = &self.instructor_token {
            return Ok(t.clone());
        }
        let dir = self.run_dir.clone().or_else(newest_run);
        match dir {
            Some(dir) => {
                let file = firedrill_rundir::RunDir::new(dir).learner_token();
                firedrill_rundir::read_secret(&file)
            }
            None => bail!(
                "no learner token: pass --token, set FIREDRILL_LEARNER_TOKEN, or run from the directory where `firedrill up` runs"
            ),
        }
    }

    fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.instructor_token {
            return Ok(t.clone());
        }
        let file = self
            .endpoints()
            .and_then(|e| e["instructor_token_file"].as_str().map(PathBuf::from));
        match file {
            Some(file) => Ok(std::fs::read_to_string(&file)
                .with_context(|| {
                    format!("cannot read the instructor token from {}", file.display())
                })?
                .trim()
                .to_string()),
            None => bail!(
                "no instructor token: pass --instructor-token, set FIREDRILL_INSTRUCTOR_TOKEN, or run from the directory where `firedrill up` runs"
            ),
        }
    }
}

/// The newest `.firedrill/runs/<stamp>` with an endpoints.json.
fn newest_run() -> Option<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(".firedrill/runs")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("endpoints.json").exists())
        .collect();
    runs.sort();
    runs.pop()
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// A client that sends the instructor token (`instructor`), else a
    /// learner's.
    fn new(conn: &Connection, instructor: bool) -> anyhow::Result<Api> {
        Ok(Api {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            base: conn.url(),
            token: Some(if instructor {
                conn.token()?
            } else {
                conn.operator_token()?
            }),
        })
    }

    /// `GET path` as text (a report in Markdown or HTML).
    async fn text(&self, path: &str) -> anyhow::Result<String> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the controller at {} (is the lab up?)",
                self.base
            )
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(String::from))
                .unwrap_or(text);
            bail!("controller answered {status}: {message}");
        }
        Ok(text)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the controller at {} (is the lab up?)",
                self.base
            )
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            let message = value["error"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| value.to_string());
            bail!("controller answered {status}: {message}");
        }
        Ok(value)
    }
}

fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub async fn fault(conn: Connection, command: FaultCommand) -> anyhow::Result<()> {
    if let FaultCommand::Kinds = command {
        print_kinds();
        return Ok(());
    }
    let api = Api::new(&conn, true)?;
    match command {
        FaultCommand::Inject(args) => {
            let body = inject_body(&args)?;
            let fault = api
                .call(reqwest::Method::POST, "/v1/faults", Some(body))
                .await?;
            println!(
                "injected {} ({} on {}), expires in {}",
                fault["id"].as_str().unwrap_or("?"),
                args.kind,
                args.target,
                args.duration
            );
        }
        FaultCommand::List => print(&api.call(reqwest::Method::GET, "/v1/faults", None).await?),
        FaultCommand::Kinds => print_kinds(),
        FaultCommand::Clear { id: Some(id), .. } => {
            api.call(reqwest::Method::DELETE, &format!("/v1/faults/{id}"), None)
                .await?;
            println!("cleared {id}");
        }
        FaultCommand::Clear {
            id: None,
            all: true,
        } => {
            let out = api
                .call(reqwest::Method::DELETE, "/v1/faults", None)
                .await?;
            println!(
                "cleared {} fault(s){}",
                out["cleared"],
                out["stoppedScenario"]
                    .as_str()
                    .map(|s| format!(", stopped scenario {s}"))
                    .unwrap_or_default()
            );
        }
        FaultCommand::Clear {
            id: None,
            all: false,
        } => {
            bail!("name a fault id to clear, or pass --all")
        }
    }
    Ok(())
}

/// Builds the inject request: `KEY=VALUE` parameters checked against the
/// kind's table (`firedrill_runtime::faults::params`), the one the API and
/// scenario files follow; the controller checks the values' ranges.
fn inject_body(args: &InjectArgs) -> anyhow::Result<Value> {
    let Some(kind) = params::kind(&args.kind) else {
        bail!(
            "unknown fault kind {:?}; kinds are {}",
            args.kind,
            params::names().collect::<Vec<_>>().join(", ")
        );
    };
    let mut target = firedrill_runtime::faults::model::Target::parse(&args.target)
        .map_err(|e| anyhow::anyhow!("--target: {e}"))?;
    target.route = args.route.clone();
    let mut body = Map::new();
    body.insert("kind".into(), json!(args.kind));
    body.insert("target".into(), serde_json::to_value(target)?);
    body.insert("duration".into(), json!(args.duration));
    if let Some(toxicity) = args.toxicity {
        body.insert("toxicity".into(), json!(toxicity));
    }
    for param in &args.params {
        let Some((key, text)) = param.split_once('=') else {
            bail!("{param:?} is not KEY=VALUE, e.g. latency=300ms");
        };
        let (path, value) = params::value(kind, key.trim(), text).map_err(anyhow::Error::msg)?;
        let mut slot = &mut body;
        for (i, field) in path.iter().enumerate() {
            if i + 1 == path.len() {
                slot.insert(field.clone(), value.clone());
            } else {
                let inner = slot
                    .entry(field.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Some(inner) = inner.as_object_mut() else {
                    bail!("{param:?}: {field} is set already");
                };
                slot = inner;
            }
        }
    }
    Ok(Value::Object(body))
}

/// `firedrill fault kinds`: the table docs/faults.md shows.
fn print_kinds() {
    print!("{}", params::markdown());
}

pub async fn scenario(conn: Connection, command: ScenarioCommand) -> anyhow::Result<()> {
    if let ScenarioCommand::Validate { paths } = command {
        return validate(&paths);
    }
    let api = Api::new(&conn, true)?;
    match command {
        ScenarioCommand::List => {
            let list = api
                .call(reqwest::Method::GET, "/v1/scenarios", None)
                .await?;
            let scenarios = list["scenarios"].as_array().cloned().unwrap_or_default();
            println!("{:<36} {:<13} {:<20} title", "id", "difficulty", "category");
            for s in &scenarios {
                println!(
                    "{:<36} {:<13} {:<20} {}",
                    s["id"].as_str().unwrap_or(""),
                    s["difficulty"].as_str().unwrap_or(""),
                    s["category"].as_str().unwrap_or(""),
                    s["title"].as_str().unwrap_or("")
                );
            }
            println!("{} scenarios", scenarios.len());
        }
        ScenarioCommand::Show { id } => print(
            &api.call(reqwest::Method::GET, &format!("/v1/scenarios/{id}"), None)
                .await?,
        ),
        ScenarioCommand::Start { id, speed } => {
            let out = api
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/scenarios/{id}/start"),
                    Some(json!({ "speed": speed })),
                )
                .await?;
            println!(
                "scenario {id} started. The page:\n\n{}",
                out["page"].as_str().unwrap_or("")
            );
        }
        ScenarioCommand::Stop => {
            let out = api
                .call(reqwest::Method::DELETE, "/v1/scenario", None)
                .await?;
            println!("stopped {}", out["stopped"].as_str().unwrap_or("?"));
        }
        ScenarioCommand::Verify(args) => verify::run(&conn, args).await?,
        ScenarioCommand::Validate { .. } => unreachable!("handled above"),
    }
    Ok(())
}

fn validate(paths: &[PathBuf]) -> anyhow::Result<()> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths.to_vec()
    };
    let mut problems = Vec::new();
    let mut ok = 0;
    for path in &paths {
        let result = if path.is_dir() {
            firedrill_controller::scenarios::load_dir(path).map(|s| s.len())
        } else {
            firedrill_controller::scenarios::load(Path::new(path)).map(|_| 1)
        };
        match result {
            Ok(n) => ok += n,
            Err(mut p) => problems.append(&mut p),
        }
    }
    for p in &problems {
        eprintln!("{p}");
    }
    if problems.is_empty() {
        println!("{ok} scenario(s) valid");
        Ok(())
    } else {
        bail!("{} problem(s) found", problems.len())
    }
}

pub async fn deploy(conn: Connection, command: DeployCommand) -> anyhow::Result<()> {
    let api = Api::new(&conn, true)?;
    match command {
        DeployCommand::Roll {
            target,
            version,
            instances,
        } => {
            let mut body = json!({ "target": target, "version": version });
            if let Some(n) = instances {
                body["instances"] = json!(n);
            }
            let record = api
                .call(reqwest::Method::POST, "/v1/deploys", Some(body))
                .await?;
            let previous = &record["previous"];
            let moves: Vec<String> = record["versions"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(instance, to)| {
                    format!(
                        "{instance} {} → {}",
                        previous[instance].as_str().unwrap_or("?"),
                        to.as_str().unwrap_or("?")
                    )
                })
                .collect();
            println!(
                "deploying {} ({}), one instance at a time",
                record["service"].as_str().unwrap_or(&target),
                moves.join(", ")
            );
        }
        DeployCommand::List => print(&api.call(reqwest::Method::GET, "/v1/deploys", None).await?),
    }
    Ok(())
}

pub async fn learner(conn: Connection, command: LearnerCommand) -> anyhow::Result<()> {
    let api = Api::new(&conn, true)?;
    match command {
        LearnerCommand::Add { name } => {
            let added = api
                .call(
                    reqwest::Method::POST,
                    "/v1/learners",
                    Some(json!({ "name": name })),
                )
                .await?;
            println!("{}", added["token"].as_str().unwrap_or_default());
            eprintln!(
                "learner {} added; give them this token (FIREDRILL_LEARNER_TOKEN, or --token); it is not shown again",
                added["name"].as_str().unwrap_or_default()
            );
        }
        LearnerCommand::List => {
            let list = api.call(reqwest::Method::GET, "/v1/learners", None).await?;
            for name in list["learners"].as_array().into_iter().flatten() {
                println!("{}", name.as_str().unwrap_or_default());
            }
        }
        LearnerCommand::Remove { name } => {
            api.call(
                reqwest::Method::DELETE,
                &format!("/v1/learners/{name}"),
                None,
            )
            .await?;
            println!("learner {name} removed");
        }
    }
    Ok(())
}

pub async fn lab(conn: Connection, command: LabCommand) -> anyhow::Result<()> {
    let api = Api::new(&conn, true)?;
    match command {
        LabCommand::Reset => {
            let started = std::time::Instant::now();
            let report = api
                .call(reqwest::Method::POST, "/v1/lab/reset", None)
                .await?;
            let undone = report["undone"].as_array().cloned().unwrap_or_default();
            if undone.is_empty() {
                println!("nothing to undo: the lab was as it started");
            }
            for line in &undone {
                println!("undid: {}", line.as_str().unwrap_or_default());
            }
            // The controller answers at once; the processes follow.
            let deadline = started + RESET_SETTLE;
            loop {
                let status = api
                    .call(reqwest::Method::GET, "/v1/lab/reset", None)
                    .await?;
                let took = started.elapsed().as_millis();
                if status["settled"].as_bool() == Some(true) {
                    println!("the lab is back to its starting state ({took} ms)");
                    break;
                }
                if std::time::Instant::now() >= deadline {
                    let pending: Vec<&str> = status["pending"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    bail!(
                        "the lab had not settled after {took} ms: {}",
                        pending.join("; ")
                    );
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    Ok(())
}

pub async fn ops(conn: Connection, args: OpsArgs) -> anyhow::Result<()> {
    let api = Api::new(&conn, false)?;
    if args.op == "list" {
        if args.target.is_some() || !args.settings.is_empty() {
            bail!("`firedrill ops list` takes no target");
        }
        let log = api.call(reqwest::Method::GET, "/v1/ops", None).await?;
        print_ops(&log);
        return Ok(());
    }
    let body = op_body(&args)?;
    let record = api
        .call(reqwest::Method::POST, "/v1/ops", Some(body))
        .await?;
    println!("{}", record["result"].as_str().unwrap_or("done"));
    Ok(())
}

/// The `POST /v1/ops` body for `args`; mistakes the controller would refuse
/// anyway are caught here with a hint at the spelling.
fn op_body(args: &OpsArgs) -> anyhow::Result<Value> {
    let op = args.op.as_str();
    if !OPS.contains(&op) {
        bail!("unknown op {op:?}; ops are: list, {}", OPS.join(", "));
    }
    let target = args.target.clone().unwrap_or_default();
    if target.is_empty() && op != "no-action" {
        bail!("`firedrill ops {op}` needs a target, e.g. `firedrill ops {op} payment-2`");
    }
    let mut topic = args.topic.clone();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut rest = args.settings.iter();
    while let Some(arg) = rest.next() {
        if matches!(op, "dlq-replay" | "dlq-purge") {
            if let Some(first) = &topic {
                bail!("{op} takes one topic; got {first:?} and {arg:?}");
            }
            topic = Some(arg.clone());
            continue;
        }
        match arg.split_once('=') {
            Some((key, value)) => pairs.push((key.into(), value.into())),
            None => match rest.next() {
                Some(value) => pairs.push((arg.clone(), value.clone())),
                None => bail!("{arg:?} needs a value: write {arg}=VALUE"),
            },
        }
    }
    for setting in &args.set {
        let Some((key, value)) = setting.split_once('=') else {
            bail!("--set {setting:?} is not KEY=VALUE");
        };
        pairs.push((key.into(), value.into()));
    }
    let mut set = Map::new();
    for (key, value) in pairs {
        let key = key.trim();
        if key.is_empty() {
            bail!("a setting has no key: write KEY=VALUE");
        }
        set.insert(key.to_string(), json!(value.trim()));
    }
    let mut body = json!({ "op": op, "target": target });
    if let Some(actor) = &args.actor {
        body["actor"] = json!(actor);
    }
    if !set.is_empty() {
        body["set"] = Value::Object(set);
    }
    if let Some(topic) = topic {
        body["topic"] = json!(topic);
    }
    Ok(body)
}

/// The ops log, oldest first: when, who, what, on what, and what happened.
fn print_ops(log: &Value) {
    let ops = log["ops"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<20} {:<12} {:<11} {:<18} result",
        "time", "actor", "op", "target"
    );
    for op in &ops {
        let at = op["atMs"]
            .as_u64()
            .map(|ms| {
                let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
                humantime::format_rfc3339_seconds(when).to_string()
            })
            .unwrap_or_default();
        println!(
            "{:<20} {:<12} {:<11} {:<18} {}",
            at,
            op["actor"].as_str().unwrap_or(""),
            op["op"].as_str().unwrap_or(""),
            op["target"].as_str().unwrap_or(""),
            op["result"].as_str().unwrap_or("")
        );
    }
    println!("{} op(s)", ops.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(op: &str, target: Option<&str>, settings: &[&str], set: &[&str]) -> OpsArgs {
        OpsArgs {
            op: op.into(),
            target: target.map(String::from),
            settings: settings.iter().map(|s| s.to_string()).collect(),
            set: set.iter().map(|s| s.to_string()).collect(),
            topic: None,
            actor: Some("alice".into()),
        }
    }

    #[test]
    fn op_bodies_carry_settings_and_topics() {
        let body = op_body(&args(
            "config-set",
            Some("payment"),
            &["retries.budget=0.1"],
            &["timeouts.payment=500ms"],
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({"op": "config-set", "target": "payment", "actor": "alice",
                   "set": {"retries.budget": "0.1", "timeouts.payment": "500ms"}})
        );
        let body = op_body(&args(
            "rate-limit",
            Some("gateway"),
            &["/api/products", "50"],
            &[],
        ))
        .unwrap();
        assert_eq!(body["set"], json!({"/api/products": "50"}));
        let body = op_body(&args("dlq-replay", Some("queue"), &["order-events"], &[])).unwrap();
        assert_eq!(body["topic"], "order-events");
        assert!(body.get("set").is_none());
        let body = op_body(&args("drain", Some("payment-2"), &[], &[])).unwrap();
        assert_eq!(
            body,
            json!({"op": "drain", "target": "payment-2", "actor": "alice"})
        );
    }

    #[test]
    fn a_config_push_is_injected_with_dotted_keys() {
        let body = inject_body(&inject(&[
            "config-push",
            "--target",
            "checkout",
            "timeouts.payment=1ms",
            "retries.count=0",
            "retries.jitter=false",
            "flags.recommendations=0.5",
        ]))
        .unwrap();
        assert_eq!(body["timeouts"], json!({"payment": "1ms"}));
        assert_eq!(body["retries"], json!({"count": 0, "jitter": false}));
        assert_eq!(body["flags"], json!({"recommendations": 0.5}));
        let err = inject_body(&inject(&[
            "config-push",
            "--target",
            "checkout",
            "retries=1",
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("dotted config keys"), "{err}");
    }

    #[test]
    fn parameters_are_named_as_the_table_names_them() {
        for (args, needle) in [
            (
                &["latnecy", "--target", "catalog"][..],
                "unknown fault kind \"latnecy\"",
            ),
            (
                &["latency", "--target", "catalog", "latency"],
                "not KEY=VALUE",
            ),
            (
                &["latency", "--target", "catalog", "delay=1s"],
                "latency takes latency, jitter",
            ),
            (
                &["memory-leak", "--target", "catalog", "limit=1GiB"],
                "whole number",
            ),
            (
                &["crash", "--target", "catalog", "x=1"],
                "takes no parameters",
            ),
        ] {
            let err = inject_body(&inject(args)).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn op_mistakes_are_named() {
        for (a, needle) in [
            (
                args("drian", Some("payment-2"), &[], &[]),
                "unknown op \"drian\"",
            ),
            (args("drain", None, &[], &[]), "needs a target"),
            (
                args("flag-set", Some("catalog"), &["recommendations"], &[]),
                "needs a value",
            ),
            (
                args("config-set", Some("payment"), &[], &["retries"]),
                "not KEY=VALUE",
            ),
            (
                args("dlq-purge", Some("queue"), &["a", "b"], &[]),
                "one topic",
            ),
        ] {
            let err = op_body(&a).unwrap_err().to_string();
            assert!(err.contains(needle), "{a:?}: {err}");
        }
    }

    use clap::Parser;
    use firedrill_runtime::faults::model::FaultSpec;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        inject: InjectArgs,
    }

    fn inject(args: &[&str]) -> InjectArgs {
        Cli::try_parse_from(std::iter::once("inject").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .inject
    }

    /// The spec `firedrill fault inject <args>` sends, as the controller
    /// reads and checks it.
    fn spec(args: &[&str]) -> FaultSpec {
        let mut body = inject_body(&inject(args)).unwrap();
        assert!(body.as_object_mut().unwrap().remove("duration").is_some());
        let spec: FaultSpec = serde_json::from_value(body.clone())
            .unwrap_or_else(|e| panic!("{args:?} sent {body}: {e}"));
        spec.validate()
            .unwrap_or_else(|e| panic!("{args:?} sent {body}: {e}"));
        spec
    }

    #[test]
    fn every_kind_can_be_injected_with_key_values() {
        for (args, name) in [
            (&["cache-flush", "--target", "cache"][..], "cache-flush"),
            (
                &["cache-flush", "--target", "cache", "ttl=10s"],
                "cache-flush",
            ),
            (
                &[
                    "poison-message",
                    "--target",
                    "projector->queue-consumer",
                    "--toxicity",
                    "0.1",
                ],
                "poison-message",
            ),
            (
                &["data-corruption", "--target", "catalog", "field=price"],
                "data-corruption",
            ),
            (
                &["telemetry-drop", "--target", "payment-2"],
                "telemetry-drop",
            ),
            (
                &[
                    "worker-pool",
                    "--target",
                    "catalog",
                    "size=2",
                    "--route",
                    "/products",
                ],
                "worker-pool",
            ),
            (
                &[
                    "lb-skew",
                    "--target",
                    "checkout->payment",
                    "instance=payment-1",
                    "percent=80",
                ],
                "lb-skew",
            ),
            (
                &[
                    "traffic-spike",
                    "--target",
                    "loadgen",
                    "multiplier=4",
                    "hotKey=42",
                ],
                "traffic-spike",
            ),
            (
                &[
                    "drop-index",
                    "--target",
                    "catalog->db",
                    "index=products_category",
                ],
                "drop-index",
            ),
            (
                &["memory-leak", "--target", "catalog", "rate=8", "limit=64"],
                "memory-leak",
            ),
            (
                &["clock-skew", "--target", "auth-2", "timeOffset=-90s"],
                "clock-skew",
            ),
            (
                &[
                    "partition",
                    "--target",
                    "checkout->inventory",
                    "direction=downstream",
                ],
                "partition",
            ),
        ] {
            assert_eq!(spec(args).kind.name(), name, "{args:?}");
        }
        let skew = spec(&[
            "lb-skew",
            "--target",
            "checkout->payment",
            "instance=payment-2",
        ]);
        assert_eq!(
            skew.kind,
            firedrill_runtime::faults::model::FaultKind::LbSkew {
                instance: "payment-2".into(),
                percent: 90
            }
        );
    }

    /// docs/faults.md shows the table the code has.
    #[test]
    fn the_documented_table_is_the_codes() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/faults.md"))
            .unwrap();
        assert!(
            doc.contains(&params::markdown()),
            "docs/faults.md's parameter table differs from the code's: replace it with the output of `firedrill fault kinds`"
        );
    }
}
