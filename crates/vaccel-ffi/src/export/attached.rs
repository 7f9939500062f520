//! The library's runtime, and the host's sessions and resources as the plugin sees them:
//! [`Session`]s and [`Resource`]s *attached* to the host's C views, with the host's ids and
//! run directories, file blobs by the host's paths and buffer blobs borrowed from the host's
//! memory (never copied). Op calls find them without a process-wide lock.
//!
//! Where an attached session lives:
//!
//! * In `sess->priv` of the host's view, when the session is bound to this library (the view's
//!   `plugin` is this library's descriptor): upstream gives `priv` to the session's plugin.
//!   The box starts with a tag unique to this library, and a vaccel-rs host clears `priv`
//!   when it binds the session to another plugin, so a pointer found there is ours.
//! * In a map (under a lock) otherwise: sessions another plugin is bound to but that route
//!   ops here, and hosts that call no `session_init` hook for local plugins (upstream's
//!   libvaccel), for which the session is attached on first use.
//!
//! Resources are kept by the attached sessions they are registered with (a session's own
//! lock), and by the library's runtime (by id) while registered with any.

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use vaccel_abi::{VACCEL_BLOB_BUFFER, vaccel_blob, vaccel_resource, vaccel_session};
use vaccel_core::blob::Blob;
use vaccel_core::{Config, Error, Id, PathType, Resource, ResourceType, Result, Runtime, Session};

use super::{host, is_our_descriptor, state};
use crate::ffi::{self, invalid};

/// The runtime holding this library's plugin, from `init` to `fini`.
static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// Sessions attached outside `priv` (see the module docs), by the address of the host's view:
/// (host id, session).
type Unbound = HashMap<usize, (Id, Arc<Session>)>;

static UNBOUND: Mutex<Option<Unbound>> = Mutex::new(None);

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The error when the library's constructor failed.
pub(crate) fn not_constructed() -> Error {
    invalid("the plugin of this library could not be created")
}

/// Starts the library's runtime with the plugin (the descriptor's `init`).
pub(crate) fn start() -> Result<Runtime> {
    let mut guard = lock(&RUNTIME);
    if let Some(rt) = &*guard {
        return Ok(rt.clone());
    }
    let st = state().ok_or_else(not_constructed)?;
    let config = Config {
        plugins: None,
        ..st.config.clone()
    };
    let rt = Runtime::builder()
        .skip_logging()
        .config(config)
        .plugin(Arc::clone(&st.plugin))
        .build()?;
    *guard = Some(rt.clone());
    Ok(rt)
}

/// Releases every session attached outside `priv` and the runtime, which calls the plugin's
/// `fini` (the descriptor's `fini`). Plugin code runs outside the locks.
pub(crate) fn stop() {
    let unbound = lock(&UNBOUND).take();
    drop(unbound);
    let rt = lock(&RUNTIME).take();
    drop(rt);
}

/// The tag at the start of what this library stores in `sess->priv`: the address of a static
/// of this library, which no other library has.
static TAG: u8 = 0;

/// What `sess->priv` points at for a session bound to this library.
#[repr(C)]
struct Attached {
    /// `&TAG`: first, so that a check reads one pointer whatever the rest's layout.
    tag: *const u8,
    session: Arc<Session>,
}

