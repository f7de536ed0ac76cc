//! Trace exports read straight from their protobuf encoding.
//!
//! prost decodes an `ExportTraceServiceRequest` into an owned tree: a
//! `String` or `Vec` for every id, name, key and value, ~25 allocations
//! per span, all freed again once the span is stored. The collector
//! needs none of them: the store interns or copies the strings anyway,
//! and the derived metrics read a handful of fields. So trace exports
//! stay encoded, and are read in place twice:
//!
//! 1. [`check`], on the receiver's thread, walks every byte of the export
//!    with prost's acceptance rules (wire types of every known field,
//!    lengths, varints, UTF-8 of every string field, the nesting limit;
//!    unknown fields skipped) and the collector's own per-span rule (ids,
//!    [`otlp::check_span`]). Bytes it refuses are what prost would refuse
//!    (the sender gets 400 / INVALID_ARGUMENT); for bytes it accepts it
//!    counts the valid and refused spans for the partial-success answer.
//!    It allocates nothing.
//! 2. The pipeline thread reads the checked bytes through the views below
//!    ([`TraceExport::resource_spans`], [`SpanView`], [`KeyValueView`]),
//!    which trust the check and therefore never fail.
//!
//! The views give what prost would have decoded, including protobuf's
//! merge rules for fields given more than once: the last value of a
//! scalar or string wins, repeated fields concatenate, and a message field
//! given several times is the merge of all of them, which is the message
//! their concatenated encodings decode to ([`merged`]). The one shape the
//! views do not resolve themselves is an attribute value set more than
//! once or with several of its `oneof` fields (which no SDK sends):
//! [`KeyValueView::Merged`] hands those bytes to prost.
//!
//! [`otlp::check_span`]: super::check_span

use std::borrow::Cow;

use bytes::Bytes;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value as AnyKind},
};
use prost::Message as _;

use super::{
    Rejection,
    wire::{DecodeError, FIXED32, FIXED64, Fields, LEN, RECURSION_LIMIT, Reader, VARINT, Value},
};
use crate::model::{SpanId, TraceId};

/// An encoded export that [`check`] accepted.
#[derive(Debug, Clone)]
pub struct TraceExport {
    encoded: Bytes,
}

/// What [`check`] found: the export and its spans, valid or refused.
#[derive(Debug)]
pub struct Checked {
    pub export: TraceExport,
    /// Spans the collector keeps.
    pub valid: u64,
    /// Spans with malformed ids, which the views skip too.
    pub refused: u64,
    /// Why the first refused span was refused.
    pub first_refusal: Option<Rejection>,
}

/// Checks an encoded `ExportTraceServiceRequest` (see the module's doc).
pub fn check(encoded: Bytes) -> Result<Checked, DecodeError> {
    let mut spans = SpanCounts::default();
    let level = RECURSION_LIMIT;
    check_message(&encoded, level, &EXPORT, |_, resource_spans| {
        check_resource_spans(resource_spans, level - 1, &mut spans)
    })?;
    Ok(Checked {
        valid: spans.valid,
        refused: spans.refused,
        first_refusal: spans.first,
        export: TraceExport { encoded },
    })
}

#[derive(Debug, Default)]
struct SpanCounts {
    valid: u64,
    refused: u64,
    first: Option<Rejection>,
}

// === checking ===
//
// Each message type is a table of its known fields ([`Schema`]), with the
// field numbers and types of opentelemetry-proto's generated code; one
// walker ([`check_message`]) checks any message against its table. `level`
// is the nesting level of a message's fields (see `wire::RECURSION_LIMIT`).

/// What a known field holds, which decides how it is checked.
#[derive(Clone, Copy)]
enum Kind {
    /// Length-delimited UTF-8.
    Str,
    /// Length-delimited bytes (ids), handed to the walker's caller.
    Bytes,
    Varint,
    Fixed64,
    Fixed32,
    /// A message checked against its own table.
    Message(&'static Schema),
    /// A message the walker's caller checks (it counts spans).
    Counted,
}

/// A message type's known fields; others are skipped, as prost does.
struct Schema {
    name: &'static str,
    fields: &'static [(u32, &'static str, Kind)],
}

