//! `vaccel/resource.h`: resources.
//!
//! # Safety
//!
//! `res` arguments of initialisers are null or writable `struct vaccel_resource`s that stay
//! valid until released; other `res`/`sess` arguments are looked up by address, so stale or
//! foreign pointers are `VACCEL_EINVAL`. Strings are null or NUL-terminated; arrays hold their
//! counts; buffers hold their sizes; out-parameters are null or writable.

use std::ffi::{c_char, c_int, c_long, c_void};
use std::sync::Arc;

use bytes::Bytes;
use vaccel_abi::{
    VACCEL_BLOB_BUFFER, VACCEL_BLOB_FILE, VACCEL_BLOB_MAPPED, vaccel_blob, vaccel_id_t,
    vaccel_resource, vaccel_session,
};
use vaccel_core::blob::Blob;
use vaccel_core::{ErrorCode, Resource, ResourceType, Runtime};

use crate::cmem;
use crate::ffi::{self, Res, guard, guard_value, invalid};
use crate::global;
use crate::views;

/// Stores a new resource and attaches the caller's struct to it.
///
/// # Safety
///
/// `c` is writable and stays valid until released.
unsafe fn adopt(c: *mut vaccel_resource, res: Arc<Resource>) -> Res<()> {
    // SAFETY: caller guarantee.
    unsafe { views::attach_resource(c, &res) };
    let stored = global::with_state_mut(ErrorCode::EPERM, |s| {
        s.resources.insert(res.id(), Arc::clone(&res));
        Ok(())
    });
    if let Err(e) = stored {
        views::forget_resource(&res);
        let _ = res.release();
        return Err(e);
    }
    Ok(())
}

/// Common start of the initialisers: the runtime, the checked struct and type.
fn start(res: *mut vaccel_resource, ty: u32) -> Res<(Runtime, *mut vaccel_resource, ResourceType)> {
    let c = ffi::out_ptr(res, "res")?;
    let rt = global::runtime(ErrorCode::EPERM)?;
    let kind = views::resource_type(ty)?;
    if views::resource_from_c(c).is_ok() {
        return Err(invalid("resource is already initialized"));
    }
    Ok((rt, c, kind))
}

/// # Safety
///
/// See the module docs.
unsafe fn init_paths(res: *mut vaccel_resource, paths: &[&str], ty: u32) -> Res<()> {
    let (rt, c, kind) = start(res, ty)?;
    let created = Resource::from_paths(&rt, paths, kind)?;
    // SAFETY: forwarded caller guarantee.
    unsafe { adopt(c, created) }
}

/// # Safety
///
/// See the module docs.
unsafe fn init_from_buf(
    res: *mut vaccel_resource,
    buf: *const c_void,
    nr_bytes: usize,
    ty: u32,
    filename: *const c_char,
    mem_only: bool,
) -> Res<()> {
    let (rt, c, kind) = start(res, ty)?;
    // SAFETY: caller guarantee.
    let (bytes, filename) = unsafe {
        (
            ffi::bytes(buf, nr_bytes, "buf")?,
            ffi::opt_str_arg(filename, "filename")?,
        )
    };
    if bytes.is_empty() {
        return Err(invalid("buf is empty"));
    }
    let created = Resource::from_buf(&rt, Bytes::copy_from_slice(bytes), kind, filename, mem_only)?;
    // SAFETY: forwarded caller guarantee.
    unsafe { adopt(c, created) }
}

/// A runtime blob from a caller's C blob (`vaccel_blob_valid` rules).
///
/// # Safety
///
/// `b` is null or a valid blob whose strings and data are readable.
unsafe fn blob_from_c(rt: &Runtime, b: *const vaccel_blob) -> Res<Blob> {
    // SAFETY: caller guarantee.
    let b = unsafe { ffi::as_ref(b, "blob") }?;
    // SAFETY: caller guarantee on the strings and bytes.
    let (name, path, data) = unsafe {
        (
            ffi::opt_str_arg(b.name, "blob name")?,
            ffi::opt_str_arg(b.path, "blob path")?,
            ffi::opt_slice(b.data, b.size)?,
        )
    };
    let name = name.ok_or_else(|| invalid("blob has no name"))?;
    match (b.r#type, path, data) {
        (VACCEL_BLOB_FILE, Some(path), _) => Blob::from_path_named(path, name),
        (VACCEL_BLOB_BUFFER, _, Some(data)) => Blob::from_buf(Bytes::copy_from_slice(data), name),
        (VACCEL_BLOB_MAPPED, path, data) => {
            let bytes = match (data, path) {
                (Some(d), _) => Bytes::copy_from_slice(d),
                (None, Some(p)) => Bytes::from(
                    std::fs::read(p).map_err(|e| vaccel_core::Error::io(format!("read {p}"), e))?,
                ),
                (None, None) => return Err(invalid("mapped blob has neither data nor path")),
            };
            // Staged as a mapped blob in the runtime's directory: the resource copies it into
            // its own directory under the blob's name, then the staged file goes.
            Blob::persist(bytes, rt.rundir(), name, false)
        }
        _ => Err(invalid("invalid blob (type, path or data missing)")),
    }
}

