//! What the in-process benches share.

use std::time::Instant;

/// Median ns per call of `f` over `rounds` timed rounds of `iters` calls, after a warm-up of
/// a tenth of a round.
pub fn measure(rounds: usize, iters: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples.get(rounds / 2).copied().unwrap_or(f64::NAN)
}