static EXPORT: Schema = Schema {
    name: "ExportTraceServiceRequest",
    fields: &[(1, "resource_spans", Kind::Counted)],
};
static RESOURCE_SPANS: Schema = Schema {
    name: "ResourceSpans",
    fields: &[
        (1, "resource", Kind::Message(&RESOURCE)),
        (2, "scope_spans", Kind::Counted),
        (3, "schema_url", Kind::Str),
    ],
};
static RESOURCE: Schema = Schema {
    name: "Resource",
    fields: &[
        (1, "attributes", Kind::Message(&KEY_VALUE)),
        (2, "dropped_attributes_count", Kind::Varint),
        (3, "entity_refs", Kind::Message(&ENTITY_REF)),
    ],
};
static ENTITY_REF: Schema = Schema {
    name: "EntityRef",
    fields: &[
        (1, "schema_url", Kind::Str),
        (2, "type", Kind::Str),
        (3, "id_keys", Kind::Str),
        (4, "description_keys", Kind::Str),
    ],
};
static SCOPE_SPANS: Schema = Schema {
    name: "ScopeSpans",
    fields: &[
        (1, "scope", Kind::Message(&SCOPE)),
        (2, "spans", Kind::Counted),
        (3, "schema_url", Kind::Str),
    ],
};
static SCOPE: Schema = Schema {
    name: "InstrumentationScope",
    fields: &[
        (1, "name", Kind::Str),
        (2, "version", Kind::Str),
        (3, "attributes", Kind::Message(&KEY_VALUE)),
        (4, "dropped_attributes_count", Kind::Varint),
    ],
};
static SPAN: Schema = Schema {
    name: "Span",
    fields: &[
        (1, "trace_id", Kind::Bytes),
        (2, "span_id", Kind::Bytes),
        (3, "trace_state", Kind::Str),
        (4, "parent_span_id", Kind::Bytes),
        (5, "name", Kind::Str),
        (6, "kind", Kind::Varint),
        (7, "start_time_unix_nano", Kind::Fixed64),
        (8, "end_time_unix_nano", Kind::Fixed64),
        (9, "attributes", Kind::Message(&KEY_VALUE)),
        (10, "dropped_attributes_count", Kind::Varint),
        (11, "events", Kind::Message(&EVENT)),
        (12, "dropped_events_count", Kind::Varint),
        (13, "links", Kind::Message(&LINK)),
        (14, "dropped_links_count", Kind::Varint),
        (15, "status", Kind::Message(&STATUS)),
        (16, "flags", Kind::Fixed32),
    ],
};
static EVENT: Schema = Schema {
    name: "Span.Event",
    fields: &[
        (1, "time_unix_nano", Kind::Fixed64),
        (2, "name", Kind::Str),
        (3, "attributes", Kind::Message(&KEY_VALUE)),
        (4, "dropped_attributes_count", Kind::Varint),
    ],
};
static LINK: Schema = Schema {
    name: "Span.Link",
    fields: &[
        (1, "trace_id", Kind::Bytes),
        (2, "span_id", Kind::Bytes),
        (3, "trace_state", Kind::Str),
        (4, "attributes", Kind::Message(&KEY_VALUE)),
        (5, "dropped_attributes_count", Kind::Varint),
        (6, "flags", Kind::Fixed32),
    ],
};
static STATUS: Schema = Schema {
    name: "Status",
    fields: &[(2, "message", Kind::Str), (3, "code", Kind::Varint)],
};
static KEY_VALUE: Schema = Schema {
    name: "KeyValue",
    fields: &[
        (1, "key", Kind::Str),
        (2, "value", Kind::Message(&ANY_VALUE)),
        (3, "key_strindex", Kind::Varint),
    ],
};
static ANY_VALUE: Schema = Schema {
    name: "AnyValue",
    fields: &[
        (1, "string_value", Kind::Str),
        (2, "bool_value", Kind::Varint),
        (3, "int_value", Kind::Varint),
        (4, "double_value", Kind::Fixed64),
        (5, "array_value", Kind::Message(&ARRAY_VALUE)),
        (6, "kvlist_value", Kind::Message(&KEY_VALUE_LIST)),
        (7, "bytes_value", Kind::Bytes),
        (8, "string_value_strindex", Kind::Varint),
    ],
};
static ARRAY_VALUE: Schema = Schema {
    name: "ArrayValue",
    fields: &[(1, "values", Kind::Message(&ANY_VALUE))],
};
static KEY_VALUE_LIST: Schema = Schema {
    name: "KeyValueList",
    fields: &[(1, "values", Kind::Message(&KEY_VALUE))],
};

