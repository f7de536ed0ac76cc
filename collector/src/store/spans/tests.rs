use super::*;
use crate::{
    model::{AttrValue, Attribute, StatusCode},
    test_support::{child, span, span_id, trace_id},
};

fn store_with(capacity: usize, spans: Vec<SpanRecord>) -> SpanStore {
    let mut store = SpanStore::new(capacity, usize::MAX);
    for s in spans {
        store.insert(Arc::new(s));
    }
    store
}

fn query(service: &str) -> TraceQuery {
    TraceQuery {
        service: Some(service.into()),
        ..TraceQuery::default()
    }
}

#[test]
fn evicts_the_oldest_span_first() {
    let mut store = store_with(
        3,
        vec![
            span(1, 1, "cart", "a"),
            span(2, 2, "cart", "b"),
            span(3, 3, "cart", "c"),
        ],
    );
    assert_eq!(store.insert(Arc::new(span(4, 4, "cart", "d"))), 1);
    assert_eq!(store.len(), 3);
    assert!(store.trace(trace_id(1)).is_empty());
    for t in 2..=4 {
        assert_eq!(store.trace(trace_id(t)).len(), 1, "trace {t}");
    }
    assert_eq!(store.trace_count(), 3);
}

#[test]
fn eviction_keeps_the_rest_of_a_partly_evicted_trace() {
    let root = span(1, 1, "gateway", "GET /checkout");
    let store = store_with(
        2,
        vec![
            root.clone(),
            child(&root, 2, "cart", "GET /cart"),
            child(&root, 3, "payment", "POST /pay"),
        ],
    );
    let ids: Vec<_> = store.trace(trace_id(1)).iter().map(|s| s.span_id).collect();
    assert_eq!(ids, [span_id(2), span_id(3)]);
}

#[test]
fn services_and_operations_follow_eviction() {
    let mut store = store_with(
        2,
        vec![span(1, 1, "auth", "login"), span(2, 2, "cart", "add")],
    );
    assert_eq!(store.services(), ["auth", "cart"]);
    assert_eq!(
        store.operations("auth"),
        [Operation {
            name: "login".into(),
            kind: SpanKind::Server
        }]
    );
    store.insert(Arc::new(span(3, 3, "cart", "remove")));
    assert_eq!(store.services(), ["cart"]);
    assert!(store.operations("auth").is_empty());
    let names: Vec<_> = store
        .operations("cart")
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["add", "remove"]);
}

#[test]
fn same_operation_with_two_kinds_is_listed_twice() {
    let mut client = span(1, 2, "cart", "redis GET");
    client.kind = SpanKind::Client;
    let store = store_with(10, vec![span(1, 1, "cart", "redis GET"), client]);
    let kinds: Vec<_> = store
        .operations("cart")
        .into_iter()
        .map(|o| o.kind)
        .collect();
    assert_eq!(kinds, [SpanKind::Server, SpanKind::Client]);
}

#[test]
fn search_by_service_is_newest_first_and_limited() {
    let store = store_with(
        10,
        vec![
            span(1, 1, "cart", "a"),
            span(2, 2, "auth", "a"),
            span(3, 3, "cart", "a"),
            span(4, 4, "cart", "a"),
        ],
    );
    let found = store.find_traces(&TraceQuery {
        limit: 2,
        ..query("cart")
    });
    assert_eq!(found, [trace_id(4), trace_id(3)]);
    assert!(store.find_traces(&query("nobody")).is_empty());
}

#[test]
fn a_trace_matches_when_one_span_matches_and_is_listed_once() {
    let root = span(1, 1, "gateway", "GET /checkout");
    let store = store_with(
        10,
        vec![
            root.clone(),
            child(&root, 2, "cart", "GET /cart"),
            child(&root, 3, "cart", "GET /cart"),
        ],
    );
    assert_eq!(store.find_traces(&query("cart")), [trace_id(1)]);
    let by_op = TraceQuery {
        operation: Some("GET /checkout".into()),
        ..query("cart")
    };
    assert!(store.find_traces(&by_op).is_empty());
}

