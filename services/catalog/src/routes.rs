//! Catalog's routes (docs/internal-api.md).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use firedrill_runtime::extract::{Json as Body, Path, Query};
use firedrill_runtime::{AppError, AppResult};
use serde::{Deserialize, Serialize};

use crate::products::Products;
use crate::seed::CATEGORIES;
use crate::store::{self, Product};

pub const DEFAULT_LIMIT: i64 = 20;
/// Largest page, and most ids in one lookup.
pub const MAX_LIMIT: i64 = 500;
pub const MAX_LOOKUP_IDS: usize = 500;
/// Longest window of a lowest-price question.
pub const MAX_DAYS: i64 = 365;

pub fn router(products: Arc<Products>) -> Router {
    Router::new()
        .route("/products", get(list))
        .route("/products/{id}", get(get_one))
        .route("/products/{id}/lowest-price", get(lowest_price))
        .route("/products/lookup", post(lookup))
        .with_state(products)
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    category: Option<String>,
}

#[derive(Serialize)]
struct Page {
    products: Vec<Product>,
    total: i64,
}

#[derive(Deserialize)]
struct LookupBody {
    ids: Vec<i64>,
}

#[derive(Serialize)]
struct Found {
    products: Vec<Product>,
}

async fn list(
    State(products): State<Arc<Products>>,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<Page>> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(AppError::bad_request("offset must not be negative"));
    }
    let category = q.category.filter(|c| !c.is_empty());
    if let Some(c) = category
        .as_ref()
        .filter(|c| !CATEGORIES.contains(&c.as_str()))
    {
        return Err(AppError::bad_request(format!(
            "unknown category {c:?} (one of {})",
            CATEGORIES.join(", ")
        )));
    }
    let (products, total) = store::list(&products.db, category, limit, offset).await?;
    Ok(Json(Page { products, total }))
}

async fn get_one(
    State(products): State<Arc<Products>>,
    Path(id): Path<i64>,
) -> AppResult<Json<Product>> {
    products
        .get(id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::not_found(format!("product {id} not found")))
}

#[derive(Deserialize)]
struct LowestQuery {
    days: Option<i64>,
}

#[derive(Serialize)]
struct Lowest {
    product_id: i64,
    days: i64,
    lowest_price_cents: i64,
}

/// The lowest price a product had in the `days` (default 30) before its
/// current price: the reference price shops must show next to a discount.
async fn lowest_price(
    State(products): State<Arc<Products>>,
    Path(id): Path<i64>,
    Query(q): Query<LowestQuery>,
) -> AppResult<Json<Lowest>> {
    let days = q.days.unwrap_or(30);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(AppError::bad_request(format!(
            "days must be between 1 and {MAX_DAYS}, got {days}"
        )));
    }
    let lowest = store::lowest_price(&products.db, id, days * 86_400_000)
        .await?
        .ok_or_else(|| AppError::not_found(format!("product {id} not found")))?;
    Ok(Json(Lowest {
        product_id: id,
        days,
        lowest_price_cents: lowest,
    }))
}

async fn lookup(
    State(products): State<Arc<Products>>,
    Body(body): Body<LookupBody>,
) -> AppResult<Json<Found>> {
    let LookupBody { ids } = body;
    if ids.len() > MAX_LOOKUP_IDS {
        return Err(AppError::bad_request(format!(
            "at most {MAX_LOOKUP_IDS} ids per lookup, got {}",
            ids.len()
        )));
    }
    let products = store::lookup(&products.db, ids).await?;
    Ok(Json(Found { products }))
}
