//! Faults that act on the whole process rather than on one request: each runs
//! as a task or thread for as long as its fault is assigned.
//!
//! They use real mechanisms, so the symptoms come out of the process's own
//! metrics: burning threads raise `process.cpu.time`, retained allocations
//! raise resident memory until the "OOM killer" (SIGKILL, exit 137 to the
//! supervisor) ends the process, a blocked executor thread stalls every
//! request scheduled on it, leaked pool permits show as connections in
//! use that never come back, a dropped index turns the hot query into a
//! table scan, failing OTLP exports leave gaps in traces and logs, and a
//! flood of log records fills log files and overflows log pipelines.
//!
//! They also tell the service's own watchers (`Faults::on_transition`)
//! when any fault starts or ends, for effects only the service can apply.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::model::FaultKind;
use super::{ActiveFault, Faults, Transition};
use crate::db::Db;

/// The running actuators, keyed by fault id.
pub struct Actuators {
    faults: Faults,
    db: Option<Db>,
    running: HashMap<String, Running>,
    /// Every fault started and not yet ended, to tell watchers of both.
    started: HashMap<String, FaultKind>,
    /// Whether this process's OTLP exports are made to fail.
    dropping_telemetry: bool,
}

struct Running {
    stop: CancellationToken,
    /// Threads (CPU burn) watch this flag rather than the token.
    spinning: Arc<AtomicBool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        self.spinning.store(false, Ordering::Relaxed);
    }
}

impl Actuators {
    /// `faults` is the process's handle (whose watchers hear of every fault
    /// starting and ending); `db` is the pool a `pool-leak` fault leaks from
    /// and a `drop-index` fault drops from, if the service has one.
    pub fn new(faults: &Faults, db: Option<Db>) -> Actuators {
        Actuators {
            faults: faults.clone(),
            db,
            running: HashMap::new(),
            started: HashMap::new(),
            dropping_telemetry: false,
        }
    }

    /// Starts actuators for newly assigned faults and stops those whose
    /// fault has ended.
    pub fn reconcile(&mut self, active: &[ActiveFault]) {
        self.running
            .retain(|id, _| active.iter().any(|f| &f.id == id));
        let ended: Vec<String> = self
            .started
            .keys()
            .filter(|id| !active.iter().any(|f| &f.id == *id))
            .cloned()
            .collect();
        for id in ended {
            if let Some(kind) = self.started.remove(&id) {
                self.faults.notify(&kind, Transition::Ended);
            }
        }
        for fault in active {
            if self.started.contains_key(&fault.id) {
                continue;
            }
            self.started
                .insert(fault.id.clone(), fault.spec.kind.clone());
            if let Some(running) = self.start(&fault.spec.kind) {
                self.running.insert(fault.id.clone(), running);
            }
            self.faults.notify(&fault.spec.kind, Transition::Started);
        }
        let dropping = active
            .iter()
            .any(|f| matches!(f.spec.kind, FaultKind::TelemetryDrop {}));
        if dropping != self.dropping_telemetry {
            self.dropping_telemetry = dropping;
            crate::telemetry::gate::set_failing(dropping);
        }
        let skew = active.iter().find_map(|f| match f.spec.kind {
            FaultKind::ClockSkew { time_offset } => Some(time_offset.0),
            _ => None,
        });
        let skew = skew.unwrap_or(0);
        if crate::clock::offset_ms() != skew {
            crate::clock::set_offset(Duration::from_millis(skew.unsigned_abs()), skew >= 0);
        }
        if let Some(db) = &self.db
            && !active
                .iter()
                .any(|f| matches!(f.spec.kind, FaultKind::PoolLeak { .. }))
        {
            db.return_leaked();
        }
    }

    fn start(&self, kind: &FaultKind) -> Option<Running> {
        let running = Running {
            stop: CancellationToken::new(),
            spinning: Arc::new(AtomicBool::new(true)),
        };
        match kind {
            FaultKind::CpuBurn { threads } => {
                for _ in 0..*threads {
                    let spinning = running.spinning.clone();
                    std::thread::spawn(move || burn(&spinning));
                }
            }
            FaultKind::LogFlood { rate, bytes } => {
                tokio::spawn(flood_logs(*rate, *bytes, running.stop.clone()));
            }
            FaultKind::MemoryLeak { rate, limit } => {
                tokio::spawn(leak_memory(*rate, *limit, running.stop.clone()));
            }
            FaultKind::RuntimeStall { every, block } => {
                tokio::spawn(stall_executor(
                    every.duration(),
                    block.duration(),
                    running.stop.clone(),
                ));
            }
            FaultKind::PoolLeak { every } => {
                let db = self.db.clone()?;
                tokio::spawn(leak_connections(db, every.duration(), running.stop.clone()));
            }
            FaultKind::DropIndex { index } => {
                let db = self.db.clone()?;
                let index = index.clone().or_else(|| db.hot_index())?;
                tokio::spawn(drop_index(db, index, running.stop.clone()));
            }
            FaultKind::Crash {} => {
                let stop = running.stop.clone();
                tokio::spawn(async move {
                    // Up long enough to pass its health check, as a crash
                    // loop does, then gone without a goodbye — unless the
                    // fault was cleared meanwhile.
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(1500)) => {}
                    }
                    tracing::error!("fatal: unrecoverable state in the request handler; aborting");
                    std::process::exit(70);
                });
            }
            _ => return None,
        }
        Some(running)
    }
}

