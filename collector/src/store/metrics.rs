//! The latest value of each metric series received over OTLP.
//!
//! Deliberately small for now: a later increment re-exposes these series.
//! The map is bounded by series count; once full, points of *new* series are
//! dropped (and counted as dropped by the caller) while known series keep
//! updating. Dropping new series rather than evicting old ones keeps a
//! cardinality explosion in one service from erasing everyone else's series.

use std::collections::HashMap;

use crate::model::{MetricPoint, PointValue};

#[derive(Debug)]
pub struct MetricStore {
    max_series: usize,
    series: HashMap<String, Latest>,
}

#[derive(Debug, Clone, PartialEq)]
struct Latest {
    time_unix_nano: u64,
    value: PointValue,
}

/// What happened to one recorded point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored as (or compared with) the latest value of its series.
    Kept,
    /// Its series is new and the store is full.
    Dropped,
}

impl MetricStore {
    pub fn new(max_series: usize) -> Self {
        Self {
            max_series,
            series: HashMap::new(),
        }
    }

    pub fn record(&mut self, point: MetricPoint) -> Recorded {
        let latest = Latest {
            time_unix_nano: point.time_unix_nano,
            value: point.value,
        };
        if let Some(current) = self.series.get_mut(&point.series) {
            // Batches can arrive out of order after exporter retries; an
            // older point must not overwrite a newer one.
            if latest.time_unix_nano >= current.time_unix_nano {
                *current = latest;
            }
            return Recorded::Kept;
        }
        if self.series.len() >= self.max_series {
            return Recorded::Dropped;
        }
        self.series.insert(point.series, latest);
        Recorded::Kept
    }

    /// Only tests read values back for now; re-exposing the series is a
    /// later increment.
    #[cfg(test)]
    pub fn latest(&self, series: &str) -> Option<&PointValue> {
        self.series.get(series).map(|l| &l.value)
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(series: &str, time: u64, value: f64) -> MetricPoint {
        MetricPoint {
            series: series.into(),
            time_unix_nano: time,
            value: PointValue::Number(value),
        }
    }

    #[test]
    fn keeps_the_latest_value_per_series() {
        let mut store = MetricStore::new(10);
        store.record(point("a", 2, 2.0));
        store.record(point("a", 1, 1.0));
        assert_eq!(store.latest("a"), Some(&PointValue::Number(2.0)));
        store.record(point("a", 3, 3.0));
        assert_eq!(store.latest("a"), Some(&PointValue::Number(3.0)));
    }

    #[test]
    fn full_store_drops_new_series_but_updates_known_ones() {
        let mut store = MetricStore::new(1);
        assert_eq!(store.record(point("a", 1, 1.0)), Recorded::Kept);
        assert_eq!(store.record(point("b", 1, 1.0)), Recorded::Dropped);
        assert_eq!(store.record(point("a", 2, 5.0)), Recorded::Kept);
        assert_eq!(store.len(), 1);
        assert_eq!(store.latest("b"), None);
    }
}
