//! auth: checks passwords and issues and verifies the signed tokens every
//! authenticated shop request carries.
//!
//! - Data: table `users` (id, username UNIQUE, password_salt, password_hash =
//!   hex sha256(salt ‖ password), created_at), seeded with `user1` ..
//!   `user500`, password `firedrill`.
//! - Tokens: `base64url(claims).base64url(hmac_sha256(key, claims))`, claims
//!   `{"sub","iat","nbf","exp","kid"}` in ms since the epoch, 15 minute TTL.
//!   The key comes from `FIREDRILL_AUTH_SECRET` (every instance shares it, so
//!   any instance verifies any other's tokens). Validity is checked against
//!   this process's clock ([`firedrill_runtime::clock`]) with 5 s of leeway,
//!   which is why a skewed clock on one instance rejects good tokens.
//! - Routes: `POST /login`, `POST /verify` (401 bodies say exactly why).
//! - Depends on: the database only.
//! - Emits: `auth.logins` {outcome}, `auth.verifications` {outcome}.

mod metrics;
mod password;
mod routes;
mod store;
mod token;

use std::sync::Arc;

use firedrill_runtime::ServiceContext;

pub const NAME: &str = "auth";

/// Signing key used when `FIREDRILL_AUTH_SECRET` is not set.
pub const DEFAULT_SECRET: &str = "firedrill-lab-secret";

pub async fn build(ctx: ServiceContext) -> anyhow::Result<axum::Router> {
    let secret = secret_from_env()?;
    let db = ctx.db()?;
    db.migrate("auth", store::migrate).await?;
    let auth = Arc::new(routes::Auth {
        db,
        signer: token::Signer::new(secret.as_bytes()),
        metrics: metrics::AuthMetrics::new(&ctx.meters),
    });
    Ok(routes::router(auth))
}

fn secret_from_env() -> anyhow::Result<String> {
    match std::env::var("FIREDRILL_AUTH_SECRET") {
        Ok(secret) if secret.is_empty() => {
            anyhow::bail!("FIREDRILL_AUTH_SECRET is set but empty; unset it or give a signing key")
        }
        Ok(secret) => Ok(secret),
        Err(_) => Ok(DEFAULT_SECRET.to_string()),
    }
}
