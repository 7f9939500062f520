//! `exec_serialized <lib_file> [iterations]`: `mytestfunc_nonser` of a library resource with a serialized custom argument.
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(vaccel_examples::exec::exec_serialized)
}
