//! Command-line flags (with `FIREDRILL_*` environment fallbacks) and the
//! configuration `run` needs once the listeners are bound.

use std::{num::NonZeroUsize, time::Duration};

use crate::store::Capacities;

/// Flags of `firedrill collector`.
#[derive(clap::Args, Debug, Clone)]
pub struct CollectorArgs {
    /// Address for the OTLP/gRPC receiver (port 0 picks a free port).
    #[arg(
        long,
        env = "FIREDRILL_OTLP_GRPC_LISTEN",
        default_value = "127.0.0.1:4317"
    )]
    pub otlp_grpc_listen: String,

    /// Address for the OTLP/HTTP receiver (`/v1/traces`, `/v1/metrics`, `/v1/logs`).
    #[arg(
        long,
        env = "FIREDRILL_OTLP_HTTP_LISTEN",
        default_value = "127.0.0.1:4318"
    )]
    pub otlp_http_listen: String,

    /// Address for the query API (Jaeger-compatible traces, logs, /health, /metrics).
    #[arg(
        long,
        env = "FIREDRILL_QUERY_LISTEN",
        default_value = "127.0.0.1:16686"
    )]
    pub query_listen: String,

    /// Spans kept in memory; the oldest are evicted first.
    #[arg(long, env = "FIREDRILL_COLLECTOR_MAX_SPANS", default_value = "200000")]
    pub max_spans: NonZeroUsize,

    /// Log records kept in memory; the oldest are evicted first.
    #[arg(
        long,
        env = "FIREDRILL_COLLECTOR_MAX_LOG_RECORDS",
        default_value = "200000"
    )]
    pub max_log_records: NonZeroUsize,

    /// Largest accepted export, measured after decompression: a byte count
    /// or a size such as 512KiB or 8MiB.
    #[arg(
        long,
        env = "FIREDRILL_COLLECTOR_MAX_BODY_BYTES",
        default_value = "8MiB",
        value_parser = parse_byte_size
    )]
    pub max_body_bytes: usize,

    /// Resident memory the collector must stay under. Receivers refuse
    /// exports (HTTP 503, gRPC UNAVAILABLE) while the process is above 90% of
    /// it, and the byte budgets below default to shares of it.
    #[arg(
        long,
        env = "FIREDRILL_COLLECTOR_MEMORY_LIMIT",
        default_value = "512MiB",
        value_parser = parse_byte_size
    )]
    pub memory_limit: usize,

    /// Bytes of spans kept (default: 40% of --memory-limit); the oldest are
    /// evicted first, like --max-spans.
    #[arg(long, env = "FIREDRILL_COLLECTOR_MAX_SPAN_BYTES", value_parser = parse_byte_size)]
    pub max_span_bytes: Option<usize>,

    /// Bytes of log records kept (default: 15% of --memory-limit).
    #[arg(long, env = "FIREDRILL_COLLECTOR_MAX_LOG_BYTES", value_parser = parse_byte_size)]
    pub max_log_bytes: Option<usize>,

    /// Bytes of decoded exports waiting for the pipeline (default: 5% of
    /// --memory-limit). When full, exports get HTTP 429 / gRPC UNAVAILABLE
    /// with a retry delay.
    #[arg(long, env = "FIREDRILL_COLLECTOR_QUEUE_BYTES", value_parser = parse_byte_size)]
    pub queue_bytes: Option<usize>,

    /// Forward received traces over OTLP to this endpoint: `grpc://host:4317`
    /// for OTLP/gRPC, or `http://host:4318` (the signal path is appended when
    /// the URL has no path) for OTLP/HTTP protobuf.
    #[arg(long, env = "FIREDRILL_FORWARD_TRACES_OTLP")]
    pub forward_traces_otlp: Option<String>,

    /// Forward received metrics over OTLP (same forms as --forward-traces-otlp).
    #[arg(long, env = "FIREDRILL_FORWARD_METRICS_OTLP")]
    pub forward_metrics_otlp: Option<String>,

    /// Forward received logs over OTLP (same forms as --forward-traces-otlp).
    #[arg(long, env = "FIREDRILL_FORWARD_LOGS_OTLP")]
    pub forward_logs_otlp: Option<String>,
}

