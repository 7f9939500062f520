//! The numeric programs: `sgemm` / `sgemm_generic` (`[iterations] [out_file]`) and `minmax` /
//! `minmax_generic` (`<data_length> <indata_file> <low_threshold> <high_threshold>`).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::Instant;

use vaccel::{Arg, Error, OpType, Session, SgemmArgs};

use crate::{Api, Cli, Failure};

/// Rows of A and C (`M`), columns of B and C (`N`) and the inner dimension (`K`).
pub const SGEMM_DIM: usize = 512;
/// The `alpha` of upstream's example.
pub const SGEMM_ALPHA: f32 = 32412.0;
/// The `beta` of upstream's example.
pub const SGEMM_BETA: f32 = 2123.0;

/// Upstream's matrix initialisation: element `[i][j]` of A, B and C is `i * j / M`, row-major.
pub fn sgemm_matrix() -> Vec<f32> {
    let mut matrix = Vec::with_capacity(SGEMM_DIM * SGEMM_DIM);
    for i in 0..SGEMM_DIM {
        for j in 0..SGEMM_DIM {
            // Exact: every product is below 2^18, well within f32's 24-bit mantissa.
            matrix.push((i * j) as f32 / SGEMM_DIM as f32);
        }
    }
    matrix
}

/// Runs `sgemm` (`api` Direct) or `sgemm_generic` (`api` Generic).
///
/// `C = alpha * A x B + beta * C` with M = N = K = 512, `iterations` times on the same C. With
/// `out_file`, C is written there afterwards, one row per line, each value followed by a space.
/// (Upstream writes the result to `argv[1]`, i.e. over its iterations argument; writing to the
/// `out_file` argument is what it evidently means.) Nothing is printed besides the session line.
pub fn sgemm(api: Api, raw: Vec<OsString>) -> Result<(), Failure> {
    let program = match api {
        Api::Direct => "sgemm",
        Api::Generic => "sgemm_generic",
    };
    let cli = Cli::parse(program, "[iterations] [out_file]", raw, 0, 2)?;
    let iterations = cli.iterations(0)?;
    let out_file = cli.get(1);

    crate::with_runtime(program, |rt, region| {
        let sess = crate::new_session(rt, 0)?;
        let a = sgemm_matrix();
        let b = sgemm_matrix();
        let mut c = sgemm_matrix();
        // 512 always fits in i64.
        let dim = SGEMM_DIM as i64;
        let args = SgemmArgs {
            m: dim,
            n: dim,
            k: dim,
            alpha: SGEMM_ALPHA,
            a: &a,
            lda: dim,
            b: &b,
            ldb: dim,
            beta: SGEMM_BETA,
            ldc: dim,
        };
        for _ in 0..iterations {
            let _timed = region.enter();
            match api {
                Api::Direct => sess.sgemm(&args, &mut c),
                Api::Generic => sgemm_generic(&sess, &args, &mut c),
            }
            .map_err(Failure::Op)?;
        }
        if let Some(path) = out_file {
            write_matrix(path, &c)?;
        }
        Ok(())
    })
}

/// Read `[UINT8 17, INT64 m, n, k, FLOAT32 alpha, FLOAT32_ARRAY a, INT64 lda, FLOAT32_ARRAY b,
/// INT64 ldb, FLOAT32 beta, INT64 ldc]`, write `[FLOAT32_ARRAY c]` (§2.3).
fn sgemm_generic(sess: &Session, args: &SgemmArgs<'_>, c: &mut [f32]) -> Result<(), Error> {
    let read = [
        Arg::scalar(OpType::BlasSgemm.value()),
        Arg::scalar(args.m),
        Arg::scalar(args.n),
        Arg::scalar(args.k),
        Arg::scalar(args.alpha),
        Arg::array(args.a).map_err(|e| Error::arg(5, e))?,
        Arg::scalar(args.lda),
        Arg::array(args.b).map_err(|e| Error::arg(7, e))?,
        Arg::scalar(args.ldb),
        Arg::scalar(args.beta),
        Arg::scalar(args.ldc),
    ];
    let mut write = [Arg::out_array(c).map_err(|e| Error::arg(0, e))?];
    sess.genop(&read, &mut write)
}

