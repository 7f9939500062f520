//! The `exec` plugin: runs functions of shared libraries on the host (upstream §9.2).
//!
//! `exec` opens a library by path or name and calls one of its functions; `exec_with_resource`
//! does the same with a `LIB` resource whose last blob is the library and whose other blobs are
//! dependencies opened first with `RTLD_GLOBAL`. The function must follow the exec convention
//! ([`vaccel_abi::vaccel_exec_fn`]):
//!
//! ```c
//! int fn(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write);
//! ```
//!
//! It receives the callers' argument bytes in place (nothing is copied, outputs are written
//! straight into the caller's buffers) and returns 0 on success; anything else is reported as
//! `VACCEL_EBACKEND`.
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use std::sync::Arc;
//! use vaccel_core::{Arg, Runtime, Session};
//! use vaccel_plugin_exec::{ExecOptions, ExecPlugin};
//!
//! let rt = Runtime::builder()
//!     .plugin(Arc::new(ExecPlugin::new(ExecOptions::from_env())))
//!     .build()?;
//! let sess = Session::new(&rt, 0)?;
//! let mut out = 0i32;
//! sess.exec(
//!     "/usr/local/lib/libmytestlib.so",
//!     "mytestfunc",
//!     &[Arg::scalar(10i32)],
//!     &mut [Arg::out_scalar(&mut out)],
//! )?;
//! assert_eq!(out, 20);
//! # Ok(()) }
//! ```
//!
//! # Trust model
//!
//! Calling arbitrary C code cannot be made safe. The plugin therefore treats the libraries it
//! opens as trusted host code, exactly like upstream: whoever can name a library (an
//! application, or a remote guest through the agent) can run any code those libraries contain
//! with the privileges of this process, so deployments must only expose this plugin to callers
//! allowed to do that, and only install libraries they trust. The library's side of the
//! contract, which nothing here can check:
//!
//! * its initialisers and finalisers are sound (they run at `dlopen`/`dlclose`);
//! * a symbol a caller names is a function of the exec convention;
//! * the function reads `read[i].buf` (never writes it), writes at most `write[i].size` bytes
//!   into `write[i].buf`, keeps no pointer after returning and does not unwind.
//!
//! Everything on the Rust side is checked: outputs must be writable arguments, a library stays
//! open while any of its functions runs (also across a concurrent unregister), and a null or
//! missing symbol is an error rather than a call. All `unsafe` code is in the private `dl`
//! module.
//!
//! # Library lifetime
//!
//! * `exec` with dlclose disabled (the default) keeps each library open for the life of the
//!   plugin, cached by the exact string it was opened with, so repeated calls do not `dlopen`
//!   again. The handles are never `dlclose`d, not even when the plugin is dropped, which is what
//!   "dlclose disabled" promises. With dlclose enabled each call opens and closes the library.
//! * `exec_with_resource` opens a resource's libraries on first use and caches them by resource
//!   id (a stale entry left by a released resource whose id was reused is detected and
//!   replaced). When the resource is unregistered from the last session holding it and dlclose
//!   is enabled (the default here), the libraries are closed in reverse order.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
#![warn(missing_docs)]

mod dl;
mod options;

use std::collections::HashMap;
use std::ffi::c_int;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use libloading::os::unix::RTLD_GLOBAL;
use vaccel_core::arg::Arg;
use vaccel_core::blob::Blob;
use vaccel_core::error::{Error, ErrorCode, Result};
use vaccel_core::plugin::{Plugin, PluginInfo};
use vaccel_core::{
    BundledPlugin, Id, OpSet, OpType, PluginType, Resource, ResourceType, Session, VACCEL_VERSION,
};

use crate::dl::{ExecFn, Handle, SymbolError};
pub use crate::options::{
    DlopenMode, ENV_DLCLOSE_ENABLED, ENV_DLCLOSE_ENABLED_ALIAS, ENV_DLOPEN_MODE, ExecOptions,
};

