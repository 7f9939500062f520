//! Row-major `C = alpha * A x B + beta * C` on faer's matrix multiply, and how one product is
//! spread over threads (the figures behind the thresholds are in the crate docs' "Threads").

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use vaccel_core::plugin::SgemmArgs;
use vaccel_core::{Error, Result};

/// Multiply-adds (`m * n * k`) each block of a split product gets at least: 128^3 (two such
/// blocks) is where a second thread breaks even with one, below it waking that thread costs
/// more than it saves (64^3 runs 3.5x slower on two threads than on one).
const MIN_BLOCK_WORK: usize = 1 << 20;

/// From this many multiply-adds on, one product runs on faer's parallel kernel, which packs
/// `B` once for all threads; below it each thread multiplies its own block of `C` with its own
/// packed copy of `B`, which costs less to start and wins up to about 768^3.
const SHARED_PACKING_WORK: usize = 1 << 29;

/// A validated dimension or stride as `usize`.
fn dim(v: i64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::invalid("sgemm: negative dimension"))
}

/// The row stride to hand faer: a one-row matrix may carry any stride `>= cols`, and faer
/// scales strides to bytes, so give it the row length instead of a stride nothing reads.
fn row_stride(rows: usize, ld: usize, cols: usize) -> usize {
    if rows == 1 { cols } else { ld }
}

/// The `rows x cols` row-major matrix with row stride `ld` at the start of `data`, built the
/// same way as `C`'s view (see [`sgemm`]).
fn row_major(data: &[f32], rows: usize, cols: usize, ld: usize) -> MatRef<'_, f32> {
    MatRef::from_column_major_slice_with_stride(data, cols, rows, row_stride(rows, ld, cols))
        .transpose()
}

