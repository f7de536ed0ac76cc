//! The reader against prost, on the same bytes: same accept/refuse
//! decision, and for accepted bytes the same spans, ids, attributes and
//! partial-success counts. Inputs are seeded (`test_support::trace_exports`),
//! so a failure reproduces; the failing bytes are printed in hex.

use opentelemetry_proto::tonic::{
    common::v1::InstrumentationScope,
    resource::v1::Resource as OtlpResource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};

use super::*;
use crate::{
    model::{AttrValue, Attribute},
    otlp::{self, wire::RECURSION_LIMIT},
    test_support::trace_exports::{Gen, varint},
};

/// Checks `bytes` both ways and compares; `true` when both accepted.
fn agree(bytes: &[u8]) -> bool {
    let prost = ExportTraceServiceRequest::decode(bytes);
    let checked = check(Bytes::copy_from_slice(bytes));
    match (prost, checked) {
        (Err(_), Err(_)) => false,
        (Ok(request), Ok(checked)) => {
            compare(&request, &checked, bytes);
            true
        }
        (prost, checked) => panic!(
            "prost says {:?}, check says {:?}, on {}",
            prost.err(),
            checked.err(),
            hex::encode(bytes)
        ),
    }
}

fn compare(request: &ExportTraceServiceRequest, checked: &Checked, bytes: &[u8]) {
    let context = || hex::encode(bytes);
    let spans = || {
        request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
    };
    let valid = spans().filter(|s| otlp::check_span(s).is_ok()).count() as u64;
    let first = spans().find_map(|s| otlp::check_span(s).err());
    assert_eq!(checked.valid, valid, "{}", context());
    assert_eq!(
        checked.refused,
        spans().count() as u64 - valid,
        "{}",
        context()
    );
    assert_eq!(checked.first_refusal, first, "{}", context());
    assert_eq!(checked.export.encoded_len(), bytes.len());

    let views: Vec<_> = checked.export.resource_spans().collect();
    assert_eq!(views.len(), request.resource_spans.len(), "{}", context());
    for (view, expected) in views.iter().zip(&request.resource_spans) {
        let resource = OtlpResource::decode(&*view.resource()).expect("merged resource");
        // Debug forms, where a NaN equals a NaN.
        assert_eq!(
            format!("{:?}", otlp::resource(Some(&resource))),
            format!("{:?}", otlp::resource(expected.resource.as_ref())),
            "{}",
            context()
        );
        let attributes = expected.resource.as_ref().map(|r| &r.attributes[..]);
        assert!(
            same(
                &view_attributes(resource_attributes(&view.resource())),
                &otlp::attributes(attributes.unwrap_or_default())
            ),
            "{}",
            context()
        );
        let scopes: Vec<_> = view.scope_spans().collect();
        assert_eq!(scopes.len(), expected.scope_spans.len(), "{}", context());
        for (scope_view, expected) in scopes.iter().zip(&expected.scope_spans) {
            let scope = InstrumentationScope::decode(&*scope_view.scope()).expect("merged scope");
            assert_eq!(
                otlp::scope(Some(&scope)),
                otlp::scope(expected.scope.as_ref()),
                "{}",
                context()
            );
            let spans: Vec<_> = scope_view.spans().collect();
            assert_eq!(spans.len(), expected.spans.len(), "{}", context());
            for (span, expected) in spans.iter().zip(&expected.spans) {
                compare_span(&SpanView::parse(span), expected, bytes);
            }
        }
    }
}

