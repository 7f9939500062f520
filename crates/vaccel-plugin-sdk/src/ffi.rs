//! The C boundary's helpers as the library's op functions and hooks use them: one set, from
//! `vaccel-ffi`, shared with `libvaccel.so`.

use std::ffi::c_int;

pub(crate) use vaccel_ffi::ffi::{invalid, lossy_str as lossy, slice};

/// Runs a hook or op body: `VACCEL_OK`, the error's code, or `VACCEL_EBACKEND` on a panic
/// (which never crosses into the host).
pub(crate) fn guard(body: impl FnOnce() -> vaccel_core::Result<()>) -> c_int {
    vaccel_ffi::ffi::guard("plugin library", body)
}