/// The attached session in `priv`, if `sess` is bound to this library and has one.
///
/// # Safety
///
/// `sess` is a valid session view.
unsafe fn from_priv(sess: *mut vaccel_session) -> Option<&'static Attached> {
    // SAFETY: a valid view (caller guarantee); `plugin` and `priv` are plain fields.
    let (plugin, p) = unsafe { ((*sess).plugin, (*sess).r#priv) };
    if !is_our_descriptor(plugin) || p.is_null() {
        return None;
    }
    let p = p.cast::<Attached>();
    // SAFETY: the session is bound to this library, so `priv` is ours or null (module docs);
    // only the first field is read before the tag proves the rest is an `Attached` of this
    // library, alive until `release_session` takes it (the host calls no op concurrently with
    // a session's release).
    unsafe { (std::ptr::addr_of!((*p).tag).read() == &raw const TAG).then(|| &*p) }
}

/// Id, hint and run directory of a host session view.
///
/// # Safety
///
/// `sess` is a valid session view.
unsafe fn facts(sess: *mut vaccel_session) -> (Id, u32, PathBuf) {
    // SAFETY: caller guarantee; `rundir` is a NUL-terminated array inside the struct.
    unsafe {
        let rundir = (*sess).rundir;
        let bytes: Vec<u8> = rundir
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        let path = PathBuf::from(String::from_utf8_lossy(&bytes).into_owned());
        ((*sess).id, (*sess).hint, path)
    }
}

/// Attaches a session to the host's `sess` (the plugin's `session_init` runs) and keeps it:
/// in `priv` when bound to this library, else in the map.
///
/// # Safety
///
/// `sess` is a valid session view.
unsafe fn attach_session(sess: *mut vaccel_session, flags: u32) -> Result<Arc<Session>> {
    let rt = start()?;
    let plugin = Arc::clone(&state().ok_or_else(not_constructed)?.plugin);
    // SAFETY: caller guarantee.
    let (id, _, rundir) = unsafe { facts(sess) };
    let session = Session::attach(&rt, plugin, id, flags, rundir)?;
    // SAFETY: a valid view (caller guarantee); `plugin` is a plain field.
    if is_our_descriptor(unsafe { (*sess).plugin }) {
        let boxed = Box::new(Attached {
            tag: &raw const TAG,
            session: Arc::clone(&session),
        });
        // SAFETY: as above; `priv` belongs to the session's plugin, this library.
        unsafe { (*sess).r#priv = Box::into_raw(boxed).cast::<c_void>() };
    } else {
        lock(&UNBOUND)
            .get_or_insert_with(HashMap::new)
            .insert(sess as usize, (id, Arc::clone(&session)));
    }
    Ok(session)
}

/// The `session_init` hook: attaches the session and reports the plugin's remote id.
///
/// # Safety
///
/// `sess` is a valid session view.
pub(crate) unsafe fn init_session(sess: *mut vaccel_session, flags: u32) -> Result<()> {
    // SAFETY: caller guarantee.
    let session = unsafe { attach_session(sess, flags) }?;
    if session.remote_id() > 0 {
        // SAFETY: as above; `remote_id` is the plugin-owned field of the view.
        unsafe { (*sess).remote_id = session.remote_id() };
    }
    Ok(())
}

/// The session attached to `sess`: from `priv` without a lock, else from the map, else
/// attached now (a host that calls no `session_init` for local plugins).
///
/// # Safety
///
/// `sess` is a valid session view.
pub(crate) unsafe fn session(sess: *mut vaccel_session) -> Result<Arc<Session>> {
    if sess.is_null() {
        return Err(invalid("session is NULL"));
    }
    // SAFETY: caller guarantee.
    if let Some(attached) = unsafe { from_priv(sess) } {
        return Ok(Arc::clone(&attached.session));
    }
    // SAFETY: caller guarantee.
    let (id, hint, _) = unsafe { facts(sess) };
    if let Some((known, s)) = lock(&UNBOUND)
        .as_ref()
        .and_then(|m| m.get(&(sess as usize)))
        && *known == id
    {
        return Ok(Arc::clone(s));
    }
    // SAFETY: caller guarantee.
    unsafe { attach_session(sess, hint) }
}

/// The `session_release` hook: drops the attached session (the plugin's `session_release`
/// runs; the run directory stays, it is the host's).
///
/// # Safety
///
/// `sess` is a valid session view.
pub(crate) unsafe fn release_session(sess: *mut vaccel_session) {
    // SAFETY: caller guarantee.
    if unsafe { from_priv(sess) }.is_some() {
        // SAFETY: `priv` holds a box of ours (checked just above); it is taken once, and
        // cleared so that nothing finds it again.
        let boxed = unsafe {
            let p = (*sess).r#priv.cast::<Attached>();
            (*sess).r#priv = std::ptr::null_mut();
            Box::from_raw(p)
        };
        drop(boxed);
        return;
    }
    let removed = lock(&UNBOUND)
        .as_mut()
        .and_then(|m| m.remove(&(sess as usize)));
    drop(removed);
}

/// Bytes of a host buffer blob, kept alive by a reference the host holds for us.
struct HostBytes {
    ptr: *const u8,
    len: usize,
    token: *const c_void,
    release: unsafe extern "C" fn(*const c_void),
}

// SAFETY: the bytes are only read, and the host's reference (`token`) may be dropped from any
// thread (its contract).
unsafe impl Send for HostBytes {}
// SAFETY: as above: shared access only reads.
unsafe impl Sync for HostBytes {}

impl AsRef<[u8]> for HostBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the host keeps `len` bytes at `ptr` unchanged while `token` is held
        // (`vaccel_rs_host::resource_retain`'s contract); checked non-null at creation.
        unsafe { ffi::slice(self.ptr, self.len, "blob data") }.unwrap_or_default()
    }
}

