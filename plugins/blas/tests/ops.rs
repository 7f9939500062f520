//! Every operation of the blas plugin through a real runtime: `Session::sgemm` against a
//! float64 reference over many shapes, strides and scalings, the same through
//! `Session::genop`'s BLAS_SGEMM layout, and minmax and the fpga ops typed and via genop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use tempfile::TempDir;
use vaccel_core::{
    Arg, ErrorCode, OpType, PluginType, Runtime, Session, SgemmArgs, VACCEL_VERSION,
};
use vaccel_plugin_blas::{BlasPlugin, OPS};

// ---------------------------------------------------------------------------------------------
// Fixture and helpers.

/// A runtime with only the blas plugin, its run directory in a temp dir.
struct Fx {
    rt: Runtime,
    _dir: TempDir,
}

impl Fx {
    fn with(plugin: BlasPlugin) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::builder()
            .rundir_base(dir.path().join("run"))
            .skip_logging()
            .plugin(Arc::new(plugin))
            .build()
            .unwrap();
        Fx { rt, _dir: dir }
    }

    fn new() -> Fx {
        Fx::with(BlasPlugin::new())
    }

    fn session(&self) -> Arc<Session> {
        Session::new(&self.rt, PluginType::CPU.bits()).unwrap()
    }
}

fn op(op: OpType) -> Arg<'static> {
    Arg::scalar(op.value())
}

fn code<T: std::fmt::Debug>(r: vaccel_core::Result<T>) -> ErrorCode {
    r.unwrap_err().code()
}

/// Seeded xorshift64*: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.f32()).collect()
    }
}

/// One sgemm problem: operands with their strides and the initial C.
#[derive(Debug, Clone)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldb: usize,
    ldc: usize,
    alpha: f32,
    beta: f32,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

