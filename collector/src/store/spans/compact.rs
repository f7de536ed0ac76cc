//! The stored form of a span: fixed fields inline, strings as interned
//! symbols, and everything variable-length (status message, attributes,
//! events, links) encoded into one byte buffer.
//!
//! A [`CompactSpan`] costs one allocation (its buffer) where a
//! [`SpanRecord`] costs one per string, attribute list, event and link.
//! Queries that filter read the buffer in place ([`TagMatcher`]); only the
//! spans a query returns are turned back into `SpanRecord`s
//! ([`CompactSpan::decode`]), which is exactly what the conversion from
//! OTLP would have produced, so the query APIs see no difference.
//!
//! # Buffer layout
//!
//! ```text
//! status message: text
//! attributes:     varint count, then (key: text, value) each
//! events:         varint count, then (time: u64 LE, name: text, attributes) each
//! links:          varint count, then (trace id: 16 bytes, span id: 8 bytes, attributes) each
//!
//! text:  varint (symbol << 1)            an interned string
//!        varint (len << 1 | 1), bytes    a string stored inline
//! value: tag byte, then per tag: STR text | INT zigzag varint | DOUBLE f64 LE
//!        | BYTES varint len, bytes | ARRAY varint count, values
//!        | MAP varint count, (key: text, value) pairs | nothing for EMPTY, FALSE, TRUE
//! ```
//!
//! Interning rule: keys are always interned, other strings when they are
//! non-empty and at most [`MAX_INTERNED_TEXT`] bytes long (long strings are
//! usually unique: SQL, URLs with ids, stack traces). So a short non-empty
//! string that is not in the interner is in no stored span.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as AnyKind};

use crate::{
    model::{
        AttrValue, Attribute, Resource, Scope, SpanEvent, SpanId, SpanKind, SpanLink, SpanRecord,
        StatusCode, TraceId,
    },
    otlp::{
        self,
        traces::{AnyValueView, KeyValueView, SpanView, array_values, map_entries},
    },
    store::interner::{Interner, RecentSymbols},
};

/// Longest string value that is interned rather than stored inline.
pub const MAX_INTERNED_TEXT: usize = 64;

/// Index entries a stored span adds (its sequence number in the trace and
/// the service index), charged to the span's bytes.
const INDEX_BYTES: usize = 2 * size_of::<u64>();

/// Allocator bookkeeping per heap block, charged to the buffer.
const ALLOCATION_OVERHEAD: usize = 16;

mod tag {
    pub const EMPTY: u8 = 0;
    pub const STR: u8 = 1;
    pub const FALSE: u8 = 2;
    pub const TRUE: u8 = 3;
    pub const INT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const BYTES: u8 = 6;
    pub const ARRAY: u8 = 7;
    pub const MAP: u8 = 8;
}

/// One stored span; `name` is a symbol of the store's interner, `resource`
/// and `scope` ids in its shared tables.
#[derive(Debug)]
pub struct CompactSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub name: u32,
    pub resource: u32,
    pub scope: u32,
    pub kind: SpanKind,
    pub status: StatusCode,
    data: Box<[u8]>,
}

