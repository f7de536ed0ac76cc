//! The bounded span store and its indexes.
//!
//! Spans live in a [`Ring`] in arrival order; when the store is full the
//! oldest span is evicted, whatever trace it belongs to. Two indexes make the
//! Jaeger queries cheap: trace id → spans (trace by id is one hash lookup
//! plus the trace's own spans) and service → spans (search by service only
//! visits that service's spans, newest first). Operation names are counted
//! per service so `/api/services/{s}/operations` never scans spans.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use super::ring::{Ring, SeqIndex};
use crate::model::{SpanId, SpanKind, SpanRecord, TraceId};

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

impl TraceQuery {
    pub fn matches(&self, span: &SpanRecord) -> bool {
        let duration = Duration::from_nanos(span.duration_nanos());
        self.service.as_deref().is_none_or(|s| s == span.service())
            && self.operation.as_deref().is_none_or(|o| o == span.name)
            && self
                .start_min_unix_nano
                .is_none_or(|t| span.start_unix_nano >= t)
            && self
                .start_max_unix_nano
                .is_none_or(|t| span.start_unix_nano <= t)
            && self.min_duration.is_none_or(|d| duration >= d)
            && self.max_duration.is_none_or(|d| duration <= d)
            && self.tags.iter().all(|(k, v)| has_tag(span, k, v))
    }
}

fn has_tag(span: &SpanRecord, key: &str, value: &str) -> bool {
    let event_attributes = span.events.iter().flat_map(|e| &e.attributes);
    span.attributes
        .iter()
        .chain(&span.resource.attributes)
        .chain(event_attributes)
        .chain(&span.derived_tags())
        .any(|a| a.key == key && a.value.to_text() == value)
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

/// Stored span count per operation name and kind (indexed by `kind as usize`).
type OperationCounts = HashMap<String, [usize; 6]>;

#[derive(Debug)]
pub struct SpanStore {
    capacity: usize,
    max_bytes: usize,
    /// Sum of the stored spans' `approx_bytes`.
    bytes: usize,
    spans: Ring<Arc<SpanRecord>>,
    by_trace: SeqIndex<TraceId>,
    by_service: SeqIndex<Arc<str>>,
    operations: HashMap<Arc<str>, OperationCounts>,
}

impl SpanStore {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity,
            max_bytes,
            bytes: 0,
            spans: Ring::default(),
            by_trace: SeqIndex::default(),
            by_service: SeqIndex::default(),
            operations: HashMap::new(),
        }
    }

    /// Stores `span`, then evicts the oldest spans beyond capacity; returns
    /// how many were evicted.
    pub fn insert(&mut self, span: Arc<SpanRecord>) -> u64 {
        let seq = self.spans.next_seq();
        self.by_trace.insert(span.trace_id, seq);
        self.by_service
            .insert(Arc::clone(&span.resource.service_name), seq);
        self.count_operation(&span);
        self.bytes += span.approx_bytes();
        self.spans.push(span);
        let mut evicted = 0;
        while self.spans.len() > self.capacity
            || (self.bytes > self.max_bytes && self.spans.len() > 0)
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
        self.bytes = self.bytes.saturating_sub(span.approx_bytes());
        self.by_trace.remove_oldest(&span.trace_id, seq);
        self.by_service.remove_oldest(span.service(), seq);
        self.uncount_operation(&span);
    }

    fn count_operation(&mut self, span: &SpanRecord) {
        let ops = self
            .operations
            .entry(Arc::clone(&span.resource.service_name))
            .or_default();
        match ops.get_mut(&span.name) {
            Some(counts) => counts[span.kind as usize] += 1,
            None => {
                let mut counts = [0; 6];
                counts[span.kind as usize] = 1;
                ops.insert(span.name.clone(), counts);
            }
        }
    }

    fn uncount_operation(&mut self, span: &SpanRecord) {
        let Some(ops) = self.operations.get_mut(span.service()) else {
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
            self.operations.remove(span.service());
        }
    }

    fn spans_of<'a>(
        &'a self,
        seqs: impl IntoIterator<Item = &'a u64>,
    ) -> impl Iterator<Item = &'a Arc<SpanRecord>> {
        seqs.into_iter().filter_map(|seq| self.spans.get(*seq))
    }

    /// The stored spans of one trace, in arrival order; empty when unknown.
    pub fn trace(&self, trace_id: TraceId) -> Vec<Arc<SpanRecord>> {
        self.by_trace
            .get(&trace_id)
            .map(|seqs| self.spans_of(seqs).cloned().collect())
            .unwrap_or_default()
    }

    /// Ids of matching traces, the most recently received first.
    pub fn find_traces(&self, query: &TraceQuery) -> Vec<TraceId> {
        let candidates: Box<dyn Iterator<Item = &Arc<SpanRecord>>> = match &query.service {
            Some(service) => match self.by_service.get(service.as_str()) {
                Some(seqs) => Box::new(self.spans_of(seqs.iter().rev())),
                None => return Vec::new(),
            },
            None => Box::new(self.spans.newest_first()),
        };
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        for span in candidates {
            if found.len() >= query.limit {
                break;
            }
            if !seen.contains(&span.trace_id) && query.matches(span) {
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
                        name: name.clone(),
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
            let spans: Vec<&Arc<SpanRecord>> = self.spans_of(seqs).collect();
            let owner: HashMap<SpanId, &str> =
                spans.iter().map(|s| (s.span_id, s.service())).collect();
            for span in spans {
                let in_window = (start_unix_nano..=end_unix_nano).contains(&span.start_unix_nano);
                let parent_service = span.parent_span_id.and_then(|p| owner.get(&p).copied());
                if let Some(parent) = parent_service.filter(|p| in_window && *p != span.service()) {
                    *calls.entry((parent, span.service())).or_default() += 1;
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

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn trace_count(&self) -> usize {
        self.by_trace.len()
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