/// # Safety
///
/// See the module docs.
unsafe fn init_from_blobs(
    res: *mut vaccel_resource,
    blobs: *const *const vaccel_blob,
    nr_blobs: usize,
    ty: u32,
) -> Res<()> {
    let (rt, c, kind) = start(res, ty)?;
    // SAFETY: caller guarantee.
    let ptrs = unsafe { ffi::slice(blobs, nr_blobs, "blobs") }?;
    if ptrs.is_empty() {
        return Err(invalid("no blobs"));
    }
    let converted = ptrs
        .iter()
        // SAFETY: each pointer is null or a valid blob (caller guarantee).
        .map(|b| unsafe { blob_from_c(&rt, *b) })
        .collect::<Res<Vec<_>>>()?;
    let created = Resource::from_blobs(&rt, converted, kind)?;
    // SAFETY: forwarded caller guarantee.
    unsafe { adopt(c, created) }
}

/// Releases the resource of `res`.
fn release(res: *mut vaccel_resource) -> Res<()> {
    let resource = views::resource_from_c(res)?;
    let owned =
        global::with_state_mut(ErrorCode::EPERM, |s| Ok(s.resources.remove(&resource.id())))?;
    if owned.is_none() {
        return Err(invalid("resource was not created through this API"));
    }
    // Unregisters it from every session (plugins see the caller's struct), then the view goes.
    let result = resource.release();
    views::forget_resource(&resource);
    drop(owned);
    result
}

/// Heap variant of an initialiser.
fn new_with(
    out: *mut *mut vaccel_resource,
    init: impl FnOnce(*mut vaccel_resource) -> Res<()>,
) -> Res<()> {
    let out = ffi::out_ptr(out, "res")?;
    let c = cmem::calloc::<vaccel_resource>(1, "resource")?;
    if let Err(e) = init(c) {
        // SAFETY: allocated above; no view refers to it after a failed init.
        unsafe { cmem::free(c) };
        return Err(e);
    }
    // SAFETY: checked by `out_ptr`.
    unsafe { ffi::write_out(out, c) };
    Ok(())
}

/// Path strings of `init_multi`.
///
/// # Safety
///
/// `paths` holds `nr` NUL-terminated strings.
unsafe fn path_list<'a>(paths: *const *const c_char, nr: usize) -> Res<Vec<&'a str>> {
    // SAFETY: caller guarantee.
    let ptrs = unsafe { ffi::slice(paths, nr, "paths") }?;
    // SAFETY: each is NUL-terminated (caller guarantee).
    ptrs.iter()
        .map(|p| unsafe { ffi::str_arg(*p, "path") })
        .collect()
}

/// `vaccel_resource_init`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_init(
    res: *mut vaccel_resource,
    path: *const c_char,
    ty: u32,
) -> c_int {
    guard("vaccel_resource_init", || {
        // SAFETY: caller guarantee.
        let path = unsafe { ffi::str_arg(path, "path") }?;
        // SAFETY: caller guarantee.
        unsafe { init_paths(res, &[path], ty) }
    })
}

/// `vaccel_resource_init_multi`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_init_multi(
    res: *mut vaccel_resource,
    paths: *const *const c_char,
    nr_paths: usize,
    ty: u32,
) -> c_int {
    guard("vaccel_resource_init_multi", || {
        // SAFETY: caller guarantee.
        let list = unsafe { path_list(paths, nr_paths) }?;
        // SAFETY: caller guarantee.
        unsafe { init_paths(res, &list, ty) }
    })
}

/// `vaccel_resource_init_from_buf`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_init_from_buf(
    res: *mut vaccel_resource,
    buf: *const c_void,
    nr_bytes: usize,
    ty: u32,
    filename: *const c_char,
    mem_only: bool,
) -> c_int {
    // SAFETY: forwarded caller guarantees.
    guard("vaccel_resource_init_from_buf", || unsafe {
        init_from_buf(res, buf, nr_bytes, ty, filename, mem_only)
    })
}