impl Drop for HostBytes {
    fn drop(&mut self) {
        // SAFETY: `token` came from the host's `resource_retain` and is released once.
        unsafe { (self.release)(self.token) };
    }
}

/// The blobs of a host resource view: files by path, buffers borrowed from the host (a vaccel-rs
/// host) or copied (another host).
///
/// # Safety
///
/// `res` is a valid resource view whose blob structs are valid.
unsafe fn blobs(res: *const vaccel_resource) -> Result<Vec<Blob>> {
    let table = host();
    let retain = table.and_then(|h| h.resource_retain);
    let blob_data = table.and_then(|h| h.resource_blob);
    let release = table.and_then(|h| h.resource_release);
    // SAFETY: caller guarantee.
    let view = unsafe { &*res };
    // SAFETY: caller guarantee.
    let list = unsafe { ffi::slice(view.blobs.cast_const(), view.nr_blobs, "blobs") }?;
    let mut out = Vec::with_capacity(list.len());
    for (i, b) in list.iter().enumerate() {
        // SAFETY: caller guarantee.
        let b: &vaccel_blob = unsafe { b.as_ref() }.ok_or_else(|| invalid("blob is NULL"))?;
        // SAFETY: caller guarantee on the strings.
        let (name, path) = unsafe {
            (
                ffi::lossy_str(b.name).unwrap_or_default(),
                ffi::lossy_str(b.path),
            )
        };
        if let Some(path) = path.filter(|_| b.r#type != VACCEL_BLOB_BUFFER) {
            out.push(Blob::from_path_named(path, name)?);
            continue;
        }
        if let (Some(retain), Some(blob_data), Some(release)) = (retain, blob_data, release) {
            // SAFETY: the host's functions (bind's contract) on a valid view.
            let token = unsafe { retain(res) };
            if !token.is_null() {
                let (mut data, mut size) = (std::ptr::null::<u8>(), 0usize);
                // SAFETY: as above; the out-pointers are valid locals.
                let found = unsafe { blob_data(token, i, &raw mut data, &raw mut size) };
                if found && (!data.is_null() || size == 0) {
                    let bytes = Bytes::from_owner(HostBytes {
                        ptr: data,
                        len: size,
                        token,
                        release,
                    });
                    out.push(Blob::from_buf(bytes, name)?);
                    continue;
                }
                // SAFETY: from `retain` just above, released once.
                unsafe { release(token) };
            }
        }
        // SAFETY: caller guarantee on the bytes.
        let data = unsafe { ffi::slice(b.data.cast_const(), b.size, "blob data") }?;
        out.push(Blob::from_buf(data.to_vec(), name)?);
    }
    Ok(out)
}

