//! The upstream vAccel example programs (`classify`, `exec`, `sgemm`, ...), rebuilt on the Rust
//! runtime with the same names, arguments and stdout lines, so scripts and tests written for
//! upstream's examples work with these.
//!
//! Each binary in `src/bin/` is one line over a function here. The programs share one shape:
//! parse the command line, create the runtime from the environment ([`vaccel::from_env`]), open a
//! session, run the operation in a loop inside a profiling region named after the program, and
//! exit with the vAccel code of the first failure:
//!
//! | failure | stderr | exit code |
//! |---|---|---|
//! | bad command line | `Usage: <program> <arguments>` | 22 (`EINVAL`) |
//! | runtime from the environment | `Error: <error>` | the error's code |
//! | an operation | `Could not run op: <code> (<error>)` | the error's code |
//! | anything else (session, resource, file) | `<what failed>: <error>` | the error's code |
//!
//! ```no_run
//! use std::process::ExitCode;
//! use vaccel_examples::Api;
//! use vaccel_examples::image::{self, ImageOp};
//!
//! fn main() -> ExitCode {
//!     vaccel_examples::main(|args| image::run(ImageOp::Classify, Api::Direct, args))
//! }
//! ```
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::process::ExitCode;
use std::sync::Arc;

use vaccel::prof::Region;
use vaccel::{Error, ErrorCode, Runtime, Session};

/// Writes one line to stdout, as upstream's `printf` does: a closed or broken stdout is not
/// an error the example can do anything about, so it is ignored rather than turned into a panic
/// (which `println!` would do).
macro_rules! say {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod blas;
pub mod exec;
pub mod image;
pub mod inference;

/// How a program calls the runtime: the typed operation, or the generic one (`<name>_generic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The typed operation (`sess.image_classify(...)`, `sess.sgemm(...)`).
    Direct,
    /// The generic operation (`sess.genop(...)`) with the layouts of §2.3 of the spec.
    Generic,
}

/// Why a program stopped early. Each kind prints its own stderr line; the exit status is the
/// vAccel code ([`Failure::code`]).
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong: `Usage: <program> <usage>` (after `detail`, if any).
    Usage {
        /// The program name.
        program: &'static str,
        /// Its arguments, as §10 of the spec writes them.
        usage: &'static str,
        /// What exactly is wrong, when more can be said than the usage line.
        detail: Option<String>,
    },
    /// The runtime could not be created from the environment (`VACCEL_*` variables).
    Runtime(Error),
    /// An operation failed.
    Op(Error),
    /// Any other step failed (session, resource, reading or writing a file).
    Step {
        /// What was being done, e.g. `Could not read image file x.jpg`.
        what: String,
        /// Why it failed.
        error: Error,
    },
}

impl Failure {
    /// A failed step other than an operation.
    pub fn step(what: impl Into<String>, error: Error) -> Failure {
        Failure::Step {
            what: what.into(),
            error,
        }
    }

    /// The vAccel code the program exits with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Failure::Usage { .. } => ErrorCode::EINVAL,
            Failure::Runtime(e) | Failure::Op(e) | Failure::Step { error: e, .. } => e.code(),
        }
    }
}

impl fmt::Display for Failure {
    /// The stderr text (without the final newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage {
                program,
                usage,
                detail,
            } => {
                if let Some(detail) = detail {
                    writeln!(f, "{detail}")?;
                }
                write!(f, "Usage: {program} {usage}")
            }
            Failure::Runtime(e) => write!(f, "Error: {e}"),
            Failure::Op(e) => write!(f, "Could not run op: {} ({e})", e.code().as_i32()),
            Failure::Step { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

/// Runs a program body over the process arguments (without `argv[0]`) and turns its outcome
/// into the exit status: 0, or the failure's vAccel code after printing the failure to stderr.
pub fn main(body: impl FnOnce(Vec<OsString>) -> Result<(), Failure>) -> ExitCode {
    match body(std::env::args_os().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            use io::Write as _;
            // Nothing sensible can be done if stderr itself is gone.
            let _ = writeln!(io::stderr().lock(), "{failure}");
            // Every vAccel code is a small errno; 1 only guards against a future code > 255.
            ExitCode::from(u8::try_from(failure.code().as_i32()).unwrap_or(1))
        }
    }
}

