//! Reading the lab as a learner can: every process's `/metrics`, and the
//! collector's trace and log APIs. Nothing here asks the controller what it
//! injected.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::checks::{Check, Symptom};
use crate::exposition::{Sample, declared_families, histogram_quantile, parse_exposition};

/// The server latency histogram every service exports.
pub const SERVER_HISTOGRAM: &str = "http_server_request_duration_seconds";

/// One process of the lab, as `endpoints.json` lists it.
#[derive(Deserialize, Clone, Debug)]
pub struct Component {
    pub id: String,
    pub name: String,
    pub health: String,
    pub metrics: String,
}

/// Every component's samples at one instant; a component that did not
/// answer is absent (not empty).
pub struct Scrape {
    pub at: Instant,
    pub by_component: HashMap<String, Vec<Sample>>,
    /// Every metric family any component declared, with samples or not.
    pub declared: std::collections::HashSet<String>,
}

/// Two scrapes: what changed between them is what the window saw.
pub struct Window {
    pub from: Scrape,
    pub to: Scrape,
    /// Wall-clock start, for the collector's time filters (µs).
    pub start_us: i64,
}

/// Whether a check held in one window, and what was seen.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub holds: bool,
    pub seen: String,
}

/// A route's SLI at the gateway over one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sli {
    /// Answers in the window.
    pub requests: f64,
    /// Answers that were 5xx.
    pub errors: f64,
    /// Answers slower than the threshold asked for.
    pub slow: f64,
    /// Share of 5xx answers.
    pub error_ratio: f64,
    /// Median and 95th percentile latency, ms (`None` without answers).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// What reads the lab: where its processes serve and where the collector's
/// query API is.
pub struct Observer {
    pub http: reqwest::Client,
    /// The collector's query API, e.g. `http://127.0.0.1:16686`.
    pub query: String,
    pub components: Vec<Component>,
}

impl Observer {
    pub fn new(query: String, components: Vec<Component>) -> anyhow::Result<Observer> {
        Ok(Observer {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()?,
            query,
            components,
        })
    }

    /// `route`'s SLI at the gateway over `window`, answers slower than
    /// `slow_ms` counted as slow; `None` without answers.
    pub fn sli(&self, window: &Window, route: &str, slow_ms: f64) -> Option<Sli> {
        let (error_ratio, requests) = self.error_ratio(window, "gateway", route)?;
        Some(Sli {
            requests,
            errors: error_ratio * requests,
            slow: self.slower_than(window, "gateway", route, slow_ms),
            error_ratio,
            p50_ms: self
                .latency(window, "gateway", route, 0.5)
                .map(|(ms, _)| ms),
            p95_ms: self
                .latency(window, "gateway", route, 0.95)
                .map(|(ms, _)| ms),
        })
    }

    /// Whether the gateway SLI of `route` is within `max_error_ratio` and a
    /// median of `max_latency_ms`, and every check holds, in one window.
    pub async fn recovered(
        &self,
        route: &str,
        max_error_ratio: f64,
        max_latency_ms: u64,
        checks: &[Symptom],
        window: &Window,
    ) -> Outcome {
        let mut parts = Vec::new();
        let mut holds = true;
        match self.error_ratio(window, "gateway", route) {
            Some((share, n)) => {
                holds &= share <= max_error_ratio;
                parts.push(format!("5xx ratio {share:.3} over {n}"));
            }
            None => {
                holds = false;
                parts.push(format!("no requests on {route}"));
            }
        }
        if let Some((latency, _)) = self.latency(window, "gateway", route, 0.5) {
            holds &= latency <= max_latency_ms as f64;
            parts.push(format!("median {latency:.0} ms"));
        }
        for check in checks {
            let outcome = self.evaluate(check, window, window.start_us).await;
            holds &= outcome.holds;
            parts.push(outcome.seen);
        }
        Outcome {
            holds,
            seen: format!("{route}: {}", parts.join(", ")),
        }
    }

    /// Scrapes every component at once; one that does not answer (it is
    /// restarting, or crashed) contributes nothing.
    pub async fn scrape(&self) -> Scrape {
        let at = Instant::now();
        let fetches = self.components.iter().map(|c| async move {
            let text = async {
                self.http
                    .get(&c.metrics)
                    .send()
                    .await
                    .ok()?
                    .error_for_status()
                    .ok()?
                    .text()
                    .await
                    .ok()
            }
            .await;
            text.map(|t| (c.id.clone(), parse_exposition(&t), declared_families(&t)))
        });
        let mut scrape = Scrape {
            at,
            by_component: HashMap::new(),
            declared: Default::default(),
        };
        for (id, samples, families) in futures::future::join_all(fetches)
            .await
            .into_iter()
            .flatten()
        {
            scrape.by_component.insert(id, samples);
            scrape.declared.extend(families);
        }
        scrape
    }

