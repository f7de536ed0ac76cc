//! What a fault is, as the controller stores it and every agent receives it.
//!
//! Parameter names follow Toxiproxy and Chaos Mesh where those tools have
//! one (`latency`, `jitter`, `toxicity`, `code`, `timeOffset`), so a user who
//! knows them recognises the knobs. Durations are accepted as milliseconds
//! (`300`) or as text (`"300ms"`, `"1m"`); they are always written back as
//! milliseconds.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::live::{ConfigPatch, ConfigVersion};

/// Every service the lab runs; a target must name one of them.
pub const SERVICES: &[&str] = &[
    "gateway",
    "auth",
    "catalog",
    "cache",
    "search",
    "cart",
    "checkout",
    "inventory",
    "payment",
    "payment-provider",
    "shipping",
    "queue",
    "notification",
    "projector",
];

/// Services that stand in for third parties (the card processor): faults
/// reach them, but the shop's engineers cannot operate them.
pub const THIRD_PARTIES: &[&str] = &["payment-provider"];

/// Dependencies a service reaches other than through a peer service call.
pub const DEPENDENCIES: &[&str] = &["db", "queue-consumer"];

/// The services that consume the queue (the only ones a `queue-consumer`
/// fault can act in).
pub const QUEUE_CONSUMERS: &[&str] = &["notification", "projector"];

/// The load generator's journey kinds, as `--mix` and a traffic spike's
/// `journey` spell them.
pub const JOURNEYS: &[&str] = &[
    "browse",
    "search",
    "view_product",
    "login",
    "add_to_cart",
    "view_cart",
    "checkout",
];

/// The load generator: not a service (nothing calls it, it serves no shop
/// routes), but it runs a fault agent, so process faults can target it.
pub const LOAD_GENERATOR: &str = "loadgen";

/// A duration in whole milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub u64);

impl Millis {
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(d, Millis, parse_millis)
    }
}

/// Deserializes a value written either as a number (taken as is) or as text
/// (parsed), as every duration-like parameter here may be.
fn number_or_text<'de, D, N, T>(
    d: D,
    from_number: impl FnOnce(N) -> T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    N: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw<N> {
        Number(N),
        Text(String),
    }
    match Raw::<N>::deserialize(d)? {
        Raw::Number(n) => Ok(from_number(n)),
        Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
    }
}

/// Parses `"300ms"`, `"2s"`, `"1m30s"` or a bare number of milliseconds.
pub fn parse_millis(text: &str) -> Result<Millis, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(Millis(ms));
    }
    humantime::parse_duration(text)
        .map(|d| Millis(d.as_millis().min(u64::MAX as u128) as u64))
        .map_err(|e| format!("{text:?} is not a duration like 300ms or 2s: {e}"))
}

/// A signed offset such as `-90s` (behind) or `2m` (ahead), as Chaos Mesh's
/// `timeOffset`; stored as signed milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offset(pub i64);

impl Serialize for Offset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_text(d, Offset, parse_offset)
    }
}

pub fn parse_offset(text: &str) -> Result<Offset, String> {
    let text = text.trim();
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let ms = parse_millis(rest)?.0.min(i64::MAX as u64) as i64;
    Ok(Offset(sign * ms))
}

/// Which way a link fault cuts, as Toxiproxy's `stream` and Chaos Mesh's
/// `direction`: `upstream` is caller to callee, `downstream` the answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Both,
    Upstream,
    Downstream,
}

