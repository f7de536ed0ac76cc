//! Sixty seconds of default load: journeys succeed and the shop's data
//! invariants hold. Also prints the lab's resource use at that load.

use std::time::{Duration, Instant};

use crate::support::Lab;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_seconds_of_default_load_keep_slos_and_invariants() {
    let lab = Lab::start(&[]).await;
    let loadgen = lab
        .endpoints
        .loadgen
        .clone()
        .expect("up runs the load generator by default");
    let pids: Vec<u32> = lab
        .endpoints
        .components
        .iter()
        .map(|c| lab.pid(&c.id))
        .collect();
    let cpu_before: f64 = pids
        .iter()
        .filter_map(|p| firedrill_runtime::process::usage_of(*p))
        .map(|u| u.cpu_seconds)
        .sum();
    let started = Instant::now();

    // The load generator's stats are the readiness signal here; the window
    // itself is the thing measured.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stats: Value = lab.get_json(format!("{loadgen}/api/stats")).await;
    let elapsed = started.elapsed().as_secs_f64();
    let usage: Vec<_> = pids
        .iter()
        .filter_map(|p| firedrill_runtime::process::usage_of(*p))
        .collect();
    let pss_mib = pids
        .iter()
        .filter_map(|p| firedrill_runtime::process::pss_of(*p))
        .sum::<u64>() as f64
        / (1024.0 * 1024.0);
    let cores = (usage.iter().map(|u| u.cpu_seconds).sum::<f64>() - cpu_before) / elapsed;
    println!(
        "lab at default load: {pss_mib:.0} MiB (PSS) across {} processes, {cores:.2} cores, ready in {} ms",
        pids.len(),
        lab.endpoints.ready_ms
    );

    let ratio = stats["success_ratio"].as_f64().unwrap();
    let totals = &stats["totals"];
    let total = totals["success"].as_u64().unwrap() + totals["failure"].as_u64().unwrap();
    assert!(total >= 200, "too few journeys in 60 s: {stats}");
    assert_eq!(
        totals["dropped"], 0,
        "the load generator dropped journeys: {stats}"
    );
    assert!(ratio >= 0.995, "journey success {ratio} < 99.5%: {stats}");

    let db = rusqlite::Connection::open(&lab.endpoints.database).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM stock WHERE available < 0 OR reserved < 0"),
        0,
        "stock went negative"
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM payments p WHERE p.status = 'captured' AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = p.order_id AND r.status IN ('reserved', 'committed'))"
        ),
        0,
        "a paid order has no reservation"
    );
    assert!(
        count("SELECT COUNT(*) FROM orders WHERE status = 'confirmed'") > 0,
        "no order was placed"
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM orders o WHERE o.status = 'confirmed' AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status = 'captured')"
        ),
        0,
        "a confirmed order was not paid"
    );
}
