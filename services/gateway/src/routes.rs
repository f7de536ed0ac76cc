//! Public routes: validate, authenticate, forward.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use firedrill_runtime::client::Peer;
use firedrill_runtime::extract::{Json as Body, Path, Query};
use firedrill_runtime::live::Live;
use firedrill_runtime::metrics::Counter;
use firedrill_runtime::resilience::rate_limit::RateLimiter;
use firedrill_runtime::{AppError, AppResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bot_rules::{BOT_RULES_V2, BotRules, fingerprint_of};

pub struct Gateway {
    pub auth: Arc<Peer>,
    pub catalog: Arc<Peer>,
    pub search: Arc<Peer>,
    pub cart: Arc<Peer>,
    pub checkout: Arc<Peer>,
    pub limiter: Arc<RateLimiter>,
    pub rate_limited: Counter,
    pub live: Live,
    pub bot_rules: Arc<BotRules>,
}

type Shared = State<Arc<Gateway>>;

pub fn router(state: Arc<Gateway>) -> Router {
    Router::new()
        .route("/api/products", get(list_products))
        .route("/api/products/{id}", get(get_product))
        .route("/api/search", get(search))
        .route("/api/recommendations/{id}", get(recommendations))
        .route("/api/login", post(login))
        .route("/api/cart", get(get_cart))
        .route("/api/cart/items", post(add_item))
        .route("/api/cart/items/{product_id}", delete(remove_item))
        .route("/api/checkout", post(checkout))
        .route("/api/orders/{id}", get(get_order))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .with_state(state)
}

/// Per-client token bucket; over the limit → 429.
async fn rate_limit(State(gw): Shared, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    // Inline, on the request's own thread, as an edge rule engine runs.
    let fingerprint = fingerprint_of(request.method(), request.uri(), request.headers());
    if gw
        .bot_rules
        .screen(&fingerprint, gw.live.flag(BOT_RULES_V2, &client))
    {
        return AppError::new(StatusCode::FORBIDDEN, "request refused by bot screening")
            .into_response();
    }
    if !gw.limiter.allow(&client, Instant::now()) {
        gw.rate_limited.inc(&[]);
        return AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded, slow down",
        )
        .into_response();
    }
    next.run(request).await
}

/// Parses a numeric id from the path, with a message naming it.
fn parse_id(raw: &str, what: &str) -> AppResult<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        AppError::bad_request(format!("{what} must be a positive integer, got {raw:?}"))
    })
}

/// Checks the bearer token with `auth`; returns the user id.
async fn authenticate(gw: &Gateway, headers: &HeaderMap) -> AppResult<i64> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::unauthorized(
                "missing bearer token (Authorization: Bearer <token> from POST /api/login)",
            )
        })?;
    #[derive(Deserialize)]
    struct Verified {
        user_id: i64,
    }
    let verified: Verified = gw
        .auth
        .post("/verify", "/verify", &serde_json::json!({ "token": token }))
        .idempotent(true)
        .json()
        .await?;
    Ok(verified.user_id)
}

#[derive(Deserialize, Serialize)]
struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    category: Option<String>,
}

async fn list_products(State(gw): Shared, Query(q): Query<ListQuery>) -> AppResult<Json<Value>> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(AppError::bad_request(format!(
            "limit must be between 1 and 100, got {limit}"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(AppError::bad_request(format!(
            "offset must not be negative, got {offset}"
        )));
    }
    let mut path = format!("/products?limit={limit}&offset={offset}");
    if let Some(category) = q.category.filter(|c| !c.is_empty()) {
        if !category
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(AppError::bad_request(format!(
                "unknown category {category:?}"
            )));
        }
        path.push_str(&format!("&category={category}"));
    }
    Ok(Json(gw.catalog.get("/products", path).json().await?))
}

async fn get_product(State(gw): Shared, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let id = parse_id(&id, "product id")?;
    Ok(Json(
        gw.catalog
            .get("/products/{id}", format!("/products/{id}"))
            .json()
            .await?,
    ))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<i64>,
}