/// `vaccel_resource_init_from_blobs`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_init_from_blobs(
    res: *mut vaccel_resource,
    blobs: *const *const vaccel_blob,
    nr_blobs: usize,
    ty: u32,
) -> c_int {
    // SAFETY: forwarded caller guarantees.
    guard("vaccel_resource_init_from_blobs", || unsafe {
        init_from_blobs(res, blobs, nr_blobs, ty)
    })
}

/// `vaccel_resource_release`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_release(res: *mut vaccel_resource) -> c_int {
    guard("vaccel_resource_release", || release(res))
}

/// `vaccel_resource_new`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_new(
    res: *mut *mut vaccel_resource,
    path: *const c_char,
    ty: u32,
) -> c_int {
    guard("vaccel_resource_new", || {
        // SAFETY: caller guarantee.
        let path = unsafe { ffi::str_arg(path, "path") }?;
        // SAFETY: a fresh allocation for the struct.
        new_with(res, |c| unsafe { init_paths(c, &[path], ty) })
    })
}

/// `vaccel_resource_multi_new`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_multi_new(
    res: *mut *mut vaccel_resource,
    paths: *const *const c_char,
    nr_paths: usize,
    ty: u32,
) -> c_int {
    guard("vaccel_resource_multi_new", || {
        // SAFETY: caller guarantee.
        let list = unsafe { path_list(paths, nr_paths) }?;
        // SAFETY: a fresh allocation for the struct.
        new_with(res, |c| unsafe { init_paths(c, &list, ty) })
    })
}

/// `vaccel_resource_from_buf`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_from_buf(
    res: *mut *mut vaccel_resource,
    buf: *const c_void,
    nr_bytes: usize,
    ty: u32,
    filename: *const c_char,
    mem_only: bool,
) -> c_int {
    guard("vaccel_resource_from_buf", || {
        // SAFETY: a fresh allocation; forwarded caller guarantees.
        new_with(res, |c| unsafe {
            init_from_buf(c, buf, nr_bytes, ty, filename, mem_only)
        })
    })
}

/// `vaccel_resource_from_blobs`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_from_blobs(
    res: *mut *mut vaccel_resource,
    blobs: *const *const vaccel_blob,
    nr_blobs: usize,
    ty: u32,
) -> c_int {
    guard("vaccel_resource_from_blobs", || {
        // SAFETY: a fresh allocation; forwarded caller guarantees.
        new_with(res, |c| unsafe { init_from_blobs(c, blobs, nr_blobs, ty) })
    })
}

/// `vaccel_resource_delete`.
///
/// # Safety
///
/// `res` is null or from a `vaccel_resource_*new`/`_from_*` function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_delete(res: *mut vaccel_resource) -> c_int {
    guard("vaccel_resource_delete", || {
        release(res)?;
        // SAFETY: a heap resource (caller guarantee), no longer referenced by any view.
        unsafe { cmem::free(res) };
        Ok(())
    })
}

/// What a membership call changes: the resource's view always, and the session's view (its
/// resource list) only for registration and unregistration.
#[derive(Clone, Copy, PartialEq)]
enum Refresh {
    Resource,
    ResourceAndSession,
}

/// A call between a resource view and a session view: both resolved, `call` run, then the
/// views refreshed whatever it returned (a failed call may have changed the resource's state).
fn membership(
    what: &'static str,
    res: *mut vaccel_resource,
    sess: *mut vaccel_session,
    refresh: Refresh,
    call: impl FnOnce(&Arc<vaccel_core::Session>, &Arc<Resource>) -> Res<()>,
) -> c_int {
    guard(what, || {
        let resource = views::resource_from_c(res)?;
        let session = views::session_from_c(sess)?;
        let result = call(&session, &resource);
        views::refresh_resource(&resource);
        if refresh == Refresh::ResourceAndSession {
            views::session_for_plugin(&session)?;
        }
        result
    })
}

/// `vaccel_resource_register`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_register(
    res: *mut vaccel_resource,
    sess: *mut vaccel_session,
) -> c_int {
    membership(
        "vaccel_resource_register",
        res,
        sess,
        Refresh::ResourceAndSession,
        |s, r| s.register(r),
    )
}

/// `vaccel_resource_unregister`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_unregister(
    res: *mut vaccel_resource,
    sess: *mut vaccel_session,
) -> c_int {
    membership(
        "vaccel_resource_unregister",
        res,
        sess,
        Refresh::ResourceAndSession,
        |s, r| s.unregister(r),
    )
}

/// `vaccel_resource_sync`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_sync(
    res: *mut vaccel_resource,
    sess: *mut vaccel_session,
) -> c_int {
    membership(
        "vaccel_resource_sync",
        res,
        sess,
        Refresh::Resource,
        |s, r| s.sync(r),
    )
}

