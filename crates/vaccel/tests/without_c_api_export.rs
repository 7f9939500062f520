//! A program that links the runtime but does not export the C API (this test binary: no
//! `-Wl,--export-dynamic-symbol=vaccel_*`) cannot serve an upstream-style C plugin, which calls
//! `vaccel_plugin_register_ops` and friends. The plugin is refused at load with the missing
//! symbol's name and what to do, instead of the process dying at the plugin's first call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use vaccel::Config;

#[test]
fn a_c_plugin_is_refused_with_the_missing_symbol_when_the_program_does_not_export_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libcplug.so");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vaccel-capi");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c/cplugin.c"))
        .status()
        .unwrap();
    assert!(status.success(), "compiling the C plugin failed");
    let err = vaccel::builder()
        .skip_logging()
        .rundir_base(dir.path())
        .config(Config::default().with_plugins(lib.to_str().unwrap()))
        .build()
        .expect_err("the plugin loaded without the C API it calls");
    let text = err.to_string();
    // Its first import from the host: a log line (`slog_print`) or an API call (`vaccel_*`).
    assert!(
        text.contains("undefined symbol: vaccel_") || text.contains("undefined symbol: slog_print"),
        "{text}"
    );
    assert!(text.contains("--export-dynamic-symbol=vaccel_*"), "{text}");
    assert!(text.contains(lib.to_str().unwrap()), "{text}");
}
