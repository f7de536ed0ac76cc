//! The bounded log store and its indexes.
//!
//! Same shape as the span store: a [`Ring`] in arrival order, oldest evicted
//! first, plus a trace id index (the "logs of this trace" jump from a span)
//! and a service index (the usual starting point of a log search).

use std::sync::Arc;

use super::ring::{Ring, SeqIndex};
use crate::model::{AttrValue, LogEntry, TraceId};

/// Which log records `/api/logs` asks for.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub trace_id: Option<TraceId>,
    pub service: Option<String>,
    /// Lowest severity number kept; records with an unknown severity (0)
    /// are left out once a minimum is asked for.
    pub min_severity: Option<i32>,
    /// Case-sensitive substring of the body or of a string attribute's
    /// value (the error a record carries is usually an attribute, as a
    /// logfmt line shows it).
    pub text: Option<String>,
    /// Record time bounds, inclusive.
    pub start_min_unix_nano: Option<u64>,
    pub start_max_unix_nano: Option<u64>,
    pub limit: usize,
}

impl Default for LogQuery {
    fn default() -> Self {
        Self {
            trace_id: None,
            service: None,
            min_severity: None,
            text: None,
            start_min_unix_nano: None,
            start_max_unix_nano: None,
            limit: 100,
        }
    }
}

impl LogQuery {
    pub fn matches(&self, entry: &LogEntry) -> bool {
        self.trace_id.is_none_or(|t| entry.trace_id == Some(t))
            && self.service.as_deref().is_none_or(|s| s == entry.service())
            && self
                .min_severity
                .is_none_or(|min| entry.severity_number >= min)
            && self.text.as_deref().is_none_or(|q| mentions(entry, q))
            && self
                .start_min_unix_nano
                .is_none_or(|t| entry.time_unix_nano >= t)
            && self
                .start_max_unix_nano
                .is_none_or(|t| entry.time_unix_nano <= t)
    }
}

fn mentions(entry: &LogEntry, text: &str) -> bool {
    entry.body.contains(text)
        || entry
            .attributes
            .iter()
            .any(|a| matches!(&a.value, AttrValue::Str(v) if v.contains(text)))
}

/// One page of results: the newest `limit` matches and how many matched.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub entries: Vec<Arc<LogEntry>>,
    pub total: usize,
}

#[derive(Debug)]
pub struct LogStore {
    capacity: usize,
    max_bytes: usize,
    /// Sum of the stored records' `approx_bytes`.
    bytes: usize,
    entries: Ring<Arc<LogEntry>>,
    by_trace: SeqIndex<TraceId>,
    by_service: SeqIndex<Arc<str>>,
}

