//! HTTP handlers: `POST /payments`, `POST /payments/{order_id}/refund`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use firedrill_runtime::AppResult;
use firedrill_runtime::extract::{Json, Path};
use serde::{Deserialize, Serialize};

use crate::payments::Payments;
use crate::store::{Payment, Status};

type Shared = Arc<Payments>;

pub fn router(payments: Shared) -> Router {
    Router::new()
        .route("/payments", post(capture))
        .route("/payments/{order_id}/refund", post(refund))
        .with_state(payments)
}

#[derive(Deserialize)]
struct CaptureRequest {
    order_id: i64,
    user_id: i64,
    amount_cents: i64,
}

#[derive(Serialize)]
struct PaymentAnswer {
    payment_id: String,
    order_id: i64,
    status: Status,
    charge_id: Option<String>,
}

impl From<Payment> for PaymentAnswer {
    fn from(p: Payment) -> Self {
        PaymentAnswer {
            payment_id: format!("pay_{}", p.order_id),
            order_id: p.order_id,
            status: p.status,
            charge_id: p.charge_id,
        }
    }
}

#[derive(Serialize)]
struct RefundAnswer {
    order_id: i64,
    status: Status,
}

async fn capture(
    State(payments): State<Shared>,
    Json(request): Json<CaptureRequest>,
) -> AppResult<(StatusCode, axum::Json<PaymentAnswer>)> {
    let payment = payments
        .capture(request.order_id, request.user_id, request.amount_cents)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(payment.into())))
}

async fn refund(
    State(payments): State<Shared>,
    Path(order_id): Path<i64>,
) -> AppResult<axum::Json<RefundAnswer>> {
    let payment = payments.refund(order_id).await?;
    Ok(axum::Json(RefundAnswer {
        order_id,
        status: payment.status,
    }))
}
