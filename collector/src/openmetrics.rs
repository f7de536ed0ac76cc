//! A small OpenMetrics text writer for the series whose names and labels
//! are only known at run time: derived span and service-graph metrics and
//! the OTLP metrics re-exposed from the services. (The collector's own
//! fixed metrics use prometheus-client; see `self_metrics`.)
//!
//! Format: <https://prometheus.io/docs/specs/om/open_metrics_spec/>. Family
//! metadata (`# TYPE`, `# HELP`, `# UNIT`) precedes its samples; exemplars
//! follow a sample as `# {trace_id="..."} value timestamp`.

use std::fmt::Write as _;

use crate::model::TraceId;

/// The sampled trace behind a sample, so a dashboard can jump to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    pub trace_id: TraceId,
    pub value: f64,
    pub unix_nano: u64,
}

/// Bucket counts of one histogram series with the latest exemplar per
/// bucket. `counts` has one entry per bound plus the `+Inf` bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
    exemplars: Vec<Option<Exemplar>>,
    sum: f64,
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            counts: vec![0; bounds.len() + 1],
            exemplars: vec![None; bounds.len() + 1],
            sum: 0.0,
        }
    }

    pub fn observe(&mut self, bounds: &[f64], value: f64, exemplar: Option<Exemplar>) {
        let bucket = bounds.partition_point(|bound| *bound < value);
        if let Some(count) = self.counts.get_mut(bucket) {
            *count += 1;
        }
        if let (Some(slot), Some(exemplar)) = (self.exemplars.get_mut(bucket), exemplar) {
            *slot = Some(exemplar);
        }
        self.sum += value;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Writes `_bucket` (cumulative), `_sum` and `_count` samples.
    pub fn write(&self, out: &mut Writer, name: &str, labels: &Labels<'_>, bounds: &[f64]) {
        out.histogram(
            name,
            labels,
            bounds,
            &self.counts,
            &self.exemplars,
            self.sum,
            self.count(),
        );
    }
}

/// Label pairs of one series, in output order.
pub type Labels<'a> = [(&'a str, &'a str)];

/// Accumulates exposition text.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes one histogram series: cumulative `_bucket` samples (with an
    /// exemplar where `exemplars` has one), then `_sum` and `_count`. A
    /// series whose `counts` lack the `+Inf` bucket still gets one, from
    /// `count`.
    #[allow(clippy::too_many_arguments)]
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &Labels<'_>,
        bounds: &[f64],
        counts: &[u64],
        exemplars: &[Option<Exemplar>],
        sum: f64,
        count: u64,
    ) {
        let mut cumulative = 0;
        for (i, bucket) in counts.iter().enumerate() {
            cumulative += bucket;
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| float(*b));
            let exemplar = exemplars.get(i).copied().flatten();
            self.sample_with(
                name,
                "_bucket",
                labels,
                Some(("le", &le)),
                cumulative as f64,
                exemplar.as_ref(),
            );
        }
        if counts.len() <= bounds.len() {
            self.sample_with(
                name,
                "_bucket",
                labels,
                Some(("le", "+Inf")),
                count as f64,
                None,
            );
        }
        self.sample(name, "_sum", labels, sum);
        self.sample(name, "_count", labels, count as f64);
    }

    /// Starts a metric family; `kind` is an OpenMetrics type (`counter`,
    /// `gauge`, `histogram`, `summary`, `info`, `unknown`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str, unit: &str) {
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        if !unit.is_empty() {
            let _ = writeln!(self.out, "# UNIT {name} {unit}");
        }
        if !help.is_empty() {
            let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        }
    }

    pub fn sample(&mut self, name: &str, suffix: &str, labels: &Labels<'_>, value: f64) {
        self.sample_with(name, suffix, labels, None, value, None);
    }

    /// One sample line; `extra` is a trailing label such as `le` or
    /// `quantile`.
    pub fn sample_with(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &Labels<'_>,
        extra: Option<(&str, &str)>,
        value: f64,
        exemplar: Option<&Exemplar>,
    ) {
        let out = &mut self.out;
        out.push_str(name);
        out.push_str(suffix);
        let mut pairs = labels.iter().copied().chain(extra).peekable();
        if pairs.peek().is_some() {
            out.push('{');
            for (i, (key, value)) in pairs.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{key}=\"{}\"", escape_label(value));
            }
            out.push('}');
        }
        let _ = write!(out, " {}", float(value));
        if let Some(e) = exemplar {
            let _ = write!(
                out,
                " # {{trace_id=\"{}\"}} {} {}",
                e.trace_id,
                float(e.value),
                float(e.unix_nano as f64 / 1e9)
            );
        }
        out.push('\n');
    }

    /// The text so far, without the closing `# EOF` (the caller joins
    /// several writers and ends the exposition once).
    pub fn into_text(self) -> String {
        self.out
    }
}

/// OpenMetrics number syntax: `NaN`, `+Inf`, `-Inf`, else Rust's shortest
/// round-trip form (which prints integers without a fraction).
pub fn float(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(value: &str) -> String {
    value.replace('\\', r"\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_exemplars() {
        let bounds = [0.1, 1.0];
        let mut histogram = Histogram::new(&bounds);
        let trace_id = TraceId::from_bytes([0xab; 16]).unwrap();
        let exemplar = Exemplar {
            trace_id,
            value: 0.5,
            unix_nano: 1_500_000_000,
        };
        histogram.observe(&bounds, 0.05, None);
        histogram.observe(&bounds, 0.5, Some(exemplar));
        histogram.observe(&bounds, 7.0, None);
        let mut out = Writer::new();
        out.family("d_seconds", "histogram", "a \"quoted\"\nhelp", "seconds");
        histogram.write(&mut out, "d_seconds", &[("svc", "a\"b")], &bounds);
        let text = out.into_text();
        let expected = format!(
            "# TYPE d_seconds histogram\n\
             # UNIT d_seconds seconds\n\
             # HELP d_seconds a \"quoted\"\\nhelp\n\
             d_seconds_bucket{{svc=\"a\\\"b\",le=\"0.1\"}} 1\n\
             d_seconds_bucket{{svc=\"a\\\"b\",le=\"1\"}} 2 # {{trace_id=\"{trace_id}\"}} 0.5 1.5\n\
             d_seconds_bucket{{svc=\"a\\\"b\",le=\"+Inf\"}} 3\n\
             d_seconds_sum{{svc=\"a\\\"b\"}} 7.55\n\
             d_seconds_count{{svc=\"a\\\"b\"}} 3\n"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn special_floats() {
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(3.0), "3");
        assert_eq!(float(0.25), "0.25");
    }
}
