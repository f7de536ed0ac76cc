//! Starting the load generator in-process on port 0 and talking to its
//! endpoint, the way the tests need it.

#![allow(dead_code)] // Each test binary uses a different part of it.

use std::time::Duration;

use clap::Parser;
use firedrill_loadgen::{LoadgenArgs, Summary};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: LoadgenArgs,
}

/// Flags as a user would type them, aimed at `target`, with the endpoint on
/// an ephemeral port.
pub fn args(target: &str, flags: &[&str]) -> LoadgenArgs {
    let argv = [
        "loadgen",
        "--target",
        target,
        "--metrics-listen",
        "127.0.0.1:0",
    ]
    .into_iter()
    .chain(flags.iter().copied());
    Cli::try_parse_from(argv).expect("test flags parse").args
}

/// How long readiness polling waits before the test fails.
const PATIENCE: Duration = Duration::from_secs(8);

pub struct RunningLoadgen {
    /// `http://127.0.0.1:<port>` of the loadgen's own endpoint.
    pub base: String,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<Summary>>,
    http: reqwest::Client,
}

impl RunningLoadgen {
    pub async fn start(args: LoadgenArgs) -> RunningLoadgen {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(firedrill_loadgen::run(args, listener, shutdown.clone()));
        RunningLoadgen {
            base,
            shutdown,
            handle,
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn stats(&self) -> Summary {
        let response = self.get("/api/stats").await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("/api/stats is a Summary")
    }

    /// Content type and body of `/metrics`.
    pub async fn metrics(&self) -> (String, String) {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (content_type, response.text().await.unwrap())
    }

    /// Polls `/api/stats` until `ready` holds; fails the test with the last
    /// summary if it does not within a few seconds.
    pub async fn wait_for(&self, what: &str, ready: impl Fn(&Summary) -> bool) -> Summary {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let s = self.stats().await;
            if ready(&s) {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; last stats:\n{s}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cancels the run and returns its final summary.
    pub async fn stop(self) -> Summary {
        self.shutdown.cancel();
        self.finish().await
    }

    /// Waits for the run to end on its own (`--duration`).
    pub async fn finish(self) -> Summary {
        tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("run ends in time")
            .expect("run task did not panic")
            .expect("run succeeded")
    }
}

/// The value of an unlabelled or exactly-labelled sample in metrics text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}
