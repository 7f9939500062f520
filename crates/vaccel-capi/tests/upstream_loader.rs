//! Our plugin libraries in a loader we did not write into `libvaccel.so` (rule T8): a stand-in
//! for upstream's, in C (`c/upstream_loader.c`), that checks the descriptor as upstream's
//! `src/plugin.c` does, the list entry linked to itself included, and offers the plugin only
//! upstream's C API (no vaccel-rs host table). The same plugin form in our own loader, and the
//! other form (an entry left `{NULL, NULL}`) accepted by ours but refused by the stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The C API functions the stand-in host defines, for the plugins it loads.
const STAND_IN_API: [&str; 2] = ["vaccel_plugin_register_ops", "slog_print"];

/// The stand-in loader, built with `-rdynamic` so that the plugins see its C API.
fn stand_in(work: &Path) -> PathBuf {
    let exe = work.join("upstream_loader");
    let mut cmd = Command::new("cc");
    cmd.args([
        "-Wall",
        "-Wextra",
        "-Werror",
        "-std=gnu11",
        "-rdynamic",
        "-o",
    ])
    .arg(&exe)
    .arg("-I")
    .arg(include_dir())
    .arg(c_source("upstream_loader.c"))
    .args(["-ldl", "-lpthread"]);
    check(&mut cmd);
    exe
}

/// The vAccel symbols `library` needs from its host (`nm -D --undefined-only`).
fn imported_api(library: &Path) -> Vec<String> {
    let out = check(
        Command::new("nm")
            .args(["-D", "--undefined-only"])
            .arg(library),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("vaccel_") || s.starts_with("slog_") || s.starts_with("fs_"))
        .map(str::to_owned)
        .collect()
}

/// Runs the stand-in on `args` (the plugin library, then the op's own arguments) and expects
/// success and `lines` in its output.
fn run_stand_in(exe: &Path, work: &Path, args: &[&Path], op: &str, lines: &[&str]) {
    let rundir = work.join(format!("rundir-{op}"));
    std::fs::create_dir_all(&rundir).unwrap();
    let mut cmd = program(exe, work);
    cmd.arg(args[0]).arg(op).arg(&rundir).args(&args[1..]);
    let out = output(&mut cmd);
    assert!(out.status.success(), "{}", context(&cmd, &out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in lines {
        assert!(
            stdout.contains(line),
            "missing {line:?}\n{}",
            context(&cmd, &out)
        );
    }
}

#[test]
fn sdk_plugin_libraries_load_in_an_upstream_style_loader() {
    let work = tempfile::tempdir().unwrap();
    let exe = stand_in(work.path());
    let noop = artifact_dir().join("libvaccel-noop.so");
    let exec = artifact_dir().join("libvaccel-exec.so");
    let mytestlib = artifact("libmytestlib.so");
    artifact("libvaccel_noop.so");
    artifact("libvaccel_exec.so");

    for library in [&noop, &exec] {
        // Everything they need from the host, the stand-in has (upstream's libvaccel too).
        let missing: Vec<String> = imported_api(library)
            .into_iter()
            .filter(|s| !STAND_IN_API.contains(&s.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{} imports {missing:?}",
            library.display()
        );
    }

    run_stand_in(
        &exe,
        work.path(),
        &[&noop],
        "noop",
        &[
            "Registered plugin noop ",
            "init returned 0",
            "noop returned 0",
            "fini returned 0",
            "Unregistered plugin noop",
        ],
    );

    run_stand_in(
        &exe,
        work.path(),
        &[&exec, &mytestlib],
        "exec",
        &[
            "Registered plugin exec ",
            "init returned 0",
            "exec returned 0, output 42",
            "fini returned 0",
            "Unregistered plugin exec",
        ],
    );
}

#[test]
fn the_stand_in_serves_an_upstream_style_c_plugin_and_refuses_an_unlinked_entry() {
    let work = tempfile::tempdir().unwrap();
    let exe = stand_in(work.path());

    // A plugin written against upstream's headers: registers its ops and logs through the
    // stand-in's C API (the check that the stand-in is a faithful host).
    let cplug = work.path().join("libcplug.so");
    build_plugin(&c_source("cplugin.c"), &cplug, &[]);
    run_stand_in(
        &exe,
        work.path(),
        &[&cplug],
        "noop",
        &[
            "Registered plugin cplug 1.2.3",
            "host log: [cplug] init",
            "init returned 0 (1 calls to vaccel_plugin_register_ops)",
            "host log: [cplug] noop for session 1 (rundir set: yes)",
            "noop returned 0",
        ],
    );

    // The descriptor form our libraries had: refused, as upstream refuses it.
    let unlinked = work.path().join("libnullentry.so");
    build_plugin(&c_source("null_entry_plugin.c"), &unlinked, &[]);
    let rundir = work.path().join("rundir-unlinked");
    std::fs::create_dir_all(&rundir).unwrap();
    let mut cmd = program(&exe, work.path());
    cmd.arg(&unlinked).arg("noop").arg(&rundir);
    let out = output(&mut cmd);
    assert!(!out.status.success(), "{}", context(&cmd, &out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("entry is not self-linked"),
        "{}",
        context(&cmd, &out)
    );
}

#[test]
fn our_loader_accepts_both_descriptor_forms() {
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("noop_app");
    build_program(&[c_source("noop_app.c")], &app);
    let unlinked = work.path().join("libnullentry.so");
    build_plugin(&c_source("null_entry_plugin.c"), &unlinked, &[]);
    let noop = artifact_dir().join("libvaccel-noop.so");
    artifact("libvaccel_noop.so");

    for (plugin, line) in [
        (&unlinked, "[nullentry] noop for session 1"),
        (&noop, "[noop] Calling no-op for session 1"),
    ] {
        let mut cmd = program(&app, work.path());
        cmd.env("VACCEL_PLUGINS", plugin)
            .env("VACCEL_LOG_LEVEL", "4");
        let out = check(&mut cmd);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(line) && stdout.contains("noop returned 0"),
            "missing {line:?}\n{}",
            context(&cmd, &out)
        );
    }
}
