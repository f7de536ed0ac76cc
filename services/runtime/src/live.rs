//! Live config: the knobs a config push changes while a process runs.
//!
//! A real service reads most of its behaviour from a config store that
//! operators (and their tooling) change without a restart: per-peer
//! timeouts, retry policy, pool sizes, rate limits, feature flags. Here the
//! controller is that store. It hands each process its service's config in
//! the fault agent's poll, as a [`ConfigVersion`]: the values that differ
//! from the process's own flags, and a version number that only grows.
//!
//! The runtime really uses every knob, at the point where it acts:
//!
//! - the peer client reads the timeout, retry count, retry budget, jitter
//!   and breaker settings for each call (`client`), skips drained
//!   instances, and calls a scaled service's instances where the controller
//!   says they listen ([`Live::endpoints`]);
//! - the database pool is resized when `db.poolSize` changes (`db`);
//! - the server refuses requests over a route's rate limit with 429
//!   (`server`);
//! - handlers ask [`Live::flag`] whether a feature is on for a user.
//!
//! Every new version is logged as `config reloaded v{N}` with what changed,
//! and exposed as `firedrill_config_info{service_name, config_version} 1`
//! (one series, the current version) and
//! `firedrill_config_version{service_name}`, so a
//! step change in a graph lines up with the config change behind it.
//!
//! # Invariants
//!
//! - Version 0 is the process's flags, untouched. A process that stops
//!   hearing from the controller goes back to it after one lease (and takes
//!   every instance back into rotation), as faults lapse: no lab stays
//!   broken without its controller. Where a scaled service's instances are
//!   is not a fault, and is kept as last heard.
//! - Values arrive validated (the controller checks them with
//!   [`ConfigPatch::validate`]); the process applies them as given.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ServiceArgs;
use crate::faults::model::{Assignment, Endpoint, Millis, SERVICES, parse_millis};
use crate::metrics::{Gauge, Meters, Unit};
use crate::resilience::breaker::BreakerConfig;
use crate::resilience::rate_limit::RateLimiter;

/// Every key a config change may set, as `firedrill ops config-set` spells
/// them (`<…>` is a name of your choice).
pub const KEYS: &str = "timeouts.<peer>, retries.count, retries.budget, retries.jitter, breaker.failureThreshold, breaker.cooldown, db.poolSize, rateLimits.<route>, flags.<name>";

/// Longest per-peer timeout a config may set.
const MAX_TIMEOUT: Millis = Millis(60_000);
/// Most retries after a failed call a config may set.
const MAX_RETRIES: u32 = 10;
/// Longest breaker cooldown a config may set.
const MAX_COOLDOWN: Millis = Millis(3_600_000);
/// Largest breaker failure threshold a config may set.
const MAX_THRESHOLD: u32 = 1_000;
/// Largest database pool a config may set.
const MAX_POOL: u32 = 64;
/// Highest rate limit a config may set, requests per second.
const MAX_RATE: f64 = 100_000.0;

/// Some of a service's live config: what a config push or an op changes.
/// Keys left out keep their value.
///
/// In a scenario file it reads as a step's parameters:
///
/// ```toml
/// kind = "config-push"
/// timeouts = { payment = "1ms" }
/// retries = { count = 5, budget = 1.0, jitter = false }
/// breaker = { failureThreshold = 0, cooldown = "10m" }
/// db = { poolSize = 2 }
/// rateLimits = { "/products" = 20 }
/// flags = { recommendations = 1.0 }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigPatch {
    /// Per-attempt timeout of calls to a peer service, by peer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timeouts: BTreeMap<String, Millis>,
    #[serde(default, skip_serializing_if = "RetryPatch::is_empty")]
    pub retries: RetryPatch,
    #[serde(default, skip_serializing_if = "BreakerPatch::is_empty")]
    pub breaker: BreakerPatch,
    #[serde(default, skip_serializing_if = "DbPatch::is_empty")]
    pub db: DbPatch,
    /// Requests per second a route (template, e.g. `/products/{id}`)
    /// accepts before answering 429; 0 lifts the limit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rate_limits: BTreeMap<String, f64>,
    /// Share of users (0..1) a feature flag is on for, by flag name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flags: BTreeMap<String, f64>,
}

/// How calls to peers are retried.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPatch {
    /// Retries after a failed idempotent call (0 disables retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Retries allowed per call made, 0..1 (Finagle's and Linkerd's retry
    /// budget). Without one, every failed call may be retried `count`
    /// times: a struggling peer sees up to (1 + count) × its load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    /// Randomised backoff. Off, callers that failed together retry
    /// together, in waves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<bool>,
}