/// What to break and how. Each variant is documented by the failure it
/// simulates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum FaultKind {
    /// A slow network hop or a slow handler: every affected request waits
    /// `latency` ± `jitter` before it is handled (server) or sent (link).
    Latency {
        latency: Millis,
        #[serde(default)]
        jitter: Millis,
    },
    /// Packet loss as TCP experiences it: most requests are fine, the unlucky
    /// ones stall for a retransmission timeout between `min` and `max`.
    Stall {
        #[serde(default = "default_stall_min")]
        min: Millis,
        #[serde(default = "default_stall_max")]
        max: Millis,
    },
    /// A narrow pipe: response bytes trickle at `rate` bytes per second, so
    /// the span grows with the payload.
    Bandwidth { rate: u64 },
    /// The server answers `code` (a handler bug, an overloaded upstream).
    Errors {
        #[serde(default = "default_error_code")]
        code: u16,
    },
    /// A blackhole: the request is accepted and never answered, so callers
    /// wait until their own timeout.
    Hang {},
    /// The connection is reset mid-request (a crashed proxy, a conntrack
    /// table overflow).
    Reset {},
    /// The callee is cut off from this caller. With `direction` `both` (the
    /// default) or `upstream`, requests do not get through: connections are
    /// refused. With `downstream`, only the answers are lost: the callee
    /// gets every request and does the work, and the caller waits until its
    /// own timeout (an asymmetric partition, e.g. a firewall rule that
    /// drops return traffic).
    Partition {
        #[serde(default)]
        direction: Direction,
    },
    /// Name resolution of the callee fails, before any byte is sent.
    DnsFailure {},
    /// A stale DNS record: the caller's resolver still hands out the
    /// callee's old address, so every call really goes there. By default
    /// nothing listens there any more (`127.0.0.1:1`) and the operating
    /// system refuses the connection; `address` (`host:port`) points the
    /// record somewhere else, e.g. at another service that now owns the
    /// address and answers 404, or at an address that drops packets.
    DnsStale {
        #[serde(default = "default_stale_address")]
        address: String,
    },
    /// The TLS certificate of the link has passed its `not_after`: every
    /// handshake fails from the fault's start, at one instant.
    CertExpiry {},
    /// The instance's clock is offset, as with a broken NTP client: tokens
    /// look "not yet valid" or expired to its peers, spans look misordered.
    ClockSkew { time_offset: Offset },
    /// Retry amplification (a client library upgrade with aggressive
    /// defaults): the caller retries every failed retryable call to the
    /// callee `attempts` times, at once and in step (no jitter), with no
    /// retry budget, whatever its live config says.
    RetryAmplification {
        #[serde(default = "default_amplified_attempts")]
        attempts: u32,
    },
    /// A log flood (a debug switch left on, an error logged in a tight
    /// retry loop): the process writes `rate` WARN records a second, each
    /// carrying `bytes` of detail, on top of its usual logs. They go where
    /// its logs go: its log file grows by about `rate` × `bytes` a second,
    /// and the collector's bounded log store fills and then evicts every
    /// service's oldest records to make room.
    LogFlood {
        #[serde(default = "default_flood_rate")]
        rate: u32,
        #[serde(default = "default_flood_bytes")]
        bytes: u32,
    },
    /// A noisy neighbour: `threads` threads burn CPU in the process.
    CpuBurn {
        #[serde(default = "one")]
        threads: u32,
    },
    /// A leak: the process retains `rate` MiB per second until its resident
    /// memory passes `limit` MiB, where the "OOM killer" ends it (exit 137).
    MemoryLeak {
        #[serde(default = "default_leak_rate")]
        rate: u32,
        #[serde(default = "default_leak_limit")]
        limit: u32,
    },
    /// A GC-like pause: every `every`, one executor thread is blocked for
    /// `block`, so requests on it stall together.
    RuntimeStall { every: Millis, block: Millis },
    /// A connection leak: one pooled DB connection is taken and never given
    /// back every `every`, until the pool is exhausted.
    PoolLeak { every: Millis },
    /// The database does extra work per query (a missing index, a noisy
    /// neighbour's batch job): each query holds its connection `latency`
    /// longer.
    SlowQuery { latency: Millis },
    /// A hot mutex: affected requests take one process-wide lock and hold it
    /// for `hold`, so they are served one at a time.
    LockContention { hold: Millis },
    /// A slow or stopped queue consumer: each message waits `delay` before
    /// it is handled, so depth and oldest-message age grow.
    ConsumerStall { delay: Millis },
    /// The process crashes at start and again after each restart while the
    /// fault lasts: a crash loop.
    Crash {},
    /// A bad config push: while the fault lasts, every instance of the
    /// service runs with these values (per-peer `timeouts`, `retries`,
    /// `db` pool size, `rateLimits`, `flags`) laid over its config, at a
    /// new config version; when it ends, the values before it come back at
    /// another version. See [`ConfigPatch`] for the keys.
    ConfigPush(ConfigPatch),
    /// A cache flushed at the worst moment (a stray `FLUSHALL`, a cache node
    /// replaced): the cache service empties itself once when the fault
    /// starts, so every read misses and falls through to the database. With
    /// `ttl` ("bad TTL"), every entry stored while the fault lasts expires at
    /// the next multiple of `ttl`, all together, so the misses come back in
    /// waves instead of being spread out.
    CacheFlush {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<Millis>,
    },
    /// A poison message: a share (`toxicity`) of messages, picked by message
    /// id, reach the consumer in a shape it cannot read (ids as strings, as
    /// from a producer with a serialisation bug). The consumer fails the same
    /// message on every delivery until the broker dead-letters it.
    PoisonMessage {},
    /// Silent data corruption: a share (`toxicity`) of responses carry the
    /// numeric `field` (and `field_*`, e.g. `price_cents`) as 0. Status,
    /// spans and logs stay clean; only business metrics show it.
    DataCorruption {
        #[serde(default = "default_corrupted_field")]
        field: String,
    },
    /// A telemetry pipeline failure at the source: the process's OTLP
    /// exporters fail every export (spans, logs and metrics are dropped, not
    /// buffered), while the service keeps serving and `/metrics` keeps
    /// answering: gaps in telemetry, not in the service.
    TelemetryDrop {},
    /// A worker pool too small: at most `size` requests are handled at once
    /// and the rest wait in line (head-of-line blocking).
    WorkerPool { size: u32 },
    /// A load balancer misconfigured (bad weights): `percent` of the caller's
    /// calls to the peer go to `instance` instead of the least-loaded one.
    LbSkew {
        instance: String,
        #[serde(default = "default_skew_percent")]
        percent: u32,
    },
    /// A traffic spike (a sale, a bot, a retry storm upstream): the load
    /// generator sends `multiplier` times its traffic; with `hotKey`, every
    /// extra journey views that one product (a hot key); with `journey`,
    /// every extra journey is of that kind (`checkout`: a flash sale).
    TrafficSpike {
        multiplier: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hot_key: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        journey: Option<String>,
    },
    /// A dropped index (a bad migration, a DBA's cleanup): the index the
    /// service's hot query uses (or `index`) is really dropped from the
    /// database, so that query scans the table; it is recreated when the
    /// fault ends.
    DropIndex {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<String>,
    },
    /// A full disk under the database (a log flood or a runaway export
    /// filled the volume): the service's database file cannot grow, so
    /// every write that needs a new page fails with SQLite's "database or
    /// disk is full" (ENOSPC as the engine reports it), while reads and
    /// writes that fit in existing pages go on. Applied through SQLite's
    /// own limit (`PRAGMA max_page_count`, pinned at the file's size on
    /// the service's connections), so it acts in the real engine.
    DiskFull {},
}

fn default_stall_min() -> Millis {
    Millis(200)
}
fn default_stall_max() -> Millis {
    Millis(1000)
}
fn default_error_code() -> u16 {
    500
}
fn one() -> u32 {
    1
}
fn default_leak_rate() -> u32 {
    4
}
fn default_leak_limit() -> u32 {
    256
}
fn default_corrupted_field() -> String {
    "price".into()
}
fn default_skew_percent() -> u32 {
    90
}
/// Port 1 (tcpmux) has no listener on any machine the lab runs on: a
/// connection there is refused at once by the operating system.
fn default_stale_address() -> String {
    "127.0.0.1:1".into()
}
fn default_amplified_attempts() -> u32 {
    5
}
/// The most a log flood may write a second (rate × bytes).
const MAX_FLOOD_BYTES_PER_SECOND: u64 = 16 << 20;

fn default_flood_rate() -> u32 {
    2000
}
fn default_flood_bytes() -> u32 {
    512
}

