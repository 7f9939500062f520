//! A plugin library sees the host's ids: a loaded upstream-style C plugin and a plugin built
//! with the SDK each report the session id the application got, through `libvaccel.so` (a C
//! program) and through a Rust program (this test, on the `vaccel` builder). The case that
//! tells: the library's session is the host's *second* one, the first being bound to
//! another plugin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use common::*;
use vaccel_core::{Config, PluginType, Resource, ResourceType, Session};

/// `tests/c/cplugin.c` built into `dir`.
fn cplug(dir: &Path) -> PathBuf {
    let lib = dir.join("libcplug.so");
    build_plugin(&c_source("cplugin.c"), &lib, &[]);
    lib
}

/// The cases: plugins to load, hints of the two sessions, and the line the plugin logs for a
/// noop on the second (session 2).
fn cases(work: &Path) -> [(String, u32, u32, &'static str); 2] {
    let noop_lib = artifact("libvaccel_noop.so");
    [
        // Session 1 on the bundled exec plugin, session 2 on the SDK-built noop library.
        (
            format!("exec:{}", noop_lib.display()),
            0,
            PluginType::DEBUG.bits(),
            "Calling no-op for session 2",
        ),
        // Session 1 on the bundled noop plugin, session 2 on the C plugin.
        (
            format!("noop:{}", cplug(work).display()),
            PluginType::DEBUG.bits(),
            PluginType::CPU.bits(),
            "[cplug] noop for session 2",
        ),
    ]
}

#[test]
fn plugin_libraries_see_the_session_ids_of_a_c_program() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("two_sessions");
    build_program(&[c_source("two_sessions.c")], &exe);
    for (plugins, first, second, line) in cases(work.path()) {
        let mut cmd = program(&exe, work.path());
        cmd.arg(first.to_string())
            .arg(second.to_string())
            .env("VACCEL_PLUGINS", &plugins)
            .env("VACCEL_LOG_LEVEL", "4");
        let out = check(&mut cmd);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("second session 2 plugin ") && stdout.contains("noop on session 2: 0"),
            "{}",
            context(&cmd, &out)
        );
        assert!(
            stdout.contains(line),
            "no {line:?}\n{}",
            context(&cmd, &out)
        );
    }
}

/// Held by every test that loads plugin libraries into this process: a library serves one
/// runtime at a time (a second load while it is loaded is refused, `PluginExists`), and the
/// tests run in parallel.
static IN_PROCESS: Mutex<()> = Mutex::new(());

fn one_runtime_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    IN_PROCESS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every log record of this process, as text.
static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record.args().to_string());
    }
    fn flush(&self) {}
}

#[test]
fn plugin_libraries_see_the_session_ids_of_a_rust_program() {
    let _serial = one_runtime_at_a_time();
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Trace);
    let work = tempfile::tempdir().unwrap();
    for (plugins, first, second, line) in cases(work.path()) {
        let rt = vaccel_capi::global::builder()
            .skip_logging()
            .rundir_base(work.path())
            .config(Config::default().with_plugins(plugins.clone()))
            .build()
            .unwrap_or_else(|e| panic!("{plugins}: {e}"));
        let a = Session::new(&rt, first).unwrap();
        let b = Session::new(&rt, second).unwrap();
        assert_eq!((a.id(), b.id()), (1, 2));
        b.noop().unwrap();
        let seen = RECORDS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert!(
            seen.iter().any(|r| r.contains(line)),
            "{plugins}: no {line:?} among the log records:\n{}",
            seen.join("\n")
        );
        drop((a, b));
        drop(rt);
    }
}

/// Regression: a Rust plugin library registers thread-exit destructors (its own standard
/// library's thread-locals) on the threads that call it; when it was unmapped with its runtime,
/// such a thread crashed (SIGSEGV) when it exited. SDK libraries now stay mapped.
#[test]
fn a_thread_that_called_an_sdk_library_exits_cleanly_after_the_library_is_unloaded() {
    let _serial = one_runtime_at_a_time();
    let work = tempfile::tempdir().unwrap();
    let lib = artifact("libvaccel_noop.so");
    let base = work.path().to_path_buf();
    let worker = std::thread::spawn(move || {
        let rt = vaccel_capi::global::builder()
            .skip_logging()
            .rundir_base(&base)
            .config(Config::default().with_plugins(lib.to_str().unwrap()))
            .build()
            .unwrap();
        Session::new(&rt, 0).unwrap().noop().unwrap();
        drop(rt);
    });
    worker
        .join()
        .expect("the thread that called the library died");
}

/// A buffer resource reaches an SDK library as the host's bytes (borrowed through the host's
/// `resource_retain`/`resource_blob`, released when the library lets go): the noop library's
/// `torch_model_load` reports the buffer's length, registration and release are clean, and the
/// bytes outlive nothing.
#[test]
fn an_sdk_library_reads_a_buffer_resource_of_the_host() {
    let _serial = one_runtime_at_a_time();
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Trace);
    let work = tempfile::tempdir().unwrap();
    let lib = artifact("libvaccel_noop.so");
    let rt = vaccel_capi::global::builder()
        .skip_logging()
        .rundir_base(work.path())
        .config(Config::default().with_plugins(lib.to_str().unwrap()))
        .build()
        .unwrap();
    let sess = Session::new(&rt, 0).unwrap();
    let bytes = vec![7u8; 12_345];
    let model = Resource::from_buf(&rt, bytes, ResourceType::Model, None, true).unwrap();
    sess.register(&model).unwrap();
    for _ in 0..3 {
        sess.torch_model_load(&model).unwrap();
    }
    let line = "Loading model from buffer of length: 12345";
    let seen = RECORDS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(
        seen.iter().filter(|r| r.contains(line)).count() >= 3,
        "no {line:?} three times among the log records:\n{}",
        seen.join("\n")
    );
    sess.unregister(&model).unwrap();
    model.release().unwrap();
    drop(sess);
    drop(rt);
}
