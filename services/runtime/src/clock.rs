//! The process's notion of wall-clock time.
//!
//! Everything that compares timestamps across processes (token expiry, message
//! age) reads time through here rather than `SystemTime::now()`, so that a
//! clock-skew fault offsets one instance's clock the way a broken NTP client
//! would, and the symptoms ("token not yet valid") arise from real checks.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Current time as seen by this process, including any skew.
pub fn now() -> SystemTime {
    let offset = OFFSET_MS.load(Ordering::Relaxed);
    let real = SystemTime::now();
    if offset >= 0 {
        real + Duration::from_millis(offset as u64)
    } else {
        real - Duration::from_millis(offset.unsigned_abs())
    }
}

/// Milliseconds since the Unix epoch, as seen by this process.
pub fn now_unix_ms() -> i64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sets the skew applied to [`now`]; `0` restores the real clock.
pub fn set_offset(offset: Duration, ahead: bool) {
    let ms = offset.as_millis().min(i64::MAX as u128) as i64;
    OFFSET_MS.store(if ahead { ms } else { -ms }, Ordering::Relaxed);
}

/// The skew currently applied, in milliseconds (negative = behind).
pub fn offset_ms() -> i64 {
    OFFSET_MS.load(Ordering::Relaxed)
}
