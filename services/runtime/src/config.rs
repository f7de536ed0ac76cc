//! Flags shared by every service process.
//!
//! Each flag has a `FIREDRILL_*` environment fallback so the same binary runs
//! unchanged under `firedrill up`, docker-compose and Kubernetes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// The `service.version` a process reports unless a rollout says otherwise
/// (`--service-version`): the version of this build.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How telemetry leaves the process.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (default port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (default port 4318).
    Http,
}

/// The flags of `firedrill service <name>`.
#[derive(clap::Args, Clone, Debug)]
pub struct ServiceArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "FIREDRILL_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Instance number, used in `service.instance.id` (`<service>-<n>`).
    #[arg(long, env = "FIREDRILL_INSTANCE", default_value_t = 1)]
    pub instance: u32,

    /// Value of `service.version` (a rollout sets it).
    #[arg(long = "service-version", env = "FIREDRILL_SERVICE_VERSION", default_value = BUILD_VERSION)]
    pub service_version: String,

    /// Value of `deployment.environment`.
    #[arg(long, env = "FIREDRILL_ENVIRONMENT", default_value = "lab")]
    pub environment: String,

    /// Peer services: `name=url[,url...]` entries separated by `;`, e.g.
    /// `catalog=http://127.0.0.1:7101,http://127.0.0.1:7102;cart=http://127.0.0.1:7103`.
    #[arg(long, env = "FIREDRILL_PEERS", default_value = "")]
    pub peers: String,

    /// Where OTLP goes, e.g. `http://127.0.0.1:4317`; empty disables export
    /// (spans, logs and metrics are still produced for `/metrics`, exemplars
    /// and local logs, so overhead can be compared with export on and off).
    #[arg(long, env = "FIREDRILL_OTLP_ENDPOINT", default_value = "")]
    pub otlp_endpoint: String,

    /// OTLP transport.
    #[arg(
        long,
        env = "FIREDRILL_OTLP_PROTOCOL",
        value_enum,
        default_value = "grpc"
    )]
    pub otlp_protocol: OtlpProtocol,

    /// How often metrics are pushed over OTLP.
    #[arg(long, env = "FIREDRILL_OTLP_METRICS_INTERVAL", value_parser = humantime::parse_duration, default_value = "5s")]
    pub otlp_metrics_interval: Duration,

    /// Log filter (tracing `EnvFilter` syntax) for the local log and OTLP logs.
    #[arg(long, env = "FIREDRILL_LOG", default_value = "info")]
    pub log: String,

    /// SQLite database file (shared by the stateful services).
    #[arg(long, env = "FIREDRILL_DATABASE")]
    pub database: Option<PathBuf>,

    /// Connections in this process's database pool.
    #[arg(long, env = "FIREDRILL_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: usize,

    /// How long a query waits for a pooled connection before failing.
    #[arg(long, env = "FIREDRILL_DB_ACQUIRE_TIMEOUT", value_parser = humantime::parse_duration, default_value = "2s")]
    pub db_acquire_timeout: Duration,

    /// Per-attempt timeout of calls to peer services.
    #[arg(long, env = "FIREDRILL_CALL_TIMEOUT", value_parser = humantime::parse_duration, default_value = "2s")]
    pub call_timeout: Duration,

    /// Retries after a failed idempotent call (0 disables retries).
    #[arg(long, env = "FIREDRILL_CALL_RETRIES", default_value_t = 2)]
    pub call_retries: u32,

    /// First retry backoff; doubles per attempt up to 1s.
    #[arg(long, env = "FIREDRILL_RETRY_BACKOFF", value_parser = humantime::parse_duration, default_value = "50ms")]
    pub retry_backoff: Duration,

    /// Randomise backoff (full jitter). Turning it off is a classic
    /// misconfiguration: synchronised retries arrive in waves.
    #[arg(long, env = "FIREDRILL_RETRY_JITTER", default_value_t = true, action = clap::ArgAction::Set)]
    pub retry_jitter: bool,

    /// Consecutive failures that open an instance's circuit breaker.
    #[arg(long, env = "FIREDRILL_BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,

    /// How long an open breaker rejects calls before a half-open probe.
    #[arg(long, env = "FIREDRILL_BREAKER_COOLDOWN", value_parser = humantime::parse_duration, default_value = "5s")]
    pub breaker_cooldown: Duration,

    /// Most concurrent requests this process serves before shedding (503).
    #[arg(long, env = "FIREDRILL_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,

    /// Server-side deadline for one request.
    #[arg(long, env = "FIREDRILL_REQUEST_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub request_timeout: Duration,

    /// Largest request body accepted (bytes).
    #[arg(long, env = "FIREDRILL_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,

    /// Seed for this process's random choices (jitter, simulated latency).
    #[arg(long, env = "FIREDRILL_SEED", default_value_t = 1)]
    pub seed: u64,

    /// The fault agent's controller, token and poll interval.
    #[command(flatten)]
    pub agent: crate::faults::agent::AgentConfig,
}

