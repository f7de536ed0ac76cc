//! The fault kinds and their parameters as one table: the names, types,
//! units, defaults and ranges that scenario files, the API, `firedrill
//! fault inject KIND ... KEY=VALUE` and docs/faults.md all use.
//!
//! The table describes [`FaultKind`](super::model::FaultKind), which stays
//! the one definition of how a kind is read and checked; tests hold the two
//! together: every kind serde knows is here, every parameter here is one
//! the kind accepts, and every default here is what the kind fills in.

use serde_json::{Value, json};

/// What a parameter's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// Milliseconds, or text such as `300ms`, `2s`, `1m`.
    Duration,
    /// A signed duration (`-90s`).
    Offset,
    Integer,
    Number,
    Text,
    /// One of the listed words.
    OneOf(&'static [&'static str]),
    /// Live config keys (`timeouts.payment=20ms`), as `ops config-set`
    /// takes them.
    Config,
}

/// One parameter of a kind.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// As requests and scenario files spell it (`timeOffset`).
    pub name: &'static str,
    pub ty: Type,
    /// What a bare number means (`MiB`, `records/s`); empty when the type
    /// says it all.
    pub unit: &'static str,
    /// The value when the parameter is left out; `None` when it must be
    /// given.
    pub default: Option<&'static str>,
    /// The values accepted, in words.
    pub range: &'static str,
    /// What it does, by the failure it simulates.
    pub meaning: &'static str,
}

/// One kind: where it acts and what it takes.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    pub name: &'static str,
    /// The targets it takes, in words.
    pub scope: &'static str,
    pub params: &'static [Param],
}

const fn p(
    name: &'static str,
    ty: Type,
    unit: &'static str,
    default: Option<&'static str>,
    range: &'static str,
    meaning: &'static str,
) -> Param {
    Param {
        name,
        ty,
        unit,
        default,
        range,
        meaning,
    }
}

const SERVICE_OR_LINK: &str = "service, instance, route, or link";
const LINK: &str = "link (`gateway->catalog`)";
const PROCESS: &str = "process (service or instance)";
const DB: &str = "`<service>->db`";
const CONSUMER: &str = "`notification|projector->queue-consumer`";