/// Checks every field of `message` against `schema`; unknown fields are
/// skipped. `visit` gets the contents of each `Bytes` and `Counted` field
/// with its number.
fn check_message<'a>(
    message: &'a [u8],
    level: u32,
    schema: &Schema,
    mut visit: impl FnMut(u32, &'a [u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let m = schema.name;
    let mut r = Reader::new(message);
    while !r.is_empty() {
        let (number, wire_type) = r.key()?;
        let Some(&(_, field, kind)) = schema.fields.iter().find(|(n, ..)| *n == number) else {
            r.skip(number, wire_type, level)?;
            continue;
        };
        match kind {
            Kind::Str => {
                expect(m, field, wire_type, LEN)?;
                let bytes = r.len_delimited()?;
                // Nearly every string is short ASCII, which `is_ascii`
                // settles with less ceremony than `from_utf8`.
                if !bytes.is_ascii() {
                    std::str::from_utf8(bytes)
                        .map_err(|_| DecodeError::Utf8 { message: m, field })?;
                }
            }
            Kind::Bytes => {
                expect(m, field, wire_type, LEN)?;
                visit(number, r.len_delimited()?)?;
            }
            Kind::Varint => {
                expect(m, field, wire_type, VARINT)?;
                r.varint()?;
            }
            Kind::Fixed64 => {
                expect(m, field, wire_type, FIXED64)?;
                r.fixed64()?;
            }
            Kind::Fixed32 => {
                expect(m, field, wire_type, FIXED32)?;
                r.fixed32()?;
            }
            Kind::Message(inner) => {
                let nested = nested(&mut r, m, field, wire_type, level)?;
                check_message(nested, level - 1, inner, ignore)?;
            }
            Kind::Counted => visit(number, nested(&mut r, m, field, wire_type, level)?)?,
        }
    }
    Ok(())
}

/// A `visit` for messages with nothing to report.
fn ignore(_number: u32, _contents: &[u8]) -> Result<(), DecodeError> {
    Ok(())
}

/// Reads the message field `field` (nested one level deeper).
fn nested<'a>(
    r: &mut Reader<'a>,
    message: &'static str,
    field: &'static str,
    wire_type: u8,
    level: u32,
) -> Result<&'a [u8], DecodeError> {
    expect(message, field, wire_type, LEN)?;
    if level == 0 {
        return Err(DecodeError::TooDeep);
    }
    r.len_delimited()
}

fn expect(
    message: &'static str,
    field: &'static str,
    found: u8,
    expected: u8,
) -> Result<(), DecodeError> {
    if found == expected {
        Ok(())
    } else {
        Err(DecodeError::WrongWireType {
            message,
            field,
            found,
            expected,
        })
    }
}

fn check_resource_spans(
    message: &[u8],
    level: u32,
    spans: &mut SpanCounts,
) -> Result<(), DecodeError> {
    check_message(message, level, &RESOURCE_SPANS, |_, scope_spans| {
        check_scope_spans(scope_spans, level - 1, spans)
    })
}

fn check_scope_spans(
    message: &[u8],
    level: u32,
    spans: &mut SpanCounts,
) -> Result<(), DecodeError> {
    check_message(message, level, &SCOPE_SPANS, |_, span| {
        match check_span(span, level - 1)? {
            Ok(()) => spans.valid += 1,
            Err(rejection) => {
                spans.refused += 1;
                spans.first.get_or_insert(rejection);
            }
        }
        Ok(())
    })
}

