//! The text of the files the controller declares to the supervisor.
//!
//! A version file, `versions/<service>`, one instance per line (unlisted
//! instances run the build's version):
//!
//! ```text
//! catalog-1 2.4.0
//! catalog-2 0.1.0
//! ```
//!
//! A replica file, `replicas/<service>`, one number of instances, 1 to
//! [`MAX_REPLICAS`]. Both allow blank lines and `#` comments, and parse
//! errors name the line.

use std::collections::BTreeMap;

use firedrill_runtime::faults::model::check_version;

/// The most instances one service may run: a laptop runs the whole lab.
pub const MAX_REPLICAS: u32 = 8;

/// A version file's text: a comment, then `<instance> <version>` lines.
pub fn render_versions(versions: &BTreeMap<String, String>) -> String {
    let mut text = String::from(
        "# Desired service.version per instance: written by the firedrill controller,\n\
         # rolled out by the `firedrill up` supervisor. Unlisted instances run the build's version.\n",
    );
    for (instance, version) in versions {
        text.push_str(&format!("{instance} {version}\n"));
    }
    text
}

pub fn parse_versions(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut versions = BTreeMap::new();
    for (n, line) in meaningful_lines(text) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(instance), Some(version), None) => {
                check_version(version).map_err(|e| format!("line {n}: {e}"))?;
                versions.insert(instance.to_string(), version.to_string());
            }
            _ => {
                return Err(format!(
                    "line {n}: expected `<instance> <version>`, got {line:?}"
                ));
            }
        }
    }
    Ok(versions)
}

/// A replica file's text: a comment, then the count.
pub fn render_replicas(count: u32) -> String {
    format!(
        "# Desired instances: written by the firedrill controller (ops scale),\n\
         # acted on by the `firedrill up` supervisor.\n{count}\n"
    )
}

/// Exactly one count in 1..=[`MAX_REPLICAS`] must remain.
pub fn parse_replicas(text: &str) -> Result<u32, String> {
    let mut found = None;
    for (n, line) in meaningful_lines(text) {
        if found.is_some() {
            return Err(format!("line {n}: a second count, {line:?}"));
        }
        let count: u32 = line
            .parse()
            .map_err(|_| format!("line {n}: expected a number of instances, got {line:?}"))?;
        found = Some(check_replicas(count).map_err(|e| format!("line {n}: {e}"))?);
    }
    found.ok_or_else(|| "no count: expected one line with a number of instances".into())
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

/// Lines that are neither blank nor `#` comments, numbered from 1, trimmed.
fn meaningful_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_files_round_trip_and_bad_lines_are_named() {
        let versions = BTreeMap::from([
            ("catalog-1".to_string(), "2.4.0".to_string()),
            ("catalog-2".to_string(), "0.1.0".to_string()),
        ]);
        assert_eq!(
            parse_versions(&render_versions(&versions)).unwrap(),
            versions
        );
        let err = parse_versions("# c\ncatalog-1\n").unwrap_err();
        assert!(err.starts_with("line 2: expected"), "{err}");
        let err = parse_versions("catalog-1 2.4.0 extra").unwrap_err();
        assert!(err.starts_with("line 1"), "{err}");
        let err = parse_versions("catalog-1 2/4").unwrap_err();
        assert!(err.contains("line 1: version"), "{err}");
    }

    #[test]
    fn replica_files_hold_one_count_within_the_limit() {
        assert_eq!(parse_replicas(&render_replicas(3)).unwrap(), 3);
        assert_eq!(parse_replicas("\n  5 \n").unwrap(), 5);
        for (text, needle) in [
            ("", "no count"),
            ("# only a comment\n", "no count"),
            ("3\n4\n", "line 2: a second count"),
            ("three", "line 1: expected a number"),
            ("0", "line 1: replicas must be 1 to 8"),
            ("9", "line 1: replicas must be 1 to 8"),
        ] {
            let err = parse_replicas(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
