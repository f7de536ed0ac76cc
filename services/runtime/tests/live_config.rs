//! The live config acting on real calls, pools and servers: a pushed
//! timeout cuts calls short, a retry budget stops retries, a drained
//! instance gets no traffic, a rate limit answers 429, a resized pool holds
//! that many connections, and each new version is logged and exposed.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use firedrill_runtime::client::CallError;
use firedrill_runtime::faults::actuators::Actuators;
use firedrill_runtime::faults::agent::{self, AgentConfig};
use firedrill_runtime::live::ConfigPatch;
use firedrill_runtime::testing::{self, TestService, spawn_peer};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn values(pairs: &[(&str, Value)]) -> ConfigPatch {
    let mut values = ConfigPatch::default();
    for (key, value) in pairs {
        values.set(key, value).unwrap();
    }
    values.validate().unwrap();
    values
}

/// A peer whose `/ping` counts its calls; `/slow` answers after 200 ms;
/// `/broken` always answers 503.
fn peer(hits: Arc<AtomicUsize>) -> Router {
    let broken = hits.clone();
    Router::new()
        .route(
            "/ping",
            get(move || {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::Relaxed);
                    "pong"
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                "late"
            }),
        )
        .route(
            "/broken",
            get(move || {
                let hits = broken.clone();
                async move {
                    hits.fetch_add(1, Ordering::Relaxed);
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }),
        )
}

