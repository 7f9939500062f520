//! `sgemm [iterations] [out_file]`: a 512x512 single-precision matrix multiply.
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(|args| vaccel_examples::blas::sgemm(vaccel_examples::Api::Direct, args))
}
