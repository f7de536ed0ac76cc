//! Where the collector's CPU goes per span, stage by stage, without
//! sockets: a profiling aid, not a pass/fail test.
//!
//! ```text
//! cargo test --release -p firedrill-collector --lib -- --ignored --nocapture ingest_cost
//! ```
//!
//! Exports have the shape of the benchmark's (`benches/collector.rs`): 23
//! spans per trace across 12 services, 10 attributes each, 506 spans per
//! export. Each stage is timed (in this thread's CPU time) over the same
//! exports, with prost's decode and free (the benchmark's baseline, less
//! the transport) beside them.

use bytes::Bytes;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value as AnyKind},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status},
};
use prost::Message as _;

use crate::{
    derived::{Derived, DerivedLimits},
    otlp::traces,
    store::{Capacities, Store},
};

const SERVICES: [&str; 12] = [
    "gateway",
    "auth",
    "catalog",
    "search",
    "cart",
    "checkout",
    "inventory",
    "payment",
    "payment-provider",
    "shipping",
    "notification",
    "cache",
];

/// A 64-bit LCG, as in the benchmark.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn kv(key: &str, value: AnyKind) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(text: &str) -> AnyKind {
    AnyKind::StringValue(text.into())
}

/// 22 traces of 23 spans, from trace number `first_trace` on.
fn export(first_trace: u64, rng: &mut Lcg) -> ExportTraceServiceRequest {
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    for trace in first_trace..first_trace + 22 {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(trace + 1).to_be_bytes());
        trace_id[8..].copy_from_slice(&rng.next().to_be_bytes());
        for i in 0..23u64 {
            let service = if i == 0 {
                0
            } else {
                (rng.next() % 11 + 1) as usize
            };
            let start = 1_700_000_000_000_000_000 + trace * 1_000_000 + i * 1_000;
            let failed = rng.next().is_multiple_of(50);
            let route = [
                "/api/products/{id}",
                "/api/cart",
                "/api/checkout",
                "/api/search",
            ][(rng.next() % 4) as usize];
            let method = if i % 2 == 0 { "GET" } else { "POST" };
            by_service[service].push(Span {
                trace_id: trace_id.to_vec(),
                span_id: ((trace << 8) + i + 1).to_be_bytes().to_vec(),
                parent_span_id: if i == 0 {
                    Vec::new()
                } else {
                    ((trace << 8) + 1).to_be_bytes().to_vec()
                },
                name: format!("{method} {route}"),
                kind: if i % 2 == 0 { 2 } else { 3 },
                start_time_unix_nano: start,
                end_time_unix_nano: start + 100_000 + rng.next() % 50_000_000,
                attributes: vec![
                    kv("http.request.method", s(method)),
                    kv("http.route", s(route)),
                    kv(
                        "url.path",
                        s(&format!("/api/products/{}", rng.next() % 1000)),
                    ),
                    kv(
                        "http.response.status_code",
                        AnyKind::IntValue(if failed { 500 } else { 200 }),
                    ),
                    kv("server.address", s(SERVICES[service])),
                    kv("server.port", AnyKind::IntValue(8080)),
                    kv("network.protocol.version", s("1.1")),
                    kv("user_agent.original", s("firedrill-loadgen/0.1")),
                    kv(
                        "firedrill.user.id",
                        s(&format!("user-{}", rng.next() % 5000)),
                    ),
                    kv("firedrill.retry", AnyKind::BoolValue(false)),
                ],
                status: failed.then(|| Status {
                    code: 2,
                    message: "upstream failed".into(),
                }),
                ..Default::default()
            });
        }
    }
    let resource_spans = by_service
        .into_iter()
        .enumerate()
        .filter(|(_, spans)| !spans.is_empty())
        .map(|(i, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s(SERVICES[i])),
                    kv("service.version", s("1.4.2")),
                    kv("service.instance.id", s(&format!("{}-1", SERVICES[i]))),
                    kv("deployment.environment", s("lab")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "firedrill-runtime".into(),
                    version: "0.1.0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// CPU time of this thread, so other work on the machine does not count.
fn cpu_nanos() -> u64 {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux");
    let on_cpu = schedstat.split_whitespace().next().expect("a first field");
    on_cpu.parse().expect("nanoseconds")
}

#[test]
#[ignore = "a profiling aid: run it in release, see the module's doc"]
fn ingest_cost() {
    const EXPORTS: u64 = 400;
    let mut rng = Lcg(0x5eed);
    let encoded: Vec<Bytes> = (0..EXPORTS)
        .map(|e| export(e * 22, &mut rng).encode_to_vec().into())
        .collect();
    let spans = (EXPORTS * 22 * 23) as f64;
    // Smaller than what the rounds insert, so eviction is part of the cost.
    let store = Store::new(Capacities {
        spans: 100_000,
        log_records: 0,
        metric_series: 0,
        span_bytes: usize::MAX,
        log_bytes: usize::MAX,
    });
    let derived = Derived::new(DerivedLimits::default());
    let per_span = |started: u64| (cpu_nanos() - started) as f64 / spans;
    // The fastest of several rounds: the machine is shared.
    let mut best = [f64::MAX; 4];
    for _ in 0..6 {
        let started = cpu_nanos();
        for bytes in &encoded {
            drop(ExportTraceServiceRequest::decode(bytes.as_ref()).expect("decodes"));
        }
        let prost = per_span(started);
        let started = cpu_nanos();
        let checked: Vec<_> = encoded
            .iter()
            .map(|bytes| traces::check(bytes.clone()).expect("checks"))
            .collect();
        let check = per_span(started);
        let started = cpu_nanos();
        for c in &checked {
            store.insert_export(&c.export, &mut ());
        }
        let insert = per_span(started);
        let started = cpu_nanos();
        for c in &checked {
            let mut derived = derived.batch();
            store.insert_export(&c.export, &mut derived);
            derived.finish(crate::model::now_unix_nano());
        }
        let both = per_span(started);
        for (best, now) in best.iter_mut().zip([prost, check, insert, both]) {
            *best = best.min(now);
        }
    }
    let [prost, check, insert, both] = best;
    println!(
        "CPU ns per span, best of 6: prost decode+free {prost:.0} | check {check:.0}, store {insert:.0}, store+derived {both:.0}; check+store+derived = {:.2} x prost",
        (check + both) / prost
    );
}
