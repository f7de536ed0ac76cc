//! A flood far beyond what the pipeline can take: exports are refused with
//! retryable statuses (429 + Retry-After over HTTP, UNAVAILABLE + RetryInfo
//! over gRPC), memory stays under the configured limit, queries keep
//! answering, and the counters add up to exactly what the senders saw.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use firedrill_collector::CollectorConfig;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
    common::v1::{AnyValue, KeyValue, any_value},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use prost::Message as _;

use crate::harness::{TestCollector, eventually, spawn_collector_with};

const SPANS_PER_EXPORT: u64 = 1_000;
const FLOOD_FOR: Duration = Duration::from_secs(3);
const MEMORY_LIMIT: usize = 256 << 20;

/// `google.rpc.Status` and `RetryInfo`, to read gRPC's status details.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// One export of mesh-shaped spans; `seed` makes its trace ids distinct.
fn export(seed: u64) -> ExportTraceServiceRequest {
    let spans = (0..SPANS_PER_EXPORT)
        .map(|i| {
            let n = seed * SPANS_PER_EXPORT + i + 1;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(n / 23 + 1).to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: n.to_be_bytes().to_vec(),
                name: "GET /api/products/{id}".into(),
                kind: 2,
                start_time_unix_nano: 1_700_000_000_000_000_000 + n,
                end_time_unix_nano: 1_700_000_000_002_000_000 + n,
                attributes: vec![
                    kv("http.request.method", "GET"),
                    kv("http.route", "/api/products/{id}"),
                    kv("url.path", &format!("/api/products/{}", n % 500)),
                    kv("server.address", "catalog"),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "flood")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// What the senders saw, in spans.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    refused: AtomicU64,
}

async fn flood_http(collector: Arc<TestCollector>, body: Vec<u8>, tally: Arc<Tally>) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < FLOOD_FOR {
        let response = client
            .post(collector.http_url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await
            .expect("the receiver answers under load");
        match response.status().as_u16() {
            200 => tally
                .accepted
                .fetch_add(SPANS_PER_EXPORT, Ordering::Relaxed),
            429 | 503 => {
                let retry_after = response.headers().get("retry-after");
                assert!(retry_after.is_some(), "a refusal without Retry-After");
                tally.refused.fetch_add(SPANS_PER_EXPORT, Ordering::Relaxed)
            }
            other => panic!("unexpected HTTP {other} under load"),
        };
    }
}

async fn flood_grpc(
    collector: Arc<TestCollector>,
    request: ExportTraceServiceRequest,
    tally: Arc<Tally>,
) {
    let mut client = TraceServiceClient::connect(collector.grpc_endpoint())
        .await
        .expect("connect to the gRPC receiver");
    let started = Instant::now();
    while started.elapsed() < FLOOD_FOR {
        match client.export(request.clone()).await {
            Ok(_) => tally
                .accepted
                .fetch_add(SPANS_PER_EXPORT, Ordering::Relaxed),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                let details = RpcStatus::decode(status.details()).expect("google.rpc.Status");
                let retry = details
                    .details
                    .iter()
                    .find(|d| d.type_url == "type.googleapis.com/google.rpc.RetryInfo")
                    .expect("a RetryInfo detail");
                let delay = RetryInfo::decode(retry.value.as_slice())
                    .expect("RetryInfo")
                    .retry_delay
                    .expect("a retry delay");
                assert!(delay.seconds >= 1, "{delay:?}");
                tally.refused.fetch_add(SPANS_PER_EXPORT, Ordering::Relaxed)
            }
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_is_refused_retryably_within_memory_while_queries_answer() {
    let config = CollectorConfig {
        memory_limit: MEMORY_LIMIT,
        queue_bytes: 512 << 10,
        max_spans: 50_000,
        max_span_bytes: 64 << 20,
        ..CollectorConfig::default()
    };
    let collector = Arc::new(spawn_collector_with(config).await);
    let tally = Arc::new(Tally::default());
    let flooding = Arc::new(AtomicBool::new(true));

    let mut senders = tokio::task::JoinSet::new();
    for seed in 0..12 {
        let request = export(seed);
        if seed % 3 == 0 {
            senders.spawn(flood_grpc(
                Arc::clone(&collector),
                request,
                Arc::clone(&tally),
            ));
        } else {
            let body = request.encode_to_vec();
            senders.spawn(flood_http(Arc::clone(&collector), body, Arc::clone(&tally)));
        }
    }
    // Queries during the flood: every one answers, and promptly.
    let querier = {
        let collector = Arc::clone(&collector);
        let flooding = Arc::clone(&flooding);
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut answered = 0;
            while flooding.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let (status, _) = collector.get_json("/api/services").await;
                assert_eq!(status, 200);
                let (status, _) = collector
                    .get_json("/api/traces?service=flood&limit=5")
                    .await;
                assert_eq!(status, 200);
                slowest = slowest.max(asked.elapsed());
                answered += 1;
            }
            (answered, slowest)
        })
    };
    let mut peak_resident = 0;
    while !senders.is_empty() {
        tokio::select! {
            joined = senders.join_next() => joined.expect("a sender").expect("sender does not panic"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {
                peak_resident = peak_resident.max(resident_bytes());
            }
        }
    }
    flooding.store(false, Ordering::Relaxed);
    let (answered, slowest) = querier.await.expect("querier does not panic");

    let accepted = tally.accepted.load(Ordering::Relaxed);
    let refused = tally.refused.load(Ordering::Relaxed);
    eprintln!(
        "offered {} spans, accepted {accepted} ({:.1}x overload); {answered} query rounds, slowest {slowest:?}; peak RSS {} MiB",
        accepted + refused,
        (accepted + refused) as f64 / accepted.max(1) as f64,
        peak_resident >> 20
    );
    assert!(
        refused > 0 && accepted > 0,
        "accepted {accepted}, refused {refused}"
    );
    // Generous: the flood saturates both cores of a small CI machine.
    assert!(
        answered > 0 && slowest < Duration::from_secs(5),
        "{slowest:?}"
    );
    assert!(
        peak_resident < MEMORY_LIMIT as u64,
        "peak resident {peak_resident} over the limit"
    );

    // Once the queue is empty, the collector's counters match the senders'.
    eventually("the queue to drain", || async {
        (collector
            .self_metric("firedrill_collector_queue_bytes")
            .await
            == 0.0)
            .then_some(())
    })
    .await;
    let items = |outcome: &str| {
        format!(r#"firedrill_collector_items_total{{signal="spans",outcome="{outcome}"}}"#)
    };
    let received = r#"firedrill_collector_received_items_total{signal="spans"}"#;
    assert_eq!(
        collector.self_metric(received).await,
        (accepted + refused) as f64
    );
    assert_eq!(
        collector.self_metric(&items("accepted")).await,
        accepted as f64
    );
    assert_eq!(
        collector.self_metric(&items("refused")).await,
        refused as f64
    );
    let evicted = collector.self_metric(&items("evicted")).await;
    let dropped = collector.self_metric(&items("dropped")).await;
    let stored = collector
        .self_metric(r#"firedrill_collector_store_items{store="spans"}"#)
        .await;
    assert_eq!(accepted as f64 - evicted - dropped, stored);
    Arc::into_inner(collector)
        .expect("senders are done")
        .stop()
        .await
        .expect("clean shutdown");
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}