/// The outer error is a malformed encoding (the whole export is refused);
/// the inner one a well-formed span the collector refuses.
fn check_span(message: &[u8], level: u32) -> Result<Result<(), Rejection>, DecodeError> {
    let (mut trace_id, mut span_id, mut parent_span_id): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    check_message(message, level, &SPAN, |number, id| {
        match number {
            1 => trace_id = id,
            2 => span_id = id,
            4 => parent_span_id = id,
            _ => {}
        }
        Ok(())
    })?;
    Ok(span_rejection(trace_id, span_id, parent_span_id))
}

/// [`super::check_span`] on a span's raw ids.
fn span_rejection(trace_id: &[u8], span_id: &[u8], parent_span_id: &[u8]) -> Result<(), Rejection> {
    TraceId::from_slice(trace_id).ok_or(Rejection::InvalidTraceId)?;
    SpanId::from_slice(span_id).ok_or(Rejection::InvalidSpanId)?;
    super::optional_id(parent_span_id, 8, SpanId::from_slice)
        .map_err(|()| Rejection::InvalidParentSpanId)?;
    Ok(())
}

// === views ===

impl TraceExport {
    /// The encoded size, charged to the ingest queue.
    pub fn encoded_len(&self) -> usize {
        self.encoded.len()
    }

    pub fn resource_spans(&self) -> impl Iterator<Item = ResourceSpansView<'_>> {
        Fields::new(&self.encoded)
            .messages(1)
            .map(ResourceSpansView)
    }

    /// The export as prost's owned messages without the refused spans:
    /// what the exporters forward.
    pub fn to_request(&self) -> ExportTraceServiceRequest {
        let mut request =
            ExportTraceServiceRequest::decode(self.encoded.as_ref()).unwrap_or_default();
        for scope_spans in request
            .resource_spans
            .iter_mut()
            .flat_map(|r| &mut r.scope_spans)
        {
            scope_spans
                .spans
                .retain(|span| super::check_span(span).is_ok());
        }
        request
    }
}

/// The encoding of a message field given `parts` times: one part as it
/// is, several concatenated (protobuf merges a message field given more
/// than once, and the merge is what the concatenation decodes to). Empty
/// when absent, which decodes to the default message, as an absent field
/// is treated everywhere here.
pub fn merged<'a>(mut parts: impl Iterator<Item = &'a [u8]>) -> Cow<'a, [u8]> {
    let Some(first) = parts.next() else {
        return Cow::Borrowed(&[]);
    };
    match parts.next() {
        None => Cow::Borrowed(first),
        Some(second) => {
            let mut all = [first, second].concat();
            parts.for_each(|part| all.extend_from_slice(part));
            Cow::Owned(all)
        }
    }
}

/// What else wants each span the store keeps, during the store's one walk
/// over an export: the derived metrics.
pub trait SpanVisitor {
    /// The spans that follow come from this (encoded) resource.
    fn resource(&mut self, resource: &[u8]);
    fn span(&mut self, span: &SpanView<'_>);
}

/// No visitor.
impl SpanVisitor for () {
    fn resource(&mut self, _resource: &[u8]) {}
    fn span(&mut self, _span: &SpanView<'_>) {}
}

/// One `ResourceSpans`.
#[derive(Debug, Clone, Copy)]
pub struct ResourceSpansView<'a>(&'a [u8]);

impl<'a> ResourceSpansView<'a> {
    /// The resource's encoding (see [`merged`]).
    pub fn resource(&self) -> Cow<'a, [u8]> {
        merged(Fields::new(self.0).messages(1))
    }

    pub fn scope_spans(&self) -> impl Iterator<Item = ScopeSpansView<'a>> + use<'a> {
        Fields::new(self.0).messages(2).map(ScopeSpansView)
    }
}

/// One `ScopeSpans`.
#[derive(Debug, Clone, Copy)]
pub struct ScopeSpansView<'a>(&'a [u8]);