#[test]
fn search_filters_on_tags_duration_and_time() {
    let mut slow_error = span(1, 1, "cart", "a");
    slow_error.end_unix_nano = slow_error.start_unix_nano + 50_000_000;
    slow_error.status = StatusCode::Error;
    slow_error.attributes.push(Attribute::new(
        "http.response.status_code",
        AttrValue::Int(500),
    ));
    let store = store_with(10, vec![slow_error, span(2, 2, "cart", "a")]);

    let tags = |pairs: &[(&str, &str)]| TraceQuery {
        tags: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..query("cart")
    };
    assert_eq!(
        store.find_traces(&tags(&[("error", "true")])),
        [trace_id(1)]
    );
    assert_eq!(
        store.find_traces(&tags(&[("http.response.status_code", "500")])),
        [trace_id(1)]
    );
    assert_eq!(
        store
            .find_traces(&tags(&[("service.instance.id", "cart-1")]))
            .len(),
        2
    );
    assert!(store.find_traces(&tags(&[("error", "false")])).is_empty());

    let slow = TraceQuery {
        min_duration: Some(Duration::from_millis(10)),
        ..query("cart")
    };
    assert_eq!(store.find_traces(&slow), [trace_id(1)]);
    let fast = TraceQuery {
        max_duration: Some(Duration::from_millis(10)),
        ..query("cart")
    };
    assert_eq!(store.find_traces(&fast), [trace_id(2)]);
    let late = TraceQuery {
        start_min_unix_nano: Some(2_000_000),
        ..query("cart")
    };
    assert_eq!(store.find_traces(&late), [trace_id(2)]);
}

#[test]
fn dependencies_count_cross_service_parent_child_pairs() {
    let root = span(1, 1, "gateway", "GET /checkout");
    let store = store_with(
        10,
        vec![
            root.clone(),
            child(&root, 2, "checkout", "POST /checkout"),
            child(&root, 3, "checkout", "POST /checkout"),
            child(&root, 4, "gateway", "internal work"),
        ],
    );
    let links = store.dependencies(0, u64::MAX);
    assert_eq!(
        links,
        [DependencyLink {
            parent: "gateway".into(),
            child: "checkout".into(),
            call_count: 2
        }]
    );
    assert!(store.dependencies(0, 1).is_empty());
}

#[test]
fn zero_capacity_accepts_then_evicts() {
    let mut store = SpanStore::new(0, usize::MAX);
    assert_eq!(store.insert(Arc::new(span(1, 1, "cart", "a"))), 1);
    assert_eq!(store.len(), 0);
    assert!(store.services().is_empty());
}

#[test]
fn eviction_gives_back_every_byte_insertion_took() {
    let with_attributes = |t: u8, route: &str| {
        let mut s = span(t, t, "cart", "GET /cart");
        s.attributes = vec![
            Attribute::new("http.route", AttrValue::Str(route.into())),
            Attribute::new("http.response.status_code", AttrValue::Int(200)),
        ];
        Arc::new(s)
    };
    let mut store = SpanStore::new(2, usize::MAX);
    store.insert(with_attributes(1, "/a"));
    let one = store.bytes();
    store.insert(with_attributes(2, "/a"));
    // The second span shares its strings and resource with the first.
    assert!(store.bytes() - one < one, "{} then {}", one, store.bytes());
    store.insert(with_attributes(3, "/b"));
    store.insert(with_attributes(4, "/c"));
    assert_eq!(store.len(), 2);
    let mut empty = SpanStore::new(0, usize::MAX);
    empty.insert(with_attributes(1, "/a"));
    assert_eq!(empty.bytes(), 0, "nothing stored, nothing charged");
}

