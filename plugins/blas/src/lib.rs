//! The `blas` CPU plugin: single-precision matrix multiply (`vaccel_sgemm`) on [`faer`]'s
//! matrix multiply, plus CPU implementations of `vaccel_minmax` and the four `vaccel_fpga_*`
//! array operations, so those calls compute real results without an accelerator.
//!
//! ```
//! # fn main() -> vaccel_core::Result<()> {
//! use std::sync::Arc;
//! use vaccel_core::{PluginType, Runtime, Session, SgemmArgs};
//! use vaccel_plugin_blas::BlasPlugin;
//!
//! let rt = Runtime::builder()
//!     .skip_logging()
//!     .plugin(Arc::new(BlasPlugin::new()))
//!     .build()?;
//! let sess = Session::new(&rt, PluginType::CPU.bits())?;
//! // [1 2; 3 4] x [5 6; 7 8]
//! let (a, b) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
//! let mut c = [0.0f32; 4];
//! let args = SgemmArgs {
//!     m: 2, n: 2, k: 2, alpha: 1.0, a: &a, lda: 2, b: &b, ldb: 2, beta: 0.0, ldc: 2,
//! };
//! sess.sgemm(&args, &mut c)?;
//! assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
//! # Ok(()) }
//! ```
//!
//! # Semantics
//!
//! * **`sgemm`**: `C = alpha * A x B + beta * C` with every matrix row-major: `A` is `m x k`
//!   with row stride `lda`, `B` is `k x n` with row stride `ldb`, `C` is `m x n` with row stride
//!   `ldc` (the `CblasRowMajor, CblasNoTrans, CblasNoTrans` case of `cblas_sgemm`). Elements of
//!   `C` between `n` and `ldc` are never touched. As in reference BLAS, `beta == 0` means `C` is
//!   not read (NaN or infinity already in `C` does not reach the result), and `alpha == 0` or
//!   `k == 0` means `A` and `B` are not read (`C = beta * C`).
//! * **`minmax`**: `outdata[i] = indata[i]` clamped to `[low_threshold, high_threshold]` for
//!   every input `i`; the result is `(min, max)` of those clamped values. A NaN input is copied
//!   as NaN and ignored by min/max (both are NaN only when every input is NaN). `EINVAL` when
//!   `low_threshold > high_threshold`. Output elements past `indata.len()` are untouched.
//! * **`fpga_arraycopy`**: `out[i] = a[i]` for `i < a.len()`.
//! * **`fpga_vadd`**: `c[i] = a[i] + b[i]` for `i < a.len()` (upstream's `len_a`).
//! * **`fpga_parallel`**: `add[i] = a[i] + b[i]` and `mult[i] = a[i] * b[i]` for `i < a.len()`.
//! * **`fpga_mmult`**: `a` and `b` are square `n x n` row-major matrices with
//!   `n = sqrt(a.len())`, and `c = a x b` (the first `n * n` elements of `b` and `c`);
//!   `EINVAL` when `a.len()` is not a perfect square.
//!
//! # Threads
//!
//! How one product is spread depends on its work `m * n * k`: below 2^21 (128^3) it stays
//! on the calling thread; up to 2^29 (about 810^3) `C` is cut into one band of rows per
//! thread (of columns when `C` is wider than tall), the calling thread computing the last
//! band while rayon's pool runs the others; larger products go to faer's parallel kernel,
//! which packs `B` once for all its threads. [`BlasPlugin::new`] uses as many threads as the
//! current rayon pool has (the global pool, unless called from inside another);
//! [`BlasPlugin::with_threads`]`(n)` uses `n`, `1` meaning the calling thread only. The
//! plugin starts no threads of its own.
//!
//! Measured with `benches/sgemm.rs` on the 2-vCPU development VM (AMD EPYC, Zen 4 with
//! AVX-512) beside OpenBLAS 0.3.21 in the same runs, GFLOP/s at 256 / 1024 / 2048 over nine
//! runs: both threads 153-195 / 170-204 / 182-212 (OpenBLAS 108-172 / 147-195 / 154-195; one
//! run dropped to 106 at 256), one thread 108-112 / 99-106 / 85-104; pinned to one CPU mostly
//! 92-112 (twice 77-79 at 1024, a dip the old code showed there too) where OpenBLAS got
//! 87-101. faer's AVX-512 kernel is what holds one thread up at 1024 and 2048: the `gemm` 0.19
//! crate used before got 66-94 there in the same period (105 at best in scratch runs), and
//! neither its `x86-v4` (AVX-512) feature nor forcing it to pack `B` changed that (Zen 4 runs
//! a 512-bit FMA as two 256-bit halves, so wider registers alone buy little). The thresholds
//! come from scratch runs of three ways to use two threads, as medians of repeated runs: at 256
//! bands with the caller computing one reached 171-190, bands run wholly on the pool (the
//! caller asleep) 167-183, faer's parallel kernel 145-162; at 1024 faer's kernel reached
//! 190-197 and the bands 164-180. A dedicated pool instead of rayon's global one made no
//! measurable difference.
//!
//! # Unsafe
//!
//! None: faer takes the operands as slice-backed matrix views (`MatRef`/`MatMut`), whose
//! constructors check what [`SgemmArgs::validate`] has already checked.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod matmul;

