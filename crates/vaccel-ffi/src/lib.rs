//! Where vAccel's Rust meets C, in one library that every program links: `libvaccel.so`,
//! the plugin SDK, the agent and the example programs.
//!
//! * [`export`]: what `vaccel_plugin_sdk::export_plugin!` expands to: the `vaccel_plugin`
//!   descriptor of a plugin library built in Rust, its hooks and op functions.
//! * [`ffi`]: the guard every C entry point runs in, and the checked conversions of C
//!   pointers, lengths and strings (the only place raw pointers become references, with the
//!   LiteRT/TF bindings and the exec plugin's `dl.rs`).
//! * [`arg`]: `struct vaccel_arg` arrays as typed args over the caller's buffers.
//! * [`cmem`]: memory handed across the boundary, always from the C allocator.
//! * [`views`]: the `struct vaccel_session` / `struct vaccel_resource` / `struct vaccel_blob`
//!   that C code sees for a Rust object, found in both directions.
//! * [`ops`]: the op table, and the C function of every op written once over a [`ops::Resolve`]
//!   (instantiated by `libvaccel.so` and by every plugin library built with the SDK).
//! * [`tensor`]: the three C tensor structs and their conversions to runtime tensors.
//! * [`loader`]: [`DlLoader`], which loads plugin libraries (upstream-style C plugins and
//!   plugins built with the SDK) and adapts them to [`vaccel_core::Plugin`].
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use std::sync::Arc;
//! use vaccel_core::{Config, Runtime, Session};
//!
//! let rt = Runtime::builder()
//!     .loader(Arc::new(vaccel_ffi::DlLoader::new()))
//!     .config(Config::default().with_plugins("/usr/local/lib/libvaccel-noop.so"))
//!     .build()?;
//! Session::new(&rt, 0)?.noop()?;
//! # Ok(()) }
//! ```
//!
//! # How C objects map to Rust ones
//!
//! A `struct vaccel_session` or `struct vaccel_resource` is caller memory. The C API records
//! the caller's struct as the object's *view*: a two-way map between the C address and the
//! Rust object, plus everything allocated for the view (path arrays, blob structs). Calls that
//! receive the C pointer find the Rust object through the view; plugin libraries receive the
//! same C struct, filled in (`sess->id`, `res->blobs`, `blob->path`, `blob->data` ...). Rust
//! objects created outside the C API get library-owned shadow views when a C plugin needs them.
//!
//! # Safety
//!
//! This crate is where `unsafe` code of the C boundary lives. Every helper checks null,
//! alignment, length and UTF-8 before it turns a pointer into a reference, and every C entry
//! point built on it runs inside [`ffi::guard`] (no panic crosses the C boundary).
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
// Rule N2: FFI items keep their C names.
#![allow(non_camel_case_types)]

pub mod arg;
pub mod cmem;
pub mod export;
pub mod ffi;
pub mod loader;
pub mod log_bridge;
pub mod ops;
pub mod tensor;
pub mod views;

pub use loader::DlLoader;
