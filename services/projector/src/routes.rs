//! HTTP handlers: the read models.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use firedrill_runtime::db::Query;
use firedrill_runtime::extract::Path;
use firedrill_runtime::{AppError, AppResult};
use serde::Serialize;

use crate::consumer;
use crate::store::{self, CartActivity, OrderSummary};

type Shared = Arc<consumer::State>;

/// Most orders one request lists.
const MAX_ORDERS: i64 = 100;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/users/{user_id}/orders", get(orders))
        .route("/users/{user_id}/cart-activity", get(cart_activity))
        .with_state(state)
}

const ORDERS: Query = Query {
    operation: "SELECT",
    collection: "order_history",
    text: "SELECT order_id, user_id, total_cents, item_count, confirmed_at FROM order_history WHERE user_id = ?1 ORDER BY confirmed_at DESC, order_id DESC LIMIT ?2",
};
const CART_ACTIVITY: Query = Query {
    operation: "SELECT",
    collection: "cart_activity",
    text: "SELECT user_id, last_event, events_seen, updated_at FROM cart_activity WHERE user_id = ?1",
};

#[derive(Serialize)]
struct Orders {
    orders: Vec<OrderSummary>,
}

async fn orders(
    State(state): State<Shared>,
    Path(user_id): Path<i64>,
) -> AppResult<axum::Json<Orders>> {
    let orders = state
        .db
        .run(ORDERS, move |conn| {
            store::orders_of(conn, user_id, MAX_ORDERS)
        })
        .await?;
    Ok(axum::Json(Orders { orders }))
}

async fn cart_activity(
    State(state): State<Shared>,
    Path(user_id): Path<i64>,
) -> AppResult<axum::Json<CartActivity>> {
    state
        .db
        .run(CART_ACTIVITY, move |conn| {
            store::cart_activity(conn, user_id)
        })
        .await?
        .map(axum::Json)
        .ok_or_else(|| AppError::not_found(format!("no cart activity for user {user_id}")))
}
