//! The cache service through its full server stack (`ctx.app`), driven with
//! `oneshot`: the contract in docs/internal-api.md and the TTL and stats
//! invariants.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use firedrill_cache::{NAME, build};
use firedrill_runtime::faults::model::{FaultKind, Millis};
use firedrill_runtime::testing::{FaultInjector, TestService};
use serde_json::{Value, json};

struct TestApp {
    service: TestService,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let service = TestService::start(NAME, build, &[]).await;
        TestApp { service }
    }

    async fn raw(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, String) {
        self.service.raw(method, uri, body).await
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let text = body.map(|b| b.to_string());
        self.service.call(method, uri, text.as_deref()).await
    }

    async fn put(&self, key: &str, value: Value, ttl_ms: u64) -> StatusCode {
        self.call(
            Method::PUT,
            &format!("/keys/{key}"),
            Some(json!({ "value": value, "ttl_ms": ttl_ms })),
        )
        .await
        .0
    }

    async fn get(&self, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, &format!("/keys/{key}"), None).await
    }
}

#[tokio::test]
async fn a_stored_value_is_returned_as_it_was_put() {
    let app = TestApp::spawn().await;
    let product = json!({"id": 7, "name": "Walnut Desk Lamp", "tags": ["a", "b"], "price": 12.5});
    assert_eq!(
        app.put("product:7", product.clone(), 30_000).await,
        StatusCode::NO_CONTENT
    );
    let (status, body) = app.get("product:7").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "value": product }));
}

#[tokio::test]
async fn a_missing_key_is_a_404_miss() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("product:1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("miss"), "{body}");
}

#[tokio::test]
async fn put_overwrites() {
    let app = TestApp::spawn().await;
    app.put("k", json!(1), 30_000).await;
    app.put("k", json!("two"), 30_000).await;
    assert_eq!(app.get("k").await.1, json!({"value": "two"}));
}

#[tokio::test(start_paused = true)]
async fn an_entry_expires_after_its_ttl() {
    let app = TestApp::spawn().await;
    app.put("short", json!(true), 100).await;
    app.put("long", json!(true), 60_000).await;
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_eq!(app.get("short").await.0, StatusCode::OK);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        app.get("short").await.0,
        StatusCode::NOT_FOUND,
        "expired entries are misses"
    );
    assert_eq!(app.get("long").await.0, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_drops_expired_entries_nobody_reads() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.put(&format!("k{i}"), json!(i), 500).await;
    }
    assert_eq!(app.call(Method::GET, "/stats", None).await.1["entries"], 5);
    // Paused time auto-advances while the sweeper waits; two periods are
    // enough for at least one sweep after the TTL.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let stats = app.call(Method::GET, "/stats", None).await.1;
    assert_eq!(stats["entries"], 0, "{stats}");
    assert_eq!(stats["expirations"], 5, "{stats}");
}

#[tokio::test]
async fn flush_empties_the_cache_and_counts() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.put(&format!("k{i}"), json!(i), 30_000).await;
    }
    let (status, body) = app.call(Method::DELETE, "/keys", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"flushed": 3}));
    assert_eq!(app.get("k0").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.call(Method::DELETE, "/keys", None).await.1,
        json!({"flushed": 0})
    );
}

#[tokio::test]
async fn stats_and_metrics_count_hits_and_misses() {
    let app = TestApp::spawn().await;
    app.put("a", json!(1), 30_000).await;
    app.get("a").await;
    app.get("a").await;
    app.get("b").await;
    let (status, stats) = app.call(Method::GET, "/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["hits"], 2);
    assert_eq!(stats["misses"], 1);
    assert_eq!(stats["sets"], 1);
    assert_eq!(stats["entries"], 1);
    assert_eq!(stats["capacity"], firedrill_cache::DEFAULT_MAX_ENTRIES);

    let (_, metrics) = app.raw(Method::GET, "/metrics", None).await;
    for line in [
        r#"cache_requests_total{cache_operation="get",cache_result="hit"} 2.0"#,
        r#"cache_requests_total{cache_operation="get",cache_result="miss"} 1.0"#,
        r#"cache_requests_total{cache_operation="set",cache_result="ok"} 1.0"#,
        "cache_entries{} 1.0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test]
async fn bad_puts_are_rejected_with_400() {
    let app = TestApp::spawn().await;
    for (body, why) in [
        (r#"{"value": 1, "ttl_ms": 0}"#, "zero ttl"),
        (r#"{"value": 1, "ttl_ms": 864000000000}"#, "ttl over a day"),
        (r#"{"value": 1}"#, "missing ttl"),
        (r#"{"ttl_ms": 10}"#, "missing value"),
        (r#"{"value": 1, "ttl_ms": -5}"#, "negative ttl"),
        (r#"{"value": 1, "#, "broken json"),
    ] {
        let (status, text) = app.raw(Method::PUT, "/keys/k", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(error["error"].is_string(), "{why}: {text}");
    }
    assert_eq!(
        app.get("k").await.0,
        StatusCode::NOT_FOUND,
        "nothing was stored"
    );

    let long_key = "k".repeat(600);
    assert_eq!(
        app.put(&long_key, json!(1), 10).await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_cache_flush_fault_empties_the_cache_once_when_it_starts() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.put(&format!("k{i}"), json!(i), 30_000).await;
    }
    let mut faults = FaultInjector::new(app.service.context());
    let id = faults.inject(FaultKind::CacheFlush { ttl: None }, "cache", 1.0);
    let stats = app.call(Method::GET, "/stats", None).await.1;
    assert_eq!(stats["entries"], 0, "{stats}");
    assert_eq!(app.get("k0").await.0, StatusCode::NOT_FOUND);

    // Once: what is stored after the flush stays while the fault lasts.
    app.put("later", json!(true), 30_000).await;
    faults.clear("unrelated");
    assert_eq!(app.get("later").await.0, StatusCode::OK);
    faults.clear(&id);
    assert_eq!(app.get("later").await.0, StatusCode::OK);

    let metrics = app.service.metrics().await;
    assert!(
        metrics.contains(r#"cache_requests_total{cache_operation="flush",cache_result="ok"} 1.0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"cache_requests_total{cache_operation="get",cache_result="miss"} 1.0"#),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_ttl_makes_entries_stored_during_the_fault_expire_together() {
    let app = TestApp::spawn().await;
    let mut faults = FaultInjector::new(app.service.context());
    let id = faults.inject(
        FaultKind::CacheFlush {
            ttl: Some(Millis(1_000)),
        },
        "cache",
        1.0,
    );
    tokio::time::advance(Duration::from_millis(200)).await;
    app.put("early", json!(1), 60_000).await;
    tokio::time::advance(Duration::from_millis(500)).await;
    app.put("late", json!(2), 60_000).await;
    // Both were asked to live a minute; both end at the 1 s boundary.
    tokio::time::advance(Duration::from_millis(299)).await;
    assert_eq!(app.get("early").await.0, StatusCode::OK);
    assert_eq!(app.get("late").await.0, StatusCode::OK);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(app.get("early").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get("late").await.0, StatusCode::NOT_FOUND);

    // After the fault, callers' TTLs apply again.
    faults.clear(&id);
    app.put("after", json!(3), 60_000).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(app.get("after").await.0, StatusCode::OK);
}
