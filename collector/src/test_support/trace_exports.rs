//! Seeded random trace exports for the tests of `otlp::traces` and the
//! store's wire path, which compare against prost on the same bytes.
//!
//! [`Gen::request`] builds an `ExportTraceServiceRequest` that touches
//! every field and value kind (including refused ids, empty and long
//! strings, nested values, values only profiles use). [`Gen::scramble`]
//! re-encodes prost's encoding of it the ways other encoders may (or the
//! protobuf spec allows): fields out of order, unknown fields of every
//! wire type (groups too), scalars and strings given twice, message fields
//! split in two, attribute values with several `oneof` fields.
//! [`Gen::mutate`] then damages bytes at random for the malformed cases.

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{
        AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
        any_value::Value as AnyKind,
    },
    resource::v1::Resource,
    trace::v1::{
        ResourceSpans, ScopeSpans, Span, Status,
        span::{Event, Link},
    },
};
use prost::Message as _;
use std::ops::{Range, RangeInclusive};

/// Strings shared between spans (so interning is exercised), with some
/// that are empty, long, or not ASCII.
const WORDS: [&str; 12] = [
    "service.name",
    "http.route",
    "db.system",
    "peer.service",
    "server.address",
    "GET /api/cart",
    "cart",
    "",
    "héllo wörld ✓",
    "a",
    "postgresql",
    "a string longer than sixty-four bytes, which the store keeps inline",
];

pub struct Gen(SplitMix);

impl Gen {
    pub fn new(seed: u64) -> Self {
        Self(SplitMix(seed))
    }

    fn chance(&mut self, p: f64) -> bool {
        self.0.random_bool(p)
    }

    fn up_to(&mut self, n: usize) -> usize {
        self.0.random_range(0..=n)
    }

    fn text(&mut self) -> String {
        if self.chance(0.2) {
            format!("value-{}", self.0.random_range(0..50))
        } else {
            WORDS[self.0.random_range(0..WORDS.len())].to_owned()
        }
    }

    /// Usually a valid id; sometimes all zeros, the wrong length, or empty.
    fn id(&mut self, len: usize) -> Vec<u8> {
        match self.0.random_range(0..12) {
            0 => vec![0; len],
            1 => vec![7; len - 1],
            2 => Vec::new(),
            _ => {
                let mut id = vec![0; len];
                self.0.fill_bytes(&mut id);
                id[0] |= 1;
                id
            }
        }
    }

    fn parent_id(&mut self) -> Vec<u8> {
        if self.chance(0.4) {
            Vec::new()
        } else {
            self.id(8)
        }
    }

    fn any_value(&mut self, depth: usize) -> AnyValue {
        let value = match self.0.random_range(0..if depth == 0 { 8 } else { 10 }) {
            0 => None,
            1 | 2 => Some(AnyKind::StringValue(self.text())),
            3 => Some(AnyKind::BoolValue(self.chance(0.5))),
            4 => Some(AnyKind::IntValue(match self.0.random_range(0..3) {
                0 => self.0.random_range(-5i64..500),
                1 => i64::MIN,
                _ => self.0.random(),
            })),
            5 => Some(AnyKind::DoubleValue(
                [0.25, -0.0, 1e300, f64::INFINITY, 3.0][self.0.random_range(0..5usize)],
            )),
            6 => Some(AnyKind::BytesValue(
                (0..self.up_to(5)).map(|i| i as u8 * 51).collect(),
            )),
            7 => Some(AnyKind::StringValueStrindex(self.0.random_range(0..9))),
            8 => Some(AnyKind::ArrayValue(ArrayValue {
                values: (0..self.up_to(3))
                    .map(|_| self.any_value(depth - 1))
                    .collect(),
            })),
            _ => Some(AnyKind::KvlistValue(KeyValueList {
                values: self.attributes(3, depth - 1),
            })),
        };
        AnyValue { value }
    }

    fn attributes(&mut self, max: usize, depth: usize) -> Vec<KeyValue> {
        (0..self.up_to(max))
            .map(|_| KeyValue {
                key: self.text(),
                value: (!self.chance(0.1)).then(|| self.any_value(depth)),
                key_strindex: if self.chance(0.1) { 3 } else { 0 },
            })
            .collect()
    }

    fn span(&mut self) -> Span {
        let start = self.0.random_range(0..1_000_000u64);
        Span {
            trace_id: self.id(16),
            span_id: self.id(8),
            trace_state: if self.chance(0.2) {
                "k=v".into()
            } else {
                String::new()
            },
            parent_span_id: self.parent_id(),
            flags: self.0.random_range(0..0x300u32),
            name: self.text(),
            kind: self.0.random_range(-1..7),
            start_time_unix_nano: start,
            end_time_unix_nano: (start + self.0.random_range(0..1_000u64)).saturating_sub(100),
            attributes: self.attributes(6, 2),
            dropped_attributes_count: self.0.random_range(0..3u32),
            events: (0..self.up_to(2))
                .map(|_| Event {
                    time_unix_nano: self.0.random(),
                    name: self.text(),
                    attributes: self.attributes(2, 1),
                    dropped_attributes_count: self.0.random_range(0..2u32),
                })
                .collect(),
            dropped_events_count: self.0.random_range(0..2u32),
            links: (0..self.up_to(2))
                .map(|_| Link {
                    trace_id: self.id(16),
                    span_id: self.id(8),
                    trace_state: String::new(),
                    attributes: self.attributes(2, 1),
                    dropped_attributes_count: 0,
                    flags: self.0.random_range(0..0x300u32),
                })
                .collect(),
            dropped_links_count: self.0.random_range(0..2u32),
            status: self.chance(0.5).then(|| Status {
                message: self.text(),
                code: self.0.random_range(-1..4),
            }),
        }
    }