/// Where a fault acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// On requests a process serves (optionally one route).
    Inbound,
    /// On calls from `service` to a peer service (a link).
    Link,
    /// On a service's use of a dependency: `db` or `queue-consumer`.
    Dependency,
    /// On the whole process.
    Process,
}

impl FaultKind {
    /// The kind's name as written in requests and scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Latency { .. } => "latency",
            FaultKind::Stall { .. } => "stall",
            FaultKind::Bandwidth { .. } => "bandwidth",
            FaultKind::Errors { .. } => "errors",
            FaultKind::Hang {} => "hang",
            FaultKind::Reset {} => "reset",
            FaultKind::Partition { .. } => "partition",
            FaultKind::DnsFailure {} => "dns-failure",
            FaultKind::DnsStale { .. } => "dns-stale",
            FaultKind::RetryAmplification { .. } => "retry-amplification",
            FaultKind::CertExpiry {} => "cert-expiry",
            FaultKind::ClockSkew { .. } => "clock-skew",
            FaultKind::CpuBurn { .. } => "cpu-burn",
            FaultKind::LogFlood { .. } => "log-flood",
            FaultKind::MemoryLeak { .. } => "memory-leak",
            FaultKind::RuntimeStall { .. } => "runtime-stall",
            FaultKind::PoolLeak { .. } => "pool-leak",
            FaultKind::SlowQuery { .. } => "slow-query",
            FaultKind::LockContention { .. } => "lock-contention",
            FaultKind::ConsumerStall { .. } => "consumer-stall",
            FaultKind::Crash {} => "crash",
            FaultKind::ConfigPush(_) => "config-push",
            FaultKind::CacheFlush { .. } => "cache-flush",
            FaultKind::PoisonMessage {} => "poison-message",
            FaultKind::DataCorruption { .. } => "data-corruption",
            FaultKind::TelemetryDrop {} => "telemetry-drop",
            FaultKind::WorkerPool { .. } => "worker-pool",
            FaultKind::LbSkew { .. } => "lb-skew",
            FaultKind::TrafficSpike { .. } => "traffic-spike",
            FaultKind::DropIndex { .. } => "drop-index",
            FaultKind::DiskFull {} => "disk-full",
        }
    }

    /// The scopes this kind can act in.
    pub fn scopes(&self) -> &'static [Scope] {
        use Scope::*;
        match self {
            FaultKind::Latency { .. } | FaultKind::Stall { .. } | FaultKind::Errors { .. } => {
                &[Inbound, Link]
            }
            FaultKind::Hang {} => &[Inbound, Link],
            FaultKind::LockContention { .. }
            | FaultKind::DataCorruption { .. }
            | FaultKind::WorkerPool { .. } => &[Inbound],
            FaultKind::Bandwidth { .. }
            | FaultKind::Reset {}
            | FaultKind::Partition { .. }
            | FaultKind::DnsFailure {}
            | FaultKind::DnsStale { .. }
            | FaultKind::RetryAmplification { .. }
            | FaultKind::CertExpiry {}
            | FaultKind::LbSkew { .. } => &[Link],
            FaultKind::PoolLeak { .. }
            | FaultKind::SlowQuery { .. }
            | FaultKind::DropIndex { .. }
            | FaultKind::DiskFull {} => &[Dependency],
            FaultKind::ConsumerStall { .. } | FaultKind::PoisonMessage {} => &[Dependency],
            FaultKind::ClockSkew { .. }
            | FaultKind::CpuBurn { .. }
            | FaultKind::LogFlood { .. }
            | FaultKind::MemoryLeak { .. }
            | FaultKind::RuntimeStall { .. }
            | FaultKind::Crash {}
            | FaultKind::ConfigPush(_)
            | FaultKind::CacheFlush { .. }
            | FaultKind::TelemetryDrop {}
            | FaultKind::TrafficSpike { .. } => &[Process],
        }
    }

    /// Which dependency a dependency-scoped kind acts on.
    fn dependency(&self) -> Option<&'static str> {
        match self {
            FaultKind::PoolLeak { .. }
            | FaultKind::SlowQuery { .. }
            | FaultKind::DropIndex { .. }
            | FaultKind::DiskFull {} => Some("db"),
            FaultKind::ConsumerStall { .. } | FaultKind::PoisonMessage {} => Some("queue-consumer"),
            _ => None,
        }
    }

    /// The one process a kind that acts on a particular component's own
    /// mechanism can target.
    fn only_service(&self) -> Option<&'static str> {
        match self {
            FaultKind::CacheFlush { .. } => Some("cache"),
            FaultKind::TrafficSpike { .. } => Some(LOAD_GENERATOR),
            _ => None,
        }
    }

    /// Checks parameter ranges; the message names the parameter.
    pub fn validate(&self) -> Result<(), String> {
        let max = Millis(10 * 60 * 1000);
        let check = |name: &str, v: Millis| {
            if v > max {
                Err(format!("{name} must be at most 10m, got {}ms", v.0))
            } else {
                Ok(())
            }
        };
        match self {
            FaultKind::Latency { latency, jitter } => {
                check("latency", *latency)?;
                check("jitter", *jitter)
            }
            FaultKind::Stall { min, max: hi } => {
                check("max", *hi)?;
                if min > hi {
                    return Err(format!(
                        "min ({}ms) must not exceed max ({}ms)",
                        min.0, hi.0
                    ));
                }
                Ok(())
            }
            FaultKind::Bandwidth { rate } if *rate == 0 => {
                Err("rate must be at least 1 byte per second".into())
            }
            FaultKind::Errors { code } if !(400..=599).contains(code) => Err(format!(
                "code must be an HTTP error status 400..599, got {code}"
            )),
            FaultKind::ClockSkew { time_offset } if time_offset.0.unsigned_abs() > 86_400_000 => {
                Err("timeOffset must be within ±24h".into())
            }
            FaultKind::LogFlood { rate, bytes } => {
                if !(1..=100_000).contains(rate) {
                    return Err(format!("rate must be 1..100000 records/s, got {rate}"));
                }
                if !(16..=65_536).contains(bytes) {
                    return Err(format!("bytes must be 16..65536, got {bytes}"));
                }
                // Past this, a lab on a laptop fills its disk in minutes.
                let per_second = u64::from(*rate) * u64::from(*bytes);
                if per_second > MAX_FLOOD_BYTES_PER_SECOND {
                    return Err(format!(
                        "rate × bytes must be at most 16 MiB/s, got {} MiB/s",
                        per_second >> 20
                    ));
                }
                Ok(())
            }
            FaultKind::CpuBurn { threads } if !(1..=8).contains(threads) => {
                Err(format!("threads must be 1..8, got {threads}"))
            }
            FaultKind::MemoryLeak { rate, limit } if *rate == 0 || *limit < 32 => Err(format!(
                "rate must be ≥ 1 MiB/s and limit ≥ 32 MiB, got rate {rate}, limit {limit}"
            )),
            FaultKind::RuntimeStall { every, block } => {
                check("block", *block)?;
                if every.0 < 100 || block >= every {
                    return Err("every must be ≥ 100ms and longer than block".into());
                }
                Ok(())
            }
            FaultKind::PoolLeak { every } if every.0 < 10 => {
                Err("every must be at least 10ms".into())
            }
            FaultKind::SlowQuery { latency } => check("latency", *latency),
            FaultKind::LockContention { hold } => check("hold", *hold),
            FaultKind::ConsumerStall { delay } => check("delay", *delay),
            FaultKind::ConfigPush(values) if values.is_empty() => Err(
                "a config-push needs values to push: timeouts, retries, db, rateLimits or flags"
                    .into(),
            ),
            FaultKind::ConfigPush(values) => values.validate(),
            FaultKind::CacheFlush { ttl: Some(ttl) } => {
                if ttl.0 < 100 {
                    return Err(format!("ttl must be at least 100ms, got {}ms", ttl.0));
                }
                check("ttl", *ttl)
            }
            FaultKind::DataCorruption { field } if !is_identifier(field) => Err(format!(
                "field must be a JSON field name such as price (letters, digits, _), got {field:?}"
            )),
            FaultKind::WorkerPool { size } if !(1..=1024).contains(size) => {
                Err(format!("size must be 1..1024, got {size}"))
            }
            FaultKind::DnsStale { address } => match address.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty()
                        && host.len() <= 253
                        && host
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
                        && port.parse::<u16>().is_ok_and(|p| p > 0) =>
                {
                    Ok(())
                }
                _ => Err(format!(
                    "address must be host:port, e.g. 127.0.0.1:1 or 10.0.3.7:8080, got {address:?}"
                )),
            },
            FaultKind::RetryAmplification { attempts } if !(1..=20).contains(attempts) => {
                Err(format!("attempts must be 1..20, got {attempts}"))
            }
            FaultKind::LbSkew { percent, .. } if *percent > 100 => {
                Err(format!("percent must be 0..100, got {percent}"))
            }
            FaultKind::TrafficSpike {
                multiplier,
                hot_key,
                journey,
            } => {
                if !(multiplier.is_finite() && *multiplier > 1.0 && *multiplier <= 50.0) {
                    return Err(format!(
                        "multiplier must be more than 1 and at most 50, got {multiplier}"
                    ));
                }
                if let Some(journey) = journey {
                    if !JOURNEYS.contains(&journey.as_str()) {
                        return Err(format!(
                            "journey must be one of {}, got {journey:?}",
                            JOURNEYS.join(", ")
                        ));
                    }
                    if hot_key.is_some() {
                        return Err(
                            "give hotKey (every extra journey views one product) or journey, not both"
                                .into(),
                        );
                    }
                }
                match hot_key {
                    Some(id) if *id < 1 => {
                        Err(format!("hotKey must be a product id (1 or more), got {id}"))
                    }
                    _ => Ok(()),
                }
            }
            FaultKind::DropIndex { index: Some(index) } if !is_identifier(index) => Err(format!(
                "index must be an index name (letters, digits, _), got {index:?}"
            )),
            _ => Ok(()),
        }
    }
}

