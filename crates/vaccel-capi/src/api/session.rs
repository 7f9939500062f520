//! `vaccel/session.h`: sessions.
//!
//! # Safety
//!
//! `sess` arguments of initialisers are null or writable `struct vaccel_session`s that stay
//! valid until released; other `sess`/`res` arguments are looked up by address (never
//! dereferenced unless known), so stale or foreign pointers are `VACCEL_EINVAL`.
//! Out-parameters are null or writable.

use std::ffi::c_int;
use std::sync::Arc;

use vaccel_abi::{vaccel_id_t, vaccel_resource, vaccel_session};
use vaccel_core::{ErrorCode, Session};

use crate::cmem;
use crate::ffi::{self, Res, guard, guard_value, invalid};
use crate::global;
use crate::views;

/// The C struct of a resource registered with a session.
fn resource_ptr(res: &vaccel_core::Resource) -> Res<*mut vaccel_resource> {
    views::resource_c(res).ok_or_else(|| invalid(format!("resource {} has no C struct", res.id())))
}

/// Creates a session into `sess` (caller memory).
///
/// # Safety
///
/// `sess` is writable (module docs).
pub(crate) unsafe fn init(sess: *mut vaccel_session, flags: u32) -> Res<Arc<Session>> {
    let c = ffi::out_ptr(sess, "sess")?;
    let rt = global::runtime(ErrorCode::ESESS)?;
    if views::session_from_c(c).is_ok() {
        return Err(invalid("session is already initialized"));
    }
    let created = {
        // A C plugin's `session_init` hook receives this very struct.
        let _pending = views::pending_session(c);
        Session::new(&rt, flags)
    };
    let session = match created {
        Ok(s) => s,
        Err(e) => {
            views::forget_session_c(c);
            return Err(e);
        }
    };
    // SAFETY: caller guarantee (writable, valid until released).
    unsafe { views::attach_session(c, &session) };
    let stored = global::with_state_mut(ErrorCode::ESESS, |s| {
        s.sessions.insert(session.id(), Arc::clone(&session));
        Ok(())
    });
    if let Err(e) = stored {
        views::forget_session(&session);
        return Err(e);
    }
    Ok(session)
}

/// Releases the session of `sess`.
fn release(sess: *mut vaccel_session) -> Res<()> {
    if !global::is_initialized() {
        return Err(ffi::err(ErrorCode::ESESS, "sessions are not initialized"));
    }
    let session =
        views::session_from_c(sess).map_err(|_| invalid("Cannot release uninitialized session"))?;
    let owned = global::with_state_mut(ErrorCode::ESESS, |s| Ok(s.sessions.remove(&session.id())))?;
    if owned.is_none() {
        return Err(invalid("session was not created through this API"));
    }
    // Dropping the last references releases it (plugins run now, outside every lock, and
    // still see the caller's struct); then the view goes.
    drop(owned);
    drop(session);
    views::forget_session_c(sess);
    Ok(())
}

/// `vaccel_session_init`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_session_init(sess: *mut vaccel_session, flags: u32) -> c_int {
    guard("vaccel_session_init", || {
        // SAFETY: forwarded caller guarantee.
        unsafe { init(sess, flags) }.map(|_| ())
    })
}

/// `vaccel_session_release`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_session_release(sess: *mut vaccel_session) -> c_int {
    guard("vaccel_session_release", || release(sess))
}

/// `vaccel_session_new`: a heap session; free with `vaccel_session_delete`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_session_new(sess: *mut *mut vaccel_session, flags: u32) -> c_int {
    guard("vaccel_session_new", || {
        let out = ffi::out_ptr(sess, "sess")?;
        let c = cmem::calloc::<vaccel_session>(1, "session")?;
        // SAFETY: a fresh allocation of the right size, owned until deleted.
        if let Err(e) = unsafe { init(c, flags) } {
            // SAFETY: allocated above; no view refers to it after a failed init.
            unsafe { cmem::free(c) };
            return Err(e);
        }
        // SAFETY: checked by `out_ptr`.
        unsafe { ffi::write_out(out, c) };
        Ok(())
    })
}

/// `vaccel_session_delete`.
///
/// # Safety
///
/// `sess` is null or from `vaccel_session_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_session_delete(sess: *mut vaccel_session) -> c_int {
    guard("vaccel_session_delete", || {
        release(sess)?;
        // SAFETY: a heap session from `vaccel_session_new` (caller guarantee), no longer
        // referenced by any view.
        unsafe { cmem::free(sess) };
        Ok(())
    })
}

