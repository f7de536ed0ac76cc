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
//! - the queue consumer, before each message ([`Faults::consumer_delay`],
//!   [`Faults::poisoned`]);
//! - the peer client's balancer ([`Faults::skewed_instance`]);
//! - the process itself (`actuators`): clock, CPU, memory, executor, crash,
//!   OTLP export, the database's indexes;
//! - a service's own mechanisms, which it reads here ([`Faults::cache_ttl`],
//!   [`Faults::traffic_spike`]) or is told about when a fault starts and
//!   ends ([`Faults::on_transition`], e.g. the cache emptying itself).
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
pub mod params;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use self::model::{Direction, FaultKind, FaultSpec, Scope};

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
    /// Where this process serves, once it does (`http://127.0.0.1:7131`):
    /// reported in every poll, so the controller can send the callers of a
    /// scaled service to it.
    serving_at: std::sync::OnceLock<String>,
    /// False whenever `active` is empty: the hot path's only cost.
    any: AtomicBool,
    active: RwLock<Arc<Vec<ActiveFault>>>,
    rng: Mutex<SmallRng>,
    /// The "hot mutex" of lock-contention faults.
    hot_lock: tokio::sync::Mutex<()>,
    /// The shrunken handler pools of worker-pool faults, by fault id; one
    /// semaphore for the fault's whole life (pruned when it ends).
    worker_pools: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Told when a fault assigned to this process starts and ends.
    watchers: Mutex<Vec<Watcher>>,
}

/// Whether a fault has just started or just ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Started,
    Ended,
}

/// A service's reaction to a fault starting or ending (see
/// [`Faults::on_transition`]).
pub type Watcher = Arc<dyn Fn(&FaultKind, Transition) + Send + Sync>;

/// A worker pool a request must get a slot in (a worker-pool fault).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPool {
    /// The fault's id: requests under one fault share one pool.
    pub fault: String,
    pub size: u32,
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
                "tls handshake failed: received fatal alert: CertificateExpired"
            }
        }
    }
}

/// What a traffic-spike fault asks of the load generator.
#[derive(Clone, Debug, PartialEq)]
pub struct Spike {
    /// Total traffic as a multiple of the usual.
    pub multiplier: f64,
    /// Every extra journey views this product.
    pub hot_key: Option<i64>,
    /// Every extra journey is of this kind (a `--mix` name).
    pub journey: Option<String>,
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
    /// The request gets through but its answer never comes back (a
    /// downstream partition): the caller waits out its timeout.
    pub answer_lost: bool,
    /// Bytes per second the response may arrive at.
    pub bandwidth: Option<u64>,
    /// Send the call to this `host:port` instead (a stale DNS record).
    pub stale_address: Option<String>,
    /// Wait for a slot in this pool before the handler runs.
    pub worker_pool: Option<WorkerPool>,
    /// Zero this numeric field of the JSON response (data corruption).
    pub corrupt: Option<String>,
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
                serving_at: std::sync::OnceLock::new(),
                any: AtomicBool::new(false),
                active: RwLock::new(Arc::new(Vec::new())),
                rng: Mutex::new(SmallRng::seed_from_u64(seed ^ 0x5eed_fa17)),
                hot_lock: tokio::sync::Mutex::new(()),
                worker_pools: Mutex::new(HashMap::new()),
                watchers: Mutex::new(Vec::new()),
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

    /// Records where this process serves; the first call wins (a process
    /// listens on one address for its life).
    pub fn serving_at(&self, url: String) {
        let _ = self.inner.serving_at.set(url);
    }

    /// Where this process serves, once it does.
    pub fn url(&self) -> Option<&str> {
        self.inner.serving_at.get().map(String::as_str)
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
        self.inner
            .worker_pools
            .lock()
            .retain(|id, _| mine.iter().any(|f| &f.id == id));
        self.inner.any.store(!mine.is_empty(), Ordering::Release);
        *self.inner.active.write() = Arc::new(mine);
    }

    /// Registers `watcher`, called (from the fault agent's task, so it must
    /// not block) when a fault assigned to this process starts and when it
    /// ends. For effects a service applies with its own mechanisms, such as
    /// the cache emptying itself when a cache-flush fault starts.
    pub fn on_transition(&self, watcher: impl Fn(&FaultKind, Transition) + Send + Sync + 'static) {
        self.inner.watchers.lock().push(Arc::new(watcher));
    }

    /// Tells every watcher that a fault of `kind` started or ended.
    pub(crate) fn notify(&self, kind: &FaultKind, transition: Transition) {
        let watchers = self.inner.watchers.lock().clone();
        for watcher in watchers {
            watcher(kind, transition);
        }
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
        self.request_effect(route, |spec| spec.target.scope() == Scope::Inbound)
    }

