//! `libvaccel.so` and `libvaccel.a`: vAccel's C API over the Rust runtime, and the loader of
//! plugin shared libraries.
//!
//! C programs written against upstream vAccel's headers (shipped in `include/`, the contract
//! of this crate) compile unchanged against them and run against this library; the structs
//! have upstream's layouts (defined once, in `vaccel-abi`), so binaries built against
//! upstream's headers work too. Behind the functions is one process-wide
//! [`vaccel_core::Runtime`], bootstrapped from the environment when the library is loaded
//! (spec §4.2), with the bundled plugins and [`DlLoader`] for `VACCEL_PLUGINS` entries that are
//! libraries.
//!
//! Rust programs use the loader directly:
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use std::sync::Arc;
//! use vaccel_core::{Config, Runtime, Session};
//!
//! let rt = Runtime::builder()
//!     .loader(Arc::new(vaccel::DlLoader::new()))
//!     .config(Config::default().with_plugins("/usr/local/lib/libvaccel-noop.so"))
//!     .build()?;
//! Session::new(&rt, 0)?.noop()?;
//! # Ok(()) }
//! ```
//!
//! # How C objects map to Rust ones
//!
//! A `struct vaccel_session` or `struct vaccel_resource` is caller memory. Initialising one
//! creates the Rust object, keeps a strong reference to it in the global state (by id) and
//! records the C struct as the object's *view* ([`views`]): a two-way map between the C
//! address and the Rust object, plus everything the library allocated for the view (path
//! arrays, blob structs). Calls that receive the C pointer find the Rust object through the
//! view; plugin libraries receive the same C struct, filled in (`sess->id`, `res->blobs`,
//! `blob->path`, `blob->data` ...). Rust objects created outside the C API get library-owned
//! shadow views when a C plugin needs them.
//!
//! # Safety
//!
//! This crate is one of the three places `unsafe` code lives (with the plugin ABI and the
//! loader). Every exported function runs inside [`ffi::guard`] (no panic crosses the C
//! boundary), checks every pointer, length and string before use, writes out-parameters only
//! on success, and returns [`vaccel_core::Error::code`] values.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
// Rule N2: exported items keep their C names.
#![allow(non_camel_case_types)]

pub mod api;
mod global;

// The C boundary's machinery lives in `vaccel-ffi`; the shims use it under these names.
use vaccel_ffi::{cmem, ffi, loader, views};

pub use vaccel_ffi::DlLoader;
