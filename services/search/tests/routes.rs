//! The search service through its full server stack (`ctx.app`), driven with
//! `oneshot`, with an in-test axum server playing catalog.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use firedrill_runtime::testing::{self, TestService, dead_url, spawn_peer};
use firedrill_search::{NAME, build};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

const NOUNS: [(&str, &str); 8] = [
    ("Desk Lamp", "home"),
    ("Kettle", "kitchen"),
    ("Tent", "outdoor"),
    ("Running Shoe", "sports"),
    ("Picture Book", "books"),
    ("Headphones", "electronics"),
    ("Watering Can", "garden"),
    ("Puzzle", "toys"),
];
const ADJECTIVES: [&str; 5] = ["Walnut", "Compact", "Classic", "Ultralight", "Deluxe"];

fn catalog_products(n: usize) -> Vec<Value> {
    (1..=n)
        .map(|id| {
            let (noun, category) = NOUNS[(id - 1) % NOUNS.len()];
            let adjective = ADJECTIVES[((id - 1) / NOUNS.len()) % ADJECTIVES.len()];
            json!({
                "id": id, "sku": format!("T-{id:04}"), "name": format!("{adjective} {noun}"),
                "category": category, "price_cents": 1_000 + id,
                "description": format!("A {} for testing, number {id}.", noun.to_lowercase()),
            })
        })
        .collect()
}

/// Catalog's `GET /products?limit=&offset=`, answering 503 to the first
/// `fail_first` calls and recording the offsets asked for.
#[derive(Clone)]
struct FakeCatalog {
    products: Arc<Vec<Value>>,
    fail_first: usize,
    calls: Arc<AtomicUsize>,
    offsets: Arc<Mutex<Vec<usize>>>,
}

#[derive(Deserialize)]
struct Paging {
    limit: usize,
    offset: usize,
}

async fn list(
    State(catalog): State<FakeCatalog>,
    Query(p): Query<Paging>,
) -> axum::response::Response {
    if catalog.calls.fetch_add(1, Ordering::SeqCst) < catalog.fail_first {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "starting"})),
        )
            .into_response();
    }
    assert!(p.limit <= 500, "catalog caps limit at 500");
    catalog.offsets.lock().push(p.offset);
    let page: Vec<Value> = catalog
        .products
        .iter()
        .skip(p.offset)
        .take(p.limit)
        .cloned()
        .collect();
    Json(json!({ "products": page, "total": catalog.products.len() })).into_response()
}

struct TestApp {
    service: TestService,
    catalog: FakeCatalog,
}

impl TestApp {
    async fn spawn(products: usize, fail_first: usize) -> TestApp {
        let catalog = FakeCatalog {
            products: Arc::new(catalog_products(products)),
            fail_first,
            calls: Arc::default(),
            offsets: Arc::default(),
        };
        let fake = Router::new()
            .route("/products", get(list))
            .with_state(catalog.clone());
        let url = spawn_peer(fake).await;
        let service = start(&format!("catalog={url}")).await;
        TestApp { service, catalog }
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.service.get(uri).await
    }

    async fn text(&self, uri: &str) -> (StatusCode, String) {
        self.service.raw(Method::GET, uri, None).await
    }
}

async fn start(peers: &str) -> TestService {
    let flags = [
        "--peers",
        peers,
        "--call-retries",
        "0",
        "--call-timeout",
        "1s",
    ];
    TestService::start(NAME, build, &flags).await
}

fn names(results: &Value) -> Vec<String> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["product"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn search_ranks_matching_products() {
    let app = TestApp::spawn(40, 0).await;
    let (status, body) = app.get("/search?q=lamp").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["query"], "lamp");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "the five lamps: {body}");
    assert!(
        names(&body["results"])
            .iter()
            .all(|n| n.ends_with("Desk Lamp")),
        "{body}"
    );
    let scores: Vec<f64> = results
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    assert!(scores.iter().all(|s| *s > 0.0));
    let product = results[0]["product"].as_object().unwrap();
    for key in [
        "id",
        "sku",
        "name",
        "category",
        "price_cents",
        "description",
    ] {
        assert!(product.contains_key(key), "{key}");
    }

    let (_, body) = app.get("/search?q=walnut%20kettle").await;
    assert_eq!(names(&body["results"])[0], "Walnut Kettle", "{body}");
}

