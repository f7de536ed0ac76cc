//! HTTP handlers: parse, run a `store` function on the pool, map the outcome.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use firedrill_runtime::db::{Db, Query};
use firedrill_runtime::extract::{Json, Path};
use firedrill_runtime::{AppError, AppResult, clock};
use serde::{Deserialize, Serialize};

use crate::metrics::InventoryMetrics;
use crate::store::{self, Item, Reserved, Status, Stock, Transition};

pub struct State {
    pub db: Db,
    pub metrics: InventoryMetrics,
}

type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/reservations", post(reserve))
        .route("/reservations/{order_id}/commit", post(commit))
        .route("/reservations/{order_id}", delete(release))
        .route("/stock/{product_id}", get(stock))
        .with_state(state)
}

const RESERVE: Query = Query {
    operation: "UPDATE",
    collection: "stock",
    text: "UPDATE stock SET available = available - ?2, reserved = reserved + ?2 WHERE product_id = ?1 AND available >= ?2",
};
const COMMIT: Query = Query {
    operation: "UPDATE",
    collection: "reservations",
    text: "UPDATE reservations SET status = 'committed' WHERE order_id = ?1 AND status = 'reserved'",
};
const RELEASE: Query = Query {
    operation: "UPDATE",
    collection: "reservations",
    text: "UPDATE reservations SET status = 'released' WHERE order_id = ?1 AND status = 'reserved'",
};
const STOCK: Query = Query {
    operation: "SELECT",
    collection: "stock",
    text: "SELECT product_id, available, reserved FROM stock WHERE product_id = ?1",
};

#[derive(Deserialize)]
struct ReserveRequest {
    order_id: i64,
    items: Vec<Item>,
}

#[derive(Serialize)]
struct ReservationStatus {
    order_id: i64,
    status: &'static str,
}

impl ReservationStatus {
    fn new(order_id: i64, status: Status) -> Self {
        ReservationStatus {
            order_id,
            status: status.as_str(),
        }
    }
}

async fn reserve(
    axum::extract::State(state): axum::extract::State<Shared>,
    Json(request): Json<ReserveRequest>,
) -> AppResult<(StatusCode, axum::Json<ReservationStatus>)> {
    let order_id = request.order_id;
    let items = store::normalize(&request.items).map_err(AppError::bad_request)?;
    let now = clock::now_unix_ms();
    let outcome = state
        .db
        .run(RESERVE, move |conn| {
            store::reserve(conn, order_id, &items, now)
        })
        .await?;
    match outcome {
        Reserved::New => {
            state.metrics.reservations.inc(&[("outcome", "reserved")]);
            tracing::debug!(order_id, "stock reserved");
            Ok((
                StatusCode::CREATED,
                axum::Json(ReservationStatus::new(order_id, Status::Reserved)),
            ))
        }
        Reserved::Existing(status) => Ok((
            StatusCode::CREATED,
            axum::Json(ReservationStatus::new(order_id, status)),
        )),
        Reserved::Insufficient { product_id } => {
            state
                .metrics
                .reservations
                .inc(&[("outcome", "insufficient")]);
            tracing::info!(
                order_id,
                product_id,
                "reservation refused: insufficient stock"
            );
            Err(AppError::conflict(format!(
                "insufficient stock for product {product_id}"
            )))
        }
    }
}

async fn commit(
    axum::extract::State(state): axum::extract::State<Shared>,
    Path(order_id): Path<i64>,
) -> AppResult<axum::Json<ReservationStatus>> {
    match state
        .db
        .run(COMMIT, move |conn| store::commit(conn, order_id))
        .await?
    {
        Transition::Changed(status) => {
            state.metrics.reservations.inc(&[("outcome", "committed")]);
            Ok(axum::Json(ReservationStatus::new(order_id, status)))
        }
        Transition::Unchanged(Status::Released) => Err(AppError::conflict(format!(
            "reservation for order {order_id} was released"
        ))),
        Transition::Unchanged(status) => Ok(axum::Json(ReservationStatus::new(order_id, status))),
        Transition::NotFound => Err(no_reservation(order_id)),
    }
}

/// Releasing a committed reservation answers 200 with `"committed"`: the
/// units shipped and cannot come back, and a compensation retrying forever
/// on an error would not change that.
async fn release(
    axum::extract::State(state): axum::extract::State<Shared>,
    Path(order_id): Path<i64>,
) -> AppResult<axum::Json<ReservationStatus>> {
    match state
        .db
        .run(RELEASE, move |conn| store::release(conn, order_id))
        .await?
    {
        Transition::Changed(status) => {
            state.metrics.reservations.inc(&[("outcome", "released")]);
            Ok(axum::Json(ReservationStatus::new(order_id, status)))
        }
        Transition::Unchanged(status) => {
            if status == Status::Committed {
                tracing::warn!(
                    order_id,
                    "release asked for a committed reservation; units stay sold"
                );
            }
            Ok(axum::Json(ReservationStatus::new(order_id, status)))
        }
        Transition::NotFound => Err(no_reservation(order_id)),
    }
}

async fn stock(
    axum::extract::State(state): axum::extract::State<Shared>,
    Path(product_id): Path<i64>,
) -> AppResult<axum::Json<Stock>> {
    state
        .db
        .run(STOCK, move |conn| store::stock(conn, product_id))
        .await?
        .map(axum::Json)
        .ok_or_else(|| AppError::not_found(format!("no stock record for product {product_id}")))
}

fn no_reservation(order_id: i64) -> AppError {
    AppError::not_found(format!("no reservation for order {order_id}"))
}
