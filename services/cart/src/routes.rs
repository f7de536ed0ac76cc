//! Cart's routes (docs/internal-api.md).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use firedrill_runtime::AppResult;
use firedrill_runtime::extract::{Json as Body, Path};
use serde::Deserialize;

use crate::carts::Carts;
use crate::store::Cart;

pub fn router(carts: Arc<Carts>) -> Router {
    Router::new()
        .route("/carts/{user_id}", get(get_cart).delete(clear_cart))
        .route("/carts/{user_id}/items", post(add_item))
        .route("/carts/{user_id}/items/{product_id}", delete(remove_item))
        .with_state(carts)
}

#[derive(Deserialize)]
struct AddBody {
    product_id: i64,
    quantity: i64,
}

async fn get_cart(
    State(carts): State<Arc<Carts>>,
    Path(user_id): Path<i64>,
) -> AppResult<Json<Cart>> {
    carts.get(user_id).await.map(Json)
}

async fn add_item(
    State(carts): State<Arc<Carts>>,
    Path(user_id): Path<i64>,
    Body(body): Body<AddBody>,
) -> AppResult<Json<Cart>> {
    let AddBody {
        product_id,
        quantity,
    } = body;
    carts.add(user_id, product_id, quantity).await.map(Json)
}

async fn remove_item(
    State(carts): State<Arc<Carts>>,
    Path((user_id, product_id)): Path<(i64, i64)>,
) -> AppResult<Json<Cart>> {
    carts.remove(user_id, product_id).await.map(Json)
}

async fn clear_cart(
    State(carts): State<Arc<Carts>>,
    Path(user_id): Path<i64>,
) -> AppResult<Json<Cart>> {
    carts.clear(user_id).await.map(Json)
}
