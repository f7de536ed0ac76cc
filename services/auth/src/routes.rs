//! Auth's routes: `POST /login` and `POST /verify`.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use firedrill_runtime::db::Db;
use firedrill_runtime::extract::Json as Body;
use firedrill_runtime::{AppError, AppResult, clock};
use serde::{Deserialize, Serialize};

use crate::metrics::AuthMetrics;
use crate::token::{Signer, TokenError};
use crate::{password, store};

/// Longest username or password accepted.
const MAX_FIELD_BYTES: usize = 256;

pub struct Auth {
    pub db: Db,
    pub signer: Signer,
    pub metrics: AuthMetrics,
}

pub fn router(auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/verify", post(verify))
        .with_state(auth)
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct LoginAnswer {
    token: String,
    user_id: i64,
    expires_at: i64,
}

#[derive(Deserialize)]
struct VerifyBody {
    token: String,
}

#[derive(Serialize)]
struct VerifyAnswer {
    user_id: i64,
    expires_at: i64,
}

async fn login(
    State(auth): State<Arc<Auth>>,
    Body(body): Body<LoginBody>,
) -> AppResult<Json<LoginAnswer>> {
    let LoginBody { username, password } = body;
    if username.is_empty() || password.is_empty() {
        return Err(AppError::bad_request("username and password are required"));
    }
    if username.len() > MAX_FIELD_BYTES || password.len() > MAX_FIELD_BYTES {
        return Err(AppError::bad_request(format!(
            "username and password are at most {MAX_FIELD_BYTES} bytes"
        )));
    }
    let found = store::credentials(&auth.db, username).await?;
    let user_id = match found {
        Some(c) if password::matches(&c.salt, &password, &c.hash) => c.user_id,
        other => {
            if other.is_none() {
                // Hash anyway, so an unknown user costs as much as a wrong
                // password and timing does not reveal which usernames exist.
                let _ = password::hash("", &password);
            }
            auth.metrics.logins.inc(&[("outcome", "bad_credentials")]);
            tracing::info!("login refused: bad credentials");
            return Err(AppError::unauthorized("invalid username or password"));
        }
    };
    let (token, claims) = auth.signer.issue(user_id, clock::now_unix_ms());
    auth.metrics.logins.inc(&[("outcome", "success")]);
    Ok(Json(LoginAnswer {
        token,
        user_id,
        expires_at: claims.exp,
    }))
}

async fn verify(
    State(auth): State<Arc<Auth>>,
    Body(body): Body<VerifyBody>,
) -> AppResult<Json<VerifyAnswer>> {
    let VerifyBody { token } = body;
    let now = clock::now_unix_ms();
    match auth.signer.verify(&token, now) {
        Ok(claims) => {
            auth.metrics.verifications.inc(&[("outcome", "valid")]);
            Ok(Json(VerifyAnswer {
                user_id: claims.sub,
                expires_at: claims.exp,
            }))
        }
        Err(err) => {
            auth.metrics
                .verifications
                .inc(&[("outcome", err.outcome())]);
            log_rejection(&token, err, now);
            Err(AppError::unauthorized(err.to_string()))
        }
    }
}

/// One line per refused token. A window failure logs the window and the
/// clock it was checked against, so a reader can tell a stale token from a
/// verifier whose clock disagrees with the issuer's. Expired and malformed
/// tokens are the client's business (INFO); a valid signature outside its
/// window from the future, or a forged one, deserves attention (WARN).
fn log_rejection(token: &str, err: TokenError, now_ms: i64) {
    match err {
        TokenError::Expired | TokenError::NotYetValid => {
            let (nbf_ms, exp_ms) = window_unchecked(token).unwrap_or_default();
            if err == TokenError::Expired {
                tracing::info!(reason = %err, now_ms, nbf_ms, exp_ms, "token rejected");
            } else {
                tracing::warn!(reason = %err, now_ms, nbf_ms, exp_ms, "token rejected");
            }
        }
        TokenError::BadSignature => tracing::warn!(reason = %err, "token rejected"),
        TokenError::Malformed => tracing::info!(reason = %err, "token rejected"),
    }
}

/// `(nbf, exp)` of a token, read without checking it.
fn window_unchecked(token: &str) -> Option<(i64, i64)> {
    use base64::Engine as _;
    let payload = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: crate::token::Claims = serde_json::from_slice(&bytes).ok()?;
    Some((claims.nbf, claims.exp))
}
