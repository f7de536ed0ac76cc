//! OTLP metrics received from the services, kept as their latest cumulative
//! value per series and re-exposed on `/metrics` under the standard OTLP →
//! Prometheus translation (the OTel specification's "Prometheus and
//! OpenMetrics compatibility"):
//!
//! - names: characters outside `[a-zA-Z0-9_:]` become `_`; the unit is
//!   appended as a word (`s` → `seconds`, `By` → `bytes`, `{request}`
//!   annotations dropped, `1` → `ratio` for gauges); monotonic sums end in
//!   `_total`;
//! - gauges and non-monotonic sums are gauges, monotonic sums counters,
//!   explicit-bucket histograms `_bucket`/`_sum`/`_count`, summaries
//!   `{quantile}`/`_sum`/`_count`; delta points are accumulated;
//! - resource: `job` is `service.namespace/service.name`, `instance` is
//!   `service.instance.id`, and the other resource attributes go to one
//!   `target_info` series per process.
//!
//! The map is bounded by series count; once full, points of *new* series
//! are dropped (and counted) while known series keep updating. Dropping new
//! series rather than evicting old ones keeps a cardinality explosion in one
//! service from erasing everyone else's series. Exponential histograms have
//! no text-format equivalent and are counted as dropped.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::KeyValue,
    metrics::v1::{
        AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
        metric::Data, number_data_point::Value as Number,
    },
};

use super::PointsRecorded;
use crate::{
    model::{AttrValue, Resource},
    openmetrics::{Writer, float},
    otlp::{self, NO_RECORDED_VALUE},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
        }
    }
}

/// Sorted label pairs identifying a series within its family.
type LabelSet = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Number(f64),
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Point {
    time_unix_nano: u64,
    value: Value,
}

#[derive(Debug)]
struct Family {
    kind: Kind,
    help: String,
    series: HashMap<LabelSet, Point>,
}

#[derive(Debug)]
pub struct MetricStore {
    max_series: usize,
    series: usize,
    families: BTreeMap<String, Family>,
    /// `target_info` label sets by (job, instance).
    targets: BTreeMap<(String, String), LabelSet>,
}

