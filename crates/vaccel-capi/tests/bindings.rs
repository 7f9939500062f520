//! Binding generators run over the headers as installed (rule T8): cffi the way vaccel-python
//! builds its module, then a session and a noop through it against `libvaccel.so`; bindgen the
//! way a Rust `-sys` crate would, its generated layout assertions compiled and run.
//!
//! A missing tool (python3 with cffi, bindgen with libclang) skips the test with a note, or
//! fails it when `VACCEL_REQUIRE_BINDINGS=1` (CI sets it, after `.ci/run` installs the tools).
#![cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{check, include_dir, libvaccel, output, program};

/// Upstream's `sizeof(struct vaccel_session)` and `offsetof(.., resources)` (x86_64, glibc),
/// asserted in the bindgen output on top of bindgen's own assertions.
const UPSTREAM_SESSION_SIZE: usize = 4264;
const UPSTREAM_SESSION_RESOURCES: usize = 4136;

/// Whether the tool `probe` runs; when it does not, panics if `VACCEL_REQUIRE_BINDINGS=1`,
/// otherwise prints why the test is skipped.
fn tool_available(probe: &mut Command, install: &str) -> bool {
    let ok = probe.output().is_ok_and(|out| out.status.success());
    if !ok {
        let note = format!("{probe:?} failed: {install}");
        assert!(
            std::env::var_os("VACCEL_REQUIRE_BINDINGS").is_none_or(|v| v != "1"),
            "VACCEL_REQUIRE_BINDINGS=1 and {note}"
        );
        eprintln!("skipped: {note} (set VACCEL_REQUIRE_BINDINGS=1 to fail instead)");
    }
    ok
}

#[test]
fn cffi_bindings_build_and_call_the_library() {
    if !tool_available(
        Command::new("python3").args(["-c", "import cffi"]),
        "install python3 and `python3 -m pip install cffi`",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bindings/cffi_check.py");
    let lib_dir = libvaccel().parent().unwrap().to_path_buf();
    let mut cmd = program(Path::new("python3"), work.path());
    cmd.arg(script)
        .arg(include_dir())
        .arg(&lib_dir)
        .arg(work.path())
        .env("VACCEL_PLUGINS", "noop");
    let out = check(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("init, noop, release: ok"),
        "{}",
        common::context(&cmd, &out)
    );
}

#[test]
fn bindgen_bindings_compile_with_their_layout_assertions() {
    if !tool_available(
        Command::new("bindgen").arg("--version"),
        "install libclang-dev and `cargo install bindgen-cli --locked`",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let bindings = work.path().join("vaccel_bindings.rs");
    let include = include_dir();
    check(
        Command::new("bindgen")
            .arg(include.join("vaccel.h"))
            .arg("-o")
            .arg(&bindings)
            .arg("--")
            .arg("-I")
            .arg(&include),
    );
    // bindgen asserts every struct's size, alignment and field offsets as clang computed them
    // (compile-time constants, plus `#[test]` functions in older versions); these two tie
    // them to upstream's numbers.
    let mut text = std::fs::read_to_string(&bindings).unwrap();
    text.push_str(&format!(
        "\nconst _: () = assert!(::std::mem::size_of::<vaccel_session>() == {UPSTREAM_SESSION_SIZE});\n\
         const _: () = assert!(::std::mem::offset_of!(vaccel_session, resources) == {UPSTREAM_SESSION_RESOURCES});\n"
    ));
    std::fs::write(&bindings, text).unwrap();
    let exe = work.path().join("vaccel_bindings");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    check(
        Command::new(rustc)
            .args(["--edition", "2021", "--test", "-A", "warnings", "-o"])
            .arg(&exe)
            .arg(&bindings),
    );
    let mut run = Command::new(&exe);
    let out = output(&mut run);
    assert!(out.status.success(), "{}", common::context(&run, &out));
}
