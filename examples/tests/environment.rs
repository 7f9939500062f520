//! What every program shares: the runtime from `VACCEL_*`, its errors, the usage errors, and
//! never a panic.

// Test code: a panic is a failed test. (clippy's allow-*-in-tests settings cover only
// `#[test]` functions, not the helpers of an integration test crate.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use common::{EINVAL, ENOENT, NOOP_PLUGINS, PROGRAMS, SESSION_LINE, run, valid_args};

#[test]
fn noop_prints_the_session_line() {
    for plugins in NOOP_PLUGINS {
        let env = [("VACCEL_PLUGINS", plugins)];
        run::<&str>("noop", &[], &env).assert_stdout(&[SESSION_LINE]);
        run("noop", &["5"], &env).assert_stdout(&[SESSION_LINE]);
    }
}

#[test]
fn every_program_succeeds_with_noop() {
    for program in PROGRAMS {
        for plugins in NOOP_PLUGINS {
            run(
                program,
                &valid_args(program),
                &[("VACCEL_PLUGINS", plugins)],
            )
            .assert_success();
        }
    }
}

#[test]
fn unknown_plugin_stops_every_program_with_its_name() {
    for program in PROGRAMS {
        let out = run(
            program,
            &valid_args(program),
            &[("VACCEL_PLUGINS", "doesnotexist")],
        );
        out.assert_code(ENOENT)
            .assert_stderr_contains("Error: ")
            .assert_stderr_contains("doesnotexist");
        assert_eq!(out.stdout, "", "nothing may run without a runtime\n{out}");
    }
}

#[test]
fn malformed_log_level_is_reported() {
    for program in PROGRAMS {
        let out = run(
            program,
            &valid_args(program),
            &[("VACCEL_PLUGINS", "noop"), ("VACCEL_LOG_LEVEL", "abc")],
        );
        out.assert_code(EINVAL)
            .assert_stderr_contains("VACCEL_LOG_LEVEL")
            .assert_stderr_contains("'abc'");
    }
}

#[test]
fn without_plugins_ops_fail_without_panicking() {
    // No plugin loaded: session creation fails (no plugin to bind).
    for program in ["noop", "classify", "exec", "sgemm"] {
        let out = run(program, &valid_args(program), &[]);
        out.assert_no_panic()
            .assert_stderr_contains("Could not initialize session");
        assert!(!out.status.success(), "must fail\n{out}");
    }
}

#[test]
fn missing_arguments_print_usage() {
    for program in PROGRAMS {
        if valid_args(program).is_empty() {
            continue;
        }
        run::<&str>(program, &[], &[("VACCEL_PLUGINS", "noop")])
            .assert_code(EINVAL)
            .assert_stderr_contains(&format!("Usage: {program} "));
    }
    run("noop", &["1", "2"], &[("VACCEL_PLUGINS", "noop")])
        .assert_code(EINVAL)
        .assert_stderr_contains("Usage: noop [iterations]");
    run("noop", &["-1"], &[("VACCEL_PLUGINS", "noop")])
        .assert_code(EINVAL)
        .assert_stderr_contains("Invalid iterations '-1'");
}

#[test]
fn non_utf8_arguments_are_usage_errors() {
    let bad = OsString::from_vec(b"image\xff.jpg".to_vec());
    run("classify", &[bad], &[("VACCEL_PLUGINS", "noop")])
        .assert_code(EINVAL)
        .assert_stderr_contains("not valid UTF-8");
}

#[test]
fn profiling_prints_the_program_region() {
    let out = run(
        "noop",
        &["3"],
        &[
            ("VACCEL_PLUGINS", "noop"),
            ("VACCEL_PROFILING_ENABLED", "1"),
            ("VACCEL_LOG_LEVEL", "3"),
        ],
    );
    out.assert_success();
    assert!(
        out.lines()
            .iter()
            .any(|l| l.contains("[prof] noop: total_time: ") && l.ends_with(" nsec nr_entries: 3")),
        "missing the program's profiling line\n{out}"
    );
    assert_eq!(out.program_lines(), [SESSION_LINE], "{out}");
}