#[tokio::test]
async fn search_tolerates_typos() {
    let app = TestApp::spawn(40, 0).await;
    for (typo, noun) in [
        ("ketle", "Kettle"),
        ("lmap", "Lamp"),
        ("headphnes", "Headphones"),
        ("puzzel", "Puzzle"),
    ] {
        let (status, body) = app.get(&format!("/search?q={typo}")).await;
        assert_eq!(status, StatusCode::OK);
        let names = names(&body["results"]);
        assert!(
            !names.is_empty() && names.iter().all(|n| n.ends_with(noun)),
            "{typo}: {names:?}"
        );
    }
    let (_, body) = app.get("/search?q=zeppelin").await;
    assert_eq!(body["results"], json!([]));
}

#[tokio::test]
async fn limit_defaults_to_ten_and_is_honoured() {
    let app = TestApp::spawn(40, 0).await;
    let (_, body) = app.get("/search?q=testing").await;
    assert_eq!(body["results"].as_array().unwrap().len(), 10);
    let (_, body) = app.get("/search?q=testing&limit=3").await;
    assert_eq!(body["results"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn bad_search_queries_are_400() {
    let app = TestApp::spawn(10, 0).await;
    let long = "a".repeat(201);
    for uri in [
        "/search",
        "/search?q=",
        "/search?q=%20%20",
        "/search?q=lamp&limit=0",
        "/search?q=lamp&limit=51",
        "/search?q=lamp&limit=x",
        &format!("/search?q={long}"),
    ] {
        let (status, body) = app.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}");
    }
    assert_eq!(
        app.get("/search?q=").await.1["error"],
        "q must not be empty"
    );
}

#[tokio::test]
async fn recommendations_are_five_similar_products() {
    let app = TestApp::spawn(40, 0).await;
    let (status, body) = app.get("/recommendations/2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["product_id"], 2);
    let products = body["products"].as_array().unwrap();
    assert_eq!(products.len(), 5);
    assert!(products.iter().all(|p| p["id"] != 2), "never itself");
    assert!(
        products.iter().take(4).all(|p| p["category"] == "kitchen"),
        "the other kettles first: {body}"
    );

    let (status, body) = app.get("/recommendations/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "product 999 not found");
    assert_eq!(
        app.get("/recommendations/abc").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_whole_catalog_is_indexed_page_by_page() {
    let app = TestApp::spawn(1_203, 0).await;
    assert_eq!(*app.catalog.offsets.lock(), vec![0, 500, 1_000]);
    let (_, metrics) = app.text("/metrics").await;
    assert!(
        metrics.contains("search_index_documents{} 1203.0"),
        "{metrics}"
    );
    let (_, body) = app.get("/recommendations/1203").await;
    assert_eq!(body["products"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn without_catalog_start_up_succeeds_and_answers_503() {
    let service = start(&format!("catalog={}", dead_url().await)).await;
    for uri in ["/search?q=lamp", "/recommendations/1"] {
        let (status, text) = service.raw(Method::GET, uri, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"], "index not ready");
    }
}

#[tokio::test]
async fn the_index_loads_once_catalog_recovers() {
    let app = TestApp::spawn(40, 2).await;
    assert_eq!(
        app.get("/search?q=lamp").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The background loader retries after 200 ms, then 400 ms; the catalog
    // answers its third call. There is no readiness signal besides the
    // route itself, so poll it with a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.get("/search?q=lamp").await;
        if status == StatusCode::OK {
            assert_eq!(body["results"].as_array().unwrap().len(), 5);
            break;
        }
        assert!(Instant::now() < deadline, "index never loaded");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(app.catalog.calls.load(Ordering::SeqCst), 3);
    let (_, metrics) = app.text("/metrics").await;
    assert!(
        metrics.contains(r#"search_index_refreshes_total{outcome="error"} 2.0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"search_index_refreshes_total{outcome="ok"} 1.0"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn ranking_time_is_measured() {
    let app = TestApp::spawn(240, 0).await;
    app.get("/search?q=ultralight%20tent").await;
    app.get("/recommendations/3").await;
    let (_, metrics) = app.text("/metrics").await;
    assert!(
        metrics.contains(r#"search_query_duration_seconds_count{search_operation="search"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"search_query_duration_seconds_count{search_operation="recommendations"} 1"#
        )
    );
}

#[tokio::test]
async fn a_missing_catalog_peer_fails_start_up() {
    let err = build(testing::context(NAME, &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("catalog"), "{err}");
}