impl CompactSpan {
    /// Encodes a span read from a checked export; `None` for a span the
    /// receiver refused (its ids are checked before anything is interned).
    /// `recent` remembers the symbols of the previous span's attributes.
    pub fn from_wire<'a>(
        span: &SpanView<'a>,
        resource: u32,
        scope: u32,
        interner: &mut Interner,
        recent: &mut RecentSymbols<'a>,
        scratch: &mut Vec<u8>,
    ) -> Option<Self> {
        let trace_id = TraceId::from_slice(span.trace_id)?;
        let span_id = SpanId::from_slice(span.span_id)?;
        let parent_span_id = otlp::optional_id(span.parent_span_id, 8, SpanId::from_slice).ok()?;
        scratch.clear();
        let mut w = Writer {
            out: scratch,
            interner,
        };
        w.text_bytes(span.status_message);
        recent.validate(w.interner);
        w.span_attributes(span.attribute_count, span.attributes(), recent);
        w.varint(span.event_count);
        for event in span.events() {
            w.out.extend_from_slice(&event.time_unix_nano.to_le_bytes());
            w.text_bytes(event.name);
            let attributes = event.attributes();
            w.wire_attributes(attributes.clone().count() as u64, attributes);
        }
        // A link with malformed ids points nowhere and is dropped, as in
        // `otlp::span`.
        let links = span.links().filter_map(|l| Some((l.ids()?, l)));
        w.varint(links.clone().count() as u64);
        for ((trace_id, span_id), link) in links {
            w.ids(trace_id, span_id);
            let attributes = link.attributes();
            w.wire_attributes(attributes.clone().count() as u64, attributes);
        }
        let name = match recent.name(span.name, w.interner) {
            Some(sym) => sym,
            None => w.symbol(span.name),
        };
        Some(Self {
            trace_id,
            span_id,
            parent_span_id,
            start_unix_nano: span.start_time_unix_nano,
            end_unix_nano: span.end_time_unix_nano,
            name,
            resource,
            scope,
            kind: SpanKind::from_otlp(span.kind),
            status: StatusCode::from_otlp(span.status_code),
            data: scratch.as_slice().into(),
        })
    }

    /// Encodes a span of the collector's model (tests build these).
    #[cfg(test)]
    pub fn from_record(
        span: &SpanRecord,
        resource: u32,
        scope: u32,
        interner: &mut Interner,
        scratch: &mut Vec<u8>,
    ) -> Self {
        scratch.clear();
        let mut w = Writer {
            out: scratch,
            interner,
        };
        w.text(&span.status_message);
        w.attributes(&span.attributes);
        w.varint(span.events.len() as u64);
        for event in &span.events {
            w.out.extend_from_slice(&event.time_unix_nano.to_le_bytes());
            w.text(&event.name);
            w.attributes(&event.attributes);
        }
        w.varint(span.links.len() as u64);
        for link in &span.links {
            w.ids(link.trace_id, link.span_id);
            w.attributes(&link.attributes);
        }
        let name = interner.intern(&span.name);
        Self {
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            start_unix_nano: span.start_unix_nano,
            end_unix_nano: span.end_unix_nano,
            name,
            resource,
            scope,
            kind: span.kind,
            status: span.status,
            data: scratch.as_slice().into(),
        }
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    /// What this span costs in the store, interned strings aside (the
    /// interner charges those once, however many spans share them).
    pub fn bytes(&self) -> usize {
        size_of::<Self>() + self.data.len() + ALLOCATION_OVERHEAD + INDEX_BYTES
    }

    /// Gives back every symbol this span holds; called once, at eviction.
    pub fn release(&self, interner: &mut Interner) {
        interner.release(self.name);
        let mut r = Reader::new(&self.data);
        r.release_text(interner);
        r.release_attributes(interner);
        for _ in 0..r.varint() {
            r.skip(8);
            r.release_text(interner);
            r.release_attributes(interner);
        }
        for _ in 0..r.varint() {
            r.skip(24);
            r.release_attributes(interner);
        }
    }

    /// The span as the query APIs see it.
    pub fn decode(
        &self,
        interner: &Interner,
        resource: &Arc<Resource>,
        scope: &Arc<Scope>,
    ) -> SpanRecord {
        let mut r = Reader::new(&self.data);
        let status_message = r.text(interner).to_owned();
        let attributes = r.attributes(interner);
        let events = (0..r.varint())
            .map(|_| SpanEvent {
                time_unix_nano: r.u64(),
                name: r.text(interner).to_owned(),
                attributes: r.attributes(interner),
            })
            .collect();
        let links = (0..r.varint())
            .map(|_| {
                let trace_id = r.trace_id();
                let span_id = r.span_id();
                SpanLink {
                    trace_id,
                    span_id,
                    attributes: r.attributes(interner),
                }
            })
            .collect();
        SpanRecord {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            name: interner.resolve(self.name).to_owned(),
            kind: self.kind,
            start_unix_nano: self.start_unix_nano,
            end_unix_nano: self.end_unix_nano,
            attributes,
            events,
            links,
            status: self.status,
            status_message,
            resource: Arc::clone(resource),
            scope: Arc::clone(scope),
        }
    }

    /// The status message, without decoding anything else.
    fn status_message<'a>(&'a self, interner: &'a Interner) -> &'a str {
        Reader::new(&self.data).text(interner)
    }
}

// === encoding ===

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    interner: &'a mut Interner,
}

