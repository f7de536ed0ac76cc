//! Checkout's routes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use firedrill_runtime::extract::{Json as Body, Path, Query};
use firedrill_runtime::{AppError, AppResult};
use serde::Deserialize;

use crate::saga::Saga;
use crate::store::{self, Order};

pub fn router(saga: Arc<Saga>) -> Router {
    Router::new()
        .route("/checkout", post(checkout))
        .route("/orders/{id}", get(get_order))
        .with_state(saga)
}

#[derive(Deserialize)]
struct CheckoutBody {
    user_id: i64,
}

async fn checkout(
    State(saga): State<Arc<Saga>>,
    Body(body): Body<CheckoutBody>,
) -> AppResult<(StatusCode, Json<Order>)> {
    if body.user_id <= 0 {
        return Err(AppError::bad_request("user_id must be a positive integer"));
    }
    let order = saga.place_order(body.user_id).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

#[derive(Deserialize)]
struct OrderQuery {
    user_id: i64,
}

async fn get_order(
    State(saga): State<Arc<Saga>>,
    Path(id): Path<i64>,
    Query(q): Query<OrderQuery>,
) -> AppResult<Json<Order>> {
    store::find(&saga.db, id, q.user_id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::not_found(format!("order {id} not found")))
}