/// `vaccel_resource_refcount`: sessions registered with, or `-VACCEL_EINVAL`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_refcount(res: *const vaccel_resource) -> c_long {
    let einval = -c_long::from(ErrorCode::EINVAL.as_i32());
    guard_value(
        "vaccel_resource_refcount",
        einval,
        |_| einval,
        || {
            let resource = views::resource_from_c(res)?;
            Ok(c_long::try_from(resource.refcount()).unwrap_or(c_long::MAX))
        },
    )
}

/// `vaccel_resource_directory`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_directory(
    res: *mut vaccel_resource,
    out_path: *mut c_char,
    out_path_size: usize,
    alloc_path: *mut *mut c_char,
) -> c_int {
    guard("vaccel_resource_directory", || {
        let resource = views::resource_from_c(res)?;
        let dir = resource.directory()?;
        let dir = dir.to_string_lossy();
        if !alloc_path.is_null() {
            let out = ffi::out_ptr(alloc_path, "alloc_path")?;
            let p = cmem::strdup(&dir, "directory")?;
            // SAFETY: checked by `out_ptr`.
            unsafe { ffi::write_out(out, p) };
            return Ok(());
        }
        if out_path_size <= dir.len() {
            return Err(invalid("out_path is too small for the directory"));
        }
        // SAFETY: `out_path` holds `out_path_size` writable bytes (caller guarantee).
        let out = unsafe { ffi::slice_mut(out_path.cast::<u8>(), out_path_size, "out_path") }?;
        vaccel_core::arg::write_c_string(out, &dir);
        Ok(())
    })
}

/// Live resources of a type (with C structs), oldest first.
fn typed(ty: u32) -> Res<Vec<*mut vaccel_resource>> {
    let kind = views::resource_type(ty)?;
    let rt = global::runtime(ErrorCode::EPERM)?;
    let found: Vec<_> = rt
        .resources_by_type(kind)
        .iter()
        .filter_map(|r| views::resource_c(r))
        .collect();
    if found.is_empty() {
        return Err(ffi::err(ErrorCode::ENOENT, format!("no {kind} resource")));
    }
    Ok(found)
}

/// `vaccel_resource_get_by_id`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_get_by_id(
    res: *mut *mut vaccel_resource,
    id: vaccel_id_t,
) -> c_int {
    guard("vaccel_resource_get_by_id", || {
        let out = ffi::out_ptr(res, "res")?;
        let rt = global::runtime(ErrorCode::EPERM)?;
        let found = rt.resource_by_id(id)?;
        let c = views::resource_c(&found)
            .ok_or_else(|| ffi::err(ErrorCode::ENOENT, format!("resource {id} has no C struct")))?;
        // SAFETY: checked by `out_ptr`.
        unsafe { ffi::write_out(out, c) };
        Ok(())
    })
}

/// `vaccel_resource_get_by_type`: the first created live resource of a type.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_get_by_type(
    res: *mut *mut vaccel_resource,
    ty: u32,
) -> c_int {
    guard("vaccel_resource_get_by_type", || {
        let out = ffi::out_ptr(res, "res")?;
        let first = typed(ty)?
            .first()
            .copied()
            .ok_or_else(|| ffi::err(ErrorCode::ENOENT, "no resource"))?;
        // SAFETY: checked by `out_ptr`.
        unsafe { ffi::write_out(out, first) };
        Ok(())
    })
}

/// `vaccel_resource_get_all_by_type`: a malloc'ed array the caller frees.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_resource_get_all_by_type(
    res: *mut *mut *mut vaccel_resource,
    nr_found: *mut usize,
    ty: u32,
) -> c_int {
    guard("vaccel_resource_get_all_by_type", || {
        let out = ffi::out_ptr(res, "res")?;
        let out_n = ffi::out_ptr(nr_found, "nr_found")?;
        let found = match typed(ty) {
            Ok(found) => found,
            Err(e) => {
                if e.code() == ErrorCode::ENOENT {
                    // SAFETY: checked by `out_ptr`.
                    unsafe { ffi::write_out(out_n, 0) };
                }
                return Err(e);
            }
        };
        let array = cmem::calloc::<*mut vaccel_resource>(found.len(), "resource array")?;
        // SAFETY: `array` holds `found.len()` slots; out-params checked.
        unsafe {
            std::ptr::copy_nonoverlapping(found.as_ptr(), array, found.len());
            ffi::write_out(out, array);
            ffi::write_out(out_n, found.len());
        }
        Ok(())
    })
}