impl Writer<'_> {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.out.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.out.push(value as u8);
    }

    /// Interns the bytes of a string read from a checked export (so
    /// UTF-8); anything else would be interned in its lossy form.
    fn symbol(&mut self, text: &[u8]) -> u32 {
        match self.interner.intern_bytes(text) {
            Some(sym) => sym,
            None => self.interner.intern(&String::from_utf8_lossy(text)),
        }
    }

    fn key(&mut self, key: &str) {
        self.key_bytes(key.as_bytes());
    }

    fn key_bytes(&mut self, key: &[u8]) {
        let sym = self.symbol(key);
        self.varint(u64::from(sym) << 1);
    }

    fn text(&mut self, text: &str) {
        self.text_bytes(text.as_bytes());
    }

    /// The interning rule of the module's doc.
    fn text_bytes(&mut self, text: &[u8]) {
        if text.is_empty() || text.len() > MAX_INTERNED_TEXT {
            self.varint(((text.len() as u64) << 1) | 1);
            self.out.extend_from_slice(text);
        } else {
            let sym = self.symbol(text);
            self.varint(u64::from(sym) << 1);
        }
    }

    fn ids(&mut self, trace_id: TraceId, span_id: SpanId) {
        self.out.extend_from_slice(&trace_id.to_bytes());
        self.out.extend_from_slice(&span_id.to_bytes());
    }

    fn int(&mut self, i: i64) {
        self.out.push(tag::INT);
        self.varint(((i << 1) ^ (i >> 63)) as u64);
    }

    fn double(&mut self, d: f64) {
        self.out.push(tag::DOUBLE);
        self.out.extend_from_slice(&d.to_le_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.out.push(tag::BYTES);
        self.varint(bytes.len() as u64);
        self.out.extend_from_slice(bytes);
    }

    /// A span's `count` encoded `KeyValue`s, interned through `recent`.
    fn span_attributes<'a>(
        &mut self,
        count: u64,
        kvs: impl Iterator<Item = &'a [u8]>,
        recent: &mut RecentSymbols<'a>,
    ) {
        self.varint(count);
        for (position, kv) in kvs.enumerate() {
            let KeyValueView::Simple { key, value } = KeyValueView::parse(kv) else {
                self.wire_attribute(kv);
                continue;
            };
            let sym = match recent.key(position, key, self.interner) {
                Some(sym) => sym,
                None => self.symbol(key),
            };
            self.varint(u64::from(sym) << 1);
            match value {
                AnyValueView::Str(text) if !text.is_empty() && text.len() <= MAX_INTERNED_TEXT => {
                    self.out.push(tag::STR);
                    let sym = match recent.value(position, text, self.interner) {
                        Some(sym) => sym,
                        None => self.symbol(text),
                    };
                    self.varint(u64::from(sym) << 1);
                }
                other => self.wire_value(other),
            }
        }
    }

    /// `count` encoded `KeyValue`s.
    fn wire_attributes<'a>(&mut self, count: u64, kvs: impl Iterator<Item = &'a [u8]>) {
        self.varint(count);
        for kv in kvs {
            self.wire_attribute(kv);
        }
    }

    fn wire_attribute(&mut self, kv: &[u8]) {
        match KeyValueView::parse(kv) {
            KeyValueView::Simple { key, value } => {
                self.key_bytes(key);
                self.wire_value(value);
            }
            KeyValueView::Merged(encoded) => {
                let kv = KeyValueView::decode(encoded);
                self.key(&kv.key);
                self.otlp_value(kv.value.as_ref());
            }
        }
    }

    /// Mirrors `otlp::any_value`, as [`Self::otlp_value`] does.
    fn wire_value(&mut self, value: AnyValueView<'_>) {
        match value {
            AnyValueView::Str(s) => {
                self.out.push(tag::STR);
                self.text_bytes(s);
            }
            AnyValueView::Bool(b) => self.out.push(if b { tag::TRUE } else { tag::FALSE }),
            AnyValueView::Int(i) => self.int(i),
            AnyValueView::Double(d) => self.double(d),
            AnyValueView::Bytes(b) => self.bytes(b),
            AnyValueView::Array(array) => {
                self.out.push(tag::ARRAY);
                let values = array_values(array);
                self.varint(values.clone().count() as u64);
                for encoded in values {
                    match AnyValueView::parse(encoded) {
                        Some(value) => self.wire_value(value),
                        None => self.otlp_value(Some(&AnyValueView::decode(encoded))),
                    }
                }
            }
            AnyValueView::Map(map) => {
                self.out.push(tag::MAP);
                let entries = map_entries(map);
                self.wire_attributes(entries.clone().count() as u64, entries);
            }
            AnyValueView::Empty => self.out.push(tag::EMPTY),
        }
    }

    fn otlp_attributes(&mut self, kvs: &[KeyValue]) {
        self.varint(kvs.len() as u64);
        for kv in kvs {
            self.key(&kv.key);
            self.otlp_value(kv.value.as_ref());
        }
    }

    /// Mirrors `otlp::any_value`.
    fn otlp_value(&mut self, value: Option<&AnyValue>) {
        match value.and_then(|v| v.value.as_ref()) {
            Some(AnyKind::StringValue(s)) => {
                self.out.push(tag::STR);
                self.text(s);
            }
            Some(AnyKind::BoolValue(b)) => self.out.push(if *b { tag::TRUE } else { tag::FALSE }),
            Some(AnyKind::IntValue(i)) => self.int(*i),
            Some(AnyKind::DoubleValue(d)) => self.double(*d),
            Some(AnyKind::BytesValue(b)) => self.bytes(b),
            Some(AnyKind::ArrayValue(a)) => {
                self.out.push(tag::ARRAY);
                self.varint(a.values.len() as u64);
                for v in &a.values {
                    self.otlp_value(Some(v));
                }
            }
            Some(AnyKind::KvlistValue(kvs)) => {
                self.out.push(tag::MAP);
                self.otlp_attributes(&kvs.values);
            }
            Some(AnyKind::StringValueStrindex(_)) | None => self.out.push(tag::EMPTY),
        }
    }

    #[cfg(test)]
    fn attributes(&mut self, attrs: &[Attribute]) {
        self.varint(attrs.len() as u64);
        for a in attrs {
            self.key(&a.key);
            self.value(&a.value);
        }
    }

    #[cfg(test)]
    fn value(&mut self, value: &AttrValue) {
        match value {
            AttrValue::Str(s) => {
                self.out.push(tag::STR);
                self.text(s);
            }
            AttrValue::Bool(b) => self.out.push(if *b { tag::TRUE } else { tag::FALSE }),
            AttrValue::Int(i) => self.int(*i),
            AttrValue::Double(d) => self.double(*d),
            AttrValue::Bytes(b) => self.bytes(b),
            AttrValue::Array(values) => {
                self.out.push(tag::ARRAY);
                self.varint(values.len() as u64);
                for v in values {
                    self.value(v);
                }
            }
            AttrValue::Map(attrs) => {
                self.out.push(tag::MAP);
                self.attributes(attrs);
            }
            AttrValue::Empty => self.out.push(tag::EMPTY),
        }
    }
}

