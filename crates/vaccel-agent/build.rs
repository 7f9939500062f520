//! The programs export vAccel's C API, which the plugin libraries they load call: an
//! upstream-style C plugin registers its ops with `vaccel_plugin_register_ops` and logs with
//! `slog_print` (what `vaccel/log.h`'s macros call); upstream's example programs call
//! `fs_file_read`. The code is linked by the `vaccel` facade (`vaccel_capi::link_c_api`); this
//! makes the dynamic linker see it.
fn main() {
    for symbol in ["vaccel_*", "slog_print", "fs_file_read"] {
        println!("cargo::rustc-link-arg-bins=-Wl,--export-dynamic-symbol={symbol}");
    }
}