/// `vaccel_session_get_by_id`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_session_get_by_id(
    sess: *mut *mut vaccel_session,
    id: vaccel_id_t,
) -> c_int {
    guard("vaccel_session_get_by_id", || {
        let out = ffi::out_ptr(sess, "sess")?;
        if id <= 0 {
            return Err(invalid(format!("invalid session id {id}")));
        }
        let rt = global::runtime(ErrorCode::ESESS)?;
        let session = rt.session_by_id(id)?;
        let c = views::session_c(&session)
            .ok_or_else(|| ffi::err(ErrorCode::ENOENT, format!("session {id} has no C struct")))?;
        // SAFETY: checked by `out_ptr`.
        unsafe { ffi::write_out(out, c) };
        Ok(())
    })
}

/// `vaccel_session_has_resource`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_session_has_resource(
    sess: *mut vaccel_session,
    res: *mut vaccel_resource,
) -> bool {
    guard_value(
        "vaccel_session_has_resource",
        false,
        |_| false,
        || {
            let session = views::session_from_c(sess)?;
            let resource = views::resource_from_c(res)?;
            Ok(session.has_resource(&resource))
        },
    )
}

/// `vaccel_session_resource_by_id`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_session_resource_by_id(
    sess: *mut vaccel_session,
    res: *mut *mut vaccel_resource,
    id: vaccel_id_t,
) -> c_int {
    guard("vaccel_session_resource_by_id", || {
        let out = ffi::out_ptr(res, "res")?;
        let session = views::session_from_c(sess)?;
        let found = session.resource_by_id(id)?;
        let c = resource_ptr(&found)?;
        // SAFETY: checked by `out_ptr`.
        unsafe { ffi::write_out(out, c) };
        Ok(())
    })
}

/// `vaccel_session_resource_by_type`: the first registered resource of a type.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_session_resource_by_type(
    sess: *mut vaccel_session,
    res: *mut *mut vaccel_resource,
    ty: u32,
) -> c_int {
    guard("vaccel_session_resource_by_type", || {
        let out = ffi::out_ptr(res, "res")?;
        let session = views::session_from_c(sess)?;
        let found = session.resource_by_type(views::resource_type(ty)?)?;
        // The view is refreshed so a plugin asking mid-operation sees current blobs.
        let c = views::resource_for_plugin(&found, session.is_remote())?.ptr;
        // SAFETY: checked by `out_ptr`.
        unsafe { ffi::write_out(out, c) };
        Ok(())
    })
}

/// `vaccel_session_resources_by_type`: a malloc'ed array the caller frees.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_session_resources_by_type(
    sess: *mut vaccel_session,
    resources: *mut *mut *mut vaccel_resource,
    nr_found: *mut usize,
    ty: u32,
) -> c_int {
    guard("vaccel_session_resources_by_type", || {
        let out = ffi::out_ptr(resources, "resources")?;
        let out_n = ffi::out_ptr(nr_found, "nr_found")?;
        let session = views::session_from_c(sess)?;
        let found = session.resources_by_type(views::resource_type(ty)?);
        if found.is_empty() {
            // SAFETY: checked by `out_ptr`.
            unsafe { ffi::write_out(out_n, 0) };
            return Err(ffi::err(ErrorCode::ENOENT, "no resource of that type"));
        }
        let ptrs = found
            .iter()
            .map(|r| views::resource_for_plugin(r, session.is_remote()).map(|g| g.ptr))
            .collect::<Res<Vec<_>>>()?;
        let array = cmem::calloc::<*mut vaccel_resource>(ptrs.len(), "resource array")?;
        // SAFETY: `array` holds `ptrs.len()` slots; out-params checked.
        unsafe {
            std::ptr::copy_nonoverlapping(ptrs.as_ptr(), array, ptrs.len());
            ffi::write_out(out, array);
            ffi::write_out(out_n, ptrs.len());
        }
        Ok(())
    })
}

/// `vaccel_session_update` (deprecated).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_session_update(sess: *mut vaccel_session, flags: u32) -> c_int {
    guard("vaccel_session_update", || {
        let session = views::session_from_c(sess)?;
        session.update(flags)?;
        // Refresh `hint` and `plugin` in the caller's struct.
        views::session_for_plugin(&session)?;
        Ok(())
    })
}

/// `vaccel_sess_init` (deprecated alias).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_sess_init(sess: *mut vaccel_session, flags: u32) -> c_int {
    // SAFETY: forwarded.
    unsafe { vaccel_session_init(sess, flags) }
}

/// `vaccel_sess_update` (deprecated alias).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_sess_update(sess: *mut vaccel_session, flags: u32) -> c_int {
    // SAFETY: forwarded.
    unsafe { vaccel_session_update(sess, flags) }
}

/// `vaccel_sess_free` (deprecated alias of release).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_sess_free(sess: *mut vaccel_session) -> c_int {
    // SAFETY: forwarded.
    unsafe { vaccel_session_release(sess) }
}

/// `vaccel_sess_has_resource` (deprecated alias).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_sess_has_resource(
    sess: *mut vaccel_session,
    res: *mut vaccel_resource,
) -> bool {
    // SAFETY: forwarded.
    unsafe { vaccel_session_has_resource(sess, res) }
}
