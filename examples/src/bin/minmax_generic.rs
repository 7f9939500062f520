//! `minmax_generic <data_length> <indata_file> <low_threshold> <high_threshold>`: `minmax` through the generic operation.
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(|args| vaccel_examples::blas::minmax(vaccel_examples::Api::Generic, args))
}