/// A resource attached to a host resource view.
///
/// # Safety
///
/// `res` is a valid resource view.
unsafe fn attach_resource(rt: &Runtime, res: *const vaccel_resource) -> Result<Arc<Resource>> {
    // SAFETY: caller guarantee.
    let view = unsafe { &*res };
    let kind = ResourceType::from_value(view.r#type)
        .ok_or_else(|| invalid(format!("invalid resource type {}", view.r#type)))?;
    let path_type = PathType::from_value(view.path_type)
        .ok_or_else(|| invalid(format!("invalid path type {}", view.path_type)))?;
    // SAFETY: caller guarantee.
    let paths: Vec<String> =
        unsafe { ffi::slice(view.paths.cast_const(), view.nr_paths, "paths") }?
            .iter()
            // SAFETY: caller guarantee.
            .filter_map(|p| unsafe { ffi::lossy_str(*p) })
            .collect();
    // SAFETY: caller guarantee.
    let rundir = unsafe { ffi::lossy_str(view.rundir) }.map(PathBuf::from);
    // SAFETY: caller guarantee.
    let blobs = unsafe { blobs(res) }?;
    Resource::attach(rt, view.id, kind, path_type, paths, blobs, rundir)
}

/// The `resource_register` hook: attaches the resource (once per host resource) and registers
/// it with the attached session (the plugin's `resource_register` runs); reports the remote id.
///
/// # Safety
///
/// `res` and `sess` are valid views.
pub(crate) unsafe fn register(res: *mut vaccel_resource, sess: *mut vaccel_session) -> Result<()> {
    // SAFETY: caller guarantee.
    let session = unsafe { session(sess) }?;
    if res.is_null() {
        return Err(invalid("resource is NULL"));
    }
    // SAFETY: caller guarantee.
    let id = unsafe { (*res).id };
    if session.resource_by_id(id).is_ok() {
        return Ok(());
    }
    let rt = session.runtime().clone();
    let resource = match rt.resource_by_id(id) {
        Ok(r) if !r.is_released() => r,
        // SAFETY: caller guarantee.
        _ => unsafe { attach_resource(&rt, res) }?,
    };
    session.register(&resource)?;
    if resource.remote_id() > 0 {
        // SAFETY: as above; `remote_id` is the plugin-owned field of the view.
        unsafe { (*res).remote_id = resource.remote_id() };
    }
    Ok(())
}

/// The attached session and resource an op names; a resource the host never registered
/// with this library is registered now (hosts call the hook, this is a safety net).
///
/// # Safety
///
/// `res` and `sess` are valid views.
pub(crate) unsafe fn resource(
    res: *mut vaccel_resource,
    sess: *mut vaccel_session,
) -> Result<(Arc<Session>, Arc<Resource>)> {
    // SAFETY: caller guarantee.
    let session = unsafe { session(sess) }?;
    if res.is_null() {
        return Err(invalid("resource is NULL"));
    }
    // SAFETY: caller guarantee.
    let id = unsafe { (*res).id };
    if let Ok(r) = session.resource_by_id(id) {
        return Ok((session, r));
    }
    // SAFETY: caller guarantee.
    unsafe { register(res, sess) }?;
    let r = session.resource_by_id(id)?;
    Ok((session, r))
}

/// The `resource_unregister` hook: unregisters the attached resource (the plugin's
/// `resource_unregister` runs), dropping it when no attached session holds it any more.
///
/// # Safety
///
/// `res` and `sess` are valid views.
pub(crate) unsafe fn unregister(
    res: *mut vaccel_resource,
    sess: *mut vaccel_session,
) -> Result<()> {
    // SAFETY: caller guarantee.
    let session = unsafe { session(sess) }?;
    if res.is_null() {
        return Err(invalid("resource is NULL"));
    }
    // SAFETY: caller guarantee.
    let id = unsafe { (*res).id };
    let Ok(resource) = session.resource_by_id(id) else {
        return Ok(());
    };
    let result = session.unregister(&resource);
    if resource.refcount() == 0 {
        let _ = resource.release();
    }
    result
}

/// The `resource_sync` hook: the plugin refreshes the resource; its buffer bytes are copied
/// back into the host's blob buffers of the same sizes.
///
/// # Safety
///
/// `res` and `sess` are valid views.
pub(crate) unsafe fn sync(res: *mut vaccel_resource, sess: *mut vaccel_session) -> Result<()> {
    // SAFETY: caller guarantee.
    let (session, resource) = unsafe { resource(res, sess) }?;
    let plugin = &state().ok_or_else(not_constructed)?.plugin;
    plugin.resource_sync(&resource, &session)?;
    // SAFETY: caller guarantee.
    let view = unsafe { &*res };
    // SAFETY: caller guarantee.
    let host_blobs = unsafe { ffi::slice(view.blobs.cast_const(), view.nr_blobs, "blobs") }?;
    for (c, blob) in host_blobs.iter().zip(resource.blobs()) {
        let Some(data) = blob.data() else { continue };
        // SAFETY: valid blob structs (caller guarantee); `data`/`size` describe the host's
        // buffer, which plugins may write (upstream's sync contract). Bytes borrowed from that
        // very buffer are not copied onto themselves.
        unsafe {
            let c = &mut **c;
            if !c.data.is_null() && c.size == data.len() && c.data.cast_const() != data.as_ptr() {
                std::ptr::copy(data.as_ptr(), c.data, data.len());
            }
        }
    }
    Ok(())
}