impl<'a> ScopeSpansView<'a> {
    /// The instrumentation scope's encoding (see [`merged`]).
    pub fn scope(&self) -> Cow<'a, [u8]> {
        merged(Fields::new(self.0).messages(1))
    }

    /// The encoded spans, for [`SpanView::parse`].
    pub fn spans(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        Fields::new(self.0).messages(2)
    }
}

/// The attributes of an encoded `Resource` or `InstrumentationScope`
/// (field 1 and 3): encoded `KeyValue`s.
pub fn resource_attributes(resource: &[u8]) -> impl Iterator<Item = &[u8]> {
    Fields::new(resource).messages(1)
}

/// A span's fixed fields, read in one pass; attributes, events and links
/// are read on demand from the span's encoding.
#[derive(Debug, Clone, Copy)]
pub struct SpanView<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    /// UTF-8 (checked).
    pub name: &'a [u8],
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub status_code: i32,
    /// UTF-8 (checked).
    pub status_message: &'a [u8],
    pub attribute_count: u64,
    pub event_count: u64,
    pub link_count: u64,
    /// Where the attributes, events and links are in `encoded`: from the
    /// first occurrence to the end of the last, so reading them skips the
    /// span's other fields.
    attributes: Extent,
    events: Extent,
    links: Extent,
    encoded: &'a [u8],
}

/// A byte range of a message: `start..end`.
#[derive(Debug, Clone, Copy, Default)]
struct Extent {
    start: usize,
    end: usize,
}

impl Extent {
    fn extend(&mut self, count: u64, start: usize, end: usize) {
        if count == 0 {
            self.start = start;
        }
        self.end = end;
    }
}

