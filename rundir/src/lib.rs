//! The run directory of one `firedrill up` lab, and the only code that
//! knows its layout.
//!
//! `firedrill up` creates it, every process of the lab writes its log into
//! it, and the supervisor and the controller talk through it: the
//! controller declares what should run (versions, instance counts, restart
//! and reset requests) and only the supervisor acts on those files; the
//! supervisor publishes what runs (pid files, `endpoints.json`).
//!
//! ```text
//! <run>/
//!   endpoints.json       where every process serves            learner-facing
//!   learner-token        the single learner's token (0600)     learner-facing
//!   logs/<id>.log        every process's log                   learner-facing
//!   shop.db, queue.db    the shop's data
//!   pids/<id>.pid        the processes running now              supervisor → all
//!   versions/<service>   desired version per instance           controller → supervisor
//!   replicas/<service>   desired instance count                 controller → supervisor
//!   restarts/<id>        the pid an op restarts                 controller → supervisor
//!   reset                the lab reset generation               controller → supervisor
//!   reset-done           the generation the supervisor applied  supervisor → controller
//!   prometheus/          Prometheus' config, targets and data
//!   instructor/ (0700)   the instructor token, the lab's secrets, the controller's
//!                        state and log: the answer, never learner-facing
//! ```
//!
//! # Invariants
//!
//! - Every declared file is replaced whole (written beside it, fsynced,
//!   renamed), so a reader never sees half of one.
//! - Whatever names a scenario or a fault lives under `instructor/`, which
//!   only its owner may enter; nothing the docs send a learner to does.
//! - Secrets are created with mode 0600 and never passed on a command line.

