//! The firedrill fault controller: owns the desired fault state, plays
//! scenarios, and performs the mitigation ops learners use to end incidents.
//!
//! # Layout
//!
//! The modules are layered top-down; each imports only modules below it
//! (`scripts/check-layers` checks it):
//!
//! - `api`: the HTTP API (`/openapi.json` describes it), its audiences and
//!   the token check that runs before anything of a request is read.
//! - `exercise`, `report`: an exercise's clock, page, actions, SLI samples
//!   and end; its debrief report.
//! - `ops`, `deploys`, `reset`, `agents`: what acts on the lab — a
//!   mitigation op, a deploy or rollback and the version files `firedrill
//!   up`'s supervisor rolls out, a lab reset, what an agent is told.
//! - `controller`: the shared context those take (flags, catalogue, state,
//!   ops log, the running exercise's timeline).
//! - `timeline`: the running exercise's journal in memory.
//! - `scenarios`: the catalogue (built in, or a directory) and the checks a
//!   scenario file must pass.
//! - `policy`: what may be done to what (third parties, scaling, which
//!   target each verb takes).
//! - `model`: scenarios, ops, the deploy history and the desired state, as
//!   plain data parsed once at the edge.
//! - `store`: the state snapshot and the append-only journals.
//! - `openapi`: the API description.
//!
//! # Invariants
//!
//! - The controller never pushes: agents poll and receive a lease. If the
//!   controller stops, every fault lapses within one lease (see
//!   `firedrill_runtime::faults`).
//! - Scenario timelines are computed from the scenario's start time on every
//!   poll, never from timers, so a restart resumes them exactly.
//! - Only the instructor token reveals or changes faults, scenarios,
//!   deploys and learners; a token is checked before a request is read.
//! - Config versions only grow, per service, and survive a restart: a
//!   change (an op, a config push starting or ending) becomes the next
//!   version when it is made or when an agent next asks.

mod agents;
mod api;
mod controller;
pub mod deploys;
mod exercise;
pub mod model;
mod openapi;
pub mod ops;
pub mod policy;
mod report;
mod reset;
pub mod scenarios;
mod store;
mod timeline;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use crate::api::MAX_BODY_BYTES;
pub use crate::controller::{Controller, ControllerArgs};
pub use crate::openapi::DOCUMENT as OPENAPI;

/// Serves the controller on `listener` until `shutdown`.
pub async fn run(
    controller: Controller,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let controller = Arc::new(controller);
    tokio::spawn(deploys::reconcile(controller.clone(), shutdown.clone()));
    tokio::spawn(exercise::run(controller.clone(), shutdown.clone()));
    let app = api::router(controller);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// `firedrill controller`.
pub async fn main(args: ControllerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listen = args.listen;
    let controller = Controller::open(args)?;
    let listener = firedrill_runtime::server::bind(listen, "--listen").await?;
    tracing::info!(address = %listener.local_addr()?, scenarios = controller.scenarios.len(), "controller listening");
    run(controller, listener, shutdown).await
}
