//! A small in-test shop implementing docs/shop-api.md, with knobs for the
//! behaviours the load generator must cope with (slowness, 500s, expired
//! tokens), and counters for what the generator actually sent.
//!
//! The thing under test is the load generator, so this is deliberately a
//! fake peer: in-memory, correct by construction, and observable.

#![allow(dead_code)] // Each test binary uses a different part of it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

// The stand-in serves the categories the load generator knows the shop by.
use firedrill_loadgen::plan::CATEGORIES;

/// How the shop misbehaves.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Added before every answer.
    pub delay: Duration,
    /// Answer `POST /api/checkout` with 500.
    pub fail_checkout: bool,
}

/// What the shop saw. Shared with the test through `TestShop`.
#[derive(Default)]
pub struct Seen {
    /// `METHOD /path?query`, in arrival order.
    pub requests: Mutex<Vec<String>>,
    /// `traceparent` header of every request that had one.
    pub traceparents: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Requests for a user that arrived while another request for the same
    /// user was being served: two journeys on one user at once.
    pub user_overlaps: AtomicU64,
    busy_users: Mutex<HashMap<String, usize>>,
    pub logins: AtomicU64,
    pub unauthorized: AtomicU64,
}

struct Shop {
    behaviour: Behaviour,
    seen: Arc<Seen>,
    /// Tokens are `<user>.<generation>`; bumping the generation expires
    /// every token issued before, as a restarted auth service would.
    token_generation: AtomicU64,
    carts: Mutex<HashMap<String, Vec<(i64, i64)>>>,
    next_order: AtomicU64,
}

pub struct TestShop {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    shop: Arc<Shop>,
}