impl RetryPatch {
    pub fn is_empty(&self) -> bool {
        self == &RetryPatch::default()
    }
}

/// The circuit breaker each caller keeps per peer instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BreakerPatch {
    /// Consecutive failures that open an instance's breaker; 0 means it
    /// never opens (callers wait out every timeout of a dead instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// How long an open breaker refuses calls before it lets one probe
    /// through. Minutes instead of seconds: a breaker "stuck open" long
    /// after its peer recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<Millis>,
}

impl BreakerPatch {
    pub fn is_empty(&self) -> bool {
        self == &BreakerPatch::default()
    }
}

/// The database pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DbPatch {
    /// Connections in the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u32>,
}

impl DbPatch {
    pub fn is_empty(&self) -> bool {
        self == &DbPatch::default()
    }
}

// === impl ConfigPatch ===

impl ConfigPatch {
    pub fn is_empty(&self) -> bool {
        self == &ConfigPatch::default()
    }

    /// Sets one key (`retries.budget`, `timeouts.payment`, ...) from a
    /// JSON value or its text (`"0.1"`, `"50ms"`, `"false"`).
    pub fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        let text = match value {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "`{key}`: {other} is not a value; give a number, a duration or true/false"
                ));
            }
        };
        let unknown = || format!("unknown config key `{key}`; keys are {KEYS}");
        let (section, name) = key.split_once('.').ok_or_else(unknown)?;
        if name.is_empty() {
            return Err(unknown());
        }
        match (section, name) {
            ("timeouts", peer) => {
                let ms = parse_millis(&text).map_err(|e| format!("`{key}`: {e}"))?;
                self.timeouts.insert(peer.to_string(), ms);
            }
            ("retries", "count") => self.retries.count = Some(number(key, &text)?),
            ("retries", "budget") => self.retries.budget = Some(number(key, &text)?),
            ("retries", "jitter") => {
                self.retries.jitter = Some(match text.as_str() {
                    "true" | "on" => true,
                    "false" | "off" => false,
                    _ => return Err(format!("`{key}` is true or false, got {text:?}")),
                })
            }
            ("breaker", "failureThreshold") => {
                self.breaker.failure_threshold = Some(number(key, &text)?)
            }
            ("breaker", "cooldown") => {
                let ms = parse_millis(&text).map_err(|e| format!("`{key}`: {e}"))?;
                self.breaker.cooldown = Some(ms);
            }
            ("db", "poolSize") => self.db.pool_size = Some(number(key, &text)?),
            ("rateLimits", route) => {
                self.rate_limits
                    .insert(route.to_string(), number(key, &text)?);
            }
            ("flags", flag) => {
                self.flags.insert(flag.to_string(), number(key, &text)?);
            }
            _ => return Err(unknown()),
        }
        Ok(())
    }

    /// Checks names and ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (peer, timeout) in &self.timeouts {
            if !SERVICES.contains(&peer.as_str()) {
                return Err(format!(
                    "`timeouts.{peer}`: unknown peer service \"{peer}\"; services are: {}",
                    SERVICES.join(", ")
                ));
            }
            if timeout.0 == 0 || *timeout > MAX_TIMEOUT {
                return Err(format!(
                    "`timeouts.{peer}` must be between 1ms and 60s, got {}ms",
                    timeout.0
                ));
            }
        }
        if let Some(count) = self.retries.count
            && count > MAX_RETRIES
        {
            return Err(format!(
                "`retries.count` must be 0..{MAX_RETRIES}, got {count}"
            ));
        }
        if let Some(budget) = self.retries.budget
            && !(0.0..=1.0).contains(&budget)
        {
            return Err(format!(
                "`retries.budget` is retries per call, within 0..1, got {budget}"
            ));
        }
        if let Some(threshold) = self.breaker.failure_threshold
            && threshold > MAX_THRESHOLD
        {
            return Err(format!(
                "`breaker.failureThreshold` must be 0..{MAX_THRESHOLD} failures in a row (0: never opens), got {threshold}"
            ));
        }
        if let Some(cooldown) = self.breaker.cooldown
            && (cooldown.0 == 0 || cooldown > MAX_COOLDOWN)
        {
            return Err(format!(
                "`breaker.cooldown` must be between 1ms and 1h, got {}ms",
                cooldown.0
            ));
        }
        if let Some(size) = self.db.pool_size
            && !(1..=MAX_POOL).contains(&size)
        {
            return Err(format!(
                "`db.poolSize` must be 1..{MAX_POOL} connections, got {size}"
            ));
        }
        for (route, rate) in &self.rate_limits {
            if !route.starts_with('/') {
                return Err(format!(
                    "`rateLimits.{route}`: a route template starts with '/', e.g. /products/{{id}}"
                ));
            }
            if !(0.0..=MAX_RATE).contains(rate) {
                return Err(format!(
                    "`rateLimits.{route}` must be 0..{MAX_RATE} requests per second (0 lifts the limit), got {rate}"
                ));
            }
        }
        for (flag, share) in &self.flags {
            let plain = (1..=64).contains(&flag.len())
                && flag.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !plain {
                return Err(format!(
                    "`flags.{flag}`: a flag name is 1 to 64 of [a-z0-9-_]"
                ));
            }
            if !(0.0..=1.0).contains(share) {
                return Err(format!(
                    "`flags.{flag}` is the share of users it is on for, within 0..1, got {share}"
                ));
            }
        }
        Ok(())
    }

    /// Lays `other` over this patch: its keys win.
    pub fn merge(&mut self, other: &ConfigPatch) {
        self.timeouts.extend(other.timeouts.clone());
        let retries = &other.retries;
        self.retries.count = retries.count.or(self.retries.count);
        self.retries.budget = retries.budget.or(self.retries.budget);
        self.retries.jitter = retries.jitter.or(self.retries.jitter);
        let breaker = &other.breaker;
        self.breaker.failure_threshold =
            breaker.failure_threshold.or(self.breaker.failure_threshold);
        self.breaker.cooldown = breaker.cooldown.or(self.breaker.cooldown);
        self.db.pool_size = other.db.pool_size.or(self.db.pool_size);
        self.rate_limits.extend(other.rate_limits.clone());
        self.flags.extend(other.flags.clone());
    }

    /// `key=value` for every key set, in a stable order.
    pub fn entries(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (peer, ms) in &self.timeouts {
            out.push(format!("timeouts.{peer}={}ms", ms.0));
        }
        if let Some(count) = self.retries.count {
            out.push(format!("retries.count={count}"));
        }
        if let Some(budget) = self.retries.budget {
            out.push(format!("retries.budget={budget}"));
        }
        if let Some(jitter) = self.retries.jitter {
            out.push(format!("retries.jitter={jitter}"));
        }
        if let Some(threshold) = self.breaker.failure_threshold {
            out.push(format!("breaker.failureThreshold={threshold}"));
        }
        if let Some(cooldown) = self.breaker.cooldown {
            out.push(format!("breaker.cooldown={}ms", cooldown.0));
        }
        if let Some(size) = self.db.pool_size {
            out.push(format!("db.poolSize={size}"));
        }
        for (route, rate) in &self.rate_limits {
            out.push(format!("rateLimits.{route}={rate}"));
        }
        for (flag, share) in &self.flags {
            out.push(format!("flags.{flag}={share}"));
        }
        out
    }
}