// === decoding ===

/// A string in the buffer: a symbol or inline bytes.
enum Text<'a> {
    Sym(u32),
    Inline(&'a [u8]),
}

/// Reads a buffer this module wrote. The buffer never comes from outside,
/// so malformed data is a bug here, not bad input.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.data[self.pos];
        self.pos += 1;
        b
    }

    fn varint(&mut self) -> u64 {
        let mut value = 0;
        let mut shift = 0;
        loop {
            let b = self.byte();
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return value;
            }
            shift += 7;
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        bytes
    }

    fn skip(&mut self, n: usize) {
        self.pos += n;
    }

    fn u64(&mut self) -> u64 {
        let bytes: [u8; 8] = self.take(8).try_into().expect("8 bytes");
        u64::from_le_bytes(bytes)
    }

    fn trace_id(&mut self) -> TraceId {
        let bytes: [u8; 16] = self.take(16).try_into().expect("16 bytes");
        TraceId::from_bytes(bytes).expect("stored ids are valid")
    }

    fn span_id(&mut self) -> SpanId {
        let bytes: [u8; 8] = self.take(8).try_into().expect("8 bytes");
        SpanId::from_bytes(bytes).expect("stored ids are valid")
    }

    fn text_ref(&mut self) -> Text<'a> {
        let v = self.varint();
        if v & 1 == 0 {
            Text::Sym((v >> 1) as u32)
        } else {
            Text::Inline(self.take((v >> 1) as usize))
        }
    }

    fn text<'b>(&mut self, interner: &'b Interner) -> &'b str
    where
        'a: 'b,
    {
        match self.text_ref() {
            Text::Sym(sym) => interner.resolve(sym),
            // Written from a `&str`, so always valid UTF-8.
            Text::Inline(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
        }
    }

    fn release_text(&mut self, interner: &mut Interner) {
        if let Text::Sym(sym) = self.text_ref() {
            interner.release(sym);
        }
    }

    fn int(&mut self) -> i64 {
        let z = self.varint();
        ((z >> 1) as i64) ^ -((z & 1) as i64)
    }

    fn double(&mut self) -> f64 {
        f64::from_bits(self.u64())
    }

    fn attributes(&mut self, interner: &Interner) -> Vec<Attribute> {
        (0..self.varint())
            .map(|_| {
                let key = self.text(interner).to_owned();
                Attribute::new(key, self.value(interner))
            })
            .collect()
    }

    fn value(&mut self, interner: &Interner) -> AttrValue {
        match self.byte() {
            tag::STR => AttrValue::Str(self.text(interner).to_owned()),
            tag::FALSE => AttrValue::Bool(false),
            tag::TRUE => AttrValue::Bool(true),
            tag::INT => AttrValue::Int(self.int()),
            tag::DOUBLE => AttrValue::Double(self.double()),
            tag::BYTES => {
                let len = self.varint() as usize;
                AttrValue::Bytes(self.take(len).to_vec())
            }
            tag::ARRAY => {
                AttrValue::Array((0..self.varint()).map(|_| self.value(interner)).collect())
            }
            tag::MAP => AttrValue::Map(self.attributes(interner)),
            _ => AttrValue::Empty,
        }
    }

    fn release_attributes(&mut self, interner: &mut Interner) {
        for _ in 0..self.varint() {
            self.release_text(interner);
            self.release_value(interner);
        }
    }

    fn release_value(&mut self, interner: &mut Interner) {
        match self.byte() {
            tag::STR => self.release_text(interner),
            tag::INT => {
                self.varint();
            }
            tag::DOUBLE => self.skip(8),
            tag::BYTES => {
                let len = self.varint() as usize;
                self.skip(len);
            }
            tag::ARRAY => {
                for _ in 0..self.varint() {
                    self.release_value(interner);
                }
            }
            tag::MAP => self.release_attributes(interner),
            _ => {}
        }
    }
}

