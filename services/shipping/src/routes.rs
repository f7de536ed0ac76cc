//! HTTP handlers: `POST /shipments`, `GET /shipments/{order_id}`.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use firedrill_runtime::db::{Db, Query};
use firedrill_runtime::extract::{Json, Path};
use firedrill_runtime::{AppError, AppResult, clock};
use serde::{Deserialize, Serialize};

use crate::metrics::ShippingMetrics;
use crate::quote::{self, Item};
use crate::store::{self, Shipment};

pub struct State {
    pub db: Db,
    pub metrics: ShippingMetrics,
}

type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/shipments", post(create))
        .route("/shipments/{order_id}", get(show))
        .with_state(state)
}

const BOOK: Query = Query {
    operation: "INSERT",
    collection: "shipments",
    text: "INSERT INTO shipments (shipment_id, order_id, user_id, carrier, eta_days, items_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (order_id) DO NOTHING",
};
const FIND: Query = Query {
    operation: "SELECT",
    collection: "shipments",
    text: "SELECT shipment_id, order_id, user_id, carrier, eta_days, items_json, created_at FROM shipments WHERE order_id = ?1",
};

#[derive(Deserialize)]
struct ShipmentRequest {
    order_id: i64,
    user_id: i64,
    items: Vec<Item>,
}

#[derive(Serialize)]
struct Booked {
    shipment_id: String,
    order_id: i64,
    carrier: String,
    eta_days: i64,
}

async fn create(
    axum::extract::State(state): axum::extract::State<Shared>,
    Json(request): Json<ShipmentRequest>,
) -> AppResult<(StatusCode, axum::Json<Booked>)> {
    quote::validate(&request.items).map_err(AppError::bad_request)?;
    let ShipmentRequest {
        order_id,
        user_id,
        items,
    } = request;
    let quote = quote::quote(order_id, &items);
    let now = clock::now_unix_ms();
    let (shipment, created) = state
        .db
        .run(BOOK, move |conn| {
            store::book(conn, order_id, user_id, &items, &quote, now)
        })
        .await?;
    if created {
        state
            .metrics
            .shipments
            .inc(&[("shipping.carrier", shipment.carrier.as_str())]);
        tracing::info!(order_id, shipment_id = %shipment.shipment_id, carrier = %shipment.carrier, eta_days = shipment.eta_days, "shipment booked");
    }
    let booked = Booked {
        shipment_id: shipment.shipment_id,
        order_id,
        carrier: shipment.carrier,
        eta_days: shipment.eta_days,
    };
    Ok((StatusCode::CREATED, axum::Json(booked)))
}

async fn show(
    axum::extract::State(state): axum::extract::State<Shared>,
    Path(order_id): Path<i64>,
) -> AppResult<axum::Json<Shipment>> {
    state
        .db
        .run(FIND, move |conn| store::find(conn, order_id))
        .await?
        .map(axum::Json)
        .ok_or_else(|| AppError::not_found(format!("no shipment for order {order_id}")))
}
