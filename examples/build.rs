//! The programs export vAccel's C API, which the plugin libraries they load call: an
//! upstream-style C plugin registers its ops with `vaccel_plugin_register_ops` and logs with
//! `slog_print` (what `vaccel/log.h`'s macros call); upstream's example programs call
//! `fs_file_read`. The code is linked by the `vaccel` facade (`vaccel_capi::link_c_api`); this
//! makes the dynamic linker see it.
//!
//! Built without the CPU backends (`--no-default-features`, as `scripts/install.sh` installs
//! them), the programs load them as plugin libraries (`VACCEL_PLUGINS=cpu`): their RUNPATH
//! finds those beside them (cargo's profile directory) and in `../lib` (an install prefix).
//! Not in static programs (`+crt-static`, the thin client): they load no libraries, and a
//! static-pie executable with a RUNPATH crashes at start-up.
fn main() {
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if !features.split(',').any(|f| f == "crt-static") {
        println!("cargo::rustc-link-arg-bins=-Wl,-rpath,$ORIGIN:$ORIGIN/../lib");
    }
    for symbol in ["vaccel_*", "slog_print", "fs_file_read"] {
        println!("cargo::rustc-link-arg-bins=-Wl,--export-dynamic-symbol={symbol}");
    }
}
