//! Request extractors whose rejections are [`AppError`]s, so a malformed body,
//! path or query gets the same JSON error shape as every other failure.

use axum::extract::{FromRequest, FromRequestParts};

use crate::AppError;

/// `Json<T>` whose rejection says what was wrong with the body, as JSON.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct Json<T>(pub T);

/// `Path<T>` with a JSON 400 on a malformed segment.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

/// `Query<T>` with a JSON 400 on a malformed query string.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);