/// A plain SQL/JSON name: 1..64 of `[A-Za-z0-9_]`, not starting with a digit.
fn is_identifier(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What a fault is aimed at: a service, optionally narrowed to an instance,
/// a version and a route, or a link from the service to a peer or
/// dependency.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The service whose process applies the fault (the caller, for a link).
    pub service: String,
    /// One instance, e.g. `payment-2`; `None` means every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Only processes running this `service.version` (a defect that ships
    /// with a deploy); `None` means every version. A rollback makes such a
    /// fault select nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// One route template, e.g. `/products/{id}`; `None` means every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// For a link: the callee service, or a dependency (`db`,
    /// `queue-consumer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

impl Target {
    /// Parses the CLI shorthand: `catalog`, `payment-2` (one instance),
    /// `gateway->catalog` (a link) or `catalog->db` (a dependency). A
    /// `@version` after the service or instance narrows any of them to the
    /// processes running that version: `catalog@2.4.0`,
    /// `catalog-2@2.4.0`, `catalog@2.4.0->db`.
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        if let Some((from, to)) = text.split_once("->") {
            let mut target = Target::parse(from)?;
            target.peer = Some(to.trim().to_string());
            target.check()?;
            return Ok(target);
        }
        if let Some((process, version)) = text.split_once('@') {
            let mut target = Target::parse(process)?;
            target.version = Some(version.trim().to_string());
            target.check()?;
            return Ok(target);
        }
        let target = if is_process(text) {
            Target {
                service: text.to_string(),
                ..Target::default()
            }
        } else {
            match text.rsplit_once('-') {
                Some((service, n)) if is_process(service) && n.parse::<u32>().is_ok() => Target {
                    service: service.to_string(),
                    instance: Some(text.to_string()),
                    ..Target::default()
                },
                _ => return Err(unknown_service(text)),
            }
        };
        target.check()?;
        Ok(target)
    }

    /// Checks names against the lab's services and dependencies.
    pub fn check(&self) -> Result<(), String> {
        if !is_process(&self.service) {
            return Err(unknown_service(&self.service));
        }
        if let Some(instance) = &self.instance {
            let ok = instance
                .strip_prefix(self.service.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1));
            if !ok {
                return Err(format!(
                    "instance {instance:?} is not an instance of {} (expected {}-<n>)",
                    self.service, self.service
                ));
            }
        }
        if let Some(version) = &self.version {
            check_version(version)?;
        }
        if let Some(route) = &self.route
            && !route.starts_with('/')
        {
            return Err(format!("route {route:?} must start with '/'"));
        }
        if let Some(peer) = &self.peer
            && peer.contains('@')
        {
            return Err(format!(
                "link target {peer:?} has a version; a version narrows the caller: write {}@<version>->{}",
                self.instance.as_deref().unwrap_or(&self.service),
                peer.split('@').next().unwrap_or_default()
            ));
        }
        if let Some(peer) = &self.peer
            && !SERVICES.contains(&peer.as_str())
            && !DEPENDENCIES.contains(&peer.as_str())
        {
            return Err(format!(
                "link target {peer:?} is neither a service nor a dependency ({})",
                DEPENDENCIES.join(", ")
            ));
        }
        Ok(())
    }

    pub fn scope(&self) -> Scope {
        match &self.peer {
            Some(p) if DEPENDENCIES.contains(&p.as_str()) => Scope::Dependency,
            Some(_) => Scope::Link,
            None => Scope::Inbound,
        }
    }

    /// Whether the process `service`/`instance` applies faults aimed here,
    /// its version unknown: a version-qualified target selects nobody
    /// (use [`Target::selects_running`] when the version is known).
    pub fn selects(&self, service: &str, instance: &str) -> bool {
        self.selects_running(service, instance, None)
    }

    /// Whether the process `service`/`instance`, running `version` (if
    /// known), applies faults aimed here.
    pub fn selects_running(&self, service: &str, instance: &str, version: Option<&str>) -> bool {
        self.service == service
            && self.instance.as_deref().is_none_or(|i| i == instance)
            && self
                .version
                .as_deref()
                .is_none_or(|wanted| version == Some(wanted))
    }
}