/// A program's command line: its positional arguments checked against its usage line.
#[derive(Debug)]
pub struct Cli {
    program: &'static str,
    usage: &'static str,
    args: Vec<String>,
}

impl Cli {
    /// Checks that there are `required..=required + optional` arguments, all valid UTF-8
    /// (paths and symbols are handed to the runtime as text).
    pub fn parse(
        program: &'static str,
        usage: &'static str,
        raw: Vec<OsString>,
        required: usize,
        optional: usize,
    ) -> Result<Cli, Failure> {
        let mut cli = Cli {
            program,
            usage,
            args: Vec::with_capacity(raw.len()),
        };
        if raw.len() < required || raw.len() > required + optional {
            return Err(cli.usage_error(None));
        }
        for arg in raw {
            match arg.into_string() {
                Ok(arg) => cli.args.push(arg),
                Err(arg) => {
                    let detail = format!("Argument {} is not valid UTF-8", arg.to_string_lossy());
                    return Err(cli.usage_error(Some(detail)));
                }
            }
        }
        Ok(cli)
    }

    /// The program name.
    pub fn program(&self) -> &'static str {
        self.program
    }

    /// A usage failure for this program.
    pub fn usage_error(&self, detail: Option<String>) -> Failure {
        Failure::Usage {
            program: self.program,
            usage: self.usage,
            detail,
        }
    }

    /// Argument `index` (0-based, after the program name), if given.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.args.get(index).map(String::as_str)
    }

    /// Argument `index`, which [`Cli::parse`]'s `required` count guarantees.
    pub fn required(&self, index: usize) -> Result<&str, Failure> {
        self.get(index).ok_or_else(|| self.usage_error(None))
    }

    /// Argument `index` parsed as a number of `what`.
    pub fn number<T: std::str::FromStr>(&self, index: usize, what: &str) -> Result<T, Failure> {
        let text = self.required(index)?;
        text.trim().parse().map_err(|_| {
            self.usage_error(Some(format!("Invalid {what} '{text}': expected a number")))
        })
    }

    /// Argument `index` as an iteration count, 1 when absent.
    pub fn iterations(&self, index: usize) -> Result<u64, Failure> {
        match self.get(index) {
            None => Ok(1),
            Some(_) => self.number(index, "iterations"),
        }
    }
}

/// Creates the runtime from the environment and runs `body` with it and the program's
/// profiling region (named after the program, recording only when profiling is enabled), then
/// prints the region (`[prof] <program>: ...` at info level) whatever `body` returned.
pub fn with_runtime<T>(
    program: &'static str,
    body: impl FnOnce(&Runtime, &Region) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let rt = vaccel::from_env().map_err(Failure::Runtime)?;
    let region = Region::with_enabled(program, rt.config().profiling_enabled);
    let result = body(&rt, &region);
    region.print();
    result
}

/// Opens a session with `flags` and prints `Initialized session with id: <id>`.
pub fn new_session(rt: &Runtime, flags: u32) -> Result<Arc<Session>, Failure> {
    let sess =
        Session::new(rt, flags).map_err(|e| Failure::step("Could not initialize session", e))?;
    say!("Initialized session with id: {}", sess.id());
    Ok(sess)
}

/// Reads a whole file; the failure names `what` and the path and keeps the OS error's code.
pub fn read_file(path: &str, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| {
        Failure::step(
            format!("Could not read {what}"),
            Error::io(path.to_owned(), e),
        )
    })
}

/// `noop [iterations]`: the no-op operation `iterations` times (default 1); prints nothing but
/// the session line.
pub fn noop(raw: Vec<OsString>) -> Result<(), Failure> {
    let cli = Cli::parse("noop", "[iterations]", raw, 0, 1)?;
    let iterations = cli.iterations(0)?;
    with_runtime(cli.program(), |rt, region| {
        let sess = new_session(rt, 0)?;
        for _ in 0..iterations {
            let _timed = region.enter();
            sess.noop().map_err(Failure::Op)?;
        }
        Ok(())
    })
}