    pub async fn window(&self, length: Duration) -> Window {
        let start_us = now_us();
        let from = self.scrape().await;
        tokio::time::sleep_until((from.at + length).into()).await;
        let to = self.scrape().await;
        Window { from, to, start_us }
    }

    /// The components a symptom reads: a service's instances, or one.
    pub fn selected<'a>(&'a self, who: &'a str) -> impl Iterator<Item = &'a Component> + 'a {
        self.components
            .iter()
            .filter(move |c| c.id == who || c.name == who)
    }

    /// The increase of every series `keep` selects, summed per key `key`.
    pub fn increase(
        &self,
        window: &Window,
        who: &str,
        name: &str,
        keep: impl Fn(&Sample) -> bool,
        key: impl Fn(&Sample) -> String,
    ) -> HashMap<String, f64> {
        let mut sums = HashMap::new();
        for component in self.selected(who) {
            // Unknown at either end (restarting, or too busy to answer its
            // scrape): what it did in the window cannot be told, and
            // counting its whole life as the window's would inflate rates.
            let (Some(before), Some(after)) = (
                window.from.by_component.get(&component.id),
                window.to.by_component.get(&component.id),
            ) else {
                continue;
            };
            for sample in after.iter().filter(|s| s.name == name && keep(s)) {
                let earlier = before
                    .iter()
                    .find(|s| s.name == sample.name && s.labels == sample.labels)
                    .map(|s| s.value);
                let delta = match earlier {
                    Some(v) if v <= sample.value => sample.value - v,
                    // A reset (the process restarted) or a new series.
                    _ => sample.value,
                };
                *sums.entry(key(sample)).or_insert(0.0) += delta;
            }
        }
        sums
    }

    pub fn current(
        &self,
        window: &Window,
        who: &str,
        name: &str,
        keep: impl Fn(&Sample) -> bool,
    ) -> (f64, usize) {
        let mut sum = 0.0;
        let mut n = 0;
        for component in self.selected(who) {
            for sample in window
                .to
                .by_component
                .get(&component.id)
                .into_iter()
                .flatten()
                .filter(|s| s.name == name && keep(s))
            {
                sum += sample.value;
                n += 1;
            }
        }
        (sum, n)
    }

    /// `quantile` of server latency on `route` in ms, and the request count.
    pub fn latency(
        &self,
        window: &Window,
        who: &str,
        route: &str,
        quantile: f64,
    ) -> Option<(f64, f64)> {
        let buckets = self.increase(
            window,
            who,
            &format!("{SERVER_HISTOGRAM}_bucket"),
            |s| s.label("http_route") == Some(route),
            |s| s.label("le").unwrap_or("").to_string(),
        );
        let mut buckets: Vec<(f64, f64)> = buckets
            .into_iter()
            .filter_map(|(le, n)| Some((le.parse::<f64>().ok()?, n)))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
        if total <= 0.0 {
            return None;
        }
        Some((histogram_quantile(&buckets, quantile) * 1000.0, total))
    }

    /// How many answers on `route` took longer than `ms`, from the latency
    /// histogram (interpolated within the bucket that holds `ms`, as
    /// PromQL would).
    pub fn slower_than(&self, window: &Window, who: &str, route: &str, ms: f64) -> f64 {
        let buckets = self.increase(
            window,
            who,
            &format!("{SERVER_HISTOGRAM}_bucket"),
            |s| s.label("http_route") == Some(route),
            |s| s.label("le").unwrap_or("").to_string(),
        );
        let mut buckets: Vec<(f64, f64)> = buckets
            .into_iter()
            .filter_map(|(le, n)| Some((le.parse::<f64>().ok()?, n)))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last().map_or(0.0, |b| b.1);
        let limit = ms / 1000.0;
        let mut lower = (0.0, 0.0);
        for &(bound, count) in &buckets {
            if bound >= limit {
                let within = if bound.is_infinite() || bound <= lower.0 {
                    lower.1
                } else {
                    lower.1 + (count - lower.1) * (limit - lower.0) / (bound - lower.0)
                };
                return (total - within).max(0.0);
            }
            lower = (bound, count);
        }
        (total - lower.1).max(0.0)
    }

    /// 5xx share of answers on `route`, and the answer count.
    pub fn error_ratio(&self, window: &Window, who: &str, route: &str) -> Option<(f64, f64)> {
        let counts = self.increase(
            window,
            who,
            &format!("{SERVER_HISTOGRAM}_count"),
            |s| s.label("http_route") == Some(route),
            |s| {
                let code: u16 = s
                    .label("http_response_status_code")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                if code >= 500 { "error" } else { "ok" }.to_string()
            },
        );
        let errors = counts.get("error").copied().unwrap_or(0.0);
        let total = errors + counts.get("ok").copied().unwrap_or(0.0);
        (total > 0.0).then(|| (errors / total, total))
    }

    pub async fn evaluate(&self, symptom: &Symptom, window: &Window, since_us: i64) -> Outcome {
        let who = symptom.service.as_str();
        let no_traffic = |route: &str| Outcome {
            holds: false,
            seen: format!("no requests on {route} at {who}"),
        };
        match &symptom.check {
            Check::LatencyAbove {
                route,
                ms,
                quantile,
            }
            | Check::LatencyBelow {
                route,
                ms,
                quantile,
            } => {
                let q = quantile.unwrap_or(0.5);
                let Some((latency, n)) = self.latency(window, who, route, q) else {
                    return no_traffic(route);
                };
                let above = matches!(symptom.check, Check::LatencyAbove { .. });
                Outcome {
                    holds: if above {
                        latency > *ms as f64
                    } else {
                        latency <= *ms as f64
                    },
                    seen: format!("p{} {route} = {latency:.0} ms over {n} requests", q * 100.0),
                }
            }
            Check::ErrorRatioAbove { route, ratio } | Check::ErrorRatioBelow { route, ratio } => {
                let Some((share, n)) = self.error_ratio(window, who, route) else {
                    return no_traffic(route);
                };
                let above = matches!(symptom.check, Check::ErrorRatioAbove { .. });
                Outcome {
                    holds: if above {
                        share > *ratio
                    } else {
                        share <= *ratio
                    },
                    seen: format!("5xx ratio {route} = {share:.3} over {n} answers"),
                }
            }
            Check::MetricAbove {
                metric,
                labels,
                value,
            }
            | Check::MetricBelow {
                metric,
                labels,
                value,
            } => {
                let (sum, n) = self.current(window, who, metric, |s| s.has_labels(labels));
                // No matching series is a sum of 0 when every process
                // answered and reports the metric with other labels (no
                // instance runs version X); otherwise it is unknown.
                let family_seen =
                    || {
                        let mut selected = self.selected(who).peekable();
                        selected.peek().is_some()
                            && selected.all(|c| {
                                window.to.by_component.get(&c.id).is_some_and(|samples| {
                                    samples.iter().any(|s| s.name == *metric)
                                })
                            })
                    };
                if n == 0 && !family_seen() {
                    return Outcome {
                        holds: false,
                        seen: format!("no {metric} series at {who}"),
                    };
                }
                let above = matches!(symptom.check, Check::MetricAbove { .. });
                Outcome {
                    holds: if above { sum > *value } else { sum <= *value },
                    seen: format!("{metric} = {sum}"),
                }
            }
            Check::RateAbove {
                metric,
                labels,
                value,
            }
            | Check::RateBelow {
                metric,
                labels,
                value,
            } => {
                let increase: f64 = self
                    .increase(
                        window,
                        who,
                        metric,
                        |s| s.has_labels(labels),
                        |_| String::new(),
                    )
                    .values()
                    .sum();
                let seconds = window.to.at.duration_since(window.from.at).as_secs_f64();
                let rate = increase / seconds.max(0.001) + 0.0; // no "-0.00"
                let above = matches!(symptom.check, Check::RateAbove { .. });
                Outcome {
                    holds: if above { rate > *value } else { rate <= *value },
                    seen: format!("rate({metric}) = {rate:.2}/s"),
                }
            }
            Check::LogContains { text } => self.log_contains(who, text, since_us).await,
            Check::SpanError { operation } => self.span_error(who, operation, since_us).await,
            Check::SpanDurationAbove { operation, ms } => {
                self.span_duration_above(who, operation, *ms, since_us)
                    .await
            }
        }
    }

    pub async fn log_contains(&self, who: &str, text: &str, since_us: i64) -> Outcome {
        let service = self.service_of(who);
        let answer = match self
            .collector(
                "/api/logs",
                &[
                    ("service", service.as_str()),
                    ("q", text),
                    ("start", &since_us.to_string()),
                    ("limit", "200"),
                ],
            )
            .await
        {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        let matching = answer["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| who == service || l["instance"].as_str() == Some(who))
            .count();
        Outcome {
            holds: matching > 0,
            seen: format!("{matching} log record(s) containing {text:?}"),
        }
    }

    pub async fn span_error(&self, who: &str, operation: &str, since_us: i64) -> Outcome {
        let service = self.service_of(who);
        let answer = match self
            .collector(
                "/api/traces",
                &[
                    ("service", service.as_str()),
                    ("tags", r#"{"error":"true"}"#),
                    ("start", &since_us.to_string()),
                    ("limit", "50"),
                ],
            )
            .await
        {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        let mut matching = 0;
        for trace in answer["data"].as_array().into_iter().flatten() {
            let processes = &trace["processes"];
            for span in trace["spans"].as_array().into_iter().flatten() {
                let pid = span["processID"].as_str().unwrap_or("");
                let failed = span["tags"].as_array().into_iter().flatten().any(|t| {
                    t["key"] == "error" && (t["value"] == json!(true) || t["value"] == "true")
                });
                if failed
                    && processes[pid]["serviceName"].as_str() == Some(service.as_str())
                    && span["operationName"]
                        .as_str()
                        .is_some_and(|name| name.contains(operation))
                {
                    matching += 1;
                }
            }
        }
        Outcome {
            holds: matching > 0,
            seen: format!("{matching} error span(s) named like {operation:?}"),
        }
    }

    /// Spans of `who` named `operation` that lasted longer than `ms`: the
    /// trace search (`operation`, `minDuration`) a learner would run.
    pub async fn span_duration_above(
        &self,
        who: &str,
        operation: &str,
        ms: u64,
        since_us: i64,
    ) -> Outcome {
        let service = self.service_of(who);
        let answer = match self
            .collector(
                "/api/traces",
                &[
                    ("service", service.as_str()),
                    ("operation", operation),
                    ("minDuration", &format!("{ms}ms")),
                    ("start", &since_us.to_string()),
                    ("limit", "50"),
                ],
            )
            .await
        {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        let matching = slow_spans(&answer, &service, operation, ms);
        Outcome {
            holds: matching > 0,
            seen: format!("{matching} span(s) {operation:?} longer than {ms} ms"),
        }
    }

    /// The service name of a component or instance id.
    pub fn service_of(&self, who: &str) -> String {
        self.components
            .iter()
            .find(|c| c.id == who || c.name == who)
            .map_or_else(|| who.to_string(), |c| c.name.clone())
    }

    /// Asks the collector's query API; a failed query is an outcome that
    /// does not hold, and says why.
    pub async fn collector(&self, api: &str, query: &[(&str, &str)]) -> Result<Value, Outcome> {
        self.get_json(&format!("{}{api}", self.query), query)
            .await
            .map_err(|e| Outcome {
                holds: false,
                seen: format!("{api} query failed: {e}"),
            })
    }

    pub async fn get_json(&self, url: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let response = self.http.get(url).query(query).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("{url} answered {status}: {body}");
        }
        Ok(body)
    }
}

/// Microseconds since the Unix epoch, the collector's time unit.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// Counts the spans in a Jaeger `/api/traces` answer that belong to
/// `service`, are named `operation` and lasted longer than `ms` (Jaeger
/// durations are in microseconds).
fn slow_spans(answer: &Value, service: &str, operation: &str, ms: u64) -> usize {
    let mut matching = 0;
    for trace in answer["data"].as_array().into_iter().flatten() {
        let processes = &trace["processes"];
        for span in trace["spans"].as_array().into_iter().flatten() {
            let pid = span["processID"].as_str().unwrap_or("");
            if processes[pid]["serviceName"].as_str() == Some(service)
                && span["operationName"].as_str() == Some(operation)
                && span["duration"]
                    .as_f64()
                    .is_some_and(|us| us > ms as f64 * 1000.0)
            {
                matching += 1;
            }
        }
    }
    matching
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_spans_count_only_the_named_operation_of_the_service() {
        let answer = json!({ "data": [{
            "processes": { "p1": { "serviceName": "catalog" }, "p2": { "serviceName": "gateway" } },
            "spans": [
                { "processID": "p1", "operationName": "SELECT products", "duration": 85_000 },
                { "processID": "p1", "operationName": "SELECT products", "duration": 2_000 },
                { "processID": "p1", "operationName": "GET /products", "duration": 90_000 },
                { "processID": "p2", "operationName": "SELECT products", "duration": 95_000 },
            ],
        }]});
        assert_eq!(slow_spans(&answer, "catalog", "SELECT products", 60), 1);
        assert_eq!(slow_spans(&answer, "catalog", "SELECT products", 1), 2);
        assert_eq!(slow_spans(&answer, "catalog", "SELECT products", 90), 0);
        assert_eq!(slow_spans(&json!({}), "catalog", "SELECT products", 1), 0);
    }
}