/// What `run` needs besides its listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    pub max_spans: usize,
    pub max_log_records: usize,
    /// Distinct OTLP metric series whose latest value is kept.
    pub max_metric_series: usize,
    pub max_body_bytes: usize,
    /// Resident-memory ceiling; ingest is refused above 90% of it.
    pub memory_limit: usize,
    pub max_span_bytes: usize,
    pub max_log_bytes: usize,
    /// Budget of decoded exports queued for (or inside) the pipeline.
    pub queue_bytes: usize,
    /// Downstream OTLP endpoints, one per signal.
    pub forward: Forwarding,
    /// Deadline for each shutdown stage (receivers, pipeline, exporters,
    /// query server).
    pub shutdown_grace: Duration,
}

/// Where each signal is forwarded; `None` keeps it local.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarding {
    pub traces: Option<Endpoint>,
    pub metrics: Option<Endpoint>,
    pub logs: Option<Endpoint>,
}

/// A downstream OTLP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `http://host:port` of an OTLP/gRPC server.
    Grpc(String),
    /// The full OTLP/HTTP URL, signal path included.
    Http(String),
}

impl Endpoint {
    /// `grpc://host:port` → gRPC (sent as `http://host:port`); an
    /// `http://` URL → OTLP/HTTP, with the signal path appended when the
    /// URL has none (as the OTel SDKs' `OTEL_EXPORTER_OTLP_ENDPOINT` does).
    pub fn parse(text: &str, signal_path: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("grpc://") {
            if rest.is_empty() || rest.contains('/') {
                return Err(format!("{text:?}: expected grpc://host:port"));
            }
            return Ok(Self::Grpc(format!("http://{rest}")));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!(
                "{text:?}: expected grpc://host:port or http://host:port/v1/..."
            ));
        };
        // No TLS client is built in: the lab's downstreams are on the
        // same private network.
        if scheme != "http" || rest.is_empty() {
            return Err(format!("{text:?}: the scheme must be grpc or http"));
        }
        match rest.split_once('/') {
            Some((_, path)) if !path.is_empty() => Ok(Self::Http(text.to_owned())),
            _ => Ok(Self::Http(format!(
                "{}{signal_path}",
                text.trim_end_matches('/')
            ))),
        }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            max_spans: 200_000,
            max_log_records: 200_000,
            max_metric_series: 10_000,
            max_body_bytes: 8 * MIB,
            memory_limit: 512 * MIB,
            max_span_bytes: 512 * MIB / 100 * 40,
            max_log_bytes: 512 * MIB / 100 * 15,
            queue_bytes: 512 * MIB / 100 * 5,
            forward: Forwarding::default(),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl CollectorConfig {
    pub fn capacities(&self) -> Capacities {
        Capacities {
            spans: self.max_spans,
            log_records: self.max_log_records,
            metric_series: self.max_metric_series,
            span_bytes: self.max_span_bytes,
            log_bytes: self.max_log_bytes,
        }
    }
}

impl CollectorConfig {
    /// Checks the flags that clap cannot check alone; the error names the flag.
    pub fn from_args(args: &CollectorArgs) -> Result<Self, String> {
        let share = |percent: usize| args.memory_limit / 100 * percent;
        let endpoint = |flag: &str, value: &Option<String>, path: &str| {
            value
                .as_deref()
                .map(|v| Endpoint::parse(v, path).map_err(|e| format!("{flag}: {e}")))
                .transpose()
        };
        Ok(Self {
            max_spans: args.max_spans.get(),
            max_log_records: args.max_log_records.get(),
            max_body_bytes: args.max_body_bytes,
            memory_limit: args.memory_limit,
            max_span_bytes: args.max_span_bytes.unwrap_or_else(|| share(40)),
            max_log_bytes: args.max_log_bytes.unwrap_or_else(|| share(15)),
            queue_bytes: args.queue_bytes.unwrap_or_else(|| share(5)),
            forward: Forwarding {
                traces: endpoint(
                    "--forward-traces-otlp",
                    &args.forward_traces_otlp,
                    "/v1/traces",
                )?,
                metrics: endpoint(
                    "--forward-metrics-otlp",
                    &args.forward_metrics_otlp,
                    "/v1/metrics",
                )?,
                logs: endpoint("--forward-logs-otlp", &args.forward_logs_otlp, "/v1/logs")?,
            },
            ..Self::default()
        })
    }
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Parses `8388608`, `8MiB`, `512KiB`, `1GiB` (binary) or `8MB` (decimal).
pub fn parse_byte_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => KIB,
        "mib" => MIB,
        "gib" => 1024 * MIB,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?}: use B, KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|n| *n > 0)
        .ok_or_else(|| "expected a positive size such as 8388608 or 8MiB".to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: CollectorArgs,
    }

    #[test]
    fn defaults_match_the_documented_ports_and_limits() {
        let args = Cli::try_parse_from(["collector"]).unwrap().args;
        assert_eq!(args.otlp_grpc_listen, "127.0.0.1:4317");
        assert_eq!(args.otlp_http_listen, "127.0.0.1:4318");
        assert_eq!(args.query_listen, "127.0.0.1:16686");
        let config = CollectorConfig::from_args(&args).unwrap();
        assert_eq!(config.max_spans, 200_000);
        assert_eq!(config.max_log_records, 200_000);
        assert_eq!(config.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(config.memory_limit, 512 * 1024 * 1024);
        assert_eq!(config.queue_bytes, config.memory_limit / 100 * 5);
        assert_eq!(config.forward, Forwarding::default());
    }

    #[test]
    fn forward_endpoints_pick_the_transport_from_the_scheme() {
        assert_eq!(
            Endpoint::parse("grpc://jaeger:4317", "/v1/traces"),
            Ok(Endpoint::Grpc("http://jaeger:4317".into()))
        );
        assert_eq!(
            Endpoint::parse("http://loki:3100/otlp", "/v1/logs"),
            Ok(Endpoint::Http("http://loki:3100/otlp".into()))
        );
        assert_eq!(
            Endpoint::parse("http://jaeger:4318/", "/v1/traces"),
            Ok(Endpoint::Http("http://jaeger:4318/v1/traces".into()))
        );
        assert!(Endpoint::parse("jaeger:4317", "/v1/traces").is_err());
        let args = Cli::try_parse_from(["collector", "--forward-logs-otlp", "ftp://x"])
            .unwrap()
            .args;
        let error = CollectorConfig::from_args(&args).unwrap_err();
        assert!(error.starts_with("--forward-logs-otlp: "), "{error}");
    }

    #[test]
    fn flags_override_defaults_and_bad_values_name_the_flag() {
        let args = Cli::try_parse_from([
            "collector",
            "--max-spans",
            "10",
            "--max-body-bytes",
            "64KiB",
        ])
        .unwrap()
        .args;
        assert_eq!(args.max_spans.get(), 10);
        assert_eq!(args.max_body_bytes, 65_536);
        let error = Cli::try_parse_from(["collector", "--max-spans", "0"]).unwrap_err();
        assert!(error.to_string().contains("--max-spans"), "{error}");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("1024"), Ok(1024));
        assert_eq!(parse_byte_size("8MiB"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_byte_size("2 kb"), Ok(2000));
        assert!(parse_byte_size("0").is_err());
        assert!(parse_byte_size("lots").is_err());
        assert!(parse_byte_size("3 parsecs").is_err());
    }
}
