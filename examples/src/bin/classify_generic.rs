//! `classify_generic <image_file> [iterations] [model_path]`: `classify` through the generic operation.
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(|args| {
        vaccel_examples::image::run(
            vaccel_examples::image::ImageOp::Classify,
            vaccel_examples::Api::Generic,
            args,
        )
    })
}
