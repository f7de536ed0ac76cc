//! The lab harness for integration tests: starts `firedrill up` as a real
//! process tree on free ports and waits for its readiness signal
//! (`endpoints.json` in the run directory), never on sleeps.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

#[derive(Debug, Deserialize, Clone, Default)]
pub struct Endpoints {
    pub gateway: String,
    pub query: String,
    pub loadgen: Option<String>,
    pub controller: String,
    pub instructor_token_file: String,
    #[serde(default)]
    pub prometheus: Option<String>,
    pub database: String,
    pub ready_ms: u64,
    pub components: Vec<ComponentEndpoints>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct ComponentEndpoints {
    pub id: String,
    pub name: String,
    pub health: String,
    pub metrics: String,
}

pub struct Lab {
    pub endpoints: Endpoints,
    pub run_dir: PathBuf,
    child: Option<Child>,
    _tmp: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub fn firedrill() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firedrill"))
}

impl Lab {
    /// Starts the lab with `extra` flags after `up`.
    pub async fn start(extra: &[&str]) -> Lab {
        Lab::start_in(None, extra).await
    }

    /// Starts the lab from working directory `cwd` (default: the test's).
    pub async fn start_in(cwd: Option<&Path>, extra: &[&str]) -> Lab {
        let tmp = tempfile::tempdir().expect("tempdir");
        let run_dir = tmp.path().join("run");
        let stdout = std::fs::File::create(tmp.path().join("up.log")).unwrap();
        let stderr = stdout.try_clone().unwrap();
        let mut command = firedrill();
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let child = command
            .args([
                "up",
                "--base-port",
                "0",
                "--status-every",
                "0s",
                "--ready-timeout",
                "60s",
                "--run-dir",
            ])
            .arg(&run_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start firedrill up");
        let mut lab = Lab {
            endpoints: Endpoints::default(),
            run_dir: run_dir.clone(),
            child: Some(child),
            _tmp: tmp,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        lab.endpoints = lab.wait_for_endpoints(Duration::from_secs(90));
        lab
    }

    fn wait_for_endpoints(&mut self, timeout: Duration) -> Endpoints {
        let path = self.run_dir.join("endpoints.json");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(bytes) = std::fs::read(&path) {
                return serde_json::from_slice(&bytes).expect("endpoints.json parses");
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("firedrill up exited early ({status}):\n{}", self.up_log());
            }
            assert!(
                Instant::now() < deadline,
                "lab not ready in {timeout:?}:\n{}",
                self.up_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn up_log(&self) -> String {
        std::fs::read_to_string(self.run_dir.parent().unwrap().join("up.log")).unwrap_or_default()
    }

    pub fn component_log(&self, id: &str) -> String {
        std::fs::read_to_string(self.run_dir.join("logs").join(format!("{id}.log")))
            .unwrap_or_default()
    }

    pub fn pid(&self, id: &str) -> u32 {
        std::fs::read_to_string(self.run_dir.join("pids").join(format!("{id}.pid")))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    /// The process `id` (`catalog-1`, `collector`) as `endpoints.json`
    /// listed it when the lab became ready.
    pub fn component(&self, id: &str) -> &ComponentEndpoints {
        self.endpoints
            .components
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no component {id} in endpoints.json"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoints.gateway)
    }

    /// Logs in as `userN` and returns the bearer token.
    pub async fn login(&self, user: u32) -> String {
        let body: serde_json::Value = self
            .http
            .post(self.url("/api/login"))
            .json(&serde_json::json!({"username": format!("user{user}"), "password": "firedrill"}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// GETs `url` and returns the body; any transport error fails the test.
    pub async fn get_text(&self, url: impl reqwest::IntoUrl) -> String {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// GETs `url` and parses the body as JSON.
    pub async fn get_json(&self, url: impl reqwest::IntoUrl) -> serde_json::Value {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn instructor_token(&self) -> String {
        std::fs::read_to_string(&self.endpoints.instructor_token_file)
            .expect("instructor token file")
            .trim()
            .to_string()
    }

    /// The lab's own learner's token (`<run>/learner-token`).
    pub fn learner_token(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("learner-token"))
            .expect("learner token file")
            .trim()
            .to_string()
    }

    /// GETs `url` with the learner's token and parses the body as JSON.
    pub async fn learner_get_json(&self, url: impl reqwest::IntoUrl) -> serde_json::Value {
        self.http
            .get(url)
            .bearer_auth(self.learner_token())
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Runs a `firedrill` CLI verb against this lab (it finds the controller
    /// and token through the run directory, as a user's shell would).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        firedrill()
            .args(args)
            .env("FIREDRILL_RUN_DIR", &self.run_dir)
            .env_remove("FIREDRILL_INSTRUCTOR_TOKEN")
            .env_remove("FIREDRILL_LEARNER_TOKEN")
            .env_remove("FIREDRILL_CONTROLLER")
            .output()
            .expect("run firedrill")
    }

    /// Polls `check` every 100 ms until it returns `Some`, or panics with
    /// `what` after `timeout`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM to `up` and waits for the whole tree to stop.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("firedrill up did not stop within 30 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}
