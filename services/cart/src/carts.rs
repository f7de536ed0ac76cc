//! What a cart can do: read, add (validated against catalog), remove,
//! clear; each change committed first, then announced on `cart-events`.
//!
//! Users with the `lowest-price-badge` feature flag on see each line's
//! lowest price of the last 30 days next to its price, asked of catalog
//! line by line. The flag is a share of users (`flags.lowest-price-badge`
//! in cart's live config), so turning it up moves that work onto catalog
//! for that share of carts.

use std::sync::Arc;

use axum::http::StatusCode;
use firedrill_runtime::client::Peer;
use firedrill_runtime::db::Db;
use firedrill_runtime::live::Live;
use firedrill_runtime::{AppError, AppResult, clock};
use serde::Deserialize;

use crate::events::{CartEvent, Kind, Publisher};
use crate::store::{self, Cart, MAX_QUANTITY, NewLine};

pub struct Carts {
    pub db: Db,
    pub catalog: Arc<Peer>,
    pub events: Publisher,
    pub live: Live,
}

/// The feature flag that adds lowest prices to carts.
pub const LOWEST_PRICE_BADGE: &str = "lowest-price-badge";

/// What catalog answers about a product's lowest price.
#[derive(Deserialize)]
struct LowestPrice {
    lowest_price_cents: i64,
}

/// What cart needs of a catalog product.
#[derive(Deserialize)]
struct CatalogProduct {
    id: i64,
    name: String,
    price_cents: i64,
}

impl Carts {
    pub async fn get(&self, user_id: i64) -> AppResult<Cart> {
        let cart = store::cart(&self.db, check_user(user_id)?).await?;
        self.shown(cart).await
    }

    pub async fn add(&self, user_id: i64, product_id: i64, quantity: i64) -> AppResult<Cart> {
        let user_id = check_user(user_id)?;
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(AppError::bad_request(format!(
                "quantity must be between 1 and {MAX_QUANTITY}"
            )));
        }
        if product_id <= 0 {
            return Err(AppError::bad_request(
                "product_id must be a positive integer",
            ));
        }
        let product = self.product(product_id).await?;
        let line = NewLine {
            product_id: product.id,
            name: product.name,
            price_cents: product.price_cents,
            quantity,
        };
        let now = clock::now_unix_ms();
        let cart = store::add(&self.db, user_id, line, now).await?;
        let cart = self.shown(cart).await?;
        self.events
            .publish(CartEvent {
                kind: Kind::ItemAdded,
                user_id,
                product_id: Some(product_id),
                quantity,
                at_ms: now,
            })
            .await;
        Ok(cart)
    }

    pub async fn remove(&self, user_id: i64, product_id: i64) -> AppResult<Cart> {
        let user_id = check_user(user_id)?;
        let (removed, cart) = store::remove(&self.db, user_id, product_id).await?;
        let cart = self.shown(cart).await?;
        if let Some(quantity) = removed {
            let at_ms = clock::now_unix_ms();
            self.events
                .publish(CartEvent {
                    kind: Kind::ItemRemoved,
                    user_id,
                    product_id: Some(product_id),
                    quantity,
                    at_ms,
                })
                .await;
        }
        Ok(cart)
    }

    pub async fn clear(&self, user_id: i64) -> AppResult<Cart> {
        let user_id = check_user(user_id)?;
        let units = store::clear(&self.db, user_id).await?;
        if units > 0 {
            let at_ms = clock::now_unix_ms();
            self.events
                .publish(CartEvent {
                    kind: Kind::CartCleared,
                    user_id,
                    product_id: None,
                    quantity: units,
                    at_ms,
                })
                .await;
        }
        Ok(Cart {
            user_id,
            items: Vec::new(),
            total_cents: 0,
        })
    }

    /// The cart as its user sees it: with lowest prices if their flag is on.
    async fn shown(&self, mut cart: Cart) -> AppResult<Cart> {
        if !self
            .live
            .flag(LOWEST_PRICE_BADGE, &cart.user_id.to_string())
        {
            return Ok(cart);
        }
        for item in &mut cart.items {
            let id = item.product_id;
            let lowest = self
                .catalog
                .get(
                    "/products/{id}/lowest-price",
                    format!("/products/{id}/lowest-price?days=30"),
                )
                .json::<LowestPrice>()
                .await
                .map_err(|err| match err.status() {
                    // Gone from the catalog since it was added: no badge.
                    Some(StatusCode::NOT_FOUND) => None,
                    _ => Some(AppError::from(err)),
                });
            match lowest {
                Ok(lowest) => item.lowest_price_cents = Some(lowest.lowest_price_cents),
                Err(None) => {}
                Err(Some(err)) => return Err(err),
            }
        }
        Ok(cart)
    }

    /// The product from catalog; its 404 becomes ours, with our wording.
    async fn product(&self, id: i64) -> AppResult<CatalogProduct> {
        self.catalog
            .get("/products/{id}", format!("/products/{id}"))
            .json::<CatalogProduct>()
            .await
            .map_err(|err| match err.status() {
                Some(StatusCode::NOT_FOUND) => AppError::not_found(format!("unknown product {id}")),
                _ => AppError::from(err),
            })
    }
}

fn check_user(user_id: i64) -> AppResult<i64> {
    if user_id <= 0 {
        return Err(AppError::bad_request("user_id must be a positive integer"));
    }
    Ok(user_id)
}
