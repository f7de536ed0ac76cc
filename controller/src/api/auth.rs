//! Who is calling: a bearer token, checked in a layer before any extractor
//! reads a parameter or a body (axum's key-value-store example puts
//! `ValidateRequestHeaderLayer::bearer` on its admin routes the same way).
//!
//! Four audiences:
//! - the **instructor** (faults, scenarios, deploys, learners, lab reset);
//! - **learners** (ops, and what exercises give them), one token each: the
//!   lab's own learner (`--learner-token`, written by `up`) and those an
//!   instructor adds; the controller keeps only their SHA-256;
//! - **fault agents** (their own process's faults);
//! - anyone (`/health`, `/openapi.json`, `/metrics`).
//!
//! A missing token is 401; a token that is valid but not for this route, or
//! not valid at all, is 403. Tokens are compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use firedrill_runtime::AppError;
use sha2::{Digest as _, Sha256};

use crate::controller::Controller;

/// The roles a route admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Instructor,
    Agent,
    /// A learner or the instructor: ops and the ops log.
    Operator,
    /// Prometheus or Alertmanager posting alerts.
    Alerts,
}

/// Who a request comes from, once its token is checked; handlers read it
/// from the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Instructor,
    Agent,
    Learner(String),
    Alerts,
}

impl Caller {
    /// The name recorded with what the caller does.
    pub fn name(&self) -> &str {
        match self {
            Caller::Instructor => "instructor",
            Caller::Agent => "agent",
            Caller::Learner(name) => name,
            Caller::Alerts => "alerts",
        }
    }
}

/// Checks the request's token against `audience` before anything else of
/// the request is read.
pub async fn require(
    State((ctl, audience)): State<(Arc<Controller>, Audience)>,
    mut request: Request,
    next: Next,
) -> Response {
    match identify(&ctl, request.headers(), audience) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

fn identify(ctl: &Controller, headers: &HeaderMap, audience: Audience) -> Result<Caller, AppError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = given else {
        return Err(AppError::unauthorized(format!(
            "this needs {}: send `Authorization: Bearer <token>`",
            audience.needs()
        )));
    };
    // The roles this route admits, asked in turn: one token may hold
    // several (a test may give the agent the instructor's).
    let config = &ctl.config;
    let is = |expected: &str| constant_time_eq(token.as_bytes(), expected.as_bytes());
    let admitted = match audience {
        Audience::Instructor => is(&config.instructor_token).then_some(Caller::Instructor),
        Audience::Agent => is(&config.agent_token).then_some(Caller::Agent),
        Audience::Operator => learner(ctl, token)
            .or_else(|| is(&config.instructor_token).then_some(Caller::Instructor)),
        Audience::Alerts => config
            .alerts_token
            .as_deref()
            .is_some_and(is)
            .then_some(Caller::Alerts),
    };
    if let Some(caller) = admitted {
        return Ok(caller);
    }
    let message = match who(ctl, token) {
        Some(caller) => format!(
            "a {} token does not reach this; it needs {}",
            caller.role(),
            audience.needs()
        ),
        None => format!(
            "the token given is not valid; this needs {}",
            audience.needs()
        ),
    };
    Err(AppError::new(StatusCode::FORBIDDEN, message))
}

/// Whose token `token` is, if anyone's.
fn who(ctl: &Controller, token: &str) -> Option<Caller> {
    let config = &ctl.config;
    if constant_time_eq(token.as_bytes(), config.instructor_token.as_bytes()) {
        return Some(Caller::Instructor);
    }
    if constant_time_eq(token.as_bytes(), config.agent_token.as_bytes()) {
        return Some(Caller::Agent);
    }
    if let Some(alerts) = &config.alerts_token
        && constant_time_eq(token.as_bytes(), alerts.as_bytes())
    {
        return Some(Caller::Alerts);
    }
    learner(ctl, token)
}

/// The learner whose token `token` is, if any.
fn learner(ctl: &Controller, token: &str) -> Option<Caller> {
    let config = &ctl.config;
    if let Some(own) = &config.learner_token
        && constant_time_eq(token.as_bytes(), own.as_bytes())
    {
        return Some(Caller::Learner(config.learner_name.clone()));
    }
    let digest = token_digest(token);
    let state = ctl.state.lock();
    state
        .learners
        .iter()
        .find(|(_, hash)| constant_time_eq(hash.as_bytes(), digest.as_bytes()))
        .map(|(name, _)| Caller::Learner(name.clone()))
}

/// What the controller keeps of a learner's token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token: 128 bits from the operating system's generator.
pub fn new_token() -> String {
    use rand::Rng as _;
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Audience {
    fn needs(self) -> &'static str {
        match self {
            Audience::Instructor => {
                "the instructor token (firedrill reads it from --instructor-token, \
                 FIREDRILL_INSTRUCTOR_TOKEN or the run directory)"
            }
            Audience::Agent => "the agent token (fault agents get it from FIREDRILL_AGENT_TOKEN)",
            Audience::Operator => {
                "a learner token or the instructor token (firedrill reads a learner's from \
                 --token, FIREDRILL_LEARNER_TOKEN or the run directory's learner-token)"
            }
            Audience::Alerts => {
                "the alerts token (Prometheus and Alertmanager get it from FIREDRILL_ALERTS_TOKEN)"
            }
        }
    }
}

impl Caller {
    fn role(&self) -> &'static str {
        match self {
            Caller::Instructor => "instructor",
            Caller::Agent => "agent",
            Caller::Learner(_) => "learner",
            Caller::Alerts => "alerts",
        }
    }
}
