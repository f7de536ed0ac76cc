//! The fault agent: applies the faults the controller assigns to this process.
//!
//! The controller owns the desired fault state; each process polls it
//! (`agent`) and keeps what it hears in a [`Faults`] handle. The runtime's
//! own mechanisms consult the handle at the points where real failures
//! happen, so the effects cascade through the same timeouts, retries,
//! breakers and pools a production incident would:
//!
//! - the server stack, before a handler runs ([`Faults::inbound`]);
//! - the peer client, around each HTTP exchange ([`Faults::outbound`]);
//! - the database pool, holding a connection ([`Faults::slow_query`]) or
//!   leaking one (the `pool-leak` actuator);
//! - the queue consumer, before each message ([`Faults::consumer_delay`]);
//! - the process itself (`actuators`): clock, CPU, memory, executor, crash.
//!
//! # Invariants
//!
//! - Every fault holds a lease. An assignment is kept only until the lease
//!   runs out, so if the controller disappears every fault ends within one
//!   lease, and no lab stays broken.
//! - With no fault active the hooks cost one atomic load.
//! - Nothing here logs which fault is active: learners read these logs, and
//!   must find the cause from its symptoms.

pub mod actuators;
pub mod agent;
pub mod model;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use self::model::{FaultKind, FaultSpec, Scope};

/// A fault this process applies, until `until` (its expiry or the lease,
/// whichever comes first).
#[derive(Clone, Debug)]
pub struct ActiveFault {
    pub id: String,
    pub spec: FaultSpec,
    pub until: Instant,
}

/// The faults assigned to this process; cheap to clone and to consult.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    instance: String,
    /// The `service.version` this process runs; faults aimed at another
    /// version (a defect shipped with a deploy) do not apply here.
    version: String,
    /// False whenever `active` is empty: the hot path's only cost.
    any: AtomicBool,
    active: RwLock<Arc<Vec<ActiveFault>>>,
    rng: Mutex<SmallRng>,
    /// The "hot mutex" of lock-contention faults.
    hot_lock: tokio::sync::Mutex<()>,
}

/// How a faulty link fails a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkFailure {
    Reset,
    Refused,
    Dns,
    CertExpired,
}

impl LinkFailure {
    /// The error text a real client library would report.
    pub fn reason(self) -> &'static str {
        match self {
            LinkFailure::Reset => "connection reset by peer (os error 104)",
            LinkFailure::Refused => "connection refused (os error 111)",
            LinkFailure::Dns => {
                "dns error: failed to lookup address information: Name or service not known"
            }
            LinkFailure::CertExpired => {
                "invalid peer certificate: certificate expired (current time is after notAfter)"
            }
        }
    }
}

/// What the faults in force do to one request: one a process serves, or
/// one call it makes to a peer (link-only effects stay unset for the former,
/// since a fault's kind is checked against its scope when it is injected).
#[derive(Debug, Default, PartialEq)]
pub struct RequestEffect {
    pub delay: Duration,
    pub hang: bool,
    pub error: Option<u16>,
    /// Hold the process-wide hot lock this long (lock contention).
    pub lock_hold: Option<Duration>,
    pub failure: Option<LinkFailure>,
    /// Bytes per second the response may arrive at.
    pub bandwidth: Option<u64>,
}

impl Faults {
    /// A handle for the process `service`/`instance`; `seed` makes the
    /// per-request toxicity rolls reproducible.
    pub fn new(service: &str, instance: &str, seed: u64) -> Faults {
        Faults::versioned(service, instance, "", seed)
    }

