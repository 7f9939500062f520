//! `exec <lib_file> [iterations]`: calls `mytestfunc` of a shared library through the runtime.
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(vaccel_examples::exec::exec)
}
