//! HTTP handlers for the broker's API (see docs/internal-api.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use firedrill_runtime::extract::{Json, Path, Query};
use firedrill_runtime::{AppError, AppResult, clock};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::broker::{Broker, Receive};
use crate::store::{Message, Stats};

type Shared = Arc<Broker>;

/// Most messages one receive may take.
const MAX_BATCH: i64 = 100;
/// Longest visibility timeout a consumer may ask for (12 hours, as SQS).
const MAX_VISIBILITY_MS: i64 = 12 * 60 * 60 * 1000;

pub fn router(broker: Shared) -> Router {
    Router::new()
        .route("/topics", get(list_topics))
        .route("/topics/{topic}/messages", post(publish))
        .route("/topics/{topic}/receive", post(receive))
        .route("/topics/{topic}/messages/{id}/ack", post(ack))
        .route("/topics/{topic}/messages/{id}/nack", post(nack))
        .route("/topics/{topic}/stats", get(stats))
        .route("/topics/{topic}/dead-letters/replay", post(replay_dead))
        .route(
            "/topics/{topic}/dead-letters",
            axum::routing::delete(purge_dead),
        )
        .route("/dlq/replay", post(replay_all_dead))
        .route("/dlq/purge", post(purge_all_dead))
        .with_state(broker)
}

/// Topic names are `[a-z0-9-]{1,64}`: they become metric label values and
/// URL segments, so they are kept short and plain.
pub fn valid_topic(topic: &str) -> AppResult<&str> {
    let ok = (1..=64).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(topic)
    } else {
        Err(AppError::bad_request(format!(
            "invalid topic name {topic:?}: use 1 to 64 of [a-z0-9-]"
        )))
    }
}

#[derive(Deserialize)]
struct PublishRequest {
    payload: Value,
    #[serde(default)]
    headers: HashMap<String, String>,
}

#[derive(Serialize)]
struct Published {
    id: i64,
}

async fn publish(
    State(broker): State<Shared>,
    Path(topic): Path<String>,
    Json(request): Json<PublishRequest>,
) -> AppResult<(StatusCode, axum::Json<Published>)> {
    let topic = valid_topic(&topic)?;
    let id = broker
        .publish(topic, &request.payload, &request.headers)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(Published { id })))
}

#[derive(Deserialize)]
struct ReceiveRequest {
    #[serde(default = "one")]
    max: i64,
    #[serde(default)]
    wait_ms: u64,
    #[serde(default = "default_visibility_ms")]
    visibility_ms: i64,
    /// The consumer group (a service name): every group subscribed to a
    /// topic gets each message, and a group's consumers share its copy.
    /// Empty: no group.
    #[serde(default)]
    group: String,
}

fn one() -> i64 {
    1
}

fn default_visibility_ms() -> i64 {
    30_000
}

#[derive(Serialize)]
struct Received {
    messages: Vec<Message>,
}

async fn receive(
    State(broker): State<Shared>,
    Path(topic): Path<String>,
    Json(request): Json<ReceiveRequest>,
) -> AppResult<axum::Json<Received>> {
    let topic = valid_topic(&topic)?;
    if !(1..=MAX_BATCH).contains(&request.max) {
        return Err(AppError::bad_request(format!(
            "max must be between 1 and {MAX_BATCH}"
        )));
    }
    if !(1..=MAX_VISIBILITY_MS).contains(&request.visibility_ms) {
        return Err(AppError::bad_request(format!(
            "visibility_ms must be between 1 and {MAX_VISIBILITY_MS}"
        )));
    }
    let options = Receive {
        max: request.max,
        // Capped by the broker: a receive never outlives the request timeout.
        wait: Duration::from_millis(request.wait_ms),
        visibility_ms: request.visibility_ms,
    };
    if !request.group.is_empty() {
        valid_topic(&request.group)
            .map_err(|e| AppError::bad_request(format!("group: {}", e.message)))?;
    }
    let messages = broker.receive(topic, &request.group, options).await?;
    Ok(axum::Json(Received { messages }))
}

#[derive(Serialize)]
struct Acked {
    id: i64,
    acked: bool,
}

async fn ack(
    State(broker): State<Shared>,
    Path((topic, id)): Path<(String, i64)>,
) -> AppResult<axum::Json<Acked>> {
    let topic = valid_topic(&topic)?;
    let acked = broker.ack(topic, id).await?;
    Ok(axum::Json(Acked { id, acked }))
}

#[derive(Deserialize)]
struct NackRequest {
    #[serde(default)]
    reason: String,
}

#[derive(Serialize)]
struct NackAnswer {
    dead_lettered: bool,
}