/// Writes C, one row per line, each value (shortest exact form) followed by a space.
fn write_matrix(path: &str, c: &[f32]) -> Result<(), Failure> {
    let mut text = String::with_capacity(c.len() * 8);
    for row in c.chunks(SGEMM_DIM) {
        for value in row {
            // Writing to a String cannot fail.
            let _ = write!(text, "{value} ");
        }
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| {
        Failure::step(
            "Could not write the result matrix",
            Error::io(path.to_owned(), e),
        )
    })
}

/// Runs `minmax` (`api` Direct) or `minmax_generic` (`api` Generic).
///
/// Reads `data_length` numbers (whitespace-separated, upstream's files have one per line) from
/// `indata_file`, runs the operation once and prints
/// `min: <min> max: <max> Execution time: <ms> msec`, each number with six decimals as C's
/// `%lf`.
pub fn minmax(api: Api, raw: Vec<OsString>) -> Result<(), Failure> {
    let program = match api {
        Api::Direct => "minmax",
        Api::Generic => "minmax_generic",
    };
    let usage = "<data_length> <indata_file> <low_threshold> <high_threshold>";
    let cli = Cli::parse(program, usage, raw, 4, 0)?;
    let ndata: i32 = cli.number(0, "data_length")?;
    let path = cli.required(1)?;
    let low: i32 = cli.number(2, "low_threshold")?;
    let high: i32 = cli.number(3, "high_threshold")?;
    let count = usize::try_from(ndata)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| cli.usage_error(Some(format!("Invalid data_length {ndata}"))))?;

    crate::with_runtime(program, |rt, region| {
        let sess = crate::new_session(rt, 0)?;
        let indata = read_numbers(path, count)?;
        let mut outdata = vec![0f64; count];
        let started = Instant::now();
        let (min, max) = {
            let _timed = region.enter();
            match api {
                Api::Direct => sess.minmax(&indata, low, high, &mut outdata),
                Api::Generic => minmax_generic(&sess, &indata, ndata, low, high, &mut outdata),
            }
        }
        .map_err(Failure::Op)?;
        let msec = started.elapsed().as_secs_f64() * 1000.0;
        say!("min: {min:.6} max: {max:.6} Execution time: {msec:.6} msec");
        Ok(())
    })
}

/// Read `[UINT8 22, RAW double[] indata, RAW int ndata, RAW int low, RAW int high]`, write
/// `[RAW double[] outdata, RAW double min, RAW double max]` (§2.3: untyped, as upstream's
/// test passes them). Returns `(min, max)`.
fn minmax_generic(
    sess: &Session,
    indata: &[f64],
    ndata: i32,
    low: i32,
    high: i32,
    outdata: &mut [f64],
) -> Result<(f64, f64), Error> {
    let in_bytes: Vec<u8> = indata.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let (ndata, low, high) = (ndata.to_ne_bytes(), low.to_ne_bytes(), high.to_ne_bytes());
    let read = [
        Arg::scalar(OpType::Minmax.value()),
        Arg::raw(&in_bytes),
        Arg::raw(&ndata),
        Arg::raw(&low),
        Arg::raw(&high),
    ];
    let mut out_bytes = vec![0u8; std::mem::size_of_val(outdata)];
    let (mut min, mut max) = ([0u8; 8], [0u8; 8]);
    sess.genop(
        &read,
        &mut [
            Arg::raw_mut(&mut out_bytes),
            Arg::raw_mut(&mut min),
            Arg::raw_mut(&mut max),
        ],
    )?;
    for (value, bytes) in outdata.iter_mut().zip(out_bytes.chunks_exact(8)) {
        if let Ok(bytes) = bytes.try_into() {
            *value = f64::from_ne_bytes(bytes);
        }
    }
    Ok((f64::from_ne_bytes(min), f64::from_ne_bytes(max)))
}

/// Reads the first `count` numbers of a text file.
fn read_numbers(path: &str, count: usize) -> Result<Vec<f64>, Failure> {
    let bytes = crate::read_file(path, "input file")?;
    let text = String::from_utf8_lossy(&bytes);
    // Not preallocated: `count` comes from the command line, the file bounds what is read.
    let mut values = Vec::new();
    for word in text.split_whitespace().take(count) {
        let value = word.parse().map_err(|_| {
            Failure::step(
                format!("Could not read input file {path}"),
                Error::invalid(format!("'{word}' is not a number")),
            )
        })?;
        values.push(value);
    }
    if values.len() < count {
        return Err(Failure::step(
            format!("Could not read input file {path}"),
            Error::invalid(format!(
                "it holds {} numbers, data_length is {count}",
                values.len()
            )),
        ));
    }
    Ok(values)
}
