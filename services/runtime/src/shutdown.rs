//! One shutdown path for every process.
//!
//! SIGINT and SIGTERM both cancel a single root [`CancellationToken`]. Every
//! server and background task holds a child of it, so one signal drains the
//! whole process: servers stop accepting, in-flight requests finish within
//! the grace period, then telemetry is flushed last so the final spans of a
//! dying process still reach the collector.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long in-flight work may continue after a shutdown signal.
pub const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Returns a token that is cancelled on the first SIGINT or SIGTERM.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        trigger.cancel();
    });
    token
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can still be stopped by SIGKILL;
        // never resolve rather than shutting down at once.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
