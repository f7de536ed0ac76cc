//! The load generator against an in-test shop: journeys succeed and are
//! reported, the generator stays open-loop when the shop is slow, and
//! failures, timeouts and drops are counted with their reasons.

#[path = "support/fake_shop.rs"]
mod fake_shop;
#[path = "support/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fake_shop::{Behaviour, TestShop};
use firedrill_loadgen::JourneyKind;
use firedrill_loadgen::schedule::RateSchedule;
use harness::{RunningLoadgen, args, sample};

/// How many arrivals a run of `secs` at `rate` with no ramp has: the
/// generator's own schedule, which is a pure function of the seed.
fn planned_arrivals(rate: f64, secs: f64, seed: u64) -> usize {
    RateSchedule::new(rate, Duration::ZERO, None)
        .arrivals(seed)
        .take_while(|t| *t < secs)
        .count()
}

#[tokio::test]
async fn journeys_succeed_and_are_reported() {
    let shop = TestShop::spawn(Behaviour::default()).await;
    let lg = RunningLoadgen::start(args(
        &shop.url(),
        &["--rate", "60", "--ramp", "0s", "--users", "30"],
    ))
    .await;

    let health = lg.get("/health").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), r#"{"status":"ok"}"#);

    let stats = lg
        .wait_for("every journey kind to succeed", |s| {
            s.journeys.values().all(|j| j.success >= 1) && s.totals.success >= 40
        })
        .await;
    assert_eq!(stats.totals.failure, 0, "{stats}");
    assert!(stats.journeys[&JourneyKind::Checkout].p50_ms.is_some());

    let (content_type, text) = lg.metrics().await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let checkouts = sample(
        &text,
        r#"loadgen_journeys_total{journey="checkout",outcome="success"}"#,
    )
    .expect("checkout success series");
    assert!(checkouts >= 1.0, "{text}");
    assert!(
        sample(
            &text,
            r#"loadgen_requests_total{step="checkout",status="201"}"#
        )
        .is_some()
    );
    assert!(
        sample(
            &text,
            r#"loadgen_requests_total{step="login",status="200"}"#
        )
        .is_some()
    );
    assert_eq!(sample(&text, "loadgen_target_rate"), Some(60.0));
    assert!(
        text.contains(r#"loadgen_journey_duration_seconds_bucket{le="10.0",journey="browse"}"#)
    );
    assert!(text.ends_with("# EOF\n"));

    let summary = lg.stop().await;
    let t = &summary.totals;
    assert_eq!((t.failure, t.dropped, t.in_flight), (0, 0, 0), "{summary}");
    assert_eq!(
        t.success, t.scheduled,
        "every scheduled journey accounted for"
    );
    assert_eq!(summary.success_ratio, Some(1.0));
    // Two journeys never acted as one user at the same time.
    assert_eq!(shop.seen.user_overlaps.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn open_loop_keeps_the_rate_when_the_shop_is_slow() {
    // 40 journeys/s against a shop that takes 300 ms per request: a
    // closed-loop generator with a few workers would send a fraction of
    // that; an open-loop one sends exactly its schedule and has ~12 in
    // flight at any time.
    let shop = TestShop::spawn(Behaviour {
        delay: Duration::from_millis(300),
        ..Behaviour::default()
    })
    .await;
    let lg = RunningLoadgen::start(args(
        &shop.url(),
        &[
            "--rate",
            "40",
            "--ramp",
            "0s",
            "--duration",
            "2s",
            "--seed",
            "7",
            "--mix",
            "browse=1",
        ],
    ))
    .await;
    let summary = lg.finish().await;

    let planned = planned_arrivals(40.0, 2.0, 7);
    assert!((60..=100).contains(&planned), "seed 7 plans {planned}");
    assert_eq!(summary.totals.scheduled, planned as u64, "{summary}");
    assert_eq!(summary.totals.success, planned as u64, "{summary}");
    assert_eq!(shop.requests().len(), planned, "every journey was sent");
    assert!(
        shop.seen.max_in_flight.load(Ordering::SeqCst) >= 5,
        "requests overlapped: the generator did not wait for responses"
    );
    let browse = &summary.journeys[&JourneyKind::Browse];
    let p50 = browse.p50_ms.unwrap();
    assert!(
        p50 >= 300.0,
        "latency includes the shop's delay: p50 = {p50}"
    );
    assert!(summary.elapsed_seconds >= 2.0);
}

#[tokio::test]
async fn failing_checkouts_are_failures_naming_the_step() {
    let shop = TestShop::spawn(Behaviour {
        fail_checkout: true,
        ..Behaviour::default()
    })
    .await;
    let lg = RunningLoadgen::start(args(
        &shop.url(),
        &[
            "--rate",
            "30",
            "--ramp",
            "0s",
            "--duration",
            "1s",
            "--mix",
            "checkout=1",
        ],
    ))
    .await;
    let summary = lg.finish().await;

    let t = &summary.totals;
    assert!(t.failure >= 10, "{summary}");
    assert_eq!((t.success, t.dropped), (0, 0), "{summary}");
    assert_eq!(t.failure, t.scheduled);
    assert_eq!(summary.success_ratio, Some(0.0));
    assert_eq!(summary.recent_failures.len(), 20.min(t.failure as usize));
    for f in &summary.recent_failures {
        assert_eq!(f.journey, JourneyKind::Checkout);
        assert_eq!(f.outcome, "failure");
        assert_eq!(f.step.as_deref(), Some("checkout"));
        assert!(
            f.reason.contains("500") && f.reason.contains("checkout exploded"),
            "{}",
            f.reason
        );
    }
}

#[tokio::test]
async fn failure_metrics_count_the_failing_step() {
    let shop = TestShop::spawn(Behaviour {
        fail_checkout: true,
        ..Behaviour::default()
    })
    .await;
    let lg = RunningLoadgen::start(args(
        &shop.url(),
        &["--rate", "50", "--ramp", "0s", "--mix", "checkout=1"],
    ))
    .await;
    let stats = lg
        .wait_for("some checkouts to fail", |s| s.totals.failure >= 5)
        .await;
    assert_eq!(stats.totals.success, 0);
    let (_, text) = lg.metrics().await;
    let failed = sample(
        &text,
        r#"loadgen_journeys_total{journey="checkout",outcome="failure"}"#,
    )
    .unwrap();
    let step_500 = sample(
        &text,
        r#"loadgen_requests_total{step="checkout",status="500"}"#,
    )
    .unwrap();
    assert!(failed >= 5.0 && step_500 >= failed, "{text}");
    // The steps before checkout worked and say so.
    assert!(
        sample(
            &text,
            r#"loadgen_requests_total{step="add_to_cart",status="200"}"#
        )
        .unwrap()
            >= failed
    );
    lg.stop().await;
}

#[tokio::test]
async fn timeouts_are_failures_and_latency_runs_to_the_timeout() {
    let shop = TestShop::spawn(Behaviour {
        delay: Duration::from_secs(3),
        ..Behaviour::default()
    })
    .await;
    let lg = RunningLoadgen::start(args(
        &shop.url(),
        &[
            "--rate",
            "20",
            "--ramp",
            "0s",
            "--duration",
            "500ms",
            "--mix",
            "view_product=1",
            "--request-timeout",
            "200ms",
        ],
    ))
    .await;
    let summary = lg.finish().await;
    let t = &summary.totals;
    assert!(t.failure >= 3, "{summary}");
    assert_eq!((t.success, t.dropped), (0, 0));
    let f = &summary.recent_failures[0];
    assert_eq!(f.step.as_deref(), Some("view_product"));
    assert!(f.reason.contains("timed out after 200ms"), "{}", f.reason);
    let p50 = summary.journeys[&JourneyKind::ViewProduct].p50_ms.unwrap();
    assert!((200.0..1000.0).contains(&p50), "p50 = {p50}");
}

#[tokio::test]
async fn journeys_over_max_in_flight_are_dropped_not_lost() {
    let shop = TestShop::spawn(Behaviour {
        delay: Duration::from_secs(1),
        ..Behaviour::default()
    })
    .await;
    let lg = RunningLoadgen::start(args(
        &shop.url(),
        &[
            "--rate",
            "60",
            "--ramp",
            "0s",
            "--duration",
            "500ms",
            "--mix",
            "browse=1",
            "--max-in-flight",
            "3",
            "--seed",
            "3",
        ],
    ))
    .await;
    let summary = lg.finish().await;
    let planned = planned_arrivals(60.0, 0.5, 3) as u64;
    let t = &summary.totals;
    // Nothing finishes within the half second, so exactly the first three
    // run and every later arrival is dropped.
    assert_eq!(t.scheduled, planned);
    assert_eq!((t.success, t.dropped), (3, planned - 3), "{summary}");
    assert_eq!(shop.requests().len(), 3);
    let last = summary.recent_failures.last().unwrap();
    assert_eq!(last.outcome, "dropped");
    assert!(last.reason.contains("--max-in-flight"), "{}", last.reason);
}

#[tokio::test]
async fn users_are_never_shared_and_busy_users_mean_drops() {
    // Two users, a slow shop, and cart journeys arriving far faster than
    // two users can serve: most are dropped for want of a user, and the
    // shop never sees one user in two requests at once.
    let shop = TestShop::spawn(Behaviour {
        delay: Duration::from_millis(100),
        ..Behaviour::default()
    })
    .await;
    let lg = RunningLoadgen::start(args(
        &shop.url(),
        &[
            "--rate",
            "50",
            "--ramp",
            "0s",
            "--duration",
            "1s",
            "--users",
            "2",
            "--mix",
            "add_to_cart=1,view_cart=1",
        ],
    ))
    .await;
    let summary = lg.finish().await;
    let t = &summary.totals;
    assert!(t.success >= 2 && t.dropped >= 10, "{summary}");
    assert_eq!(t.failure, 0, "{summary}");
    assert_eq!(t.success + t.dropped, t.scheduled);
    assert!(
        summary
            .recent_failures
            .iter()
            .all(|f| f.reason.contains("no free user"))
    );
    assert_eq!(shop.seen.user_overlaps.load(Ordering::SeqCst), 0);
    // Tokens are cached per user: two users, so (at most) two logins.
    assert_eq!(shop.seen.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn expired_tokens_are_renewed_without_failing_journeys() {
    let shop = TestShop::spawn(Behaviour::default()).await;
    let lg = RunningLoadgen::start(args(
        &shop.url(),
        &[
            "--rate",
            "80",
            "--ramp",
            "0s",
            "--users",
            "5",
            "--mix",
            "view_cart=1",
        ],
    ))
    .await;
    lg.wait_for("carts viewed", |s| s.totals.success >= 20)
        .await;
    let logins_before = shop.seen.logins.load(Ordering::SeqCst);
    assert!(
        logins_before <= 5,
        "tokens are cached: {logins_before} logins"
    );

    shop.expire_tokens();
    lg.wait_for("carts viewed after expiry", |s| s.totals.success >= 60)
        .await;
    let summary = lg.stop().await;
    assert_eq!(summary.totals.failure, 0, "{summary}");
    assert!(shop.seen.unauthorized.load(Ordering::SeqCst) >= 1);
    assert!(shop.seen.logins.load(Ordering::SeqCst) > logins_before);
}

#[tokio::test]
async fn same_seed_sends_the_same_requests() {
    // Anonymous journeys, so no user lease (the one timing-dependent
    // choice) is involved. Requests may interleave differently between
    // runs, so compare them as multisets.
    async fn requests(seed: &str) -> BTreeMap<String, usize> {
        let shop = TestShop::spawn(Behaviour::default()).await;
        let lg = RunningLoadgen::start(args(
            &shop.url(),
            &[
                "--rate",
                "100",
                "--ramp",
                "0s",
                "--duration",
                "600ms",
                "--seed",
                seed,
                "--mix",
                "browse=1,search=1,view_product=1",
            ],
        ))
        .await;
        let summary = lg.finish().await;
        assert_eq!(summary.totals.failure, 0, "{summary}");
        let mut counts = BTreeMap::new();
        for r in shop.requests() {
            *counts.entry(r).or_default() += 1;
        }
        counts
    }
    let a = requests("5").await;
    assert!(a.values().sum::<usize>() >= 40);
    assert_eq!(a, requests("5").await);
    assert_ne!(a, requests("6").await);
}

#[tokio::test]
async fn shutdown_drains_in_flight_journeys_and_accounts_for_all() {
    let shop = TestShop::spawn(Behaviour {
        delay: Duration::from_millis(300),
        ..Behaviour::default()
    })
    .await;
    let lg = RunningLoadgen::start(args(
        &shop.url(),
        &["--rate", "50", "--ramp", "0s", "--mix", "browse=1"],
    ))
    .await;
    lg.wait_for("journeys in flight", |s| s.totals.in_flight >= 3)
        .await;
    let summary = lg.stop().await;
    let t = &summary.totals;
    assert_eq!(t.in_flight, 0);
    assert!(t.success >= 3, "in-flight journeys finished: {summary}");
    assert_eq!(t.success + t.failure + t.dropped, t.scheduled, "{summary}");
}

#[tokio::test]
async fn unreachable_shop_is_a_transport_failure() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let lg = RunningLoadgen::start(args(
        &format!("http://127.0.0.1:{port}"),
        &[
            "--rate",
            "20",
            "--ramp",
            "0s",
            "--duration",
            "300ms",
            "--mix",
            "login=1",
        ],
    ))
    .await;
    let summary = lg.finish().await;
    assert!(summary.totals.failure >= 1, "{summary}");
    let f = &summary.recent_failures[0];
    assert_eq!(f.step.as_deref(), Some("login"));
    assert!(f.reason.starts_with("transport error"), "{}", f.reason);
}
