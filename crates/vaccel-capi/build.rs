//! Compiles the C part of the C API (`src/api/slog.c`: `slog_print`, variadic, which Rust
//! cannot define) into a static library linked with this crate, so that `libvaccel.so` and
//! every Rust program linking the C API contain it.
//!
//! The integration tests load upstream-style C plugins into the test program itself, which
//! must then export the C API they call, as every vaccel-rs program does (see `link_c_api`):
//! the `vaccel_*` functions, `slog_print` (what `vaccel/log.h`'s macros call) and
//! `fs_file_read` (what upstream's examples call).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/api/slog.c");
    println!("cargo::rerun-if-changed=include/slog.h");
    for symbol in ["vaccel_*", "slog_print", "fs_file_read"] {
        println!("cargo::rustc-link-arg-tests=-Wl,--export-dynamic-symbol={symbol}");
    }
    // Without it the library would lack `slog_print`: a failure fails the build.
    cc::Build::new()
        .file("src/api/slog.c")
        .include("include")
        .std("c11")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("vaccel_capi_c");
}
