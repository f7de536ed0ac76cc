//! The collector's own representation of received telemetry.
//!
//! OTLP messages are decoded once, validated, and turned into these types
//! (see `otlp.rs`). The store and the query APIs only ever see this model, so
//! the wire format can evolve without touching search or rendering, and the
//! invariants checked at the door (ids have the right length, a service name
//! exists) hold everywhere after it.

use std::{
    fmt,
    str::FromStr,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use serde_json::Value as Json;

// === time ===

/// Every timestamp in the model is nanoseconds since the Unix epoch, as in
/// OTLP; APIs convert at their edge (Jaeger speaks microseconds).
pub fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// === ids ===

/// Why a hex id from a URL or query parameter could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    #[error("must be 1 to {max} hex digits")]
    Length { max: usize },
    #[error("must be hexadecimal")]
    NotHex,
    #[error("must not be all zeros")]
    Zero,
}

/// Defines a fixed-size, never-all-zero id that prints as lowercase hex.
///
/// OTLP carries ids as raw bytes; the all-zero value means "absent", so the
/// constructors refuse it and an `Option<Id>` carries absence instead.
macro_rules! hex_id {
    ($name:ident, $len:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Returns `None` unless `bytes` has the right length and is not all zero.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                let array: [u8; $len] = bytes.try_into().ok()?;
                Self::from_bytes(array)
            }

            pub fn from_bytes(bytes: [u8; $len]) -> Option<Self> {
                (bytes != [0; $len]).then_some(Self(bytes))
            }

            pub fn to_bytes(self) -> [u8; $len] {
                self.0
            }

            pub fn to_hex(self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        /// Accepts short ids and left-pads them with zeros, as Jaeger does
        /// for 64-bit trace ids.
        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.is_empty() || s.len() > 2 * $len {
                    return Err(IdParseError::Length { max: 2 * $len });
                }
                let padded = format!("{s:0>width$}", width = 2 * $len);
                let mut bytes = [0u8; $len];
                hex::decode_to_slice(&padded, &mut bytes).map_err(|_| IdParseError::NotHex)?;
                Self::from_bytes(bytes).ok_or(IdParseError::Zero)
            }
        }
    };
}

hex_id!(TraceId, 16);
hex_id!(SpanId, 8);

// === attributes ===

/// An attribute value, mirroring OTLP's `AnyValue`.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AttrValue>),
    Map(Vec<Attribute>),
    /// OTLP allows a key with no value; kept so the key stays visible.
    Empty,
}

impl AttrValue {
    /// Heap bytes this value owns, for the stores' byte budgets.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Self::Str(s) => s.capacity(),
            Self::Bytes(b) => b.capacity(),
            Self::Array(values) => values
                .iter()
                .map(|v| size_of::<Self>() + v.heap_bytes())
                .sum(),
            Self::Map(attrs) => attributes_bytes(attrs),
            Self::Bool(_) | Self::Int(_) | Self::Double(_) | Self::Empty => 0,
        }
    }

    /// The value as plain JSON: arrays and maps stay structured.
    pub fn to_json(&self) -> Json {
        match self {
            Self::Str(s) => Json::from(s.as_str()),
            Self::Bool(b) => Json::from(*b),
            Self::Int(i) => Json::from(*i),
            // Non-finite floats have no JSON form; null is the honest rendering.
            Self::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
            Self::Bytes(b) => Json::from(base64::engine::general_purpose::STANDARD.encode(b)),
            Self::Array(values) => Json::Array(values.iter().map(Self::to_json).collect()),
            Self::Map(attrs) => attributes_json(attrs),
            Self::Empty => Json::Null,
        }
    }

    /// The value as text: strings bare, everything else as its JSON text.
    /// Tag search compares against this form.
    pub fn to_text(&self) -> String {
        match self {
            Self::Str(s) => s.clone(),
            Self::Empty => String::new(),
            Self::Double(d) => d.to_string(),
            other => other.to_json().to_string(),
        }
    }
}

/// One key/value pair of a span, log record, event, link or resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub key: String,
    pub value: AttrValue,
}