    /// A handle for the process `service`/`instance` running `version`
    /// (reported in every poll, so the controller can assign faults aimed
    /// at one version only).
    pub fn versioned(service: &str, instance: &str, version: &str, seed: u64) -> Faults {
        Faults {
            inner: Arc::new(Inner {
                service: service.to_string(),
                instance: instance.to_string(),
                version: version.to_string(),
                any: AtomicBool::new(false),
                active: RwLock::new(Arc::new(Vec::new())),
                rng: Mutex::new(SmallRng::seed_from_u64(seed ^ 0x5eed_fa17)),
                hot_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A handle that never has faults (tests, tools).
    pub fn none() -> Faults {
        Faults::new("", "", 0)
    }

    pub fn service(&self) -> &str {
        &self.inner.service
    }

    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// Replaces the assigned faults (the agent calls this on every poll).
    /// Faults aimed at other processes are ignored.
    pub fn assign(&self, faults: Vec<ActiveFault>) {
        let mine: Vec<ActiveFault> = faults
            .into_iter()
            .filter(|f| {
                f.spec.target.selects_running(
                    &self.inner.service,
                    &self.inner.instance,
                    Some(self.inner.version.as_str()).filter(|v| !v.is_empty()),
                )
            })
            .collect();
        self.inner.any.store(!mine.is_empty(), Ordering::Release);
        *self.inner.active.write() = Arc::new(mine);
    }

    /// Whether any fault is assigned: the hot path's one check.
    pub fn idle(&self) -> bool {
        !self.inner.any.load(Ordering::Acquire)
    }

    /// The faults in force now (expired ones left out).
    pub fn active(&self) -> Vec<ActiveFault> {
        let now = Instant::now();
        self.snapshot()
            .iter()
            .flat_map(|faults| faults.iter())
            .filter(|f| f.until > now)
            .cloned()
            .collect()
    }

    /// The current assignment, shared rather than copied (expired faults
    /// included: callers filter on `until`); `None` when idle, so the hot
    /// path takes no lock and allocates nothing.
    fn snapshot(&self) -> Option<Arc<Vec<ActiveFault>>> {
        (!self.idle()).then(|| self.inner.active.read().clone())
    }

    /// Rolls the fault's toxicity for one request.
    fn hits(&self, spec: &FaultSpec) -> bool {
        spec.toxicity >= 1.0 || self.inner.rng.lock().random_bool(spec.toxicity.max(0.0))
    }

    fn jittered(&self, base: Duration, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return base;
        }
        let j = jitter.as_millis() as i64;
        let delta = self.inner.rng.lock().random_range(-j..=j);
        Duration::from_millis((base.as_millis() as i64 + delta).max(0) as u64)
    }

    fn stall(&self, min: Duration, max: Duration) -> Duration {
        if max <= min {
            return min;
        }
        let ms = self
            .inner
            .rng
            .lock()
            .random_range(min.as_millis() as u64..=max.as_millis() as u64);
        Duration::from_millis(ms)
    }

    /// The effect on a request to `route` that this process serves.
    pub fn inbound(&self, route: &str) -> RequestEffect {
        self.request_effect(route, |target| target.scope() == Scope::Inbound)
    }

    /// The effect on a call from this process to `peer` on `route`.
    pub fn outbound(&self, peer: &str, route: &str) -> RequestEffect {
        self.request_effect(route, |target| target.peer.as_deref() == Some(peer))
    }

    /// Combines the faults aimed at `route` (or at every route) that
    /// `aimed` selects and whose toxicity roll hits.
    fn request_effect(&self, route: &str, aimed: impl Fn(&model::Target) -> bool) -> RequestEffect {
        let mut effect = RequestEffect::default();
        let Some(snapshot) = self.snapshot() else {
            return effect;
        };
        let now = Instant::now();
        for fault in snapshot.iter().filter(|f| f.until > now) {
            let target = &fault.spec.target;
            if !aimed(target)
                || target.route.as_deref().is_some_and(|r| r != route)
                || !self.hits(&fault.spec)
            {
                continue;
            }
            match &fault.spec.kind {
                FaultKind::Latency { latency, jitter } => {
                    effect.delay += self.jittered(latency.duration(), jitter.duration());
                }
                FaultKind::Stall { min, max } => {
                    effect.delay += self.stall(min.duration(), max.duration());
                }
                FaultKind::Errors { code } => effect.error = Some(*code),
                FaultKind::Hang {} => effect.hang = true,
                FaultKind::LockContention { hold } => effect.lock_hold = Some(hold.duration()),
                FaultKind::Bandwidth { rate } => effect.bandwidth = Some(*rate),
                FaultKind::Reset {} => effect.failure = Some(LinkFailure::Reset),
                FaultKind::Partition {} => effect.failure = Some(LinkFailure::Refused),
                FaultKind::DnsFailure {} => effect.failure = Some(LinkFailure::Dns),
                FaultKind::CertExpiry {} => effect.failure = Some(LinkFailure::CertExpired),
                _ => {}
            }
        }
        effect
    }

    /// Extra time a query holds its connection (a slow query).
    pub fn slow_query(&self) -> Option<Duration> {
        self.dependency_effect(|kind| match kind {
            FaultKind::SlowQuery { latency } => Some(latency.duration()),
            _ => None,
        })
    }

    /// How long the queue consumer waits before handling each message.
    pub fn consumer_delay(&self) -> Option<Duration> {
        self.dependency_effect(|kind| match kind {
            FaultKind::ConsumerStall { delay } => Some(delay.duration()),
            _ => None,
        })
    }

    fn dependency_effect(&self, pick: impl Fn(&FaultKind) -> Option<Duration>) -> Option<Duration> {
        let now = Instant::now();
        self.snapshot()?
            .iter()
            .filter(|f| f.until > now && self.hits(&f.spec))
            .filter_map(|f| pick(&f.spec.kind))
            .max()
    }

    /// Holds the process-wide hot lock for `hold`: requests that hit a
    /// lock-contention fault queue behind each other here.
    pub async fn contend(&self, hold: Duration) {
        let _guard = self.inner.hot_lock.lock().await;
        tokio::time::sleep(hold).await;
    }
}

#[cfg(test)]
mod tests {
    use super::model::{Millis, Target};
    use super::*;

    fn fault(kind: FaultKind, target: &str, toxicity: f64) -> ActiveFault {
        ActiveFault {
            id: "f1".into(),
            spec: FaultSpec {
                kind,
                target: Target::parse(target).unwrap(),
                toxicity,
            },
            until: Instant::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn nothing_assigned_means_no_effect() {
        let faults = Faults::new("catalog", "catalog-1", 1);
        assert_eq!(faults.inbound("/products"), RequestEffect::default());
        assert_eq!(faults.outbound("cache", "/x"), RequestEffect::default());
    }

    #[test]
    fn faults_for_other_processes_are_ignored() {
        let faults = Faults::new("catalog", "catalog-1", 1);
        faults.assign(vec![
            fault(FaultKind::Errors { code: 503 }, "catalog-2", 1.0),
            fault(FaultKind::Errors { code: 503 }, "payment", 1.0),
        ]);
        assert!(faults.active().is_empty());
        faults.assign(vec![fault(
            FaultKind::Errors { code: 503 },
            "catalog-1",
            1.0,
        )]);
        assert_eq!(faults.inbound("/products").error, Some(503));
    }

    #[test]
    fn faults_for_other_versions_are_ignored() {
        let faults = Faults::versioned("catalog", "catalog-1", "0.1.0", 1);
        faults.assign(vec![fault(
            FaultKind::Errors { code: 503 },
            "catalog@2.4.0",
            1.0,
        )]);
        assert!(faults.active().is_empty());
        let faults = Faults::versioned("catalog", "catalog-1", "2.4.0", 1);
        faults.assign(vec![fault(
            FaultKind::Errors { code: 503 },
            "catalog@2.4.0",
            1.0,
        )]);
        assert_eq!(faults.inbound("/products").error, Some(503));
    }

    #[test]
    fn routes_and_links_are_matched() {
        let faults = Faults::new("gateway", "gateway-1", 1);
        let mut on_route = fault(
            FaultKind::Latency {
                latency: Millis(300),
                jitter: Millis(0),
            },
            "gateway",
            1.0,
        );
        on_route.spec.target.route = Some("/api/products".into());
        faults.assign(vec![
            on_route,
            fault(FaultKind::Reset {}, "gateway->catalog", 1.0),
        ]);
        assert_eq!(
            faults.inbound("/api/products").delay,
            Duration::from_millis(300)
        );
        assert_eq!(faults.inbound("/api/cart").delay, Duration::ZERO);
        assert_eq!(
            faults.outbound("catalog", "/products").failure,
            Some(LinkFailure::Reset)
        );
        assert_eq!(faults.outbound("cart", "/carts").failure, None);
    }

    #[test]
    fn toxicity_applies_to_that_share_of_requests() {
        let faults = Faults::new("payment", "payment-1", 7);
        faults.assign(vec![fault(FaultKind::Errors { code: 500 }, "payment", 0.3)]);
        let hit = (0..10_000)
            .filter(|_| faults.inbound("/charges").error.is_some())
            .count();
        assert!((2_700..3_300).contains(&hit), "{hit}");
    }

    #[test]
    fn expired_faults_stop_applying() {
        let faults = Faults::new("catalog", "catalog-1", 1);
        let mut f = fault(FaultKind::Errors { code: 500 }, "catalog", 1.0);
        f.until = Instant::now();
        faults.assign(vec![f]);
        assert_eq!(faults.inbound("/products").error, None);
    }

    #[test]
    fn dependency_faults_reach_the_pool_and_consumer() {
        let faults = Faults::new("catalog", "catalog-1", 1);
        faults.assign(vec![fault(
            FaultKind::SlowQuery {
                latency: Millis(40),
            },
            "catalog->db",
            1.0,
        )]);
        assert_eq!(faults.slow_query(), Some(Duration::from_millis(40)));
        assert_eq!(faults.consumer_delay(), None);
    }
}
