//! The running exercise's timeline in memory: its journal (appended as
//! things happen, never rewritten) and the alerts firing now.

use std::collections::BTreeSet;

use crate::model::exercise::Entry;
use crate::store::Log;

/// The exercise's timeline in memory: its journal and what it holds.
pub struct Timeline {
    pub id: String,
    pub log: Log<Entry>,
    /// Alerts firing now, by name: an alert is recorded when it starts
    /// and when it stops, not at every resend.
    pub firing: BTreeSet<String>,
}

impl Timeline {
    /// Opens (or reopens, after a restart) the timeline of exercise `id`.
    pub fn open(dir: &std::path::Path, id: &str) -> anyhow::Result<Timeline> {
        Ok(Timeline {
            id: id.to_string(),
            log: Log::open(dir.join(format!("{id}.jsonl")), usize::MAX)?,
            firing: BTreeSet::new(),
        })
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.log.recent(usize::MAX).cloned().collect()
    }
}
