//! The collector's benchmarks: `cargo bench -p firedrill-collector --bench collector`.
//!
//! Not a criterion harness: each figure needs a running collector on real
//! sockets, so this is a plain program that starts one (`run` on port 0),
//! drives it over OTLP/gRPC and the query API, and prints a table:
//!
//! 1. ingest: OTLP/gRPC trace exports of mesh-shaped spans, in spans per
//!    second of *collector* CPU time (the collector's threads only, read
//!    from /proc, so the load generator in the same process does not
//!    count), next to a decode-and-discard gRPC server measured the same way
//!    in the same run;
//! 2. memory: resident bytes per stored span after loading 1M spans;
//! 3. query latency with those 1M spans stored: trace by id and searches,
//!    p50/p99 over the HTTP query API.
//!
//! Spans have the mesh's typical shape: ~23 per trace across 12 services,
//! 10 attributes each, resource with service name, version, instance id
//! and environment. All randomness is seeded.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use firedrill_collector::{CollectorConfig, Listeners, run};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_client::TraceServiceClient,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[path = "support/workload.rs"]
mod workload;

use workload::{Lcg, SPANS_PER_EXPORT, SPANS_PER_TRACE, build_exports, span_count};

const STORED_SPANS: u64 = 1_000_000;
const CLIENTS: usize = 4;
const THROUGHPUT_RUN: Duration = Duration::from_secs(8);
const QUERY_SAMPLES: usize = 300;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would run this
    // as a smoke test, which it is not.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let collector_rt = runtime("collector-rt", 2);
    let client_rt = runtime("bench-client", 2);
    println!("machine: {}", machine());

    let exports = Arc::new(build_exports(200, 0));
    let baseline = client_rt.block_on(throughput(
        &collector_rt,
        Server::DecodeAndDiscard,
        &exports,
    ));
    let ingest = client_rt.block_on(throughput(&collector_rt, Server::Collector, &exports));
    println!(
        "ingest (OTLP/gRPC, {CLIENTS} clients, {SPANS_PER_EXPORT} spans/export): collector {:.0} spans/s per CPU-second ({:.0} spans/s wall), decode-and-discard baseline {:.0} spans/s per CPU-second ({:.0} wall); ratio {:.2}",
        ingest.per_cpu_second,
        ingest.per_wall_second,
        baseline.per_cpu_second,
        baseline.per_wall_second,
        ingest.per_cpu_second / baseline.per_cpu_second
    );
    client_rt.block_on(stored_million(&collector_rt));
}

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores available")
}

// === servers ===

#[derive(Clone, Copy)]
enum Server {
    Collector,
    DecodeAndDiscard,
}

/// tonic decodes the request before calling this; dropping it is all
/// that is left.
struct Discard;

