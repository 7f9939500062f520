//! Replays the fuzz seed corpus and a few thousand random mutations of it through every
//! decoder of untrusted bytes (stable stand-in for `cargo fuzz`, which needs nightly).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/decode");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        !seeds.is_empty(),
        "seed corpus missing in {}",
        dir.display()
    );
    seeds.sort();
    seeds
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn seeds_decode_without_panicking() {
    for seed in corpus() {
        vaccel_rpc::fuzzing::decode_all(&seed);
    }
}

#[test]
fn mutations_decode_without_panicking() {
    let seeds = corpus();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..4000 {
        let mut data = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(8) {
            match rng.below(4) {
                0 if !data.is_empty() => {
                    let i = rng.below(data.len());
                    data[i] = rng.next() as u8;
                }
                1 if !data.is_empty() => {
                    let i = rng.below(data.len());
                    data.truncate(i);
                }
                2 => {
                    let i = rng.below(data.len() + 1);
                    data.insert(i, rng.next() as u8);
                }
                _ => {
                    let other = &seeds[rng.below(seeds.len())];
                    data.extend_from_slice(&other[..rng.below(other.len() + 1)]);
                }
            }
        }
        vaccel_rpc::fuzzing::decode_all(&data);
    }
}