fn number<T: std::str::FromStr>(key: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("`{key}` needs a number, got {text:?}"))
}

/// A service's live config as the controller hands it out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigVersion {
    /// Grows with every change; 0 means "the process's flags".
    pub version: u64,
    /// What differs from the process's flags.
    #[serde(default)]
    pub values: ConfigPatch,
}

/// The config a process runs with: its flags with a version's values laid
/// over them.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveConfig {
    pub version: u64,
    /// Per-attempt timeout of calls to peers without their own.
    pub call_timeout: Duration,
    pub timeouts: BTreeMap<String, Duration>,
    pub retries: u32,
    /// Retries allowed per call made; `None` for no budget.
    pub retry_budget: Option<f64>,
    pub retry_jitter: bool,
    pub breaker: BreakerConfig,
    pub db_pool_size: usize,
    /// Requests per second by route template (only limited routes).
    pub rate_limits: BTreeMap<String, f64>,
    /// Share of users by flag (flags not listed are off).
    pub flags: BTreeMap<String, f64>,
}

// === impl LiveConfig ===

impl LiveConfig {
    /// Version 0: what the flags say, which is how the process behaves
    /// before any config change.
    pub fn from_args(args: &ServiceArgs) -> LiveConfig {
        LiveConfig {
            version: 0,
            call_timeout: args.call_timeout,
            timeouts: BTreeMap::new(),
            retries: args.call_retries,
            retry_budget: None,
            retry_jitter: args.retry_jitter,
            breaker: BreakerConfig {
                failure_threshold: args.breaker_failures,
                cooldown: args.breaker_cooldown,
            },
            db_pool_size: args.db_pool_size.max(1),
            rate_limits: BTreeMap::new(),
            flags: BTreeMap::new(),
        }
    }

