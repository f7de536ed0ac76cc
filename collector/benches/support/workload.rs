//! The benchmark's workload: mesh-shaped trace exports, seeded. Shared by
//! the benchmark (`collector.rs`) and the collector's per-stage cost probe
//! (`src/pipeline/cost.rs`); both include this file by path, so both
//! measure the same spans.

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value as AnyKind},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status},
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
pub const SPANS_PER_TRACE: u64 = 23;
/// What an SDK batch processor typically sends in one export.
pub const SPANS_PER_EXPORT: u64 = 23 * 22;

/// A 64-bit LCG: deterministic, dependency-free, good enough for shapes.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn draw(&mut self) -> u64 {
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

/// `count` exports; trace ids start after `first_trace`.
pub fn build_exports(count: u64, first_trace: u64) -> Vec<ExportTraceServiceRequest> {
    let mut rng = Lcg(0x5eed ^ first_trace);
    let traces_per_export = SPANS_PER_EXPORT / SPANS_PER_TRACE;
    (0..count)
        .map(|e| {
            let first = first_trace + e * traces_per_export;
            export((first..first + traces_per_export).collect(), &mut rng)
        })
        .collect()
}

fn export(traces: Vec<u64>, rng: &mut Lcg) -> ExportTraceServiceRequest {
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let base = 1_700_000_000_000_000_000u64;
    for trace in traces {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(trace + 1).to_be_bytes());
        trace_id[8..].copy_from_slice(&rng.draw().to_be_bytes());
        for i in 0..SPANS_PER_TRACE {
            let service = if i == 0 {
                0
            } else {
                (rng.draw() % 11 + 1) as usize
            };
            let start = base + trace * 1_000_000 + i * 1_000;
            let duration = 100_000 + rng.draw() % 50_000_000;
            let status = rng.draw().is_multiple_of(50);
            let route = [
                "/api/products/{id}",
                "/api/cart",
                "/api/checkout",
                "/api/search",
            ][(rng.draw() % 4) as usize];
            by_service[service].push(Span {
                trace_id: trace_id.to_vec(),
                span_id: ((trace << 8) + i + 1).to_be_bytes().to_vec(),
                parent_span_id: if i == 0 {
                    Vec::new()
                } else {
                    ((trace << 8) + 1).to_be_bytes().to_vec()
                },
                name: format!("{} {route}", if i % 2 == 0 { "GET" } else { "POST" }),
                kind: if i % 2 == 0 { 2 } else { 3 },
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration,
                attributes: vec![
                    kv(
                        "http.request.method",
                        s(if i % 2 == 0 { "GET" } else { "POST" }),
                    ),
                    kv("http.route", s(route)),
                    kv(
                        "url.path",
                        s(&format!("/api/products/{}", rng.draw() % 1000)),
                    ),
                    kv(
                        "http.response.status_code",
                        AnyKind::IntValue(if status { 500 } else { 200 }),
                    ),
                    kv("server.address", s(SERVICES[service])),
                    kv("server.port", AnyKind::IntValue(8080)),
                    kv("network.protocol.version", s("1.1")),
                    kv("user_agent.original", s("firedrill-loadgen/0.1")),
                    kv(
                        "firedrill.user.id",
                        s(&format!("user-{}", rng.draw() % 5000)),
                    ),
                    kv("firedrill.retry", AnyKind::BoolValue(false)),
                ],
                status: status.then(|| Status {
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

pub fn span_count(request: &ExportTraceServiceRequest) -> u64 {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}
