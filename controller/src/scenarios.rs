//! The scenario catalogue: the shipped one, compiled into the binary, or a
//! directory of files an instructor points the controller at.
//!
//! A catalogue is read leniently: a file with a problem is reported (as
//! `file:line:column: message`, every problem it has) and left out, and
//! the rest are served, so one bad file never takes the controller down.
//! `firedrill scenario validate` reads strictly ([`load_dir`]) and fails on
//! any problem.

mod validate;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use self::validate::{Problem, check_symptom, load, parse};
use crate::model::scenario::Scenario;

/// The shipped catalogue, `scenarios/*.toml` at build time: (file name,
/// text), by name.
mod shipped {
    include!(concat!(env!("OUT_DIR"), "/shipped_scenarios.rs"));
}

/// The scenarios a controller serves, and what was wrong with the files it
/// left out.
#[derive(Debug)]
pub struct Catalogue {
    pub scenarios: Vec<Scenario>,
    pub problems: Vec<Problem>,
    /// Where it came from, for messages: a directory, or `built-in`.
    pub source: String,
}

impl Catalogue {
    /// The catalogue compiled into this binary.
    pub fn shipped() -> Catalogue {
        let files = shipped::FILES
            .iter()
            .map(|(name, text)| (PathBuf::from("scenarios").join(name), Ok(text.to_string())));
        Catalogue::from_files(files, "built-in".into())
    }

    /// Every `*.toml` under `dir`. A directory that cannot be read is an
    /// error (the instructor named it); a bad file is a problem.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Catalogue> {
        let paths = toml_files(dir).map_err(|p| anyhow::anyhow!("{p}"))?;
        let files = paths.into_iter().map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read: {e}"));
            (path, text)
        });
        Ok(Catalogue::from_files(files, dir.display().to_string()))
    }

    fn from_files(
        files: impl Iterator<Item = (PathBuf, Result<String, String>)>,
        source: String,
    ) -> Catalogue {
        let mut scenarios = Vec::new();
        let mut problems = Vec::new();
        let mut ids = BTreeSet::new();
        for (path, text) in files {
            let parsed = text
                .map_err(|message| vec![Problem::whole_file(&path, message)])
                .and_then(|text| parse(&path, &text));
            match parsed {
                Ok(s) if !ids.insert(s.id().to_string()) => problems.push(Problem {
                    file: path.clone(),
                    line: 1,
                    column: 1,
                    message: format!("duplicate scenario id {:?}; this file is left out", s.id()),
                }),
                Ok(s) => scenarios.push(s),
                Err(mut p) => problems.append(&mut p),
            }
        }
        scenarios.sort_by(|a, b| a.id().cmp(b.id()));
        Catalogue {
            scenarios,
            problems,
            source,
        }
    }
}

/// Loads every `*.toml` under `dir`, sorted by id; any problem fails the
/// whole, with all problems listed.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, Vec<Problem>> {
    let paths = toml_files(dir).map_err(|p| vec![p])?;
    let files = paths.into_iter().map(|path| {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read: {e}"));
        (path, text)
    });
    let catalogue = Catalogue::from_files(files, dir.display().to_string());
    if catalogue.problems.is_empty() {
        Ok(catalogue.scenarios)
    } else {
        Err(catalogue.problems)
    }
}

fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, Problem> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Problem::whole_file(dir, format!("cannot read the scenarios directory: {e}"))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}