/// The plugin's name.
pub const NAME: &str = "exec";

/// What errors name as their origin.
const ORIGIN: &str = NAME;

/// The operations the plugin implements.
const OPS: OpSet = OpSet::of(&[OpType::Noop, OpType::Exec, OpType::ExecWithResource]);

/// The exec plugin. See the crate docs.
pub struct ExecPlugin {
    info: PluginInfo,
    options: ExecOptions,
    /// `exec` libraries kept open (dlclose disabled), by the string they were opened with.
    libraries: Mutex<HashMap<String, Arc<Handle>>>,
    /// `exec_with_resource` libraries, by resource id.
    resources: Mutex<HashMap<Id, Arc<ResourceLibs>>>,
}

impl std::fmt::Debug for ExecPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecPlugin")
            .field("options", &self.options)
            .field("open_libraries", &lock(&self.libraries).len())
            .field("open_resources", &lock(&self.resources).len())
            .finish_non_exhaustive()
    }
}

/// The libraries of one resource: dependencies in blob order, the main library last.
struct ResourceLibs {
    /// The resource they belong to. Held weakly so the resource can go away, and compared by
    /// address to tell a live entry from a stale one left under a reused id: while this `Weak`
    /// exists the resource's allocation cannot be reused by another resource.
    owner: Weak<Resource>,
    handles: Vec<Handle>,
    /// Files written for in-memory blobs; removed (after the handles are closed) on drop.
    files: Vec<Blob>,
}

impl ResourceLibs {
    fn belongs_to(&self, res: &Resource) -> bool {
        std::ptr::eq(self.owner.as_ptr(), res)
    }

    fn main(&self) -> Result<&Handle> {
        self.handles
            .last()
            .ok_or_else(|| Error::invalid("resource has no library"))
    }
}

impl Drop for ResourceLibs {
    fn drop(&mut self) {
        // Reverse order: the main library before the dependencies it binds to.
        while let Some(handle) = self.handles.pop() {
            drop(handle);
        }
        // `files` are dropped after this body, once nothing maps them any more.
    }
}

/// Locks a cache; a poisoned lock is taken over (the maps stay consistent: every update is a
/// single insert or remove).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A static program (the thin client, built with `+crt-static`) cannot load shared libraries:
/// glibc's `dlopen` there crashes on any library that needs `libc.so`. Such a program refuses
/// the call instead (an agent runs it: `VACCEL_PLUGINS=rpc`).
fn refuse_in_static_programs(path: &str) -> Result<()> {
    if cfg!(target_feature = "crt-static") {
        log::error!("[exec] cannot dlopen {path}: this program is statically linked");
        return Err(Error::backend(
            ORIGIN,
            ErrorCode::ENOTSUP,
            "a statically linked program cannot load shared libraries (use an agent: rpc)",
        ));
    }
    Ok(())
}

fn dlopen_error(path: &str, e: &libloading::Error) -> Error {
    log::error!("[exec] dlopen failed for {path}: {e}");
    Error::backend(ORIGIN, ErrorCode::EINVAL, format!("dlopen failed: {e}"))
}

fn symbol_error(symbol: &str, e: &SymbolError) -> Error {
    log::error!("[exec] dlsym failed for {symbol}: {e}");
    Error::backend(
        ORIGIN,
        ErrorCode::ENOSYS,
        format!("dlsym failed for {symbol}: {e}"),
    )
}

/// A name for a file made from an in-memory blob: only `[A-Za-z0-9._+-]`, prefixed with the
/// resource id so that blobs of different resources never clash.
fn blob_file_name(res_id: Id, blob_name: &str) -> String {
    let clean: String = blob_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = if clean.is_empty() { "lib.so" } else { &clean };
    format!("resource.{res_id}.{clean}")
}