use std::sync::Arc;

use vaccel_core::plugin::{Plugin, PluginInfo, SgemmArgs};
use vaccel_core::{
    BundledPlugin, Error, OpSet, OpType, PluginType, Result, Session, VACCEL_VERSION,
};

/// The operations this plugin implements.
pub const OPS: [OpType; 6] = [
    OpType::BlasSgemm,
    OpType::Minmax,
    OpType::FpgaArraycopy,
    OpType::FpgaMmult,
    OpType::FpgaParallel,
    OpType::FpgaVectoradd,
];

/// The blas plugin: name `blas`, type `CPU | SOFTWARE`, the ops in [`OPS`].
#[derive(Debug, Clone)]
pub struct BlasPlugin {
    info: PluginInfo,
    /// Threads one product may use: `0` = the whole rayon pool, `1` = the calling thread.
    threads: usize,
}

impl Default for BlasPlugin {
    fn default() -> Self {
        BlasPlugin::new()
    }
}

impl BlasPlugin {
    /// The plugin, multiplying on every thread of the current rayon pool.
    pub fn new() -> Self {
        BlasPlugin::with_threads(0)
    }

    /// The plugin with a fixed thread count per product: `0` = every thread of the current
    /// rayon pool, `1` = the calling thread only, `n` = the calling thread and rayon's pool
    /// sharing `n` parts of the product (products too small to be worth it use fewer).
    pub fn with_threads(threads: usize) -> Self {
        BlasPlugin {
            info: PluginInfo::new(
                "blas",
                VACCEL_VERSION,
                PluginType::CPU | PluginType::SOFTWARE,
            ),
            threads,
        }
    }
}

/// The descriptor the `vaccel` facade registers, so `VACCEL_PLUGINS=blas` selects this plugin.
pub fn bundled() -> BundledPlugin {
    BundledPlugin {
        name: "blas",
        create: |_| Ok(Arc::new(BlasPlugin::new())),
    }
}

/// The side of the square matrix that has `len` elements, if there is one.
fn square_side(len: usize) -> Option<usize> {
    // The float estimate is exact enough to land within one of the root; fix it up exactly.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let guess = (len as f64).sqrt() as usize;
    (guess.saturating_sub(1)..=guess.saturating_add(1)).find(|s| s.checked_mul(*s) == Some(len))
}