#[test]
fn byte_budget_evicts_oldest_first() {
    let mut probe = SpanStore::new(10, usize::MAX);
    probe.insert(Arc::new(span(1, 1, "cart", "a")));
    probe.insert(Arc::new(span(2, 2, "cart", "a")));
    let two_spans = probe.bytes();
    let mut store = SpanStore::new(10, two_spans);
    for t in 1..=5 {
        store.insert(Arc::new(span(t, t, "cart", "a")));
    }
    assert_eq!(store.len(), 2);
    assert!(store.bytes() <= two_spans);
    assert_eq!(
        store.find_traces(&query("cart")),
        [trace_id(5), trace_id(4)]
    );
}

/// Records what the store shows its visitor.
#[derive(Default)]
struct Seen {
    resources: usize,
    spans: Vec<(Vec<u8>, Vec<u8>)>,
}

impl SpanVisitor for Seen {
    fn resource(&mut self, _resource: &[u8]) {
        self.resources += 1;
    }

    fn span(&mut self, span: &SpanView<'_>) {
        self.spans
            .push((span.trace_id.to_vec(), span.span_id.to_vec()));
    }
}

/// What the conversion from prost's messages gives for every valid span.
fn reference_spans(
    request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> Vec<SpanRecord> {
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = otlp::resource(resource_spans.resource.as_ref());
        for scope_spans in &resource_spans.scope_spans {
            let scope = otlp::scope(scope_spans.scope.as_ref());
            spans.extend(
                scope_spans
                    .spans
                    .iter()
                    .filter_map(|s| otlp::span(s, &resource, &scope).ok()),
            );
        }
    }
    spans
}

/// The store's wire path keeps exactly what the conversion from prost's
/// messages keeps, on generated and scrambled exports, while older spans
/// are evicted (and the strings only they used freed) under it.
#[test]
fn stores_what_the_conversion_from_prost_gives() {
    for capacity in [1, 2, 40] {
        stores_what_prost_gives(capacity);
    }
}

fn stores_what_prost_gives(capacity: usize) {
    let mut generate = crate::test_support::trace_exports::Gen::new(0x5707e);
    let mut store = SpanStore::new(capacity, usize::MAX);
    let mut all_expected = Vec::new();
    for _ in 0..400 {
        let encoded = generate.encoded();
        let Ok(request) =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                encoded.as_slice(),
            )
        else {
            continue;
        };
        let checked = otlp::traces::check(encoded.clone().into()).expect("prost accepts it");
        let mut seen = Seen::default();
        let before = store.len() as u64;
        let (accepted, evicted) = store.insert_export(&checked.export, &mut seen);
        let expected = reference_spans(&request);
        assert_eq!(accepted, checked.valid, "{}", hex::encode(&encoded));
        assert_eq!(before + accepted - evicted, store.len() as u64);
        assert_eq!(seen.resources, request.resource_spans.len());
        let stored: Vec<SpanRecord> = store
            .spans
            .newest_first()
            .map(|s| store.decode(s))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let visited: Vec<_> = expected
            .iter()
            .map(|s| {
                (
                    s.trace_id.to_bytes().to_vec(),
                    s.span_id.to_bytes().to_vec(),
                )
            })
            .collect();
        assert_eq!(seen.spans, visited);
        all_expected.extend(expected);
        let kept = &all_expected[all_expected.len() - stored.len()..];
        // In their debug form, where a NaN equals a NaN.
        assert_eq!(
            format!("{stored:?}"),
            format!("{kept:?}"),
            "{}",
            hex::encode(&encoded)
        );
    }
}

/// Every reference the wire path takes (interned strings, shared
/// resources and scopes) is given back by eviction, however exports come.
#[test]
fn wire_path_gives_back_every_byte_on_eviction() {
    let mut generate = crate::test_support::trace_exports::Gen::new(0xe71c7);
    let mut store = SpanStore::new(7, usize::MAX);
    for _ in 0..300 {
        let encoded = generate.encoded();
        if let Ok(checked) = otlp::traces::check(encoded.into()) {
            store.insert_export(&checked.export, &mut ());
        }
    }
    assert!(store.len() > 0);
    while store.len() > 0 {
        store.evict_oldest();
    }
    assert_eq!(store.bytes(), 0);
    assert_eq!(store.interner.len(), 0);
}