async fn nack(
    State(broker): State<Shared>,
    Path((topic, id)): Path<(String, i64)>,
    Json(request): Json<NackRequest>,
) -> AppResult<axum::Json<NackAnswer>> {
    let topic = valid_topic(&topic)?;
    // The reason is stored and logged: keep it bounded.
    let reason: String = request.reason.chars().take(1000).collect();
    let dead_lettered = broker.nack(topic, id, reason).await?;
    Ok(axum::Json(NackAnswer { dead_lettered }))
}

#[derive(Serialize)]
struct StatsAnswer {
    depth: i64,
    in_flight: i64,
    oldest_age_ms: i64,
    dead_letters: i64,
}

impl StatsAnswer {
    fn new(stats: &Stats) -> Self {
        StatsAnswer {
            depth: stats.ready,
            in_flight: stats.in_flight,
            oldest_age_ms: stats.oldest_age_ms(clock::now_unix_ms()),
            dead_letters: stats.dead,
        }
    }
}

async fn stats(
    State(broker): State<Shared>,
    Path(topic): Path<String>,
) -> AppResult<axum::Json<StatsAnswer>> {
    let topic = valid_topic(&topic)?;
    let stats = broker.stats(topic).await?;
    Ok(axum::Json(StatsAnswer::new(&stats)))
}

#[derive(Serialize)]
struct TopicStats {
    topic: String,
    #[serde(flatten)]
    stats: StatsAnswer,
}

#[derive(Serialize)]
struct Topics {
    topics: Vec<TopicStats>,
}

async fn list_topics(State(broker): State<Shared>) -> AppResult<axum::Json<Topics>> {
    let topics = broker
        .topics()
        .await?
        .into_iter()
        .map(|(topic, stats)| TopicStats {
            topic,
            stats: StatsAnswer::new(&stats),
        })
        .collect();
    Ok(axum::Json(Topics { topics }))
}

#[derive(Serialize)]
struct Count {
    count: usize,
}

async fn replay_dead(
    State(broker): State<Shared>,
    Path(topic): Path<String>,
) -> AppResult<axum::Json<Count>> {
    let topic = valid_topic(&topic)?;
    Ok(axum::Json(Count {
        count: broker.replay_dead(topic).await?,
    }))
}

async fn purge_dead(
    State(broker): State<Shared>,
    Path(topic): Path<String>,
) -> AppResult<axum::Json<Count>> {
    let topic = valid_topic(&topic)?;
    Ok(axum::Json(Count {
        count: broker.purge_dead(topic).await?,
    }))
}

/// `?topic=`: one topic, or every topic with dead letters when absent.
#[derive(Deserialize)]
struct DeadLetterScope {
    topic: Option<String>,
}

#[derive(Serialize)]
struct DeadLetterCounts {
    /// Messages replayed or purged, over all topics.
    count: usize,
    /// The same, per topic.
    topics: BTreeMap<String, usize>,
}

/// The topics a dead-letter op acts on.
async fn dead_letter_topics(broker: &Broker, scope: DeadLetterScope) -> AppResult<Vec<String>> {
    match scope.topic {
        Some(topic) => Ok(vec![valid_topic(&topic)?.to_string()]),
        None => Ok(broker
            .topics()
            .await?
            .into_iter()
            .filter(|(_, stats)| stats.dead > 0)
            .map(|(topic, _)| topic)
            .collect()),
    }
}

/// `POST /dlq/replay[?topic=]`: the operator's "replay the DLQ", over every
/// topic unless one is named.
async fn replay_all_dead(
    State(broker): State<Shared>,
    Query(scope): Query<DeadLetterScope>,
) -> AppResult<axum::Json<DeadLetterCounts>> {
    let mut counts = BTreeMap::new();
    for topic in dead_letter_topics(&broker, scope).await? {
        let count = broker.replay_dead(&topic).await?;
        counts.insert(topic, count);
    }
    Ok(axum::Json(DeadLetterCounts {
        count: counts.values().sum(),
        topics: counts,
    }))
}

/// `POST /dlq/purge[?topic=]`: drops dead letters, over every topic unless
/// one is named.
async fn purge_all_dead(
    State(broker): State<Shared>,
    Query(scope): Query<DeadLetterScope>,
) -> AppResult<axum::Json<DeadLetterCounts>> {
    let mut counts = BTreeMap::new();
    for topic in dead_letter_topics(&broker, scope).await? {
        let count = broker.purge_dead(&topic).await?;
        counts.insert(topic, count);
    }
    Ok(axum::Json(DeadLetterCounts {
        count: counts.values().sum(),
        topics: counts,
    }))
}

#[cfg(test)]
mod tests {
    use super::valid_topic;

    #[test]
    fn topic_names_are_plain() {
        for good in ["order-events", "a", "cart-events-2", &"x".repeat(64)] {
            assert!(valid_topic(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Orders",
            "order_events",
            "a b",
            "ö",
            "a.b",
            &"x".repeat(65),
        ] {
            assert!(valid_topic(bad).is_err(), "{bad}");
        }
    }
}
