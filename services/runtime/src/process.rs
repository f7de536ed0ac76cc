//! Process and runtime metrics: CPU, resident memory, threads, tokio tasks.
//!
//! Read from `/proc/self` every [`SAMPLE_EVERY`], so a CPU-burn or leak fault
//! shows up in the same process's metrics the way it would under a real
//! node exporter.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::{Meters, Unit};

pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// Linux reports CPU time in USER_HZ ticks, fixed at 100 by the kernel ABI on
/// every architecture this lab runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// A point-in-time reading of this process's resource use.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User + system CPU time since start, in seconds.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub threads: u64,
}

/// Reads `/proc/<pid>/stat` (any process, so `up` can report children).
pub fn usage_of(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Proportional set size of `pid` in bytes: its private memory plus its
/// share of pages mapped by several processes. The lab's processes all map
/// the same `firedrill` binary, so summing RSS would count those pages once
/// per process; PSS sums to what the lab really occupies.
pub fn pss_of(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_pss(&rollup)
}

fn parse_pss(rollup: &str) -> Option<u64> {
    let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn parse_stat(stat: &str) -> Option<Usage> {
    // The command name (field 2) may contain spaces: split after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the name start at index 3 of proc(5): state is [0].
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let threads: u64 = fields.get(17)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    Some(Usage {
        cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
        rss_bytes: rss_pages * 4096,
        threads,
    })
}

/// Samples this process until `shutdown`, recording gauges and a CPU counter.
pub fn spawn_sampler(meters: &Meters, shutdown: CancellationToken) {
    let cpu = meters.counter_of(
        "process.cpu.time",
        "CPU seconds used by this process (user + system)",
        Unit::Seconds,
    );
    let memory = meters.gauge(
        "process.memory.usage",
        "Resident set size of this process",
        Unit::Bytes,
    );
    let threads = meters.gauge(
        "process.thread.count",
        "OS threads in this process",
        Unit::Count,
    );
    let tasks = meters.gauge(
        "tokio.tasks.alive",
        "Tokio tasks alive in this process",
        Unit::Count,
    );
    let pid = std::process::id();
    tokio::spawn(async move {
        let mut last_cpu = 0.0;
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Some(u) = usage_of(pid) {
                cpu.add((u.cpu_seconds - last_cpu).max(0.0), &[]);
                last_cpu = u.cpu_seconds;
                memory.set(u.rss_bytes as f64, &[]);
                threads.set(u.threads as f64, &[]);
            }
            let alive = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            tasks.set(alive as f64, &[]);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_spaces_in_the_name() {
        let line = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 123 1000000 300 18446744073709551615";
        let u = parse_stat(line).unwrap();
        assert_eq!(u.cpu_seconds, 3.0);
        assert_eq!(u.threads, 7);
        assert_eq!(u.rss_bytes, 300 * 4096);
    }

    #[test]
    fn reads_this_process() {
        let u = usage_of(std::process::id()).unwrap();
        assert!(u.rss_bytes > 0 && u.threads >= 1);
        let pss = pss_of(std::process::id()).unwrap();
        assert!(
            pss > 0 && pss <= u.rss_bytes + (1 << 20),
            "{pss} vs {}",
            u.rss_bytes
        );
    }

    #[test]
    fn parses_pss_from_smaps_rollup() {
        let rollup = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  2048 kB\nPss:  1536 kB\nPss_Anon: 1000 kB\n";
        assert_eq!(parse_pss(rollup), Some(1536 * 1024));
        assert_eq!(parse_pss("Rss: 1 kB\n"), None);
    }
}