/// `C = beta * C` over the `m x n` window of `c` (row stride `ldc`), not reading `C` when
/// `beta == 0`.
fn scale_rows(c: &mut [f32], m: usize, n: usize, ldc: usize, beta: f32) {
    if beta == 1.0 {
        return;
    }
    for row in c.chunks_mut(ldc.max(1)).take(m) {
        for x in row.iter_mut().take(n) {
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
    }
}

/// Row-major `C = alpha * A x B + beta * C`, checking every operand against its slice first.
/// `threads`: `0` = every thread of the current rayon pool, `1` = the calling thread only.
pub(crate) fn sgemm(args: &SgemmArgs<'_>, c: &mut [f32], threads: usize) -> Result<()> {
    args.validate(c.len())?;
    let (m, n, k) = (dim(args.m)?, dim(args.n)?, dim(args.k)?);
    let (lda, ldb, ldc) = (dim(args.lda)?, dim(args.ldb)?, dim(args.ldc)?);
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 || args.alpha == 0.0 {
        scale_rows(c, m, n, ldc, args.beta);
        return Ok(());
    }
    // faer either overwrites C without reading it (BLAS's `beta == 0` rule) or adds to it.
    let accum = if args.beta == 0.0 {
        Accum::Replace
    } else {
        scale_rows(c, m, n, ldc, args.beta);
        Accum::Add
    };
    // `validate` checked what these constructors assert (each slice holds
    // `(rows - 1) * ld + cols` elements, `ld >= cols`), so they do not panic; m, n, k > 0.
    let a = row_major(args.a, m, k, lda);
    let b = row_major(args.b, k, n, ldb);
    // Not `MatMut::from_row_major_slice_with_stride_mut`: faer 0.24.4 builds a column-major
    // view there (unit row stride), so build the transpose's column-major view and flip it.
    let c = MatMut::from_column_major_slice_with_stride_mut(c, n, m, row_stride(m, ldc, n))
        .transpose_mut();
    let threads = match threads {
        0 => rayon::current_num_threads(),
        t => t,
    };
    multiply(c, accum, a, b, args.alpha, threads);
    Ok(())
}

/// `C = alpha * A x B (+ C)` on up to `threads` threads, as the work warrants.
fn multiply(
    c: MatMut<'_, f32>,
    accum: Accum,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    alpha: f32,
    threads: usize,
) {
    let work = c
        .nrows()
        .saturating_mul(c.ncols())
        .saturating_mul(a.ncols());
    // A band is at least one row (or column) of C.
    let blocks = threads
        .min(work / MIN_BLOCK_WORK)
        .min(c.nrows().max(c.ncols()));
    if blocks <= 1 {
        matmul(c, accum, a, b, alpha, Par::Seq);
    } else if work >= SHARED_PACKING_WORK {
        matmul(c, accum, a, b, alpha, Par::rayon(threads));
    } else if c.nrows() >= c.ncols() {
        split_rows(c, accum, a, b, alpha, blocks);
    } else {
        // Columns of C are rows of C^T = B^T x A^T; faer takes the transposed views as they are.
        split_rows(
            c.transpose_mut(),
            accum,
            b.transpose(),
            a.transpose(),
            alpha,
            blocks,
        );
    }
}

/// `C = alpha * A x B (+ C)` as `blocks` bands of C's rows, each with the matching rows of A
/// and all of B: the calling thread computes the last band while rayon runs the others, so a
/// two-thread product wakes one pool thread, not two.
fn split_rows(
    c: MatMut<'_, f32>,
    accum: Accum,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    alpha: f32,
    blocks: usize,
) {
    rayon::in_place_scope(|scope| {
        let (mut rest, mut row) = (c, 0);
        for left in (2..=blocks).rev() {
            let rows = rest.nrows() / left;
            let (band, tail) = rest.split_at_row_mut(rows);
            let a_band = a.subrows(row, rows);
            scope.spawn(move |_| matmul(band, accum, a_band, b, alpha, Par::Seq));
            (rest, row) = (tail, row + rows);
        }
        let a_band = a.subrows(row, rest.nrows());
        matmul(rest, accum, a_band, b, alpha, Par::Seq);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Element `(i, j)` of row-major `m x k` times `k x n` in f64, and the sum of its terms'
    /// magnitudes (what f32 rounding error scales with).
    fn reference(i: usize, j: usize, (n, k): (usize, usize), a: &[f32], b: &[f32]) -> (f64, f64) {
        (0..k)
            .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
            .fold((0.0, 0.0), |(sum, scale), t| (sum + t, scale + t.abs()))
    }

    fn operand(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed);
                (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Every threading path (one thread, bands of rows, bands of columns, faer's parallel
    /// kernel) against the reference, with thread counts above and below the pool's size.
    #[test]
    fn every_split_matches_the_reference() {
        let shapes = [
            (160, 150, 140),   // 3.4M: row bands
            (40, 700, 300),    // 8.4M: column bands
            (700, 4, 800),     // 2.2M: two row bands, narrow C
            (1024, 1024, 512), // SHARED_PACKING_WORK: faer's parallel kernel
            (3, 2, 1 << 19),   // 3.1M on three rows: no more bands than rows
            (90, 90, 90),      // below MIN_BLOCK_WORK: one thread
        ];
        for (m, n, k) in shapes {
            let (a, b) = (operand(m * k, 1), operand(k * n, 2));
            // For the largest shape every 11th element (11 is co-prime with its n, so every
            // row and column is still visited) keeps the f64 reference cheap.
            let step = if m * n * k > 1 << 26 { 11 } else { 1 };
            let want: Vec<_> = (0..m * n)
                .step_by(step)
                .map(|idx| (idx, reference(idx / n, idx % n, (n, k), &a, &b)))
                .collect();
            for threads in [0, 1, 2, 3, 7] {
                let mut c = vec![f32::NAN; m * n];
                let args = SgemmArgs {
                    m: m as i64,
                    n: n as i64,
                    k: k as i64,
                    alpha: 1.0,
                    a: &a,
                    lda: k as i64,
                    b: &b,
                    ldb: n as i64,
                    beta: 0.0,
                    ldc: n as i64,
                };
                sgemm(&args, &mut c, threads).unwrap();
                for &(idx, (want, scale)) in &want {
                    let got = c[idx];
                    // The textbook bound on a k-term f32 dot product: k * eps * scale.
                    assert!(
                        (f64::from(got) - want).abs() <= k as f64 * f64::from(f32::EPSILON) * scale,
                        "m={m} n={n} k={k} threads={threads}: C[{}][{}] = {got}, want {want}",
                        idx / n,
                        idx % n
                    );
                }
            }
        }
    }

    #[test]
    fn one_row_takes_any_stride() {
        let (a, b) = ([1.0, 2.0], [3.0, 4.0, 5.0, 6.0]);
        let mut c = [0.0, 0.0];
        let args = SgemmArgs {
            m: 1,
            n: 2,
            k: 2,
            alpha: 1.0,
            a: &a,
            lda: i64::MAX,
            b: &b,
            ldb: 2,
            beta: 0.0,
            ldc: i64::MAX,
        };
        sgemm(&args, &mut c, 0).unwrap();
        assert_eq!(c, [13.0, 16.0]);
    }

    #[test]
    fn scale_rows_leaves_the_padding_alone() {
        let mut c = [1.0, f32::NAN, 9.0, 2.0, f32::NAN, 9.0];
        scale_rows(&mut c, 2, 2, 3, 0.0);
        assert_eq!(c[..2], [0.0, 0.0]);
        assert_eq!(c[2], 9.0);
        assert_eq!(c[3..5], [0.0, 0.0]);
        assert_eq!(c[5], 9.0);
        let mut c = [1.0, 2.0, 9.0, 3.0];
        scale_rows(&mut c, 2, 2, 3, 2.0);
        assert_eq!(c, [2.0, 4.0, 9.0, 6.0]);
    }
}
