//! C programs written against the headers, compiled with the system compiler and run against
//! `libvaccel.so`: enums and codes, every header through the noop plugin, upstream-style C
//! plugins loaded at run time, and the classify example's output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use vaccel_abi::*;

/// What the Rust definitions say, in the key format of `tests/c/layout.c`.
fn rust_values() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for e in [
        "vaccel_op_type_t",
        "vaccel_arg_type_t",
        "vaccel_plugin_type_t",
    ] {
        m.insert(format!("enum.{e}"), "4".to_owned());
    }
    for (k, v) in [
        ("VACCEL_OP_MAX", VACCEL_OP_MAX),
        ("VACCEL_ARG_MAX", VACCEL_ARG_MAX),
        ("VACCEL_RESOURCE_MAX", VACCEL_RESOURCE_MAX),
        ("VACCEL_BLOB_MAX", VACCEL_BLOB_MAX),
        ("VACCEL_PATH_MAX", VACCEL_PATH_MAX),
        ("VACCEL_LOG_MAX", VACCEL_LOG_MAX),
        ("VACCEL_PLUGIN_REMOTE", VACCEL_PLUGIN_REMOTE),
        ("VACCEL_TF_UINT64", VACCEL_TF_UINT64),
        ("VACCEL_TFLITE_INT4", 18),
        ("VACCEL_TORCH_FLOAT", VACCEL_TORCH_FLOAT),
    ] {
        m.insert(format!("value.{k}"), v.to_string());
    }
    for (k, v) in [
        ("VACCEL_ESESS", VACCEL_ESESS),
        ("VACCEL_EBACKEND", VACCEL_EBACKEND),
        ("VACCEL_ENOTSUP", VACCEL_ENOTSUP),
    ] {
        m.insert(format!("value.{k}"), v.to_string());
    }
    m.insert("version".to_owned(), vaccel_core::VACCEL_VERSION.to_owned());
    // Error codes: the header's macros against the runtime's list (rule F3).
    for code in vaccel_core::ErrorCode::ALL {
        m.insert(format!("error.{}", code.name()), code.as_i32().to_string());
    }
    // Enum names: the header's helpers against the runtime's enums (rule F3).
    use vaccel_core::{ArgType, BlobType, LogLevel, OpType, PathType, ResourceType};
    let names = |m: &mut BTreeMap<String, String>, kind: &str, all: Vec<(u32, &str)>, max: &str| {
        let top = all.len() as u32;
        for (v, n) in all {
            m.insert(format!("name.{kind}.{v}"), n.to_owned());
        }
        m.insert(format!("name.{kind}.{top}"), max.to_owned());
    };
    names(
        &mut m,
        "op",
        OpType::ALL
            .iter()
            .map(|o| (u32::from(o.value()), o.full_name()))
            .collect(),
        "VACCEL_OP_MAX",
    );
    names(
        &mut m,
        "arg",
        ArgType::ALL
            .iter()
            .map(|o| (o.value(), o.full_name()))
            .collect(),
        "VACCEL_ARG_MAX",
    );
    names(
        &mut m,
        "resource",
        ResourceType::ALL
            .iter()
            .map(|o| (o.value(), o.full_name()))
            .collect(),
        "VACCEL_RESOURCE_MAX",
    );
    names(
        &mut m,
        "blob",
        BlobType::ALL
            .iter()
            .map(|o| (o.value(), o.full_name()))
            .collect(),
        "VACCEL_BLOB_MAX",
    );
    names(
        &mut m,
        "path",
        PathType::ALL
            .iter()
            .map(|o| (o.value(), o.full_name()))
            .collect(),
        "VACCEL_PATH_MAX",
    );
    for l in LogLevel::ALL {
        m.insert(format!("name.log.{}", l.value()), l.full_name().to_owned());
    }
    m.insert(
        format!("name.log.{}", LogLevel::MAX),
        "VACCEL_LOG_MAX".to_owned(),
    );
    for op in OpType::ALL {
        m.insert(format!("lower.op.{}", op.value()), op.name());
    }
    m
}

