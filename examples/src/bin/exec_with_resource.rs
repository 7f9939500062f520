//! `exec_with_resource <lib_file> [iterations]`: `mytestfunc` of two library resources (from a path and from bytes).
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(vaccel_examples::exec::exec_with_resource)
}