/// Checks a `service.version` as targets and deploys spell it: 1..=64
/// characters of letters, digits and `.`, `_`, `+`, `-` (semver and build
/// tags fit; spaces, `@` and `>` do not, so the shorthand stays parseable).
pub fn check_version(version: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&version.len())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "version {version:?} must be 1..64 letters, digits, '.', '_', '+' or '-' (e.g. 2.4.0)"
        ))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.instance.as_deref().unwrap_or(&self.service))?;
        if let Some(version) = &self.version {
            write!(f, "@{version}")?;
        }
        if let Some(peer) = &self.peer {
            write!(f, "->{peer}")?;
        }
        if let Some(route) = &self.route {
            write!(f, " {route}")?;
        }
        Ok(())
    }
}

/// Whether `name` is a process kind that runs a fault agent: a service or
/// the load generator.
fn is_process(name: &str) -> bool {
    SERVICES.contains(&name) || name == LOAD_GENERATOR
}

fn unknown_service(name: &str) -> String {
    format!(
        "unknown service {name:?}; services are: {} (and {LOAD_GENERATOR}, for process faults)",
        SERVICES.join(", ")
    )
}

/// A fault as requested: kind and parameters, target, probability.
///
/// Unknown keys are rejected by [`FaultKind`], which receives every key not
/// named here (serde cannot combine `deny_unknown_fields` with `flatten`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    #[serde(flatten)]
    pub kind: FaultKind,
    pub target: Target,
    /// Probability (0..1) that the fault applies to a given request.
    #[serde(default = "full")]
    pub toxicity: f64,
}

fn full() -> f64 {
    1.0
}