#[tonic::async_trait]
impl TraceService for Discard {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        drop(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

struct Running {
    grpc: SocketAddr,
    query: Option<SocketAddr>,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

fn big_config() -> CollectorConfig {
    CollectorConfig {
        max_spans: 2 * STORED_SPANS as usize,
        max_span_bytes: 16 << 30,
        memory_limit: 32 << 30,
        queue_bytes: 64 << 20,
        ..CollectorConfig::default()
    }
}

/// Starts `server` on the collector's runtime (so its CPU time is the
/// collector's), from a task on the load generator's runtime.
async fn start(rt: &tokio::runtime::Runtime, server: Server) -> Running {
    let started = rt.spawn(async move {
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let grpc_addr = grpc.local_addr().expect("address");
        let stop = CancellationToken::new();
        match server {
            Server::Collector => {
                let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let query = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let query_addr = query.local_addr().expect("address");
                let listeners = Listeners { grpc, http, query };
                let token = stop.clone();
                let done = tokio::spawn(async move {
                    run(big_config(), listeners, token)
                        .await
                        .expect("collector runs");
                });
                Running {
                    grpc: grpc_addr,
                    query: Some(query_addr),
                    stop,
                    done,
                }
            }
            Server::DecodeAndDiscard => {
                let token = stop.clone();
                let done = tokio::spawn(async move {
                    tonic::transport::Server::builder()
                        .add_service(
                            TraceServiceServer::new(Discard).max_decoding_message_size(64 << 20),
                        )
                        .serve_with_incoming_shutdown(
                            tonic::transport::server::TcpIncoming::from(grpc),
                            token.cancelled_owned(),
                        )
                        .await
                        .expect("baseline server runs");
                });
                Running {
                    grpc: grpc_addr,
                    query: None,
                    stop,
                    done,
                }
            }
        }
    });
    started.await.expect("server starts")
}

async fn stop(running: Running) {
    running.stop.cancel();
    running.done.await.expect("server stops");
}

/// CPU seconds used so far by this process's threads whose name starts
/// with `collector` (the collector's runtime and its pipeline thread).
fn collector_cpu_seconds() -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc")
        .flatten()
    {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("collector") {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: utime is the 12th, stime the 13th.
        let after_name = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ticks += field(11) + field(12);
    }
    ticks as f64 / ticks_per_second
}

// === ingest ===

struct Throughput {
    per_cpu_second: f64,
    per_wall_second: f64,
}

async fn throughput(
    rt: &tokio::runtime::Runtime,
    server: Server,
    exports: &Arc<Vec<ExportTraceServiceRequest>>,
) -> Throughput {
    let running = start(rt, server).await;
    let endpoint = format!("http://{}", running.grpc);
    let accepted = Arc::new(AtomicU64::new(0));
    let cpu_before = collector_cpu_seconds();
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let exports = Arc::clone(exports);
        let accepted = Arc::clone(&accepted);
        let endpoint = endpoint.clone();
        clients.spawn(async move {
            let mut client = TraceServiceClient::connect(endpoint)
                .await
                .expect("connect")
                .max_encoding_message_size(64 << 20);
            let mut i = c;
            while started.elapsed() < THROUGHPUT_RUN {
                let request = exports[i % exports.len()].clone();
                let spans = span_count(&request);
                if client.export(request).await.is_ok() {
                    accepted.fetch_add(spans, Ordering::Relaxed);
                }
                i += CLIENTS;
            }
        });
    }
    while clients.join_next().await.is_some() {}
    if let Some(query) = running.query {
        wait_for_empty_queue(query).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = collector_cpu_seconds() - cpu_before;
    stop(running).await;
    let spans = accepted.load(Ordering::Relaxed) as f64;
    Throughput {
        per_cpu_second: spans / cpu.max(0.01),
        per_wall_second: spans / wall,
    }
}

async fn metric(query: SocketAddr, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{query}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

async fn wait_for_empty_queue(query: SocketAddr) {
    while metric(query, "firedrill_collector_queue_bytes").await != 0.0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// === 1M spans: memory and queries ===

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

async fn stored_million(rt: &tokio::runtime::Runtime) {
    let running = start(rt, Server::Collector).await;
    let query = running.query.expect("collector has a query API");
    let exports_needed = STORED_SPANS.div_ceil(SPANS_PER_EXPORT);
    let mut client = TraceServiceClient::connect(format!("http://{}", running.grpc))
        .await
        .expect("connect")
        .max_encoding_message_size(64 << 20);
    let before = resident_bytes();
    let mut sent = 0;
    // Built in chunks, so the load generator's own memory stays small.
    for chunk in 0..exports_needed.div_ceil(100) {
        let first = chunk * 100;
        let count = (exports_needed - first).min(100);
        let traces_per_export = SPANS_PER_EXPORT / SPANS_PER_TRACE;
        for request in build_exports(count, first * traces_per_export) {
            let spans = span_count(&request);
            loop {
                match client.export(request.clone()).await {
                    Ok(_) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            sent += spans;
        }
    }
    wait_for_empty_queue(query).await;
    let after = resident_bytes();
    let stored = metric(query, r#"firedrill_collector_store_items{store="spans"}"#).await;
    let estimate = metric(query, r#"firedrill_collector_store_bytes{store="spans"}"#).await;
    println!(
        "memory: {sent} spans sent, {stored} stored; resident grew {} MiB = {:.0} bytes/span (store's own estimate {:.0} bytes/span)",
        after.saturating_sub(before) >> 20,
        after.saturating_sub(before) as f64 / stored,
        estimate / stored
    );

    let traces = sent / SPANS_PER_TRACE;
    let mut rng = Lcg(42);
    let http = reqwest::Client::new();
    let mut by_id = Vec::with_capacity(QUERY_SAMPLES);
    for _ in 0..QUERY_SAMPLES {
        // Trace ids are (n+1, random): find one through its first 8 bytes
        // by asking the store for the id we built.
        let n = rng.draw() % traces;
        let id = trace_id_of(n);
        let asked = Instant::now();
        let response = http
            .get(format!("http://{query}/api/traces/{id}"))
            .send()
            .await
            .expect("query");
        let status = response.status();
        let body = response.bytes().await.expect("body");
        by_id.push(asked.elapsed());
        assert!(status.is_success(), "trace {id}: {status}");
        assert!(body.len() > 1000);
    }
    report("trace by id (23 spans)", &mut by_id);
    let now_us = 1_700_000_000_000_000u64 + traces * 1_000 + 1_000_000;
    let searches = [
        ("search service, limit 20", "service=checkout&limit=20".to_owned()),
        (
            "search service+operation+tag, limit 20",
            r#"service=payment&operation=POST%20/api/checkout&tags=%7B%22http.response.status_code%22%3A%22500%22%7D&limit=20"#.to_owned(),
        ),
        (
            "search service+minDuration 45ms+time range, limit 20",
            format!("service=cart&minDuration=45ms&start=1700000000000000&end={now_us}&limit=20"),
        ),
        (
            "search tag matching nothing (full scan of a service)",
            r#"service=shipping&tags=%7B%22firedrill.user.id%22%3A%22nobody%22%7D&limit=20"#.to_owned(),
        ),
    ];
    for (name, params) in searches {
        let mut samples = Vec::with_capacity(QUERY_SAMPLES / 3);
        for _ in 0..QUERY_SAMPLES / 3 {
            let asked = Instant::now();
            let response = http
                .get(format!("http://{query}/api/traces?{params}"))
                .send()
                .await
                .expect("query");
            assert!(response.status().is_success(), "{name}");
            response.bytes().await.expect("body");
            samples.push(asked.elapsed());
        }
        report(name, &mut samples);
    }
    stop(running).await;
}

/// The trace id `build_exports` gave trace number `n`: its second half is
/// random, so rebuild the export that holds it.
fn trace_id_of(n: u64) -> String {
    let traces_per_export = SPANS_PER_EXPORT / SPANS_PER_TRACE;
    let export_index = n / traces_per_export;
    let chunk = export_index / 100;
    let first = chunk * 100;
    let exports = build_exports(export_index - first + 1, first * traces_per_export);
    let wanted = (n + 1).to_be_bytes();
    let request = exports.last().expect("an export");
    let span = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .find(|s| s.trace_id[..8] == wanted)
        .expect("the trace is in its export");
    hex(&span.trace_id)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn report(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "query {name}: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples.len()
    );
}