    pub fn request(&mut self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: (0..self.up_to(3))
                .map(|_| ResourceSpans {
                    resource: self.chance(0.8).then(|| Resource {
                        attributes: self.attributes(4, 1),
                        dropped_attributes_count: self.0.random_range(0..2u32),
                        entity_refs: (0..self.up_to(1))
                            .map(|_| EntityRef {
                                schema_url: self.text(),
                                r#type: "service".into(),
                                id_keys: vec!["service.name".into()],
                                description_keys: vec![self.text()],
                            })
                            .collect(),
                    }),
                    scope_spans: (0..self.up_to(3))
                        .map(|_| ScopeSpans {
                            scope: self.chance(0.7).then(|| InstrumentationScope {
                                name: self.text(),
                                version: self.text(),
                                attributes: self.attributes(2, 1),
                                dropped_attributes_count: 0,
                            }),
                            spans: (0..self.up_to(4)).map(|_| self.span()).collect(),
                            schema_url: self.text(),
                        })
                        .collect(),
                    schema_url: self.text(),
                })
                .collect(),
        }
    }

    /// A random request, encoded and usually scrambled.
    pub fn encoded(&mut self) -> Vec<u8> {
        let encoded = self.request().encode_to_vec();
        if self.chance(0.7) {
            self.scramble(&encoded)
        } else {
            encoded
        }
    }

    /// Re-encodes an encoded `ExportTraceServiceRequest` (see the module's
    /// doc). The result need not decode to the same request: tests compare
    /// against prost on the result.
    pub fn scramble(&mut self, encoded: &[u8]) -> Vec<u8> {
        self.scramble_fields(encoded, Schema::Request).concat()
    }

    fn scramble_fields(&mut self, message: &[u8], schema: Schema) -> Vec<Vec<u8>> {
        let mut fields = Vec::new();
        for (number, wire_type, payload) in parse(message) {
            match (wire_type, schema.message_field(number)) {
                (2, Some(inner)) => {
                    let inner_fields = self.scramble_fields(payload, inner);
                    if inner_fields.len() > 1 && self.chance(0.15) {
                        // One message field given as two halves.
                        let split = self.0.random_range(1..inner_fields.len());
                        fields.push(field(number, 2, &inner_fields[..split].concat()));
                        fields.push(field(number, 2, &inner_fields[split..].concat()));
                    } else {
                        fields.push(field(number, 2, &inner_fields.concat()));
                    }
                }
                _ => {
                    if self.chance(0.08) {
                        // Given twice: another value first (the original
                        // wins) or after (it replaces the original).
                        let other = self.other_value(wire_type);
                        let twice = field(number, wire_type, &other);
                        if self.chance(0.5) {
                            fields.push(twice);
                            fields.push(field(number, wire_type, payload));
                        } else {
                            fields.push(field(number, wire_type, payload));
                            fields.push(twice);
                        }
                    } else {
                        fields.push(field(number, wire_type, payload));
                    }
                }
            }
        }
        if schema == Schema::AnyValue && self.chance(0.1) {
            // Another `oneof` field of the value, before or after it.
            let other = field(1, 2, b"other");
            let at = self.up_to(fields.len());
            fields.insert(at, other);
        }
        if self.chance(0.15) {
            let unknown = self.unknown_field(2);
            let at = self.up_to(fields.len());
            fields.insert(at, unknown);
        }
        if self.chance(0.2) {
            self.0.shuffle(&mut fields);
        }
        fields
    }

    /// A value of the same wire type for a scalar, string or bytes field.
    fn other_value(&mut self, wire_type: u8) -> Vec<u8> {
        match wire_type {
            0 => varint(self.0.random_range(0..300u64)),
            1 => self.0.random::<u64>().to_le_bytes().to_vec(),
            5 => self.0.random::<u32>().to_le_bytes().to_vec(),
            _ => self.text().into_bytes(),
        }
    }

    /// A field no message here has, of any wire type.
    fn unknown_field(&mut self, depth: usize) -> Vec<u8> {
        let number = self.0.random_range(100..2000u32);
        match self.0.random_range(0..if depth == 0 { 4 } else { 5 }) {
            0 => field(number, 0, &varint(self.0.random())),
            1 => field(number, 1, &[9; 8]),
            2 => field(number, 5, &[9; 4]),
            3 => field(number, 2, b"\xff\xfe not even UTF-8"),
            _ => {
                let mut group = varint(u64::from(number) << 3 | 3);
                for _ in 0..self.up_to(2) {
                    group.extend(self.unknown_field(depth - 1));
                }
                group.extend(varint(u64::from(number) << 3 | 4));
                group
            }
        }
    }

    /// Damages `encoded`: flips, drops, inserts or truncates bytes.
    pub fn mutate(&mut self, encoded: &[u8]) -> Vec<u8> {
        let mut bytes = encoded.to_vec();
        for _ in 0..1 + self.up_to(2) {
            if bytes.is_empty() {
                break;
            }
            let at = self.0.random_range(0..bytes.len());
            match self.0.random_range(0..5) {
                0 => bytes[at] ^= 1 << self.0.random_range(0..8u32),
                1 => bytes[at] = self.0.random(),
                2 => {
                    bytes.remove(at);
                }
                3 => bytes.insert(at, self.0.random()),
                _ => bytes.truncate(at),
            }
        }
        bytes
    }
}