async fn search(State(gw): Shared, Query(q): Query<SearchQuery>) -> AppResult<Json<Value>> {
    let text = q.q.unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Err(AppError::bad_request("q must be a non-empty search text"));
    }
    if text.len() > 200 {
        return Err(AppError::bad_request("q must be at most 200 characters"));
    }
    let limit = q.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(AppError::bad_request(format!(
            "limit must be between 1 and 50, got {limit}"
        )));
    }
    let encoded: String = text
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    Ok(Json(
        gw.search
            .get("/search", format!("/search?q={encoded}&limit={limit}"))
            .json()
            .await?,
    ))
}

async fn recommendations(State(gw): Shared, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let id = parse_id(&id, "product id")?;
    Ok(Json(
        gw.search
            .get("/recommendations/{id}", format!("/recommendations/{id}"))
            .json()
            .await?,
    ))
}

#[derive(Deserialize, Serialize)]
struct Login {
    username: String,
    password: String,
}

async fn login(State(gw): Shared, Body(body): Body<Login>) -> AppResult<Json<Value>> {
    if body.username.is_empty() || body.username.len() > 64 {
        return Err(AppError::bad_request("username must be 1 to 64 characters"));
    }
    // Login is safe to retry: it creates no state beyond a fresh token.
    Ok(Json(
        gw.auth
            .post("/login", "/login", &body)
            .idempotent(true)
            .json()
            .await?,
    ))
}

async fn get_cart(State(gw): Shared, headers: HeaderMap) -> AppResult<Json<Value>> {
    let user = authenticate(&gw, &headers).await?;
    Ok(Json(
        gw.cart
            .get("/carts/{user_id}", format!("/carts/{user}"))
            .json()
            .await?,
    ))
}

#[derive(Deserialize, Serialize)]
struct AddItem {
    product_id: i64,
    quantity: i64,
}

async fn add_item(
    State(gw): Shared,
    headers: HeaderMap,
    Body(item): Body<AddItem>,
) -> AppResult<Json<Value>> {
    let user = authenticate(&gw, &headers).await?;
    if item.product_id <= 0 {
        return Err(AppError::bad_request(
            "product_id must be a positive integer",
        ));
    }
    if !(1..=10).contains(&item.quantity) {
        return Err(AppError::bad_request(format!(
            "quantity must be between 1 and 10, got {}",
            item.quantity
        )));
    }
    Ok(Json(
        gw.cart
            .post(
                "/carts/{user_id}/items",
                format!("/carts/{user}/items"),
                &item,
            )
            .json()
            .await?,
    ))
}

async fn remove_item(
    State(gw): Shared,
    headers: HeaderMap,
    Path(product_id): Path<String>,
) -> AppResult<Json<Value>> {
    let user = authenticate(&gw, &headers).await?;
    let product_id = parse_id(&product_id, "product id")?;
    Ok(Json(
        gw.cart
            .delete(
                "/carts/{user_id}/items/{product_id}",
                format!("/carts/{user}/items/{product_id}"),
            )
            .json()
            .await?,
    ))
}

async fn checkout(State(gw): Shared, headers: HeaderMap) -> AppResult<(StatusCode, Json<Value>)> {
    let user = authenticate(&gw, &headers).await?;
    // Never retried here: the saga itself is idempotent per step, but a
    // blind retry of the whole checkout could place a second order.
    let order = gw
        .checkout
        .post(
            "/checkout",
            "/checkout",
            &serde_json::json!({ "user_id": user }),
        )
        .json()
        .await?;
    Ok((StatusCode::CREATED, Json(order)))
}

async fn get_order(
    State(gw): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let user = authenticate(&gw, &headers).await?;
    let id = parse_id(&id, "order id")?;
    Ok(Json(
        gw.checkout
            .get("/orders/{id}", format!("/orders/{id}?user_id={user}"))
            .json()
            .await?,
    ))
}