impl<'a> SpanView<'a> {
    pub fn parse(encoded: &'a [u8]) -> Self {
        let mut span = Self {
            trace_id: &[],
            span_id: &[],
            parent_span_id: &[],
            name: &[],
            kind: 0,
            start_time_unix_nano: 0,
            end_time_unix_nano: 0,
            status_code: 0,
            status_message: &[],
            attribute_count: 0,
            event_count: 0,
            link_count: 0,
            attributes: Extent::default(),
            events: Extent::default(),
            links: Extent::default(),
            encoded,
        };
        let mut fields = Fields::new(encoded);
        loop {
            let start = encoded.len() - fields.remaining();
            let Some((number, value)) = fields.next() else {
                break;
            };
            let end = encoded.len() - fields.remaining();
            match (number, value) {
                (1, Value::Len(b)) => span.trace_id = b,
                (2, Value::Len(b)) => span.span_id = b,
                (4, Value::Len(b)) => span.parent_span_id = b,
                (5, Value::Len(b)) => span.name = b,
                (6, Value::Varint(v)) => span.kind = v as i32,
                (7, Value::Fixed64(v)) => span.start_time_unix_nano = v,
                (8, Value::Fixed64(v)) => span.end_time_unix_nano = v,
                (9, _) => {
                    span.attributes.extend(span.attribute_count, start, end);
                    span.attribute_count += 1;
                }
                (11, _) => {
                    span.events.extend(span.event_count, start, end);
                    span.event_count += 1;
                }
                (13, _) => {
                    span.links.extend(span.link_count, start, end);
                    span.link_count += 1;
                }
                // A status given twice merges: each field's last value wins.
                (15, Value::Len(status)) => {
                    for field in Fields::new(status) {
                        match field {
                            (2, Value::Len(b)) => span.status_message = b,
                            (3, Value::Varint(v)) => span.status_code = v as i32,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        span
    }

    /// Encoded `KeyValue`s, for [`KeyValueView::parse`].
    pub fn attributes(&self) -> impl Iterator<Item = &'a [u8]> + Clone + use<'a> {
        self.repeated(self.attributes, 9)
    }

    pub fn events(&self) -> impl Iterator<Item = EventView<'a>> + use<'a> {
        self.repeated(self.events, 11).map(EventView::parse)
    }

    pub fn links(&self) -> impl Iterator<Item = LinkView<'a>> + Clone + use<'a> {
        self.repeated(self.links, 13).map(LinkView::parse)
    }

    /// The occurrences of message field `number`, all within `range`.
    fn repeated(
        &self,
        range: Extent,
        number: u32,
    ) -> impl Iterator<Item = &'a [u8]> + Clone + use<'a> {
        let fields = self.encoded.get(range.start..range.end).unwrap_or_default();
        Fields::new(fields).messages(number)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    pub time_unix_nano: u64,
    pub name: &'a [u8],
    encoded: &'a [u8],
}

impl<'a> EventView<'a> {
    fn parse(encoded: &'a [u8]) -> Self {
        let mut event = Self {
            time_unix_nano: 0,
            name: &[],
            encoded,
        };
        for field in Fields::new(encoded) {
            match field {
                (1, Value::Fixed64(v)) => event.time_unix_nano = v,
                (2, Value::Len(b)) => event.name = b,
                _ => {}
            }
        }
        event
    }

    pub fn attributes(&self) -> impl Iterator<Item = &'a [u8]> + Clone + use<'a> {
        Fields::new(self.encoded).messages(3)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LinkView<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    encoded: &'a [u8],
}

impl<'a> LinkView<'a> {
    fn parse(encoded: &'a [u8]) -> Self {
        let mut link = Self {
            trace_id: &[],
            span_id: &[],
            encoded,
        };
        for field in Fields::new(encoded) {
            match field {
                (1, Value::Len(b)) => link.trace_id = b,
                (2, Value::Len(b)) => link.span_id = b,
                _ => {}
            }
        }
        link
    }

    /// The link's ids; `None` for malformed ones (the link is dropped).
    pub fn ids(&self) -> Option<(TraceId, SpanId)> {
        Some((
            TraceId::from_slice(self.trace_id)?,
            SpanId::from_slice(self.span_id)?,
        ))
    }

    pub fn attributes(&self) -> impl Iterator<Item = &'a [u8]> + Clone + use<'a> {
        Fields::new(self.encoded).messages(4)
    }
}

/// One attribute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyValueView<'a> {
    Simple {
        /// UTF-8 (checked).
        key: &'a [u8],
        value: AnyValueView<'a>,
    },
    /// A `KeyValue` whose value is given more than once or with several
    /// fields: [`Self::decode`] resolves it with prost's merge rules.
    Merged(&'a [u8]),
}

impl<'a> KeyValueView<'a> {
    #[inline]
    pub fn parse(encoded: &'a [u8]) -> Self {
        match Self::parse_usual(encoded) {
            Some(parsed) => parsed,
            None => Self::parse_any(encoded),
        }
    }

    /// The layout every SDK writes: the key, then one value with one field.
    #[inline]
    fn parse_usual(encoded: &'a [u8]) -> Option<Self> {
        let (key, value) = Self::usual_layout(encoded)?;
        let value = match value {
            None => AnyValueView::Empty,
            Some(value) => AnyValueView::parse(value)?,
        };
        Some(Self::Simple { key, value })
    }

    /// The key and the encoded value (if any) of an attribute written the
    /// usual way, the key then at most one value, reading only the value's
    /// length; `None` for any other layout.
    #[inline]
    fn usual_layout(encoded: &'a [u8]) -> Option<(&'a [u8], Option<&'a [u8]>)> {
        let mut r = Reader::new(encoded);
        if r.key().ok()? != (1, LEN) {
            return None;
        }
        let key = r.len_delimited().ok()?;
        if r.is_empty() {
            return Some((key, None));
        }
        if r.key().ok()? != (2, LEN) {
            return None;
        }
        let value = r.len_delimited().ok()?;
        r.is_empty().then_some((key, Some(value)))
    }

    fn parse_any(encoded: &'a [u8]) -> Self {
        let mut key: &[u8] = &[];
        let mut value = None;
        let mut values = 0;
        for field in Fields::new(encoded) {
            match field {
                (1, Value::Len(b)) => key = b,
                (2, Value::Len(b)) => {
                    value = Some(b);
                    values += 1;
                }
                _ => {}
            }
        }
        let value = match value {
            None => AnyValueView::Empty,
            Some(value) if values == 1 => match AnyValueView::parse(value) {
                Some(value) => value,
                None => return Self::Merged(encoded),
            },
            Some(_) => return Self::Merged(encoded),
        };
        Self::Simple { key, value }
    }

    /// A [`Self::Merged`] attribute (or any other) decoded by prost.
    pub fn decode(encoded: &[u8]) -> KeyValue {
        KeyValue::decode(encoded).unwrap_or_default()
    }
}

/// An attribute value whose encoding has at most one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnyValueView<'a> {
    /// No value, or one only profiles use (`string_value_strindex`).
    Empty,
    /// UTF-8 (checked).
    Str(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// An encoded `ArrayValue`: [`array_values`].
    Array(&'a [u8]),
    /// An encoded `KeyValueList`: [`map_entries`].
    Map(&'a [u8]),
}

impl<'a> AnyValueView<'a> {
    /// `None` when the value has more than one field: [`Self::decode`]
    /// resolves which one counts.
    #[inline]
    pub fn parse(encoded: &'a [u8]) -> Option<Self> {
        let mut fields = Fields::new(encoded);
        let Some(field) = fields.next() else {
            return Some(Self::Empty);
        };
        if fields.next().is_some() {
            return None;
        }
        Some(match field {
            (1, Value::Len(b)) => Self::Str(b),
            (2, Value::Varint(v)) => Self::Bool(v != 0),
            (3, Value::Varint(v)) => Self::Int(v as i64),
            (4, Value::Fixed64(v)) => Self::Double(f64::from_bits(v)),
            (5, Value::Len(b)) => Self::Array(b),
            (6, Value::Len(b)) => Self::Map(b),
            (7, Value::Len(b)) => Self::Bytes(b),
            _ => Self::Empty,
        })
    }

    pub fn decode(encoded: &[u8]) -> AnyValue {
        AnyValue::decode(encoded).unwrap_or_default()
    }
}

/// The elements of an encoded `ArrayValue`: encoded `AnyValue`s.
pub fn array_values(array: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    Fields::new(array).messages(1)
}

/// The entries of an encoded `KeyValueList`: encoded `KeyValue`s.
pub fn map_entries(map: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    Fields::new(map).messages(1)
}

/// The value of the first attribute named `key` if it is a string, as
/// `string_attribute` over prost's `KeyValue`s would find it.
pub fn string_attribute<'a>(
    attributes: impl Iterator<Item = &'a [u8]>,
    key: &str,
) -> Option<Cow<'a, str>> {
    let [value] = string_attributes(attributes, [key]);
    value
}

/// [`string_attribute`] for several keys in one pass over the attributes.
pub fn string_attributes<'a, const N: usize>(
    attributes: impl Iterator<Item = &'a [u8]>,
    keys: [&str; N],
) -> [Option<Cow<'a, str>>; N] {
    let mut values = [const { None }; N];
    let mut decided = [false; N];
    let mut undecided = N;
    for encoded in attributes {
        if undecided == 0 {
            break;
        }
        if let Some((key, _)) = KeyValueView::usual_layout(encoded)
            && !(0..N).any(|i| !decided[i] && key == keys[i].as_bytes())
        {
            continue;
        }
        let (key, value) = match KeyValueView::parse(encoded) {
            KeyValueView::Simple { key, value } => {
                let value = match value {
                    AnyValueView::Str(s) => std::str::from_utf8(s).ok().map(Cow::Borrowed),
                    _ => None,
                };
                (Cow::Borrowed(key), value)
            }
            KeyValueView::Merged(encoded) => {
                let kv = KeyValueView::decode(encoded);
                let value = match kv.value.and_then(|v| v.value) {
                    Some(AnyKind::StringValue(s)) => Some(Cow::Owned(s)),
                    _ => None,
                };
                (Cow::Owned(kv.key.into_bytes()), value)
            }
        };
        for (i, wanted) in keys.iter().enumerate() {
            if !decided[i] && *key == *wanted.as_bytes() {
                decided[i] = true;
                undecided -= 1;
                values[i].clone_from(&value);
            }
        }
    }
    values
}

#[cfg(test)]
mod tests;
