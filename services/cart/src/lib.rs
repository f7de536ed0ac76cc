//! cart: each user's shopping cart.
//!
//! - Data: table `cart_items` (user_id, product_id, quantity 1..=10,
//!   price_cents, name, updated_at; primary key (user_id, product_id)). A
//!   line keeps the name and price the product had when last added.
//! - Routes: `GET /carts/{user_id}`, `POST /carts/{user_id}/items`
//!   (`{"product_id","quantity"}`; quantities sum per line, capped at 10),
//!   `DELETE /carts/{user_id}/items/{product_id}`, `DELETE /carts/{user_id}`;
//!   each answers the cart `{"user_id","items":[...],"total_cents"}`.
//! - Depends on: the database; `catalog` (`GET /products/{id}`, to validate
//!   and price an added product: its 404 is ours); the queue broker, where
//!   every change is published to `cart-events` (best-effort: a failed
//!   publish is logged and counted, the request still succeeds).
//! - Emits: `cart.events.published`, `cart.events.publish_failures`
//!   {`cart.event.type`}.

mod carts;
mod events;
mod metrics;
mod routes;
mod store;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;
use firedrill_runtime::queue::BROKER;

pub const NAME: &str = "cart";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let db = ctx.db()?;
    db.migrate("cart", store::migrate).await?;
    let carts = Arc::new(carts::Carts {
        db,
        catalog: ctx.peer("catalog")?,
        events: events::Publisher {
            broker: ctx.peer(BROKER)?,
            metrics: metrics::CartMetrics::new(&ctx.meters),
        },
        live: ctx.live.clone(),
    });
    Ok(routes::router(carts))
}
