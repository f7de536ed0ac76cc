//! Where the collector's CPU goes per span, stage by stage, without
//! sockets: a profiling aid, not a pass/fail test.
//!
//! ```text
//! cargo test --release -p firedrill-collector --lib -- --ignored --nocapture ingest_cost
//! ```
//!
//! Exports are the benchmark's (`benches/support/workload.rs`): 23 spans per trace
//! across 12 services, 10 attributes each, 506 spans per export. Each stage is timed (in this thread's CPU time) over the same
//! exports, with prost's decode and free (the benchmark's baseline, less
//! the transport) beside them.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::{
    derived::{Derived, DerivedLimits},
    otlp::traces,
    store::{Capacities, Store},
};

#[path = "../../benches/support/workload.rs"]
mod workload;

/// CPU time of this thread, so other work on the machine does not count.
fn cpu_nanos() -> u64 {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux");
    let on_cpu = schedstat.split_whitespace().next().expect("a first field");
    on_cpu.parse().expect("nanoseconds")
}

#[test]
#[ignore = "a profiling aid: run it in release, see the module's doc"]
fn ingest_cost() {
    let exports = workload::build_exports(400, 0);
    let spans = exports.iter().map(workload::span_count).sum::<u64>() as f64;
    let encoded: Vec<Bytes> = exports
        .iter()
        .map(|export| export.encode_to_vec().into())
        .collect();
    // Smaller than what the rounds insert, so eviction is part of the cost.
    let store = Store::new(Capacities {
        spans: 100_000,
        log_records: 0,
        metric_series: 0,
        span_bytes: usize::MAX,
        log_bytes: usize::MAX,
    });
    let derived = Derived::new(DerivedLimits::default());
    let per_span = |started: u64| (cpu_nanos() - started) as f64 / spans;
    // The fastest of several rounds: the machine is shared.
    let mut best = [f64::MAX; 4];
    for _ in 0..6 {
        let started = cpu_nanos();
        for bytes in &encoded {
            drop(ExportTraceServiceRequest::decode(bytes.as_ref()).expect("decodes"));
        }
        let prost = per_span(started);
        let started = cpu_nanos();
        let checked: Vec<_> = encoded
            .iter()
            .map(|bytes| traces::check(bytes.clone()).expect("checks"))
            .collect();
        let check = per_span(started);
        let started = cpu_nanos();
        for c in &checked {
            store.insert_export(&c.export, &mut ());
        }
        let insert = per_span(started);
        let started = cpu_nanos();
        for c in &checked {
            let mut derived = derived.batch();
            store.insert_export(&c.export, &mut derived);
            derived.finish(crate::model::now_unix_nano());
        }
        let both = per_span(started);
        for (best, now) in best.iter_mut().zip([prost, check, insert, both]) {
            *best = best.min(now);
        }
    }
    let [prost, check, insert, both] = best;
    println!(
        "CPU ns per span, best of 6: prost decode+free {prost:.0} | check {check:.0}, store {insert:.0}, store+derived {both:.0}; check+store+derived = {:.2} x prost",
        (check + both) / prost
    );
}
