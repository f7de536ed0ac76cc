//! The client and server stacks against real sockets: balancing, retries,
//! breakers, timeouts, limits and shedding behave as production relies on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};
use firedrill_runtime::ServiceContext;
use firedrill_runtime::client::CallError;
use firedrill_runtime::config::parse_service_args;
use firedrill_runtime::metrics::Meters;
use firedrill_runtime::server::serve;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `router` on a free port; returns its base URL.
async fn start(router: Router, stop: &CancellationToken) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(router, listener, stop.clone()));
    url
}

/// A URL nothing listens on.
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn context(peers: &str, extra: &[&str]) -> ServiceContext {
    context_of("caller", peers, extra)
}

/// A context for a process of `service` (faults are assigned by service).
fn context_of(service: &str, peers: &str, extra: &[&str]) -> ServiceContext {
    let mut flags = vec!["--peers", peers];
    flags.extend_from_slice(extra);
    let args = parse_service_args(&flags).unwrap();
    let meters = Meters::new(&args.identity(service));
    ServiceContext::new(service, args, meters, CancellationToken::new()).unwrap()
}

/// A GET handler that answers its `n`th call (from 0) with `status(n)`,
/// counting the calls in `calls`.
fn answering(calls: Arc<AtomicUsize>, status: fn(usize) -> StatusCode) -> MethodRouter {
    get(move || {
        let calls = calls.clone();
        async move { status(calls.fetch_add(1, Ordering::Relaxed)) }
    })
}

