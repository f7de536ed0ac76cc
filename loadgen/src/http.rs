//! The HTTP client side: one request to the shop, as one traced, counted,
//! time-bounded step of a journey.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::metrics::Metrics;

/// How much of an unexpected response body goes into a failure reason: enough
/// to show the shop's `{"error": ...}` message, not enough to flood logs.
const BODY_SNIPPET: usize = 200;

/// Why a step failed. Each variant is a different thing for an on-call
/// engineer to look at, so the reason string says which.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("unexpected status {status}: {body}")]
    Status { status: u16, body: String },
    #[error("unreadable response: {0}")]
    Decode(String),
    /// The status was right but the content was not what was asked for
    /// (another product, a failed order): users notice that too.
    #[error("wrong response: {0}")]
    Wrong(String),
}

impl StepError {
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, StepError::Status { status: 401, .. })
    }
}

/// One request, described before it is sent.
pub struct Call<'a> {
    /// The journey step, used as the `step` metric label and span field.
    pub step: &'static str,
    pub method: Method,
    pub path: String,
    pub query: &'a [(&'static str, String)],
    pub body: Option<serde_json::Value>,
    pub token: Option<&'a str>,
    /// The one status this step accepts; anything else is a failure.
    pub expect: StatusCode,
}

/// A client for the shop's public API.
#[derive(Clone)]
pub struct ShopClient {
    http: reqwest::Client,
    /// `--target` without a trailing slash, so paths join with one.
    base: Arc<str>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

// === impl ShopClient ===

impl ShopClient {
    pub fn new(target: &str, timeout: Duration, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // The whole request, connect to last body byte: a step either
            // finishes within --request-timeout or fails as a timeout.
            .timeout(timeout)
            .build()
            .context("Failed to build the HTTP client")?;
        Ok(ShopClient {
            http,
            base: target.trim_end_matches('/').into(),
            timeout,
            metrics,
        })
    }

    /// Sends `call` as a child span of the current (journey) span, with the
    /// trace context injected, and decodes the body as `T` if the status is
    /// the expected one.
    pub async fn send<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, StepError> {
        let url = format!("{}{}", self.base, call.path);
        let span = tracing::info_span!(
            "request",
            otel.name = %call.method,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = %call.method,
            url.full = %url,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            step = call.step,
        );
        let step = call.step;
        let result = self
            .send_inner::<T>(call, url, &span)
            .instrument(span.clone())
            .await;
        let status_label = match &result {
            Ok((status, _)) => status_label(*status),
            Err(Failure::Answered(status, _)) => status_label(*status),
            Err(Failure::Unanswered(StepError::Timeout(_))) => "timeout".into(),
            Err(Failure::Unanswered(_)) => "error".into(),
        };
        self.metrics.request(step, status_label);
        match result {
            Ok((_, body)) => Ok(body),
            Err(Failure::Answered(_, e) | Failure::Unanswered(e)) => {
                span.record("otel.status_code", "ERROR");
                Err(e)
            }
        }
    }

    async fn send_inner<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        url: String,
        span: &tracing::Span,
    ) -> Result<(StatusCode, T), Failure> {
        let mut builder = self.http.request(call.method, url);
        if !call.query.is_empty() {
            builder = builder.query(call.query);
        }
        if let Some(body) = &call.body {
            builder = builder.json(body);
        }
        if let Some(token) = call.token {
            builder = builder.bearer_auth(token);
        }
        let mut request = builder
            .build()
            .map_err(|e| Failure::Unanswered(StepError::Transport(e.without_url().to_string())))?;

        // W3C traceparent/baggage from this request's span, so the gateway
        // continues our trace. Without an installed propagator this is a
        // no-op, which is what tests want.
        let cx = span.context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(
                &cx,
                &mut opentelemetry_http::HeaderInjector(request.headers_mut()),
            )
        });

        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| Failure::Unanswered(self.classify(e)))?;
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        // Headers arrived but the body may not: still a failed step, but the
        // status is known and goes on the metric.
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Answered(status, self.classify(e)))?;
        if status != call.expect {
            span.record("error.type", status.as_str());
            return Err(Failure::Answered(
                status,
                StepError::Status {
                    status: status.as_u16(),
                    body: snippet(&bytes),
                },
            ));
        }
        let body = serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Answered(status, StepError::Decode(e.to_string())))?;
        Ok((status, body))
    }

    fn classify(&self, e: reqwest::Error) -> StepError {
        if e.is_timeout() {
            StepError::Timeout(self.timeout)
        } else {
            // The URL is the target plus a path we chose; leaving it out keeps
            // reasons short and groupable.
            StepError::Transport(error_chain(&e.without_url()))
        }
    }
}

/// A failed step, split by whether the shop answered (so the metric can
/// carry its status) or not.
enum Failure {
    Answered(StatusCode, StepError),
    Unanswered(StepError),
}

fn status_label(status: StatusCode) -> String {
    status.as_u16().to_string()
}

/// reqwest's top-level message is often just "error sending request"; the
/// cause ("connection refused") is what a human needs.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(BODY_SNIPPET) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_cuts_long_bodies_on_a_char_boundary() {
        let long = "é".repeat(500);
        let s = snippet(long.as_bytes());
        assert_eq!(s.chars().count(), BODY_SNIPPET + 1);
        assert_eq!(snippet(b" {\"error\":\"boom\"}\n"), "{\"error\":\"boom\"}");
    }
}
