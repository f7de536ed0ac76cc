//! Search's routes: `GET /search` and `GET /recommendations/{id}`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use firedrill_runtime::extract::{Path, Query};
use firedrill_runtime::{AppError, AppResult};
use serde::{Deserialize, Serialize};

use crate::index::{Hit, Index, Product};
use crate::loader::LiveIndex;
use crate::metrics::SearchMetrics;

pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 50;
pub const MAX_QUERY_CHARS: usize = 200;
pub const RECOMMENDATIONS: usize = 5;

pub struct Search {
    pub live: Arc<LiveIndex>,
    pub metrics: SearchMetrics,
}

impl Search {
    fn index(&self) -> AppResult<Arc<Index>> {
        self.live
            .get()
            .ok_or_else(|| AppError::unavailable("index not ready"))
    }

    /// Runs `rank` against the live index, timing the CPU work.
    fn ranked<T>(&self, operation: &'static str, rank: impl FnOnce(&Index) -> T) -> AppResult<T> {
        let index = self.index()?;
        let started = Instant::now();
        let answer = rank(&index);
        self.metrics.query_duration.record(
            started.elapsed().as_secs_f64(),
            &[("search.operation", operation)],
        );
        Ok(answer)
    }
}

pub fn router(search: Arc<Search>) -> Router {
    Router::new()
        .route("/search", get(search_products))
        .route("/recommendations/{id}", get(recommendations))
        .with_state(search)
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct Results {
    query: String,
    results: Vec<Hit>,
}

#[derive(Serialize)]
struct Recommended {
    product_id: i64,
    products: Vec<Product>,
}

async fn search_products(
    State(search): State<Arc<Search>>,
    Query(q): Query<SearchQuery>,
) -> AppResult<Json<Results>> {
    let query = q.q.as_deref().unwrap_or_default().trim().to_string();
    if query.is_empty() {
        return Err(AppError::bad_request("q must not be empty"));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(AppError::bad_request(format!(
            "q is at most {MAX_QUERY_CHARS} characters"
        )));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let results = search.ranked("search", |index| index.search(&query, limit))?;
    Ok(Json(Results { query, results }))
}

async fn recommendations(
    State(search): State<Arc<Search>>,
    Path(id): Path<i64>,
) -> AppResult<Json<Recommended>> {
    let products = search
        .ranked("recommendations", |index| {
            index.recommendations(id, RECOMMENDATIONS)
        })?
        .ok_or_else(|| AppError::not_found(format!("product {id} not found")))?;
    Ok(Json(Recommended {
        product_id: id,
        products,
    }))
}