    /// The effect on a call from this process to `peer` on `route`.
    pub fn outbound(&self, peer: &str, route: &str) -> RequestEffect {
        self.request_effect(route, on_link_to(peer))
    }

    /// Calls `each` with every fault in force aimed at `route` (or at every
    /// route) that `aimed` selects and whose toxicity roll hits; only those
    /// roll, so asking about one kind leaves the others' rolls alone.
    fn for_each_hit(
        &self,
        route: &str,
        aimed: impl Fn(&FaultSpec) -> bool,
        mut each: impl FnMut(&ActiveFault),
    ) {
        let Some(snapshot) = self.snapshot() else {
            return;
        };
        let now = Instant::now();
        for fault in snapshot.iter().filter(|f| f.until > now) {
            let spec = &fault.spec;
            if aimed(spec)
                && spec.target.route.as_deref().is_none_or(|r| r == route)
                && self.hits(spec)
            {
                each(fault);
            }
        }
    }

    /// Combines the faults aimed at `route` that `aimed` selects and whose
    /// toxicity roll hits.
    fn request_effect(&self, route: &str, aimed: impl Fn(&FaultSpec) -> bool) -> RequestEffect {
        let mut effect = RequestEffect::default();
        self.for_each_hit(route, aimed, |fault| match &fault.spec.kind {
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
            FaultKind::Partition {
                direction: Direction::Downstream,
            } => effect.answer_lost = true,
            FaultKind::Partition { .. } => effect.failure = Some(LinkFailure::Refused),
            FaultKind::DnsFailure {} => effect.failure = Some(LinkFailure::Dns),
            FaultKind::DnsStale { address } => effect.stale_address = Some(address.clone()),
            FaultKind::CertExpiry {} => effect.failure = Some(LinkFailure::CertExpired),
            FaultKind::WorkerPool { size } => {
                effect.worker_pool = Some(WorkerPool {
                    fault: fault.id.clone(),
                    size: *size,
                });
            }
            FaultKind::DataCorruption { field } => effect.corrupt = Some(field.clone()),
            _ => {}
        });
        effect
    }

    /// Retries per failed call to `peer` on `route` forced by a
    /// retry-amplification fault (no jitter, no budget), for one call;
    /// `None` when the live config decides.
    pub fn amplified_retries(&self, peer: &str, route: &str) -> Option<u32> {
        let mut retries = None;
        let aimed = |spec: &FaultSpec| {
            on_link_to(peer)(spec) && matches!(spec.kind, FaultKind::RetryAmplification { .. })
        };
        self.for_each_hit(route, aimed, |fault| {
            if let FaultKind::RetryAmplification { attempts } = fault.spec.kind {
                retries = retries.max(Some(attempts));
            }
        });
        retries
    }

    /// Extra time a query holds its connection (a slow query).
    pub fn slow_query(&self) -> Option<Duration> {
        self.dependency_effect(|kind| match kind {
            FaultKind::SlowQuery { latency } => Some(latency.duration()),
            _ => None,
        })
    }

    /// Whether the database's volume is full for this process: its
    /// connections may not grow the file.
    pub fn disk_full(&self) -> bool {
        self.dependency_effect(|kind| match kind {
            FaultKind::DiskFull {} => Some(Duration::ZERO),
            _ => None,
        })
        .is_some()
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

    /// Waits for a slot in `pool` (at most `size` requests hold one at a
    /// time, the rest queue in arrival order); the slot is held until the
    /// permit is dropped.
    pub async fn worker_slot(&self, pool: &WorkerPool) -> tokio::sync::OwnedSemaphorePermit {
        let semaphore = self
            .inner
            .worker_pools
            .lock()
            .entry(pool.fault.clone())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(pool.size as usize)))
            .clone();
        semaphore
            .acquire_owned()
            .await
            .expect("worker pools are never closed")
    }

    /// For one call to `peer`: the instance (`payment-2`) a skewed balancer
    /// sends it to, or `None` to balance normally.
    pub fn skewed_instance(&self, peer: &str) -> Option<String> {
        let snapshot = self.snapshot()?;
        let now = Instant::now();
        let (instance, percent) = snapshot.iter().find_map(|f| match &f.spec.kind {
            FaultKind::LbSkew { instance, percent }
                if f.until > now && f.spec.target.peer.as_deref() == Some(peer) =>
            {
                Some((instance.as_str(), *percent))
            }
            _ => None,
        })?;
        let roll = self.inner.rng.lock().random_range(0..100u32);
        (roll < percent).then(|| instance.to_string())
    }

    /// Whether the message `id` arrives unreadable (a poison-message fault).
    /// Decided by the id alone, so the same message fails on every delivery.
    pub fn poisoned(&self, id: i64) -> bool {
        let Some(snapshot) = self.snapshot() else {
            return false;
        };
        let now = Instant::now();
        snapshot.iter().any(|f| {
            matches!(f.spec.kind, FaultKind::PoisonMessage {})
                && f.until > now
                && unit_hash(id as u64) < f.spec.toxicity
        })
    }

    /// The TTL every cache entry gets while a cache-flush fault with `ttl`
    /// lasts ("bad TTL"); see the cache service for how it aligns them.
    pub fn cache_ttl(&self) -> Option<Duration> {
        self.process_effect(|kind| match kind {
            FaultKind::CacheFlush { ttl } => ttl.map(|t| t.duration()),
            _ => None,
        })
    }

    /// The shape of a traffic spike in force.
    pub fn traffic_spike(&self) -> Option<Spike> {
        self.process_effect(|kind| match kind {
            FaultKind::TrafficSpike {
                multiplier,
                hot_key,
                journey,
            } => Some(Spike {
                multiplier: *multiplier,
                hot_key: *hot_key,
                journey: journey.clone(),
            }),
            _ => None,
        })
    }

    /// The first fault in force that `pick` maps to a value.
    fn process_effect<T>(&self, pick: impl Fn(&FaultKind) -> Option<T>) -> Option<T> {
        let now = Instant::now();
        self.snapshot()?
            .iter()
            .filter(|f| f.until > now)
            .find_map(|f| pick(&f.spec.kind))
    }
}

