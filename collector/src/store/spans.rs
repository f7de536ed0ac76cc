//! The bounded span store and its indexes.
//!
//! Spans live in a [`Ring`] in arrival order, in their compact form
//! ([`CompactSpan`]: interned strings, one byte buffer for everything of
//! variable length); when the store is full the oldest span is evicted,
//! whatever trace it belongs to. Two indexes make the Jaeger queries cheap:
//! trace id → spans (trace by id is one hash lookup plus the trace's own
//! spans) and service → spans (search by service only visits that
//! service's spans, newest first). Operation names are counted per service
//! so `/api/services/{s}/operations` never scans spans.
//!
//! The store's bytes are the spans' own bytes plus the interned strings and
//! the shared resources and scopes, all reference-counted: evicting a span
//! gives back exactly what inserting it took, so the byte budget stays
//! exact as spans come and go.

mod compact;
mod shared;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use opentelemetry_proto::tonic::{
    common::v1::InstrumentationScope, resource::v1::Resource as OtlpResource,
};
use prost::Message as _;

use self::{
    compact::{CompactSpan, TagMatcher},
    shared::SharedTable,
};
use super::{
    interner::{Interner, RecentSymbols},
    ring::{Ring, SeqIndex},
};
use crate::{
    hashing::FastHash,
    model::{Resource, Scope, SpanId, SpanKind, SpanRecord, TraceId, attributes_bytes},
    otlp::{
        self,
        traces::{SpanView, SpanVisitor, TraceExport},
    },
};

/// Which traces `/api/traces` asks for. A trace matches when one of its
/// spans satisfies every condition, as in Jaeger.
#[derive(Debug, Clone)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Key/value pairs compared against the text form of span attributes,
    /// resource attributes, event attributes and derived tags.
    pub tags: Vec<(String, String)>,
    /// Span start time bounds, inclusive.
    pub start_min_unix_nano: Option<u64>,
    pub start_max_unix_nano: Option<u64>,
    pub min_duration: Option<Duration>,
    pub max_duration: Option<Duration>,
    /// Maximum number of traces returned.
    pub limit: usize,
}

impl Default for TraceQuery {
    fn default() -> Self {
        Self {
            service: None,
            operation: None,
            tags: Vec::new(),
            start_min_unix_nano: None,
            start_max_unix_nano: None,
            min_duration: None,
            max_duration: None,
            limit: 20,
        }
    }
}

/// An operation as `/api/operations` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub name: String,
    pub kind: SpanKind,
}

/// Calls from one service to another, seen as parent/child spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
}

/// Stored span count per operation name (a symbol) and kind (indexed by
/// `kind as usize`).
type OperationCounts = HashMap<u32, [usize; 6], FastHash>;

#[derive(Debug)]
pub struct SpanStore {
    capacity: usize,
    max_bytes: usize,
    /// Sum of the stored spans' [`CompactSpan::bytes`].
    span_bytes: usize,
    spans: Ring<CompactSpan>,
    by_trace: SeqIndex<TraceId>,
    by_service: SeqIndex<Arc<str>>,
    operations: HashMap<Arc<str>, OperationCounts, FastHash>,
    /// Span names, attribute keys and short string values.
    interner: Interner,
    resources: SharedTable<Arc<Resource>>,
    scopes: SharedTable<Arc<Scope>>,
    /// Reused for encoding each span, so encoding allocates only the
    /// span's own buffer.
    scratch: Vec<u8>,
}