/// Elements a row-major `rows x cols` matrix with stride `ld` needs (BLAS's minimum).
fn needed(rows: usize, ld: usize, cols: usize) -> usize {
    if rows == 0 { 0 } else { (rows - 1) * ld + cols }
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    fn random(
        rng: &mut Rng,
        (m, n, k): (usize, usize, usize),
        (pa, pb, pc): (usize, usize, usize),
        alpha: f32,
        beta: f32,
    ) -> Case {
        let (lda, ldb, ldc) = (k.max(1) + pa, n.max(1) + pb, n.max(1) + pc);
        Case {
            m,
            n,
            k,
            lda,
            ldb,
            ldc,
            alpha,
            beta,
            a: rng.vec(needed(m, lda, k)),
            b: rng.vec(needed(k, ldb, n)),
            c: rng.vec(needed(m, ldc, n)),
        }
    }

    fn args(&self) -> SgemmArgs<'_> {
        SgemmArgs {
            m: self.m as i64,
            n: self.n as i64,
            k: self.k as i64,
            alpha: self.alpha,
            a: &self.a,
            lda: self.lda as i64,
            b: &self.b,
            ldb: self.ldb as i64,
            beta: self.beta,
            ldc: self.ldc as i64,
        }
    }

    /// The float64 reference result, with BLAS's rules: beta == 0 does not read C, and
    /// alpha == 0 does not read A or B.
    fn reference(&self) -> Vec<f64> {
        let mut out: Vec<f64> = self.c.iter().map(|&x| f64::from(x)).collect();
        for i in 0..self.m {
            for j in 0..self.n {
                let mut dot = 0f64;
                if self.alpha != 0.0 {
                    for p in 0..self.k {
                        dot += f64::from(self.a[i * self.lda + p])
                            * f64::from(self.b[p * self.ldb + j]);
                    }
                }
                let old = f64::from(self.c[i * self.ldc + j]);
                let scaled = if self.beta == 0.0 {
                    0.0
                } else {
                    f64::from(self.beta) * old
                };
                out[i * self.ldc + j] = f64::from(self.alpha) * dot + scaled;
            }
        }
        out
    }

    /// Checks `got` against the reference: relative error 1e-4 of the magnitude the terms
    /// could reach (|alpha| * sum |a||b| + |beta||c|), and padding columns untouched.
    #[track_caller]
    fn check(&self, got: &[f32]) {
        let want = self.reference();
        assert_eq!(got.len(), want.len());
        for i in 0..self.m {
            for j in 0..self.ldc {
                let idx = i * self.ldc + j;
                if idx >= got.len() {
                    break;
                }
                if j >= self.n {
                    assert_eq!(
                        got[idx].to_bits(),
                        self.c[idx].to_bits(),
                        "padding C[{i}][{j}] changed in {self:?}"
                    );
                    continue;
                }
                let mut scale = if self.beta == 0.0 {
                    0.0
                } else {
                    f64::from(self.beta.abs()) * f64::from(self.c[idx].abs())
                };
                for p in 0..self.k {
                    scale += f64::from(self.alpha.abs())
                        * f64::from(self.a[i * self.lda + p].abs())
                        * f64::from(self.b[p * self.ldb + j].abs());
                }
                let err = (f64::from(got[idx]) - want[idx]).abs();
                assert!(
                    err <= 1e-4 * scale.max(1e-30) + 1e-30,
                    "C[{i}][{j}] = {} want {} (err {err:e}, scale {scale:e}) for m={} n={} k={} \
                     lda={} ldb={} ldc={} alpha={} beta={}",
                    got[idx],
                    want[idx],
                    self.m,
                    self.n,
                    self.k,
                    self.lda,
                    self.ldb,
                    self.ldc,
                    self.alpha,
                    self.beta
                );
            }
        }
    }

    fn run_typed(&self, sess: &Session) -> Vec<f32> {
        let mut c = self.c.clone();
        sess.sgemm(&self.args(), &mut c).unwrap();
        c
    }

    fn run_genop(&self, sess: &Session) -> Vec<f32> {
        let mut c = self.c.clone();
        // An `Arg` array cannot be empty; an operand with no elements (k == 0) travels as one
        // unused element, which still satisfies the length checks.
        let pad = |v: &[f32]| if v.is_empty() { vec![0.0] } else { v.to_vec() };
        let (a, b) = (pad(&self.a), pad(&self.b));
        let read = [
            op(OpType::BlasSgemm),
            Arg::scalar(self.m as i64),
            Arg::scalar(self.n as i64),
            Arg::scalar(self.k as i64),
            Arg::scalar(self.alpha),
            Arg::array(&a).unwrap(),
            Arg::scalar(self.lda as i64),
            Arg::array(&b).unwrap(),
            Arg::scalar(self.ldb as i64),
            Arg::scalar(self.beta),
            Arg::scalar(self.ldc as i64),
        ];
        // An empty FLOAT32_ARRAY is not an array `Arg` accepts; C has no elements only when
        // m == 0, and then nothing is written.
        if c.is_empty() {
            return c;
        }
        sess.genop(&read, &mut [Arg::out_array(&mut c).unwrap()])
            .unwrap();
        c
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (2, 3, 4),
    (3, 2, 1),
    (1, 17, 9),
    (17, 1, 9),
    (9, 17, 1),
    (7, 5, 33),
    (16, 16, 16),
    (31, 33, 35),
    (64, 48, 80),
    (65, 129, 67),
    (128, 7, 200),
    (5, 300, 11),
    (130, 70, 150),
];

const PADS: &[(usize, usize, usize)] = &[(0, 0, 0), (3, 0, 0), (0, 5, 0), (0, 0, 2), (7, 1, 4)];

const SCALINGS: &[(f32, f32)] = &[
    (1.0, 0.0),
    (1.0, 1.0),
    (2.5, -0.5),
    (-1.0, 2.0),
    (0.0, 3.0),
    (0.0, 0.0),
    (0.75, 0.0),
];