/// Polls `check` until it holds, failing the test after five seconds.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_timeout_cuts_calls_short_until_it_is_rolled_back() {
    let url = spawn_peer(peer(Arc::default())).await;
    let ctx = testing::context(
        "checkout",
        &["--peers", &format!("payment={url}"), "--call-retries", "0"],
    );
    let payment = ctx.peer("payment").unwrap();
    payment
        .get("/slow", "/slow")
        .send()
        .await
        .expect("2s is enough");

    ctx.live
        .apply(1, &values(&[("timeouts.payment", json!("50ms"))]));
    let started = Instant::now();
    let err = payment.get("/slow", "/slow").send().await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, CallError::Timeout { after, .. } if after == Duration::from_millis(50)),
        "{err}"
    );
    assert!(waited < Duration::from_millis(190), "{waited:?}");

    ctx.live.apply(2, &ConfigPatch::default());
    payment
        .get("/slow", "/slow")
        .send()
        .await
        .expect("back to the flags' timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_live_count_and_budget() {
    let hits = Arc::new(AtomicUsize::new(0));
    let url = spawn_peer(peer(hits.clone())).await;
    let ctx = testing::context(
        "checkout",
        &[
            "--peers",
            &format!("payment={url}"),
            "--call-retries",
            "3",
            "--retry-backoff",
            "1ms",
            "--breaker-failures",
            "0",
        ],
    );
    let payment = ctx.peer("payment").unwrap();
    let calls = |n: usize| {
        let payment = payment.clone();
        async move {
            for _ in 0..n {
                payment.get("/broken", "/broken").send().await.unwrap_err();
            }
        }
    };
    calls(1).await;
    assert_eq!(hits.swap(0, Ordering::Relaxed), 4, "1 call + 3 retries");

    ctx.live.apply(1, &values(&[("retries.count", json!(1))]));
    calls(1).await;
    assert_eq!(hits.swap(0, Ordering::Relaxed), 2);

    // A budget of 0.1 retries per call: 20 failing calls make about 2
    // retries, not 20.
    ctx.live.apply(
        2,
        &values(&[("retries.count", json!(3)), ("retries.budget", json!(0.1))]),
    );
    calls(20).await;
    let attempts = hits.swap(0, Ordering::Relaxed);
    assert!((20..=23).contains(&attempts), "{attempts}");
    let text = ctx.meters.encode();
    assert!(
        text.contains("http_client_retry_budget_exhausted_total{server_address=\"payment\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_instance_gets_no_calls_until_undrained() {
    let (one, two) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let url_one = spawn_peer(peer(one.clone())).await;
    let url_two = spawn_peer(peer(two.clone())).await;
    let ctx = testing::context(
        "checkout",
        &["--peers", &format!("payment={url_one},{url_two}")],
    );
    let payment = ctx.peer("payment").unwrap();

    ctx.live
        .set_drained(BTreeSet::from(["payment-2".to_string()]));
    for _ in 0..100 {
        payment.get("/ping", "/ping").send().await.unwrap();
    }
    assert_eq!(
        (one.load(Ordering::Relaxed), two.load(Ordering::Relaxed)),
        (100, 0)
    );

    ctx.live.set_drained(BTreeSet::new());
    for _ in 0..100 {
        payment.get("/ping", "/ping").send().await.unwrap();
    }
    assert!(two.load(Ordering::Relaxed) > 20, "payment-2 is back");

    // Every instance drained: the caller has nowhere to go.
    ctx.live.set_drained(BTreeSet::from([
        "payment-1".to_string(),
        "payment-2".to_string(),
    ]));
    let err = payment.get("/ping", "/ping").send().await.unwrap_err();
    assert!(matches!(err, CallError::NoInstance { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_over_its_rate_limit_answers_429() {
    let service = TestService::start(
        "gateway",
        |_ctx| async {
            Ok(Router::new()
                .route("/api/products", get(|| async { "products" }))
                .route("/api/cart", get(|| async { "cart" })))
        },
        &[],
    )
    .await;
    let live = &service.context().live;
    live.apply(1, &values(&[("rateLimits./api/products", json!(1))]));

    let (status, _) = service.raw(Method::GET, "/api/products", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = service.call(Method::GET, "/api/products", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body["error"],
        "rate limit exceeded: /api/products accepts 1 requests per second"
    );
    let (status, _) = service.raw(Method::GET, "/api/cart", None).await;
    assert_eq!(status, StatusCode::OK, "other routes are not limited");

    let metrics = service.metrics().await;
    assert!(
        metrics.contains("http_server_rate_limited_requests_total{http_route=\"/api/products\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_route=\"/api/products\",http_response_status_code=\"429\""),
        "429s are in the RED metrics: {metrics}"
    );

    live.apply(2, &values(&[("rateLimits./api/products", json!(0))]));
    for _ in 0..5 {
        let (status, _) = service.raw(Method::GET, "/api/products", None).await;
        assert_eq!(status, StatusCode::OK, "0 lifts the limit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resized_pool_holds_that_many_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let ctx = testing::context(
        "inventory",
        &[
            "--database",
            path.to_str().unwrap(),
            "--db-pool-size",
            "4",
            "--db-acquire-timeout",
            "100ms",
        ],
    );
    let db = ctx.db().unwrap();
    let query = firedrill_runtime::db::Query {
        operation: "SELECT",
        collection: "t",
        text: "SELECT 1",
    };
    let select = |c: &mut rusqlite::Connection| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0));

    ctx.live.apply(1, &values(&[("db.poolSize", json!(1))]));
    assert_eq!(db.pool_size(), 1);
    // One query holds the only connection: the next waits and gives up.
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let holder = {
        let db = db.clone();
        tokio::spawn(async move {
            db.run(query, move |_conn| {
                let _ = started_tx.send(());
                let _ = held_rx.recv();
                Ok(())
            })
            .await
        })
    };
    started_rx.await.unwrap();
    let err = db.run(query, select).await.unwrap_err();
    assert!(err.to_string().contains("(1 in use)"), "{err}");

    // Grown back, a second query runs beside the held one.
    ctx.live.apply(2, &values(&[("db.poolSize", json!(3))]));
    assert_eq!(db.run(query, select).await.unwrap(), 1);
    held_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let text = ctx.meters.encode();
    assert!(
        text.contains("db_client_connection_max{db_client_connection_pool_name=\"inventory\"} 3"),
        "{text}"
    );
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_version_is_logged_and_exposed() {
    let service = TestService::start("checkout", |_ctx| async { Ok(Router::new()) }, &[]).await;
    let live = service.context().live.clone();
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        live.apply(
            7,
            &values(&[
                ("timeouts.payment", json!("50ms")),
                ("flags.recommendations", json!(0.5)),
            ]),
        );
        live.apply(7, &ConfigPatch::default());
    });
    let text = String::from_utf8(logs.0.lock().clone()).unwrap();
    assert_eq!(text.matches("config reloaded").count(), 1, "{text}");
    assert!(text.contains(" INFO "), "{text}");
    assert!(text.contains("config reloaded v7"), "{text}");
    assert!(
        text.contains("changed=timeouts.payment: 2000ms -> 50ms, flags.recommendations: 0 -> 0.5"),
        "{text}"
    );

    let metrics = service.metrics().await;
    assert!(
        metrics.contains("firedrill_config_info{service_name=\"checkout\",config_version=\"7\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("config_version=\"0\""), "{metrics}");
    assert!(
        metrics.contains("firedrill_config_version{service_name=\"checkout\"} 7"),
        "{metrics}"
    );
}

/// The agent end to end against a stand-in controller: what it answers is
/// applied, and lapses with the lease when it stops answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_applies_the_controllers_config_and_drains_under_a_lease() {
    let answering = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let up = answering.clone();
    let controller = spawn_peer(Router::new().route(
        "/v1/agent/faults",
        get(move || {
            let up = up.load(Ordering::Relaxed);
            async move {
                if !up {
                    return Err(StatusCode::SERVICE_UNAVAILABLE);
                }
                Ok(axum::Json(json!({
                    "leaseMs": 300,
                    "faults": [],
                    "config": { "version": 4, "values": { "timeouts": { "payment": 75 } } },
                    "drained": ["payment-2"],
                })))
            }
        }),
    ))
    .await;
    let ctx = testing::context("checkout", &[]);
    let stop = CancellationToken::new();
    agent::spawn(
        ctx.faults.clone(),
        Some(ctx.live.clone()),
        AgentConfig {
            controller: controller.clone(),
            token: "agent-token".into(),
            poll_every: Duration::from_millis(20),
        },
        Actuators::new(&ctx.faults, None),
        stop.clone(),
    );
    until("the agent to apply v4", || ctx.live.version() == 4).await;
    assert_eq!(
        ctx.live.config().timeout_for("payment"),
        Duration::from_millis(75)
    );
    assert!(ctx.live.drained().unwrap().contains("payment-2"));

    answering.store(false, Ordering::Relaxed);
    until("the lease to lapse", || ctx.live.version() == 0).await;
    assert!(ctx.live.drained().is_none());
    stop.cancel();
}