/// The message types of a trace export, for [`Gen::scramble`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    Request,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    EntityRef,
}

impl Schema {
    /// The message type of field `number`, when it is a message.
    fn message_field(self, number: u32) -> Option<Self> {
        use Schema::*;
        Some(match (self, number) {
            (Request, 1) => ResourceSpans,
            (ResourceSpans, 1) => Resource,
            (ResourceSpans, 2) => ScopeSpans,
            (Resource, 1) | (Scope, 3) | (Span, 9) | (Event, 3) | (Link, 4) | (KeyValueList, 1) => {
                KeyValue
            }
            (Resource, 3) => EntityRef,
            (ScopeSpans, 1) => Scope,
            (ScopeSpans, 2) => Span,
            (Span, 11) => Event,
            (Span, 13) => Link,
            (Span, 15) => Status,
            (KeyValue, 2) | (ArrayValue, 1) => AnyValue,
            (AnyValue, 5) => ArrayValue,
            (AnyValue, 6) => KeyValueList,
            _ => return None,
        })
    }
}

/// The fields of a message prost encoded: (number, wire type, payload),
/// the payload of a length-delimited field without its length.
fn parse(mut message: &[u8]) -> Vec<(u32, u8, &[u8])> {
    let mut fields = Vec::new();
    while !message.is_empty() {
        let key = prost::encoding::decode_varint(&mut message).expect("prost's encoding");
        let (number, wire_type) = ((key >> 3) as u32, (key & 7) as u8);
        let len = match wire_type {
            0 => {
                let start = message;
                prost::encoding::decode_varint(&mut message).expect("a varint");
                let used = start.len() - message.len();
                fields.push((number, wire_type, &start[..used]));
                continue;
            }
            1 => 8,
            5 => 4,
            2 => prost::encoding::decode_varint(&mut message).expect("a length") as usize,
            _ => unreachable!("prost writes no groups"),
        };
        let (payload, rest) = message.split_at(len);
        fields.push((number, wire_type, payload));
        message = rest;
    }
    fields
}

/// One field: key, then the payload (with its length when delimited).
fn field(number: u32, wire_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(number) << 3 | u64::from(wire_type));
    if wire_type == 2 {
        out.extend(varint(payload.len() as u64));
    }
    out.extend_from_slice(payload);
    out
}

pub fn varint(value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(value, &mut out);
    out
}

/// SplitMix64: a seeded generator small enough to keep here (the crate
/// has no random-number dependency).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn random_bool(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }

    fn random<T: FromBits>(&mut self) -> T {
        T::from_bits(self.next())
    }

    fn random_range<R: Pick>(&mut self, range: R) -> R::Out {
        let bits = self.next();
        range.pick(bits)
    }

    fn fill_bytes(&mut self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte = self.next() as u8;
        }
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.random_range(0..=i);
            items.swap(i, j);
        }
    }
}

trait FromBits {
    fn from_bits(bits: u64) -> Self;
}

macro_rules! from_bits {
    ($($t:ty),*) => {$(
        impl FromBits for $t {
            fn from_bits(bits: u64) -> Self {
                bits as $t
            }
        }
    )*};
}

from_bits!(u8, u32, u64, i64);

/// A range to pick a uniform-enough value from (modulo bias is no matter
/// for test inputs).
trait Pick {
    type Out;
    fn pick(self, bits: u64) -> Self::Out;
}

macro_rules! pick {
    ($($t:ty),*) => {$(
        impl Pick for Range<$t> {
            type Out = $t;
            fn pick(self, bits: u64) -> $t {
                let span = (self.end as i128 - self.start as i128) as u128;
                (self.start as i128 + (u128::from(bits) % span) as i128) as $t
            }
        }

        impl Pick for RangeInclusive<$t> {
            type Out = $t;
            fn pick(self, bits: u64) -> $t {
                let (start, end) = self.into_inner();
                let span = (end as i128 - start as i128 + 1) as u128;
                (start as i128 + (u128::from(bits) % span) as i128) as $t
            }
        }
    )*};
}

pick!(usize, u32, u64, i32, i64);
