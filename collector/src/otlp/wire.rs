//! The protobuf wire format, read in place: varints, field keys,
//! length-delimited payloads, and skipping unknown fields, with the same
//! acceptance rules as prost (so a message this reader refuses is one
//! prost would refuse too, and the other way round).
//!
//! Two users: [`count_spans`], the refusal path's skim (an export that
//! will be refused anyway must still have its items counted, but should
//! not be decoded first), and `otlp::traces`, which reads accepted trace
//! exports straight into the store's compact form.

/// Wire types.
pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const START_GROUP: u8 = 3;
pub const END_GROUP: u8 = 4;
pub const FIXED32: u8 = 5;

/// How deep messages may nest, counted as prost counts: the top-level
/// message's fields are at this level, each nested message (and each
/// group an unknown field skips over) one lower, and nothing, not even
/// an unknown field, may be read at level 0.
pub const RECURSION_LIMIT: u32 = 100;

/// Why bytes are not a valid encoding of the expected message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated or overlong varint")]
    Varint,
    #[error("invalid field key {0}")]
    Key(u64),
    #[error("invalid wire type {0}")]
    WireType(u8),
    #[error("{message}.{field} has wire type {found}, expected {expected}")]
    WrongWireType {
        message: &'static str,
        field: &'static str,
        found: u8,
        expected: u8,
    },
    #[error("a length or fixed-size value runs past the end of its message")]
    PastEnd,
    #[error("{message}.{field} is not valid UTF-8")]
    Utf8 {
        message: &'static str,
        field: &'static str,
    },
    #[error("messages nested more than {RECURSION_LIMIT} deep")]
    TooDeep,
    #[error("unexpected end-group tag")]
    EndGroup,
}

/// A cursor over the bytes of one message.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A base-128 varint of at most 10 bytes whose 10th byte is 0 or 1
    /// (prost's overflow rule).
    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        match self.buf.first() {
            Some(&byte) if byte < 0x80 => {
                self.buf = &self.buf[1..];
                Ok(u64::from(byte))
            }
            _ => self.varint_slow(),
        }
    }

    #[cold]
    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for (count, &byte) in self.buf.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (count * 7);
            if byte < 0x80 {
                if count == 9 && byte > 1 {
                    return Err(DecodeError::Varint);
                }
                self.buf = &self.buf[count + 1..];
                return Ok(value);
            }
        }
        Err(DecodeError::Varint)
    }

    /// A field key: its number and wire type.
    #[inline]
    pub fn key(&mut self) -> Result<(u32, u8), DecodeError> {
        let key = self.varint()?;
        let Ok(key32) = u32::try_from(key) else {
            return Err(DecodeError::Key(key));
        };
        let wire_type = (key32 & 7) as u8;
        if wire_type > FIXED32 {
            return Err(DecodeError::WireType(wire_type));
        }
        let number = key32 >> 3;
        if number == 0 {
            return Err(DecodeError::Key(key));
        }
        Ok((number, wire_type))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.buf.len() {
            return Err(DecodeError::PastEnd);
        }
        let (taken, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(taken)
    }

    /// The payload of a length-delimited field.
    #[inline]
    pub fn len_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        self.take(usize::try_from(len).map_err(|_| DecodeError::PastEnd)?)
    }

    #[inline]
    pub fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    #[inline]
    pub fn fixed32(&mut self) -> Result<u32, DecodeError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }

    /// Skips the value of an unknown field `number` read at nesting level
    /// `level` (see [`RECURSION_LIMIT`]), as prost's `skip_field` does:
    /// groups are skipped to their matching end, one level deeper.
    pub fn skip(&mut self, number: u32, wire_type: u8, level: u32) -> Result<(), DecodeError> {
        if level == 0 {
            return Err(DecodeError::TooDeep);
        }
        match wire_type {
            VARINT => {
                self.varint()?;
            }
            FIXED64 => {
                self.take(8)?;
            }
            LEN => {
                self.len_delimited()?;
            }
            FIXED32 => {
                self.take(4)?;
            }
            START_GROUP => loop {
                let (inner, inner_type) = self.key()?;
                if inner_type == END_GROUP {
                    if inner != number {
                        return Err(DecodeError::EndGroup);
                    }
                    break;
                }
                self.skip(inner, inner_type, level - 1)?;
            },
            _ => return Err(DecodeError::EndGroup),
        }
        Ok(())
    }
}

/// One field of a message whose encoding is already known to be valid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
    /// A (skipped) group; OTLP has none.
    Group,
}

/// The fields of a message, in order. For bytes already checked (see
/// `otlp::traces::check`): malformed bytes end the iteration early
/// instead of failing, which cannot happen for checked bytes.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a>(Reader<'a>);

impl<'a> Fields<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        Self(Reader::new(message))
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        self.0.buf.len()
    }

    /// The payloads of every occurrence of length-delimited field `number`.
    pub fn messages(self, number: u32) -> impl Iterator<Item = &'a [u8]> + Clone {
        self.filter_map(move |(n, value)| match value {
            Value::Len(payload) if n == number => Some(payload),
            _ => None,
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u32, Value<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        match self.read() {
            Ok(field) => Some(field),
            Err(_) => self.stop(),
        }
    }
}

impl<'a> Fields<'a> {
    #[inline(always)]
    fn read(&mut self) -> Result<(u32, Value<'a>), DecodeError> {
        let (number, wire_type) = self.0.key()?;
        let value = match wire_type {
            VARINT => Value::Varint(self.0.varint()?),
            FIXED64 => Value::Fixed64(self.0.fixed64()?),
            LEN => Value::Len(self.0.len_delimited()?),
            FIXED32 => Value::Fixed32(self.0.fixed32()?),
            _ => self.group(number, wire_type)?,
        };
        Ok((number, value))
    }

