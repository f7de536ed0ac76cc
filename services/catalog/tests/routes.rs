//! The catalog service through its full server stack (`ctx.app`), driven
//! with `oneshot`, against a temporary SQLite database and an in-test axum
//! server playing the cache service.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use firedrill_catalog::{NAME, build};
use firedrill_runtime::faults::model::FaultKind;
use firedrill_runtime::testing::{FaultInjector, TestService, dead_url, spawn_peer};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The cache service as catalog uses it: `GET`/`PUT /keys/{key}`, recording
/// what it was asked. `broken` makes every call a 500.
#[derive(Clone, Default)]
struct FakeCache {
    entries: Arc<Mutex<HashMap<String, Value>>>,
    ttls: Arc<Mutex<HashMap<String, u64>>>,
    gets: Arc<AtomicUsize>,
    puts: Arc<AtomicUsize>,
    broken: bool,
}

async fn cache_get(
    State(cache): State<FakeCache>,
    Path(key): Path<String>,
) -> axum::response::Response {
    cache.gets.fetch_add(1, Ordering::Relaxed);
    if cache.broken {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "boom"})),
        )
            .into_response();
    }
    match cache.entries.lock().get(&key) {
        Some(value) => Json(json!({ "value": value })).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "miss"}))).into_response(),
    }
}

async fn cache_put(
    State(cache): State<FakeCache>,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    cache.puts.fetch_add(1, Ordering::Relaxed);
    if cache.broken {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    cache
        .ttls
        .lock()
        .insert(key.clone(), body["ttl_ms"].as_u64().unwrap());
    cache.entries.lock().insert(key, body["value"].clone());
    StatusCode::NO_CONTENT
}

struct TestApp {
    service: TestService,
    cache: FakeCache,
}

impl TestApp {
    async fn spawn() -> TestApp {
        Self::with_cache(FakeCache::default()).await
    }

    async fn with_cache(cache: FakeCache) -> TestApp {
        let fake = Router::new()
            .route("/keys/{key}", get(cache_get).put(cache_put))
            .with_state(cache.clone());
        let url = spawn_peer(fake).await;
        Self::with_cache_url(&url, cache).await
    }

    async fn with_cache_url(url: &str, cache: FakeCache) -> TestApp {
        let peers = format!("cache={url}");
        let flags = [
            "--peers",
            &peers,
            "--call-retries",
            "0",
            "--call-timeout",
            "1s",
        ];
        let service = TestService::with_database(NAME, build, &flags).await;
        TestApp { service, cache }
    }

    /// The answer, which must be JSON.
    async fn json(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        let (status, text) = self.service.raw(method, uri, body).await;
        (status, serde_json::from_str(&text).unwrap())
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.json(Method::GET, uri, None).await
    }

    async fn lookup(&self, body: &str) -> (StatusCode, Value) {
        self.json(Method::POST, "/products/lookup", Some(body))
            .await
    }

    async fn metrics(&self) -> String {
        self.service.metrics().await
    }
}

fn ids(products: &Value) -> Vec<i64> {
    products
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn list_pages_through_the_seeded_catalog() {
    let app = TestApp::spawn().await;
    let (status, page) = app.get("/products").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 240);
    assert_eq!(ids(&page["products"]), (1..=20).collect::<Vec<_>>());

    let (_, page) = app.get("/products?limit=500").await;
    let all = ids(&page["products"]);
    assert_eq!(all, (1..=240).collect::<Vec<_>>());

    let (_, page) = app.get("/products?limit=50&offset=230").await;
    assert_eq!(ids(&page["products"]), (231..=240).collect::<Vec<_>>());
    assert_eq!(page["total"], 240);

    let product = &page["products"][0];
    let keys: Vec<&str> = product
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 6, "{product}");
    for key in [
        "id",
        "sku",
        "name",
        "category",
        "price_cents",
        "description",
    ] {
        assert!(product.get(key).is_some(), "{key} missing: {product}");
    }
}

