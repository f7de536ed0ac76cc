//! Polls the controller for this process's faults and keeps the [`Faults`]
//! handle, the live config ([`Live`]: config version, drained instances)
//! and the process actuators in step with the answer.
//!
//! Polling (rather than the controller pushing) keeps the lease simple: an
//! answer is good for `leaseMs`, and an agent that stops hearing from the
//! controller lets every fault lapse on its own.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::actuators::Actuators;
use super::model::Assignment;
use super::{ActiveFault, Faults};
use crate::live::Live;

/// Where the controller is and how to authenticate to it: the same flags
/// and variables in every process that runs an agent.
#[derive(clap::Args, Clone, Debug)]
pub struct AgentConfig {
    /// The fault controller's URL, e.g. `http://127.0.0.1:7070`; empty runs
    /// without a fault agent.
    #[arg(long = "controller", env = "FIREDRILL_CONTROLLER", default_value = "")]
    pub controller: String,

    /// Token the fault agent presents to the controller (not the
    /// instructor's).
    #[arg(
        long = "agent-token",
        env = "FIREDRILL_AGENT_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub token: String,

    /// How often the fault agent asks the controller for its faults.
    #[arg(long = "fault-poll", env = "FIREDRILL_FAULT_POLL", value_parser = humantime::parse_duration, default_value = "500ms")]
    pub poll_every: Duration,
}

impl AgentConfig {
    /// Whether a controller was named (otherwise no agent runs).
    pub fn enabled(&self) -> bool {
        !self.controller.is_empty()
    }
}

/// Runs the agent until `shutdown`. Actuators (CPU burn, leaks, clock skew)
/// are stopped when their fault ends or the process stops; the live config
/// goes back to the flags when its lease lapses.
pub fn spawn(
    faults: Faults,
    live: Option<Live>,
    config: AgentConfig,
    actuators: Actuators,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        // A plain client: the agent's polls are not shop traffic, so they
        // make no spans and no metrics.
        let http = match reqwest::Client::builder()
            .timeout(config.poll_every.max(Duration::from_millis(500)))
            .no_proxy()
            .build()
        {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(error = %e, "fault agent cannot build its HTTP client");
                return;
            }
        };
        let url = format!(
            "{}/v1/agent/faults",
            config.controller.trim_end_matches('/')
        );
        let mut actuators = actuators;
        let mut ticker = tokio::time::interval(config.poll_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            match poll(&http, &url, &config.token, &faults).await {
                Ok(assignment) => {
                    warned = false;
                    let now = Instant::now();
                    let until = now + Duration::from_millis(assignment.lease_ms);
                    if let Some(live) = &live {
                        live.assign(&assignment, until);
                    }
                    faults.assign(lease(assignment, now));
                }
                Err(e) if !warned => {
                    // Once per outage: the lab keeps working without the
                    // controller, its faults simply lapse.
                    tracing::debug!(error = %e, "fault agent cannot reach the controller");
                    warned = true;
                }
                Err(_) => {}
            }
            if let Some(live) = &live {
                live.expire(Instant::now());
            }
            actuators.reconcile(&faults.active());
        }
        actuators.reconcile(&[]);
    });
}

async fn poll(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    faults: &Faults,
) -> anyhow::Result<Assignment> {
    let mut request = http.get(url).bearer_auth(token).query(&[
        ("service", faults.service()),
        ("instance", faults.instance()),
        ("version", faults.version()),
    ]);
    if let Some(serving_at) = faults.url() {
        request = request.query(&[("url", serving_at)]);
    }
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("controller answered {status}");
    }
    Ok(response.json().await?)
}

/// Turns an answer received at `now` into faults that end at their expiry
/// or at the end of the lease, whichever is first.
pub fn lease(assignment: Assignment, now: Instant) -> Vec<ActiveFault> {
    let lease_end = now + Duration::from_millis(assignment.lease_ms);
    assignment
        .faults
        .into_iter()
        .map(|f| ActiveFault {
            until: now
                .checked_add(Duration::from_millis(f.remaining_ms))
                .map_or(lease_end, |end| end.min(lease_end)),
            id: f.id,
            spec: f.spec,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::model::{AssignedFault, FaultKind, FaultSpec, Target};
    use super::*;

    #[test]
    fn a_fault_lasts_until_its_expiry_or_the_lease_whichever_is_first() {
        let spec = FaultSpec {
            kind: FaultKind::Hang {},
            target: Target::parse("catalog").unwrap(),
            toxicity: 1.0,
        };
        let now = Instant::now();
        let faults = lease(
            Assignment {
                lease_ms: 5_000,
                faults: vec![
                    AssignedFault {
                        id: "short".into(),
                        spec: spec.clone(),
                        remaining_ms: 1_000,
                    },
                    AssignedFault {
                        id: "long".into(),
                        spec,
                        remaining_ms: 60_000,
                    },
                ],
                ..Assignment::default()
            },
            now,
        );
        assert_eq!(faults[0].until, now + Duration::from_secs(1));
        assert_eq!(faults[1].until, now + Duration::from_secs(5));
    }
}
