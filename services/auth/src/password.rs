//! Password hashing: `hex(sha256(salt ‖ password))` with a per-user salt.
//!
//! (A lab stand-in for a real KDF: cheap enough that 500 seeded users take
//! milliseconds, and the same on every instance.)

use sha2::{Digest, Sha256};

pub fn hash(salt: &str, password: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(password.as_bytes());
    hex::encode(hasher.finalize())
}

/// The seeded users' salt: derived from the username so every process that
/// seeds the shared database writes identical rows.
pub fn seed_salt(username: &str) -> String {
    let digest = Sha256::digest(format!("firedrill-salt:{username}").as_bytes());
    hex::encode(&digest[..16])
}

/// Whether `password` hashes to `expected`, comparing in constant time so
/// the answer's timing says nothing about how many characters matched.
pub fn matches(salt: &str, password: &str, expected: &str) -> bool {
    let actual = hash(salt, password);
    actual.len() == expected.len()
        && actual
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_of_salt_then_password() {
        // sha256("abc") — the salt and password are simply concatenated.
        assert_eq!(
            hash("a", "bc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn matches_only_the_right_password() {
        let salt = seed_salt("user1");
        let stored = hash(&salt, "firedrill");
        assert!(matches(&salt, "firedrill", &stored));
        assert!(!matches(&salt, "firedril", &stored));
        assert!(
            !matches(&seed_salt("user2"), "firedrill", &stored),
            "salt matters"
        );
    }

    #[test]
    fn seed_salts_are_deterministic_and_distinct() {
        assert_eq!(seed_salt("user1"), seed_salt("user1"));
        assert_ne!(seed_salt("user1"), seed_salt("user2"));
        assert_eq!(seed_salt("user1").len(), 32);
    }
}
