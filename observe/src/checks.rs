//! The checks a scenario states about the telemetry — its symptoms, the
//! signals that stay healthy, its recovery — as scenario files write them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    Metric,
    Trace,
    Log,
}

/// A symptom the incident must produce, checkable through the collector's
/// APIs and the processes' `/metrics`.
/// (Unknown keys are rejected by [`Check`], which receives every key not
/// named here.)
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Symptom {
    pub signal: Signal,
    /// The service whose telemetry shows it.
    pub service: String,
    #[serde(flatten)]
    pub check: Check,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "check", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Check {
    /// Server latency on `route` above `ms` at `quantile` (default: the
    /// median), from the `http_server_request_duration_seconds` histogram.
    LatencyAbove {
        route: String,
        ms: u64,
        #[serde(default)]
        quantile: Option<f64>,
    },
    /// Server latency on `route` at or below `ms` (a route that stays fast).
    LatencyBelow {
        route: String,
        ms: u64,
        #[serde(default)]
        quantile: Option<f64>,
    },
    /// Share of 5xx answers on `route` above `ratio`.
    ErrorRatioAbove { route: String, ratio: f64 },
    /// Share of 5xx answers on `route` at or below `ratio`.
    ErrorRatioBelow { route: String, ratio: f64 },
    /// A log record whose body contains `text`.
    LogContains { text: String },
    /// A span with error status whose name contains `operation`.
    SpanError { operation: String },
    /// A span named exactly `operation` that lasted longer than `ms` (the
    /// trace search `operation=…&minDuration=…` a learner would run).
    SpanDurationAbove { operation: String, ms: u64 },
    /// The current value of `metric` (samples with all `labels`, summed over
    /// the selected processes) above `value`.
    MetricAbove {
        metric: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        value: f64,
    },
    /// The current value of `metric` at or below `value`.
    MetricBelow {
        metric: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        value: f64,
    },
    /// The per-second increase of counter `metric` above `value`.
    RateAbove {
        metric: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        value: f64,
    },
    /// The per-second increase of counter `metric` at or below `value`.
    RateBelow {
        metric: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        value: f64,
    },
}
