//! The programs export vAccel's C API, which the plugin libraries they load call (an
//! upstream-style C plugin registers its ops with `vaccel_plugin_register_ops`, logs with
//! `vaccel_log_write`...). The code is linked by the `vaccel` facade
//! (`vaccel_capi::link_c_api`); this makes the dynamic linker see it.
fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol=vaccel_*");
}