impl FaultSpec {
    /// Checks that kind, target and toxicity make sense together.
    pub fn validate(&self) -> Result<(), String> {
        self.target.check()?;
        self.kind.validate()?;
        if !(0.0..=1.0).contains(&self.toxicity) || self.toxicity.is_nan() {
            return Err(format!(
                "toxicity must be within 0..1, got {}",
                self.toxicity
            ));
        }
        let scope = match (self.kind.scopes(), self.target.scope()) {
            ([Scope::Process], Scope::Inbound) => Scope::Process,
            (_, scope) => scope,
        };
        if !self.kind.scopes().contains(&scope) {
            let wanted = match self.kind.scopes()[0] {
                Scope::Inbound => "a service, instance or route",
                Scope::Link => "a link such as gateway->catalog",
                Scope::Dependency => "a dependency such as catalog->db",
                Scope::Process => "a service or instance (not a link)",
            };
            return Err(format!(
                "a {} fault cannot target {}; it needs {wanted}",
                self.kind.name(),
                self.target
            ));
        }
        if let (Some(dep), Some(peer)) = (self.kind.dependency(), &self.target.peer)
            && dep != peer
        {
            return Err(format!(
                "a {} fault acts on {dep}, not {peer}",
                self.kind.name()
            ));
        }
        if scope == Scope::Process && self.target.route.is_some() {
            return Err(format!(
                "a {} fault acts on the whole process; drop the route",
                self.kind.name()
            ));
        }
        if let FaultKind::ConfigPush(_) = self.kind {
            // A service has one config: a push reaches all its instances.
            if let Some(instance) = &self.target.instance {
                return Err(format!(
                    "a config-push changes the config of every instance of {}; target the service, not {instance:?}",
                    self.target.service
                ));
            }
            if self.toxicity != 1.0 {
                return Err(
                    "a config-push changes the config of every request; drop toxicity".into(),
                );
            }
        }
        if self.target.service == LOAD_GENERATOR && scope != Scope::Process {
            return Err(format!(
                "{LOAD_GENERATOR} serves no shop routes and calls no peers through the runtime; a {} fault cannot target it",
                self.kind.name()
            ));
        }
        if let Some(only) = self.kind.only_service()
            && only != self.target.service
        {
            return Err(format!(
                "a {} fault acts on {only}, not {}",
                self.kind.name(),
                self.target.service
            ));
        }
        if self.kind.dependency() == Some("queue-consumer")
            && !QUEUE_CONSUMERS.contains(&self.target.service.as_str())
        {
            return Err(format!(
                "{} consumes no queue; queue consumers are {}",
                self.target.service,
                QUEUE_CONSUMERS.join(", ")
            ));
        }
        if let FaultKind::LbSkew { instance, .. } = &self.kind {
            let peer = self.target.peer.as_deref().unwrap_or_default();
            let of_peer = instance
                .strip_prefix(peer)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1));
            if !of_peer {
                return Err(format!(
                    "instance {instance:?} is not an instance of {peer} (expected {peer}-<n>)"
                ));
            }
            if self.target.route.is_some() {
                return Err(
                    "an lb-skew fault acts on the balancer of the whole link; drop the route"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

/// An active fault as the controller hands it to agents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedFault {
    pub id: String,
    pub spec: FaultSpec,
    /// Milliseconds left until the fault expires, as of the response.
    pub remaining_ms: u64,
}

/// The controller's answer to an agent's poll.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// How long the agent may keep applying these faults without hearing
    /// from the controller again.
    pub lease_ms: u64,
    pub faults: Vec<AssignedFault>,
    /// The service's live config, held for the same lease. (Config pushes
    /// reach the agent here, never in `faults`.) Absent: version 0.
    #[serde(default)]
    pub config: ConfigVersion,
    /// Instances (`payment-2`) every caller leaves out of rotation, held for
    /// the same lease.
    #[serde(default)]
    pub drained: std::collections::BTreeSet<String>,
    /// Where the instances of each scaled service listen (`catalog` →
    /// `catalog-1`..`catalog-3`): callers put exactly these in rotation,
    /// and keep them past the lease (they are where processes run, not a
    /// fault). A service never scaled is absent, and
    /// callers keep the instances their `--peers` name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub endpoints: std::collections::BTreeMap<String, Vec<Endpoint>>,
}

/// One instance of a service and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `catalog-3`.
    pub id: String,
    /// `http://127.0.0.1:7131`.
    pub url: String,
}

#[cfg(test)]
mod tests {

    use super::*;

    fn spec(json: &str) -> Result<FaultSpec, String> {
        let spec: FaultSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        spec.validate()?;
        Ok(spec)
    }