impl MetricStore {
    pub fn new(max_series: usize) -> Self {
        Self {
            max_series,
            series: 0,
            families: BTreeMap::new(),
            targets: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.series + self.targets.len()
    }

    pub fn record(&mut self, request: &ExportMetricsServiceRequest) -> PointsRecorded {
        let mut outcome = PointsRecorded::default();
        for resource_metrics in &request.resource_metrics {
            let resource = otlp::resource(resource_metrics.resource.as_ref());
            let identity = identity_labels(&resource);
            self.note_target(&resource, &identity);
            for metric in resource_metrics
                .scope_metrics
                .iter()
                .flat_map(|s| &s.metrics)
            {
                self.record_metric(metric, &identity, &mut outcome);
            }
        }
        outcome
    }

    fn note_target(&mut self, resource: &Resource, identity: &LabelSet) {
        let key = (identity[0].1.clone(), identity[1].1.clone());
        if self.targets.contains_key(&key) || self.len() >= self.max_series {
            return;
        }
        let mut labels = identity.clone();
        for attribute in &resource.attributes {
            if !matches!(
                attribute.key.as_str(),
                "service.name" | "service.namespace" | "service.instance.id"
            ) {
                labels.push((label_name(&attribute.key), attribute.value.to_text()));
            }
        }
        self.targets.insert(key, merge_duplicates(labels));
    }

    fn record_metric(
        &mut self,
        metric: &Metric,
        identity: &LabelSet,
        outcome: &mut PointsRecorded,
    ) {
        let Some(data) = &metric.data else {
            return;
        };
        let (kind, delta) = match data {
            Data::Gauge(_) => (Kind::Gauge, false),
            Data::Sum(s) if s.is_monotonic => (Kind::Counter, is_delta(s.aggregation_temporality)),
            Data::Sum(s) => (Kind::Gauge, is_delta(s.aggregation_temporality)),
            Data::Histogram(h) => (Kind::Histogram, is_delta(h.aggregation_temporality)),
            Data::Summary(_) => (Kind::Summary, false),
            Data::ExponentialHistogram(_) => {
                outcome.dropped += otlp::point_count(data);
                return;
            }
        };
        let name = metric_name(&metric.name, &metric.unit, kind);
        let points: Vec<(&[KeyValue], Point)> = match data {
            Data::Gauge(g) => g.data_points.iter().filter_map(number_point).collect(),
            Data::Sum(s) => s.data_points.iter().filter_map(number_point).collect(),
            Data::Histogram(h) => h.data_points.iter().map(histogram_point).collect(),
            Data::Summary(s) => s.data_points.iter().map(summary_point).collect(),
            Data::ExponentialHistogram(_) => Vec::new(),
        };
        let family = self.families.entry(name).or_insert_with(|| Family {
            kind,
            help: metric.description.clone(),
            series: HashMap::new(),
        });
        if family.kind != kind {
            // Two services disagree on what this metric is; the first wins.
            outcome.dropped += points.len() as u64;
            return;
        }
        for (attributes, point) in points {
            let labels = series_labels(identity, attributes);
            match family.series.get_mut(&labels) {
                Some(current) => {
                    update(current, point, delta);
                    outcome.accepted += 1;
                }
                None if self.series + self.targets.len() < self.max_series => {
                    family.series.insert(labels, point);
                    self.series += 1;
                    outcome.accepted += 1;
                }
                None => outcome.dropped += 1,
            }
        }
    }

    pub fn render(&self, out: &mut Writer) {
        if !self.targets.is_empty() {
            out.family("target", "info", "Resource attributes of each process", "");
            for labels in self.targets.values() {
                let pairs: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                out.sample("target", "_info", &pairs, 1.0);
            }
        }
        for (name, family) in &self.families {
            let family_name = match family.kind {
                Kind::Counter => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            // No `# UNIT` line: OpenMetrics requires the name to end in the
            // unit, which translated names only do for known units.
            out.family(family_name, family.kind.as_str(), &family.help, "");
            let mut series: Vec<_> = family.series.iter().collect();
            series.sort_by(|a, b| a.0.cmp(b.0));
            for (labels, point) in series {
                let pairs: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                write_point(out, family_name, family.kind, &pairs, &point.value);
            }
        }
    }
}

fn write_point(out: &mut Writer, name: &str, kind: Kind, labels: &[(&str, &str)], value: &Value) {
    match value {
        Value::Number(n) => {
            let suffix = if kind == Kind::Counter { "_total" } else { "" };
            out.sample(name, suffix, labels, *n);
        }
        Value::Histogram {
            bounds,
            counts,
            sum,
            count,
        } => {
            out.histogram(name, labels, bounds, counts, &[], *sum, *count);
        }
        Value::Summary {
            quantiles,
            sum,
            count,
        } => {
            for (quantile, value) in quantiles {
                let q = float(*quantile);
                out.sample_with(name, "", labels, Some(("quantile", &q)), *value, None);
            }
            out.sample(name, "_sum", labels, *sum);
            out.sample(name, "_count", labels, *count as f64);
        }
    }
}

fn is_delta(temporality: i32) -> bool {
    temporality == AggregationTemporality::Delta as i32
}

/// Cumulative points replace older ones (never newer ones: retries can
/// reorder batches); delta points add up.
fn update(current: &mut Point, point: Point, delta: bool) {
    if !delta {
        if point.time_unix_nano >= current.time_unix_nano {
            *current = point;
        }
        return;
    }
    match (&mut current.value, point.value) {
        (Value::Number(sum), Value::Number(n)) => *sum += n,
        (
            Value::Histogram {
                bounds,
                counts,
                sum,
                count,
            },
            Value::Histogram {
                bounds: new_bounds,
                counts: new_counts,
                sum: new_sum,
                count: new_count,
            },
        ) if *bounds == new_bounds && counts.len() == new_counts.len() => {
            counts.iter_mut().zip(new_counts).for_each(|(c, n)| *c += n);
            *sum += new_sum;
            *count += new_count;
        }
        (value, new) => *value = new,
    }
    current.time_unix_nano = current.time_unix_nano.max(point.time_unix_nano);
}

fn number_point(p: &NumberDataPoint) -> Option<(&[KeyValue], Point)> {
    let value = match p.value {
        Some(Number::AsDouble(d)) => d,
        Some(Number::AsInt(i)) => i as f64,
        None if p.flags & NO_RECORDED_VALUE != 0 => f64::NAN,
        None => return None,
    };
    Some((
        &p.attributes,
        Point {
            time_unix_nano: p.time_unix_nano,
            value: Value::Number(value),
        },
    ))
}

fn histogram_point(p: &HistogramDataPoint) -> (&[KeyValue], Point) {
    let value = Value::Histogram {
        bounds: p.explicit_bounds.clone(),
        counts: p.bucket_counts.clone(),
        sum: p.sum.unwrap_or(f64::NAN),
        count: p.count,
    };
    (
        &p.attributes,
        Point {
            time_unix_nano: p.time_unix_nano,
            value,
        },
    )
}

fn summary_point(p: &SummaryDataPoint) -> (&[KeyValue], Point) {
    let value = Value::Summary {
        quantiles: p
            .quantile_values
            .iter()
            .map(|q| (q.quantile, q.value))
            .collect(),
        sum: p.sum,
        count: p.count,
    };
    (
        &p.attributes,
        Point {
            time_unix_nano: p.time_unix_nano,
            value,
        },
    )
}

/// `job` and `instance`, first and in that order.
fn identity_labels(resource: &Resource) -> LabelSet {
    let job = match resource.get("service.namespace").map(AttrValue::to_text) {
        Some(namespace) if !namespace.is_empty() => {
            format!("{namespace}/{}", resource.service_name)
        }
        _ => resource.service_name.to_string(),
    };
    vec![
        ("job".to_owned(), job),
        ("instance".to_owned(), resource.instance()),
    ]
}

fn series_labels(identity: &LabelSet, attributes: &[KeyValue]) -> LabelSet {
    let mut labels: LabelSet = otlp::attributes(attributes)
        .into_iter()
        .map(|a| (label_name(&a.key), a.value.to_text()))
        .filter(|(key, _)| key != "job" && key != "instance")
        .collect();
    labels.extend(identity.iter().cloned());
    merge_duplicates(labels)
}

/// Sorts by name; keys that sanitize to the same name are joined with `;`,
/// as the specification asks.
fn merge_duplicates(mut labels: LabelSet) -> LabelSet {
    labels.sort();
    let mut merged: LabelSet = Vec::with_capacity(labels.len());
    for (key, value) in labels {
        match merged.last_mut() {
            Some((last, joined)) if *last == key => {
                joined.push(';');
                joined.push_str(&value);
            }
            _ => merged.push((key, value)),
        }
    }
    merged
}

/// A label name: invalid characters become `_`, and a leading digit gets a
/// `key_` prefix.
fn label_name(key: &str) -> String {
    let name = sanitize(key);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{name}")
    } else {
        name
    }
}

fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            c
        } else {
            '_'
        };
        // Runs of underscores collapse to one.
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out
}