/// Every kind, in the order docs/faults.md lists them.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "latency",
        scope: SERVICE_OR_LINK,
        params: &[
            p(
                "latency",
                Type::Duration,
                "",
                None,
                "≤ 10m",
                "added to every affected request",
            ),
            p(
                "jitter",
                Type::Duration,
                "",
                Some("0ms"),
                "≤ 10m",
                "± random spread around latency",
            ),
        ],
    },
    Kind {
        name: "stall",
        scope: SERVICE_OR_LINK,
        params: &[
            p(
                "min",
                Type::Duration,
                "",
                Some("200ms"),
                "≤ max",
                "shortest retransmission-timeout stall",
            ),
            p(
                "max",
                Type::Duration,
                "",
                Some("1000ms"),
                "≤ 10m",
                "longest stall",
            ),
        ],
    },
    Kind {
        name: "bandwidth",
        scope: LINK,
        params: &[p(
            "rate",
            Type::Integer,
            "bytes/s",
            None,
            "≥ 1",
            "how fast response bytes trickle",
        )],
    },
    Kind {
        name: "errors",
        scope: SERVICE_OR_LINK,
        params: &[p(
            "code",
            Type::Integer,
            "HTTP status",
            Some("500"),
            "400..599",
            "the status answered",
        )],
    },
    Kind {
        name: "hang",
        scope: SERVICE_OR_LINK,
        params: &[],
    },
    Kind {
        name: "reset",
        scope: LINK,
        params: &[],
    },
    Kind {
        name: "partition",
        scope: LINK,
        params: &[p(
            "direction",
            Type::OneOf(&["both", "upstream", "downstream"]),
            "",
            Some("both"),
            "both, upstream, downstream",
            "both/upstream: connections refused; downstream: the callee does the work and the answer is lost",
        )],
    },
    Kind {
        name: "dns-failure",
        scope: LINK,
        params: &[],
    },
    Kind {
        name: "dns-stale",
        scope: LINK,
        params: &[p(
            "address",
            Type::Text,
            "host:port",
            Some("127.0.0.1:1"),
            "host:port",
            "where the stale record points",
        )],
    },
    Kind {
        name: "retry-amplification",
        scope: "link, optional route",
        params: &[p(
            "attempts",
            Type::Integer,
            "retries per failed call",
            Some("5"),
            "1..20",
            "unjittered, unbudgeted retries",
        )],
    },
    Kind {
        name: "cert-expiry",
        scope: LINK,
        params: &[],
    },
    Kind {
        name: "clock-skew",
        scope: PROCESS,
        params: &[p(
            "timeOffset",
            Type::Offset,
            "",
            None,
            "within ±24h",
            "how far the process's clock is off",
        )],
    },
    Kind {
        name: "cpu-burn",
        scope: PROCESS,
        params: &[p(
            "threads",
            Type::Integer,
            "threads",
            Some("1"),
            "1..8",
            "threads burning CPU",
        )],
    },
    Kind {
        name: "log-flood",
        scope: PROCESS,
        params: &[
            p(
                "rate",
                Type::Integer,
                "records/s",
                Some("2000"),
                "1..100000; rate × bytes ≤ 16 MiB/s",
                "WARN records written a second",
            ),
            p(
                "bytes",
                Type::Integer,
                "bytes",
                Some("512"),
                "16..65536",
                "detail carried by each record",
            ),
        ],
    },
    Kind {
        name: "memory-leak",
        scope: PROCESS,
        params: &[
            p(
                "rate",
                Type::Integer,
                "MiB/s",
                Some("4"),
                "≥ 1",
                "memory retained a second",
            ),
            p(
                "limit",
                Type::Integer,
                "MiB",
                Some("256"),
                "≥ 32",
                "resident memory at which the process is killed as by the OOM killer (exit 137); the supervisor restarts it",
            ),
        ],
    },
    Kind {
        name: "runtime-stall",
        scope: PROCESS,
        params: &[
            p(
                "every",
                Type::Duration,
                "",
                None,
                "≥ 100ms, longer than block",
                "how often an executor thread blocks",
            ),
            p(
                "block",
                Type::Duration,
                "",
                None,
                "< every",
                "how long it stays blocked",
            ),
        ],
    },
    Kind {
        name: "pool-leak",
        scope: DB,
        params: &[p(
            "every",
            Type::Duration,
            "",
            None,
            "≥ 10ms",
            "one pooled connection taken and never given back this often",
        )],
    },
    Kind {
        name: "slow-query",
        scope: DB,
        params: &[p(
            "latency",
            Type::Duration,
            "",
            None,
            "≤ 10m",
            "each query holds its connection this much longer",
        )],
    },
    Kind {
        name: "lock-contention",
        scope: "service (inbound)",
        params: &[p(
            "hold",
            Type::Duration,
            "",
            None,
            "≤ 10m",
            "how long each request holds one process-wide lock",
        )],
    },
    Kind {
        name: "consumer-stall",
        scope: CONSUMER,
        params: &[p(
            "delay",
            Type::Duration,
            "",
            None,
            "≤ 10m",
            "each message waits this long before it is handled",
        )],
    },
    Kind {
        name: "crash",
        scope: PROCESS,
        params: &[],
    },
    Kind {
        name: "config-push",
        scope: "service",
        params: &[p(
            "timeouts, retries, breaker, db, rateLimits, flags",
            Type::Config,
            "",
            None,
            "the live config keys",
            "laid over the service's config at a new version while the fault lasts",
        )],
    },
    Kind {
        name: "cache-flush",
        scope: "`cache` (process)",
        params: &[p(
            "ttl",
            Type::Duration,
            "",
            None,
            "≥ 100ms, optional",
            "every entry stored meanwhile expires at the next multiple of ttl, all together",
        )],
    },
    Kind {
        name: "poison-message",
        scope: CONSUMER,
        params: &[],
    },
    Kind {
        name: "data-corruption",
        scope: "service (inbound)",
        params: &[p(
            "field",
            Type::Text,
            "",
            Some("price"),
            "an identifier",
            "the numeric JSON field (and field_*) answered as 0",
        )],
    },
    Kind {
        name: "telemetry-drop",
        scope: "process (any service, `loadgen`)",
        params: &[],
    },
    Kind {
        name: "worker-pool",
        scope: "service (inbound), optional route",
        params: &[p(
            "size",
            Type::Integer,
            "requests",
            None,
            "1..1024",
            "requests handled at once; the rest wait in line",
        )],
    },
    Kind {
        name: "lb-skew",
        scope: "link (`checkout->payment`)",
        params: &[
            p(
                "instance",
                Type::Text,
                "",
                None,
                "an instance of the callee",
                "the instance the balancer favours",
            ),
            p(
                "percent",
                Type::Integer,
                "%",
                Some("90"),
                "0..100",
                "share of calls sent to it",
            ),
        ],
    },
    Kind {
        name: "traffic-spike",
        scope: "`loadgen` (process)",
        params: &[
            p(
                "multiplier",
                Type::Number,
                "× the load",
                None,
                "1 < m ≤ 50",
                "how much more traffic",
            ),
            p(
                "hotKey",
                Type::Integer,
                "product id",
                None,
                "optional",
                "every extra journey views this product",
            ),
            p(
                "journey",
                Type::OneOf(&[
                    "browse",
                    "search",
                    "view_product",
                    "login",
                    "add_to_cart",
                    "view_cart",
                    "checkout",
                ]),
                "",
                None,
                "optional; not with hotKey",
                "every extra journey is of this kind",
            ),
        ],
    },
    Kind {
        name: "drop-index",
        scope: DB,
        params: &[p(
            "index",
            Type::Text,
            "",
            None,
            "optional",
            "the index dropped (default: the service's hot index)",
        )],
    },
    Kind {
        name: "disk-full",
        scope: DB,
        params: &[],
    },
];

