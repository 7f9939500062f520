//! The `blas` CPU plugin: single-precision matrix multiply (`vaccel_sgemm`) on the pure-Rust
//! [`gemm`] kernels, plus CPU implementations of `vaccel_minmax` and the four `vaccel_fpga_*`
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
//! [`BlasPlugin::new`] runs large products on every core of rayon's global pool (small ones
//! stay on the calling thread: `gemm` applies its own work threshold);
//! [`BlasPlugin::with_threads`] picks a fixed count, `1` meaning the calling thread only.
//! On the 2-vCPU development VM `benches/sgemm.rs` measured both within noise of each other
//! (about 80-100 GFLOP/s at 256-2048, level with OpenBLAS; the second vCPU adds little), so
//! the default keeps rayon, which scales on hosts with real cores; see `BENCHMARKS.md`.
//!
//! # Unsafe
//!
//! `gemm::gemm` takes raw pointers and strides; its one call sits in [`gemm_rows`], after the
//! operands have been checked against their slices with [`SgemmArgs::validate`].
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::sync::Arc;

use gemm::Parallelism;
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
    parallelism: Parallelism,
}

impl Default for BlasPlugin {
    fn default() -> Self {
        BlasPlugin::new()
    }
}

impl BlasPlugin {
    /// The plugin, multiplying on all cores of rayon's global pool.
    pub fn new() -> Self {
        BlasPlugin::with_threads(0)
    }

    /// The plugin with a fixed thread count: `0` = every core of rayon's global pool, `1` = the
    /// calling thread only.
    pub fn with_threads(threads: usize) -> Self {
        let parallelism = match threads {
            1 => Parallelism::None,
            n => Parallelism::Rayon(n),
        };
        BlasPlugin {
            info: PluginInfo::new(
                "blas",
                VACCEL_VERSION,
                PluginType::CPU | PluginType::SOFTWARE,
            ),
            parallelism,
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

/// A validated dimension or stride as `usize` (validation guarantees it is non-negative).
fn dim(v: i64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::invalid("sgemm: negative dimension"))
}

/// A stride as the `isize` `gemm` takes. Validated strides index into a slice, whose length
/// never exceeds `isize::MAX`, but a zero-row matrix may carry any stride.
fn stride(v: usize) -> Result<isize> {
    isize::try_from(v).map_err(|_| Error::invalid("sgemm: leading dimension too large"))
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
fn gemm_rows(args: &SgemmArgs<'_>, c: &mut [f32], parallelism: Parallelism) -> Result<()> {
    args.validate(c.len())?;
    let (m, n, k) = (dim(args.m)?, dim(args.n)?, dim(args.k)?);
    let ldc = dim(args.ldc)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 || args.alpha == 0.0 {
        scale_rows(c, m, n, ldc, args.beta);
        return Ok(());
    }
    let (lda, ldb, ldc) = (
        stride(dim(args.lda)?)?,
        stride(dim(args.ldb)?)?,
        stride(ldc)?,
    );
    // `gemm` computes `dst = alpha * dst + beta * lhs x rhs`: its alpha is our beta and its
    // beta our alpha. With `read_dst == false` it overwrites dst without reading it, which is
    // BLAS's `beta == 0` rule.
    let read_dst = args.beta != 0.0;
    #[allow(unsafe_code)]
    // SAFETY: `validate` checked that `a` holds `(m-1)*lda + k` elements with `lda >= k`, `b`
    // holds `(k-1)*ldb + n` with `ldb >= n`, and `c` holds `(m-1)*ldc + n` with `ldc >= n`
    // (products checked for overflow), so every element `gemm` touches, at
    // `row * ld + col` with unit column stride, lies inside its slice; m, n, k > 0 here. `c`
    // is borrowed mutably, so it aliases neither `a` nor `b`, and nothing else accesses the
    // slices until the call returns (rayon workers it spawns are joined before it returns).
    // The element type is `f32`, which `gemm` supports (it panics for other types only).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc,
            read_dst,
            args.a.as_ptr(),
            1,
            lda,
            args.b.as_ptr(),
            1,
            ldb,
            args.beta,
            args.alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
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
        gemm_rows(args, c, self.parallelism)
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
        gemm_rows(&args, c, self.parallelism)
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
