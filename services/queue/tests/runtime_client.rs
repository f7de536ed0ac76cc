//! The broker served on a real port, driven by the runtime's own producer
//! and consumer: proves the two sides of the queue contract agree.

use std::time::Duration;

use firedrill_queue::{NAME, build};
use firedrill_runtime::faults::model::FaultKind;
use firedrill_runtime::queue::{self, ConsumerConfig};
use firedrill_runtime::testing::{self, FaultInjector, TestService, spawn_peer};
use serde_json::{Value, json};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_consumer_gets_publishes_redeliveries_and_acks() {
    // The broker, on a real port.
    let service = TestService::with_database(NAME, build, &[]).await;
    let url = spawn_peer(service.app().clone()).await;

    // A client process's view of it.
    let peers = format!("queue={url}");
    let client = testing::context("client", &["--peers", &peers]);
    let stop = client.shutdown.clone();
    let broker = client.peer(queue::BROKER).unwrap();

    let first = queue::publish(&broker, "order-events", &json!({"n": 1}))
        .await
        .unwrap();
    let second = queue::publish(&broker, "order-events", &json!({"n": 2}))
        .await
        .unwrap();
    assert!(second > first);

    // The handler fails message 1 on its first delivery only.
    let (tx, mut rx) = mpsc::unbounded_channel::<(i64, u32, Value)>();
    let config = ConsumerConfig {
        batch: 4,
        visibility: Duration::from_secs(30),
        wait: Duration::from_millis(200),
    };
    queue::spawn_consumer(
        broker.clone(),
        "order-events",
        config,
        stop.clone(),
        move |message| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((message.id, message.attempts, message.payload.clone()));
                if message.id == first && message.attempts == 1 {
                    Err("transient failure".to_string())
                } else {
                    Ok(())
                }
            }
        },
    );

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no delivery")
            .unwrap();
        seen.push(delivery);
    }
    seen.sort_by_key(|(id, attempts, _)| (*id, *attempts));
    assert_eq!(
        seen,
        vec![
            (first, 1, json!({"n": 1})),
            (first, 2, json!({"n": 1})),
            (second, 1, json!({"n": 2}))
        ],
        "the nacked message comes back once, the other is delivered once"
    );

    // Everything is acked in the end (the ack follows the handler).
    let stats_path = "/topics/order-events/stats";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats: Value = broker
            .get("/topics/{topic}/stats", stats_path)
            .json()
            .await
            .unwrap();
        if stats["depth"] == 0 && stats["in_flight"] == 0 {
            assert_eq!(stats["dead_letters"], 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never fully acked: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_fails_on_every_delivery_until_it_is_dead_lettered() {
    let service = TestService::with_database(NAME, build, &[]).await;
    let url = spawn_peer(service.app().clone()).await;
    let peers = format!("queue={url}");
    let consumer = testing::context("projector", &["--peers", &peers]);
    let stop = consumer.shutdown.clone();
    let broker = consumer.peer(queue::BROKER).unwrap();

    // Every message is poison (toxicity 1): the first one published must
    // go through all five deliveries and end in the dead-letter state.
    let mut faults = FaultInjector::new(&consumer);
    let fault = faults.inject(
        FaultKind::PoisonMessage {},
        "projector->queue-consumer",
        1.0,
    );
    let id = queue::publish(&broker, "order-events", &json!({"order_id": 1}))
        .await
        .unwrap();

    // A handler that reads the payload as an order event, as the real
    // consumers do.
    let (tx, mut rx) = mpsc::unbounded_channel::<(i64, u32, Result<(), String>)>();
    let config = ConsumerConfig {
        batch: 4,
        visibility: Duration::from_secs(30),
        wait: Duration::from_millis(200),
    };
    queue::spawn_consumer(
        broker.clone(),
        "order-events",
        config,
        stop.clone(),
        move |message| {
            let tx = tx.clone();
            async move {
                let outcome = match message.payload.get("order_id") {
                    Some(_) => Ok(()),
                    None => Err(format!("unreadable order event: {}", message.payload)),
                };
                let _ = tx.send((message.id, message.attempts, outcome.clone()));
                outcome
            }
        },
    );
    for attempt in 1..=5 {
        let (got, attempts, outcome) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no delivery")
            .unwrap();
        assert_eq!((got, attempts), (id, attempt));
        assert!(outcome.is_err(), "delivery {attempt} must fail");
    }
    let stats_path = "/topics/order-events/stats";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats: Value = broker
            .get("/topics/{topic}/stats", stats_path)
            .json()
            .await
            .unwrap();
        if stats["dead_letters"] == 1 {
            assert_eq!(stats["depth"], 0, "{stats}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = service.metrics().await;
    assert!(
        metrics.contains(
            r#"messaging_queue_dead_lettered_messages_total{messaging_destination_name="order-events"} 1.0"#
        ),
        "{metrics}"
    );

    // Fixed: with the fault over, a replay of the dead letter succeeds.
    faults.clear(&fault);
    let (status, _) = service
        .call(axum::http::Method::POST, "/dlq/replay", None)
        .await;
    assert_eq!(status, axum::http::StatusCode::OK);
    let (got, attempts, outcome) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no redelivery after replay")
        .unwrap();
    assert_eq!((got, attempts, outcome), (id, 1, Ok(())));
    stop.cancel();
}