impl ExecPlugin {
    /// A plugin with these options.
    pub fn new(options: ExecOptions) -> ExecPlugin {
        ExecPlugin {
            info: PluginInfo::new(
                NAME,
                VACCEL_VERSION,
                PluginType::SOFTWARE | PluginType::GENERIC | PluginType::CPU,
            ),
            options,
            libraries: Mutex::new(HashMap::new()),
            resources: Mutex::new(HashMap::new()),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &ExecOptions {
        &self.options
    }

    /// Number of resources whose libraries are open (for diagnostics and tests).
    pub fn open_resource_count(&self) -> usize {
        lock(&self.resources).len()
    }

    fn log_args(read: &[Arg<'_>], write: &[Arg<'_>]) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        for (dir, args) in [("read", read), ("write", write)] {
            for (i, arg) in args.iter().enumerate() {
                log::debug!("[exec] {dir}[{i}].size: {}", arg.len());
                log::debug!("[exec] {dir}[{i}].type: {}", arg.ty().name());
            }
        }
    }

    /// Calls `f` and maps a non-zero return to `EBACKEND`.
    fn call(f: ExecFn<'_>, symbol: &str, read: &[Arg<'_>], write: &mut [Arg<'_>]) -> Result<()> {
        let ret = f.call(read, write)?;
        if ret != 0 {
            log::error!("[exec] {symbol} returned {ret}");
            return Err(Error::backend(
                ORIGIN,
                ErrorCode::EBACKEND,
                format!("{symbol} returned {ret}"),
            ));
        }
        Ok(())
    }

    /// The library `exec` calls into: cached when dlclose is disabled, fresh (and closed when
    /// dropped) otherwise.
    fn exec_library(&self, library: &str) -> Result<Arc<Handle>> {
        refuse_in_static_programs(library)?;
        let flags = self.options.dlopen_mode.flag();
        if self.options.dlclose_after_exec() {
            return Handle::open(library, flags, true)
                .map(Arc::new)
                .map_err(|e| dlopen_error(library, &e));
        }
        // Held across `dlopen` so that two threads never open the same library twice.
        let mut cache = lock(&self.libraries);
        if let Some(handle) = cache.get(library) {
            return Ok(Arc::clone(handle));
        }
        let handle =
            Arc::new(Handle::open(library, flags, false).map_err(|e| dlopen_error(library, &e))?);
        cache.insert(library.to_owned(), Arc::clone(&handle));
        Ok(handle)
    }

    /// Opens one resource library with the configured mode plus `extra` flags, retrying with the
    /// other binding mode when `fallback` is set. Only dependencies get the retry: upstream also
    /// retries the main library lazily, but a main library whose symbols do not resolve now
    /// would then abort the whole process (agent included) at call time instead of failing
    /// this call with EINVAL. Users who want lazy binding set `VACCEL_EXEC_DLOPEN_MODE=lazy`.
    fn open_resource_library(&self, path: &str, extra: c_int, fallback: bool) -> Result<Handle> {
        refuse_in_static_programs(path)?;
        let close = self.options.dlclose_on_unregister();
        let mode = self.options.dlopen_mode;
        match Handle::open(path, mode.flag() | extra, close) {
            Ok(handle) => Ok(handle),
            Err(e) if fallback => {
                log::warn!(
                    "[exec] dlopen with {} failed for {path}: {e}",
                    mode.flag_name()
                );
                log::warn!("[exec] Trying {} fallback", mode.other().flag_name());
                Handle::open(path, mode.other().flag() | extra, close)
                    .map_err(|e| dlopen_error(path, &e))
            }
            Err(e) => Err(dlopen_error(path, &e)),
        }
    }

    /// The path a blob is opened from; in-memory blobs are first written into the session's
    /// directory (the file is kept in `files` and removed with the cache entry).
    fn blob_path(
        sess: &Session,
        res: &Resource,
        blob: &Arc<Blob>,
        files: &mut Vec<Blob>,
    ) -> Result<String> {
        if let Some(path) = blob.path() {
            return path_str(path);
        }
        let name = blob_file_name(res.id(), blob.name());
        let file = Blob::persist(blob.read()?, sess.rundir(), &name, false)?;
        let path = file
            .path()
            .ok_or_else(|| Error::invalid(format!("persisted blob {name} has no path")))
            .and_then(path_str)?;
        log::debug!("[exec] Wrote in-memory blob {} to {path}", blob.name());
        files.push(file);
        Ok(path)
    }

    /// The libraries of `res`, opened on first use and cached.
    ///
    /// The cache lock is held while a resource's libraries are opened, so concurrent first
    /// calls open them once; this serialises first uses of different resources too, which is
    /// cheap next to `dlopen`'s own global lock. Calls themselves run outside the lock.
    fn resource_libraries(&self, sess: &Session, res: &Resource) -> Result<Arc<ResourceLibs>> {
        let mut cache = lock(&self.resources);
        if let Some(libs) = cache.get(&res.id()) {
            if libs.belongs_to(res) {
                return Ok(Arc::clone(libs));
            }
            log::debug!(
                "[exec] Dropping stale libraries cached for resource id {}",
                res.id()
            );
        }
        let blobs = res.blobs();
        let Some((main, deps)) = blobs.split_last() else {
            log::error!("[exec] Resource {} has no blobs", res.id());
            return Err(Error::invalid(format!(
                "resource {} has no blobs",
                res.id()
            )));
        };
        let owner = res.runtime().resource_by_id(res.id())?;
        if !std::ptr::eq(Arc::as_ptr(&owner), res) {
            return Err(Error::invalid(format!(
                "resource {} is not a live resource of this runtime",
                res.id()
            )));
        }
        let mut libs = ResourceLibs {
            owner: Arc::downgrade(&owner),
            handles: Vec::with_capacity(blobs.len()),
            files: Vec::new(),
        };
        for dep in deps {
            let path = Self::blob_path(sess, res, dep, &mut libs.files)?;
            log::debug!("[exec] Dependency: {path}");
            let handle = self.open_resource_library(&path, RTLD_GLOBAL, true)?;
            libs.handles.push(handle);
        }
        let path = Self::blob_path(sess, res, main, &mut libs.files)?;
        let handle = self.open_resource_library(&path, 0, false)?;
        libs.handles.push(handle);
        let libs = Arc::new(libs);
        if res.refcount() == 0 && self.options.dlclose_on_unregister() {
            // Unregistered from its last session after the runtime checked the registration:
            // the unregister hook has run or is waiting for the cache lock we hold, so an entry
            // made now would never be closed. Serve this call uncached instead.
            log::debug!(
                "[exec] Resource {} is no longer registered; not caching its libraries",
                res.id()
            );
            return Ok(libs);
        }
        // Replaces (and so drops) a stale entry, if any.
        cache.insert(res.id(), Arc::clone(&libs));
        Ok(libs)
    }
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid(format!("library path {} is not UTF-8", path.display())))
}

