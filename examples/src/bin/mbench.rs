//! `mbench <time_ms> <lib_file> [iterations]`: the mbench plugin's busy-wait, to measure overhead.
//!
//! See [`vaccel_examples`] for the common behaviour (environment, exit codes, profiling).
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    vaccel_examples::main(vaccel_examples::exec::mbench)
}
