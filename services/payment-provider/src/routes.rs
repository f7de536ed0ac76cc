//! The processor's public API: `POST /v1/charges`, `POST /v1/refunds`, and
//! the same contract as v2 (`/v2/charges`, `/v2/refunds`), served by its
//! newer stack: separate endpoints, so a fault on one version's route
//! leaves the other answering.
//!
//! Each call decides its answer under the ledger lock, then waits out its
//! simulated latency without holding the lock, so concurrent calls overlap as
//! they would against a remote API.

use std::sync::Arc;

use axum::Router;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::routing::post;
use firedrill_runtime::extract::Json;
use firedrill_runtime::{AppError, AppResult};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::ledger::{ChargeRequest, Charged, Ledger, Refunded};
use crate::metrics::ProviderMetrics;

pub struct State {
    pub ledger: Mutex<Ledger>,
    pub metrics: ProviderMetrics,
}

type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/charges", post(charge))
        .route("/v1/refunds", post(refund))
        .route("/v2/charges", post(charge))
        .route("/v2/refunds", post(refund))
        .with_state(state)
}

#[derive(Deserialize)]
struct ChargeBody {
    amount_cents: i64,
    #[serde(default = "default_currency")]
    currency: String,
    idempotency_key: String,
}

fn default_currency() -> String {
    "usd".into()
}

#[derive(Serialize)]
struct ChargeAnswer {
    id: String,
    status: &'static str,
    amount_cents: i64,
    currency: String,
}

#[derive(Deserialize)]
struct RefundBody {
    charge_id: String,
}

#[derive(Serialize)]
struct RefundAnswer {
    id: String,
    status: &'static str,
    charge_id: String,
}

/// Checks a charge request the way a processor's API validation would.
fn validate(body: ChargeBody) -> Result<ChargeRequest, String> {
    if body.amount_cents <= 0 {
        return Err("amount_cents must be positive".into());
    }
    let key = body.idempotency_key.trim();
    if key.is_empty() || key.len() > 255 {
        return Err("idempotency_key must be 1 to 255 characters".into());
    }
    if body.currency.len() != 3 || !body.currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!("invalid currency {:?}", body.currency));
    }
    Ok(ChargeRequest {
        amount_cents: body.amount_cents,
        currency: body.currency.to_ascii_lowercase(),
        idempotency_key: key.to_string(),
    })
}

async fn charge(
    Extract(state): Extract<Shared>,
    Json(body): Json<ChargeBody>,
) -> AppResult<(StatusCode, axum::Json<ChargeAnswer>)> {
    let request = validate(body).map_err(|message| {
        state.metrics.charges.inc(&[("outcome", "rejected")]);
        AppError::bad_request(message)
    })?;
    let (charged, latency) = {
        let mut ledger = state.ledger.lock();
        (ledger.charge(request), ledger.latency())
    };
    tokio::time::sleep(latency).await;
    let (charge, outcome) = match charged {
        Charged::New(charge) if charge.declined => (charge, "declined"),
        Charged::New(charge) => (charge, "succeeded"),
        Charged::Replayed(charge) => (charge, "replayed"),
        Charged::KeyReused => {
            state.metrics.charges.inc(&[("outcome", "rejected")]);
            return Err(AppError::conflict(
                "idempotency_key was already used with different parameters",
            ));
        }
    };
    state.metrics.charges.inc(&[("outcome", outcome)]);
    if charge.declined {
        return Err(AppError::new(StatusCode::PAYMENT_REQUIRED, "card declined"));
    }
    let answer = ChargeAnswer {
        id: charge.id,
        status: "succeeded",
        amount_cents: charge.amount_cents,
        currency: charge.currency,
    };
    Ok((StatusCode::CREATED, axum::Json(answer)))
}

async fn refund(
    Extract(state): Extract<Shared>,
    Json(body): Json<RefundBody>,
) -> AppResult<(StatusCode, axum::Json<RefundAnswer>)> {
    let (refunded, latency) = {
        let mut ledger = state.ledger.lock();
        (ledger.refund(&body.charge_id), ledger.latency())
    };
    tokio::time::sleep(latency).await;
    let (refund, outcome) = match refunded {
        Refunded::New(refund) => (refund, "succeeded"),
        Refunded::Replayed(refund) => (refund, "replayed"),
        Refunded::NoSuchCharge => {
            state.metrics.refunds.inc(&[("outcome", "rejected")]);
            return Err(AppError::not_found(format!(
                "no such charge: {}",
                body.charge_id
            )));
        }
        Refunded::Declined => {
            state.metrics.refunds.inc(&[("outcome", "rejected")]);
            return Err(AppError::conflict("charge was declined; nothing to refund"));
        }
    };
    state.metrics.refunds.inc(&[("outcome", outcome)]);
    let answer = RefundAnswer {
        id: refund.id,
        status: "succeeded",
        charge_id: refund.charge_id,
    };
    Ok((StatusCode::CREATED, axum::Json(answer)))
}
