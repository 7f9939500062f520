//! vAccel's C API over the Rust runtime: the exported functions of upstream's headers and the
//! process-wide runtime behind them. `libvaccel.so` and `libvaccel.a` are this crate plus a
//! load-time bootstrap (crates/vaccel-capi/lib); Rust programs that load C plugin libraries
//! link it too, so the plugins find the functions they call (see [`exports`]).
//!
//! C programs written against upstream vAccel's headers (shipped in `include/`, the contract
//! of this crate) compile unchanged against them and run against this library; the structs
//! have upstream's layouts (defined once, in `vaccel-abi`), so binaries built against
//! upstream's headers work too. Behind the functions is one process-wide
//! [`vaccel_core::Runtime`], bootstrapped from the environment when the library is loaded
//! (spec §4.2), with the bundled plugins and [`DlLoader`] for `VACCEL_PLUGINS` entries that are
//! libraries.
//!
//! Rust programs load plugin libraries with [`vaccel_ffi::DlLoader`], which the `vaccel`
//! facade's builder installs.
//!
//! # How C objects map to Rust ones
//!
//! A `struct vaccel_session` or `struct vaccel_resource` is caller memory. Initialising one
//! creates the Rust object, keeps a strong reference to it in the global state (by id) and
//! records the C struct as the object's *view* (`vaccel_ffi::views`): a two-way map between the C
//! address and the Rust object, plus everything the library allocated for the view (path
//! arrays, blob structs). Calls that receive the C pointer find the Rust object through the
//! view; plugin libraries receive the same C struct, filled in (`sess->id`, `res->blobs`,
//! `blob->path`, `blob->data` ...). Rust objects created outside the C API get library-owned
//! shadow views when a C plugin needs them.
//!
//! # Safety
//!
//! Raw pointers become references only through `vaccel_ffi`'s checked helpers. Every exported function runs inside [`ffi::guard`] (no panic crosses the C
//! boundary), checks every pointer, length and string before use, writes out-parameters only
//! on success, and returns [`vaccel_core::Error::code`] values.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
// Rule N2: exported items keep their C names.
#![allow(non_camel_case_types)]

pub mod api;
pub mod global;

// The C boundary's machinery lives in `vaccel-ffi`; the shims use it under these names.
use vaccel_ffi::{cmem, ffi, loader, views};

pub use vaccel_ffi::DlLoader;

/// Makes a program that calls it contain the whole C API.
///
/// Plugin libraries loaded into a program need it: an upstream-style C plugin calls
/// `vaccel_plugin_register_ops`, the logging functions and the session/resource/arg helpers,
/// which it expects to find in the process (upstream: in `libvaccel.so`). The linker takes
/// code from a Rust library one object file at a time, and this crate is built as one
/// (`codegen-units = 1` in the workspace's profiles), so referencing one of its functions
/// brings in all of them. The `vaccel` facade calls this whenever it builds a runtime; the
/// program's binary also has to export the symbols (`-Wl,--export-dynamic-symbol=vaccel_*`,
/// see `examples/build.rs`), which a test checks against `libvaccel.so`'s list.
pub fn link_c_api() {
    std::hint::black_box(api::plugin::vaccel_plugin_register_ops as *const ());
}
