//! The processor's public API: `POST /v1/charges`, `POST /v1/refunds`, and
//! the same contract as v2 (`/v2/charges`, `/v2/refunds`), served by its
//! newer stack: separate endpoints, so a fault on one version's route
//! leaves the other answering.
//!
//! Every call waits for its turn under the merchant rate limit
//! ([`crate::admission`]) and is then processed to the end, whether or not
//! its caller is still there. Processing decides the answer under the
//! ledger lock, then waits out the simulated latency without holding the
//! lock, so admitted calls overlap as they would against a remote API.

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, State as Extract};
use axum::http::StatusCode;
use axum::routing::post;
use firedrill_runtime::extract::Json;
use firedrill_runtime::{AppError, AppResult};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::admission::{Admission, Refused};
use crate::ledger::{Charge, ChargeRequest, Charged, Ledger, Refund, Refunded};
use crate::metrics::ProviderMetrics;

pub struct State {
    pub ledger: Mutex<Ledger>,
    pub metrics: ProviderMetrics,
    pub admission: Admission,
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

/// The answer to a request the merchant rate limit did not admit.
fn refused(refused: Refused) -> AppError {
    match refused {
        Refused::Busy { retry_after } => AppError::unavailable(format!(
            "merchant rate limit exceeded: your next turn is {:.1} s away; retry later",
            retry_after.as_secs_f64()
        )),
        Refused::ShuttingDown => AppError::unavailable("the processor is shutting down"),
    }
}

async fn charge(
    Extract(state): Extract<Shared>,
    path: MatchedPath,
    Json(body): Json<ChargeBody>,
) -> AppResult<(StatusCode, axum::Json<ChargeAnswer>)> {
    let request = validate(body).map_err(|message| {
        state.metrics.charges.inc(&[("outcome", "rejected")]);
        AppError::bad_request(message)
    })?;
    let processor = state.clone();
    let charge = state
        .admission
        .run(path.as_str().to_string(), async move {
            processor.process_charge(request).await
        })
        .await
        .map_err(refused)??;
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
    path: MatchedPath,
    Json(body): Json<RefundBody>,
) -> AppResult<(StatusCode, axum::Json<RefundAnswer>)> {
    let processor = state.clone();
    let refund = state
        .admission
        .run(path.as_str().to_string(), async move {
            processor.process_refund(body.charge_id).await
        })
        .await
        .map_err(refused)??;
    let answer = RefundAnswer {
        id: refund.id,
        status: "succeeded",
        charge_id: refund.charge_id,
    };
    Ok((StatusCode::CREATED, axum::Json(answer)))
}

impl State {
    /// Charges once per idempotency key, taking the call's latency.
    async fn process_charge(&self, request: ChargeRequest) -> AppResult<Charge> {
        let (charged, latency) = {
            let mut ledger = self.ledger.lock();
            (ledger.charge(request), ledger.latency())
        };
        tokio::time::sleep(latency).await;
        let (charge, outcome) = match charged {
            Charged::New(charge) if charge.declined => (charge, "declined"),
            Charged::New(charge) => (charge, "succeeded"),
            Charged::Replayed(charge) => (charge, "replayed"),
            Charged::KeyReused => {
                self.metrics.charges.inc(&[("outcome", "rejected")]);
                return Err(AppError::conflict(
                    "idempotency_key was already used with different parameters",
                ));
            }
        };
        self.metrics.charges.inc(&[("outcome", outcome)]);
        if charge.declined {
            return Err(AppError::new(StatusCode::PAYMENT_REQUIRED, "card declined"));
        }
        Ok(charge)
    }

    /// Refunds a charge in full, once, taking the call's latency.
    async fn process_refund(&self, charge_id: String) -> AppResult<Refund> {
        let (refunded, latency) = {
            let mut ledger = self.ledger.lock();
            (ledger.refund(&charge_id), ledger.latency())
        };
        tokio::time::sleep(latency).await;
        let (refund, outcome) = match refunded {
            Refunded::New(refund) => (refund, "succeeded"),
            Refunded::Replayed(refund) => (refund, "replayed"),
            Refunded::NoSuchCharge => {
                self.metrics.refunds.inc(&[("outcome", "rejected")]);
                return Err(AppError::not_found(format!("no such charge: {charge_id}")));
            }
            Refunded::Declined => {
                self.metrics.refunds.inc(&[("outcome", "rejected")]);
                return Err(AppError::conflict("charge was declined; nothing to refund"));
            }
        };
        self.metrics.refunds.inc(&[("outcome", outcome)]);
        Ok(refund)
    }
}