pub mod formats;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// One lab's run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    /// Creates the directory and its folders, the instructor's owner-only,
    /// and returns it with its path made absolute.
    pub fn create(root: impl Into<PathBuf>) -> anyhow::Result<RunDir> {
        let root: PathBuf = root.into();
        std::fs::create_dir_all(root.join(LOGS))
            .with_context(|| format!("cannot create run directory {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("cannot resolve run directory {}", root.display()))?;
        let dir = RunDir { root };
        dir.create_instructor_dir()?;
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    // === learner-facing ===

    /// `endpoints.json`: where every process of the lab serves.
    pub fn endpoints(&self) -> PathBuf {
        self.root.join("endpoints.json")
    }

    /// The single learner's token (`firedrill up` writes it).
    pub fn learner_token(&self) -> PathBuf {
        self.root.join("learner-token")
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join(LOGS)
    }

    /// The log of process `id` (`catalog-1`, `collector`, `prometheus`).
    pub fn log_file(&self, id: &str) -> PathBuf {
        self.logs().join(format!("{id}.log"))
    }

    /// The shop's database and the queue broker's.
    pub fn shop_db(&self) -> PathBuf {
        self.root.join("shop.db")
    }

    pub fn queue_db(&self) -> PathBuf {
        self.root.join("queue.db")
    }

    // === the instructor's: the answer and the secrets ===

    /// Only its owner may enter it: the controller's state and log name the
    /// running scenario and every fault.
    pub fn instructor(&self) -> PathBuf {
        self.root.join("instructor")
    }

    fn create_instructor_dir(&self) -> anyhow::Result<()> {
        let dir = self.instructor();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // An existing directory keeps its mode: make sure it is private.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))
    }

    pub fn instructor_token(&self) -> PathBuf {
        self.instructor().join("instructor-token")
    }

    /// A secret of the lab's (`auth-secret`, `internal-token`).
    pub fn secret(&self, name: &str) -> PathBuf {
        self.instructor().join(name)
    }

    /// The controller's state directory.
    pub fn controller_state(&self) -> PathBuf {
        self.instructor().join("controller")
    }

    /// The controller's own log: it names scenarios and faults.
    pub fn controller_log(&self) -> PathBuf {
        self.instructor().join("controller.log")
    }

    // === what runs: the supervisor's ===

    pub fn pids(&self) -> PathBuf {
        self.root.join("pids")
    }

    /// `pids/<id>.pid`: lets operators (and tests) find a process, and the
    /// controller see which instances run.
    pub fn pid_file(&self, id: &str) -> PathBuf {
        self.pids().join(format!("{id}.pid"))
    }

    /// The pid of process `id`, if it runs.
    pub fn pid(&self, id: &str) -> Option<u32> {
        std::fs::read_to_string(self.pid_file(id))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Every process with a pid file: id → pid.
    pub fn running(&self) -> BTreeMap<String, u32> {
        let Ok(entries) = std::fs::read_dir(self.pids()) else {
            return BTreeMap::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".pid")?.to_string();
                let pid = std::fs::read_to_string(entry.path())
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some((id, pid))
            })
            .collect()
    }

    /// The instances of `service` that run (`<service>-<n>`), by number.
    pub fn instances_of(&self, service: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .running()
            .into_keys()
            .filter(|id| {
                id.strip_prefix(service)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .collect();
        found.sort_by_key(|id| instance_number(id));
        found
    }

    /// Records that process `id` runs as `pid`.
    pub fn write_pid(&self, id: &str, pid: u32) -> std::io::Result<()> {
        std::fs::create_dir_all(self.pids())?;
        std::fs::write(self.pid_file(id), pid.to_string())
    }

    pub fn remove_pid(&self, id: &str) {
        let _ = std::fs::remove_file(self.pid_file(id));
    }

    /// Removes the pid files a previous `up` on the same directory left (a
    /// stop leaves them): a scaled instance of an earlier run must not
    /// count as one of this run's.
    pub fn clear_pids(&self) {
        for id in self.running().into_keys() {
            self.remove_pid(&id);
        }
    }

    // === what should run: the controller's declarations ===

    /// `versions/<service>`: the version each instance should run.
    pub fn versions_file(&self, service: &str) -> PathBuf {
        self.root.join("versions").join(service)
    }

    /// No file means no instance was ever changed.
    pub fn read_versions(&self, service: &str) -> Result<BTreeMap<String, String>, String> {
        Ok(read_parsed(&self.versions_file(service), formats::parse_versions)?.unwrap_or_default())
    }

    /// Replaces the file when its content differs; whether it did.
    pub fn write_versions(
        &self,
        service: &str,
        versions: &BTreeMap<String, String>,
    ) -> std::io::Result<bool> {
        replace_whole(
            &self.versions_file(service),
            formats::render_versions(versions).as_bytes(),
        )
    }

    /// `replicas/<service>`: how many instances the service should run.
    pub fn replicas_file(&self, service: &str) -> PathBuf {
        self.root.join("replicas").join(service)
    }

    /// `None` when the service was never scaled (it runs what was planned).
    pub fn read_replicas(&self, service: &str) -> Result<Option<u32>, String> {
        read_parsed(&self.replicas_file(service), formats::parse_replicas)
    }

    pub fn write_replicas(&self, service: &str, count: u32) -> std::io::Result<bool> {
        replace_whole(
            &self.replicas_file(service),
            formats::render_replicas(count).as_bytes(),
        )
    }

    /// Takes a service's declared count away: it runs what was planned.
    pub fn remove_replicas(&self, service: &str) -> std::io::Result<bool> {
        remove_if_present(&self.replicas_file(service))
    }

    /// The services with a replica file.
    pub fn scaled_services(&self) -> Vec<String> {
        list_names(&self.root.join("replicas"))
    }

    /// `restarts/<id>`: the pid the controller is about to stop for an op,
    /// so the supervisor starts it again at once and does not count a crash.
    pub fn restart_request(&self, id: &str) -> PathBuf {
        self.root.join("restarts").join(id)
    }

    pub fn request_restart(&self, id: &str, pid: u32) -> std::io::Result<bool> {
        replace_whole(&self.restart_request(id), format!("{pid}\n").as_bytes())
    }

    /// Whether the exit of `id` running as `pid` was asked for by an op; the
    /// request is used up either way.
    pub fn take_restart_request(&self, id: &str, pid: u32) -> bool {
        let path = self.restart_request(id);
        let asked = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if asked.is_some() {
            let _ = std::fs::remove_file(&path);
        }
        asked == Some(pid)
    }

    /// `reset`: the generation of the latest lab reset the controller asked
    /// for; `reset-done`: the latest the supervisor applied.
    pub fn reset_request(&self) -> PathBuf {
        self.root.join("reset")
    }

    pub fn reset_done(&self) -> PathBuf {
        self.root.join("reset-done")
    }

    pub fn read_generation(path: &Path) -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn write_generation(path: &Path, generation: u64) -> std::io::Result<bool> {
        replace_whole(path, format!("{generation}\n").as_bytes())
    }

    // === Prometheus ===

    pub fn prometheus(&self) -> PathBuf {
        self.root.join("prometheus")
    }

    /// Prometheus' file_sd targets: the processes running now.
    pub fn prometheus_targets(&self) -> PathBuf {
        self.prometheus().join("targets").join("lab.json")
    }
}

const LOGS: &str = "logs";

/// `catalog-12` → 12; ids without a number sort last.
pub fn instance_number(id: &str) -> u32 {
    id.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(u32::MAX)
}

fn list_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

fn remove_if_present(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `bytes` when its content differs: written beside it
/// as `<name>.tmp`, fsynced, then renamed, so a reader (the supervisor,
/// Prometheus' file discovery, a test) never sees half a file and a crash
/// leaves the old or the new. Whether it changed.
pub fn replace_whole(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    write_atomically(path, bytes, 0o644)?;
    Ok(true)
}

/// Writes a secret (a token) only its owner may read, whole.
pub fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    write_atomically(path, format!("{secret}\n").as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a secret written by [`write_secret`] (or by hand): its first line.
pub fn read_secret(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let secret = text.lines().next().unwrap_or("").trim().to_string();
    anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
    Ok(secret)
}

/// Write beside, fsync, rename, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.tmp"));
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = dir
        && let Ok(handle) = std::fs::File::open(dir)
    {
        let _ = handle.sync_all();
    }
    Ok(())
}

/// Reads a declared file and parses it; `None` when there is no file.
/// Errors name the file (and the parser's line).
pub fn read_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_instructor_part_is_private_and_secrets_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path().join("run")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&run.instructor()), 0o700);
        write_secret(&run.instructor_token(), "s3cret-token").unwrap();
        assert_eq!(mode(&run.instructor_token()), 0o600);
        assert_eq!(
            read_secret(&run.instructor_token()).unwrap(),
            "s3cret-token"
        );
        assert!(run.controller_log().starts_with(run.instructor()));
        assert!(run.controller_state().starts_with(run.instructor()));
        // A directory left open by an older run is closed again.
        std::fs::set_permissions(run.instructor(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let again = RunDir::create(run.root()).unwrap();
        assert_eq!(mode(&again.instructor()), 0o700);
    }

    #[test]
    fn declared_files_are_replaced_whole_and_only_when_different() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        let versions = BTreeMap::from([("catalog-1".to_string(), "2.4.0".to_string())]);
        assert!(run.write_versions("catalog", &versions).unwrap());
        assert!(!run.write_versions("catalog", &versions).unwrap());
        assert_eq!(run.read_versions("catalog").unwrap(), versions);
        assert!(run.read_versions("payment").unwrap().is_empty());
        assert!(run.write_replicas("catalog", 3).unwrap());
        assert_eq!(run.read_replicas("catalog").unwrap(), Some(3));
        assert_eq!(run.scaled_services(), ["catalog"]);
        assert!(run.remove_replicas("catalog").unwrap());
        assert_eq!(run.read_replicas("catalog").unwrap(), None);
        std::fs::write(run.replicas_file("cart"), "lots\n").unwrap();
        let err = run.read_replicas("cart").unwrap_err();
        assert!(err.contains("replicas/cart: line 1"), "{err}");
    }

    #[test]
    fn pids_list_the_running_instances_by_number() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        for (id, pid) in [
            ("catalog-10", 3),
            ("catalog-2", 2),
            ("catalogue-1", 4),
            ("collector", 5),
        ] {
            run.write_pid(id, pid).unwrap();
        }
        assert_eq!(run.instances_of("catalog"), ["catalog-2", "catalog-10"]);
        assert_eq!(run.pid("collector"), Some(5));
        run.clear_pids();
        assert!(run.running().is_empty());
    }

    #[test]
    fn a_restart_request_matches_only_the_pid_it_names_and_is_used_up() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        assert!(!run.take_restart_request("cart-1", 42));
        run.request_restart("cart-1", 42).unwrap();
        assert!(!run.take_restart_request("cart-1", 41), "another process");
        run.request_restart("cart-1", 42).unwrap();
        assert!(run.take_restart_request("cart-1", 42));
        assert!(!run.take_restart_request("cart-1", 42), "used up");
    }
}
