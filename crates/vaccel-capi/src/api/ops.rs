//! The operations (`vaccel/ops/*.h`): the C function of every op comes from `vaccel_ffi`'s op
//! table (`c_op_functions!`), exported here over the application's views; `vaccel_genop` and
//! `vaccel_opencv_unpack`, which are no plugin ops, are written here.
//!
//! # Safety
//!
//! `sess`/resource arguments are looked up by address. `struct vaccel_arg` arrays hold their
//! counts and each arg's `buf` holds its `size`.

use std::ffi::c_int;
use std::sync::Arc;

use vaccel_abi::{vaccel_arg, vaccel_resource, vaccel_session};
use vaccel_core::{Resource, Session};

use crate::ffi::{Res, guard};
use crate::views;
use vaccel_ffi::arg::c_args_counted;

/// `libvaccel.so` finds the runtime objects of the application's own views.
#[derive(Debug)]
pub struct Views;

impl vaccel_ffi::ops::Resolve for Views {
    unsafe fn session(sess: *mut vaccel_session) -> Res<Arc<Session>> {
        views::session_from_c(sess)
    }

    /// The struct's `type` is read back first (the caller may have changed it since init,
    /// upstream checks the field): one that names no type is `EINVAL`, then the runtime's
    /// type check (`EINVAL`) comes before its registration check (`EPERM`).
    unsafe fn resource(
        res: *const vaccel_resource,
        _sess: *mut vaccel_session,
    ) -> Res<Arc<Resource>> {
        views::resource_for_op(res)
    }
}

// The op functions (`vaccel_noop`, `vaccel_exec`, ...), exported.
vaccel_ffi::c_op_functions!(pub mod table, crate::api::ops::Views, #[unsafe(no_mangle)]);

/// `vaccel_genop`: read[0] is the op type (UINT8), then the op's operands.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_genop(
    sess: *mut vaccel_session,
    read: *mut vaccel_arg,
    nr_read: c_int,
    write: *mut vaccel_arg,
    nr_write: c_int,
) -> c_int {
    guard("vaccel_genop", || {
        let session = views::session_from_c(sess)?;
        // SAFETY: caller guarantees (module docs).
        let (r, mut w) = unsafe { c_args_counted(read, nr_read, write, nr_write) }?;
        session.genop(&r, &mut w)
    })
}

/// `vaccel_opencv_unpack`: the same as `vaccel_opencv` (upstream's genop unpacker).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_opencv_unpack(
    sess: *mut vaccel_session,
    read: *mut vaccel_arg,
    nr_read: c_int,
    write: *mut vaccel_arg,
    nr_write: c_int,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { table::vaccel_opencv(sess, read, nr_read, write, nr_write) }
}