/// The kind named `name`.
pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// Every kind's name.
pub fn names() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|k| k.name)
}

/// `KEY=VALUE` for `kind`, as the CLI takes it, into the request's field
/// and JSON value; config-push keys are dotted (`timeouts.payment=1ms`) and
/// nest. The message names the kind's parameters when `key` is not one.
pub fn value(kind: &Kind, key: &str, text: &str) -> Result<(Vec<String>, Value), String> {
    let text = text.trim();
    if kind.name == "config-push" {
        let path: Vec<String> = key.split('.').map(String::from).collect();
        if path.len() != 2 {
            return Err(format!(
                "config-push takes dotted config keys, e.g. timeouts.payment=1ms or flags.x=1, not {key:?}"
            ));
        }
        return Ok((path, loose(text)));
    }
    let Some(param) = kind.params.iter().find(|p| p.name == key) else {
        let known: Vec<&str> = kind.params.iter().map(|p| p.name).collect();
        return Err(if known.is_empty() {
            format!("{} takes no parameters; drop {key:?}", kind.name)
        } else {
            format!("{} takes {}; not {key:?}", kind.name, known.join(", "))
        });
    };
    let value = match param.ty {
        Type::Integer => text.parse::<i64>().map(|n| json!(n)).map_err(|_| {
            format!(
                "{key} must be a whole number ({}), got {text:?}",
                param.range
            )
        })?,
        Type::Number => text
            .parse::<f64>()
            .map(|n| json!(n))
            .map_err(|_| format!("{key} must be a number ({}), got {text:?}", param.range))?,
        Type::OneOf(words) if !words.contains(&text) => {
            return Err(format!(
                "{key} must be one of {}, got {text:?}",
                words.join(", ")
            ));
        }
        _ => json!(text),
    };
    Ok((vec![key.to_string()], value))
}

/// A config value as text: a boolean, a number, else text.
fn loose(text: &str) -> Value {
    match text {
        "true" => json!(true),
        "false" => json!(false),
        _ => text
            .parse::<u64>()
            .map(|n| json!(n))
            .or_else(|_| text.parse::<f64>().map(|n| json!(n)))
            .unwrap_or_else(|_| json!(text)),
    }
}

