//! How many instances each service should run: the `scale` op's desired
//! state, declared to `firedrill up`'s supervisor the way versions are.
//!
//! The controller writes one file per scaled service,
//! `<run>/replicas/<service>`, holding one number:
//!
//! ```text
//! # Desired instances: written by the firedrill controller ...
//! 3
//! ```
//!
//! A service without a file runs the instances `up` planned
//! (`--instances`). Instances are always `<service>-1` to `<service>-<n>`:
//! scaling out adds the next numbers, scaling in removes the highest.
//!
//! # Invariants
//!
//! - Only the controller writes these files (whole, by rename); only the
//!   supervisor acts on them.
//! - Callers learn a scaled service's instances from the controller (the
//!   agent's answer), not from the file: an instance joins their rotation
//!   once it has reported where it listens, and leaves it as soon as the
//!   count drops, before the supervisor stops it.

use std::path::{Path, PathBuf};

/// The run directory's folder of replica files.
pub const REPLICAS_DIR: &str = "replicas";

/// The most instances one service may run: a laptop runs the whole lab.
pub const MAX_REPLICAS: u32 = 8;

pub fn replicas_file(run_dir: &Path, service: &str) -> PathBuf {
    run_dir.join(REPLICAS_DIR).join(service)
}

/// Checks a desired count: 1 to [`MAX_REPLICAS`].
pub fn check_replicas(count: u32) -> Result<u32, String> {
    if (1..=MAX_REPLICAS).contains(&count) {
        Ok(count)
    } else {
        Err(format!(
            "replicas must be 1 to {MAX_REPLICAS} (a laptop runs the whole lab), got {count}"
        ))
    }
}

/// The file's text: a comment, then the count.
pub fn render(count: u32) -> String {
    format!(
        "# Desired instances: written by the firedrill controller (ops scale),\n\
         # acted on by the `firedrill up` supervisor.\n{count}\n"
    )
}

/// Parses a replica file; blank lines and `#` comments are skipped, and
/// exactly one count in 1..=[`MAX_REPLICAS`] must remain.
pub fn parse_replicas(text: &str) -> Result<u32, String> {
    let mut found = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if found.is_some() {
            return Err(format!("line {}: a second count, {line:?}", n + 1));
        }
        let count: u32 = line.parse().map_err(|_| {
            format!(
                "line {}: expected a number of instances, got {line:?}",
                n + 1
            )
        })?;
        found = Some(check_replicas(count).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    found.ok_or_else(|| "no count: expected one line with a number of instances".into())
}

/// Reads `<run>/replicas/<service>`: `None` when the service was never
/// scaled (it runs what `up` planned).
pub fn read_replicas(run_dir: &Path, service: &str) -> Result<Option<u32>, String> {
    let path = replicas_file(run_dir, service);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_replicas(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces the service's replica file when its content differs (write,
/// then rename, so the supervisor never reads half a file). Whether it
/// changed.
pub fn write_replicas(run_dir: &Path, service: &str, count: u32) -> std::io::Result<bool> {
    let path = replicas_file(run_dir, service);
    let text = render(count);
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    std::fs::create_dir_all(run_dir.join(REPLICAS_DIR))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_replicas(dir.path(), "catalog").unwrap(), None);
        assert!(write_replicas(dir.path(), "catalog", 3).unwrap());
        assert!(!write_replicas(dir.path(), "catalog", 3).unwrap(), "same");
        assert_eq!(read_replicas(dir.path(), "catalog").unwrap(), Some(3));
        assert!(write_replicas(dir.path(), "catalog", 1).unwrap());
        assert_eq!(read_replicas(dir.path(), "catalog").unwrap(), Some(1));
    }

    #[test]
    fn bad_replica_files_say_which_line() {
        for (bad, needle) in [
            ("", "no count"),
            ("# only a comment\n", "no count"),
            ("three\n", "line 1: expected a number"),
            ("# c\n0\n", "line 2: replicas must be 1 to 8"),
            ("9", "got 9"),
            ("2\n3\n", "line 2: a second count"),
            ("-1", "line 1"),
        ] {
            let err = parse_replicas(bad).unwrap_err();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(REPLICAS_DIR)).unwrap();
        std::fs::write(replicas_file(dir.path(), "cart"), "x").unwrap();
        let err = read_replicas(dir.path(), "cart").unwrap_err();
        assert!(
            err.contains("replicas/cart") && err.contains("line 1"),
            "{err}"
        );
    }
}
