//! Every scenario in `scenarios/` is verified observable: one test per file,
//! each on a fresh lab, through `firedrill scenario verify` — the command an
//! instructor uses on a scenario they wrote. The verifier plays the
//! scenario with its timeline compressed, and checks from the lab's
//! `/metrics` and the collector's trace and log APIs that the documented
//! symptoms appear, that the signals which tell the root apart from the red
//! herrings stay normal, that wrong ops leave the incident in place and that
//! an accepted op ends it.
//!
//! Run one: `cargo nextest run --test scenarios -- slow-catalog`.

// The lab binary's harness; this binary uses only part of it.
#[allow(dead_code)]
#[path = "lab/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};
use support::{Lab, firedrill};

/// Journeys per second: enough requests per window for stable medians.
const LOAD_RATE: &str = "20";

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the scenarios directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let trials = files
        .into_iter()
        .map(|path| {
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            Trial::test(id.clone(), move || verify(&id))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

fn verify(id: &str) -> Result<(), Failed> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failed::from(e.to_string()))?;
    let lab = runtime.block_on(Lab::start(&[
        "--load-rate",
        LOAD_RATE,
        "--prometheus",
        "off",
    ]));
    let output = firedrill()
        .args(["scenario", "verify", id, "--window", "2s", "--run-dir"])
        .arg(&lab.run_dir)
        .output()
        .map_err(|e| Failed::from(format!("cannot run firedrill: {e}")))?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    if output.status.success() && report.contains(&format!("PASS {id}")) {
        Ok(())
    } else {
        Err(format!("verification of {id} failed:\n{report}").into())
    }
}
