//! catalog: the shop's products.
//!
//! - Data: table `products` (id, sku UNIQUE, name, category, price_cents
//!   (the list price), description, created_at; indexed on category),
//!   seeded with 240 deterministic products in 8 categories (see
//!   `seed.rs`); table `product_prices` (product_id, valid_from,
//!   price_cents; indexed on (product_id, valid_from), the hot index),
//!   200 price revisions per product, the newest being the price served.
//! - Routes: `GET /products?limit=&offset=&category=`, `GET /products/{id}`,
//!   `POST /products/lookup` (at most 500 ids).
//! - Depends on: the database, and the `cache` service for single-product
//!   reads (cache-aside, 30 s TTL; a cache failure falls back to the
//!   database, see `products.rs`).
//! - Emits: `cache.lookups` {`cache.result`=hit|miss|error}, `cache.writes`
//!   {`cache.result`=ok|error}.

mod metrics;
mod products;
mod routes;
mod seed;
mod store;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;

pub const NAME: &str = "catalog";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let db = ctx.db()?;
    db.migrate("catalog", store::migrate).await?;
    db.declare_hot_index(store::HOT_INDEX);
    let products = Arc::new(products::Products {
        db,
        cache: ctx.peer("cache")?,
        metrics: metrics::CatalogMetrics::new(&ctx.meters),
    });
    Ok(routes::router(products))
}
