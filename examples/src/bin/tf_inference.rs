//! `tf_inference <image_file> <model_path> <labels_file> [iterations]`: image classification with a TensorFlow model.
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(vaccel_examples::inference::tf_inference)
}
