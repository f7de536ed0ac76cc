//! One way to start a collector and talk to it (zero-to-production's
//! `spawn_app` shape).

use std::{
    future::Future,
    net::SocketAddr,
    time::{Duration, Instant},
};

use firedrill_collector::{CollectorConfig, Listeners, run};
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// How long any readiness wait may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(15);

pub struct TestCollector {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub query: SocketAddr,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_collector() -> TestCollector {
    spawn_collector_with(CollectorConfig::default()).await
}

pub async fn spawn_collector_with(config: CollectorConfig) -> TestCollector {
    init_test_log();
    let listeners = Listeners {
        grpc: bind_any_port().await,
        http: bind_any_port().await,
        query: bind_any_port().await,
    };
    let [grpc, http, query] = listeners.local_addrs().expect("bound addresses");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(config, listeners, shutdown.clone()));
    let collector = TestCollector {
        grpc,
        http,
        query,
        client: reqwest::Client::new(),
        shutdown,
        task,
    };
    collector
        .wait_for("/health", |body| body["status"] == "ok")
        .await;
    collector
}

pub async fn bind_any_port() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind port 0")
}

fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,h2=info,hyper=info,tower=info")
            .with_test_writer()
            .try_init();
    }
}

impl TestCollector {
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn query_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.query)
    }

    /// GET on the query API; the body must be JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.query_url(path))
            .send()
            .await
            .expect("query request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn get_text(&self, path: &str) -> (u16, String, String) {
        let response = self
            .client
            .get(self.query_url(path))
            .send()
            .await
            .expect("query request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        (
            status,
            content_type,
            response.text().await.expect("text body"),
        )
    }

    /// POST to the OTLP/HTTP receiver with explicit headers.
    pub async fn post_otlp(
        &self,
        path: &str,
        content_type: &str,
        content_encoding: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.http_url(path))
            .header("content-type", content_type)
            .body(body);
        if let Some(encoding) = content_encoding {
            request = request.header("content-encoding", encoding);
        }
        request.send().await.expect("OTLP/HTTP request")
    }

    /// Polls `path` until `ready` holds for its JSON body (any status).
    pub async fn wait_for(&self, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let ready = &ready;
        eventually(path, || async move {
            let response = self.client.get(self.query_url(path)).send().await.ok()?;
            let body: Value = response.json().await.ok()?;
            ready(&body).then_some(body)
        })
        .await
    }

    /// The value of one series of the collector's own metrics, 0 if absent.
    pub async fn self_metric(&self, series: &str) -> f64 {
        let (_, _, text) = self.get_text("/metrics").await;
        metric_value(&text, series)
    }

    /// Cancels the root token and waits for `run` to return.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("collector stops before the deadline")
            .expect("collector task does not panic")
    }
}

pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Retries `probe` until it yields a value or the deadline passes. The
/// pause between tries is a polling interval, not a synchronisation.
pub async fn eventually<T, F>(what: &str, mut probe: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs OTel SDK code off the async workers. The SDK's simple processors
/// and `shutdown` block on export futures; doing that on a runtime worker
/// can starve the very runtime the exporter needs (STACK.md).
pub async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("SDK work does not panic")
}
