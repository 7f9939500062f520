//! `segment <image_file> [iterations] [model_path]`: image segmentation of an image, printing what the plugin returns.
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(|args| {
        vaccel_examples::image::run(
            vaccel_examples::image::ImageOp::Segment,
            vaccel_examples::Api::Direct,
            args,
        )
    })
}
