//! The gateway: the shop's public API (docs/shop-api.md).
//!
//! It terminates every public request, checks bearer tokens with `auth`,
//! rate-limits per client address, and routes to the services behind it.
//! Load balancing across instances, timeouts, retries and breakers come from
//! the runtime's client; load shedding from the runtime's server stack. The
//! gateway holds no data of its own.

mod bot_rules;
mod routes;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;
use firedrill_runtime::resilience::rate_limit::RateLimiter;

pub const NAME: &str = "gateway";

/// Per-client request rate (requests/s) and burst; 0 disables the limit.
/// Read from `FIREDRILL_GATEWAY_RATE_LIMIT` / `FIREDRILL_GATEWAY_RATE_BURST`.
const DEFAULT_RATE_LIMIT: f64 = 500.0;
const DEFAULT_RATE_BURST: f64 = 1000.0;

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let rate = env_f64("FIREDRILL_GATEWAY_RATE_LIMIT", DEFAULT_RATE_LIMIT)?;
    let burst = env_f64("FIREDRILL_GATEWAY_RATE_BURST", DEFAULT_RATE_BURST)?;
    let state = routes::Gateway {
        auth: ctx.peer("auth")?,
        catalog: ctx.peer("catalog")?,
        search: ctx.peer("search")?,
        cart: ctx.peer("cart")?,
        checkout: ctx.peer("checkout")?,
        limiter: Arc::new(RateLimiter::new(rate, burst)),
        live: ctx.live.clone(),
        bot_rules: Arc::new(bot_rules::BotRules::new()),
        rate_limited: ctx.meters.counter(
            "http.server.rate_limited_requests",
            "Requests refused with 429 by the per-client rate limit",
        ),
    };
    tracing::info!(
        v2_signatures = state.bot_rules.v2_len(),
        "bot screening ready"
    );
    Ok(routes::router(Arc::new(state)))
}

fn env_f64(name: &str, default: f64) -> anyhow::Result<f64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| anyhow::anyhow!("{name}={v:?} is not a non-negative number")),
        Err(_) => Ok(default),
    }
}