fn compare_span(view: &SpanView<'_>, expected: &Span, bytes: &[u8]) {
    let context = || hex::encode(bytes);
    assert_eq!(view.trace_id, expected.trace_id, "{}", context());
    assert_eq!(view.span_id, expected.span_id, "{}", context());
    assert_eq!(
        view.parent_span_id,
        expected.parent_span_id,
        "{}",
        context()
    );
    assert_eq!(view.name, expected.name.as_bytes(), "{}", context());
    assert_eq!(view.kind, expected.kind, "{}", context());
    assert_eq!(view.start_time_unix_nano, expected.start_time_unix_nano);
    assert_eq!(view.end_time_unix_nano, expected.end_time_unix_nano);
    let status = expected.status.clone().unwrap_or_default();
    assert_eq!(view.status_code, status.code, "{}", context());
    assert_eq!(
        view.status_message,
        status.message.as_bytes(),
        "{}",
        context()
    );
    assert_eq!(view.attribute_count, expected.attributes.len() as u64);
    assert!(
        same(
            &view_attributes(view.attributes()),
            &otlp::attributes(&expected.attributes)
        ),
        "{}",
        context()
    );
    let events: Vec<_> = view.events().collect();
    assert_eq!(events.len(), expected.events.len(), "{}", context());
    for (event, expected) in events.iter().zip(&expected.events) {
        assert_eq!(event.time_unix_nano, expected.time_unix_nano);
        assert_eq!(event.name, expected.name.as_bytes(), "{}", context());
        assert!(
            same(
                &view_attributes(event.attributes()),
                &otlp::attributes(&expected.attributes)
            ),
            "{}",
            context()
        );
    }
    let links: Vec<_> = view.links().collect();
    assert_eq!(links.len(), expected.links.len(), "{}", context());
    for (link, expected) in links.iter().zip(&expected.links) {
        assert_eq!(link.trace_id, expected.trace_id, "{}", context());
        assert_eq!(link.span_id, expected.span_id, "{}", context());
        assert!(
            same(
                &view_attributes(link.attributes()),
                &otlp::attributes(&expected.attributes)
            ),
            "{}",
            context()
        );
    }
    // What the derived metrics look up.
    for key in ["service.name", "http.route", "db.system", "a", ""] {
        let expected = expected
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                AnyKind::StringValue(s) => Some(s.as_str()),
                _ => None,
            });
        assert_eq!(
            string_attribute(view.attributes(), key).as_deref(),
            expected,
            "{key} in {}",
            context()
        );
    }
}

/// Attributes compared in their debug form, where a NaN equals a NaN.
fn same(a: &[Attribute], b: &[Attribute]) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// The views' attributes in the model's form, as the store reads them.
fn view_attributes<'a>(kvs: impl Iterator<Item = &'a [u8]>) -> Vec<Attribute> {
    kvs.map(|kv| match KeyValueView::parse(kv) {
        KeyValueView::Simple { key, value } => Attribute::new(
            std::str::from_utf8(key).expect("checked UTF-8"),
            view_value(value),
        ),
        KeyValueView::Merged(encoded) => {
            let kv = KeyValueView::decode(encoded);
            Attribute::new(kv.key, otlp::any_value(kv.value.as_ref()))
        }
    })
    .collect()
}

fn view_value(value: AnyValueView<'_>) -> AttrValue {
    match value {
        AnyValueView::Empty => AttrValue::Empty,
        AnyValueView::Str(s) => AttrValue::Str(std::str::from_utf8(s).expect("UTF-8").into()),
        AnyValueView::Bool(b) => AttrValue::Bool(b),
        AnyValueView::Int(i) => AttrValue::Int(i),
        AnyValueView::Double(d) => AttrValue::Double(d),
        AnyValueView::Bytes(b) => AttrValue::Bytes(b.to_vec()),
        AnyValueView::Array(array) => AttrValue::Array(
            array_values(array)
                .map(|e| match AnyValueView::parse(e) {
                    Some(value) => view_value(value),
                    None => otlp::any_value(Some(&AnyValueView::decode(e))),
                })
                .collect(),
        ),
        AnyValueView::Map(map) => AttrValue::Map(view_attributes(map_entries(map))),
    }
}

#[test]
fn agrees_with_prost_on_generated_requests() {
    let mut generate = Gen::new(0x0d15_ea5e);
    let mut accepted = 0;
    for _ in 0..1500 {
        accepted += usize::from(agree(&generate.encoded()));
    }
    // Scrambling may produce bytes prost refuses (a string field given
    // twice with a second value that is not a string, say), but few.
    assert!(accepted > 1400, "{accepted} accepted");
}