fn burn(spinning: &AtomicBool) {
    let mut x: u64 = 1;
    while spinning.load(Ordering::Relaxed) {
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
    }
}

async fn leak_memory(rate_mib: u32, limit_mib: u32, stop: CancellationToken) {
    const CHUNK: usize = 1 << 20;
    let mut retained: Vec<Box<[u8]>> = Vec::new();
    paced(
        f64::from(rate_mib),
        Duration::from_millis(250),
        &stop,
        |due| {
            for _ in 0..due {
                // Filled, not zeroed: untouched pages would not count as resident.
                retained.push(vec![0xA5u8; CHUNK].into_boxed_slice());
            }
            let rss = crate::process::usage_of(std::process::id()).map_or(0, |u| u.rss_bytes);
            if rss > u64::from(limit_mib) << 20 {
                // What the kernel's OOM killer does: no chance to clean up.
                let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGKILL);
            }
        },
    )
    .await;
}

/// Writes `rate` WARN records a second, each with `bytes` of detail, in
/// bursts every 10 ms, until `stop`.
async fn flood_logs(rate: u32, bytes: u32, stop: CancellationToken) {
    let detail: String = "state=retrying backoff=0ms last_error=\"upstream refused\" "
        .chars()
        .cycle()
        .take(bytes as usize)
        .collect();
    let mut attempt: u64 = 0;
    paced(f64::from(rate), Duration::from_millis(10), &stop, |due| {
        for _ in 0..due {
            attempt += 1;
            tracing::warn!(attempt, detail = %detail, "background refresh failed; retrying immediately");
        }
    })
    .await;
}

/// Every `tick` until `stop`, calls `act` with how many units are due at
/// `per_second` (fractions carry over to the next tick).
async fn paced(
    per_second: f64,
    tick: Duration,
    stop: &CancellationToken,
    mut act: impl FnMut(u64),
) {
    let per_tick = per_second * tick.as_secs_f64();
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut owed = 0.0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        owed += per_tick;
        let due = owed.floor();
        owed -= due;
        act(due as u64);
    }
}

async fn stall_executor(every: Duration, block: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        // Deliberately blocking inside the async runtime: the worker thread
        // running this task can run nothing else meanwhile.
        std::thread::sleep(block);
    }
}

async fn leak_connections(db: Db, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        db.leak_one().await;
    }
}

/// Drops `index` until `stop`, then puts it back. Only the instance that
/// dropped it recreates it: with several instances sharing one database,
/// the others find it gone and leave it alone. An instance that dies
/// meanwhile leaves it dropped until the service's migration runs again
/// (its `CREATE INDEX IF NOT EXISTS`), as after a real botched migration.
async fn drop_index(db: Db, index: String, stop: CancellationToken) {
    let definition = match db.drop_index(&index).await {
        Ok(Some(definition)) => definition,
        Ok(None) => return,
        Err(err) => {
            tracing::debug!(error = %err, "cannot drop the index");
            return;
        }
    };
    stop.cancelled().await;
    if let Err(err) = db.create_index(&definition).await {
        tracing::debug!(error = %err, "cannot recreate the index");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;
    use crate::faults::model::{FaultSpec, Target};

    /// Records the WARN events a process writes: how many, and the size
    /// of the last one's `detail`.
    #[derive(Clone, Default)]
    struct Warnings {
        count: Arc<std::sync::atomic::AtomicUsize>,
        detail_len: Arc<Mutex<usize>>,
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            struct Detail<'a>(&'a Mutex<usize>);
            impl tracing::field::Visit for Detail<'_> {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    if field.name() == "detail" {
                        *self.0.lock().unwrap() = format!("{value:?}").len();
                    }
                }
            }
            if *event.metadata().level() == tracing::Level::WARN {
                self.count.fetch_add(1, Ordering::Relaxed);
                event.record(&mut Detail(&self.detail_len));
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_log_flood_writes_its_rate_until_it_ends() {
        let warnings = Warnings::default();
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
        let faults = Faults::new("notification", "notification-1", 1);
        let mut actuators = Actuators::new(&faults, None);
        let flood = ActiveFault {
            id: "f1".into(),
            spec: FaultSpec {
                kind: FaultKind::LogFlood {
                    rate: 1000,
                    bytes: 64,
                },
                target: Target::parse("notification").unwrap(),
                toxicity: 1.0,
            },
            until: Instant::now() + Duration::from_secs(60),
        };
        actuators.reconcile(std::slice::from_ref(&flood));
        // Paused time: exactly the ticks of one virtual second run.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let flooded = warnings.count.load(Ordering::Relaxed);
        assert!((990..=1010).contains(&flooded), "{flooded} records in 1 s");
        assert_eq!(*warnings.detail_len.lock().unwrap(), 64);

        actuators.reconcile(&[]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let ended = warnings.count.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            warnings.count.load(Ordering::Relaxed),
            ended,
            "the flood stops"
        );
    }
}