    /// This config with `patch` laid over it, as `version`.
    pub fn patched(&self, patch: &ConfigPatch, version: u64) -> LiveConfig {
        let mut next = self.clone();
        next.version = version;
        for (peer, ms) in &patch.timeouts {
            next.timeouts.insert(peer.clone(), ms.duration());
        }
        if let Some(count) = patch.retries.count {
            next.retries = count;
        }
        if let Some(budget) = patch.retries.budget {
            next.retry_budget = Some(budget);
        }
        if let Some(jitter) = patch.retries.jitter {
            next.retry_jitter = jitter;
        }
        if let Some(threshold) = patch.breaker.failure_threshold {
            next.breaker.failure_threshold = threshold;
        }
        if let Some(cooldown) = patch.breaker.cooldown {
            next.breaker.cooldown = cooldown.duration();
        }
        if let Some(size) = patch.db.pool_size {
            next.db_pool_size = (size as usize).max(1);
        }
        for (route, rate) in &patch.rate_limits {
            if *rate > 0.0 {
                next.rate_limits.insert(route.clone(), *rate);
            } else {
                next.rate_limits.remove(route);
            }
        }
        next.flags.extend(patch.flags.clone());
        next
    }

    /// The per-attempt timeout of calls to `peer`.
    pub fn timeout_for(&self, peer: &str) -> Duration {
        self.timeouts
            .get(peer)
            .copied()
            .unwrap_or(self.call_timeout)
    }

    /// `key: old -> new` for every key whose value differs in `next`.
    pub fn changes(&self, next: &LiveConfig) -> Vec<String> {
        let mut out = Vec::new();
        let mut note = |key: String, old: String, new: String| {
            if old != new {
                out.push(format!("{key}: {old} -> {new}"));
            }
        };
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let peers: BTreeSet<&String> = self.timeouts.keys().chain(next.timeouts.keys()).collect();
        for peer in peers {
            note(
                format!("timeouts.{peer}"),
                ms(self.timeout_for(peer)),
                ms(next.timeout_for(peer)),
            );
        }
        note(
            "retries.count".into(),
            self.retries.to_string(),
            next.retries.to_string(),
        );
        let budget = |b: Option<f64>| b.map_or("none".to_string(), |b| b.to_string());
        note(
            "retries.budget".into(),
            budget(self.retry_budget),
            budget(next.retry_budget),
        );
        note(
            "retries.jitter".into(),
            self.retry_jitter.to_string(),
            next.retry_jitter.to_string(),
        );
        note(
            "breaker.failureThreshold".into(),
            self.breaker.failure_threshold.to_string(),
            next.breaker.failure_threshold.to_string(),
        );
        note(
            "breaker.cooldown".into(),
            ms(self.breaker.cooldown),
            ms(next.breaker.cooldown),
        );
        note(
            "db.poolSize".into(),
            self.db_pool_size.to_string(),
            next.db_pool_size.to_string(),
        );
        let routes: BTreeSet<&String> = self
            .rate_limits
            .keys()
            .chain(next.rate_limits.keys())
            .collect();
        let rate = |c: &LiveConfig, r: &String| {
            c.rate_limits
                .get(r)
                .map_or("none".to_string(), |v| v.to_string())
        };
        for route in routes {
            note(
                format!("rateLimits.{route}"),
                rate(self, route),
                rate(next, route),
            );
        }
        let flags: BTreeSet<&String> = self.flags.keys().chain(next.flags.keys()).collect();
        let share = |c: &LiveConfig, f: &String| c.flags.get(f).copied().unwrap_or(0.0).to_string();
        for flag in flags {
            note(
                format!("flags.{flag}"),
                share(self, flag),
                share(next, flag),
            );
        }
        out
    }
}

/// Service name → its instances, for the services the controller scaled.
pub type Endpoints = BTreeMap<String, Vec<Endpoint>>;

/// What the process runs with now, cheap to clone and to consult.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

type Listener = Box<dyn Fn(&LiveConfig) + Send + Sync>;

struct Inner {
    /// Version 0, from the flags.
    base: Arc<LiveConfig>,
    current: RwLock<Arc<LiveConfig>>,
    /// Instances (`payment-2`) every caller leaves out of rotation.
    drained: RwLock<Arc<BTreeSet<String>>>,
    /// False whenever `drained` is empty: the peer picker's only cost.
    any_drained: AtomicBool,
    /// Where each scaled service's instances listen, per the controller.
    endpoints: RwLock<Arc<Endpoints>>,
    /// Counts changes of `endpoints`: a caller rebuilds its rotation only
    /// when this moved, so its hot path is one atomic load.
    endpoints_generation: AtomicU64,
    /// When the controller's last answer stops counting (its lease).
    lease_until: Mutex<Option<Instant>>,
    /// One token bucket per rate-limited route, with its rate.
    limiters: RwLock<BTreeMap<String, (f64, Arc<RateLimiter>)>>,
    any_limit: AtomicBool,
    /// Parts of the runtime that act on a change (the database pool).
    listeners: Mutex<Vec<Listener>>,
    service: String,
    info: Gauge,
    version: Gauge,
}