/// The table docs/faults.md shows (a test keeps the two the same).
pub fn markdown() -> String {
    let mut out = String::from(
        "| kind | target | parameter | type and unit | default | accepted | what it does |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for kind in KINDS {
        if kind.params.is_empty() {
            out.push_str(&format!(
                "| `{}` | {} | — | | | | |\n",
                kind.name, kind.scope
            ));
        }
        for (i, param) in kind.params.iter().enumerate() {
            let (name, scope) = if i == 0 {
                (format!("`{}`", kind.name), kind.scope)
            } else {
                (String::new(), "")
            };
            let ty = match param.ty {
                Type::Duration => "duration".to_string(),
                Type::Offset => "signed duration".to_string(),
                Type::Integer => "integer".to_string(),
                Type::Number => "number".to_string(),
                Type::Text => "text".to_string(),
                Type::OneOf(_) => "one of".to_string(),
                Type::Config => "config keys".to_string(),
            };
            let ty = if param.unit.is_empty() {
                ty
            } else {
                format!("{ty}, {}", param.unit)
            };
            out.push_str(&format!(
                "| {name} | {scope} | `{}` | {ty} | {} | {} | {} |\n",
                param.name,
                param
                    .default
                    .map_or("required".to_string(), |d| format!("`{d}`")),
                param.range,
                param.meaning
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::faults::model::FaultKind;

    /// The kinds serde knows, from the message it gives for one it does not.
    fn serde_kinds() -> Vec<String> {
        let err = serde_json::from_value::<FaultKind>(json!({"kind": "?"}))
            .unwrap_err()
            .to_string();
        err.split("expected one of")
            .nth(1)
            .unwrap()
            .split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect()
    }

    #[test]
    fn every_kind_serde_knows_is_in_the_table_once() {
        let mut table: Vec<&str> = names().collect();
        let mut known = serde_kinds();
        table.sort_unstable();
        known.sort_unstable();
        assert_eq!(table, known);
    }

    /// A value of the parameter's type, inside its range.
    fn sample(param: &Param) -> Value {
        match (param.name, param.ty) {
            ("min", _) => json!("100ms"),
            ("every", _) => json!("1s"),
            ("block", _) => json!("200ms"),
            ("ttl", _) => json!("200ms"),
            ("code", _) => json!(503),
            ("percent", _) => json!(50),
            ("bytes", _) => json!(64),
            ("limit", _) => json!(64),
            ("attempts", _) => json!(3),
            ("address", _) => json!("127.0.0.1:9"),
            ("instance", _) => json!("payment-1"),
            (_, Type::Duration) => json!("250ms"),
            (_, Type::Offset) => json!("-90s"),
            (_, Type::Integer) => json!(2),
            (_, Type::Number) => json!(2.5),
            (_, Type::Text) => json!("price"),
            (_, Type::OneOf(words)) => json!(words[0]),
            (_, Type::Config) => unreachable!(),
        }
    }

    #[test]
    fn every_parameter_is_one_its_kind_accepts_and_every_default_is_its_own() {
        for kind in KINDS.iter().filter(|k| k.name != "config-push") {
            // Every parameter given: serde accepts each name and type.
            let mut all = json!({"kind": kind.name});
            for param in kind.params {
                // hotKey and journey exclude each other; both parse.
                all[param.name] = sample(param);
            }
            serde_json::from_value::<FaultKind>(all.clone())
                .unwrap_or_else(|e| panic!("{}: {e}: {all}", kind.name));
            // Only the required ones: the defaults filled in are the table's.
            let mut minimal = json!({"kind": kind.name});
            for param in kind.params.iter().filter(|p| p.default.is_none()) {
                if !param.range.starts_with("optional") && !param.range.contains("optional") {
                    minimal[param.name] = sample(param);
                }
            }
            let parsed = serde_json::from_value::<FaultKind>(minimal.clone())
                .unwrap_or_else(|e| panic!("{}: {e}: {minimal}", kind.name));
            let back = serde_json::to_value(parsed).unwrap();
            for param in kind.params {
                let Some(default) = param.default else {
                    continue;
                };
                let expected = match param.ty {
                    Type::Duration => json!(crate::faults::model::parse_millis(default).unwrap().0),
                    Type::Integer => json!(default.parse::<i64>().unwrap()),
                    _ => json!(default),
                };
                assert_eq!(back[param.name], expected, "{}.{}", kind.name, param.name);
            }
        }
    }

    #[test]
    fn key_values_become_the_request_fields() {
        let leak = kind("memory-leak").unwrap();
        assert_eq!(
            value(leak, "limit", "64").unwrap(),
            (vec!["limit".into()], json!(64))
        );
        let err = value(leak, "limit", "64MiB").unwrap_err();
        assert!(err.contains("whole number"), "{err}");
        let err = value(leak, "size", "1").unwrap_err();
        assert!(err.contains("memory-leak takes rate, limit"), "{err}");
        let err = value(kind("crash").unwrap(), "x", "1").unwrap_err();
        assert!(err.contains("takes no parameters"), "{err}");
        let partition = kind("partition").unwrap();
        assert!(value(partition, "direction", "sideways").is_err());
        let push = kind("config-push").unwrap();
        assert_eq!(
            value(push, "timeouts.payment", "1ms").unwrap(),
            (vec!["timeouts".into(), "payment".into()], json!("1ms"))
        );
        assert_eq!(value(push, "retries.count", "0").unwrap().1, json!(0));
        assert!(value(push, "timeouts", "1ms").is_err());
    }
}