/// Maps `x` to `[0, 1)`, evenly and deterministically (SplitMix64's
/// finaliser), so neighbouring message ids get unrelated rolls.
/// Selects the faults on this process's link to `peer`.
fn on_link_to(peer: &str) -> impl Fn(&FaultSpec) -> bool + '_ {
    move |spec| spec.target.peer.as_deref() == Some(peer)
}

fn unit_hash(x: u64) -> f64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
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
    fn the_seed_fixes_which_requests_a_fault_hits() {
        let hits = |seed| {
            let faults = Faults::new("payment", "payment-1", seed);
            faults.assign(vec![fault(FaultKind::Errors { code: 500 }, "payment", 0.3)]);
            (0..200)
                .map(|_| faults.inbound("/charges").error.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(hits(7), hits(7), "same seed, same requests hit");
        assert_ne!(hits(7), hits(8), "another seed, another pattern");
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
    fn poison_picks_the_same_messages_every_time_at_its_toxicity() {
        let faults = Faults::new("projector", "projector-1", 1);
        assert!(!(1..1_000).any(|id| faults.poisoned(id)), "idle: none");
        faults.assign(vec![fault(
            FaultKind::PoisonMessage {},
            "projector->queue-consumer",
            0.1,
        )]);
        let first: Vec<i64> = (1..=10_000).filter(|&id| faults.poisoned(id)).collect();
        let again: Vec<i64> = (1..=10_000).filter(|&id| faults.poisoned(id)).collect();
        assert_eq!(first, again, "a poison message is poison on every delivery");
        assert!((900..1_100).contains(&first.len()), "{}", first.len());
    }

    #[test]
    fn process_kinds_are_read_where_their_mechanism_lives() {
        let faults = Faults::new("cache", "cache-1", 1);
        assert_eq!(faults.cache_ttl(), None);
        faults.assign(vec![fault(
            FaultKind::CacheFlush {
                ttl: Some(Millis(2_000)),
            },
            "cache",
            1.0,
        )]);
        assert_eq!(faults.cache_ttl(), Some(Duration::from_secs(2)));
        let loadgen = Faults::new("loadgen", "loadgen-1", 1);
        loadgen.assign(vec![fault(
            FaultKind::TrafficSpike {
                multiplier: 3.0,
                hot_key: None,
                journey: Some("checkout".into()),
            },
            "loadgen",
            1.0,
        )]);
        assert_eq!(
            loadgen.traffic_spike(),
            Some(Spike {
                multiplier: 3.0,
                hot_key: None,
                journey: Some("checkout".into()),
            })
        );
    }

    #[test]
    fn watchers_hear_each_start_and_end_once() {
        use super::actuators::Actuators;
        let faults = Faults::new("cache", "cache-1", 1);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = heard.clone();
        faults.on_transition(move |kind, transition| {
            log.lock().push((kind.name(), transition));
        });
        let mut actuators = Actuators::new(&faults, None);
        let flush = fault(FaultKind::CacheFlush { ttl: None }, "cache", 1.0);
        faults.assign(vec![flush]);
        actuators.reconcile(&faults.active());
        actuators.reconcile(&faults.active());
        faults.assign(vec![]);
        actuators.reconcile(&faults.active());
        assert_eq!(
            *heard.lock(),
            vec![
                ("cache-flush", Transition::Started),
                ("cache-flush", Transition::Ended)
            ]
        );
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