fn all_cases(seed: u64) -> Vec<Case> {
    let mut rng = Rng(seed);
    let mut cases = Vec::new();
    for &shape in SHAPES {
        for &pads in PADS {
            for &(alpha, beta) in SCALINGS {
                cases.push(Case::random(&mut rng, shape, pads, alpha, beta));
            }
        }
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// Plugin descriptor and selection.

#[test]
fn plugin_descriptor() {
    let fx = Fx::new();
    let sess = fx.session();
    let plugin = sess.plugin();
    let info = plugin.info();
    assert_eq!(info.name, "blas");
    assert_eq!(info.version, VACCEL_VERSION);
    assert_eq!(info.plugin_type, PluginType::CPU | PluginType::SOFTWARE);
    assert!(!info.remote);
    for o in OPS {
        assert!(plugin.ops().contains(o), "{o:?}");
    }
    assert!(!plugin.ops().contains(OpType::Noop));
    assert_eq!(code(sess.noop()), ErrorCode::ENOTSUP);
}

// ---------------------------------------------------------------------------------------------
// sgemm.

#[test]
fn sgemm_matches_f64_reference_over_shapes_strides_and_scalings() {
    let fx = Fx::new();
    let sess = fx.session();
    for case in all_cases(0x9E37_79B9_7F4A_7C15) {
        case.check(&case.run_typed(&sess));
    }
}

#[test]
fn sgemm_single_threaded_matches_reference() {
    let fx = Fx::with(BlasPlugin::with_threads(1));
    let sess = fx.session();
    for case in all_cases(42).into_iter().step_by(3) {
        case.check(&case.run_typed(&sess));
    }
}

#[test]
fn sgemm_genop_layout_matches_reference() {
    let fx = Fx::new();
    let sess = fx.session();
    for case in all_cases(7).into_iter().step_by(2) {
        case.check(&case.run_genop(&sess));
    }
}

#[test]
fn sgemm_large_square_matches_reference() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut rng = Rng(3);
    let case = Case::random(&mut rng, (300, 300, 300), (0, 0, 0), 1.0, 0.0);
    case.check(&case.run_typed(&sess));
}

#[test]
fn sgemm_with_zero_dimensions_touches_nothing_or_scales() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut rng = Rng(11);
    // m == 0 or n == 0: nothing to compute; C (here the padding-only rows) stays as it was.
    for shape in [(0, 4, 3), (4, 0, 3), (0, 0, 0), (0, 3, 0)] {
        let case = Case::random(&mut rng, shape, (0, 0, 2), 2.0, 3.0);
        let got = case.run_typed(&sess);
        assert_eq!(got, case.c, "{shape:?}");
    }
    // k == 0: C = beta * C, A and B unread.
    for beta in [0.0, 1.0, -2.0] {
        let case = Case::random(&mut rng, (3, 4, 0), (0, 0, 1), 5.0, beta);
        case.check(&case.run_typed(&sess));
        case.check(&case.run_genop(&sess));
    }
}

#[test]
fn sgemm_beta_zero_does_not_propagate_nan_or_inf_in_c() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut rng = Rng(5);
    for shape in [(1, 1, 1), (4, 5, 6), (70, 90, 50), (3, 4, 0)] {
        for alpha in [1.0, 0.0, -3.0] {
            let mut case = Case::random(&mut rng, shape, (0, 0, 3), alpha, 0.0);
            for (i, x) in case.c.iter_mut().enumerate() {
                *x = if i % 2 == 0 { f32::NAN } else { f32::INFINITY };
            }
            let got = case.run_typed(&sess);
            for i in 0..case.m {
                for j in 0..case.n {
                    assert!(got[i * case.ldc + j].is_finite(), "{shape:?} alpha={alpha}");
                }
            }
            case.check(&got);
        }
    }
}

#[test]
fn sgemm_alpha_zero_does_not_read_a_or_b() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut rng = Rng(6);
    let mut case = Case::random(&mut rng, (6, 7, 8), (1, 1, 1), 0.0, 2.0);
    case.a.iter_mut().for_each(|x| *x = f32::NAN);
    case.b.iter_mut().for_each(|x| *x = f32::INFINITY);
    let got = case.run_typed(&sess);
    for i in 0..case.m {
        for j in 0..case.n {
            assert_eq!(got[i * case.ldc + j], 2.0 * case.c[i * case.ldc + j]);
        }
    }
}

