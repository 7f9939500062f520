//! sgemm throughput: GFLOP/s of `Session::sgemm` on the blas plugin beside OpenBLAS's
//! `cblas_sgemm`, measured in the same run on the same operands.
//!
//! OpenBLAS is loaded at run time (`libopenblas.so.0`, Debian package `libopenblas0-pthread`),
//! so the bench builds without it and prints only our figures when it is missing. Each figure
//! is the median of several timed rounds of `C = A x B` (row-major, square, beta = 0), after a
//! warm-up call. Run with `cargo bench -p vaccel-plugin-blas --bench sgemm`; pin with
//! `taskset -c 0` to compare single-core kernels (both libraries then use one thread).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

use std::ffi::c_int;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vaccel_core::{PluginType, Runtime, Session, SgemmArgs};
use vaccel_plugin_blas::BlasPlugin;

const SIZES: [usize; 3] = [256, 1024, 2048];
const ROUNDS: usize = 5;
/// A round repeats the call until it has run at least this long.
const ROUND_TIME: Duration = Duration::from_millis(300);

/// `cblas.h`: `CblasRowMajor`, `CblasNoTrans`.
const CBLAS_ROW_MAJOR: c_int = 101;
const CBLAS_NO_TRANS: c_int = 111;

/// `cblas_sgemm` with OpenBLAS's default 32-bit `blasint`.
type CblasSgemm = unsafe extern "C" fn(
    order: c_int,
    trans_a: c_int,
    trans_b: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: f32,
    a: *const f32,
    lda: c_int,
    b: *const f32,
    ldb: c_int,
    beta: f32,
    c: *mut f32,
    ldc: c_int,
);

/// OpenBLAS, kept loaded for as long as its function pointer is used.
struct OpenBlas {
    _lib: libloading::Library,
    sgemm: CblasSgemm,
}

impl OpenBlas {
    fn load() -> Result<OpenBlas, libloading::Error> {
        // SAFETY: loading OpenBLAS runs its initialisers (thread pool setup, CPU detection),
        // which have no preconditions on this process.
        let lib = unsafe { libloading::Library::new("libopenblas.so.0") }?;
        // SAFETY: `cblas_sgemm` in libopenblas.so.0 has the C signature `CblasSgemm` spells
        // (cblas.h, 32-bit blasint: Debian's libopenblas0 is the LP64 build); the pointer is
        // used only while `_lib` keeps the library mapped.
        let sgemm = unsafe { lib.get::<CblasSgemm>(b"cblas_sgemm\0") }.map(|f| *f)?;
        Ok(OpenBlas { _lib: lib, sgemm })
    }

    /// Row-major square `C = A x B`.
    fn square(&self, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        assert!(a.len() >= n * n && b.len() >= n * n && c.len() >= n * n);
        let n = c_int::try_from(n).unwrap();
        // SAFETY: `a`, `b` and `c` each hold n*n elements (asserted above), which is what an
        // n x n row-major operand with leading dimension n needs; `c` is a unique borrow, so
        // it aliases neither input; OpenBLAS joins its worker threads before returning.
        unsafe {
            (self.sgemm)(
                CBLAS_ROW_MAJOR,
                CBLAS_NO_TRANS,
                CBLAS_NO_TRANS,
                n,
                n,
                n,
                1.0,
                a.as_ptr(),
                n,
                b.as_ptr(),
                n,
                0.0,
                c.as_mut_ptr(),
                n,
            );
        }
    }
}

/// Median GFLOP/s of `f`, one call being a `n x n x n` product.
fn gflops(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let flop = 2.0 * (n as f64).powi(3);
    let mut samples: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            let mut calls = 0u32;
            while t.elapsed() < ROUND_TIME {
                f();
                calls += 1;
            }
            flop * f64::from(calls) / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[ROUNDS / 2]
}

/// Deterministic operands in [-1, 1) (xorshift), the same for both libraries.
fn operand(len: usize, mut seed: u64) -> Vec<f32> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn session(rt: &Runtime) -> Arc<Session> {
    Session::new(rt, PluginType::CPU.bits()).unwrap()
}

fn runtime(dir: &std::path::Path, plugin: BlasPlugin) -> Runtime {
    Runtime::builder()
        .rundir_base(dir)
        .skip_logging()
        .plugin(Arc::new(plugin))
        .build()
        .unwrap()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir.path().join("all"), BlasPlugin::new());
    let rt_one = runtime(&dir.path().join("one"), BlasPlugin::with_threads(1));
    let (sess, sess_one) = (session(&rt), session(&rt_one));
    let openblas = match OpenBlas::load() {
        Ok(lib) => Some(lib),
        Err(e) => {
            println!(
                "OpenBLAS not measured: {e}. Install it with \
                 `apt-get install libopenblas0-pthread` (Debian/Ubuntu) to get the baseline.\n"
            );
            None
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("sgemm, row-major square C = A x B, {cpus} CPU(s) available to this process\n");
    println!(
        "| size | ours GFLOP/s (all threads) | ours GFLOP/s (1 thread) | OpenBLAS GFLOP/s | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for n in SIZES {
        let (a, b) = (operand(n * n, 1), operand(n * n, 2));
        let mut c = vec![0f32; n * n];
        let side = i64::try_from(n).unwrap();
        let args = SgemmArgs {
            m: side,
            n: side,
            k: side,
            alpha: 1.0,
            a: &a,
            lda: side,
            b: &b,
            ldb: side,
            beta: 0.0,
            ldc: side,
        };
        let ours = gflops(n, || {
            sess.sgemm(black_box(&args), &mut c).unwrap();
        });
        let ours_one = gflops(n, || {
            sess_one.sgemm(black_box(&args), &mut c).unwrap();
        });
        let mut c_ref = vec![0f32; n * n];
        let theirs = openblas.as_ref().map(|lib| {
            let g = gflops(n, || lib.square(n, black_box(&a), &b, &mut c_ref));
            // Same operands, same result (up to f32 summation order).
            sess.sgemm(&args, &mut c).unwrap();
            let worst = c
                .iter()
                .zip(&c_ref)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-2, "ours and OpenBLAS differ by {worst} at n={n}");
            g
        });
        let (theirs_s, ratio_s) = match theirs {
            Some(t) => (format!("{t:.1}"), format!("{:.2}", ours / t)),
            None => ("n/a".to_owned(), "n/a".to_owned()),
        };
        println!("| {n} | {ours:.1} | {ours_one:.1} | {theirs_s} | {ratio_s} |");
    }
}
