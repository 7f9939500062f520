//! Replays the `images` fuzz seed corpus and thousands of mutations of it (and of the real
//! fixture images) through the image decoder and the detections parser: every input gives a
//! result or a typed error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join("fuzz/corpus/images"))
        .expect("seed corpus fuzz/corpus/images")
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.push(std::fs::read(root.join("fixtures/images/chelsea.jpg")).unwrap());
    assert!(seeds.len() >= 4, "seed corpus incomplete");
    seeds
}

/// A small deterministic generator (xorshift64*).
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

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    match rng.below(4) {
        0 => {
            // Flip a few bytes.
            for _ in 0..=rng.below(8) {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] ^= (rng.next() as u8) | 1;
                }
            }
        }
        1 => v.truncate(rng.below(v.len() + 1)),
        2 => {
            // Large dimensions in a PNG header or a JPEG frame are the interesting bytes.
            let i = rng.below(v.len().min(64));
            for b in v.iter_mut().skip(i).take(4) {
                *b = 0xff;
            }
        }
        _ => {
            let extra = rng.below(64);
            v.extend((0..extra).map(|_| rng.next() as u8));
        }
    }
    v
}

#[test]
fn seeds_decode_and_mutations_never_panic() {
    let seeds = corpus();
    let decoded = seeds
        .iter()
        .filter(|s| vaccel_vision::codec::decode(s).is_ok())
        .count();
    assert!(decoded >= 3, "the image seeds should decode");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // The real photo (last) is slow to decode in debug builds: fewer rounds on it.
    let (small, photo) = seeds.split_at(seeds.len() - 1);
    for _ in 0..60 {
        let input = mutate(&photo[0], &mut rng);
        let _ = vaccel_vision::codec::decode(&input);
    }
    for _ in 0..3000 {
        let seed = &small[rng.below(small.len())];
        let input = mutate(seed, &mut rng);
        let _ = vaccel_vision::codec::decode(&input);
        let _ = vaccel_core::detection::decode(&input);
    }
}