#[test]
fn sgemm_rejects_bad_operands() {
    let fx = Fx::new();
    let sess = fx.session();
    let a = [1.0f32; 6];
    let b = [1.0f32; 6];
    let args = SgemmArgs {
        m: 2,
        n: 3,
        k: 3,
        alpha: 1.0,
        a: &a,
        lda: 3,
        b: &b,
        ldb: 3,
        beta: 0.0,
        ldc: 3,
    };
    let mut c = [0f32; 6];
    // B holds only 2 of its 3 rows.
    assert_eq!(code(sess.sgemm(&args, &mut c)), ErrorCode::EINVAL);
    let args = SgemmArgs { k: 2, ..args };
    sess.sgemm(&args, &mut c).unwrap();
    assert_eq!(c, [2.0; 6]);
    assert_eq!(code(sess.sgemm(&args, &mut c[..5])), ErrorCode::EINVAL);
    assert_eq!(
        code(sess.sgemm(&SgemmArgs { lda: 1, ..args }, &mut c)),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.sgemm(&SgemmArgs { n: -1, ..args }, &mut c)),
        ErrorCode::EINVAL
    );
}

#[test]
fn sgemm_genop_rejects_wrong_layouts() {
    let fx = Fx::new();
    let sess = fx.session();
    let a = [1.0f32; 4];
    let mut c = [0f32; 4];
    let read = |lda: i64| {
        vec![
            op(OpType::BlasSgemm),
            Arg::scalar(2i64),
            Arg::scalar(2i64),
            Arg::scalar(2i64),
            Arg::scalar(1.0f32),
            Arg::array(&a).unwrap(),
            Arg::scalar(lda),
            Arg::array(&a).unwrap(),
            Arg::scalar(2i64),
            Arg::scalar(0.0f32),
            Arg::scalar(2i64),
        ]
    };
    sess.genop(&read(2), &mut [Arg::out_array(&mut c).unwrap()])
        .unwrap();
    assert_eq!(c, [2.0; 4]);
    assert_eq!(
        code(sess.genop(&read(1), &mut [Arg::out_array(&mut c).unwrap()])),
        ErrorCode::EINVAL
    );
    // Missing the write argument, and a write argument of the wrong type.
    assert_eq!(code(sess.genop(&read(2), &mut [])), ErrorCode::EINVAL);
    let mut wrong = [0f64; 4];
    assert_eq!(
        code(sess.genop(&read(2), &mut [Arg::out_array(&mut wrong).unwrap()])),
        ErrorCode::EINVAL
    );
    // An int32 where an int64 dimension belongs.
    let mut bad = read(2);
    bad[1] = Arg::scalar(2i32);
    assert_eq!(
        code(sess.genop(&bad, &mut [Arg::out_array(&mut c).unwrap()])),
        ErrorCode::EINVAL
    );
}

// ---------------------------------------------------------------------------------------------
// minmax.

#[test]
fn minmax_clamps_and_reports_bounds() {
    let fx = Fx::new();
    let sess = fx.session();
    let input = [5.0, -20.0, 3.5, 100.0, 0.0];
    let mut out = [7.0; 6];
    let (min, max) = sess.minmax(&input, -10, 50, &mut out).unwrap();
    assert_eq!(out, [5.0, -10.0, 3.5, 50.0, 0.0, 7.0]);
    assert_eq!((min, max), (-10.0, 50.0));
    // Nothing clamped: the data's own bounds.
    let (min, max) = sess.minmax(&input, -100, 100, &mut out).unwrap();
    assert_eq!(out[..5], input);
    assert_eq!((min, max), (-20.0, 100.0));
    // low == high pins everything.
    let (min, max) = sess.minmax(&input, 2, 2, &mut out).unwrap();
    assert_eq!(out[..5], [2.0; 5]);
    assert_eq!((min, max), (2.0, 2.0));
}