#[test]
fn agrees_with_prost_on_damaged_requests() {
    let mut generate = Gen::new(0xbad_b17e5);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..3000 {
        let encoded = generate.encoded();
        if agree(&generate.mutate(&encoded)) {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    // Both outcomes are exercised.
    assert!(accepted > 100 && refused > 100, "{accepted} / {refused}");
}

#[test]
fn counts_partial_success_like_check_span() {
    let span = |trace_id: Vec<u8>, span_id: Vec<u8>, parent_span_id: Vec<u8>| Span {
        trace_id,
        span_id,
        parent_span_id,
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(vec![1; 16], vec![1; 8], vec![]),
                    span(vec![1; 16], vec![1; 8], vec![2; 3]),
                    span(vec![0; 16], vec![1; 8], vec![]),
                    span(vec![1; 16], vec![0; 8], vec![]),
                    span(vec![1; 16], vec![1; 8], vec![0; 8]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let checked = check(request.encode_to_vec().into()).expect("well-formed");
    assert_eq!(checked.valid, 2);
    assert_eq!(checked.refused, 3);
    assert_eq!(checked.first_refusal, Some(Rejection::InvalidParentSpanId));
    assert!(agree(&request.encode_to_vec()));
}

/// `ExportTraceServiceRequest { resource_spans: [{ scope_spans: [{ spans:
/// [span] }] }] }` around an encoded span.
fn wrap_span(span: &[u8]) -> Vec<u8> {
    let field = |number: u64, payload: &[u8]| {
        let mut out = varint(number << 3 | 2);
        out.extend(varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    };
    field(1, &field(2, &field(2, span)))
}

/// A valid span's encoding, then `extra` appended to it.
fn span_with(extra: &[u8]) -> Vec<u8> {
    let mut span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "GET /".into(),
        ..Default::default()
    }
    .encode_to_vec();
    span.extend_from_slice(extra);
    wrap_span(&span)
}

#[test]
fn skips_unknown_fields_of_every_wire_type() {
    let unknown: [&[u8]; 6] = [
        &[0xa0, 0x06, 0x96, 0x01],                         // field 100, varint
        &[0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8],             // field 100, fixed64
        &[0xa2, 0x06, 0x02, 0xff, 0xfe],                   // field 100, bytes (not UTF-8)
        &[0xa5, 0x06, 1, 2, 3, 4],                         // field 100, fixed32
        &[0xa3, 0x06, 0x08, 0x01, 0xa4, 0x06],             // field 100, group holding a varint
        &[0xa3, 0x06, 0xab, 0x06, 0xac, 0x06, 0xa4, 0x06], // nested groups
    ];
    for extra in unknown {
        let bytes = span_with(extra);
        let checked = check(Bytes::from(bytes.clone())).expect("unknown fields are skipped");
        assert_eq!(checked.valid, 1, "{}", hex::encode(extra));
        assert!(agree(&bytes));
        let export = checked.export;
        let resource_spans: Vec<_> = export.resource_spans().collect();
        let scope_spans: Vec<_> = resource_spans[0].scope_spans().collect();
        let span = SpanView::parse(scope_spans[0].spans().next().expect("a span"));
        assert_eq!(span.name, b"GET /");
        assert_eq!(span.attributes().count(), 0);
    }
}

/// Every kind of malformed input is refused (as prost refuses it), and
/// none panics.
#[test]
fn refuses_malformed_encodings() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated varint", vec![0x0a, 0x80]),
        (
            "overlong varint",
            [&[0x08][..], &[0x80; 10], &[0x00]].concat(),
        ),
        (
            "varint past 64 bits",
            [&[0x08][..], &[0xff; 9], &[0x02]].concat(),
        ),
        ("length past the end", vec![0x0a, 0x05, 0x00]),
        (
            "length past the end, nested",
            wrap_span(&[0x2a, 0x09, b'x']),
        ),
        ("fixed64 cut short", span_with(&[0x39, 1, 2, 3])),
        ("field number 0", vec![0x02, 0x00]),
        ("wire type 6", vec![0x0e]),
        ("wire type 7", vec![0x0f]),
        ("end group without start", vec![0x0c]),
        (
            "group ended by another field",
            span_with(&[0xa3, 0x06, 0xac, 0x06]),
        ),
        ("unterminated group", span_with(&[0xa3, 0x06, 0x08, 0x01])),
        ("resource_spans as varint", vec![0x08, 0x01]),
        ("span name as varint", span_with(&[0x28, 0x01])),
        ("span kind as bytes", span_with(&[0x32, 0x00])),
        ("span start as varint", span_with(&[0x38, 0x01])),
        (
            "span flags as fixed64",
            span_with(&[0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
        ("span name not UTF-8", span_with(&[0x2a, 0x02, 0xc3, 0x28])),
        ("trace_state not UTF-8", span_with(&[0x1a, 0x01, 0xff])),
        (
            "attribute key not UTF-8",
            span_with(&[0x4a, 0x03, 0x0a, 0x01, 0xff]),
        ),
        (
            "string value not UTF-8",
            span_with(&[0x4a, 0x05, 0x12, 0x03, 0x0a, 0x01, 0x80]),
        ),
        (
            "attribute value as varint",
            span_with(&[0x4a, 0x02, 0x10, 0x01]),
        ),
        (
            "bool value as bytes",
            span_with(&[0x4a, 0x04, 0x12, 0x02, 0x12, 0x00]),
        ),
        (
            "double value as varint",
            span_with(&[0x4a, 0x04, 0x12, 0x02, 0x20, 0x01]),
        ),
        (
            "status message not UTF-8",
            span_with(&[0x7a, 0x03, 0x12, 0x01, 0xfe]),
        ),
        ("status code as bytes", span_with(&[0x7a, 0x02, 0x1a, 0x00])),
        (
            "event name not UTF-8",
            span_with(&[0x5a, 0x03, 0x12, 0x01, 0xff]),
        ),
        (
            "link trace_id as varint",
            span_with(&[0x6a, 0x02, 0x08, 0x01]),
        ),
        (
            "scope name not UTF-8",
            vec![0x0a, 0x07, 0x12, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff],
        ),
        ("schema_url not UTF-8", vec![0x0a, 0x03, 0x1a, 0x01, 0xff]),
        (
            "entity ref type not UTF-8",
            vec![0x0a, 0x07, 0x0a, 0x05, 0x1a, 0x03, 0x12, 0x01, 0xff],
        ),
    ];
    for (name, bytes) in cases {
        assert!(
            check(Bytes::from(bytes.clone())).is_err(),
            "{name}: accepted {}",
            hex::encode(&bytes)
        );
        assert!(!agree(&bytes), "{name}: prost accepts it");
    }
}

/// An attribute value of arrays (or maps) nested `depth` deep, holding a
/// string (and an unknown field), of a span (or of an event of it, one
/// level deeper).
fn nested_value(depth: usize, maps: bool, unknown: bool, in_event: bool) -> Vec<u8> {
    let field = |number: u64, payload: &[u8]| {
        let mut out = varint(number << 3 | 2);
        out.extend(varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    };
    // AnyValue { string_value: "x" }, then AnyValue { array_value: { values: [v] } }.
    let mut value = field(1, b"x");
    if unknown {
        value.extend([0xa0, 0x06, 0x01]);
    }
    for _ in 0..depth {
        value = if maps {
            // AnyValue { kvlist_value: { values: [{ key: "k", value }] } }
            field(6, &field(1, &[field(1, b"k"), field(2, &value)].concat()))
        } else {
            field(5, &field(1, &value))
        };
    }
    // Span { attributes: [KeyValue { key: "k", value }] }, or
    // Span { events: [Event { attributes: [...] }] }
    let kv = [field(1, b"k"), field(2, &value)].concat();
    if in_event {
        wrap_span(&field(11, &field(3, &kv)))
    } else {
        wrap_span(&field(9, &kv))
    }
}

#[test]
fn nesting_limit_is_prosts() {
    for variant in 0..8 {
        let (maps, unknown, in_event) = (variant & 1 != 0, variant & 2 != 0, variant & 4 != 0);
        let mut accepted = Vec::new();
        let levels = if maps { 3 } else { 2 };
        let limit = RECURSION_LIMIT as usize / levels;
        for depth in limit - 8..limit + 3 {
            if agree(&nested_value(depth, maps, unknown, in_event)) {
                accepted.push(depth);
            }
        }
        // Both sides of the limit were tried.
        assert!(!accepted.is_empty() && accepted.len() < 11, "{accepted:?}");
        // Far past it: refused, without exhausting the stack.
        let deep = nested_value(5000, maps, unknown, in_event);
        assert!(check(Bytes::from(deep)).is_err());
    }
}

#[test]
fn values_given_twice_merge_as_in_prost() {
    let field = |number: u64, payload: &[u8]| {
        let mut out = varint(number << 3 | 2);
        out.extend(varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    };
    let array = |item: &[u8]| field(5, &field(1, &field(1, item)));
    let values: [Vec<u8>; 4] = [
        // Two arrays in one value: concatenated.
        [array(b"a"), array(b"b")].concat(),
        // A string, then an array: the array.
        [field(1, b"s"), array(b"a")].concat(),
        // An array, a string, an array: the last array only.
        [array(b"a"), field(1, b"s"), array(b"b")].concat(),
        // A string and an unknown field.
        [field(1, b"s"), vec![0xa0, 0x06, 0x01]].concat(),
    ];
    for value in values {
        // Given once, and given as two `value` fields split anywhere.
        let once = [field(1, b"k"), field(2, &value)].concat();
        assert!(agree(&wrap_span(&field(9, &once))));
        let twice = [field(1, b"k"), field(2, &value), field(2, &array(b"z"))].concat();
        assert!(agree(&wrap_span(&field(9, &twice))));
    }
    // Status given twice: each field's last value wins.
    let status = [
        field(15, &[0x12, 0x01, b'a', 0x18, 0x02]),
        field(15, &[0x18, 0x01]),
    ]
    .concat();
    assert!(agree(&wrap_span(&status)));
}
