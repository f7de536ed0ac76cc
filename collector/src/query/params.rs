//! Query-string parsing shared by the query endpoints.
//!
//! Every parse failure becomes [`ApiError::BadParam`], whose message starts
//! with the parameter's name, so a learner (or an agent) sees exactly which
//! part of the URL to fix. An empty value counts as absent, because the
//! Jaeger UI sends empty parameters for unset search fields.

use std::{collections::HashMap, time::Duration};

use axum::{
    extract::{FromRequestParts, Query},
    http::request::Parts,
};

use super::ApiError;

/// The query string as a map; a repeated key keeps its last value.
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("query string: {}", e.body_text())))?;
        Ok(Self(map))
    }
}

fn bad(param: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::BadParam {
        param,
        reason: reason.into(),
    }
}

impl Params {
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The trimmed value, `None` when absent or empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Parses a present value with `parse`, naming the parameter on failure.
    pub fn parse<T, E: std::fmt::Display>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ApiError> {
        self.text(name)
            .map(|v| parse(v).map_err(|e| bad(name, e.to_string())))
            .transpose()
    }

    pub fn limit(&self, name: &'static str, default: usize) -> Result<usize, ApiError> {
        let limit = self.parse(name, |v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("must be a positive integer"),
        })?;
        Ok(limit.unwrap_or(default))
    }

    /// A Unix timestamp in microseconds (Jaeger's unit), as nanoseconds.
    pub fn unix_micros(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        self.unix_time(name, 1_000, "microseconds")
    }

    /// A Unix timestamp in milliseconds (Jaeger's dependencies API), as
    /// nanoseconds.
    pub fn unix_millis(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        self.unix_time(name, 1_000_000, "milliseconds")
    }

    fn unix_time(
        &self,
        name: &'static str,
        nanos_per_unit: u64,
        unit: &str,
    ) -> Result<Option<u64>, ApiError> {
        self.parse(name, |v| {
            v.parse::<u64>()
                .ok()
                .and_then(|t| t.checked_mul(nanos_per_unit))
                .ok_or_else(|| format!("must be {unit} since the Unix epoch"))
        })
    }

    /// A Go-style duration such as `10ms`, `1.5s` or `1h30m`.
    pub fn duration(&self, name: &'static str) -> Result<Option<Duration>, ApiError> {
        self.parse(name, |v| {
            parse_duration(v).ok_or("must be a duration such as 10ms, 1.5s or 2m")
        })
    }

    /// The `tags` parameter: a JSON object of tag → expected value.
    /// Numbers and booleans are accepted and compared as text.
    pub fn tags(&self, name: &'static str) -> Result<Vec<(String, String)>, ApiError> {
        let tags = self.parse(name, |v| {
            let reason = r#"must be a JSON object of strings, e.g. {"error":"true"}"#;
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(v).map_err(|_| reason)?;
            map.into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => Ok((k, s)),
                    serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                        Ok((k, v.to_string()))
                    }
                    _ => Err(reason),
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(tags.unwrap_or_default())
    }
}

/// Parses `<number><unit>` sequences (Go's `time.ParseDuration` syntax plus
/// `d` for days, which the Jaeger UI's lookback uses). Units: ns, us/µs, ms,
/// s, m, h, d.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut seconds = 0.0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !is_number(c)).unwrap_or(rest.len());
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(is_number).unwrap_or(rest.len());
        seconds += value * unit_seconds(&rest[..unit_len])?;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(seconds).ok()
}

fn unit_seconds(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1e-9,
        "us" | "µs" | "μs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3_600.0,
        "d" => 86_400.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_syntax() {
        assert_eq!(parse_duration("10ms"), Some(Duration::from_millis(10)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        for bad in ["", "10", "ms", "10 parsecs", "1..5s", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn limit_must_be_positive_and_names_the_parameter() {
        assert_eq!(Params::default().limit("limit", 20).unwrap(), 20);
        assert_eq!(
            Params::from_pairs(&[("limit", "")])
                .limit("limit", 20)
                .unwrap(),
            20
        );
        assert_eq!(
            Params::from_pairs(&[("limit", "5")])
                .limit("limit", 20)
                .unwrap(),
            5
        );
        for bad in ["0", "-3", "ten"] {
            let error = Params::from_pairs(&[("limit", bad)])
                .limit("limit", 20)
                .unwrap_err();
            assert_eq!(error.to_string(), "limit: must be a positive integer");
        }
    }

    #[test]
    fn timestamps_convert_to_nanoseconds() {
        let params =
            Params::from_pairs(&[("start", "1700000000000000"), ("endTs", "1700000000000")]);
        assert_eq!(
            params.unix_micros("start").unwrap(),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            params.unix_millis("endTs").unwrap(),
            Some(1_700_000_000_000_000_000)
        );
        let error = Params::from_pairs(&[("end", "yesterday")])
            .unix_micros("end")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "end: must be microseconds since the Unix epoch"
        );
    }

    #[test]
    fn tags_are_a_json_object() {
        let params = Params::from_pairs(&[("tags", r#"{"error":"true","http.status_code":500}"#)]);
        let mut tags = params.tags("tags").unwrap();
        tags.sort();
        assert_eq!(
            tags,
            [
                ("error".to_string(), "true".to_string()),
                ("http.status_code".to_string(), "500".to_string())
            ]
        );
        let error = Params::from_pairs(&[("tags", "error=true")])
            .tags("tags")
            .unwrap_err();
        assert!(error.to_string().starts_with("tags: must be a JSON object"));
    }
}