// === tag search ===

/// The tags Jaeger users search that are not OTLP attributes (see
/// [`SpanRecord::derived_tags`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DerivedTag {
    Kind,
    StatusCode,
    Error,
    StatusDescription,
    ScopeName,
    ScopeVersion,
}

impl DerivedTag {
    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "span.kind" => Self::Kind,
            "otel.status_code" => Self::StatusCode,
            "error" => Self::Error,
            "otel.status_description" => Self::StatusDescription,
            "otel.scope.name" => Self::ScopeName,
            "otel.scope.version" => Self::ScopeVersion,
            _ => return None,
        })
    }
}

/// One `key=value` condition of a trace search, compiled against the
/// interner: attribute keys compare as symbols, string values as symbols
/// (or bytes, for inline strings), and numbers and booleans in their
/// stored form. A value is only rendered to text for the rare doubles,
/// bytes, arrays and maps, so the comparison is the same as comparing
/// [`AttrValue::to_text`] with the searched text.
#[derive(Debug)]
pub struct TagMatcher<'q> {
    value: &'q str,
    key_sym: Option<u32>,
    value_sym: Option<u32>,
    int: Option<i64>,
    boolean: Option<bool>,
    /// The value could be the text of a double, bytes, an array or a map.
    rendered: bool,
    derived: Option<DerivedTag>,
}

impl<'q> TagMatcher<'q> {
    pub fn new(key: &str, value: &'q str, interner: &Interner) -> Self {
        Self {
            value,
            key_sym: interner.lookup(key),
            value_sym: interner.lookup(value),
            int: value.parse::<i64>().ok().filter(|i| i.to_string() == value),
            boolean: value.parse::<bool>().ok(),
            rendered: value.parse::<f64>().is_ok() || value.starts_with(['"', '[', '{']),
            derived: DerivedTag::from_key(key),
        }
    }