#[test]
fn enums_constants_and_codes_agree_between_c_and_rust() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("layout");
    build_program(&[c_source("layout.c")], &exe);
    let mut cmd = program(&exe, work.path());
    cmd.env("VACCEL_BOOTSTRAP_ENABLED", "0");
    let out = check(&mut cmd);
    let c: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let rust = rust_values();
    let mut diffs = Vec::new();
    for (k, v) in &rust {
        match c.get(k) {
            Some(cv) if cv == v => {}
            other => diffs.push(format!("{k}: rust {v}, C {other:?}")),
        }
    }
    for k in c.keys().filter(|k| !rust.contains_key(*k)) {
        diffs.push(format!("{k}: only in C ({})", c[k]));
    }
    assert!(diffs.is_empty(), "header drift:\n{}", diffs.join("\n"));
}

#[test]
fn every_header_through_the_noop_plugin() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("api_test");
    build_program(&[c_source("api_test.c")], &exe);
    let scratch = work.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    std::fs::write(scratch.join("a.txt"), "hello").unwrap();
    std::fs::write(scratch.join("b.txt"), "world").unwrap();
    let mut cmd = program(&exe, work.path());
    cmd.arg(&scratch)
        .env("VACCEL_PLUGINS", "noop")
        .env("VACCEL_PROFILING_ENABLED", "1");
    assert_checks_pass(&mut cmd, 301);
}

#[test]
fn classify_prints_the_upstream_lines() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("classify");
    build_program(&[c_source("classify.c")], &exe);
    let image = workspace_root().join("examples/data/example.jpg");
    let mut cmd = program(&exe, work.path());
    cmd.arg(&image)
        .arg("2")
        .env("VACCEL_PLUGINS", "libvaccel-noop.so");
    let out = check(&mut cmd);
    assert_lines_in_order(
        &cmd,
        &out,
        &[
            "Initialized session with id: 1",
            "classification tags: This is a dummy classification tag!",
            "classification imagename: This is a dummy imgname!",
            "classification tags: This is a dummy classification tag!",
            "classification imagename: This is a dummy imgname!",
        ],
    );
}

#[test]
fn a_missing_plugin_is_a_logged_error_not_an_exit() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("classify");
    build_program(&[c_source("classify.c")], &exe);
    let image = workspace_root().join("examples/data/example.jpg");
    let mut cmd = program(&exe, work.path());
    cmd.arg(&image)
        .env("VACCEL_PLUGINS", "/nonexistent/libvaccel-nothing.so");
    let out = output(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The program ran (its own message) and got an error code from vaccel_session_init.
    assert!(
        stderr.contains("Could not initialize session"),
        "{}",
        context(&cmd, &out)
    );
    assert!(
        stdout.contains("<error>") && stdout.contains("libvaccel-nothing.so"),
        "{}",
        context(&cmd, &out)
    );
    assert_eq!(out.status.code(), Some(104), "{}", context(&cmd, &out));
}

/// Builds the `cplug` test plugin (optionally for another vAccel version) and its driver.
fn cplugin_setup(
    work: &std::path::Path,
    version: Option<&str>,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let plugin = work.join("libcplug.so");
    let define = version.map(|v| format!("CPLUG_VACCEL_VERSION=\"{v}\""));
    let defines: Vec<&str> = define.iter().map(String::as_str).collect();
    build_plugin(&c_source("cplugin.c"), &plugin, &defines);
    let app = work.join("cplugin_app");
    build_program(&[c_source("cplugin_app.c")], &app);
    (plugin, app)
}