impl TestShop {
    pub async fn spawn(behaviour: Behaviour) -> TestShop {
        let seen = Arc::new(Seen::default());
        let shop = Arc::new(Shop {
            behaviour,
            seen: Arc::clone(&seen),
            token_generation: AtomicU64::new(0),
            carts: Mutex::new(HashMap::new()),
            next_order: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/api/products", get(list_products))
            .route("/api/products/{id}", get(get_product))
            .route("/api/search", get(search))
            .route("/api/recommendations/{id}", get(recommendations))
            .route("/api/login", post(login))
            .route("/api/cart", get(view_cart))
            .route("/api/cart/items", post(add_item))
            .route("/api/checkout", post(checkout))
            .layer(middleware::from_fn_with_state(Arc::clone(&shop), observe))
            .with_state(Arc::clone(&shop));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestShop { addr, seen, shop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<String> {
        self.seen.requests.lock().clone()
    }

    /// Expires every token issued so far.
    pub fn expire_tokens(&self) {
        self.shop.token_generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Records the request, tracks concurrency (overall and per user), then
/// applies the delay.
async fn observe(State(shop): State<Arc<Shop>>, req: Request, next: Next) -> Response {
    let seen = &shop.seen;
    let line = format!(
        "{} {}",
        req.method(),
        req.uri().path_and_query().map_or("", |p| p.as_str())
    );
    seen.requests.lock().push(line);
    if let Some(tp) = req.headers().get("traceparent") {
        seen.traceparents
            .lock()
            .push(tp.to_str().unwrap_or("").to_string());
    }
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let user = bearer(req.headers()).and_then(|t| t.split('.').next().map(str::to_string));
    if let Some(user) = &user {
        let mut busy = seen.busy_users.lock();
        let n = busy.entry(user.clone()).or_default();
        if *n > 0 {
            seen.user_overlaps.fetch_add(1, Ordering::SeqCst);
        }
        *n += 1;
    }

    tokio::time::sleep(shop.behaviour.delay).await;
    let response = next.run(req).await;

    if let Some(user) = &user
        && let Some(n) = seen.busy_users.lock().get_mut(user)
    {
        *n -= 1;
    }
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The shop's one error shape: `{"error": ...}` with a 4xx/5xx status.
struct ShopError(StatusCode, &'static str);

impl IntoResponse for ShopError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn error(status: StatusCode, what: &'static str) -> Response {
    ShopError(status, what).into_response()
}

fn product(id: i64) -> Value {
    let category = CATEGORIES[((id - 1) % 8) as usize];
    json!({
        "id": id,
        "sku": format!("SKU-{id:04}"),
        "name": format!("{category} thing {id}"),
        "category": category,
        "price_cents": 100 * id,
        "description": "a thing",
    })
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    category: Option<String>,
}

async fn list_products(Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, "bad limit");
    }
    let matching: Vec<i64> = (1..=240)
        .filter(|id| {
            q.category
                .as_deref()
                .is_none_or(|c| c == CATEGORIES[((id - 1) % 8) as usize])
        })
        .collect();
    let products: Vec<Value> = matching
        .iter()
        .skip(q.offset.unwrap_or(0).max(0) as usize)
        .take(limit as usize)
        .map(|id| product(*id))
        .collect();
    Json(json!({"products": products, "total": matching.len()})).into_response()
}

fn known_id(id: &str) -> Result<i64, ShopError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ShopError(StatusCode::BAD_REQUEST, "non-numeric id"))?;
    if (1..=240).contains(&id) {
        Ok(id)
    } else {
        Err(ShopError(StatusCode::NOT_FOUND, "unknown product"))
    }
}

async fn get_product(Path(id): Path<String>) -> Result<Response, ShopError> {
    Ok(Json(product(known_id(&id)?)).into_response())
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

async fn search(Query(q): Query<SearchQuery>) -> Response {
    let Some(term) = q.q.filter(|t| !t.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "empty q");
    };
    // Some terms find nothing, so both paths of the journey run.
    let hits = (term.len() % 4) as i64;
    let results: Vec<Value> = (1..=hits)
        .map(|i| json!({"product": product(i * 7), "score": 1.0 / i as f64}))
        .collect();
    Json(json!({"query": term, "results": results})).into_response()
}

async fn recommendations(Path(id): Path<String>) -> Result<Response, ShopError> {
    let id = known_id(&id)?;
    Ok(Json(json!({
        "product_id": id,
        "products": [product(id % 240 + 1)],
    }))
    .into_response())
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(State(shop): State<Arc<Shop>>, Json(body): Json<LoginBody>) -> Response {
    shop.seen.logins.fetch_add(1, Ordering::SeqCst);
    if body.password != "firedrill" || !body.username.starts_with("user") {
        return error(StatusCode::UNAUTHORIZED, "bad credentials");
    }
    let generation = shop.token_generation.load(Ordering::SeqCst);
    Json(json!({
        "token": format!("{}.{generation}", body.username),
        "user_id": body.username.trim_start_matches("user").parse::<i64>().unwrap_or(0),
        "expires_at": "2099-01-01T00:00:00Z",
    }))
    .into_response()
}

/// The user a valid token belongs to, or a 401.
fn authenticate(shop: &Shop, headers: &HeaderMap) -> Result<String, ShopError> {
    let generation = shop.token_generation.load(Ordering::SeqCst).to_string();
    match bearer(headers).and_then(|t| t.split_once('.')) {
        Some((user, g)) if g == generation => Ok(user.to_string()),
        _ => {
            shop.seen.unauthorized.fetch_add(1, Ordering::SeqCst);
            Err(ShopError(StatusCode::UNAUTHORIZED, "invalid token"))
        }
    }
}

fn cart_json(user: &str, lines: &[(i64, i64)]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|(id, q)| json!({"product_id": id, "name": "thing", "quantity": q, "price_cents": 100 * id}))
        .collect();
    let total: i64 = lines.iter().map(|(id, q)| 100 * id * q).sum();
    json!({"user_id": user.trim_start_matches("user").parse::<i64>().unwrap_or(0), "items": items, "total_cents": total})
}

async fn view_cart(State(shop): State<Arc<Shop>>, headers: HeaderMap) -> Response {
    let user = match authenticate(&shop, &headers) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let carts = shop.carts.lock();
    let lines = carts.get(&user).cloned().unwrap_or_default();
    Json(cart_json(&user, &lines)).into_response()
}

#[derive(Deserialize)]
struct AddItem {
    product_id: i64,
    quantity: i64,
}

async fn add_item(
    State(shop): State<Arc<Shop>>,
    headers: HeaderMap,
    Json(item): Json<AddItem>,
) -> Response {
    let user = match authenticate(&shop, &headers) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    if !(1..=10).contains(&item.quantity) {
        return error(StatusCode::BAD_REQUEST, "bad quantity");
    }
    if !(1..=240).contains(&item.product_id) {
        return error(StatusCode::NOT_FOUND, "unknown product");
    }
    let mut carts = shop.carts.lock();
    let lines = carts.entry(user.clone()).or_default();
    match lines.iter_mut().find(|(id, _)| *id == item.product_id) {
        Some((_, q)) => *q += item.quantity,
        None => lines.push((item.product_id, item.quantity)),
    }
    Json(cart_json(&user, lines)).into_response()
}

async fn checkout(State(shop): State<Arc<Shop>>, headers: HeaderMap) -> Response {
    let user = match authenticate(&shop, &headers) {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    if shop.behaviour.fail_checkout {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "checkout exploded");
    }
    let lines = shop.carts.lock().remove(&user).unwrap_or_default();
    if lines.is_empty() {
        return error(StatusCode::BAD_REQUEST, "empty cart");
    }
    let order_id = shop.next_order.fetch_add(1, Ordering::SeqCst);
    let cart = cart_json(&user, &lines);
    (
        StatusCode::CREATED,
        Json(json!({
            "order_id": order_id,
            "user_id": cart["user_id"],
            "status": "confirmed",
            "total_cents": cart["total_cents"],
            "items": cart["items"],
            "shipment_id": null,
        })),
    )
        .into_response()
}