#[tokio::test]
async fn list_filters_by_category() {
    let app = TestApp::spawn().await;
    let mut seen = 0;
    for category in [
        "books",
        "electronics",
        "garden",
        "home",
        "kitchen",
        "outdoor",
        "sports",
        "toys",
    ] {
        let (status, page) = app
            .get(&format!("/products?category={category}&limit=500"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["total"], 30, "{category}");
        let products = page["products"].as_array().unwrap();
        assert_eq!(products.len(), 30);
        assert!(products.iter().all(|p| p["category"] == category));
        for p in products {
            let price = p["price_cents"].as_i64().unwrap();
            assert!((199..=49_999).contains(&price), "{p}");
        }
        seen += products.len();
    }
    assert_eq!(seen, 240);
    let (_, page) = app
        .get("/products?category=kitchen&limit=5&offset=28")
        .await;
    assert_eq!(page["products"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_list_queries_are_400() {
    let app = TestApp::spawn().await;
    for uri in [
        "/products?limit=0",
        "/products?limit=501",
        "/products?limit=abc",
        "/products?offset=-1",
        "/products?category=weapons",
    ] {
        let (status, body) = app.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
}

#[tokio::test]
async fn a_product_is_read_once_from_the_database_then_from_the_cache() {
    let app = TestApp::spawn().await;
    let (status, first) = app.get("/products/42").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["id"], 42);
    assert_eq!(
        app.cache.puts.load(Ordering::Relaxed),
        1,
        "a miss fills the cache"
    );
    assert_eq!(app.cache.ttls.lock()["product:42"], 30_000);
    assert_eq!(app.cache.entries.lock()["product:42"], first);

    let (status, second) = app.get("/products/42").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second, first);
    assert_eq!(app.cache.gets.load(Ordering::Relaxed), 2);
    assert_eq!(
        app.cache.puts.load(Ordering::Relaxed),
        1,
        "a hit does not write"
    );

    let metrics = app.metrics().await;
    for line in [
        r#"cache_lookups_total{cache_result="miss"} 1.0"#,
        r#"cache_lookups_total{cache_result="hit"} 1.0"#,
        r#"cache_writes_total{cache_result="ok"} 1.0"#,
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_cache_hit_is_served_from_the_cache() {
    let app = TestApp::spawn().await;
    let cached = json!({"id": 5, "sku": "X-5", "name": "Cached Name", "category": "kitchen", "price_cents": 999, "description": "from the cache"});
    app.cache
        .entries
        .lock()
        .insert("product:5".into(), cached.clone());
    let (status, body) = app.get("/products/5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, cached);
}

#[tokio::test]
async fn a_corrupt_cache_entry_is_replaced_from_the_database() {
    let app = TestApp::spawn().await;
    app.cache
        .entries
        .lock()
        .insert("product:6".into(), json!("garbage"));
    let (status, body) = app.get("/products/6").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], 6);
    assert_eq!(app.cache.entries.lock()["product:6"], body);
    assert!(
        app.metrics()
            .await
            .contains(r#"cache_lookups_total{cache_result="error"} 1.0"#)
    );
}

#[tokio::test]
async fn a_failing_cache_does_not_fail_reads() {
    let app = TestApp::with_cache(FakeCache {
        broken: true,
        ..FakeCache::default()
    })
    .await;
    let (status, body) = app.get("/products/7").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 7);
    assert_eq!(
        app.cache.puts.load(Ordering::Relaxed),
        0,
        "no fill into a failing cache"
    );
    assert!(
        app.metrics()
            .await
            .contains(r#"cache_lookups_total{cache_result="error"} 1.0"#)
    );
}

#[tokio::test]
async fn an_unreachable_cache_does_not_fail_reads() {
    let app = TestApp::with_cache_url(&dead_url().await, FakeCache::default()).await;
    let (status, body) = app.get("/products/8").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 8);
    assert!(
        app.metrics()
            .await
            .contains(r#"cache_lookups_total{cache_result="error"} 1.0"#)
    );
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let app = TestApp::spawn().await;
    for id in [0, 241, 100_000] {
        let (status, body) = app.get(&format!("/products/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(body["error"], format!("product {id} not found"));
    }
    let (status, body) = app.get("/products/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        app.cache.entries.lock().is_empty(),
        "unknown products are not cached"
    );
}

#[tokio::test]
async fn lookup_returns_known_ids_in_order_once() {
    let app = TestApp::spawn().await;
    let (status, body) = app.lookup(r#"{"ids": [3, 999, 1, 3, -4]}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body["products"]), vec![3, 1]);

    let (_, body) = app.lookup(r#"{"ids": []}"#).await;
    assert_eq!(body, json!({"products": []}));

    let all: Vec<i64> = (1..=500).collect();
    let (status, body) = app.lookup(&json!({ "ids": all }).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body["products"]), (1..=240).collect::<Vec<_>>());
}

#[tokio::test]
async fn bad_lookups_are_400() {
    let app = TestApp::spawn().await;
    let too_many: Vec<i64> = (1..=501).collect();
    let too_many = json!({ "ids": too_many }).to_string();
    for body in [
        too_many.as_str(),
        r#"{"ids": "1,2"}"#,
        r#"{}"#,
        r#"{"ids": [1,"#,
    ] {
        let (status, answer) = app.lookup(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["error"].is_string());
    }
}

#[tokio::test]
async fn instances_sharing_a_database_seed_it_once() {
    let first = TestApp::spawn().await;
    let db = first.service.database().to_str().unwrap();
    let flags = ["--database", db, "--peers", "cache=http://127.0.0.1:9"];
    let second = TestService::start(NAME, build, &flags).await;
    let (_, text) = second.raw(Method::GET, "/products?limit=1", None).await;
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["total"], 240);
    let (_, first_page) = first.get("/products?limit=500").await;
    let names: std::collections::HashSet<&str> = first_page["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for word in ["Lamp", "Book", "Shoe", "Kettle", "Tent"] {
        assert!(
            names.iter().any(|n| n.split(' ').any(|w| w == word)),
            "no product named with {word}"
        );
    }
}

#[tokio::test]
async fn a_missing_cache_peer_fails_start_up() {
    let err = TestService::try_with_database(NAME, build, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cache"), "{err}");
}

fn corruption() -> FaultKind {
    FaultKind::DataCorruption {
        field: "price".into(),
    }
}

#[tokio::test]
async fn a_data_corruption_fault_zeroes_prices_in_answers_and_nowhere_else() {
    let app = TestApp::spawn().await;
    let (_, before) = app.get("/products/7").await;
    let price = before["price_cents"].as_i64().unwrap();
    assert!(price > 0);

    let mut faults = FaultInjector::new(app.service.context());
    let id = faults.inject(corruption(), "catalog", 1.0);
    let (status, product) = app.get("/products/7").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(product["price_cents"], 0, "{product}");
    assert_eq!(product["name"], before["name"], "only the price is wrong");
    let (_, page) = app.get("/products?category=toys").await;
    let products = page["products"].as_array().unwrap();
    assert!(!products.is_empty());
    assert!(products.iter().all(|p| p["price_cents"] == 0), "{page}");
    assert_eq!(page["total"], 30, "counts are not prices");
    let (_, found) = app.lookup(r#"{"ids":[1,2]}"#).await;
    assert!(
        found["products"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["price_cents"] == 0)
    );
    // The stored data is right: the cache was filled with the real price.
    assert_eq!(
        app.cache.entries.lock()["product:7"]["price_cents"],
        json!(price)
    );

    faults.clear(&id);
    assert_eq!(app.get("/products/7").await.1["price_cents"], json!(price));
}

#[tokio::test]
async fn data_corruption_hits_its_toxicity_share_of_answers() {
    let app = TestApp::spawn().await;
    let mut faults = FaultInjector::new(app.service.context());
    faults.inject(corruption(), "catalog", 0.25);
    let mut zero = 0;
    for i in 0..400 {
        let (status, product) = app.get(&format!("/products/{}", i % 240 + 1)).await;
        assert_eq!(status, StatusCode::OK, "corruption never fails a request");
        if product["price_cents"] == 0 {
            zero += 1;
        }
    }
    // Seeded rolls: exact per build; the margin absorbs an RNG change.
    assert!((70..=130).contains(&zero), "{zero} of 400 zeroed");
}