    #[cold]
    fn group(&mut self, number: u32, wire_type: u8) -> Result<Value<'a>, DecodeError> {
        self.0.skip(number, wire_type, RECURSION_LIMIT)?;
        Ok(Value::Group)
    }

    #[cold]
    fn stop(&mut self) -> Option<(u32, Value<'a>)> {
        self.0 = Reader::new(&[]);
        None
    }
}

/// Field numbers from `ExportTraceServiceRequest` down to a span:
/// `resource_spans` (1) → `scope_spans` (2) → `spans` (2).
const SPANS_PATH: [u32; 3] = [1, 2, 2];

/// Spans in an encoded `ExportTraceServiceRequest`; `None` when the bytes
/// are not valid protobuf (the caller then decodes normally, and the
/// sender gets its 400 / INVALID_ARGUMENT from that).
pub fn count_spans(encoded: &[u8]) -> Option<u64> {
    count_nested(encoded, &SPANS_PATH)
}

/// Occurrences of the length-delimited field at `path` (field numbers, one
/// per nesting level) in `message`.
fn count_nested(message: &[u8], path: &[u32]) -> Option<u64> {
    let (&field, rest) = path.split_first()?;
    let mut reader = Reader::new(message);
    let mut count = 0;
    while !reader.is_empty() {
        let (number, wire_type) = reader.key().ok()?;
        match wire_type {
            VARINT => {
                reader.varint().ok()?;
            }
            FIXED64 => {
                reader.fixed64().ok()?;
            }
            LEN => {
                let payload = reader.len_delimited().ok()?;
                if number == field {
                    count += if rest.is_empty() {
                        1
                    } else {
                        count_nested(payload, rest)?
                    };
                }
            }
            FIXED32 => {
                reader.fixed32().ok()?;
            }
            // Groups are not used by OTLP: leave them to the decoder.
            _ => return None,
        }
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        collector::trace::v1::ExportTraceServiceRequest,
        common::v1::InstrumentationScope,
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };
    use prost::Message as _;

    use super::*;

    #[test]
    fn counts_spans_across_resources_and_scopes() {
        let spans = |n: usize| ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "lib".into(),
                ..Default::default()
            }),
            spans: vec![
                Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "GET /".into(),
                    start_time_unix_nano: 5,
                    kind: 2,
                    ..Default::default()
                };
                n
            ],
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource::default()),
                    scope_spans: vec![spans(3), spans(0), spans(2)],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![spans(4)],
                    ..Default::default()
                },
            ],
        };
        let encoded = request.encode_to_vec();
        assert_eq!(count_spans(&encoded), Some(9));
        assert_eq!(count_spans(&[]), Some(0));
        assert_eq!(count_spans(&encoded[..encoded.len() - 1]), None);
        assert_eq!(count_spans(&[0x0a, 0x05, 0x00]), None);
    }

    #[test]
    fn varints_follow_prosts_rules() {
        let read = |bytes: &[u8]| Reader::new(bytes).varint();
        assert_eq!(read(&[0x00]), Ok(0));
        assert_eq!(read(&[0x96, 0x01]), Ok(150));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read(&max), Ok(u64::MAX));
        let mut overflow = max;
        overflow[9] = 0x02;
        assert_eq!(read(&overflow), Err(DecodeError::Varint));
        assert_eq!(read(&[0x80; 11]), Err(DecodeError::Varint));
        assert_eq!(read(&[0x80, 0x80]), Err(DecodeError::Varint));
        assert_eq!(read(&[]), Err(DecodeError::Varint));
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut encoded = Vec::new();
            prost::encoding::encode_varint(value, &mut encoded);
            let mut reader = Reader::new(&encoded);
            assert_eq!(reader.varint(), Ok(value));
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn keys_and_skips_follow_prosts_rules() {
        assert_eq!(Reader::new(&[0x08]).key(), Ok((1, VARINT)));
        assert_eq!(Reader::new(&[0x00]).key(), Err(DecodeError::Key(0)));
        assert_eq!(Reader::new(&[0x0e]).key(), Err(DecodeError::WireType(6)));
        assert_eq!(Reader::new(&[0x0f]).key(), Err(DecodeError::WireType(7)));
        let too_big = [0x80, 0x80, 0x80, 0x80, 0x10];
        assert!(matches!(
            Reader::new(&too_big).key(),
            Err(DecodeError::Key(_))
        ));
        // A group of field 2 holding a varint field, then its end.
        let mut group = Reader::new(&[0x08, 0x01, 0x14, 0x99]);
        assert_eq!(group.skip(2, START_GROUP, 5), Ok(()));
        assert_eq!(group.buf, &[0x99]);
        assert_eq!(
            Reader::new(&[0x0c]).skip(2, START_GROUP, 5),
            Err(DecodeError::EndGroup),
            "ends a group of another field"
        );
        assert_eq!(
            Reader::new(&[]).skip(2, END_GROUP, 5),
            Err(DecodeError::EndGroup)
        );
        assert_eq!(
            Reader::new(&[0x01]).skip(1, VARINT, 0),
            Err(DecodeError::TooDeep)
        );
        assert_eq!(
            Reader::new(&[0x02, 0x00]).skip(1, LEN, 1),
            Err(DecodeError::PastEnd)
        );
    }
}
