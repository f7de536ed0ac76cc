//! Signed bearer tokens: `base64url(claims).base64url(hmac_sha256(key, claims))`.
//!
//! Stateless by design: any auth instance holding the shared key verifies
//! any other's tokens without a database read. Validity windows are checked
//! against the time the caller passes in, which in the service is this
//! process's clock, so a skewed clock produces the real errors
//! ("token not yet valid", "token expired").

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a token is valid.
pub const TTL_MS: i64 = 15 * 60 * 1000;
/// Clock difference tolerated between the issuer and the verifier.
pub const LEEWAY_MS: i64 = 5_000;
/// The id of the only signing key.
pub const KEY_ID: &str = "k1";

type HmacSha256 = Hmac<Sha256>;
const SIGNATURE_BYTES: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: i64,
    /// Issued at, ms since the epoch.
    pub iat: i64,
    /// Not before, ms since the epoch.
    pub nbf: i64,
    /// Expires at, ms since the epoch.
    pub exp: i64,
    pub kid: String,
}

/// Why a token was refused; the messages are the 401 bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
}

impl TokenError {
    /// The `outcome` label of `auth.verifications`.
    pub fn outcome(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
        }
    }
}

pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Signer { key: key.to_vec() }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// A token for `user_id`, valid from `now_ms` for [`TTL_MS`].
    pub fn issue(&self, user_id: i64, now_ms: i64) -> (String, Claims) {
        let claims = Claims {
            sub: user_id,
            iat: now_ms,
            nbf: now_ms,
            exp: now_ms + TTL_MS,
            kid: KEY_ID.into(),
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        let mut mac = self.mac();
        mac.update(&payload);
        let signature = mac.finalize().into_bytes();
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(signature)
        );
        (token, claims)
    }

    /// Checks shape, signature, key id and validity window, in that order,
    /// and says which one failed.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        if payload.is_empty() || signature.is_empty() || signature.contains('.') {
            return Err(TokenError::Malformed);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        if signature.len() != SIGNATURE_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut mac = self.mac();
        mac.update(&payload);
        // verify_slice compares in constant time.
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.kid != KEY_ID {
            return Err(TokenError::BadSignature);
        }
        if now_ms + LEEWAY_MS < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        if now_ms - LEEWAY_MS >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn signer() -> Signer {
        Signer::new(b"test-secret")
    }

    /// A token over arbitrary payload bytes, correctly signed.
    fn signed(payload: &[u8]) -> String {
        let mut mac = signer().mac();
        mac.update(payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn an_issued_token_verifies_and_carries_its_claims() {
        let (token, claims) = signer().issue(42, NOW);
        assert_eq!(
            claims,
            Claims {
                sub: 42,
                iat: NOW,
                nbf: NOW,
                exp: NOW + TTL_MS,
                kid: "k1".into()
            }
        );
        assert_eq!(signer().verify(&token, NOW + 1_000), Ok(claims));
    }

    #[test]
    fn the_payload_is_readable_json() {
        let (token, _) = signer().issue(7, NOW);
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(json["sub"], 7);
        assert_eq!(json["kid"], "k1");
        assert_eq!(json["exp"], NOW + TTL_MS);
    }

    #[test]
    fn validity_window_has_five_seconds_of_leeway() {
        let (token, _) = signer().issue(1, NOW);
        let s = signer();
        assert!(
            s.verify(&token, NOW - LEEWAY_MS).is_ok(),
            "slightly behind is fine"
        );
        assert_eq!(
            s.verify(&token, NOW - LEEWAY_MS - 1),
            Err(TokenError::NotYetValid)
        );
        assert!(s.verify(&token, NOW + TTL_MS + LEEWAY_MS - 1).is_ok());
        assert_eq!(
            s.verify(&token, NOW + TTL_MS + LEEWAY_MS),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn another_key_or_a_tampered_payload_is_a_bad_signature() {
        let (token, _) = signer().issue(1, NOW);
        assert_eq!(
            Signer::new(b"other").verify(&token, NOW),
            Err(TokenError::BadSignature)
        );

        let (_, signature) = token.split_once('.').unwrap();
        let forged =
            serde_json::json!({"sub": 2, "iat": NOW, "nbf": NOW, "exp": NOW + TTL_MS, "kid": "k1"});
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(forged.to_string()));
        assert_eq!(signer().verify(&forged, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn an_unknown_key_id_is_refused() {
        let payload =
            serde_json::json!({"sub": 1, "iat": NOW, "nbf": NOW, "exp": NOW + TTL_MS, "kid": "k9"});
        let token = signed(payload.to_string().as_bytes());
        assert_eq!(signer().verify(&token, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        let s = signer();
        for token in ["", "abc", "a.b.c", "!!!.???", "eyJ.", ".sig", "eyJ.c2ln"] {
            assert_eq!(
                s.verify(token, NOW),
                Err(TokenError::Malformed),
                "{token:?}"
            );
        }
        // Correctly signed, but not claims.
        assert_eq!(
            s.verify(&signed(b"not json"), NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            s.verify(&signed(br#"{"sub":1}"#), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn error_messages_are_the_contract() {
        assert_eq!(TokenError::Expired.to_string(), "token expired");
        assert_eq!(TokenError::NotYetValid.to_string(), "token not yet valid");
        assert_eq!(TokenError::BadSignature.to_string(), "bad signature");
        assert_eq!(TokenError::Malformed.to_string(), "malformed token");
    }
}