    /// False when no stored attribute can match: the key is in no stored
    /// span, or the value is a short string in no stored span and not the
    /// text of a non-string value either. Span and event attributes need no
    /// scan then.
    pub fn attributes_can_match(&self) -> bool {
        let inline = self.value.is_empty() || self.value.len() > MAX_INTERNED_TEXT;
        self.key_sym.is_some()
            && (self.value_sym.is_some()
                || inline
                || self.int.is_some()
                || self.boolean.is_some()
                || self.rendered)
    }

    pub fn is_derived(&self) -> bool {
        self.derived.is_some()
    }

    /// Kind, status and scope tags.
    pub fn matches_derived(&self, span: &CompactSpan, scope: &Scope, interner: &Interner) -> bool {
        let v = self.value;
        match self.derived {
            None => false,
            Some(DerivedTag::Kind) => span.kind != SpanKind::Unspecified && span.kind.as_str() == v,
            Some(DerivedTag::StatusCode) => match span.status {
                StatusCode::Unset => false,
                StatusCode::Ok => v == "OK",
                StatusCode::Error => v == "ERROR",
            },
            Some(DerivedTag::Error) => span.status == StatusCode::Error && v == "true",
            Some(DerivedTag::StatusDescription) => {
                let message = span.status_message(interner);
                !message.is_empty() && message == v
            }
            Some(DerivedTag::ScopeName) => !scope.name.is_empty() && scope.name == v,
            Some(DerivedTag::ScopeVersion) => !scope.version.is_empty() && scope.version == v,
        }
    }

    /// Span attributes and event attributes, read in place.
    pub fn matches_attributes(&self, span: &CompactSpan, interner: &Interner) -> bool {
        let Some(key) = self.key_sym else {
            return false;
        };
        let mut r = Reader::new(&span.data);
        let _status = r.text_ref();
        if self.scan_attributes(&mut r, key, interner) {
            return true;
        }
        for _ in 0..r.varint() {
            r.skip(8);
            let _name = r.text_ref();
            if self.scan_attributes(&mut r, key, interner) {
                return true;
            }
        }
        false
    }

    /// Reads a whole attribute list (so the reader ends after it, whatever
    /// the answer) and says whether one attribute matches.
    fn scan_attributes(&self, r: &mut Reader<'_>, key: u32, interner: &Interner) -> bool {
        let mut found = false;
        for _ in 0..r.varint() {
            let is_key = matches!(r.text_ref(), Text::Sym(sym) if sym == key);
            if is_key && !found {
                found = self.value_matches(r, interner);
            } else {
                skip_value(r);
            }
        }
        found
    }

    fn value_matches(&self, r: &mut Reader<'_>, interner: &Interner) -> bool {
        match r.byte() {
            tag::STR => match r.text_ref() {
                Text::Sym(sym) => Some(sym) == self.value_sym,
                Text::Inline(bytes) => bytes == self.value.as_bytes(),
            },
            tag::FALSE => self.boolean == Some(false),
            tag::TRUE => self.boolean == Some(true),
            tag::INT => {
                let i = r.int();
                self.int == Some(i)
            }
            tag::DOUBLE => {
                let d = r.double();
                self.rendered && AttrValue::Double(d).to_text() == self.value
            }
            tag::EMPTY => self.value.is_empty(),
            nested => {
                // Bytes, arrays and maps: rare enough to render.
                r.pos -= 1;
                let _ = nested;
                let value = r.value(interner);
                self.rendered && value.to_text() == self.value
            }
        }
    }
}

