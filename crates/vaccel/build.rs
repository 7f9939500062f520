//! The benches load an upstream-style C plugin into the bench program, which must then export
//! the C API the plugin calls, as every vaccel-rs program does (`vaccel_capi::link_c_api`).
fn main() {
    for symbol in ["vaccel_*", "slog_print", "fs_file_read"] {
        println!("cargo::rustc-link-arg-benches=-Wl,--export-dynamic-symbol={symbol}");
    }
}
