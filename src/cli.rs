//! The command line.

use clap::{Parser, Subcommand};
use firedrill_runtime::config::ServiceArgs;
use tokio_util::sync::CancellationToken;

use crate::{ctl, services, up};

#[derive(Parser, Debug)]
#[command(
    name = "firedrill",
    version,
    about = "An observability lab for on-call practice"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole lab on this machine: every service, the collector and
    /// the load generator, each as its own process, supervised.
    Up(up::UpArgs),
    /// Run one service process.
    Service {
        /// Which service (see `firedrill service --help`).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(services::NAMES))]
        name: String,
        #[command(flatten)]
        args: ServiceArgs,
    },
    /// Run the OTLP collector and query API.
    Collector(firedrill_collector::CollectorArgs),
    /// Run the fault controller (faults, scenarios, mitigation ops).
    Controller(firedrill_controller::ControllerArgs),
    /// Inject, list and clear faults (instructor).
    Fault {
        #[command(subcommand)]
        command: ctl::FaultCommand,
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// List, show, validate, start and stop scenarios (instructor).
    Scenario {
        #[command(subcommand)]
        command: ctl::ScenarioCommand,
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Roll services to new versions and list deploys (instructor).
    Deploy {
        #[command(subcommand)]
        command: ctl::DeployCommand,
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Add, list and remove learners (instructor).
    Learner {
        #[command(subcommand)]
        command: ctl::LearnerCommand,
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// The lab as a whole: `lab reset` (instructor).
    Lab {
        #[command(subcommand)]
        command: ctl::LabCommand,
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Exercises: start, status, report, compare, list, stop.
    Exercise {
        #[command(subcommand)]
        command: ctl::exercise::ExerciseCommand,
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Acknowledge the page (learner).
    Ack {
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Take the next hint; each costs points (learner).
    Hint {
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Post a status update to the incident's stakeholders (learner).
    Status {
        text: String,
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Record your diagnosis; the last one counts (learner).
    Diagnose {
        #[command(flatten)]
        args: ctl::exercise::DiagnoseArgs,
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Declare the incident over; it ends once the SLIs hold (learner).
    Resolve {
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Give up the exercise (learner).
    GiveUp {
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Declare an incident, before or after any page (learner).
    Incident {
        #[command(subcommand)]
        command: IncidentCommand,
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Perform a mitigation op on the live lab, e.g. `ops restart payment-2`.
    Ops {
        #[command(flatten)]
        args: ctl::OpsArgs,
        #[command(flatten)]
        connection: ctl::Connection,
    },
    /// Run the load generator.
    Loadgen {
        #[command(flatten)]
        args: firedrill_loadgen::LoadgenArgs,
        #[command(flatten)]
        telemetry: LoadgenTelemetry,
    },
}

#[derive(Subcommand, Debug)]
pub enum IncidentCommand {
    /// `firedrill incident declare "checkout is failing for everyone"`.
    Declare { text: String },
}

/// Where the load generator sends its own traces (it starts most traces).
#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenTelemetry {
    /// OTLP endpoint for the load generator's spans; empty disables export.
    #[arg(
        long = "otlp-endpoint",
        env = "FIREDRILL_OTLP_ENDPOINT",
        default_value = ""
    )]
    pub otlp_endpoint: String,
}

impl Command {
    /// Whether this is a short-lived client of the lab (as opposed to the
    /// lab or one of its processes).
    pub fn is_client(&self) -> bool {
        !matches!(
            self,
            Command::Up(_)
                | Command::Service { .. }
                | Command::Collector(_)
                | Command::Controller(_)
                | Command::Loadgen { .. }
        )
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Service { name, args } => {
            let shutdown = stop_token();
            services::run(&name, args, shutdown).await
        }
        Command::Collector(args) => {
            firedrill_runtime::telemetry::init_local_log("info");
            firedrill_collector::main(args, stop_token()).await
        }
        Command::Controller(args) => {
            firedrill_runtime::telemetry::init_local_log("info");
            firedrill_controller::main(args, stop_token()).await
        }
        Command::Fault {
            command,
            connection,
        } => ctl::fault(connection, command).await,
        Command::Scenario {
            command,
            connection,
        } => ctl::scenario(connection, command).await,
        Command::Deploy {
            command,
            connection,
        } => ctl::deploy(connection, command).await,
        Command::Learner {
            command,
            connection,
        } => ctl::learner(connection, command).await,
        Command::Lab {
            command,
            connection,
        } => ctl::lab(connection, command).await,
        Command::Exercise {
            command,
            connection,
        } => ctl::exercise::exercise(connection, command).await,
        Command::Ack { connection } => {
            ctl::exercise::act(&connection, serde_json::json!({"action": "ack"})).await
        }
        Command::Hint { connection } => {
            ctl::exercise::act(&connection, serde_json::json!({"action": "hint"})).await
        }
        Command::Status { text, connection } => {
            let body = serde_json::json!({"action": "status", "text": text});
            ctl::exercise::act(&connection, body).await
        }
        Command::Diagnose { args, connection } => {
            ctl::exercise::act(&connection, ctl::exercise::diagnosis(&args)).await
        }
        Command::Resolve { connection } => {
            ctl::exercise::act(&connection, serde_json::json!({"action": "resolve"})).await
        }
        Command::GiveUp { connection } => {
            ctl::exercise::act(&connection, serde_json::json!({"action": "give-up"})).await
        }
        Command::Incident {
            command: IncidentCommand::Declare { text },
            connection,
        } => {
            let body = serde_json::json!({"action": "declare", "text": text});
            ctl::exercise::act(&connection, body).await
        }
        Command::Ops { args, connection } => ctl::ops(connection, args).await,
        Command::Loadgen { args, telemetry } => {
            let service_args = firedrill_runtime::config::parse_service_args(&[
                "--otlp-endpoint",
                &telemetry.otlp_endpoint,
            ])?;
            let identity = service_args.identity("loadgen");
            let export = firedrill_runtime::telemetry::ExportConfig {
                endpoint: Some(telemetry.otlp_endpoint).filter(|e| !e.is_empty()),
                protocol: firedrill_runtime::config::OtlpProtocol::Grpc,
                metrics_interval: std::time::Duration::from_secs(5),
                log_filter: "info".into(),
            };
            let guard = firedrill_runtime::telemetry::init(&identity, &export)?;
            let result = firedrill_loadgen::main(args, stop_token()).await;
            guard.shutdown().await;
            result
        }
    }
}

/// The process's shutdown token: SIGINT/SIGTERM, or the supervisor dying.
fn stop_token() -> CancellationToken {
    let token = firedrill_runtime::shutdown::on_signal();
    up::watch_supervisor(token.clone());
    token
}
