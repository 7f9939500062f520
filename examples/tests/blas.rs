//! `sgemm`, `sgemm_generic`, `minmax` and `minmax_generic` with the noop plugin.

// Test code: a panic is a failed test. (clippy's allow-*-in-tests settings cover only
// `#[test]` functions, not the helpers of an integration test crate.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::ffi::OsStr;

use common::{EINVAL, ENOENT, NOOP_PLUGINS, SESSION_LINE, data, run};
use vaccel_examples::blas::{SGEMM_DIM, sgemm_matrix};

#[test]
fn sgemm_prints_only_the_session_line() {
    for program in ["sgemm", "sgemm_generic"] {
        for plugins in NOOP_PLUGINS {
            let env = [("VACCEL_PLUGINS", plugins)];
            run::<&str>(program, &[], &env).assert_stdout(&[SESSION_LINE]);
            run(program, &["3"], &env).assert_stdout(&[SESSION_LINE]);
        }
    }
}

#[test]
fn sgemm_writes_c_to_out_file() {
    let dir = tempfile::tempdir().unwrap();
    for program in ["sgemm", "sgemm_generic"] {
        let out_file = dir.path().join(format!("{program}.txt"));
        run(
            program,
            &[OsStr::new("1"), out_file.as_os_str()],
            &[("VACCEL_PLUGINS", "noop")],
        )
        .assert_stdout(&[SESSION_LINE]);
        // The noop plugin leaves C as the program initialised it.
        let text = std::fs::read_to_string(&out_file).unwrap();
        let rows: Vec<Vec<f32>> = text
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .map(|v| v.parse().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(rows.len(), SGEMM_DIM, "{program}: one line per row");
        assert!(
            text.lines().all(|l| l.ends_with(' ')),
            "{program}: values end with a space"
        );
        assert_eq!(rows.concat(), sgemm_matrix(), "{program}: C changed");
        assert_eq!(rows[2][3], 6.0 / 512.0);
    }
}

#[test]
fn sgemm_to_an_unwritable_file_fails() {
    let out = run(
        "sgemm",
        &["1", "/nonexistent/dir/c.txt"],
        &[("VACCEL_PLUGINS", "noop")],
    );
    out.assert_code(ENOENT)
        .assert_stderr_contains("Could not write the result matrix");
}

/// `min: -1.000000 max: 10000.000000 Execution time: <ms> msec` (the noop plugin's values).
fn check_minmax_line(program: &str, line: &str) {
    let time = line
        .strip_prefix("min: -1.000000 max: 10000.000000 Execution time: ")
        .and_then(|rest| rest.strip_suffix(" msec"))
        .unwrap_or_else(|| panic!("{program}: unexpected line {line:?}"));
    let (whole, decimals) = time.split_once('.').expect("a decimal point");
    assert_eq!(
        decimals.len(),
        6,
        "{program}: six decimals like %lf: {line:?}"
    );
    assert!(whole.parse::<u64>().is_ok(), "{program}: {line:?}");
}

#[test]
fn minmax_prints_min_max_and_time() {
    let input = data("input_2048.csv");
    for program in ["minmax", "minmax_generic"] {
        for plugins in NOOP_PLUGINS {
            let out = run(
                program,
                &["2048", input.as_str(), "5", "100"],
                &[("VACCEL_PLUGINS", plugins)],
            );
            out.assert_success();
            let lines = out.lines();
            assert_eq!(lines.len(), 2, "two lines expected\n{out}");
            assert_eq!(lines[0], SESSION_LINE, "{out}");
            check_minmax_line(program, lines[1]);
        }
    }
}

#[test]
fn minmax_needs_enough_data() {
    let input = data("input_2048.csv");
    for program in ["minmax", "minmax_generic"] {
        run(
            program,
            &["4096", input.as_str(), "5", "100"],
            &[("VACCEL_PLUGINS", "noop")],
        )
        .assert_code(EINVAL)
        .assert_stderr_contains("holds 2048 numbers");
        run(
            program,
            &["16", "/nonexistent.csv", "5", "100"],
            &[("VACCEL_PLUGINS", "noop")],
        )
        .assert_code(ENOENT);
    }
}

#[test]
fn bad_command_lines_print_usage() {
    let input = data("input_2048.csv");
    let usage = "<data_length> <indata_file> <low_threshold> <high_threshold>";
    let cases: [&[&str]; 4] = [
        &[],
        &["2048", &input, "5"],
        &["0", &input, "5", "100"],
        &["2048", &input, "low", "100"],
    ];
    for program in ["minmax", "minmax_generic"] {
        for args in cases {
            run(program, args, &[("VACCEL_PLUGINS", "noop")])
                .assert_code(EINVAL)
                .assert_stderr_contains(&format!("Usage: {program} {usage}"));
        }
    }
    run(
        "sgemm",
        &["1", "out", "extra"],
        &[("VACCEL_PLUGINS", "noop")],
    )
    .assert_code(EINVAL)
    .assert_stderr_contains("Usage: sgemm [iterations] [out_file]");
}
