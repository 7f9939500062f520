//! C layouts of vAccel structures shared across the FFI boundary.
//!
//! This crate holds the `#[repr(C)]` types and constants that Rust and C code exchange: the exec
//! plugin uses them to call functions in user libraries, test libraries such as `libmytestlib.so`
//! use them to receive those calls, and the C API (`libvaccel.so`, crate `vaccel-capi`) and the
//! plugin loader use them for every public structure of upstream's headers (spec §1). Every
//! layout here matches upstream vAccel's headers field for field, and item names keep the C
//! names so one grep finds both sides. The tests pin sizes and offsets; the C API's tests check
//! the same numbers from C with `offsetof`/`sizeof` against the installed headers.
//!
//! The crate only defines types, so it contains no `unsafe` code; dereferencing the raw pointers
//! in these structures is the business of whoever receives them.
//!
//! ```
//! use std::ffi::c_void;
//! use vaccel_abi::{vaccel_arg, VACCEL_ARG_INT32};
//!
//! let mut value: i32 = 10;
//! let arg = vaccel_arg {
//!     buf: (&raw mut value).cast::<c_void>(),
//!     size: size_of::<i32>(),
//!     r#type: VACCEL_ARG_INT32,
//!     custom_type_id: 0,
//!     owned: false,
//! };
//! assert_eq!(arg.size, 4);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Rule N2: FFI items keep their C names.
#![allow(non_camel_case_types)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod arg;
mod consts;
mod objects;
mod ops;
mod plugin;
mod prof;

pub use arg::*;
pub use consts::*;
pub use objects::*;
pub use ops::*;
pub use plugin::*;
pub use prof::*;
