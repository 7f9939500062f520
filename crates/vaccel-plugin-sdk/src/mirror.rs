//! The library's private runtime, and the mirror sessions and resources that stand for the
//! host's: what plugin methods receive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use vaccel_abi::{
    VACCEL_BLOB_BUFFER, VACCEL_PATH_LOCAL_DIR, vaccel_blob, vaccel_resource, vaccel_session,
};
use vaccel_core::blob::Blob;
use vaccel_core::{Config, Error, Id, Resource, ResourceType, Result, Runtime, Session};

use crate::descriptor::state;
use crate::ffi::{self, invalid};

struct Mirror {
    rt: Runtime,
    /// By the address of the host's session view: (host id, mirror).
    sessions: HashMap<usize, (Id, Arc<Session>)>,
    /// By the address of the host's resource view: (host id, mirror).
    resources: HashMap<usize, (Id, Arc<Resource>)>,
}

static MIRROR: Mutex<Option<Mirror>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Mirror>> {
    MIRROR.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The error when the library's constructor failed.
pub(crate) fn not_constructed() -> Error {
    invalid("the plugin of this library could not be created")
}

/// Starts the private runtime with the plugin (the plugin's `init`).
pub(crate) fn start() -> Result<()> {
    let mut guard = lock();
    if guard.is_some() {
        return Ok(());
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
    *guard = Some(Mirror {
        rt,
        sessions: HashMap::new(),
        resources: HashMap::new(),
    });
    Ok(())
}

/// Releases every mirror and the runtime, which calls the plugin's `fini` (the plugin's
/// `fini`). Plugin code runs outside the lock.
pub(crate) fn stop() {
    let Some(mirror) = lock().take() else {
        return;
    };
    let Mirror {
        rt,
        sessions,
        resources,
    } = mirror;
    drop(sessions);
    for (_, (_, res)) in resources {
        let _ = res.release();
    }
    drop(rt);
}

fn addr<T>(p: *const T) -> usize {
    p as usize
}

fn with_mirror<T>(f: impl FnOnce(&mut Mirror) -> Result<T>) -> Result<T> {
    if lock().is_none() {
        // Ops before `init` (a host that skipped it): start now.
        start()?;
    }
    let mut guard = lock();
    let mirror = guard.as_mut().ok_or_else(not_constructed)?;
    f(mirror)
}

/// The mirror of a host session, created on first use.
///
/// # Safety
///
/// `sess` is a valid session view (the host's contract for hooks and ops).
pub(crate) unsafe fn session(sess: *mut vaccel_session) -> Result<Arc<Session>> {
    if sess.is_null() {
        return Err(invalid("session is NULL"));
    }
    // SAFETY: caller guarantee.
    let id = unsafe { (*sess).id };
    with_mirror(|m| {
        if let Some((host_id, s)) = m.sessions.get(&addr(sess))
            && *host_id == id
        {
            return Ok(Arc::clone(s));
        }
        let s = Session::new(&m.rt, 0)?;
        m.sessions.insert(addr(sess), (id, Arc::clone(&s)));
        Ok(s)
    })
}

/// Drops the mirror of a host session (its resources are unregistered, the plugin told).
pub(crate) fn release_session(sess: *mut vaccel_session) {
    let removed = lock().as_mut().and_then(|m| m.sessions.remove(&addr(sess)));
    drop(removed);
}

/// The blobs of a host resource view, as runtime blobs (files by path, buffers copied).
///
/// # Safety
///
/// `res` is a valid resource view whose blob structs are valid.
unsafe fn blobs(res: &vaccel_resource) -> Result<Vec<Blob>> {
    // SAFETY: caller guarantee.
    let list = unsafe { ffi::slice(res.blobs.cast_const(), res.nr_blobs, "blobs") }?;
    let mut out = Vec::with_capacity(list.len());
    for b in list {
        // SAFETY: caller guarantee.
        let b: &vaccel_blob = unsafe { b.as_ref() }.ok_or_else(|| invalid("blob is NULL"))?;
        // SAFETY: caller guarantee on the strings and bytes.
        let (name, path) = unsafe { (ffi::lossy(b.name).unwrap_or_default(), ffi::lossy(b.path)) };
        match path {
            Some(path) if b.r#type != VACCEL_BLOB_BUFFER => {
                out.push(Blob::from_path_named(path, name)?);
            }
            _ => {
                // SAFETY: caller guarantee.
                let data = unsafe { ffi::slice(b.data.cast_const(), b.size, "blob data") }?;
                out.push(Blob::from_buf(data.to_vec(), name)?);
            }
        }
    }
    Ok(out)
}

/// A mirror resource for a host resource view.
///
/// # Safety
///
/// `res` is a valid resource view.
unsafe fn create(rt: &Runtime, res: &vaccel_resource) -> Result<Arc<Resource>> {
    let kind = ResourceType::from_value(res.r#type)
        .ok_or_else(|| invalid(format!("invalid resource type {}", res.r#type)))?;
    // SAFETY: caller guarantee.
    let paths: Vec<String> = unsafe { ffi::slice(res.paths.cast_const(), res.nr_paths, "paths") }?
        .iter()
        // SAFETY: caller guarantee.
        .filter_map(|p| unsafe { ffi::lossy(*p) })
        .collect();
    if res.path_type == VACCEL_PATH_LOCAL_DIR && !paths.is_empty() {
        return Resource::from_paths(rt, &paths, kind);
    }
    if res.nr_blobs > 0 {
        // SAFETY: caller guarantee.
        return Resource::from_blobs(rt, unsafe { blobs(res) }?, kind);
    }
    if !paths.is_empty() {
        return Resource::from_paths(rt, &paths, kind);
    }
    Err(invalid("resource has neither blobs nor paths"))
}

/// The mirror of a host resource, registered with the mirror of `sess`; created (and
/// registered) on first use.
///
/// # Safety
///
/// `res` and `sess` are valid views.
pub(crate) unsafe fn resource(
    res: *mut vaccel_resource,
    sess: *mut vaccel_session,
) -> Result<(Arc<Session>, Arc<Resource>)> {
    // SAFETY: caller guarantee.
    let mirror_sess = unsafe { session(sess) }?;
    // SAFETY: caller guarantee.
    let view = unsafe { res.as_ref() }.ok_or_else(|| invalid("resource is NULL"))?;
    let mirror_res = with_mirror(|m| {
        if let Some((host_id, r)) = m.resources.get(&addr(res))
            && *host_id == view.id
            && !r.is_released()
        {
            return Ok(Arc::clone(r));
        }
        // SAFETY: caller guarantee.
        let r = unsafe { create(&m.rt, view) }?;
        m.resources.insert(addr(res), (view.id, Arc::clone(&r)));
        Ok(r)
    })?;
    if !mirror_sess.has_resource(&mirror_res) {
        // Calls the plugin's `resource_register` hook with the mirrors.
        mirror_sess.register(&mirror_res)?;
    }
    Ok((mirror_sess, mirror_res))
}

/// The `resource_unregister` hook: unregisters the mirror, releasing it when no mirror
/// session holds it any more.
///
/// # Safety
///
/// `res` and `sess` are valid views.
pub(crate) unsafe fn unregister(
    res: *mut vaccel_resource,
    sess: *mut vaccel_session,
) -> Result<()> {
    let found = lock().as_ref().and_then(|m| {
        let r = m.resources.get(&addr(res)).map(|(_, r)| Arc::clone(r))?;
        let s = m.sessions.get(&addr(sess)).map(|(_, s)| Arc::clone(s))?;
        Some((s, r))
    });
    let Some((mirror_sess, mirror_res)) = found else {
        return Ok(());
    };
    let result = if mirror_sess.has_resource(&mirror_res) {
        mirror_sess.unregister(&mirror_res)
    } else {
        Ok(())
    };
    if mirror_res.refcount() == 0 {
        if let Some(m) = lock().as_mut() {
            m.resources.remove(&addr(res));
        }
        let _ = mirror_res.release();
    }
    result
}

/// The `resource_sync` hook: the plugin refreshes the mirror; its buffer bytes are copied
/// back into the host's blob buffers of the same sizes.
///
/// # Safety
///
/// `res` and `sess` are valid views.
pub(crate) unsafe fn sync(res: *mut vaccel_resource, sess: *mut vaccel_session) -> Result<()> {
    // SAFETY: caller guarantee.
    let (mirror_sess, mirror_res) = unsafe { resource(res, sess) }?;
    let plugin = &state().ok_or_else(not_constructed)?.plugin;
    plugin.resource_sync(&mirror_res, &mirror_sess)?;
    // SAFETY: caller guarantee.
    let view = unsafe { &*res };
    // SAFETY: caller guarantee.
    let host_blobs = unsafe { ffi::slice(view.blobs.cast_const(), view.nr_blobs, "blobs") }?;
    for (c, blob) in host_blobs.iter().zip(mirror_res.blobs()) {
        let Some(data) = blob.data() else { continue };
        // SAFETY: valid blob structs (caller guarantee); `data`/`size` describe the host's
        // buffer, which plugins may write (upstream's sync contract).
        unsafe {
            let c = &mut **c;
            if !c.data.is_null() && c.size == data.len() {
                std::ptr::copy(data.as_ptr(), c.data, data.len());
            }
        }
    }
    Ok(())
}
