//! Compiles the C part of the C API (`src/api/slog.c`: `slog_print`, variadic, which Rust
//! cannot define) into a static library linked with this crate, so that `libvaccel.so` and
//! every Rust program linking the C API contain it.
//!
//! The integration tests load upstream-style C plugins into the test program itself, which
//! must then export the C API they call, as every vaccel-rs program does (see `link_c_api`):
//! the `vaccel_*` functions, `slog_print` (what `vaccel/log.h`'s macros call) and
//! `fs_file_read` (what upstream's examples call).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/api/slog.c");
    println!("cargo::rerun-if-changed=include/slog.h");
    for symbol in ["vaccel_*", "slog_print", "fs_file_read"] {
        println!("cargo::rustc-link-arg-tests=-Wl,--export-dynamic-symbol={symbol}");
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(why) = compile_c(&out_dir) {
        // Without it the library would lack `slog_print`: fail the build, naming the command.
        eprintln!("{why}");
        std::process::exit(1);
    }
    println!("cargo::rustc-link-search=native={}", out_dir.display());
    println!("cargo::rustc-link-lib=static=vaccel_capi_c");
}

/// `$CC -c slog.c`, then `$AR crs libvaccel_capi_c.a slog.o` in `out_dir`.
fn compile_c(out_dir: &Path) -> Result<(), String> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let object = out_dir.join("slog.o");
    let cc = tool("CC", "cc");
    let mut compile = Command::new(&cc);
    compile
        .args([
            "-c", "-fPIC", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I",
        ])
        .arg(manifest.join("include"))
        .arg(manifest.join("src/api/slog.c"))
        .arg("-o")
        .arg(&object);
    run(&mut compile)?;
    let archive = out_dir.join("libvaccel_capi_c.a");
    // A stale archive would keep members `ar` does not replace.
    let _ = std::fs::remove_file(&archive);
    let mut pack = Command::new(tool("AR", "ar"));
    pack.arg("crs").arg(&archive).arg(&object);
    run(&mut pack)
}

/// The tool an environment variable names (with the target's suffix first, as cargo's `cc`
/// users expect: `CC_x86_64_unknown_linux_gnu`), else the default.
fn tool(var: &str, default: &str) -> String {
    println!("cargo::rerun-if-env-changed={var}");
    let target = std::env::var("TARGET")
        .unwrap_or_default()
        .replace('-', "_");
    let specific = format!("{var}_{target}");
    println!("cargo::rerun-if-env-changed={specific}");
    std::env::var(&specific)
        .or_else(|_| std::env::var(var))
        .unwrap_or_else(|_| default.to_owned())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    match cmd.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{cmd:?} failed: {status}")),
        Err(e) => Err(format!("could not run {cmd:?}: {e}")),
    }
}