// === impl Live ===

impl Live {
    /// The live config of a process started with default flags (for tests).
    #[cfg(test)]
    pub(crate) fn with_defaults(service: &str, meters: &Meters) -> Live {
        let flags =
            crate::config::parse_service_args(&[]).expect("the default service flags parse");
        Live::new(service, LiveConfig::from_args(&flags), meters)
    }

    /// The live config of `service`, starting at version 0 = `base`.
    pub fn new(service: &str, base: LiveConfig, meters: &Meters) -> Live {
        let info = meters.gauge(
            "firedrill.config.info",
            "The config version this process runs with (1 for the current one)",
            Unit::Count,
        );
        let version = meters.gauge(
            "firedrill.config.version",
            "The config version this process runs with",
            Unit::Count,
        );
        let base = Arc::new(base);
        let live = Live {
            inner: Arc::new(Inner {
                current: RwLock::new(base.clone()),
                base,
                drained: RwLock::new(Arc::new(BTreeSet::new())),
                any_drained: AtomicBool::new(false),
                endpoints: RwLock::new(Arc::new(Endpoints::new())),
                endpoints_generation: AtomicU64::new(0),
                lease_until: Mutex::new(None),
                limiters: RwLock::new(BTreeMap::new()),
                any_limit: AtomicBool::new(false),
                listeners: Mutex::new(Vec::new()),
                service: service.to_string(),
                info,
                version,
            }),
        };
        let current = live.config();
        live.publish(None, &current);
        live
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<LiveConfig> {
        self.inner.current.read().clone()
    }

    pub fn version(&self) -> u64 {
        self.inner.current.read().version
    }

    /// Calls `listener` with every new config (not the current one).
    pub fn on_change(&self, listener: impl Fn(&LiveConfig) + Send + Sync + 'static) {
        self.inner.listeners.lock().push(Box::new(listener));
    }

    /// Runs with the flags laid over by `values`, as `version`; does nothing
    /// if that version is already in force. Returns whether it changed.
    pub fn apply(&self, version: u64, values: &ConfigPatch) -> bool {
        let (previous, next) = {
            let mut current = self.inner.current.write();
            if current.version == version {
                return false;
            }
            let next = Arc::new(self.inner.base.patched(values, version));
            (std::mem::replace(&mut *current, next.clone()), next)
        };
        self.rebuild_limiters(&next);
        self.publish(Some(&previous), &next);
        let changed = previous.changes(&next);
        tracing::info!(
            config.version = version,
            config.previous_version = previous.version,
            changed = %changed.join(", "),
            "config reloaded v{version}"
        );
        for listener in self.inner.listeners.lock().iter() {
            listener(&next);
        }
        true
    }

    /// Applies what the controller answered, good until `until` (its lease):
    /// the config version, the drained set and the scaled services'
    /// instances.
    pub fn assign(&self, assignment: &Assignment, until: Instant) {
        *self.inner.lease_until.lock() = Some(until);
        self.apply(assignment.config.version, &assignment.config.values);
        self.set_drained(assignment.drained.clone());
        self.set_endpoints(assignment.endpoints.clone());
    }

    /// Past the lease of the controller's last answer, goes back to the
    /// flags (version 0) and takes every instance back into rotation; the
    /// scaled services' instances stay as last heard.
    pub fn expire(&self, now: Instant) {
        let lapsed = {
            let mut until = self.inner.lease_until.lock();
            match *until {
                Some(end) if now >= end => {
                    *until = None;
                    true
                }
                _ => false,
            }
        };
        if lapsed {
            self.apply(0, &ConfigPatch::default());
            self.set_drained(BTreeSet::new());
            // The scaled services' instances are kept: they are where the
            // processes are, not something injected, and the supervisor
            // keeps them running without the controller. Going back to
            // --peers would send calls to instances a scale-in stopped.
        }
    }

    /// Replaces where the scaled services' instances listen. A service
    /// absent from `endpoints` is called at the addresses `--peers` names.
    pub fn set_endpoints(&self, endpoints: Endpoints) {
        let mut current = self.inner.endpoints.write();
        if **current == endpoints {
            return;
        }
        let ids = |list: &[Endpoint]| list.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        for (service, list) in &endpoints {
            if current.get(service) != Some(list) {
                tracing::info!(peer = %service, instances = ?ids(list), "peer instances changed");
            }
        }
        for service in current.keys().filter(|s| !endpoints.contains_key(*s)) {
            tracing::info!(peer = %service, "peer instances back to the configured ones");
        }
        *current = Arc::new(endpoints);
        self.inner
            .endpoints_generation
            .fetch_add(1, Ordering::Release);
    }

    /// Where each scaled service's instances listen.
    pub fn endpoints(&self) -> Arc<Endpoints> {
        self.inner.endpoints.read().clone()
    }

    /// How many times the scaled services' instances changed. A caller
    /// reads it before [`Live::endpoints`]: if a newer answer lands in
    /// between, it only rebuilds once more on its next call.
    pub fn endpoints_generation(&self) -> u64 {
        self.inner.endpoints_generation.load(Ordering::Acquire)
    }

    /// Replaces the set of drained instances (`payment-2`, ...).
    pub fn set_drained(&self, drained: BTreeSet<String>) {
        let mut current = self.inner.drained.write();
        if **current == drained {
            return;
        }
        let out: Vec<&String> = drained.difference(&current).collect();
        let back: Vec<&String> = current.difference(&drained).collect();
        if !out.is_empty() {
            tracing::info!(instances = ?out, "instances taken out of rotation (drained)");
        }
        if !back.is_empty() {
            tracing::info!(instances = ?back, "instances back in rotation");
        }
        self.inner
            .any_drained
            .store(!drained.is_empty(), Ordering::Release);
        *current = Arc::new(drained);
    }

    /// The drained instances; `None` when there are none, so the peer
    /// picker takes no lock on its hot path.
    pub fn drained(&self) -> Option<Arc<BTreeSet<String>>> {
        self.inner
            .any_drained
            .load(Ordering::Acquire)
            .then(|| self.inner.drained.read().clone())
    }

    /// Whether the feature `flag` is on for the user `user_key`. A flag at
    /// share 0.3 is on for the same 30 % of users on every instance (the
    /// choice is a stable hash of flag and user), so a user's experience
    /// does not flicker between requests.
    pub fn flag(&self, flag: &str, user_key: &str) -> bool {
        let share = self
            .inner
            .current
            .read()
            .flags
            .get(flag)
            .copied()
            .unwrap_or(0.0);
        if share <= 0.0 {
            return false;
        }
        if share >= 1.0 {
            return true;
        }
        bucket(flag, user_key) < share
    }

    /// Spends a token of `route`'s rate limit at `now`; `Err(limit)` when
    /// the route is over its limit (requests per second).
    pub fn admit(&self, route: &str, now: Instant) -> Result<(), f64> {
        if !self.inner.any_limit.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.inner.limiters.read().get(route) {
            Some((rate, limiter)) if !limiter.allow("", now) => Err(*rate),
            _ => Ok(()),
        }
    }

    /// One bucket per limited route; a route whose rate did not change keeps
    /// its bucket (and its tokens).
    fn rebuild_limiters(&self, config: &LiveConfig) {
        let mut limiters = self.inner.limiters.write();
        limiters.retain(|route, (rate, _)| config.rate_limits.get(route) == Some(rate));
        for (route, rate) in &config.rate_limits {
            limiters.entry(route.clone()).or_insert_with(|| {
                // A second's worth of burst: the limit is per second, not
                // per instant.
                (*rate, Arc::new(RateLimiter::new(*rate, rate.max(1.0))))
            });
        }
        self.inner
            .any_limit
            .store(!limiters.is_empty(), Ordering::Release);
    }

    /// The info series of `next` replaces that of `previous`.
    fn publish(&self, previous: Option<&LiveConfig>, next: &LiveConfig) {
        let service = self.inner.service.as_str();
        if let Some(previous) = previous {
            let old = previous.version.to_string();
            self.inner
                .info
                .remove(&[("service.name", service), ("config.version", &old)]);
        }
        let version = next.version.to_string();
        self.inner.info.set(
            1.0,
            &[("service.name", service), ("config.version", &version)],
        );
        self.inner
            .version
            .set(next.version as f64, &[("service.name", service)]);
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("service", &self.inner.service)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// Where `user_key` falls in `[0, 1)` for `flag`: FNV-1a, stable across
/// processes and releases (std's hasher is neither).
fn bucket(flag: &str, user_key: &str) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in flag.bytes().chain([0xff]).chain(user_key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Mix the high bits down: FNV's low bits are weak for short keys.
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 32;
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// `key=value, ...` of a patch, for messages.
pub fn describe(patch: &ConfigPatch) -> String {
    let mut out = String::new();
    for (i, entry) in patch.entries().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{entry}");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{Identity, parse_service_args};

    fn base() -> LiveConfig {
        LiveConfig::from_args(&parse_service_args(&[]).unwrap())
    }

    fn meters() -> Meters {
        Meters::new(&Identity {
            service: "checkout".into(),
            instance_id: "checkout-1".into(),
            version: "1".into(),
            environment: "test".into(),
        })
    }

    fn patch(pairs: &[(&str, Value)]) -> Result<ConfigPatch, String> {
        let mut patch = ConfigPatch::default();
        for (key, value) in pairs {
            patch.set(key, value)?;
        }
        patch.validate()?;
        Ok(patch)
    }

    #[test]
    fn keys_are_set_from_text_or_json_and_checked() {
        let p = patch(&[
            ("timeouts.payment", json!("50ms")),
            ("retries.count", json!(0)),
            ("retries.budget", json!("0.1")),
            ("retries.jitter", json!("false")),
            ("db.poolSize", json!(2)),
            ("rateLimits./api/products", json!(20)),
            ("flags.recommendations", json!(0.5)),
        ])
        .unwrap();
        assert_eq!(p.timeouts["payment"], Millis(50));
        assert_eq!(p.retries.budget, Some(0.1));
        assert_eq!(p.retries.jitter, Some(false));
        assert_eq!(
            describe(&p),
            "timeouts.payment=50ms, retries.count=0, retries.budget=0.1, retries.jitter=false, db.poolSize=2, rateLimits./api/products=20, flags.recommendations=0.5"
        );
        for (pairs, needle) in [
            (
                vec![("retry.count", json!(1))],
                "unknown config key `retry.count`",
            ),
            (vec![("retries", json!(1))], "unknown config key"),
            (vec![("retries.count", json!("many"))], "needs a number"),
            (
                vec![("retries.count", json!(11))],
                "`retries.count` must be 0..10",
            ),
            (vec![("retries.budget", json!(2))], "within 0..1"),
            (vec![("retries.jitter", json!("maybe"))], "true or false"),
            (
                vec![("timeouts.warehouse", json!(5))],
                "unknown peer service",
            ),
            (vec![("timeouts.payment", json!(0))], "between 1ms and 60s"),
            (vec![("timeouts.payment", json!("soon"))], "not a duration"),
            (
                vec![("db.poolSize", json!(0))],
                "`db.poolSize` must be 1..64",
            ),
            (vec![("rateLimits.products", json!(5))], "starts with '/'"),
            (vec![("rateLimits./x", json!(-1))], "requests per second"),
            (vec![("flags.Big Flag", json!(1))], "flag name"),
            (vec![("flags.x", json!(1.5))], "share of users"),
            (vec![("flags.x", json!([1]))], "is not a value"),
        ] {
            let err = patch(&pairs).unwrap_err();
            assert!(err.contains(needle), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn later_patches_win_key_by_key() {
        let mut ops = patch(&[
            ("timeouts.payment", json!("2s")),
            ("retries.count", json!(3)),
        ])
        .unwrap();
        let push = patch(&[
            ("timeouts.payment", json!("1ms")),
            ("timeouts.inventory", json!("5ms")),
        ])
        .unwrap();
        ops.merge(&push);
        assert_eq!(
            describe(&ops),
            "timeouts.inventory=5ms, timeouts.payment=1ms, retries.count=3"
        );
        let config = base().patched(&ops, 4);
        assert_eq!(config.version, 4);
        assert_eq!(config.timeout_for("payment"), Duration::from_millis(1));
        assert_eq!(config.timeout_for("cart"), Duration::from_secs(2));
        assert_eq!(config.retries, 3);
        assert_eq!(
            base().changes(&config),
            vec![
                "timeouts.inventory: 2000ms -> 5ms",
                "timeouts.payment: 2000ms -> 1ms",
                "retries.count: 2 -> 3"
            ]
        );
    }

    #[test]
    fn versions_apply_once_publish_one_info_series_and_lapse_to_the_flags() {
        let meters = meters();
        let live = Live::new("checkout", base(), &meters);
        assert!(
            meters.encode().contains(
                "firedrill_config_info{service_name=\"checkout\",config_version=\"0\"} 1"
            ),
            "{}",
            meters.encode()
        );
        let resized = Arc::new(Mutex::new(Vec::new()));
        let seen = resized.clone();
        live.on_change(move |c| seen.lock().push(c.db_pool_size));
        let values = patch(&[("db.poolSize", json!(2))]).unwrap();
        let now = Instant::now();
        live.assign(
            &Assignment {
                config: ConfigVersion {
                    version: 3,
                    values: values.clone(),
                },
                ..Assignment::default()
            },
            now + Duration::from_secs(5),
        );
        assert!(!live.apply(3, &values), "the same version applies once");
        assert_eq!(live.version(), 3);
        let text = meters.encode();
        assert!(
            text.contains(
                "firedrill_config_info{service_name=\"checkout\",config_version=\"3\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("config_version=\"0\""), "{text}");
        assert!(
            text.contains("firedrill_config_version{service_name=\"checkout\"} 3"),
            "{text}"
        );

        live.expire(now + Duration::from_secs(4));
        assert_eq!(live.version(), 3, "within the lease");
        live.expire(now + Duration::from_secs(5));
        assert_eq!(live.version(), 0, "the lease lapsed");
        assert_eq!(*resized.lock(), vec![2, 8]);
    }

    #[test]
    fn drained_instances_are_shared_and_cleared() {
        let live = Live::new("checkout", base(), &meters());
        assert!(live.drained().is_none());
        live.set_drained(BTreeSet::from(["payment-2".to_string()]));
        assert!(live.drained().unwrap().contains("payment-2"));
        live.set_drained(BTreeSet::new());
        assert!(live.drained().is_none());
    }

    #[test]
    fn scaled_instances_outlive_the_lease_until_the_controller_says_otherwise() {
        let live = Live::new("checkout", base(), &meters());
        let scaled = BTreeMap::from([(
            "payment".to_string(),
            vec![Endpoint {
                id: "payment-3".into(),
                url: "http://127.0.0.1:9".into(),
            }],
        )]);
        let now = Instant::now();
        let answer = Assignment {
            endpoints: scaled.clone(),
            ..Assignment::default()
        };
        live.assign(&answer, now + Duration::from_secs(5));
        assert_eq!(*live.endpoints(), scaled);
        let generation = live.endpoints_generation();
        live.assign(&answer, now + Duration::from_secs(6));
        assert_eq!(live.endpoints_generation(), generation, "the same answer");
        live.expire(now + Duration::from_secs(6));
        assert_eq!(*live.endpoints(), scaled, "kept past the lease");
        // A controller that no longer lists the service sends callers back
        // to --peers.
        live.assign(&Assignment::default(), now + Duration::from_secs(10));
        assert!(live.endpoints().is_empty());
        assert!(live.endpoints_generation() > generation);
    }

    #[test]
    fn flags_are_on_for_a_stable_share_of_users() {
        let live = Live::new("catalog", base(), &meters());
        assert!(
            !live.flag("recommendations", "user1"),
            "unknown flags are off"
        );
        live.apply(1, &patch(&[("flags.recommendations", json!(0.3))]).unwrap());
        let on: Vec<bool> = (0..10_000)
            .map(|u| live.flag("recommendations", &format!("user{u}")))
            .collect();
        let share = on.iter().filter(|on| **on).count();
        assert!((2_700..3_300).contains(&share), "{share}");
        let again: Vec<bool> = (0..10_000)
            .map(|u| live.flag("recommendations", &format!("user{u}")))
            .collect();
        assert_eq!(on, again, "the same users, every time");
        live.apply(2, &patch(&[("flags.recommendations", json!(0))]).unwrap());
        assert!((0..1000).all(|u| !live.flag("recommendations", &format!("user{u}"))));
        live.apply(3, &patch(&[("flags.recommendations", json!(1))]).unwrap());
        assert!((0..1000).all(|u| live.flag("recommendations", &format!("user{u}"))));
    }

    #[test]
    fn rate_limits_refuse_past_a_second_of_burst() {
        let live = Live::new("gateway", base(), &meters());
        let t0 = Instant::now();
        assert!(live.admit("/api/products", t0).is_ok());
        live.apply(
            1,
            &patch(&[("rateLimits./api/products", json!(2))]).unwrap(),
        );
        assert!(live.admit("/api/products", t0).is_ok());
        assert!(live.admit("/api/products", t0).is_ok());
        assert_eq!(live.admit("/api/products", t0), Err(2.0));
        assert!(live.admit("/api/cart", t0).is_ok(), "other routes are free");
        assert!(
            live.admit("/api/products", t0 + Duration::from_millis(500))
                .is_ok()
        );
        // Raising the limit is a new bucket; 0 lifts it.
        live.apply(
            2,
            &patch(&[("rateLimits./api/products", json!(0))]).unwrap(),
        );
        assert!((0..100).all(|_| live.admit("/api/products", t0).is_ok()));
    }
}
