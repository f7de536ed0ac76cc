//! Persistence: the controller's state as one snapshot file, and its logs
//! of what people did as append-only journals.
//!
//! The two have different costs on purpose. The snapshot (faults, the
//! scenario clock, config versions, the deploy history) is small and
//! bounded, and is replaced whole (write beside, fsync, rename) after each
//! change, so a crash leaves the old state or the new. What learners and
//! instructors do — ops, exercise actions — grows with every request, so it
//! is appended one JSON line at a time: recording an op costs one short
//! write and one fsync, whatever the history's length, and never rewrites
//! the snapshot.
//!
//! Both files are created owner-only (0600): they name scenarios and faults.
//! This module knows nothing of what it stores.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::marker::PhantomData;
use std::os::unix::fs::OpenOptionsExt as _;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value kept in one file, replaced whole on every save.
pub struct Snapshot {
    path: PathBuf,
}

impl Snapshot {
    pub fn new(path: PathBuf) -> Snapshot {
        Snapshot { path }
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; a missing file is a fresh start (`T::default()`).
    pub fn load<T: DeserializeOwned + Default>(&self) -> anyhow::Result<T> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("controller state {} is corrupt", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    pub fn save<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(value)?;
        firedrill_rundir::write_atomically(&self.path, &bytes, 0o600)
            .with_context(|| format!("cannot replace {}", self.path.display()))
    }
}

/// Records appended one JSON line each, never rewritten.
pub struct Journal<T> {
    path: PathBuf,
    file: File,
    _records: PhantomData<fn(T)>,
}

impl<T: Serialize + DeserializeOwned> Journal<T> {
    /// Opens (or creates) the journal and reads what it holds. A last line
    /// cut short by a crash mid-write is dropped, with a warning; a bad
    /// line anywhere else means the file was damaged, and is an error.
    pub fn open(path: PathBuf) -> anyhow::Result<(Journal<T>, Vec<T>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut bytes = Vec::new();
        (&file)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut records = Vec::new();
        // Where the last whole record ends: a torn one after it is cut off.
        let mut good_end = 0;
        let mut lines = bytes
            .split_inclusive(|&b| b == b'\n')
            .enumerate()
            .peekable();
        while let Some((n, line)) = lines.next() {
            let last = lines.peek().is_none();
            if line.iter().all(u8::is_ascii_whitespace) {
                good_end += line.len();
                continue;
            }
            match serde_json::from_slice(line) {
                Ok(record) if line.ends_with(b"\n") => {
                    records.push(record);
                    good_end += line.len();
                }
                _ if last => {
                    tracing::warn!(file = %path.display(), line = n + 1, "dropped a record cut short by a crash");
                }
                _ => anyhow::bail!("{}:{}: not a record", path.display(), n + 1),
            }
        }
        if good_end < bytes.len() {
            file.set_len(good_end as u64)
                .with_context(|| format!("cannot repair {}", path.display()))?;
        }
        let journal = Journal {
            path,
            file,
            _records: PhantomData,
        };
        Ok((journal, records))
    }

    /// Appends `record` and waits until it is on disk.
    pub fn append(&mut self, record: &T) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

/// A journal and its newest records in memory: what the API lists, with
/// the whole history on disk.
pub struct Log<T> {
    journal: Journal<T>,
    recent: std::collections::VecDeque<T>,
    keep: usize,
    total: u64,
}

impl<T: Serialize + DeserializeOwned> Log<T> {
    /// Opens the journal at `path`, keeping its newest `keep` records.
    pub fn open(path: PathBuf, keep: usize) -> anyhow::Result<Log<T>> {
        let (journal, records) = Journal::open(path)?;
        let total = records.len() as u64;
        let skip = records.len().saturating_sub(keep);
        Ok(Log {
            journal,
            recent: records.into_iter().skip(skip).collect(),
            keep,
            total,
        })
    }

    pub fn append(&mut self, record: T) -> anyhow::Result<()> {
        self.journal.append(&record)?;
        if self.recent.len() == self.keep {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
        self.total += 1;
        Ok(())
    }

    /// The newest `n` records (at most those kept), oldest first.
    pub fn recent(&self, n: usize) -> impl Iterator<Item = &T> {
        self.recent.iter().skip(self.recent.len().saturating_sub(n))
    }

    /// Every record ever appended.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Record {
        n: u32,
        text: String,
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_snapshot_round_trips_and_says_when_it_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = Snapshot::new(dir.path().join("state.json"));
        assert_eq!(snapshot.load::<Record>().unwrap(), Record::default());
        let record = Record {
            n: 7,
            text: "x".into(),
        };
        snapshot.save(&record).unwrap();
        assert_eq!(snapshot.load::<Record>().unwrap(), record);
        assert_eq!(mode(snapshot.path()), 0o600);
        std::fs::write(snapshot.path(), b"{").unwrap();
        let err = snapshot.load::<Record>().unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
    }

    #[test]
    fn a_journal_appends_survives_reopening_and_drops_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops.jsonl");
        let (mut journal, old) = Journal::<Record>::open(path.clone()).unwrap();
        assert!(old.is_empty());
        for n in 0..3 {
            journal
                .append(&Record {
                    n,
                    text: format!("op {n}"),
                })
                .unwrap();
        }
        assert_eq!(mode(&path), 0o600);
        drop(journal);
        // A crash in the middle of the fourth record.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"n":3,"te"#)
            .unwrap();
        let (mut journal, back) = Journal::<Record>::open(path.clone()).unwrap();
        assert_eq!(back.iter().map(|r| r.n).collect::<Vec<_>>(), [0, 1, 2]);
        journal
            .append(&Record {
                n: 4,
                text: "after".into(),
            })
            .unwrap();
        drop(journal);
        let (_, again) = Journal::<Record>::open(path.clone()).unwrap();
        assert_eq!(again.iter().map(|r| r.n).collect::<Vec<_>>(), [0, 1, 2, 4]);

        // Damage before the last line is not a crash: refuse it.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("garbage\n{text}")).unwrap();
        let err = Journal::<Record>::open(path).err().unwrap().to_string();
        assert!(err.contains(":1: not a record"), "{err}");
    }
}
