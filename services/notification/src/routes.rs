//! HTTP handlers: `GET /notifications?user_id=`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use firedrill_runtime::AppResult;
use firedrill_runtime::db::Query;
use firedrill_runtime::extract::Query as QueryString;
use serde::{Deserialize, Serialize};

use crate::consumer;
use crate::store::{self, Notification};

type Shared = Arc<consumer::State>;

/// Most notifications one request lists.
const MAX_LIMIT: i64 = 100;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/notifications", get(list))
        .with_state(state)
}

const FOR_USER: Query = Query {
    operation: "SELECT",
    collection: "notifications",
    text: "SELECT id, order_id, user_id, channel, body, sent_at FROM notifications WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
};

#[derive(Deserialize)]
struct ListQuery {
    user_id: i64,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct Notifications {
    notifications: Vec<Notification>,
}

async fn list(
    State(state): State<Shared>,
    QueryString(query): QueryString<ListQuery>,
) -> AppResult<axum::Json<Notifications>> {
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let user_id = query.user_id;
    let notifications = state
        .db
        .run(FOR_USER, move |conn| store::for_user(conn, user_id, limit))
        .await?;
    Ok(axum::Json(Notifications { notifications }))
}
