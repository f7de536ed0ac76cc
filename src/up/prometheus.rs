//! A real Prometheus beside the lab, when one is installed.
//!
//! `up` starts `prometheus` as a plain child (not restarted: it is the
//! learner's tool, not part of the shop) with the project's own config and
//! rules from `deploy/prometheus/`, compiled into the binary so `up` works
//! from any directory. Everything it needs goes to `<run>/prometheus/`:
//!
//! ```text
//! prometheus.yml       deploy/prometheus/prometheus.yml, intervals per --prometheus-interval
//! rules/*.yml          deploy/prometheus/rules/, unchanged
//! targets/lab.json     one file_sd target group per process: job = service, instance = id
//! data/                the TSDB
//! ```
//!
//! The target file lists the lab's processes as they are now: the
//! supervisor's roster (`roster.rs`) rewrites it (whole, by rename) whenever a scale
//! adds or removes an instance, and Prometheus, which watches file_sd
//! files, scrapes the new instance and stops scraping the removed one.
//!
//! Without a `prometheus` binary the lab runs as before and the banner says
//! how to get one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use firedrill_rundir::RunDir;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use tokio::process::{Child, Command};

const CONFIG: &str = include_str!("../../deploy/prometheus/prometheus.yml");
/// The project's rule files, by name (the verifier reads the series they
/// record as names a learner can query).
pub(crate) const RULES: &[(&str, &str)] = &[
    (
        "red.yml",
        include_str!("../../deploy/prometheus/rules/red.yml"),
    ),
    (
        "slo.yml",
        include_str!("../../deploy/prometheus/rules/slo.yml"),
    ),
    (
        "alerts.yml",
        include_str!("../../deploy/prometheus/rules/alerts.yml"),
    ),
];

/// What the banner says when no Prometheus runs.
pub const HINT: &str = "not started (no `prometheus` on PATH, or --prometheus off); get it with `apt-get install prometheus`, or run the full stack with docker-compose";

/// Which Prometheus to run, from `--prometheus`: `auto` (the one on PATH,
/// if any), `off`, or a path to the binary.
pub fn binary(choice: &str) -> anyhow::Result<Option<PathBuf>> {
    match choice {
        "off" => Ok(None),
        "auto" => Ok(find_on_path("prometheus")),
        path => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                bail!(
                    "--prometheus: {} is not a file (use auto, off, or a path to prometheus)",
                    path.display()
                );
            }
            Ok(Some(path))
        }
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The project's config with both intervals set to `interval`.
fn config_with_interval(interval: Duration) -> anyhow::Result<String> {
    let secs = interval.as_secs().max(1);
    let mut out = String::with_capacity(CONFIG.len());
    let mut replaced = 0;
    for line in CONFIG.lines() {
        match line.trim_start() {
            "scrape_interval: 15s" => {
                out.push_str(&format!("  scrape_interval: {secs}s\n"));
                replaced += 1;
            }
            "evaluation_interval: 15s" => {
                out.push_str(&format!("  evaluation_interval: {secs}s\n"));
                replaced += 1;
            }
            // A scrape may not outlast the interval.
            "scrape_timeout: 10s" if secs < 10 => {
                out.push_str(&format!("  scrape_timeout: {secs}s\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if replaced != 2 {
        bail!(
            "deploy/prometheus/prometheus.yml lost its global intervals; cannot apply --prometheus-interval"
        );
    }
    Ok(out)
}

/// Where Prometheus sends its alerts: the lab's controller, which takes
/// them as an Alertmanager would (`/api/v2/alerts`), with the alerts token
/// read from a file only the lab's owner reads.
pub struct Alerting {
    /// `host:port` of the controller.
    pub controller: String,
    pub token_file: PathBuf,
}

impl Alerting {
    /// The `alerting:` section appended to the project's config.
    fn config(&self) -> String {
        format!(
            "\n# Added by `firedrill up`: alerts go to the lab's controller, which\n\
             # pages a running exercise when a severity=page alert fires.\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{}\"]\n      \
             authorization:\n        type: Bearer\n        credentials_file: {}\n",
            self.controller,
            self.token_file.display()
        )
    }
}

/// A running Prometheus.
pub struct Prometheus {
    pub url: String,
    child: Child,
}

impl Prometheus {
    /// Writes `<run>/prometheus/` (the target file is the roster's, which
    /// keeps it current) and starts `binary` on `address`.
    pub fn start(
        binary: &Path,
        address: &str,
        interval: Duration,
        run_dir: &RunDir,
        alerts: &Alerting,
    ) -> anyhow::Result<Prometheus> {
        let dir = run_dir.prometheus();
        let write = |rel: &str, text: &str| -> anyhow::Result<()> {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().expect("a file in a directory"))?;
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
        };
        write(
            "prometheus.yml",
            &format!("{}{}", config_with_interval(interval)?, alerts.config()),
        )?;
        for (name, text) in RULES {
            write(&format!("rules/{name}"), text)?;
        }
        let log = std::fs::File::create(run_dir.log_file("prometheus"))
            .context("cannot create logs/prometheus.log")?;
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            // The 3-day SLO window is the longest any rule looks back.
            .arg("--storage.tsdb.retention.time=4d")
            .arg(format!("--web.listen-address={address}"))
            .arg("--enable-feature=exemplar-storage")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: Ctrl-C reaches `up`, which stops it last.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        if let Some(pid) = child.id() {
            let _ = run_dir.write_pid("prometheus", pid);
        }
        Ok(Prometheus {
            url: format!("http://{address}"),
            child,
        })
    }

    /// Waits for `/-/ready` (config loaded, TSDB open).
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()?;
        let deadline = Instant::now() + timeout;
        let ready = format!("{}/-/ready", self.url);
        loop {
            if matches!(client.get(&ready).send().await, Ok(r) if r.status().is_success()) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("prometheus exited ({status}); see logs/prometheus.log");
            }
            if Instant::now() >= deadline {
                bail!("prometheus not ready after {timeout:?}; see logs/prometheus.log");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM (Prometheus flushes its head block), SIGKILL after 10 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_replaces_both_global_intervals_and_nothing_else() {
        let config = config_with_interval(Duration::from_secs(2)).unwrap();
        assert!(config.contains("  scrape_interval: 2s\n"), "{config}");
        assert!(config.contains("  evaluation_interval: 2s\n"), "{config}");
        assert!(config.contains("  scrape_timeout: 2s\n"), "{config}");
        assert_eq!(config.lines().count(), CONFIG.lines().count());
        let default = config_with_interval(Duration::from_secs(15)).unwrap();
        assert_eq!(default, CONFIG);
    }

    #[test]
    fn an_explicit_binary_must_exist() {
        let err = binary("/nonexistent/prometheus").unwrap_err().to_string();
        assert!(err.contains("--prometheus"), "{err}");
        assert!(binary("off").unwrap().is_none());
    }
}
