//! The hash function of the hot maps: the span store's interner, trace and
//! service indexes and operation counts, and the derived metrics' series
//! and pending service-graph edges.
//!
//! std's SipHash was the largest single cost of storing a span after the
//! compact encoding removed the allocations: every span hashes its name,
//! ten attribute keys and their values, its trace id and its service. This
//! is the Fx hash (rustc's, as in the `rustc-hash` crate), a multiply and
//! rotate per word; written out here because the crate is not among the
//! workspace's dependencies.
//!
//! Byte strings (span names, attribute keys and values, ids) are mixed
//! with a folded multiply per word instead (the full 128-bit product, its
//! halves xor-ed: as in foldhash and rustc-hash 2's string hash). The plain
//! multiply only carries bits upward, so two strings differing in the top
//! byte of their last word (`/api/products/12` and `/api/products/13`)
//! differed only in bits hashbrown does not look at, and collided: the
//! interner spent more time comparing strings than hashing them.
//!
//! Trade-off: Fx is not keyed, so a sender that crafts colliding strings or
//! trace ids can make those maps slow (never wrong). Every sender here is
//! one of the lab's own processes, and the maps are bounded by the store's
//! capacity, so speed wins.

use std::hash::{BuildHasherDefault, Hasher};

/// `HashMap<K, V, FastHash>`.
pub type FastHash = BuildHasherDefault<FxHasher>;

const SEED: u64 = 0xf135_7aea_2e62_a9c5;

#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = self.hash.wrapping_add(word).wrapping_mul(SEED);
    }

    fn mix(&mut self, word: u64) {
        let product = u128::from(self.hash ^ word) * u128::from(SEED);
        self.hash = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.mix(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The multiply leaves the best bits at the top; hashbrown takes its
    /// bucket from the low bits, so rotate them down.
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher as _;

    use super::*;

    #[test]
    fn distinguishes_short_keys_and_lengths() {
        let h = |s: &str| FastHash::default().hash_one(s);
        assert_ne!(h("a"), h("b"));
        assert_ne!(h("GET"), h("GET\0"));
        assert_ne!(h("http.route"), h("http.routf"));
        assert_eq!(h("cart"), h("cart"));
    }

    #[test]
    fn strings_differing_in_a_words_top_byte_spread_over_buckets() {
        // Byte 15 is the top byte of the second word; a 4096-bucket table
        // indexes by the low 12 bits.
        let buckets: std::collections::HashSet<u64> = (0..=255u8)
            .map(|last| {
                let mut key = *b"/api/products/1x";
                key[15] = last;
                FastHash::default().hash_one(key.as_slice()) & 0xfff
            })
            .collect();
        assert!(buckets.len() > 200, "{} distinct buckets", buckets.len());
    }
}