/// Who this process is: the OTel resource identity.
#[derive(Clone, Debug)]
pub struct Identity {
    pub service: String,
    pub instance_id: String,
    pub version: String,
    pub environment: String,
}

impl ServiceArgs {
    pub fn identity(&self, service: &str) -> Identity {
        Identity {
            service: service.to_string(),
            instance_id: format!("{service}-{}", self.instance),
            version: self.service_version.clone(),
            environment: self.environment.clone(),
        }
    }

    /// Parses `--peers` into service name → instance base URLs.
    pub fn peer_map(&self) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
        parse_peers(&self.peers).context("invalid --peers")
    }
}

/// Parses `name=url[,url];name=url` into a map, rejecting empty names or URLs
/// that are not `http://`.
pub fn parse_peers(spec: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut peers = BTreeMap::new();
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, urls)) = entry.split_once('=') else {
            bail!("entry {entry:?} is not of the form name=url[,url...]");
        };
        let name = name.trim();
        if name.is_empty() {
            bail!("entry {entry:?} has an empty service name");
        }
        let urls: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            bail!("service {name:?} has no URL");
        }
        if let Some(bad) = urls.iter().find(|u| !u.starts_with("http://")) {
            bail!("service {name:?}: URL {bad:?} must start with http://");
        }
        peers.insert(name.to_string(), urls);
    }
    Ok(peers)
}

/// Formats a peer map back into the `--peers` syntax.
pub fn format_peers(peers: &BTreeMap<String, Vec<String>>) -> String {
    peers
        .iter()
        .map(|(name, urls)| format!("{name}={}", urls.join(",")))
        .collect::<Vec<_>>()
        .join(";")
}

/// Parses service flags from a list, as the command line would (for tests
/// and for `firedrill up`, which validates what it will pass to children).
pub fn parse_service_args(flags: &[&str]) -> Result<ServiceArgs, clap::Error> {
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ServiceArgs,
    }
    use clap::Parser as _;
    let argv = std::iter::once("service").chain(flags.iter().copied());
    Wrapper::try_parse_from(argv).map(|w| w.args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_round_trip() {
        let spec = "catalog=http://127.0.0.1:1,http://127.0.0.1:2;cart=http://127.0.0.1:3";
        let map = parse_peers(spec).unwrap();
        assert_eq!(map["catalog"].len(), 2);
        assert_eq!(map["cart"], vec!["http://127.0.0.1:3"]);
        assert_eq!(parse_peers(&format_peers(&map)).unwrap(), map);
    }

    #[test]
    fn peers_reject_malformed_entries() {
        for bad in ["catalog", "=http://x", "catalog=", "catalog=ftp://x"] {
            let err = parse_peers(bad).unwrap_err().to_string();
            assert!(!err.is_empty(), "{bad} should fail");
        }
        assert!(
            parse_peers("catalog=ftp://x")
                .unwrap_err()
                .to_string()
                .contains("http://")
        );
    }
}
