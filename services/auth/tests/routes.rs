//! The auth service through its full server stack (`ctx.app`), driven with
//! `oneshot` against a temporary SQLite database.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use firedrill_auth::{NAME, build};
use firedrill_runtime::testing::TestService;
use serde_json::{Value, json};

struct TestApp {
    service: TestService,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let service = TestService::with_database(NAME, build, &[]).await;
        TestApp { service }
    }

    /// An instance on an existing database.
    async fn on(db: &Path) -> TestApp {
        let service = TestService::start(NAME, build, &["--database", db.to_str().unwrap()]).await;
        TestApp { service }
    }

    async fn raw(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, String) {
        self.service.raw(method, uri, body).await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.service
            .call(Method::POST, uri, Some(&body.to_string()))
            .await
    }

    async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/login",
            json!({"username": username, "password": password}),
        )
        .await
    }

    async fn verify(&self, token: &str) -> (StatusCode, Value) {
        self.post("/verify", json!({ "token": token })).await
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn a_seeded_user_logs_in_and_the_token_verifies() {
    let app = TestApp::spawn().await;
    let before = now_ms();
    let (status, login) = app.login("user42", "firedrill").await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["user_id"], 42);
    let expires_at = login["expires_at"].as_i64().unwrap();
    let ttl = expires_at - before;
    assert!(
        (15 * 60 * 1000..15 * 60 * 1000 + 5_000).contains(&ttl),
        "ttl {ttl} ms"
    );

    let token = login["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 2, "{token}");
    let (status, verified) = app.verify(token).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified, json!({"user_id": 42, "expires_at": expires_at}));
}

#[tokio::test]
async fn every_seeded_user_has_the_lab_password() {
    let app = TestApp::spawn().await;
    for n in [1, 250, 500] {
        let (status, body) = app.login(&format!("user{n}"), "firedrill").await;
        assert_eq!(status, StatusCode::OK, "user{n}: {body}");
        assert_eq!(body["user_id"], n);
    }
    assert_eq!(
        app.login("user501", "firedrill").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn bad_credentials_are_401_and_say_so() {
    let app = TestApp::spawn().await;
    for (user, password) in [
        ("user1", "wrong"),
        ("user1", "Firedrill"),
        ("nobody", "firedrill"),
    ] {
        let (status, body) = app.login(user, password).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}/{password}");
        assert_eq!(body["error"], "invalid username or password");
    }
}

#[tokio::test]
async fn malformed_login_bodies_are_400() {
    let app = TestApp::spawn().await;
    for body in [
        r#"{"username": "user1""#,
        r#"{"username": "user1"}"#,
        r#"{"username": 1, "password": "firedrill"}"#,
        r#"{"username": "", "password": "firedrill"}"#,
        r#"[]"#,
    ] {
        let (status, text) = app.raw(Method::POST, "/login", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        assert!(
            serde_json::from_str::<Value>(&text).unwrap()["error"].is_string(),
            "{text}"
        );
    }
}

#[tokio::test]
async fn verify_says_exactly_why_a_token_is_refused() {
    let app = TestApp::spawn().await;
    let (_, login) = app.login("user7", "firedrill").await;
    let token = login["token"].as_str().unwrap().to_string();
    let (payload, signature) = token.split_once('.').unwrap();

    let (status, body) = app.verify("not-a-token").await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "malformed token")
    );

    // Flip one character of the signature: still well-formed, no longer valid.
    let mut chars: Vec<char> = signature.chars().collect();
    chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{payload}.{}", chars.into_iter().collect::<String>());
    let (status, body) = app.verify(&tampered).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "bad signature")
    );

    // Another user's payload with this user's signature.
    let (_, other) = app.login("user8", "firedrill").await;
    let other_payload = other["token"]
        .as_str()
        .unwrap()
        .split_once('.')
        .unwrap()
        .0
        .to_string();
    let (status, body) = app.verify(&format!("{other_payload}.{signature}")).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "bad signature")
    );

    let (status, _) = app.raw(Method::POST, "/verify", Some("{}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn instances_on_the_same_database_verify_each_others_tokens() {
    let a = TestApp::spawn().await;
    let b = TestApp::on(a.service.database()).await;
    let (_, login) = a.login("user3", "firedrill").await;
    let (status, body) = b.verify(login["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_is_fast_idempotent_and_safe_to_race() {
    let started = Instant::now();
    let first = TestApp::spawn().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "seeding took {:?}",
        started.elapsed()
    );
    let path = first.service.database().to_path_buf();

    // Several instances starting at once on the same file all come up.
    let racers: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn({
                let path = path.clone();
                async move {
                    TestApp::on(&path).await;
                }
            })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap();
    }

    let conn = rusqlite::Connection::open(&path).unwrap();
    let (count, min, max): (i64, i64, i64) = conn
        .query_row("SELECT COUNT(*), MIN(id), MAX(id) FROM users", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((count, min, max), (500, 1, 500));
    let (username, salt, hash): (String, String, String) = conn
        .query_row(
            "SELECT username, password_salt, password_hash FROM users WHERE id = 9",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(username, "user9");
    assert_ne!(hash, "firedrill", "passwords are not stored in clear");
    assert_eq!(hash.len(), 64);
    assert!(!salt.is_empty());
}

#[tokio::test]
async fn outcomes_are_counted() {
    let app = TestApp::spawn().await;
    let (_, login) = app.login("user1", "firedrill").await;
    app.login("user1", "nope").await;
    app.verify(login["token"].as_str().unwrap()).await;
    app.verify("garbage").await;
    let (_, metrics) = app.raw(Method::GET, "/metrics", None).await;
    for line in [
        r#"auth_logins_total{outcome="success"} 1.0"#,
        r#"auth_logins_total{outcome="bad_credentials"} 1.0"#,
        r#"auth_verifications_total{outcome="valid"} 1.0"#,
        r#"auth_verifications_total{outcome="malformed"} 1.0"#,
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}
