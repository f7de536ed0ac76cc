//! Capturing and refunding an order's payment through the processor.

use std::sync::Arc;

use axum::http::StatusCode;
use firedrill_runtime::client::{CallError, Peer};
use firedrill_runtime::db::{Db, Query};
use firedrill_runtime::live::Live;
use firedrill_runtime::{AppError, AppResult, clock};
use serde::Deserialize;
use serde_json::json;

use crate::metrics::PaymentMetrics;
use crate::store::{self, Payment, Status};

pub struct Payments {
    pub db: Db,
    pub provider: Arc<Peer>,
    pub metrics: PaymentMetrics,
    pub live: Live,
}

/// Feature flags that move a share of users' charges, or refunds, from the
/// processor's v1 API to its v2 API (same contract, separate endpoints).
pub const CHARGES_V2: &str = "charges-v2-api";
pub const REFUNDS_V2: &str = "refunds-v2-api";

/// The processor API version for `user_id`'s `flag`-governed calls: the
/// route template to call.
fn provider_route(
    live: &Live,
    flag: &str,
    user_id: i64,
    v1: &'static str,
    v2: &'static str,
) -> &'static str {
    if live.flag(flag, &user_id.to_string()) {
        v2
    } else {
        v1
    }
}

const FIND: Query = Query {
    operation: "SELECT",
    collection: "payments",
    text: "SELECT order_id, user_id, amount_cents, status, charge_id FROM payments WHERE order_id = ?1",
};
const RECORD_CAPTURED: Query = Query {
    operation: "INSERT",
    collection: "payments",
    text: "INSERT INTO payments (order_id, user_id, amount_cents, status, charge_id, created_at, updated_at) VALUES (?1, ?2, ?3, 'captured', ?4, ?5, ?5) ON CONFLICT (order_id) DO UPDATE SET status = 'captured', charge_id = excluded.charge_id, updated_at = excluded.updated_at WHERE payments.status = 'failed'",
};
const RECORD_FAILED: Query = Query {
    operation: "INSERT",
    collection: "payments",
    text: "INSERT INTO payments (order_id, user_id, amount_cents, status, charge_id, created_at, updated_at) VALUES (?1, ?2, ?3, 'failed', NULL, ?4, ?4) ON CONFLICT (order_id) DO NOTHING",
};
const MARK_REFUNDED: Query = Query {
    operation: "UPDATE",
    collection: "payments",
    text: "UPDATE payments SET status = 'refunded', updated_at = ?2 WHERE order_id = ?1 AND status = 'captured'",
};

/// What the processor answers to a charge or refund.
#[derive(Deserialize)]
struct ProviderAnswer {
    id: String,
}

/// The idempotency key of an order's charge: the same for every attempt, on
/// every instance, forever.
pub fn idempotency_key(order_id: i64) -> String {
    format!("order-{order_id}")
}

impl Payments {
    /// Takes `amount_cents` for `order_id`, once.
    pub async fn capture(
        &self,
        order_id: i64,
        user_id: i64,
        amount_cents: i64,
    ) -> AppResult<Payment> {
        if amount_cents <= 0 {
            return Err(AppError::bad_request("amount_cents must be positive"));
        }
        if let Some(existing) = self.find(order_id).await? {
            return self.replay(existing, amount_cents);
        }
        let route = provider_route(
            &self.live,
            CHARGES_V2,
            user_id,
            "/v1/charges",
            "/v2/charges",
        );
        let charge = self
            .provider
            .post(
                route,
                route,
                &json!({
                    "amount_cents": amount_cents,
                    "currency": "usd",
                    "idempotency_key": idempotency_key(order_id),
                }),
            )
            // The idempotency key makes a retried charge harmless.
            .idempotent(true)
            .json::<ProviderAnswer>()
            .await;
        let now = clock::now_unix_ms();
        match charge {
            Ok(charge) => {
                let payment = Payment {
                    order_id,
                    user_id,
                    amount_cents,
                    status: Status::Captured,
                    charge_id: Some(charge.id),
                };
                let recorded = self
                    .db
                    .run(RECORD_CAPTURED, move |conn| {
                        store::record_captured(conn, &payment, now)
                    })
                    .await?;
                self.metrics.captures.inc(&[("outcome", "captured")]);
                self.metrics.amount.record(amount_cents as f64, &[]);
                tracing::info!(order_id, user_id, amount_cents, "payment captured");
                Ok(recorded)
            }
            Err(err) if err.status() == Some(StatusCode::PAYMENT_REQUIRED) => {
                self.db
                    .run(RECORD_FAILED, move |conn| {
                        store::record_failed(conn, order_id, user_id, amount_cents, now)
                    })
                    .await?;
                self.metrics.captures.inc(&[("outcome", "declined")]);
                tracing::info!(order_id, user_id, amount_cents, "payment declined");
                Err(err.into())
            }
            Err(err) => {
                self.metrics.captures.inc(&[("outcome", "error")]);
                tracing::warn!(order_id, error = %err, "payment capture failed");
                Err(err.into())
            }
        }
    }

    /// The answer to a capture already made.
    fn replay(&self, existing: Payment, amount_cents: i64) -> AppResult<Payment> {
        if existing.amount_cents != amount_cents {
            return Err(AppError::conflict(format!(
                "order {} was already paid for a different amount",
                existing.order_id
            )));
        }
        self.metrics.captures.inc(&[("outcome", "replayed")]);
        match existing.status {
            Status::Failed => Err(AppError::new(StatusCode::PAYMENT_REQUIRED, "card declined")),
            Status::Captured | Status::Refunded => Ok(existing),
        }
    }

    /// Gives an order's money back, once. A failed payment has nothing to
    /// give back and answers with its status unchanged.
    pub async fn refund(&self, order_id: i64) -> AppResult<Payment> {
        let Some(payment) = self.find(order_id).await? else {
            return Err(AppError::not_found(format!(
                "no payment for order {order_id}"
            )));
        };
        let charge_id = match (&payment.status, &payment.charge_id) {
            (Status::Captured, Some(charge_id)) => charge_id.clone(),
            _ => {
                self.metrics.refunds.inc(&[("outcome", "replayed")]);
                return Ok(payment);
            }
        };
        let route = provider_route(
            &self.live,
            REFUNDS_V2,
            payment.user_id,
            "/v1/refunds",
            "/v2/refunds",
        );
        let refund = self
            .provider
            .post(route, route, &json!({ "charge_id": charge_id }))
            // A charge is refunded at most once by the provider.
            .idempotent(true)
            .json::<ProviderAnswer>()
            .await
            .inspect_err(|err: &CallError| {
                self.metrics.refunds.inc(&[("outcome", "error")]);
                tracing::warn!(order_id, error = %err, "refund failed");
            })?;
        let now = clock::now_unix_ms();
        self.db
            .run(MARK_REFUNDED, move |conn| {
                store::mark_refunded(conn, order_id, now)
            })
            .await?;
        self.metrics.refunds.inc(&[("outcome", "refunded")]);
        tracing::info!(order_id, refund_id = %refund.id, amount_cents = payment.amount_cents, "payment refunded");
        Ok(Payment {
            status: Status::Refunded,
            ..payment
        })
    }

    async fn find(&self, order_id: i64) -> AppResult<Option<Payment>> {
        Ok(self
            .db
            .run(FIND, move |conn| store::find(conn, order_id))
            .await?)
    }
}
