//! A JSON request body that must be an object.
//!
//! serde reads a struct from a JSON array too (field by field, in order),
//! so `[null, null]` would pass for a request whose fields are all
//! optional. Every body the controller takes is an object: anything else
//! is refused with a 400 that says so.

use axum::extract::{FromRequest, Request};
use firedrill_runtime::AppError;
use firedrill_runtime::extract::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// `Object(T)`: the body, read from a JSON object only.
pub struct Object<T>(pub T);

impl<S, T> FromRequest<S> for Object<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<Value>::from_request(request, state).await?;
        if !value.is_object() {
            return Err(AppError::bad_request(format!(
                "the body must be a JSON object, not {}",
                match value {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    Value::Null => "null",
                    Value::Object(_) => unreachable!(),
                }
            )));
        }
        serde_json::from_value(value)
            .map(Object)
            .map_err(|e| AppError::bad_request(format!("invalid body: {e}")))
    }
}
