//! Hash maps keyed by names, with a fast non-cryptographic hash: a large simulation looks up
//! Services, Deployments, hosts and experiments by name on every reconcile, and std's SipHash
//! (built to resist chosen keys, which a local simulation never sees) costs more than the rest
//! of such a lookup. The hash is fixed, so iteration order does not vary from run to run either.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map with [`WordHasher`].
pub type Map<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// FxHash's mixing (rotate, xor, multiply), eight bytes at a time, finished with MurmurHash3's
/// 64-bit finalizer so that the low bits, which pick the bucket, depend on every input bit.
#[derive(Debug, Clone, Copy, Default)]
pub struct WordHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn similar_names_spread_over_the_buckets() {
        let build = BuildHasherDefault::<WordHasher>::default();
        // The low 10 bits pick one of 1,024 buckets: 20,000 fleet names must not crowd.
        let mut buckets = vec![0u32; 1024];
        for i in 0..10_000 {
            for v in ["v1", "v2"] {
                buckets[(build.hash_one(format!("svc-{i}-{v}")) & 1023) as usize] += 1;
            }
        }
        let fullest = *buckets.iter().max().unwrap();
        assert!(
            fullest < 40,
            "{fullest} names in one bucket of 1,024 (about 20 expected)"
        );
        assert_ne!(build.hash_one("a"), build.hash_one("a\0"));
        let mut m: Map<String, u32> = Map::default();
        m.insert("svc-1".into(), 1);
        assert_eq!(m.get("svc-1"), Some(&1));
    }
}
