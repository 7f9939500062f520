//! `exec_generic <lib_file> [iterations]`: `exec` through the generic operation.
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(vaccel_examples::exec::exec_generic)
}