impl Plugin for BlasPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        OpSet::of(&OPS)
    }

    fn sgemm(&self, _sess: &Session, args: &SgemmArgs<'_>, c: &mut [f32]) -> Result<()> {
        log::debug!(
            "[blas] sgemm m={} n={} k={} lda={} ldb={} ldc={}",
            args.m,
            args.n,
            args.k,
            args.lda,
            args.ldb,
            args.ldc
        );
        matmul::sgemm(args, c, self.threads)
    }

    fn minmax(
        &self,
        _sess: &Session,
        indata: &[f64],
        low_threshold: i32,
        high_threshold: i32,
        outdata: &mut [f64],
    ) -> Result<(f64, f64)> {
        log::debug!(
            "[blas] minmax ndata={} low={low_threshold} high={high_threshold}",
            indata.len()
        );
        if low_threshold > high_threshold {
            return Err(Error::invalid(format!(
                "minmax: low threshold {low_threshold} above high threshold {high_threshold}"
            )));
        }
        if outdata.len() < indata.len() {
            return Err(Error::invalid("minmax: output shorter than input"));
        }
        let (low, high) = (f64::from(low_threshold), f64::from(high_threshold));
        let (mut min, mut max) = (f64::NAN, f64::NAN);
        for (out, &x) in outdata.iter_mut().zip(indata) {
            // `f64::clamp` keeps NaN; `f64::min`/`max` skip it.
            let v = x.clamp(low, high);
            *out = v;
            min = min.min(v);
            max = max.max(v);
        }
        Ok((min, max))
    }

    fn fpga_arraycopy(&self, _sess: &Session, a: &[i32], out: &mut [i32]) -> Result<()> {
        log::debug!("[blas] fpga_arraycopy len={}", a.len());
        let out = out
            .get_mut(..a.len())
            .ok_or_else(|| Error::invalid("fpga_arraycopy: output shorter than input"))?;
        out.copy_from_slice(a);
        Ok(())
    }

    fn fpga_mmult(&self, _sess: &Session, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
        log::debug!("[blas] fpga_mmult len={}", a.len());
        let n = square_side(a.len()).ok_or_else(|| {
            Error::invalid(format!(
                "fpga_mmult: {} elements are not a square matrix",
                a.len()
            ))
        })?;
        let side = i64::try_from(n).map_err(|_| Error::invalid("fpga_mmult: matrix too large"))?;
        let args = SgemmArgs {
            m: side,
            n: side,
            k: side,
            alpha: 1.0,
            a,
            lda: side,
            b,
            ldb: side,
            beta: 0.0,
            ldc: side,
        };
        matmul::sgemm(&args, c, self.threads)
    }

    fn fpga_parallel(
        &self,
        _sess: &Session,
        a: &[f32],
        b: &[f32],
        add_out: &mut [f32],
        mult_out: &mut [f32],
    ) -> Result<()> {
        log::debug!("[blas] fpga_parallel len={}", a.len());
        if b.len() < a.len() || add_out.len() < a.len() || mult_out.len() < a.len() {
            return Err(Error::invalid(
                "fpga_parallel: an operand is shorter than a",
            ));
        }
        for (((add, mult), &x), &y) in add_out.iter_mut().zip(mult_out.iter_mut()).zip(a).zip(b) {
            *add = x + y;
            *mult = x * y;
        }
        Ok(())
    }

    fn fpga_vadd(&self, _sess: &Session, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
        log::debug!("[blas] fpga_vadd len={}", a.len());
        if b.len() < a.len() || c.len() < a.len() {
            return Err(Error::invalid("fpga_vadd: b or c shorter than a"));
        }
        for ((out, &x), &y) in c.iter_mut().zip(a).zip(b) {
            *out = x + y;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_side_finds_exact_roots_only() {
        assert_eq!(square_side(0), Some(0));
        assert_eq!(square_side(1), Some(1));
        assert_eq!(square_side(4), Some(2));
        assert_eq!(square_side(1 << 40), Some(1 << 20));
        assert_eq!(square_side(2), None);
        assert_eq!(square_side(15), None);
        assert_eq!(square_side((1 << 20) * (1 << 20) - 1), None);
        assert_eq!(square_side(usize::MAX), None);
    }
}
