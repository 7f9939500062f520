//! Plugin libraries in every vaccel-rs program, not only in `libvaccel.so`: the real agent
//! binary started with `--vaccel-config plugins=<library>` serves remote clients with an
//! upstream-style C plugin (its C source compiled here) and with a plugin library built with
//! the SDK; the example programs load the same libraries from `VACCEL_PLUGINS`; and libraries
//! that cannot be plugins are refused with an error naming the file and the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// A program of this build (`target/<profile>/<name>`), built on first use.
fn program_binary(name: &str) -> PathBuf {
    agent_binary();
    let exe = artifact_dir().join(name);
    if !exe.is_file() {
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(workspace_root())
            .args(["build", "--offline", "-p", "vaccel-examples", "--bin", name])
            .env("CARGO_TARGET_DIR", artifact_dir().parent().unwrap())
            .args(profile_args())
            .status()
            .unwrap();
        assert!(status.success(), "building {name} failed");
    }
    exe
}

fn profile_args() -> Vec<String> {
    match artifact_dir().file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => Vec::new(),
        Some("release") => vec!["--release".into()],
        Some(other) => vec!["--profile".into(), other.into()],
    }
}

/// The upstream-style C test plugin (`tests/c/cplugin.c`), compiled into `dir`.
fn cplug(dir: &Path, defines: &[&str]) -> PathBuf {
    let lib = dir.join("libcplug.so");
    build_plugin(&c_source("cplugin.c"), &lib, defines);
    lib
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that `out` succeeded and its stdout has lines containing each of `expected`, in
/// order (log lines carry a timestamp and level before the text).
fn assert_contains_in_order(cmd: &Command, out: &Output, expected: &[&str]) {
    assert!(out.status.success(), "{}", context(cmd, out));
    let stdout = stdout_of(out);
    let mut lines = stdout.lines();
    for want in expected {
        assert!(
            lines.any(|l| l.contains(want)),
            "no line with {want:?} (in order)\n{}",
            context(cmd, out)
        );
    }
}

#[test]
fn the_agent_serves_remote_clients_with_an_upstream_style_c_plugin() {
    let work = tempfile::tempdir().unwrap();
    let agent = Agent::start(cplug(work.path(), &[]));
    agent.wait_for_log("[cplug] init");

    // A C program on libvaccel.so's bundled rpc plugin.
    let classify = work.path().join("classify_c");
    build_program(&[c_source("classify.c")], &classify);
    let image = workspace_root().join("examples/data/example.jpg");
    let size = std::fs::metadata(&image).unwrap().len();
    let mut cmd = agent.client(&classify, work.path());
    cmd.arg(&image).arg("1");
    let out = check(&mut cmd);
    assert_lines_in_order(
        &cmd,
        &out,
        &[
            "Initialized session with id: 1",
            &format!("classification tags: cplug tag ({size} bytes)"),
            "classification imagename: cplug image",
        ],
    );

    // Rust example programs: noop, and exec (the plugin triples the input: 10 -> 30).
    let mut cmd = agent.client(&program_binary("noop"), work.path());
    check(&mut cmd);
    agent.wait_for_log("[cplug] noop for session");
    let mut cmd = agent.client(&program_binary("exec"), work.path());
    cmd.arg(artifact("libmytestlib.so")).arg("1");
    let out = check(&mut cmd);
    assert!(
        stdout_of(&out).contains("output: 30"),
        "{}",
        context(&cmd, &out)
    );
    agent.wait_for_log("[cplug] exec ");
}

#[test]
fn the_agent_serves_remote_exec_with_the_sdk_built_exec_library() {
    let work = tempfile::tempdir().unwrap();
    artifact("libvaccel_exec.so");
    let library = artifact_dir().join("libvaccel-exec.so");
    let agent = Agent::start(&library);
    agent.wait_for_log(&format!("Loaded plugin exec from {}", library.display()));
    let mut cmd = agent.client(&program_binary("exec"), work.path());
    cmd.arg(artifact("libmytestlib.so")).arg("1");
    let out = check(&mut cmd);
    assert_lines_in_order(
        &cmd,
        &out,
        &["Initialized session with id: 1", "output: 20"],
    );
    // The function ran in the agent, through the library's exec plugin.
    agent.wait_for_log("I got input: 10");
}

#[test]
fn example_programs_load_plugin_libraries_from_vaccel_plugins() {
    let work = tempfile::tempdir().unwrap();
    let lib = cplug(work.path(), &[]);
    let mut cmd = program(&program_binary("noop"), work.path());
    cmd.env("VACCEL_PLUGINS", &lib).env("VACCEL_LOG_LEVEL", "3");
    let out = check(&mut cmd);
    assert_contains_in_order(
        &cmd,
        &out,
        &[
            "[cplug] init",
            "Initialized session with id: 1",
            "[cplug] noop for session 1",
        ],
    );

    let mut cmd = program(&program_binary("exec"), work.path());
    cmd.env("VACCEL_PLUGINS", artifact("libvaccel_exec.so"))
        .arg(artifact("libmytestlib.so"))
        .arg("1");
    let out = check(&mut cmd);
    assert_contains_in_order(&cmd, &out, &["I got input: 10", "output: 20"]);
}

/// Starts the agent with `plugins` and expects it to refuse to start, with every one of
/// `reasons` in its error output.
fn agent_refuses(plugins: &Path, reasons: &[&str]) {
    let (mut cmd, _dir, _, _) = Agent::command(plugins);
    cmd.env("VACCEL_LOG_LEVEL", "1");
    let out = output(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the agent started\n{}",
        context(&cmd, &out)
    );
    for reason in reasons {
        assert!(
            stderr.contains(reason),
            "no {reason:?} in the agent's error\n{}",
            context(&cmd, &out)
        );
    }
    assert!(
        stderr.contains(&plugins.display().to_string()),
        "the error does not name the file\n{}",
        context(&cmd, &out)
    );
}

#[test]
fn libraries_that_are_not_usable_plugins_are_refused_with_the_reason() {
    let work = tempfile::tempdir().unwrap();
    // A shared library without a `vaccel_plugin` descriptor.
    agent_refuses(
        &artifact("libmytestlib.so"),
        &["not a vAccel plugin", "no `vaccel_plugin` symbol"],
    );
    // No such file.
    agent_refuses(
        &work.path().join("libvaccel-nosuch.so"),
        &["could not load plugin", "no such file"],
    );
    // A file that is not a library at all.
    let text = work.path().join("libvaccel-text.so");
    std::fs::write(&text, "not an ELF file\n".repeat(64)).unwrap();
    agent_refuses(&text, &["not a vAccel plugin", "invalid ELF header"]);
    // A plugin built for a newer major version of vAccel.
    let newer = work.path().join("newer");
    std::fs::create_dir(&newer).unwrap();
    agent_refuses(
        &cplug(&newer, &["CPLUG_VACCEL_VERSION=\"99.0.0\""]),
        &["99.0.0"],
    );

    // The example programs refuse the same way and exit with the error's code.
    let mut cmd = program(&program_binary("noop"), work.path());
    cmd.env("VACCEL_PLUGINS", artifact("libmytestlib.so"));
    let out = output(&mut cmd);
    assert!(!out.status.success(), "{}", context(&cmd, &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a vAccel plugin"),
        "{}",
        context(&cmd, &out)
    );
}

/// The C API functions a binary exports (`nm -D --defined-only`): the `vaccel_*` functions,
/// and `slog_print` (what `vaccel/log.h`'s macros call) and `fs_file_read` (what upstream's
/// example programs call).
fn exported(binary: &Path) -> BTreeSet<String> {
    let mut cmd = Command::new("nm");
    cmd.args(["-D", "--defined-only"]).arg(binary);
    let out = check(&mut cmd);
    stdout_of(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|s| s.starts_with("vaccel_") || ["slog_print", "fs_file_read"].contains(s))
        .map(str::to_owned)
        .collect()
}

#[test]
fn programs_export_the_whole_c_api_for_the_plugins_they_load() {
    let api = exported(&libvaccel());
    assert!(
        api.len() > 200,
        "libvaccel.so exports only {} functions",
        api.len()
    );
    for beyond_the_headers in ["slog_print", "fs_file_read"] {
        assert!(
            api.contains(beyond_the_headers),
            "libvaccel.so does not export {beyond_the_headers}"
        );
    }
    for binary in [agent_binary(), program_binary("classify")] {
        let theirs = exported(&binary);
        let missing: Vec<_> = api.difference(&theirs).collect();
        assert!(
            missing.is_empty(),
            "{} does not export {} functions of libvaccel.so: {missing:?}",
            binary.display(),
            missing.len()
        );
    }
}