impl LogStore {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity,
            max_bytes,
            bytes: 0,
            entries: Ring::default(),
            by_trace: SeqIndex::default(),
            by_service: SeqIndex::default(),
        }
    }

    /// Stores `entry`, then evicts the oldest entries beyond capacity;
    /// returns how many were evicted.
    pub fn insert(&mut self, entry: Arc<LogEntry>) -> u64 {
        let seq = self.entries.next_seq();
        if let Some(trace_id) = entry.trace_id {
            self.by_trace.insert(trace_id, seq);
        }
        self.by_service
            .insert(Arc::clone(&entry.resource.service_name), seq);
        self.bytes += entry.approx_bytes();
        self.entries.push(entry);
        let mut evicted = 0;
        while self.entries.len() > self.capacity
            || (self.bytes > self.max_bytes && self.entries.len() > 0)
        {
            self.evict_oldest();
            evicted += 1;
        }
        evicted
    }

    fn evict_oldest(&mut self) {
        let Some((seq, entry)) = self.entries.pop_oldest() else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(entry.approx_bytes());
        if let Some(trace_id) = entry.trace_id {
            self.by_trace.remove_oldest(&trace_id, seq);
        }
        self.by_service.remove_oldest(entry.service(), seq);
    }

    /// Matches sorted newest first by record time (arrival order breaks
    /// ties), narrowed through the most selective index available.
    pub fn find(&self, query: &LogQuery) -> LogPage {
        let candidates: Box<dyn Iterator<Item = &Arc<LogEntry>>> =
            match (&query.trace_id, &query.service) {
                (Some(trace_id), _) => self.indexed(self.by_trace.get(trace_id)),
                (None, Some(service)) => self.indexed(self.by_service.get(service.as_str())),
                (None, None) => Box::new(self.entries.newest_first()),
            };
        let mut matches: Vec<&Arc<LogEntry>> = candidates.filter(|e| query.matches(e)).collect();
        // Stable sort: candidates come newest arrival first, so equal
        // timestamps keep that order.
        matches.sort_by_key(|e| std::cmp::Reverse(e.time_unix_nano));
        LogPage {
            total: matches.len(),
            entries: matches.into_iter().take(query.limit).cloned().collect(),
        }
    }

    fn indexed<'a>(
        &'a self,
        seqs: Option<&'a std::collections::VecDeque<u64>>,
    ) -> Box<dyn Iterator<Item = &'a Arc<LogEntry>> + 'a> {
        let seqs = seqs.into_iter().flat_map(|s| s.iter().rev());
        Box::new(seqs.filter_map(|seq| self.entries.get(*seq)))
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{log, trace_id};

    fn store_with(capacity: usize, entries: Vec<LogEntry>) -> LogStore {
        let mut store = LogStore::new(capacity, usize::MAX);
        for e in entries {
            store.insert(Arc::new(e));
        }
        store
    }

    fn bodies(page: &LogPage) -> Vec<&str> {
        page.entries.iter().map(|e| e.body.as_str()).collect()
    }

    #[test]
    fn evicts_the_oldest_record_first() {
        let mut store = store_with(
            2,
            vec![log(1, "cart", 9, "first"), log(2, "cart", 9, "second")],
        );
        assert_eq!(store.insert(Arc::new(log(3, "cart", 9, "third"))), 1);
        let page = store.find(&LogQuery::default());
        assert_eq!(bodies(&page), ["third", "second"]);
        assert_eq!(page.total, 2);
    }

    #[test]
    fn newest_first_by_record_time_not_arrival() {
        let store = store_with(
            10,
            vec![log(20, "cart", 9, "late"), log(10, "cart", 9, "early")],
        );
        assert_eq!(bodies(&store.find(&LogQuery::default())), ["late", "early"]);
    }

    #[test]
    fn text_search_reads_string_attribute_values_too() {
        let mut retry = log(1, "checkout", 13, "retrying call");
        retry.attributes = vec![
            crate::model::Attribute::new(
                "error",
                AttrValue::Str("Connection refused (os error 111)".into()),
            ),
            crate::model::Attribute::new("attempt", AttrValue::Int(111)),
        ];
        let store = store_with(10, vec![retry, log(2, "checkout", 9, "order placed")]);
        let find = |text: &str| {
            let query = LogQuery {
                text: Some(text.into()),
                ..LogQuery::default()
            };
            bodies(&store.find(&query)).join("|")
        };
        assert_eq!(find("Connection refused"), "retrying call");
        assert_eq!(find("retrying"), "retrying call");
        assert_eq!(find("placed"), "order placed");
        // Case-sensitive, and only string values.
        assert_eq!(find("connection refused"), "");
        assert_eq!(find("111)"), "retrying call");
        assert_eq!(find("attempt"), "");
    }

    #[test]
    fn filters_by_trace_service_severity_text_and_time() {
        let mut traced = log(5, "cart", 17, "payment declined");
        traced.trace_id = Some(trace_id(9));
        let store = store_with(
            10,
            vec![
                log(1, "cart", 9, "added item"),
                log(2, "auth", 13, "slow login"),
                log(3, "cart", 0, "no severity"),
                traced,
            ],
        );
        let find = |q: LogQuery| bodies(&store.find(&q)).join("|");
        let trace = LogQuery {
            trace_id: Some(trace_id(9)),
            ..LogQuery::default()
        };
        assert_eq!(find(trace), "payment declined");
        let cart = LogQuery {
            service: Some("cart".into()),
            ..LogQuery::default()
        };
        assert_eq!(
            find(cart.clone()),
            "payment declined|no severity|added item"
        );
        let warn = LogQuery {
            min_severity: Some(13),
            ..LogQuery::default()
        };
        assert_eq!(find(warn), "payment declined|slow login");
        let text = LogQuery {
            text: Some("item".into()),
            ..cart.clone()
        };
        assert_eq!(find(text), "added item");
        let window = LogQuery {
            start_min_unix_nano: Some(2),
            start_max_unix_nano: Some(3),
            ..LogQuery::default()
        };
        assert_eq!(find(window), "no severity|slow login");
    }

    #[test]
    fn limit_cuts_the_page_but_not_the_total() {
        let store = store_with(10, (1..=5).map(|t| log(t, "cart", 9, "x")).collect());
        let page = store.find(&LogQuery {
            limit: 2,
            ..LogQuery::default()
        });
        assert_eq!(page.entries.len(), 2);
        assert_eq!(page.total, 5);
        assert_eq!(page.entries[0].time_unix_nano, 5);
    }

    #[test]
    fn trace_index_forgets_evicted_records() {
        let mut first = log(1, "cart", 9, "old");
        first.trace_id = Some(trace_id(1));
        let store = store_with(1, vec![first, log(2, "cart", 9, "new")]);
        let page = store.find(&LogQuery {
            trace_id: Some(trace_id(1)),
            ..LogQuery::default()
        });
        assert!(page.entries.is_empty());
        assert_eq!(store.by_trace.len(), 0);
    }
}