#[test]
fn minmax_copies_nan_and_ignores_it() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut out = [0.0; 3];
    let (min, max) = sess
        .minmax(&[f64::NAN, 4.0, -1.0], 0, 10, &mut out)
        .unwrap();
    assert!(out[0].is_nan());
    assert_eq!(out[1..], [4.0, 0.0]);
    assert_eq!((min, max), (0.0, 4.0));
    let (min, max) = sess.minmax(&[f64::NAN], 0, 10, &mut out).unwrap();
    assert!(min.is_nan() && max.is_nan());
}

#[test]
fn minmax_rejects_inverted_thresholds_and_empty_input() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut out = [0.0; 2];
    assert_eq!(
        code(sess.minmax(&[1.0, 2.0], 5, 4, &mut out)),
        ErrorCode::EINVAL
    );
    assert_eq!(code(sess.minmax(&[], 0, 1, &mut out)), ErrorCode::EINVAL);
    assert_eq!(
        code(sess.minmax(&[1.0, 2.0], 0, 1, &mut out[..1])),
        ErrorCode::EINVAL
    );
}

#[test]
fn minmax_genop_layout() {
    let fx = Fx::new();
    let sess = fx.session();
    let input = [1.0f64, 9.0, -3.0, 4.0];
    let mut out = [0f64; 4];
    let (mut min, mut max) = (0f64, 0f64);
    // ndata = 3 uses only the first three values.
    sess.genop(
        &[
            op(OpType::Minmax),
            Arg::array(&input).unwrap(),
            Arg::scalar(3i32),
            Arg::scalar(0i32),
            Arg::scalar(5i32),
        ],
        &mut [
            Arg::out_array(&mut out).unwrap(),
            Arg::out_scalar(&mut min),
            Arg::out_scalar(&mut max),
        ],
    )
    .unwrap();
    assert_eq!(out, [1.0, 5.0, 0.0, 0.0]);
    assert_eq!((min, max), (0.0, 5.0));
    // Upstream's untyped layout: raw memory everywhere.
    let bytes: Vec<u8> = input.iter().flat_map(|x| x.to_ne_bytes()).collect();
    let (n, lo, hi) = (
        4i32.to_ne_bytes(),
        (-1i32).to_ne_bytes(),
        2i32.to_ne_bytes(),
    );
    let mut out_raw = [0u8; 32];
    let (mut min_raw, mut max_raw) = ([0u8; 8], [0u8; 8]);
    sess.genop(
        &[
            op(OpType::Minmax),
            Arg::raw(&bytes),
            Arg::raw(&n),
            Arg::raw(&lo),
            Arg::raw(&hi),
        ],
        &mut [
            Arg::raw_mut(&mut out_raw),
            Arg::raw_mut(&mut min_raw),
            Arg::raw_mut(&mut max_raw),
        ],
    )
    .unwrap();
    let out: Vec<f64> = out_raw
        .chunks(8)
        .map(|c| f64::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(out, [1.0, 2.0, -1.0, 2.0]);
    assert_eq!(f64::from_ne_bytes(min_raw), -1.0);
    assert_eq!(f64::from_ne_bytes(max_raw), 2.0);
}

// ---------------------------------------------------------------------------------------------
// fpga ops.

#[test]
fn fpga_arraycopy_copies() {
    let fx = Fx::new();
    let sess = fx.session();
    let a = [1, -2, 3, i32::MAX];
    let mut out = [0; 5];
    sess.fpga_arraycopy(&a, &mut out).unwrap();
    assert_eq!(out, [1, -2, 3, i32::MAX, 0]);
    let mut out = [9; 4];
    sess.genop(
        &[op(OpType::FpgaArraycopy), Arg::array(&a).unwrap()],
        &mut [Arg::out_array(&mut out).unwrap()],
    )
    .unwrap();
    assert_eq!(out, a);
    assert_eq!(
        code(sess.fpga_arraycopy(&a, &mut [0; 3])),
        ErrorCode::EINVAL
    );
}

#[test]
fn fpga_vadd_adds() {
    let fx = Fx::new();
    let sess = fx.session();
    let a = [1.0f32, 2.0, 3.0];
    let b = [10.0f32, 20.0, 30.0, 40.0];
    let mut c = [0f32; 4];
    sess.fpga_vadd(&a, &b, &mut c).unwrap();
    assert_eq!(c, [11.0, 22.0, 33.0, 0.0]);
    let mut c = [0f32; 3];
    sess.genop(
        &[
            op(OpType::FpgaVectoradd),
            Arg::array(&a).unwrap(),
            Arg::array(&b[..3]).unwrap(),
        ],
        &mut [Arg::out_array(&mut c).unwrap()],
    )
    .unwrap();
    assert_eq!(c, [11.0, 22.0, 33.0]);
    assert_eq!(
        code(sess.fpga_vadd(&a, &b[..2], &mut [0f32; 3])),
        ErrorCode::EINVAL
    );
}

#[test]
fn fpga_parallel_adds_and_multiplies() {
    let fx = Fx::new();
    let sess = fx.session();
    let a = [1.0f32, -2.0, 3.0];
    let b = [4.0f32, 5.0, 0.5];
    let (mut add, mut mult) = ([0f32; 3], [0f32; 3]);
    sess.fpga_parallel(&a, &b, &mut add, &mut mult).unwrap();
    assert_eq!(add, [5.0, 3.0, 3.5]);
    assert_eq!(mult, [4.0, -10.0, 1.5]);
    let (mut add, mut mult) = ([0f32; 3], [0f32; 3]);
    sess.genop(
        &[
            op(OpType::FpgaParallel),
            Arg::array(&a).unwrap(),
            Arg::array(&b).unwrap(),
        ],
        &mut [
            Arg::out_array(&mut add).unwrap(),
            Arg::out_array(&mut mult).unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(add, [5.0, 3.0, 3.5]);
    assert_eq!(mult, [4.0, -10.0, 1.5]);
}

#[test]
fn fpga_mmult_multiplies_square_matrices() {
    let fx = Fx::new();
    let sess = fx.session();
    // [1 2; 3 4] x [5 6; 7 8]; b and c longer than a: the extra elements are ignored/untouched.
    let a = [1.0f32, 2.0, 3.0, 4.0];
    let b = [5.0f32, 6.0, 7.0, 8.0, 99.0];
    let mut c = [f32::NAN; 5];
    sess.fpga_mmult(&a, &b, &mut c).unwrap();
    assert_eq!(c[..4], [19.0, 22.0, 43.0, 50.0]);
    assert!(c[4].is_nan());
    let mut c = [0f32; 4];
    sess.genop(
        &[
            op(OpType::FpgaMmult),
            Arg::array(&a).unwrap(),
            Arg::array(&b[..4]).unwrap(),
        ],
        &mut [Arg::out_array(&mut c).unwrap()],
    )
    .unwrap();
    assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
    // A larger one against the sgemm reference.
    let mut rng = Rng(99);
    let case = Case::random(&mut rng, (20, 20, 20), (0, 0, 0), 1.0, 0.0);
    let mut c = vec![0f32; 400];
    sess.fpga_mmult(&case.a, &case.b, &mut c).unwrap();
    case.check(&c);
}

#[test]
fn fpga_mmult_rejects_non_square_input() {
    let fx = Fx::new();
    let sess = fx.session();
    let a = [1.0f32; 6];
    assert_eq!(
        code(sess.fpga_mmult(&a, &a, &mut [0f32; 6])),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.genop(
            &[
                op(OpType::FpgaMmult),
                Arg::array(&a).unwrap(),
                Arg::array(&a).unwrap(),
            ],
            &mut [Arg::out_array(&mut [0f32; 6]).unwrap()],
        )),
        ErrorCode::EINVAL
    );
}
