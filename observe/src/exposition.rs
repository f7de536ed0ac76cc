//! The Prometheus text and OpenMetrics exposition every process serves on
//! `/metrics`, read into samples, and PromQL's quantile over a histogram's
//! buckets.

/// One `/metrics` sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_labels(&self, wanted: &std::collections::BTreeMap<String, String>) -> bool {
        wanted.iter().all(|(k, v)| self.label(k) == Some(v))
    }
}

/// The metric families `text` declares (`# TYPE name ...`), with samples
/// or not yet: a counter nobody has incremented has no sample, but its
/// family is there.
pub fn declared_families(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// Parses Prometheus text or OpenMetrics exposition into samples; comment
/// lines, exemplars and timestamps are skipped.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_sample).collect()
}

pub fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    // A quoted value with `\"`, `\\` and `\n` escapes.
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        }
        rest = &body[end?..];
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Linear interpolation within the bucket holding the rank, as PromQL's
/// `histogram_quantile` does; `buckets` are cumulative, sorted by bound.
pub fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return f64::NAN;
    };
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return lower.0;
            }
            let in_bucket = count - lower.1;
            if in_bucket <= 0.0 {
                return bound;
            }
            return lower.0 + (bound - lower.0) * (rank - lower.1) / in_bucket;
        }
        lower = (bound, count);
    }
    lower.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_parse_with_escapes_and_exemplars() {
        let text = "# HELP x y\n\
            http_server_request_duration_seconds_bucket{http_route=\"/api/products\",le=\"0.005\"} 3\n\
            odd{a=\"say \\\"hi\\\"\",b=\"x,y\"} 1.5 1700000000\n\
            up 1\n\
            c_total{k=\"v\"} 7 # {trace_id=\"abc\"} 1.0\n\
            b_bucket{le=\"+Inf\"} 9\n";
        let samples = parse_exposition(text);
        assert_eq!(samples.len(), 5, "{samples:?}");
        assert_eq!(samples[0].label("http_route"), Some("/api/products"));
        assert_eq!(samples[1].label("a"), Some("say \"hi\""));
        assert_eq!(samples[1].label("b"), Some("x,y"));
        assert_eq!(samples[1].value, 1.5);
        assert_eq!(samples[2].name, "up");
        assert_eq!(samples[3].value, 7.0);
        assert_eq!(
            samples[4].label("le").unwrap().parse::<f64>().unwrap(),
            f64::INFINITY
        );
    }

    #[test]
    fn quantiles_interpolate_like_promql() {
        let buckets = [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        assert!((histogram_quantile(&buckets, 0.5) - 0.1).abs() < 1e-9);
        assert!((histogram_quantile(&buckets, 0.75) - 0.15).abs() < 1e-9);
        // Everything above the last finite bound: that bound is the answer.
        let slow = [(0.1, 0.0), (0.2, 0.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(&slow, 0.5), 0.2);
    }
}
