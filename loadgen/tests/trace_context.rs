//! With a tracer installed (as the root binary does), every request carries
//! W3C trace context: one trace per journey, one span per request, and the
//! journey's trace id as the latency histogram's exemplar.
//!
//! This installs process-global telemetry, so it lives in its own test
//! binary.

#[path = "support/fake_shop.rs"]
mod fake_shop;
#[path = "support/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};

use fake_shop::{Behaviour, TestShop};
use harness::{RunningLoadgen, args};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn every_request_carries_its_journeys_trace() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("loadgen-test")));
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");

    let shop = TestShop::spawn(Behaviour::default()).await;
    let lg = RunningLoadgen::start(args(
        &shop.url(),
        &["--rate", "40", "--ramp", "0s", "--mix", "view_product=1"],
    ))
    .await;
    lg.wait_for("journeys", |s| s.totals.success >= 5).await;
    let (_, text) = lg.metrics().await;
    let exemplar = text
        .lines()
        .find(|l| {
            l.starts_with("loadgen_journey_duration_seconds_bucket")
                && l.contains(" # {trace_id=\"")
        })
        .unwrap_or_else(|| panic!("no trace exemplar in\n{text}"));
    let summary = lg.stop().await;
    let journeys = summary.totals.success;
    assert!(journeys >= 5, "{summary}");

    // traceparent = 00-<trace id>-<parent span id>-<flags>
    let traceparents = shop.seen.traceparents.lock().clone();
    assert_eq!(
        traceparents.len(),
        shop.requests().len(),
        "every request had a traceparent"
    );
    let mut traces: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tp in &traceparents {
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!(parts[3], "01", "sampled: {tp}");
        traces
            .entry(parts[1].to_string())
            .or_default()
            .push(parts[2].to_string());
    }
    let exemplar_trace = exemplar
        .split("trace_id=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert!(
        traces.contains_key(exemplar_trace),
        "exemplar names a real journey trace"
    );

    // view_product is two requests: product, then recommendations.
    assert_eq!(traces.len() as u64, journeys, "one trace per journey");
    for spans in traces.values() {
        assert_eq!(spans.len(), 2);
        let distinct: BTreeSet<_> = spans.iter().collect();
        assert_eq!(distinct.len(), 2, "each request is its own span");
    }
}
