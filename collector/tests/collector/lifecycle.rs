//! Starting, announcing and stopping the collector.

use std::{num::NonZeroUsize, time::Duration};

use firedrill_collector::CollectorArgs;
use tokio_util::sync::CancellationToken;

use crate::harness::{bind_any_port, metric_value, spawn_collector};

fn args_on_port_zero() -> CollectorArgs {
    CollectorArgs {
        otlp_grpc_listen: "127.0.0.1:0".into(),
        otlp_http_listen: "127.0.0.1:0".into(),
        query_listen: "127.0.0.1:0".into(),
        max_spans: NonZeroUsize::new(100).unwrap(),
        max_log_records: NonZeroUsize::new(100).unwrap(),
        max_body_bytes: 1 << 20,
        memory_limit: 256 << 20,
        max_span_bytes: None,
        max_log_bytes: None,
        queue_bytes: None,
        forward_traces_otlp: None,
        forward_metrics_otlp: None,
        forward_logs_otlp: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_failure_names_the_flag_and_the_address() {
    let taken = bind_any_port().await;
    let address = taken.local_addr().unwrap().to_string();
    let args = CollectorArgs {
        otlp_http_listen: address.clone(),
        ..args_on_port_zero()
    };
    let error = firedrill_collector::main(args, CancellationToken::new())
        .await
        .expect_err("the port is taken");
    assert_eq!(
        error.to_string(),
        format!("cannot listen on {address} (--otlp-http-listen): address already in use")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_on_port_zero_returns_ok_when_cancelled() {
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(firedrill_collector::main(
        args_on_port_zero(),
        shutdown.clone(),
    ));
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("stops before the deadline")
        .expect("does not panic");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_listener() {
    let collector = spawn_collector().await;
    let addresses = [collector.grpc, collector.http, collector.query];
    collector.stop().await.expect("clean shutdown");
    for address in addresses {
        let connected = tokio::net::TcpStream::connect(address).await;
        assert!(connected.is_err(), "{address} still accepts connections");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_own_metrics() {
    let collector = spawn_collector().await;
    let (status, health) = collector.get_json("/health").await;
    assert_eq!((status, health), (200, serde_json::json!({"status": "ok"})));

    let (status, content_type, text) = collector.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"));
    let capacity = r#"firedrill_collector_store_capacity{store="spans"}"#;
    assert_eq!(metric_value(&text, capacity), 200_000.0);
    assert_eq!(
        metric_value(
            &text,
            r#"firedrill_collector_store_items{store="log_records"}"#
        ),
        0.0
    );
    assert!(
        text.contains("# TYPE firedrill_collector_items counter"),
        "{text}"
    );
    collector.stop().await.expect("clean shutdown");
}