#[test]
fn an_upstream_style_c_plugin_loads_by_path_and_serves_ops() {
    let work = tempfile::tempdir().unwrap();
    let (plugin, app) = cplugin_setup(work.path(), None);
    let data = work.path().join("data.txt");
    std::fs::write(&data, "payload").unwrap();
    let mut cmd = program(&app, work.path());
    cmd.arg(&data)
        .env("VACCEL_PLUGINS", &plugin)
        .env("VACCEL_LOG_LEVEL", "3");
    let out = output(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("0 failures"),
        "{}",
        context(&cmd, &out)
    );
    for line in [
        "[cplug] init",
        "Registered plugin cplug 1.2.3",
        "[cplug] noop for session 1 (rundir set: yes)",
        "[cplug] register resource 1 with session 1 (1 blobs)",
        "[cplug] res 1 blob 0: type VACCEL_BLOB_FILE name data.txt path set size 0 first -",
        "[cplug] count in session 1 refcount 1 plugin_priv seen by cplug",
        "[cplug] fini (0 resources still registered)",
    ] {
        assert!(
            stdout.contains(line),
            "missing {line:?}\n{}",
            context(&cmd, &out)
        );
    }
}

#[test]
fn a_plugin_for_another_major_version_is_refused_with_a_message() {
    let work = tempfile::tempdir().unwrap();
    let (plugin, app) = cplugin_setup(work.path(), Some("1.0.0"));
    let data = work.path().join("data.txt");
    std::fs::write(&data, "payload").unwrap();
    let mut cmd = program(&app, work.path());
    cmd.arg(&data).env("VACCEL_PLUGINS", &plugin);
    let out = output(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "Plugin is incompatible with current vAccel version (built w/ 1.0.0, used w/ 0.8.0)"
        ),
        "{}",
        context(&cmd, &out)
    );
    assert!(
        stdout.contains("FAIL ret == VACCEL_OK: session init: 104"),
        "{}",
        context(&cmd, &out)
    );
    assert!(
        !stdout.contains("[cplug] init"),
        "init ran\n{}",
        context(&cmd, &out)
    );

    // VACCEL_VERSION_IGNORE skips the check.
    let mut cmd = program(&app, work.path());
    cmd.arg(&data)
        .env("VACCEL_PLUGINS", &plugin)
        .env("VACCEL_VERSION_IGNORE", "1");
    let out = output(&mut cmd);
    assert!(out.status.success(), "{}", context(&cmd, &out));
}

#[test]
fn libraries_that_are_not_plugins_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("cplugin_app");
    build_program(&[c_source("cplugin_app.c")], &app);
    // A shared library without a `vaccel_plugin` symbol.
    let not_plugin = work.path().join("libnotaplugin.so");
    let src = work.path().join("notaplugin.c");
    std::fs::write(&src, "int answer(void) { return 42; }\n").unwrap();
    check(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&not_plugin)
            .arg(&src),
    );
    for (spec, message) in [
        (not_plugin.display().to_string(), "is not a vaccel plugin"),
        (src.display().to_string(), "could not dlopen"),
    ] {
        let mut cmd = program(&app, work.path());
        cmd.arg(&src).env("VACCEL_PLUGINS", &spec);
        let out = output(&mut cmd);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(message), "{}", context(&cmd, &out));
        assert!(
            stdout.contains("session init: 104"),
            "{}",
            context(&cmd, &out)
        );
    }
}

#[test]
fn the_static_library_links_too() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("classify_static");
    let archive = artifact("libvaccel.a");
    let mut cmd = Command::new("cc");
    cmd.arg("-o")
        .arg(&exe)
        .arg("-I")
        .arg(include_dir())
        .arg(c_source("classify.c"))
        .arg(&archive)
        .args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ]);
    check(&mut cmd);
    let image = workspace_root().join("examples/data/example.jpg");
    let mut cmd = program(&exe, work.path());
    cmd.arg(&image).env("VACCEL_PLUGINS", "noop");
    let out = check(&mut cmd);
    assert_lines_in_order(
        &cmd,
        &out,
        &[
            "Initialized session with id: 1",
            "classification tags: This is a dummy classification tag!",
        ],
    );
}