impl Plugin for ExecPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        OPS
    }

    fn noop(&self, sess: &Session) -> Result<()> {
        log::debug!("[exec] session:{} Calling no-op", sess.id());
        Ok(())
    }

    fn exec(
        &self,
        sess: &Session,
        library: &str,
        symbol: &str,
        read: &[Arg<'_>],
        write: &mut [Arg<'_>],
    ) -> Result<()> {
        log::debug!("[exec] session:{} Calling exec", sess.id());
        log::debug!("[exec] Library: {library}");
        log::debug!("[exec] Symbol: {symbol}");
        Self::log_args(read, write);
        let handle = self.exec_library(library)?;
        let f = handle
            .function(symbol)
            .map_err(|e| symbol_error(symbol, &e))?;
        Self::call(f, symbol, read, write)
        // `handle` is dropped here, after the call: with dlclose enabled this closes it.
    }

    fn exec_with_resource(
        &self,
        sess: &Session,
        res: &Resource,
        symbol: &str,
        read: &[Arg<'_>],
        write: &mut [Arg<'_>],
    ) -> Result<()> {
        log::debug!("[exec] session:{} Calling exec_with_resource", sess.id());
        log::debug!("[exec] Resource: {}", res.id());
        // The Arc keeps the libraries open for this call even if the resource is unregistered
        // from its last session meanwhile; they are closed when the last user lets go.
        let libs = self.resource_libraries(sess, res)?;
        let main = libs.main()?;
        log::debug!("[exec] Library: {}", main.path());
        log::debug!("[exec] Symbol: {symbol}");
        Self::log_args(read, write);
        let f = main
            .function(symbol)
            .map_err(|e| symbol_error(symbol, &e))?;
        Self::call(f, symbol, read, write)
    }

    fn resource_unregister(&self, res: &Resource, sess: &Session) -> Result<()> {
        if res.kind() != ResourceType::Lib || !self.options.dlclose_on_unregister() {
            return Ok(());
        }
        // Upstream closes the libraries on the first unregister, even while other sessions
        // still hold the resource and may call into them (a use-after-unmap, spec §12.5). Here
        // they are closed only once no session holds the resource; `refcount` already excludes
        // the session being unregistered. A call still running in another thread keeps them
        // open through its own reference until it returns.
        let holders = res.refcount();
        if holders > 0 {
            log::debug!(
                "[exec] session:{} Resource {} still used by {holders} session(s); keeping its libraries open",
                sess.id(),
                res.id()
            );
            return Ok(());
        }
        // Any entry under this id is either this resource's or a stale one: both can go.
        let removed = lock(&self.resources).remove(&res.id());
        if let Some(libs) = removed {
            log::debug!(
                "[exec] session:{} Closing the libraries of resource {}",
                sess.id(),
                res.id()
            );
            drop(libs);
        }
        Ok(())
    }
}

/// The bundled descriptor: the plugin with options from the environment.
pub fn bundled() -> BundledPlugin {
    BundledPlugin {
        name: NAME,
        create: |_config| Ok(Arc::new(ExecPlugin::new(ExecOptions::from_env()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_itself_like_upstream() {
        let plugin = ExecPlugin::new(ExecOptions::default());
        let info = plugin.info();
        assert_eq!(info.name, "exec");
        assert_eq!(info.version, VACCEL_VERSION);
        assert_eq!(info.vaccel_version, VACCEL_VERSION);
        assert_eq!(info.plugin_type.bits(), 0x89);
        assert!(!info.remote);
        let ops: Vec<OpType> = plugin.ops().iter().collect();
        assert_eq!(ops, [OpType::Noop, OpType::Exec, OpType::ExecWithResource]);
    }

    #[test]
    fn bundled_descriptor_creates_the_plugin() {
        let b = bundled();
        assert_eq!(b.name, "exec");
        let plugin = (b.create)(&vaccel_core::Config::default()).unwrap();
        assert_eq!(plugin.info().name, "exec");
    }

    #[test]
    fn blob_file_names_are_flat_and_safe() {
        assert_eq!(blob_file_name(3, "libfoo.so"), "resource.3.libfoo.so");
        assert_eq!(blob_file_name(3, "a/b c.so"), "resource.3.a_b_c.so");
        assert_eq!(blob_file_name(7, "../x"), "resource.7..._x");
        assert_eq!(blob_file_name(1, ""), "resource.1.lib.so");
        for name in ["a/b", "../../etc/passwd", "x\0y", "é"] {
            let file = blob_file_name(9, name);
            assert!(vaccel_core::blob::sanitize_name(&file).is_ok(), "{file:?}");
            assert!(!file.contains('/'));
        }
    }

    #[test]
    fn missing_library_is_einval_and_not_cached() {
        let plugin = ExecPlugin::new(ExecOptions::default());
        let err = plugin
            .exec_library("/nonexistent/dir/libnothing.so")
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::EINVAL);
        assert!(err.to_string().contains("dlopen failed"), "{err}");
        assert!(lock(&plugin.libraries).is_empty());
    }
}
