//! The integration tests load upstream-style C plugins into the test program itself, which
//! must then export the C API they call, as every vaccel-rs program does (see `link_c_api`).
fn main() {
    println!("cargo:rustc-link-arg-tests=-Wl,--export-dynamic-symbol=vaccel_*");
}