impl Attribute {
    pub fn new(key: impl Into<String>, value: AttrValue) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }
}

/// Bytes a list of attributes owns on the heap.
pub fn attributes_bytes(attrs: &[Attribute]) -> usize {
    attrs
        .iter()
        .map(|a| size_of::<Attribute>() + a.key.capacity() + a.value.heap_bytes())
        .sum()
}

/// Attributes as one JSON object (later duplicates win, as in OTel SDKs).
pub fn attributes_json(attrs: &[Attribute]) -> Json {
    let map = attrs
        .iter()
        .map(|a| (a.key.clone(), a.value.to_json()))
        .collect();
    Json::Object(map)
}

// === resource and scope ===

/// The entity that produced telemetry (one process of one service).
///
/// Shared by every span or log record that arrived in the same
/// `ResourceSpans`/`ResourceLogs`, so keeping it per item costs one pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// `service.name`, or the OTel default `unknown_service` when absent.
    pub service_name: Arc<str>,
    /// All resource attributes, `service.name` included.
    pub attributes: Vec<Attribute>,
}

impl Resource {
    pub const UNKNOWN_SERVICE: &'static str = "unknown_service";

    pub fn new(attributes: Vec<Attribute>) -> Self {
        let service_name = attributes
            .iter()
            .find(|a| a.key == "service.name")
            .map(|a| a.value.to_text())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| Self::UNKNOWN_SERVICE.to_owned());
        Self {
            service_name: service_name.into(),
            attributes,
        }
    }

    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|a| a.key == key)
            .map(|a| &a.value)
    }

    /// `service.instance.id`, empty when the process did not report one.
    pub fn instance(&self) -> String {
        self.get("service.instance.id")
            .map(AttrValue::to_text)
            .unwrap_or_default()
    }
}

/// The instrumentation library that produced a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub name: String,
    pub version: String,
}

// === spans ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// OTLP's enum number; unknown numbers degrade to `Unspecified`.
    pub fn from_otlp(kind: i32) -> Self {
        match kind {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// The lowercase name Jaeger uses for the `span.kind` tag; empty for
    /// `Unspecified`, which Jaeger leaves untagged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_otlp(code: i32) -> Self {
        match code {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub attributes: Vec<Attribute>,
}

/// One received span with the resource and scope it came with.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: Vec<Attribute>,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
    pub status: StatusCode,
    pub status_message: String,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

impl SpanRecord {
    /// Clamped at zero: a span whose end precedes its start (clock skew in
    /// the sender) is still worth showing.
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    #[cfg(test)]
    pub fn service(&self) -> &str {
        &self.resource.service_name
    }

    /// Tags that are not OTLP attributes but that Jaeger users search and
    /// read: kind, status, `error=true`, and the instrumentation scope. One
    /// definition serves both rendering and tag search, so they agree.
    pub fn derived_tags(&self) -> Vec<Attribute> {
        let mut tags = Vec::new();
        if self.kind != SpanKind::Unspecified {
            tags.push(Attribute::new("span.kind", str_value(self.kind.as_str())));
        }
        match self.status {
            StatusCode::Unset => {}
            StatusCode::Ok => tags.push(Attribute::new("otel.status_code", str_value("OK"))),
            StatusCode::Error => {
                tags.push(Attribute::new("otel.status_code", str_value("ERROR")));
                tags.push(Attribute::new("error", AttrValue::Bool(true)));
            }
        }
        if !self.status_message.is_empty() {
            tags.push(Attribute::new(
                "otel.status_description",
                str_value(&self.status_message),
            ));
        }
        if !self.scope.name.is_empty() {
            tags.push(Attribute::new(
                "otel.scope.name",
                str_value(&self.scope.name),
            ));
        }
        if !self.scope.version.is_empty() {
            tags.push(Attribute::new(
                "otel.scope.version",
                str_value(&self.scope.version),
            ));
        }
        tags
    }
}

fn str_value(s: &str) -> AttrValue {
    AttrValue::Str(s.to_owned())
}

// === logs ===

/// One received log record with the resource it came with.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Event time; the observed time or the arrival time when the sender
    /// left it unset, so every entry sorts somewhere meaningful.
    pub time_unix_nano: u64,
    /// OTLP severity number (1..=24), 0 when unknown.
    pub severity_number: i32,
    pub severity_text: String,
    /// The body rendered as text (strings bare, structured bodies as JSON),
    /// so substring search and display need no further conversion.
    pub body: String,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub attributes: Vec<Attribute>,
    pub resource: Arc<Resource>,
}

impl LogEntry {
    pub fn service(&self) -> &str {
        &self.resource.service_name
    }

    /// Bytes this record costs in the store (its `Arc` allocation and what it
    /// owns; the resource is shared and not counted).
    pub fn approx_bytes(&self) -> usize {
        2 * size_of::<usize>()
            + size_of::<Self>()
            + self.severity_text.capacity()
            + self.body.capacity()
            + attributes_bytes(&self.attributes)
    }
}

/// Severity ranges from the OTel logs data model: each name covers four
/// numbers (e.g. WARN is 13..=16). Ordered from lowest to highest.
const SEVERITY_NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// The short name for a severity number (`INFO` for 9..=12).
pub fn severity_name(number: i32) -> &'static str {
    match number {
        1..=24 => SEVERITY_NAMES[((number - 1) / 4) as usize],
        _ => "UNSPECIFIED",
    }
}