/// The Prometheus name of an OTLP metric.
fn metric_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut prom = sanitize(name).trim_end_matches('_').to_owned();
    if prom.starts_with(|c: char| c.is_ascii_digit()) {
        prom.insert(0, '_');
    }
    let mut words: Vec<&str> = prom.split('_').collect();
    let unit_words = unit_suffix(unit, kind);
    for word in unit_words.split('_').filter(|w| !w.is_empty()) {
        if !words.contains(&word) {
            words.push(word);
        }
    }
    if kind == Kind::Counter && words.last() != Some(&"total") {
        words.retain(|w| *w != "total");
        words.push("total");
    }
    words.join("_")
}

/// `s` → `seconds`, `By/s` → `bytes_per_second`, `{request}` → ``.
fn unit_suffix(unit: &str, kind: Kind) -> String {
    let without_annotations: String = {
        let mut depth = 0;
        unit.chars()
            .filter(|c| match c {
                '{' => {
                    depth += 1;
                    false
                }
                '}' => {
                    depth -= 1;
                    false
                }
                _ => depth == 0,
            })
            .collect()
    };
    let unit = without_annotations.trim();
    if unit == "1" {
        return if kind == Kind::Gauge {
            "ratio".into()
        } else {
            String::new()
        };
    }
    let (main, per) = match unit.split_once('/') {
        Some((main, per)) => (main, Some(per)),
        None => (unit, None),
    };
    let main = unit_word(main).map_or_else(|| sanitize(main), str::to_owned);
    match per.map(|p| per_word(p).map_or_else(|| sanitize(p), str::to_owned)) {
        Some(per) if main.is_empty() => format!("per_{per}"),
        Some(per) => format!("{main}_per_{per}"),
        None => main,
    }
}

fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
