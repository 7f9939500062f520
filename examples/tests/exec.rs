//! `exec`, `exec_generic`, `exec_with_resource`, `exec_serialized` and `mbench`, with the plugin
//! that really runs them (exec, mbench) and with the noop plugin (which copies inputs to
//! outputs).

// Test code: a panic is a failed test. (clippy's allow-*-in-tests settings cover only
// `#[test]` functions, not the helpers of an integration test crate.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{EINVAL, NOOP_PLUGINS, SESSION_LINE, data, mytestlib, repeated, run};

/// What `mytestfunc` prints for the input 10.
const MYTESTFUNC_LINES: [&str; 3] = [
    "I got nr_in: 1, nr_out: 1",
    "I got input: 10",
    "Will return output: 20",
];

fn lib() -> String {
    mytestlib().to_string_lossy().into_owned()
}

#[test]
fn exec_with_exec_plugin_doubles_the_input() {
    let mut lines = MYTESTFUNC_LINES.to_vec();
    lines.push("output: 20");
    for program in ["exec", "exec_generic"] {
        run(
            program,
            &[lib().as_str(), "2"],
            &[("VACCEL_PLUGINS", "exec")],
        )
        .assert_stdout(&repeated(&[SESSION_LINE], &lines, 2));
    }
}

#[test]
fn exec_with_noop_returns_the_input() {
    for program in ["exec", "exec_generic"] {
        for plugins in NOOP_PLUGINS {
            run(
                program,
                &[lib().as_str(), "2"],
                &[("VACCEL_PLUGINS", plugins)],
            )
            .assert_stdout(&repeated(&[SESSION_LINE], &["output: 10"], 2));
            run(program, &[lib().as_str()], &[("VACCEL_PLUGINS", plugins)])
                .assert_stdout(&[SESSION_LINE, "output: 10"]);
        }
    }
}

#[test]
fn exec_with_resource_with_exec_plugin_doubles_through_both_resources() {
    let mut lines = [MYTESTFUNC_LINES, MYTESTFUNC_LINES].concat();
    lines.extend(["output1: 20", "output2: 20"]);
    run(
        "exec_with_resource",
        &[lib().as_str(), "2"],
        &[
            ("VACCEL_PLUGINS", "exec"),
            ("VACCEL_EXEC_DLCLOSE_ENABLED", "1"),
        ],
    )
    .assert_stdout(&repeated(&[SESSION_LINE], &lines, 2));
}

#[test]
fn exec_with_resource_with_noop_returns_the_input() {
    for plugins in NOOP_PLUGINS {
        run(
            "exec_with_resource",
            &[lib().as_str()],
            &[("VACCEL_PLUGINS", plugins)],
        )
        .assert_stdout(&[SESSION_LINE, "output1: 10", "output2: 10"]);
    }
}

#[test]
fn exec_serialized_with_exec_plugin_reverses_mydata() {
    let lines = [
        "Input: 0 2 4 6 8 10 ",
        "I got nr_in: 1, nr_out: 1",
        "Output: 10 8 6 4 2 0 ",
    ];
    run(
        "exec_serialized",
        &[lib().as_str(), "2"],
        &[("VACCEL_PLUGINS", "exec")],
    )
    .assert_stdout(&repeated(&[SESSION_LINE], &lines, 2));
}

#[test]
fn exec_serialized_with_noop_returns_mydata_unchanged() {
    for plugins in NOOP_PLUGINS {
        run(
            "exec_serialized",
            &[lib().as_str()],
            &[("VACCEL_PLUGINS", plugins)],
        )
        .assert_stdout(&[
            SESSION_LINE,
            "Input: 0 2 4 6 8 10 ",
            "Output: 0 2 4 6 8 10 ",
        ]);
    }
}

#[test]
fn exec_of_a_missing_library_fails_with_einval() {
    for program in ["exec", "exec_generic"] {
        run(
            program,
            &["/nonexistent/libnothing.so"],
            &[("VACCEL_PLUGINS", "exec")],
        )
        .assert_code(EINVAL)
        .assert_stderr_contains("Could not run op: 22 (");
    }
}

#[test]
fn exec_with_resource_of_a_missing_library_fails() {
    for program in ["exec_with_resource", "exec_serialized"] {
        let out = run(
            program,
            &["/nonexistent/libnothing.so"],
            &[("VACCEL_PLUGINS", "exec")],
        );
        out.assert_no_panic()
            .assert_stderr_contains("Could not create library resource");
        assert!(!out.status.success(), "must fail\n{out}");
    }
}

#[test]
fn mbench_runs_with_mbench_and_noop() {
    let file = data("example.jpg");
    for plugins in [
        "mbench",
        "libvaccel-mbench.so",
        NOOP_PLUGINS[0],
        NOOP_PLUGINS[1],
    ] {
        run(
            "mbench",
            &["1", file.as_str()],
            &[("VACCEL_PLUGINS", plugins)],
        )
        .assert_stdout(&[SESSION_LINE]);
        run(
            "mbench",
            &["2", file.as_str(), "3"],
            &[("VACCEL_PLUGINS", plugins)],
        )
        .assert_stdout(&[SESSION_LINE]);
    }
}

#[test]
fn mbench_refuses_a_time_out_of_range() {
    let file = data("example.jpg");
    for time in ["0", "300001", "abc"] {
        run(
            "mbench",
            &[time, file.as_str()],
            &[("VACCEL_PLUGINS", "mbench")],
        )
        .assert_code(EINVAL)
        .assert_stderr_contains("Could not run op: 22 (");
    }
}

#[test]
fn bad_command_lines_print_usage() {
    let lib = lib();
    let cases: [(&str, &[&str], &str); 5] = [
        ("exec", &[], "Usage: exec <lib_file> [iterations]"),
        (
            "exec_generic",
            &[&lib, "x"],
            "Usage: exec_generic <lib_file> [iterations]",
        ),
        (
            "exec_with_resource",
            &[&lib, "1", "2"],
            "Usage: exec_with_resource <lib_file> [iterations]",
        ),
        (
            "exec_serialized",
            &[],
            "Usage: exec_serialized <lib_file> [iterations]",
        ),
        (
            "mbench",
            &["1"],
            "Usage: mbench <time_ms> <lib_file> [iterations]",
        ),
    ];
    for (program, args, usage) in cases {
        run(program, args, &[("VACCEL_PLUGINS", "exec")])
            .assert_code(EINVAL)
            .assert_stderr_contains(usage);
    }
}
