//! `sgemm_generic [iterations] [out_file]`: `sgemm` through the generic operation.
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(|args| vaccel_examples::blas::sgemm(vaccel_examples::Api::Generic, args))
}