/// The lowest severity number of a named range, case-insensitive; also
/// accepts the common spellings `WARNING` and `ERR`.
pub fn severity_from_name(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let canonical = match upper.as_str() {
        "WARNING" => "WARN",
        "ERR" => "ERROR",
        other => other,
    };
    let index = SEVERITY_NAMES.iter().position(|n| *n == canonical)?;
    Some(index as i32 * 4 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_parses_full_and_short_hex() {
        let full: TraceId = "0af7651916cd43dd8448eb211c80319c".parse().unwrap();
        assert_eq!(full.to_hex(), "0af7651916cd43dd8448eb211c80319c");
        let short: TraceId = "abc".parse().unwrap();
        assert_eq!(short.to_hex(), "00000000000000000000000000000abc");
    }

    #[test]
    fn trace_id_rejects_bad_input() {
        assert_eq!("xyz".parse::<TraceId>(), Err(IdParseError::NotHex));
        assert_eq!("0".parse::<TraceId>(), Err(IdParseError::Zero));
        assert_eq!(
            "1".repeat(33).parse::<TraceId>(),
            Err(IdParseError::Length { max: 32 })
        );
        assert!(TraceId::from_slice(&[0; 16]).is_none());
        assert!(TraceId::from_slice(&[1; 15]).is_none());
        assert!(SpanId::from_slice(&[1; 8]).is_some());
    }

    #[test]
    fn severity_names_cover_the_otel_ranges() {
        assert_eq!(severity_name(9), "INFO");
        assert_eq!(severity_name(16), "WARN");
        assert_eq!(severity_name(17), "ERROR");
        assert_eq!(severity_name(0), "UNSPECIFIED");
        assert_eq!(severity_from_name("warn"), Some(13));
        assert_eq!(severity_from_name("Warning"), Some(13));
        assert_eq!(severity_from_name("fatal"), Some(21));
        assert_eq!(severity_from_name("loud"), None);
    }

    #[test]
    fn resource_defaults_the_service_name() {
        let r = Resource::new(vec![]);
        assert_eq!(&*r.service_name, "unknown_service");
        let r = Resource::new(vec![Attribute::new("service.name", str_value("cart"))]);
        assert_eq!(&*r.service_name, "cart");
    }

    #[test]
    fn attribute_text_and_json_forms() {
        assert_eq!(AttrValue::Int(500).to_text(), "500");
        assert_eq!(AttrValue::Bool(true).to_text(), "true");
        assert_eq!(str_value("GET").to_text(), "GET");
        let array = AttrValue::Array(vec![AttrValue::Int(1), str_value("a")]);
        assert_eq!(array.to_text(), r#"[1,"a"]"#);
        assert_eq!(AttrValue::Double(f64::NAN).to_json(), Json::Null);
    }
}
