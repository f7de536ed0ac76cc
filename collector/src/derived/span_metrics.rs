//! `traces_span_metrics_calls_total` and
//! `traces_span_metrics_duration_seconds`, labelled `service_name`,
//! `span_name`, `span_kind`, `status_code`, as the contrib `spanmetrics`
//! connector (namespace `traces.span.metrics`, unit seconds) exposes them.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use super::{SpanFacts, span_kind_label, status_code_label};
use crate::{
    hashing::FastHash,
    openmetrics::{Exemplar, Histogram, Writer},
};

/// The connector's default explicit buckets, in seconds.
const BOUNDS: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

/// Six span kinds × three status codes per span name.
const SLOTS: usize = 18;

#[derive(Debug)]
struct Series {
    calls: u64,
    latest: Exemplar,
    duration: Histogram,
}

/// The (kind, status) slots of one span name.
type Slots = [Option<Box<Series>>; SLOTS];

/// Span names of one service → (kind, status) slots. Names are kept as
/// the bytes they arrived as (checked UTF-8), so a lookup borrows the
/// span's bytes and allocates nothing once the series exists.
type Names = HashMap<Box<[u8]>, Slots, FastHash>;

/// service → span name → (kind, status) slot. The service is looked up
/// once per resource ([`Self::service`]), the name once per span.
#[derive(Debug)]
pub struct SpanMetrics {
    max_series: usize,
    series: usize,
    dropped: u64,
    /// Each service's index in `by_service`.
    services: HashMap<Arc<str>, usize, FastHash>,
    by_service: Vec<(Arc<str>, Names)>,
}

impl SpanMetrics {
    pub fn new(max_series: usize) -> Self {
        Self {
            max_series,
            series: 0,
            dropped: 0,
            services: HashMap::default(),
            by_service: Vec::new(),
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Where `service`'s series are, if it has any yet: for
    /// [`Self::observe`], which adds the service when it has none.
    pub fn service(&self, service: &str) -> Option<usize> {
        self.services.get(service).copied()
    }

    pub fn observe(&mut self, service: &mut Option<usize>, span: &SpanFacts<'_>) {
        let slot = slot(span.kind, span.status);
        let has_room = self.series < self.max_series;
        let index = match *service {
            Some(index) => index,
            None if has_room => {
                let index = self.by_service.len();
                self.by_service
                    .push((Arc::clone(span.service), Names::default()));
                self.services.insert(Arc::clone(span.service), index);
                *service = Some(index);
                index
            }
            None => {
                self.dropped += 1;
                return;
            }
        };
        let names = &mut self.by_service[index].1;
        let slots = match names.get_mut(span.name) {
            Some(slots) => slots,
            None if has_room => names
                .entry(span.name.into())
                .or_insert_with(|| std::array::from_fn(|_| None)),
            None => {
                self.dropped += 1;
                return;
            }
        };
        let exemplar = span.exemplar();
        match &mut slots[slot] {
            Some(series) => {
                series.calls += 1;
                series.latest = exemplar;
                series
                    .duration
                    .observe(&BOUNDS, span.seconds, Some(exemplar));
            }
            empty if has_room => {
                let mut duration = Histogram::new(&BOUNDS);
                duration.observe(&BOUNDS, span.seconds, Some(exemplar));
                *empty = Some(Box::new(Series {
                    calls: 1,
                    latest: exemplar,
                    duration,
                }));
                self.series += 1;
            }
            _ => self.dropped += 1,
        }
    }

    pub fn render(&self, out: &mut Writer) {
        let mut rows = Vec::with_capacity(self.series);
        for (service, names) in &self.by_service {
            for (name, slots) in names {
                for (slot, series) in slots.iter().enumerate() {
                    if let Some(series) = series {
                        rows.push((&**service, String::from_utf8_lossy(name), slot, &**series));
                    }
                }
            }
        }
        rows.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        let labels = |(service, name, slot, _): &(&str, Cow<'_, str>, usize, &Series)| {
            let (kind, status) = unslot(*slot);
            [
                ("service_name", (*service).to_owned()),
                ("span_name", name.to_string()),
                ("span_kind", kind.to_owned()),
                ("status_code", status.to_owned()),
            ]
        };
        let calls = "traces_span_metrics_calls";
        out.family(
            calls,
            "counter",
            "Spans by service, name, kind and status",
            "",
        );
        for row in &rows {
            let owned = labels(row);
            let pairs = owned.each_ref().map(|(k, v)| (*k, v.as_str()));
            let series = row.3;
            let exemplar = Exemplar {
                value: 1.0,
                ..series.latest
            };
            out.sample_with(
                calls,
                "_total",
                &pairs,
                None,
                series.calls as f64,
                Some(&exemplar),
            );
        }
        let duration = "traces_span_metrics_duration_seconds";
        out.family(duration, "histogram", "Span durations", "seconds");
        for row in &rows {
            let owned = labels(row);
            let pairs = owned.each_ref().map(|(k, v)| (*k, v.as_str()));
            row.3.duration.write(out, duration, &pairs, &BOUNDS);
        }
    }
}

fn slot(kind: i32, status: i32) -> usize {
    let kind = usize::try_from(kind).ok().filter(|k| *k <= 5).unwrap_or(0);
    let status = usize::try_from(status)
        .ok()
        .filter(|s| *s <= 2)
        .unwrap_or(0);
    kind * 3 + status
}

fn unslot(slot: usize) -> (&'static str, &'static str) {
    let kind = i32::try_from(slot / 3).unwrap_or(0);
    let status = i32::try_from(slot % 3).unwrap_or(0);
    (span_kind_label(kind), status_code_label(status))
}