    #[test]
    fn durations_accept_numbers_and_text() {
        let s = spec(
            r#"{"kind":"latency","latency":"300ms","jitter":50,"target":{"service":"catalog"}}"#,
        )
        .unwrap();
        assert_eq!(
            s.kind,
            FaultKind::Latency {
                latency: Millis(300),
                jitter: Millis(50)
            }
        );
        assert_eq!(s.toxicity, 1.0);
        let s = spec(r#"{"kind":"clock-skew","timeOffset":"-90s","target":{"service":"auth","instance":"auth-2"}}"#).unwrap();
        assert_eq!(
            s.kind,
            FaultKind::ClockSkew {
                time_offset: Offset(-90_000)
            }
        );
    }

    #[test]
    fn round_trips_through_json() {
        let s = spec(r#"{"kind":"errors","code":503,"toxicity":0.25,"target":{"service":"payment","route":"/charges"}}"#).unwrap();
        let back: FaultSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (json, needle) in [
            (
                r#"{"kind":"latency","latency":"fast","target":{"service":"catalog"}}"#,
                "not a duration",
            ),
            (
                r#"{"kind":"explode","target":{"service":"catalog"}}"#,
                "unknown variant",
            ),
            (
                r#"{"kind":"latency","latency":5,"target":{"service":"nope"}}"#,
                "unknown service",
            ),
            (
                r#"{"kind":"latency","latency":5,"toxicity":2,"target":{"service":"catalog"}}"#,
                "toxicity",
            ),
            (
                r#"{"kind":"errors","code":200,"target":{"service":"catalog"}}"#,
                "code",
            ),
            (
                r#"{"kind":"reset","target":{"service":"catalog"}}"#,
                "needs a link",
            ),
            (
                r#"{"kind":"cpu-burn","target":{"service":"gateway","peer":"catalog"}}"#,
                "not a link",
            ),
            (
                r#"{"kind":"slow-query","latency":5,"target":{"service":"catalog","peer":"queue-consumer"}}"#,
                "acts on db",
            ),
            (
                r#"{"kind":"latency","latency":5,"lag":1,"target":{"service":"catalog"}}"#,
                "unknown field",
            ),
            (
                r#"{"kind":"latency","latency":5,"target":{"service":"catalog","instance":"cart-1"}}"#,
                "not an instance",
            ),
        ] {
            let err = spec(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn new_kinds_parse_with_their_defaults() {
        let s = spec(r#"{"kind":"cache-flush","target":{"service":"cache"}}"#).unwrap();
        assert_eq!(s.kind, FaultKind::CacheFlush { ttl: None });
        let s = spec(r#"{"kind":"cache-flush","ttl":"5s","target":{"service":"cache"}}"#).unwrap();
        assert_eq!(
            s.kind,
            FaultKind::CacheFlush {
                ttl: Some(Millis(5000))
            }
        );
        let s = spec(r#"{"kind":"data-corruption","toxicity":0.2,"target":{"service":"catalog"}}"#)
            .unwrap();
        assert_eq!(
            s.kind,
            FaultKind::DataCorruption {
                field: "price".into()
            }
        );
        let s = spec(r#"{"kind":"lb-skew","instance":"payment-1","target":{"service":"checkout","peer":"payment"}}"#).unwrap();
        assert_eq!(
            s.kind,
            FaultKind::LbSkew {
                instance: "payment-1".into(),
                percent: 90
            }
        );
        let s = spec(
            r#"{"kind":"traffic-spike","multiplier":4,"hotKey":42,"target":{"service":"loadgen"}}"#,
        )
        .unwrap();
        assert_eq!(
            s.kind,
            FaultKind::TrafficSpike {
                multiplier: 4.0,
                hot_key: Some(42),
                journey: None,
            }
        );
        let back: FaultSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let s = spec(r#"{"kind":"dns-stale","target":{"service":"checkout","peer":"shipping"}}"#)
            .unwrap();
        assert_eq!(
            s.kind,
            FaultKind::DnsStale {
                address: "127.0.0.1:1".into()
            }
        );
        let s = spec(
            r#"{"kind":"retry-amplification","target":{"service":"checkout","peer":"payment"}}"#,
        )
        .unwrap();
        assert_eq!(s.kind, FaultKind::RetryAmplification { attempts: 5 });
        let s = spec(r#"{"kind":"log-flood","target":{"service":"notification"}}"#).unwrap();
        assert_eq!(
            s.kind,
            FaultKind::LogFlood {
                rate: 2000,
                bytes: 512
            }
        );
        for json in [
            r#"{"kind":"dns-stale","address":"10.0.3.7:8080","target":{"service":"checkout","peer":"shipping"}}"#,
            r#"{"kind":"dns-stale","address":"shipping-old.shop.svc:80","target":{"service":"checkout","peer":"shipping"}}"#,
            r#"{"kind":"retry-amplification","attempts":20,"target":{"service":"gateway","peer":"catalog","route":"/products"}}"#,
            r#"{"kind":"poison-message","toxicity":0.1,"target":{"service":"projector","peer":"queue-consumer"}}"#,
            r#"{"kind":"telemetry-drop","target":{"service":"payment","instance":"payment-2"}}"#,
            r#"{"kind":"telemetry-drop","target":{"service":"loadgen"}}"#,
            r#"{"kind":"worker-pool","size":2,"target":{"service":"catalog","route":"/products"}}"#,
            r#"{"kind":"drop-index","target":{"service":"catalog","peer":"db"}}"#,
            r#"{"kind":"drop-index","index":"products_category","target":{"service":"catalog","peer":"db"}}"#,
        ] {
            let s = spec(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            let back: FaultSpec =
                serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn new_kinds_refuse_the_wrong_target_or_range() {
        for (json, needle) in [
            (
                r#"{"kind":"cache-flush","target":{"service":"catalog"}}"#,
                "acts on cache",
            ),
            (
                r#"{"kind":"cache-flush","ttl":5,"target":{"service":"cache"}}"#,
                "ttl",
            ),
            (
                r#"{"kind":"poison-message","target":{"service":"cart","peer":"queue-consumer"}}"#,
                "consumes no queue",
            ),
            (
                r#"{"kind":"poison-message","target":{"service":"projector","peer":"db"}}"#,
                "acts on queue-consumer",
            ),
            (
                r#"{"kind":"data-corruption","field":"price cents","target":{"service":"catalog"}}"#,
                "field",
            ),
            (
                r#"{"kind":"worker-pool","size":0,"target":{"service":"catalog"}}"#,
                "size",
            ),
            (
                r#"{"kind":"worker-pool","size":2,"target":{"service":"gateway","peer":"catalog"}}"#,
                "needs a service",
            ),
            (
                r#"{"kind":"lb-skew","instance":"payment-1","percent":101,"target":{"service":"checkout","peer":"payment"}}"#,
                "percent",
            ),
            (
                r#"{"kind":"lb-skew","instance":"catalog-1","target":{"service":"checkout","peer":"payment"}}"#,
                "not an instance of payment",
            ),
            (
                r#"{"kind":"lb-skew","instance":"payment-1","target":{"service":"checkout","peer":"payment","route":"/payments"}}"#,
                "drop the route",
            ),
            (
                r#"{"kind":"traffic-spike","multiplier":4,"target":{"service":"gateway"}}"#,
                "acts on loadgen",
            ),
            (
                r#"{"kind":"traffic-spike","multiplier":0.5,"target":{"service":"loadgen"}}"#,
                "multiplier",
            ),
            (
                r#"{"kind":"traffic-spike","multiplier":2,"journey":"buy","target":{"service":"loadgen"}}"#,
                "journey must be one of",
            ),
            (
                r#"{"kind":"traffic-spike","multiplier":2,"journey":"checkout","hotKey":3,"target":{"service":"loadgen"}}"#,
                "not both",
            ),
            (
                r#"{"kind":"traffic-spike","multiplier":2,"hotKey":0,"target":{"service":"loadgen"}}"#,
                "hotKey",
            ),
            (
                r#"{"kind":"latency","latency":5,"target":{"service":"loadgen"}}"#,
                "cannot target it",
            ),
            (
                r#"{"kind":"drop-index","index":"x; DROP TABLE products","target":{"service":"catalog","peer":"db"}}"#,
                "index",
            ),
            (
                r#"{"kind":"telemetry-drop","target":{"service":"catalog","route":"/products"}}"#,
                "drop the route",
            ),
            (
                r#"{"kind":"dns-stale","address":"shipping","target":{"service":"checkout","peer":"shipping"}}"#,
                "address must be host:port",
            ),
            (
                r#"{"kind":"dns-stale","address":"10.0.0.1:0","target":{"service":"checkout","peer":"shipping"}}"#,
                "address must be host:port",
            ),
            (
                r#"{"kind":"dns-stale","address":"a b:80","target":{"service":"checkout","peer":"shipping"}}"#,
                "address must be host:port",
            ),
            (
                r#"{"kind":"dns-stale","target":{"service":"checkout"}}"#,
                "link",
            ),
            (
                r#"{"kind":"log-flood","rate":0,"target":{"service":"notification"}}"#,
                "rate must be 1..100000",
            ),
            (
                r#"{"kind":"log-flood","bytes":8,"target":{"service":"notification"}}"#,
                "bytes must be 16..65536",
            ),
            (
                r#"{"kind":"log-flood","rate":100000,"bytes":65536,"target":{"service":"notification"}}"#,
                "at most 16 MiB/s, got 6250 MiB/s",
            ),
            (
                r#"{"kind":"log-flood","target":{"service":"notification","peer":"db"}}"#,
                "needs a service or instance",
            ),
            (
                r#"{"kind":"retry-amplification","attempts":0,"target":{"service":"checkout","peer":"payment"}}"#,
                "attempts must be 1..20",
            ),
            (
                r#"{"kind":"retry-amplification","attempts":21,"target":{"service":"checkout","peer":"payment"}}"#,
                "attempts must be 1..20",
            ),
        ] {
            let err = spec(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn the_load_generator_is_a_target_but_not_a_peer() {
        let t = Target::parse("loadgen").unwrap();
        assert_eq!((t.service.as_str(), t.scope()), ("loadgen", Scope::Inbound));
        assert_eq!(
            Target::parse("loadgen-1").unwrap().instance.as_deref(),
            Some("loadgen-1")
        );
        assert!(
            Target::parse("gateway->loadgen")
                .unwrap_err()
                .contains("neither")
        );
        assert!(Target::parse("loadgenerator").is_err());
    }

    #[test]
    fn target_shorthand() {
        assert_eq!(Target::parse("catalog").unwrap().scope(), Scope::Inbound);
        let t = Target::parse("payment-2").unwrap();
        assert_eq!(
            (t.service.as_str(), t.instance.as_deref()),
            ("payment", Some("payment-2"))
        );
        let t = Target::parse("gateway->catalog").unwrap();
        assert_eq!(t.scope(), Scope::Link);
        assert_eq!(t.to_string(), "gateway->catalog");
        assert_eq!(
            Target::parse("catalog->db").unwrap().scope(),
            Scope::Dependency
        );
        assert!(
            Target::parse("warehouse")
                .unwrap_err()
                .contains("unknown service")
        );
        assert!(
            Target::parse("gateway->moon")
                .unwrap_err()
                .contains("neither")
        );
        assert!(t.selects("gateway", "gateway-1"));
        let one = Target::parse("payment-2").unwrap();
        assert!(one.selects("payment", "payment-2") && !one.selects("payment", "payment-1"));
    }

    #[test]
    fn version_targets_select_only_processes_running_that_version() {
        let t = Target::parse("catalog@2.4.0").unwrap();
        assert_eq!(
            (
                t.service.as_str(),
                t.instance.as_deref(),
                t.version.as_deref()
            ),
            ("catalog", None, Some("2.4.0"))
        );
        assert_eq!(t.scope(), Scope::Inbound);
        assert!(t.selects_running("catalog", "catalog-1", Some("2.4.0")));
        assert!(!t.selects_running("catalog", "catalog-1", Some("0.1.0")));
        assert!(!t.selects_running("catalog", "catalog-1", None));
        assert!(!t.selects("catalog", "catalog-1"), "version unknown");
        assert!(!t.selects_running("search", "search-1", Some("2.4.0")));

        let t = Target::parse("catalog-2@2.4.0-rc.1+b7->db").unwrap();
        assert_eq!(t.instance.as_deref(), Some("catalog-2"));
        assert_eq!(t.version.as_deref(), Some("2.4.0-rc.1+b7"));
        assert_eq!(t.scope(), Scope::Dependency);
        assert_eq!(t.to_string(), "catalog-2@2.4.0-rc.1+b7->db");
        assert_eq!(Target::parse(&t.to_string()).unwrap(), t);
        assert!(!t.selects_running("catalog", "catalog-1", Some("2.4.0-rc.1+b7")));

        // Unversioned targets select every version, known or not.
        let any = Target::parse("catalog").unwrap();
        assert!(any.selects_running("catalog", "catalog-1", Some("9.9.9")));
        assert!(any.selects_running("catalog", "catalog-1", None));

        assert!(
            Target::parse("catalog->db@2.4.0")
                .unwrap_err()
                .contains("catalog@<version>->db")
        );
        for bad in ["catalog@", "catalog@2 4", "catalog@a@b", "warehouse@1.0"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Target::parse("catalog@")
                .unwrap_err()
                .contains("version \"\"")
        );
        let json: Target =
            serde_json::from_str(r#"{"service":"catalog","version":"2.4.0"}"#).unwrap();
        assert_eq!(json, Target::parse("catalog@2.4.0").unwrap());
        let bad: Target = serde_json::from_str(r#"{"service":"catalog","version":"x y"}"#).unwrap();
        assert!(bad.check().is_err());
    }

    #[test]
    fn a_config_push_carries_checked_values_for_a_whole_service() {
        let s = spec(
            r#"{"kind":"config-push","timeouts":{"payment":"1ms"},"retries":{"count":0},"target":{"service":"checkout"}}"#,
        )
        .unwrap();
        let FaultKind::ConfigPush(values) = &s.kind else {
            panic!("{s:?}")
        };
        assert_eq!(values.timeouts["payment"], Millis(1));
        assert_eq!(s.kind.name(), "config-push");
        let back: FaultSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        for (json, needle) in [
            (
                r#"{"kind":"config-push","target":{"service":"checkout"}}"#,
                "needs values",
            ),
            (
                r#"{"kind":"config-push","timeout":{"payment":5},"target":{"service":"checkout"}}"#,
                "unknown field `timeout`",
            ),
            (
                r#"{"kind":"config-push","retries":{"cuont":1},"target":{"service":"checkout"}}"#,
                "unknown field `cuont`",
            ),
            (
                r#"{"kind":"config-push","timeouts":{"payment":0},"target":{"service":"checkout"}}"#,
                "between 1ms and 60s",
            ),
            (
                r#"{"kind":"config-push","flags":{"x":1},"target":{"service":"checkout","instance":"checkout-1"}}"#,
                "target the service, not \"checkout-1\"",
            ),
            (
                r#"{"kind":"config-push","flags":{"x":1},"target":{"service":"checkout","peer":"payment"}}"#,
                "not a link",
            ),
            (
                r#"{"kind":"config-push","flags":{"x":1},"toxicity":0.5,"target":{"service":"checkout"}}"#,
                "drop toxicity",
            ),
        ] {
            let err = spec(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}