fn skip_value(r: &mut Reader<'_>) {
    match r.byte() {
        tag::STR => {
            r.text_ref();
        }
        tag::INT => {
            r.varint();
        }
        tag::DOUBLE => r.skip(8),
        tag::BYTES => {
            let len = r.varint() as usize;
            r.skip(len);
        }
        tag::ARRAY => {
            for _ in 0..r.varint() {
                skip_value(r);
            }
        }
        tag::MAP => {
            for _ in 0..r.varint() {
                r.text_ref();
                skip_value(r);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        common::v1::{ArrayValue, KeyValueList},
        trace::v1::{
            Span, Status,
            span::{Event, Link},
        },
    };
    use prost::Message as _;

    use super::*;

    /// Encodes `span` and reads it back through the store's wire path.
    fn from_wire(span: &Span, interner: &mut Interner, scratch: &mut Vec<u8>) -> CompactSpan {
        let encoded = span.encode_to_vec();
        let mut recent = RecentSymbols::default();
        let span = SpanView::parse(&encoded);
        CompactSpan::from_wire(&span, 0, 0, interner, &mut recent, scratch).expect("valid")
    }

    fn kv(key: &str, value: AnyKind) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn otlp_span() -> Span {
        let long = "x".repeat(MAX_INTERNED_TEXT + 1);
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "POST /api/checkout".into(),
            kind: 3,
            start_time_unix_nano: 10,
            end_time_unix_nano: 5,
            attributes: vec![
                kv("http.route", AnyKind::StringValue("/api/checkout".into())),
                kv("long", AnyKind::StringValue(long)),
                kv("empty", AnyKind::StringValue(String::new())),
                kv("code", AnyKind::IntValue(-500)),
                kv("ratio", AnyKind::DoubleValue(0.25)),
                kv("retry", AnyKind::BoolValue(true)),
                kv("raw", AnyKind::BytesValue(vec![0, 1, 2])),
                kv(
                    "list",
                    AnyKind::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(AnyKind::IntValue(1)),
                        }],
                    }),
                ),
                kv(
                    "map",
                    AnyKind::KvlistValue(KeyValueList {
                        values: vec![kv("inner", AnyKind::StringValue("v".into()))],
                    }),
                ),
                KeyValue {
                    key: "none".into(),
                    value: None,
                    ..Default::default()
                },
            ],
            events: vec![Event {
                time_unix_nano: 7,
                name: "exception".into(),
                attributes: vec![kv("exception.type", AnyKind::StringValue("Io".into()))],
                ..Default::default()
            }],
            links: vec![
                Link {
                    trace_id: vec![4; 16],
                    span_id: vec![5; 8],
                    attributes: vec![kv("l", AnyKind::IntValue(1))],
                    ..Default::default()
                },
                Link {
                    trace_id: vec![4; 3],
                    span_id: vec![5; 8],
                    ..Default::default()
                },
            ],
            status: Some(Status {
                code: 2,
                message: "upstream failed".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn decoding_gives_back_what_the_otlp_conversion_gives() {
        let resource = otlp::resource(None);
        let scope = otlp::scope(None);
        let span = otlp_span();
        let expected = otlp::span(&span, &resource, &scope).unwrap();
        let mut interner = Interner::default();
        let mut scratch = Vec::new();
        let compact = from_wire(&span, &mut interner, &mut scratch);
        assert_eq!(compact.decode(&interner, &resource, &scope), expected);

        let from_record = CompactSpan::from_record(&expected, 0, 0, &mut interner, &mut scratch);
        assert_eq!(from_record.decode(&interner, &resource, &scope), expected);

        compact.release(&mut interner);
        from_record.release(&mut interner);
        assert_eq!(interner.bytes(), 0, "every symbol given back");
    }

    #[test]
    fn tag_matching_agrees_with_the_text_form() {
        let resource = otlp::resource(None);
        let scope = otlp::scope(None);
        let span = otlp_span();
        let record = otlp::span(&span, &resource, &scope).unwrap();
        let mut interner = Interner::default();
        let compact = from_wire(&span, &mut interner, &mut Vec::new());
        let event_attributes = record.events.iter().flat_map(|e| &e.attributes);
        let mut probes: Vec<(String, String)> = record
            .attributes
            .iter()
            .chain(event_attributes)
            .chain(&record.derived_tags())
            .map(|a| (a.key.clone(), a.value.to_text()))
            .collect();
        probes.extend(
            [
                ("code", "500"),
                ("code", "-0500"),
                ("retry", "false"),
                ("http.route", "nobody"),
                ("nokey", "x"),
                ("error", "false"),
                ("ratio", "0.250"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        for (key, value) in probes {
            let expected = record
                .attributes
                .iter()
                .chain(record.events.iter().flat_map(|e| &e.attributes))
                .chain(&record.derived_tags())
                .any(|a| a.key == key && a.value.to_text() == value);
            let m = TagMatcher::new(&key, &value, &interner);
            let found = m.matches_derived(&compact, &scope, &interner)
                || m.matches_attributes(&compact, &interner);
            assert_eq!(found, expected, "{key}={value}");
            if expected && !m.is_derived() {
                assert!(m.attributes_can_match(), "{key}={value}");
            }
        }
        assert!(!TagMatcher::new("http.route", "nobody", &interner).attributes_can_match());
        assert!(!TagMatcher::new("nokey", "x", &interner).attributes_can_match());
    }
}
