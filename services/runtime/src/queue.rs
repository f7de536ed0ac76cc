//! Producer and consumer sides of the queue broker (the `queue` service).
//!
//! The trace crosses the queue in the message headers: the producer injects
//! `traceparent` into them inside a PRODUCER span; the consumer extracts it
//! and opens a CONSUMER span that is both a child of and linked to the
//! producer span, per the messaging conventions. A handler error nacks the
//! message; the broker dead-letters it after too many attempts.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TraceContextExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::client::{CallError, Peer};

/// Name of the broker in `--peers`.
pub const BROKER: &str = "queue";

/// A message as the broker stores and delivers it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Message {
    pub id: i64,
    pub topic: String,
    pub payload: Value,
    #[serde(default)]
    pub headers: HashMap<String, String>,
    /// Deliveries so far, including this one.
    pub attempts: u32,
    pub enqueued_at_ms: i64,
}

#[derive(Serialize)]
struct PublishBody<'a> {
    payload: &'a Value,
    headers: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Published {
    id: i64,
}

#[derive(Serialize)]
struct ReceiveBody<'a> {
    max: usize,
    wait_ms: u64,
    visibility_ms: u64,
    /// The consumer group: this service. Every service that consumes a
    /// topic gets each message; its instances share the work.
    group: &'a str,
}

#[derive(Deserialize)]
struct Received {
    messages: Vec<Message>,
}

/// Publishes `payload` to `topic` inside a PRODUCER span.
pub async fn publish(broker: &Peer, topic: &str, payload: &Value) -> Result<i64, CallError> {
    let span = tracing::info_span!(
        "messaging.publish",
        otel.name = %format!("send {topic}"),
        otel.kind = "producer",
        messaging.system = "firedrill",
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = %topic,
        messaging.message.id = Empty,
    );
    async {
        let mut headers = HashMap::new();
        let cx = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut headers));
        let body = PublishBody { payload, headers };
        let published: Published = broker
            .post(
                "/topics/{topic}/messages",
                format!("/topics/{topic}/messages"),
                &body,
            )
            .json()
            .await?;
        tracing::Span::current().record("messaging.message.id", published.id);
        Ok(published.id)
    }
    .instrument(span)
    .await
}

/// How a consumer polls.
#[derive(Clone, Copy, Debug)]
pub struct ConsumerConfig {
    pub batch: usize,
    /// How long a received message stays invisible before redelivery.
    pub visibility: Duration,
    /// Long-poll wait when the topic is empty.
    pub wait: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            batch: 16,
            visibility: Duration::from_secs(30),
            wait: Duration::from_secs(1),
        }
    }
}

/// A payload as a producer with a serialisation bug sends it: the JSON
/// document encoded a second time, as one string. No consumer can read it,
/// on any delivery, so the broker ends up dead-lettering it.
fn poison(payload: Value) -> Value {
    Value::String(payload.to_string())
}

/// Consumes `topic` until `shutdown`, calling `handle` for each message inside
/// a CONSUMER span. `Ok` acks; `Err(reason)` nacks.
pub fn spawn_consumer<H, Fut>(
    broker: Arc<Peer>,
    topic: &'static str,
    config: ConsumerConfig,
    shutdown: CancellationToken,
    handle: H,
) where
    H: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let body = ReceiveBody {
                max: config.batch,
                wait_ms: config.wait.as_millis() as u64,
                visibility_ms: config.visibility.as_millis() as u64,
                group: broker.faults().service(),
            };
            let poll = broker
                .post(
                    "/topics/{topic}/receive",
                    format!("/topics/{topic}/receive"),
                    &body,
                )
                .unsampled()
                .json::<Received>();
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = poll => r,
            };
            match received {
                Ok(batch) => {
                    backoff = Duration::from_millis(100);
                    for message in batch.messages {
                        process(&broker, topic, message, &handle).await;
                    }
                }
                Err(err) => {
                    tracing::warn!(topic, error = %err, "cannot receive from the queue broker");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
}

async fn process<H, Fut>(broker: &Peer, topic: &str, message: Message, handle: &H)
where
    H: Fn(Message) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let producer = opentelemetry::global::get_text_map_propagator(|p| p.extract(&message.headers));
    let span = tracing::info_span!(
        "messaging.process",
        otel.name = %format!("process {topic}"),
        otel.kind = "consumer",
        messaging.system = "firedrill",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = %topic,
        messaging.message.id = message.id,
        messaging.message.delivery_count = message.attempts,
        otel.status_code = Empty,
    );
    let producer_span = producer.span().span_context().clone();
    if producer_span.is_valid() {
        span.add_link(producer_span);
        let _ = span.set_parent(producer);
    }
    let id = message.id;
    let delay = broker.faults().consumer_delay();
    let mut message = message;
    if broker.faults().poisoned(id) {
        message.payload = poison(message.payload);
    }
    let outcome = async {
        if let Some(delay) = delay {
            // A stalled consumer: each message waits before it is handled.
            tokio::time::sleep(delay).await;
        }
        handle(message).await
    }
    .instrument(span.clone())
    .await;
    let settle = async {
        match outcome {
            Ok(()) => broker
                .post(
                    "/topics/{topic}/messages/{id}/ack",
                    format!("/topics/{topic}/messages/{id}/ack"),
                    &serde_json::json!({}),
                )
                .idempotent(true)
                .send()
                .await
                .map(|_| ()),
            Err(reason) => {
                tracing::Span::current().record("otel.status_code", "ERROR");
                // WARN, not ERROR: the broker retries and dead-letters on its own;
                // the dead letter is what someone must act on.
                tracing::warn!(topic, message_id = id, %reason, "message processing failed");
                broker
                    .post(
                        "/topics/{topic}/messages/{id}/nack",
                        format!("/topics/{topic}/messages/{id}/nack"),
                        &serde_json::json!({ "reason": reason }),
                    )
                    .idempotent(true)
                    .send()
                    .await
                    .map(|_| ())
            }
        }
    };
    if let Err(err) = settle.instrument(span).await {
        // The message becomes visible again after its visibility timeout and
        // is redelivered: nothing is lost, at worst processed twice.
        tracing::warn!(topic, message_id = id, error = %err, "cannot settle message; it will be redelivered");
    }
}
