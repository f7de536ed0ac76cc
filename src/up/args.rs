//! The flags of `firedrill up`.

use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Directory for this run's database, logs and endpoints.json
    /// (default: .firedrill/runs/<timestamp>).
    #[arg(long, env = "FIREDRILL_RUN_DIR")]
    pub run_dir: Option<PathBuf>,

    /// Interface every process listens on.
    #[arg(long, env = "FIREDRILL_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,

    /// The shop's public port.
    #[arg(long, env = "FIREDRILL_GATEWAY_PORT", default_value_t = 8080)]
    pub gateway_port: u16,

    /// Collector OTLP/gRPC port.
    #[arg(long, env = "FIREDRILL_OTLP_GRPC_PORT", default_value_t = 4317)]
    pub otlp_grpc_port: u16,

    /// Collector OTLP/HTTP port.
    #[arg(long, env = "FIREDRILL_OTLP_HTTP_PORT", default_value_t = 4318)]
    pub otlp_http_port: u16,

    /// Collector query API (Jaeger-compatible) port.
    #[arg(long, env = "FIREDRILL_QUERY_PORT", default_value_t = 16686)]
    pub query_port: u16,

    /// Fault controller API port.
    #[arg(long, env = "FIREDRILL_CONTROLLER_PORT", default_value_t = 7070)]
    pub controller_port: u16,

    /// Token that unlocks faults and scenarios; generated when not given,
    /// and written to `<run dir>/instructor/instructor-token`.
    #[arg(long, env = "FIREDRILL_INSTRUCTOR_TOKEN", hide_env_values = true)]
    pub instructor_token: Option<String>,

    /// The name the lab's own learner (the token in `<run dir>/learner-token`)
    /// acts under.
    #[arg(long, env = "FIREDRILL_LEARNER_NAME", default_value = "learner")]
    pub learner_name: String,

    /// A directory of scenario files to play instead of the catalogue built
    /// into firedrill (a file with a problem is reported and left out).
    #[arg(long, env = "FIREDRILL_SCENARIOS")]
    pub scenarios: Option<PathBuf>,

    /// How long faults outlive the controller (the lease agents get).
    #[arg(long, env = "FIREDRILL_FAULT_LEASE", value_parser = humantime::parse_duration, default_value = "5s")]
    pub fault_lease: Duration,

    /// First port of the internal services (one port per instance, counting
    /// up). 0 = pick free ports for everything, including the ports above
    /// (what tests use).
    #[arg(long, env = "FIREDRILL_BASE_PORT", default_value_t = 7100)]
    pub base_port: u16,

    /// Instances per service, e.g. `catalog=2,payment=2,auth=2`.
    #[arg(
        long,
        env = "FIREDRILL_INSTANCES",
        default_value = "auth=2,catalog=2,payment=2"
    )]
    pub instances: String,

    /// Load generator rate in journeys per second; 0 disables it.
    #[arg(long, env = "FIREDRILL_LOAD_RATE", default_value_t = 5.0)]
    pub load_rate: f64,

    /// Seed for the load generator and every service's random choices.
    #[arg(long, env = "FIREDRILL_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Export telemetry over OTLP to the collector (off: measure overhead).
    #[arg(long, env = "FIREDRILL_TELEMETRY_EXPORT", default_value_t = true, action = clap::ArgAction::Set)]
    pub telemetry_export: bool,

    /// OTLP transport the services use.
    #[arg(
        long,
        env = "FIREDRILL_OTLP_PROTOCOL",
        value_enum,
        default_value = "grpc"
    )]
    pub otlp_protocol: firedrill_runtime::config::OtlpProtocol,

    /// How long to wait for every process to report healthy.
    #[arg(long, env = "FIREDRILL_READY_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub ready_timeout: Duration,

    /// Prometheus beside the lab: `auto` (the `prometheus` on PATH, if any),
    /// `off`, or a path to the binary. Config and rules: deploy/prometheus.
    #[arg(long, env = "FIREDRILL_PROMETHEUS", default_value = "auto")]
    pub prometheus: String,

    /// Prometheus port.
    #[arg(long, env = "FIREDRILL_PROMETHEUS_PORT", default_value_t = 9090)]
    pub prometheus_port: u16,

    /// Prometheus scrape and rule evaluation interval.
    #[arg(long, env = "FIREDRILL_PROMETHEUS_INTERVAL", value_parser = humantime::parse_duration, default_value = "15s")]
    pub prometheus_interval: Duration,

    /// How long an instance replaced by a rollout must stay healthy at its
    /// new version before the next is replaced (Kubernetes'
    /// `minReadySeconds`). Longer than a crashing release takes to fall
    /// over, so such a rollout stops at its first instance.
    #[arg(long, env = "FIREDRILL_ROLLOUT_MIN_READY", value_parser = humantime::parse_duration, default_value = "3s")]
    pub rollout_min_ready: Duration,

    /// How often to print the live status line (0s: never).
    #[arg(long, env = "FIREDRILL_STATUS_EVERY", value_parser = humantime::parse_duration, default_value = "10s")]
    pub status_every: Duration,
}