impl SpanStore {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity,
            max_bytes,
            span_bytes: 0,
            spans: Ring::default(),
            by_trace: SeqIndex::default(),
            by_service: SeqIndex::default(),
            operations: HashMap::default(),
            interner: Interner::default(),
            resources: SharedTable::default(),
            scopes: SharedTable::default(),
            scratch: Vec::new(),
        }
    }

    /// Stores `span`, then evicts the oldest spans beyond capacity; returns
    /// how many were evicted. The pipeline uses [`Self::insert_export`]; tests
    /// build model spans.
    #[cfg(test)]
    pub fn insert(&mut self, span: Arc<SpanRecord>) -> u64 {
        let resource = self
            .resources
            .acquire(&model_key(&span.resource.attributes), || {
                resource_entry(Arc::clone(&span.resource))
            });
        let scope = self.scopes.acquire(&model_key(&*span.scope), || {
            scope_entry(Arc::clone(&span.scope))
        });
        let compact = CompactSpan::from_record(
            &span,
            resource,
            scope,
            &mut self.interner,
            &mut self.scratch,
        );
        self.push(compact)
    }

    /// Stores every valid span of a checked export, read straight from
    /// its encoding; returns how many were stored and how many evicted.
    /// `visitor` sees every span stored, and the resource of each.
    pub fn insert_export(
        &mut self,
        export: &TraceExport,
        visitor: &mut impl SpanVisitor,
    ) -> (u64, u64) {
        let (mut accepted, mut evicted) = (0, 0);
        let mut key = Vec::new();
        let mut recent = RecentSymbols::default();
        for resource_spans in export.resource_spans() {
            // The content key is the resource's encoding: equal bytes
            // decode to equal resources (an SDK sends the same bytes with
            // every export), so the decode below runs once per distinct
            // resource, not once per export.
            let encoded = resource_spans.resource();
            key.clear();
            key.push(b'p');
            key.extend_from_slice(&encoded);
            // This reference holds the entry while the export's spans are
            // stored, even if eviction takes all of them; released below.
            let resource = self.resources.acquire(&key, || {
                let decoded = OtlpResource::decode(&*encoded).unwrap_or_default();
                resource_entry(otlp::resource(Some(&decoded)))
            });
            visitor.resource(&encoded);
            for scope_spans in resource_spans.scope_spans() {
                let encoded = scope_spans.scope();
                key.clear();
                key.push(b'p');
                key.extend_from_slice(&encoded);
                let scope = self.scopes.acquire(&key, || {
                    let decoded = InstrumentationScope::decode(&*encoded).unwrap_or_default();
                    scope_entry(otlp::scope(Some(&decoded)))
                });
                for span in scope_spans.spans() {
                    let span = SpanView::parse(span);
                    let Some(compact) = CompactSpan::from_wire(
                        &span,
                        resource,
                        scope,
                        &mut self.interner,
                        &mut recent,
                        &mut self.scratch,
                    ) else {
                        continue;
                    };
                    visitor.span(&span);
                    self.resources.retain(resource);
                    self.scopes.retain(scope);
                    accepted += 1;
                    evicted += self.push(compact);
                }
                self.scopes.release(scope);
            }
            self.resources.release(resource);
        }
        (accepted, evicted)
    }

    /// Indexes and stores an encoded span whose resource and scope
    /// references it already holds; evicts beyond capacity.
    fn push(&mut self, span: CompactSpan) -> u64 {
        let seq = self.spans.next_seq();
        let service = Arc::clone(&self.resources.get(span.resource).service_name);
        self.by_trace.insert(span.trace_id, seq);
        self.count_operation(&service, &span);
        self.by_service
            .insert_with(&*service, || Arc::clone(&service), seq);
        self.span_bytes += span.bytes();
        self.spans.push(span);
        let mut evicted = 0;
        while self.spans.len() > self.capacity
            || (self.bytes() > self.max_bytes && self.spans.len() > 0)
        {
            self.evict_oldest();
            evicted += 1;
        }
        evicted
    }

    fn evict_oldest(&mut self) {
        let Some((seq, span)) = self.spans.pop_oldest() else {
            return;
        };
        self.span_bytes -= span.bytes();
        self.by_trace.remove_oldest(&span.trace_id, seq);
        let service = Arc::clone(&self.resources.get(span.resource).service_name);
        self.by_service.remove_oldest(&*service, seq);
        self.uncount_operation(&service, &span);
        span.release(&mut self.interner);
        self.resources.release(span.resource);
        self.scopes.release(span.scope);
    }

    fn count_operation(&mut self, service: &Arc<str>, span: &CompactSpan) {
        // Looked up before `entry`, which would take (and mostly drop) a
        // reference on the name for every span.
        let ops = match self.operations.get_mut(&**service) {
            Some(ops) => ops,
            None => self.operations.entry(Arc::clone(service)).or_default(),
        };
        ops.entry(span.name).or_insert([0; 6])[span.kind as usize] += 1;
    }

    fn uncount_operation(&mut self, service: &str, span: &CompactSpan) {
        let Some(ops) = self.operations.get_mut(service) else {
            return;
        };
        if let Some(counts) = ops.get_mut(&span.name) {
            let count = &mut counts[span.kind as usize];
            *count = count.saturating_sub(1);
            if counts.iter().all(|c| *c == 0) {
                ops.remove(&span.name);
            }
        }
        if ops.is_empty() {
            self.operations.remove(service);
        }
    }

    fn spans_of<'a>(
        &'a self,
        seqs: impl IntoIterator<Item = &'a u64>,
    ) -> impl Iterator<Item = &'a CompactSpan> {
        seqs.into_iter().filter_map(|seq| self.spans.get(*seq))
    }

    fn service_of(&self, span: &CompactSpan) -> &str {
        &self.resources.get(span.resource).service_name
    }

    /// A stored span as the query APIs see it.
    fn decode(&self, span: &CompactSpan) -> SpanRecord {
        span.decode(
            &self.interner,
            self.resources.get(span.resource),
            self.scopes.get(span.scope),
        )
    }

    /// The stored spans of one trace, in arrival order; empty when unknown.
    pub fn trace(&self, trace_id: TraceId) -> Vec<Arc<SpanRecord>> {
        self.by_trace
            .get(&trace_id)
            .map(|seqs| {
                self.spans_of(seqs)
                    .map(|s| Arc::new(self.decode(s)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ids of matching traces, the most recently received first.
    pub fn find_traces(&self, query: &TraceQuery) -> Vec<TraceId> {
        let Some(filter) = SpanFilter::new(query, self) else {
            return Vec::new();
        };
        let candidates: Box<dyn Iterator<Item = &CompactSpan>> = match &query.service {
            Some(service) => match self.by_service.get(service.as_str()) {
                Some(seqs) => Box::new(self.spans_of(seqs.iter().rev())),
                None => return Vec::new(),
            },
            None => Box::new(self.spans.newest_first()),
        };
        let mut found = Vec::new();
        let mut seen = HashSet::with_hasher(FastHash::default());
        for span in candidates {
            if found.len() >= query.limit {
                break;
            }
            if !seen.contains(&span.trace_id) && filter.matches(span, self) {
                seen.insert(span.trace_id);
                found.push(span.trace_id);
            }
        }
        found
    }

    /// Services with at least one stored span, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = self.by_service.keys().map(|s| s.to_string()).collect();
        services.sort();
        services
    }

    /// Operations of `service` with stored spans, sorted by name then kind.
    pub fn operations(&self, service: &str) -> Vec<Operation> {
        let Some(ops) = self.operations.get(service) else {
            return Vec::new();
        };
        let mut list: Vec<Operation> = ops
            .iter()
            .flat_map(|(name, counts)| {
                KINDS
                    .into_iter()
                    .filter(|kind| counts[*kind as usize] > 0)
                    .map(|kind| Operation {
                        name: self.interner.resolve(*name).to_owned(),
                        kind,
                    })
            })
            .collect();
        list.sort();
        list
    }

    /// Service-to-service edges: a span whose parent (in the same trace)
    /// belongs to another service counts one call from the parent's service
    /// to the child's. Only child spans starting in `[start, end]` count.
    pub fn dependencies(&self, start_unix_nano: u64, end_unix_nano: u64) -> Vec<DependencyLink> {
        let mut calls: HashMap<(&str, &str), u64> = HashMap::new();
        for (_, seqs) in self.by_trace.iter() {
            let spans: Vec<&CompactSpan> = self.spans_of(seqs).collect();
            let owner: HashMap<SpanId, &str> = spans
                .iter()
                .map(|s| (s.span_id, self.service_of(s)))
                .collect();
            for span in spans {
                let service = self.service_of(span);
                let in_window = (start_unix_nano..=end_unix_nano).contains(&span.start_unix_nano);
                let parent_service = span.parent_span_id.and_then(|p| owner.get(&p).copied());
                if let Some(parent) = parent_service.filter(|p| in_window && *p != service) {
                    *calls.entry((parent, service)).or_default() += 1;
                }
            }
        }
        let mut links: Vec<DependencyLink> = calls
            .into_iter()
            .map(|((parent, child), call_count)| DependencyLink {
                parent: parent.to_owned(),
                child: child.to_owned(),
                call_count,
            })
            .collect();
        links.sort_by(|a, b| (&a.parent, &a.child).cmp(&(&b.parent, &b.child)));
        links
    }

    /// The spans' own bytes plus the strings, resources and scopes they share.
    pub fn bytes(&self) -> usize {
        self.span_bytes + self.interner.bytes() + self.resources.bytes() + self.scopes.bytes()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn trace_count(&self) -> usize {
        self.by_trace.len()
    }
}

/// A content key for a value of the model (its debug form is complete and
/// unambiguous); prefixed so it never equals a protobuf-derived key.
#[cfg(test)]
fn model_key(value: &impl std::fmt::Debug) -> Vec<u8> {
    format!("m{value:?}").into_bytes()
}

fn resource_entry(resource: Arc<Resource>) -> (Arc<Resource>, usize) {
    let bytes = size_of::<Resource>()
        + resource.service_name.len()
        + attributes_bytes(&resource.attributes);
    (resource, bytes)
}

fn scope_entry(scope: Arc<Scope>) -> (Arc<Scope>, usize) {
    let bytes = size_of::<Scope>() + scope.name.len() + scope.version.len();
    (scope, bytes)
}

/// A [`TraceQuery`] compiled against the store's current symbols.
struct SpanFilter<'q> {
    query: &'q TraceQuery,
    /// The operation's symbol, when the query names one.
    operation: Option<u32>,
    tags: Vec<TagFilter<'q>>,
}

struct TagFilter<'q> {
    matcher: TagMatcher<'q>,
    /// Whether each resource (by id) carries the tag; resources are few,
    /// so this is computed once per query instead of once per span.
    resources: Vec<bool>,
    /// Whether span or event attributes can match at all.
    scan: bool,
}

impl<'q> SpanFilter<'q> {
    /// `None` when no stored span can match, found without visiting any:
    /// an operation name or a tag that no stored span carries.
    fn new(query: &'q TraceQuery, store: &SpanStore) -> Option<Self> {
        let operation = match &query.operation {
            Some(name) => Some(store.interner.lookup(name)?),
            None => None,
        };
        let mut tags = Vec::with_capacity(query.tags.len());
        for (key, value) in &query.tags {
            let matcher = TagMatcher::new(key, value, &store.interner);
            let mut resources = vec![false; store.resources.id_bound()];
            for (id, resource) in store.resources.iter() {
                resources[id as usize] = resource
                    .attributes
                    .iter()
                    .any(|a| a.key == *key && a.value.to_text() == *value);
            }
            let scan = matcher.attributes_can_match();
            if !scan && !matcher.is_derived() && !resources.contains(&true) {
                return None;
            }
            tags.push(TagFilter {
                matcher,
                resources,
                scan,
            });
        }
        Some(Self {
            query,
            operation,
            tags,
        })
    }

    fn matches(&self, span: &CompactSpan, store: &SpanStore) -> bool {
        let query = self.query;
        let duration = Duration::from_nanos(span.duration_nanos());
        query
            .service
            .as_deref()
            .is_none_or(|s| s == store.service_of(span))
            && self.operation.is_none_or(|o| o == span.name)
            && query
                .start_min_unix_nano
                .is_none_or(|t| span.start_unix_nano >= t)
            && query
                .start_max_unix_nano
                .is_none_or(|t| span.start_unix_nano <= t)
            && query.min_duration.is_none_or(|d| duration >= d)
            && query.max_duration.is_none_or(|d| duration <= d)
            && self.tags.iter().all(|t| {
                t.resources[span.resource as usize]
                    || t.matcher.matches_derived(
                        span,
                        store.scopes.get(span.scope),
                        &store.interner,
                    )
                    || (t.scan && t.matcher.matches_attributes(span, &store.interner))
            })
    }
}

const KINDS: [SpanKind; 6] = [
    SpanKind::Unspecified,
    SpanKind::Internal,
    SpanKind::Server,
    SpanKind::Client,
    SpanKind::Producer,
    SpanKind::Consumer,
];

#[cfg(test)]
mod tests;
