//! One error type for handlers, with one mapping to an HTTP response.
//!
//! Handlers return `AppResult<T>`; whatever goes wrong becomes
//! `{"error": "<what was wrong>"}` with a status that tells the caller whether
//! retrying could help (4xx: no; 502/503/504: maybe).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::client::CallError;

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    /// An unexpected failure inside this service: logged at ERROR, because
    /// someone has to look at it.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// A failed call to a peer keeps the peer's 4xx (the caller's request was
/// wrong) and turns everything else into the gateway-style 5xx that says
/// which dependency failed.
impl From<CallError> for AppError {
    fn from(err: CallError) -> Self {
        match &err {
            CallError::Status {
                status, message, ..
            } if status.is_client_error() => AppError::new(*status, message.clone()),
            CallError::Timeout { .. } => {
                AppError::new(StatusCode::GATEWAY_TIMEOUT, err.to_string())
            }
            CallError::BreakerOpen { .. } | CallError::NoInstance { .. } => {
                AppError::unavailable(err.to_string())
            }
            _ => AppError::new(StatusCode::BAD_GATEWAY, err.to_string()),
        }
    }
}

impl From<crate::db::DbError> for AppError {
    fn from(err: crate::db::DbError) -> Self {
        match err {
            crate::db::DbError::PoolTimeout { .. } => AppError::unavailable(err.to_string()),
            other => AppError::internal(other),
        }
    }
}

/// Malformed JSON bodies and bad paths get a 400 that says what was wrong
/// (axum's own rejections are plain text).
impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        // Syntax and shape errors are both "your body is wrong": 400, per the
        // API contract (axum says 422 for the latter). Size and content-type
        // problems keep their own statuses (413, 415).
        let status = match rejection.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        AppError::new(status, rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for AppError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        AppError::new(StatusCode::BAD_REQUEST, rejection.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for AppError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        AppError::new(StatusCode::BAD_REQUEST, rejection.body_text())
    }
}
