//! The order saga and its compensations.

use std::sync::Arc;
use std::time::Duration;

use firedrill_runtime::client::{CallError, Peer};
use firedrill_runtime::db::Db;
use firedrill_runtime::{AppError, AppResult, clock, queue};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::metrics::CheckoutMetrics;
use crate::store::{self, Item, Order};

/// How often deferred compensations are retried.
const RETRY_COMPENSATIONS_EVERY: Duration = Duration::from_secs(5);

pub struct Saga {
    pub db: Db,
    pub cart: Arc<Peer>,
    pub inventory: Arc<Peer>,
    pub payment: Arc<Peer>,
    pub shipping: Arc<Peer>,
    pub broker: Arc<Peer>,
    pub metrics: CheckoutMetrics,
}

#[derive(Deserialize)]
struct Cart {
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Shipment {
    shipment_id: String,
}

impl Saga {
    /// Places an order for everything in `user_id`'s cart.
    pub async fn place_order(&self, user_id: i64) -> AppResult<Order> {
        let cart: Cart = self
            .cart
            .get("/carts/{user_id}", format!("/carts/{user_id}"))
            .json()
            .await?;
        if cart.items.is_empty() {
            return Err(AppError::bad_request("cart is empty"));
        }
        let total: i64 = cart.items.iter().map(|i| i.price_cents * i.quantity).sum();
        let order_id = store::create_pending(&self.db, user_id, &cart.items, total).await?;
        tracing::info!(order_id, user_id, total_cents = total, "order created");

        let items: Vec<_> = cart
            .items
            .iter()
            .map(|i| json!({ "product_id": i.product_id, "quantity": i.quantity }))
            .collect();

        // 1. Reserve stock.
        if let Err(err) = self
            .inventory
            .post(
                "/reservations",
                "/reservations",
                &json!({ "order_id": order_id, "items": items }),
            )
            .idempotent(true)
            .send()
            .await
        {
            // A 4xx is a definite "no": nothing was reserved. Anything else
            // (timeout, 5xx) is ambiguous — inventory may have reserved before
            // the answer was lost — so release, which is idempotent.
            let definite = err.status().is_some_and(|s| s.is_client_error());
            let undo: &[&str] = if definite { &[] } else { &["release"] };
            return Err(self.abort(order_id, "reserve", err, undo).await);
        }
        // 2. Capture payment (idempotent per order at payment and provider).
        // A free order (fully discounted) has nothing to capture, and the
        // processor refuses a charge of 0, so the step is skipped.
        if total > 0
            && let Err(err) = self
                .payment
                .post(
                    "/payments",
                    "/payments",
                    &json!({ "order_id": order_id, "user_id": user_id, "amount_cents": total }),
                )
                .idempotent(true)
                .send()
                .await
        {
            return Err(self.abort(order_id, "pay", err, &["release"]).await);
        }
        // 3. Ship.
        let shipment = match self
            .shipping
            .post(
                "/shipments",
                "/shipments",
                &json!({ "order_id": order_id, "user_id": user_id, "items": items }),
            )
            .idempotent(true)
            .json::<Shipment>()
            .await
        {
            Ok(s) => s,
            Err(err) => {
                return Err(self
                    .abort(order_id, "ship", err, &["refund", "release"])
                    .await);
            }
        };
        // 4. Make the reservation permanent.
        if let Err(err) = self
            .inventory
            .post(
                "/reservations/{order_id}/commit",
                format!("/reservations/{order_id}/commit"),
                &json!({}),
            )
            .idempotent(true)
            .send()
            .await
        {
            return Err(self
                .abort(order_id, "commit", err, &["refund", "release"])
                .await);
        }
        store::confirm(&self.db, order_id, shipment.shipment_id.clone()).await?;
        self.metrics.orders.inc(&[("outcome", "confirmed")]);
        self.metrics.revenue.add(total.max(0) as f64, &[]);
        self.metrics.order_value.record(total.max(0) as f64, &[]);
        tracing::info!(order_id, user_id, shipment_id = %shipment.shipment_id, "order confirmed");

        self.after_confirmation(order_id, user_id, total, &cart.items)
            .await;
        Ok(Order {
            order_id,
            user_id,
            status: "confirmed".into(),
            total_cents: total,
            items: cart.items,
            shipment_id: Some(shipment.shipment_id),
            failure_reason: None,
        })
    }