fn counting(hits: Arc<AtomicUsize>) -> Router {
    Router::new().route(
        "/ping",
        get(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::Relaxed);
                "pong"
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_spread_across_instances() {
    let stop = CancellationToken::new();
    let (a, b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let url_a = start(counting(a.clone()), &stop).await;
    let url_b = start(counting(b.clone()), &stop).await;
    let ctx = context(&format!("svc={url_a},{url_b}"), &[]);
    let peer = ctx.peer("svc").unwrap();
    for _ in 0..200 {
        peer.get("/ping", "/ping").send().await.unwrap();
    }
    let (a, b) = (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
    assert_eq!(a + b, 200);
    assert!(a > 40 && b > 40, "uneven split {a}/{b}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instance_trips_its_breaker_and_traffic_moves_away() {
    let stop = CancellationToken::new();
    let hits = Arc::new(AtomicUsize::new(0));
    let live = start(counting(hits.clone()), &stop).await;
    let dead = dead_url().await;
    let ctx = context(
        &format!("svc={live},{dead}"),
        &["--breaker-failures", "3", "--retry-backoff", "1ms"],
    );
    let peer = ctx.peer("svc").unwrap();
    // Every call succeeds: connect failures are retried on the live instance.
    for _ in 0..50 {
        peer.get("/ping", "/ping")
            .send()
            .await
            .expect("retried onto the live instance");
    }
    let text = ctx.meters.encode();
    assert!(
        text.contains(
            "circuit_breaker_state{server_address=\"svc\",server_instance=\""
                .to_string()
                .as_str()
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("server_instance=\"{dead}\"}} 2.0")),
        "dead instance breaker open: {text}"
    );
    assert!(
        text.contains("http_client_retries_total{server_address=\"svc\"}"),
        "{text}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_calls_retry_5xx_and_posts_do_not() {
    let stop = CancellationToken::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky = Router::new().route(
        "/flaky",
        answering(calls.clone(), |n| {
            if n < 2 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        })
        .post(|| async { StatusCode::SERVICE_UNAVAILABLE }),
    );
    let url = start(flaky, &stop).await;
    let ctx = context(
        &format!("svc={url}"),
        &[
            "--call-retries",
            "2",
            "--retry-backoff",
            "1ms",
            "--breaker-failures",
            "0",
        ],
    );
    let peer = ctx.peer("svc").unwrap();
    peer.get("/flaky", "/flaky")
        .send()
        .await
        .expect("third attempt succeeds");
    assert_eq!(calls.load(Ordering::Relaxed), 3);

    let err = peer
        .post("/flaky", "/flaky", &serde_json::json!({}))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_peer_times_out_at_the_call_timeout() {
    let stop = CancellationToken::new();
    let hang = Router::new().route(
        "/hang",
        get(|| async { std::future::pending::<()>().await }),
    );
    let url = start(hang, &stop).await;
    let ctx = context(
        &format!("svc={url}"),
        &["--call-timeout", "150ms", "--call-retries", "0"],
    );
    let started = Instant::now();
    let err = ctx
        .peer("svc")
        .unwrap()
        .get("/hang", "/hang")
        .send()
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stack_limits_sheds_and_answers_json() {
    let stop = CancellationToken::new();
    let release = Arc::new(tokio::sync::Notify::new());
    let entered = Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    let e = entered.clone();
    let routes = Router::new()
        .route(
            "/echo",
            post(
                |firedrill_runtime::extract::Json(v): firedrill_runtime::extract::Json<
                    serde_json::Value,
                >| async move { axum::Json(v) },
            ),
        )
        .route(
            "/slow",
            get(move || {
                let (r, e) = (r.clone(), e.clone());
                async move {
                    e.notify_one();
                    r.notified().await
                }
            }),
        );
    let ctx = context("", &["--max-body-bytes", "1024", "--max-in-flight", "1"]);
    let url = start(ctx.app(routes), &stop).await;
    let http = reqwest::Client::new();

    let big = http
        .post(format!("{url}/echo"))
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let bad = http
        .post(format!("{url}/echo"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let missing = http.get(format!("{url}/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // One slow request fills the in-flight budget; the next is shed. Nothing
    // else is sent until the slow one is inside its handler: a probe in
    // flight at the same moment would take the only slot and get the slow
    // request shed instead.
    let slow = loop {
        let mut slow = tokio::spawn({
            let http = http.clone();
            let url = url.clone();
            async move {
                http.get(format!("{url}/slow"))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        });
        tokio::select! {
            _ = entered.notified() => break slow,
            // Shed itself: an earlier request's slot was not yet given back.
            status = &mut slow => assert_eq!(status.unwrap(), 503),
        }
    };
    let shed = http.get(format!("{url}/echo")).send().await.unwrap();
    assert_eq!(shed.status(), 503);
    assert!(shed.text().await.unwrap().contains("capacity"));
    release.notify_waiters();
    release.notify_one();
    assert_eq!(slow.await.unwrap(), 200);

    let metrics = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("http_server_shed_requests_total"), "{text}");
    assert!(
        text.contains("http_route=\"/echo\",http_response_status_code=\"413\""),
        "{text}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_times_out_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("t.db");
    let ctx = context(
        "",
        &[
            "--database",
            db_path.to_str().unwrap(),
            "--db-pool-size",
            "1",
            "--db-acquire-timeout",
            "100ms",
        ],
    );
    let db = ctx.db().unwrap();
    let q = firedrill_runtime::db::Query {
        operation: "SELECT",
        collection: "t",
        text: "SELECT 1",
    };
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let holder = {
        let db = db.clone();
        tokio::spawn(async move {
            db.run(q, move |_conn| {
                let _ = started_tx.send(());
                let _ = held_rx.recv();
                Ok(())
            })
            .await
        })
    };
    started_rx.await.unwrap();
    let err = db
        .run(q, |c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no connection free"), "{err}");
    held_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
    assert_eq!(
        db.run(q, |c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await
            .unwrap(),
        1
    );
    let text = ctx.meters.encode();
    assert!(
        text.contains(
            "db_client_connection_timeouts_total{db_client_connection_pool_name=\"caller\"} 1.0"
        ),
        "{text}"
    );
    assert!(
        text.contains("db_client_operation_duration_seconds_bucket{"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_cuts_requests_upstream_and_answers_downstream() {
    use firedrill_runtime::faults::ActiveFault;
    use firedrill_runtime::faults::model::{Direction, FaultKind, FaultSpec, Target};

    let stop = CancellationToken::new();
    let hits = Arc::new(AtomicUsize::new(0));
    let url = start(counting(hits.clone()), &stop).await;
    let peers = format!("payment-provider={url}");
    let args = parse_service_args(&[
        "--peers",
        &peers,
        "--call-retries",
        "0",
        "--call-timeout",
        "300ms",
    ])
    .unwrap();
    let meters = Meters::new(&args.identity("payment"));
    let ctx = ServiceContext::new("payment", args, meters, CancellationToken::new()).unwrap();
    let peer = ctx.peer("payment-provider").unwrap();
    let partition = |direction| {
        ctx.faults.assign(vec![ActiveFault {
            id: "p".into(),
            spec: FaultSpec {
                kind: FaultKind::Partition { direction },
                target: Target::parse("payment->payment-provider").unwrap(),
                toxicity: 1.0,
            },
            until: std::time::Instant::now() + Duration::from_secs(60),
        }]);
    };

    partition(Direction::Upstream);
    let err = peer.get("/ping", "/ping").send().await.unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert_eq!(hits.load(Ordering::Relaxed), 0, "no request got through");

    // Downstream: the callee serves the request, the caller never hears.
    partition(Direction::Downstream);
    let started = Instant::now();
    let err = peer.get("/ping", "/ping").send().await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert_eq!(hits.load(Ordering::Relaxed), 1, "the callee did the work");
    stop.cancel();
}

/// Assigns one fault on `target` to the process of `ctx`, for a minute.
fn assign(ctx: &ServiceContext, target: &str, kind: firedrill_runtime::faults::model::FaultKind) {
    use firedrill_runtime::faults::ActiveFault;
    use firedrill_runtime::faults::model::{FaultSpec, Target};
    let spec = FaultSpec {
        kind,
        target: Target::parse(target).unwrap(),
        toxicity: 1.0,
    };
    spec.validate().unwrap();
    ctx.faults.assign(vec![ActiveFault {
        id: "f".into(),
        spec,
        until: Instant::now() + Duration::from_secs(60),
    }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_dns_record_sends_calls_to_the_old_address() {
    use firedrill_runtime::faults::model::FaultKind;

    let stop = CancellationToken::new();
    let (shipping, squatter) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let shipping_url = start(counting(shipping.clone()), &stop).await;
    // The old address now belongs to another service, which has no /ping.
    let other = Router::new().fallback(move || {
        let squatter = squatter.clone();
        async move {
            squatter.fetch_add(1, Ordering::Relaxed);
            (StatusCode::NOT_FOUND, "no such route")
        }
    });
    let other_url = start(other, &stop).await;
    let ctx = context_of(
        "checkout",
        &format!("shipping={shipping_url}"),
        &["--call-retries", "0"],
    );
    let peer = ctx.peer("shipping").unwrap();

    let old = other_url.trim_start_matches("http://").to_string();
    assign(
        &ctx,
        "checkout->shipping",
        FaultKind::DnsStale { address: old },
    );
    let err = peer.get("/ping", "/ping").send().await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{err}");
    assert_eq!(shipping.load(Ordering::Relaxed), 0, "shipping never hears");

    // By default the record points where nothing listens any more: the
    // operating system refuses the connection.
    assign(
        &ctx,
        "checkout->shipping",
        FaultKind::DnsStale {
            address: "127.0.0.1:1".into(),
        },
    );
    let err = peer.get("/ping", "/ping").send().await.unwrap_err();
    assert!(matches!(err, CallError::Connect { .. }), "{err}");
    assert!(
        err.to_string()
            .to_lowercase()
            .contains("connection refused"),
        "{err}"
    );
    assert_eq!(shipping.load(Ordering::Relaxed), 0);

    // A fresh record: calls reach shipping again.
    ctx.faults.assign(Vec::new());
    peer.get("/ping", "/ping").send().await.unwrap();
    assert_eq!(shipping.load(Ordering::Relaxed), 1);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_amplification_multiplies_the_calls_a_failing_peer_gets() {
    use firedrill_runtime::faults::model::FaultKind;

    let stop = CancellationToken::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Router::new().route(
        "/busy",
        answering(calls.clone(), |_| StatusCode::SERVICE_UNAVAILABLE),
    );
    let url = start(failing, &stop).await;
    let ctx = context_of(
        "checkout",
        &format!("payment={url}"),
        &["--retry-backoff", "1ms", "--breaker-failures", "0"],
    );
    // The live config says: up to three retries, within a budget of 0.1
    // retries per call.
    let mut policy = firedrill_runtime::live::ConfigPatch::default();
    policy.set("retries.count", &serde_json::json!(3)).unwrap();
    policy
        .set("retries.budget", &serde_json::json!(0.1))
        .unwrap();
    ctx.live.apply(1, &policy);
    let peer = ctx.peer("payment").unwrap();
    for _ in 0..20 {
        peer.get("/busy", "/busy").send().await.unwrap_err();
    }
    let budgeted = calls.swap(0, Ordering::Relaxed);
    assert!(
        (20..=23).contains(&budgeted),
        "the budget holds retries to ~10 %: {budgeted} calls"
    );

    assign(
        &ctx,
        "checkout->payment",
        FaultKind::RetryAmplification { attempts: 4 },
    );
    for _ in 0..20 {
        peer.get("/busy", "/busy").send().await.unwrap_err();
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        100,
        "every call is tried 1 + 4 times, budget or not"
    );
    stop.cancel();
}
