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
}

/// What `run` needs besides its listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    pub max_spans: usize,
    pub max_log_records: usize,
    /// Distinct OTLP metric series whose latest value is kept.
    pub max_metric_series: usize,
    pub max_body_bytes: usize,
    /// Deadline for each shutdown stage (receivers, then the query server).
    pub shutdown_grace: Duration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            max_spans: 200_000,
            max_log_records: 200_000,
            max_metric_series: 10_000,
            max_body_bytes: 8 * MIB,
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
        }
    }
}

impl From<&CollectorArgs> for CollectorConfig {
    fn from(args: &CollectorArgs) -> Self {
        Self {
            max_spans: args.max_spans.get(),
            max_log_records: args.max_log_records.get(),
            max_body_bytes: args.max_body_bytes,
            ..Self::default()
        }
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
        let config = CollectorConfig::from(&args);
        assert_eq!(config.max_spans, 200_000);
        assert_eq!(config.max_log_records, 200_000);
        assert_eq!(config.max_body_bytes, 8 * 1024 * 1024);
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
