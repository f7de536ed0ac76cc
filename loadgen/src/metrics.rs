//! The client-side SLI metrics, defined in one place.
//!
//! These are what the shop's users experienced, measured where they sit: a
//! journey's latency runs from the moment it was *meant* to start, so time a
//! request spent queued behind a struggling shop counts. Comparing these
//! with the gateway's server-side metrics is a lab exercise in itself.
//!
//! Label values are bounded: 7 journeys, 3 outcomes, 8 steps, and a status
//! that is an HTTP code, `timeout` or `error`. Users, product ids and failure
//! reasons never become labels; they go to spans and `/api/stats`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::plan::JourneyKind;

/// Journey duration buckets, 5 ms to 10 s: from "a cache hit at the gateway"
/// to "the user gave up long ago".
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// How a journey ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Every step got its expected answer.
    Success,
    /// A step timed out, failed at transport, or got an unexpected status.
    Failure,
    /// Never sent (or abandoned at shutdown) for a reason on our side:
    /// too many in flight, no free user. Counted so nothing is lost silently.
    Dropped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Dropped => "dropped",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JourneyOutcomeLabels {
    journey: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JourneyLabels {
    journey: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    step: &'static str,
    status: String,
}

/// Exemplar labels: the trace of one journey in a histogram bucket, so a
/// Grafana panel can jump from a slow bucket to a slow trace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceExemplar {
    trace_id: String,
}

type DurationHistogram = HistogramWithExemplars<TraceExemplar>;

fn duration_histogram() -> DurationHistogram {
    HistogramWithExemplars::new(DURATION_BUCKETS.into_iter())
}

/// The registry and handles to every metric in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    journeys: Family<JourneyOutcomeLabels, Counter>,
    journey_duration: Family<JourneyLabels, DurationHistogram, fn() -> DurationHistogram>,
    requests: Family<RequestLabels, Counter>,
    target_rate: Gauge<f64, AtomicU64>,
    in_flight: Gauge,
}

// === impl Metrics ===

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let journeys = Family::<JourneyOutcomeLabels, Counter>::default();
        registry.register(
            "loadgen_journeys",
            "Journeys by kind and outcome (success, failure, dropped)",
            journeys.clone(),
        );
        let journey_duration: Family<_, _, fn() -> DurationHistogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "loadgen_journey_duration",
            "Journey latency from its intended start time to its last response",
            Unit::Seconds,
            journey_duration.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "loadgen_requests",
            "Requests by journey step and HTTP status (or timeout, error)",
            requests.clone(),
        );
        let target_rate = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "loadgen_target_rate",
            "Target journey arrival rate, journeys per second",
            target_rate.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "loadgen_in_flight",
            "Journeys started and not yet finished",
            in_flight.clone(),
        );
        // Make every journey/outcome series exist from the start: a rate()
        // over a counter that appears mid-run misses its first increments,
        // and an absent failure series reads as "no data" rather than 0.
        for kind in JourneyKind::ALL {
            for outcome in [Outcome::Success, Outcome::Failure, Outcome::Dropped] {
                let _ = journeys.get_or_create(&JourneyOutcomeLabels {
                    journey: kind.as_str(),
                    outcome: outcome.as_str(),
                });
            }
        }
        Metrics {
            registry,
            journeys,
            journey_duration,
            requests,
            target_rate,
            in_flight,
        }
    }

    /// A journey ended. `latency` is `None` for dropped journeys, which did
    /// not run; `trace_id` becomes the bucket's exemplar when tracing is on.
    pub fn journey(
        &self,
        kind: JourneyKind,
        outcome: Outcome,
        latency: Option<f64>,
        trace_id: Option<String>,
    ) {
        self.journeys
            .get_or_create(&JourneyOutcomeLabels {
                journey: kind.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
        if let Some(secs) = latency {
            self.journey_duration
                .get_or_create(&JourneyLabels {
                    journey: kind.as_str(),
                })
                .observe(
                    secs,
                    trace_id.map(|trace_id| TraceExemplar { trace_id }),
                    None,
                );
        }
    }

    pub fn request(&self, step: &'static str, status: String) {
        self.requests
            .get_or_create(&RequestLabels { step, status })
            .inc();
    }

    pub fn set_target_rate(&self, rate: f64) {
        self.target_rate.set(rate);
    }

    pub fn set_in_flight(&self, n: usize) {
        self.in_flight.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The registry in OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_documented_names() {
        let m = Metrics::new();
        m.journey(
            JourneyKind::Checkout,
            Outcome::Success,
            Some(0.2),
            Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        );
        m.journey(JourneyKind::Browse, Outcome::Dropped, None, None);
        m.request("checkout", "201".into());
        m.set_target_rate(2.5);
        m.set_in_flight(3);
        let text = m.encode().unwrap();
        for want in [
            r#"loadgen_journeys_total{journey="checkout",outcome="success"} 1"#,
            r#"loadgen_journeys_total{journey="browse",outcome="dropped"} 1"#,
            r#"loadgen_journeys_total{journey="search",outcome="failure"} 0"#,
            r#"loadgen_journey_duration_seconds_bucket{le="0.25",journey="checkout"} 1 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.2"#,
            r#"loadgen_journey_duration_seconds_count{journey="checkout"} 1"#,
            r#"loadgen_requests_total{step="checkout",status="201"} 1"#,
            "loadgen_target_rate 2.5",
            "loadgen_in_flight 3",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // Dropped journeys did not run, so they have no latency.
        assert!(!text.contains(r#"loadgen_journey_duration_seconds_count{journey="browse"}"#));
    }
}
