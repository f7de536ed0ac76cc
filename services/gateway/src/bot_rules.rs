//! Bot screening at the edge: every public request is checked against a
//! signature set before it is routed.
//!
//! Rule set v1 is a handful of signatures. Rule set v2 (flag
//! [`BOT_RULES_V2`], per client address) adds a large generated set, each
//! signature a substring search over the request's fingerprint (method,
//! path and query, user agent): real CPU on the gateway's request path for
//! every request it screens, the shape of an expensive WAF rule push.
//!
//! The v2 set is sized when the gateway starts, by timing the search on
//! this machine and build, so that one screening costs about [`V2_COST`]
//! whether the binary is a debug or a release build.

use std::time::Duration;

use axum::http::{HeaderMap, Method, Uri};

/// The flag that turns rule set v2 on.
pub const BOT_RULES_V2: &str = "bot-rules-v2";

/// CPU one screening with rule set v2 costs, for a request of typical
/// length.
pub const V2_COST: Duration = Duration::from_millis(12);

/// Length of each generated v2 signature.
const SIGNATURE_LEN: usize = 12;

/// Rule set v1: known bad agents and probes.
const V1: &[&[u8]] = &[b"sqlmap", b"nikto", b"/wp-admin", b"/.env", b"masscan"];

pub struct BotRules {
    v2: Vec<[u8; SIGNATURE_LEN]>,
}

impl BotRules {
    /// Generates rule set v2, sized to cost [`V2_COST`] per screening here.
    pub fn new() -> BotRules {
        // A request of the shop's typical length (the cost grows with it).
        let sample = fingerprint_of(
            &Method::GET,
            &Uri::from_static("/api/search?q=lamp&limit=10"),
            &HeaderMap::new(),
        );
        let probe = BotRules {
            v2: signatures(256),
        };
        // Timed in this thread's CPU time, not wall time: the gateway starts
        // beside the whole lab, and a busy machine must not shrink the set.
        let started = thread_cpu_time();
        let mut rounds = 0u32;
        while thread_cpu_time() - started < Duration::from_millis(20) && rounds < 100_000 {
            std::hint::black_box(probe.screen(&sample, true));
            rounds += 1;
        }
        let spent = (thread_cpu_time() - started).max(Duration::from_micros(1));
        let per_signature = spent.as_secs_f64() / (f64::from(rounds) * 256.0);
        let count = (V2_COST.as_secs_f64() / per_signature).clamp(256.0, 2_000_000.0) as usize;
        BotRules {
            v2: signatures(count),
        }
    }

    /// How many signatures rule set v2 holds.
    pub fn v2_len(&self) -> usize {
        self.v2.len()
    }

    /// Screens one request; true when a signature matches (a bot).
    pub fn screen(&self, fingerprint: &[u8], v2: bool) -> bool {
        let hit = |signature: &[u8]| fingerprint.windows(signature.len()).any(|w| w == signature);
        let v1 = V1.iter().any(|s| hit(s));
        // Every v2 signature is checked (no early exit), as a rule engine
        // that scores requests evaluates its whole set.
        let v2 = v2 && self.v2.iter().filter(|s| hit(&s[..])).count() > 0;
        v1 || v2
    }
}

/// CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// What the rules look at: method, path and query, user agent.
pub fn fingerprint_of(method: &Method, uri: &Uri, headers: &HeaderMap) -> Vec<u8> {
    let agent = headers
        .get(axum::http::header::USER_AGENT)
        .map(|v| v.as_bytes())
        .unwrap_or(b"-");
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(uri.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(agent);
    out
}

/// `count` signatures from a fixed seed (the same set on every start):
/// lowercase tokens that real shop traffic never contains.
fn signatures(count: usize) -> Vec<[u8; SIGNATURE_LEN]> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|_| {
            let mut signature = [0u8; SIGNATURE_LEN];
            signature[0] = b'~';
            for byte in &mut signature[1..] {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = b'a' + (state % 26) as u8;
            }
            signature
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_catches_known_probes_and_lets_the_shop_through() {
        let rules = BotRules { v2: signatures(64) };
        let shop = fingerprint_of(
            &Method::GET,
            &Uri::from_static("/api/products/7"),
            &HeaderMap::new(),
        );
        assert!(!rules.screen(&shop, false));
        assert!(!rules.screen(&shop, true), "v2 flags no shop request");
        let probe = fingerprint_of(&Method::GET, &Uri::from_static("/.env"), &HeaderMap::new());
        assert!(rules.screen(&probe, false));
        let mut tagged = shop.clone();
        tagged.extend_from_slice(&rules.v2[10]);
        assert!(!rules.screen(&tagged, false));
        assert!(rules.screen(&tagged, true), "v2 signatures match");
    }
}