    /// Clears the cart and announces the order. Neither may fail the order:
    /// it is paid and shipped by now.
    async fn after_confirmation(&self, order_id: i64, user_id: i64, total: i64, items: &[Item]) {
        if let Err(err) = self
            .cart
            .delete("/carts/{user_id}", format!("/carts/{user_id}"))
            .send()
            .await
        {
            tracing::warn!(order_id, error = %err, "cannot clear the cart after checkout");
        }
        let event = json!({
            "type": "order_confirmed",
            "order_id": order_id,
            "user_id": user_id,
            "total_cents": total,
            "items": items,
            "at_ms": clock::now_unix_ms(),
        });
        if let Err(err) = queue::publish(&self.broker, "order-events", &event).await {
            tracing::warn!(order_id, error = %err, "cannot publish order-events; notification and history will miss this order");
        }
    }

    /// Fails the order at `step`, runs `compensate` (in order), and returns
    /// the error the caller should see.
    async fn abort(
        &self,
        order_id: i64,
        step: &'static str,
        err: CallError,
        compensate: &[&'static str],
    ) -> AppError {
        tracing::warn!(order_id, step, error = %err, "checkout step failed; compensating");
        self.metrics
            .orders
            .inc(&[("outcome", "failed"), ("step", step)]);
        for &action in compensate {
            self.compensate(order_id, action).await;
        }
        if let Err(db_err) = store::fail(&self.db, order_id, format!("{step}: {err}")).await {
            tracing::error!(order_id, error = %db_err, "cannot mark order failed");
        }
        AppError::from(err)
    }

    async fn compensate(&self, order_id: i64, action: &'static str) {
        match self.run_compensation(order_id, action).await {
            Ok(()) => self
                .metrics
                .compensations
                .inc(&[("step", action), ("outcome", "done")]),
            Err(err) => {
                self.metrics
                    .compensations
                    .inc(&[("step", action), ("outcome", "deferred")]);
                tracing::error!(order_id, step = action, error = %err, "compensation failed; will retry");
                if let Err(db_err) =
                    store::defer_compensation(&self.db, order_id, action, err.to_string()).await
                {
                    tracing::error!(order_id, step = action, error = %db_err, "cannot record pending compensation");
                }
            }
        }
    }

    async fn run_compensation(&self, order_id: i64, action: &str) -> Result<(), CallError> {
        let call = match action {
            "refund" => self.payment.post(
                "/payments/{order_id}/refund",
                format!("/payments/{order_id}/refund"),
                &json!({}),
            ),
            _ => self.inventory.delete(
                "/reservations/{order_id}",
                format!("/reservations/{order_id}"),
            ),
        };
        match call.idempotent(true).send().await {
            Ok(_) => Ok(()),
            // Nothing to undo: the step never took effect.
            Err(CallError::Status { status, .. }) if status.as_u16() == 404 => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn retry_pending(&self) {
        let pending = match store::pending_compensations(&self.db).await {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read pending compensations");
                return;
            }
        };
        self.metrics
            .compensations_pending
            .set(pending.len() as f64, &[]);
        for (order_id, step) in pending {
            match self.run_compensation(order_id, &step).await {
                Ok(()) => {
                    tracing::info!(order_id, step = %step, "deferred compensation completed");
                    let _ = store::compensation_done(&self.db, order_id, step).await;
                }
                Err(err) => {
                    let step: &'static str = if step == "refund" {
                        "refund"
                    } else {
                        "release"
                    };
                    let _ =
                        store::defer_compensation(&self.db, order_id, step, err.to_string()).await;
                }
            }
        }
    }
}

pub fn spawn_compensation_retrier(saga: Arc<Saga>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RETRY_COMPENSATIONS_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => saga.retry_pending().await,
            }
        }
    });
}
