//! Plugin shared libraries at run time (spec §3): [`DlLoader`] opens a library, finds its
//! `vaccel_plugin` descriptor, checks it, runs its `init`, and wraps it as a
//! [`vaccel_core::Plugin`] whose methods call the library's C functions with real C views of
//! sessions, resources and arguments.
//!
//! Two kinds of libraries load the same way: upstream-style C plugins (`VACCEL_PLUGIN(...)`,
//! `init` calls `vaccel_plugin_register_ops`), and Rust plugins built with the plugin SDK,
//! which export the same descriptor and additionally `vaccel_rs_plugin_bind`.

mod cplugin;

use std::collections::HashMap;
use std::ffi::{OsStr, c_int, c_void};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use libloading::os::unix::{Library, RTLD_LAZY, RTLD_LOCAL, RTLD_NOW};
use vaccel_abi::{
    VACCEL_RS_HOST_ABI, vaccel_plugin, vaccel_resource, vaccel_rs_host, vaccel_rs_plugin_bind_fn,
};
use vaccel_core::plugin::Plugin;
use vaccel_core::registry::{PluginLoader, check_version};
use vaccel_core::{Config, Error, ErrorCode, Result};

pub(crate) use cplugin::CPlugin;

/// Loads plugin libraries (`dlopen` with `RTLD_LAZY`, as upstream). Give it to
/// [`vaccel_core::RuntimeBuilder::loader`]; the C API's global runtime uses one.
#[derive(Debug, Default, Clone, Copy)]
pub struct DlLoader {
    _private: (),
}

impl DlLoader {
    /// A loader.
    pub fn new() -> DlLoader {
        DlLoader::default()
    }
}

/// Live C plugins: address of the `CPlugin` (the data pointer of its `Arc<dyn Plugin>`) to
/// its descriptor, so session views can point `sess->plugin` at the library's own struct.
static LOADED: LazyLock<Mutex<HashMap<usize, usize>>> = LazyLock::new(Mutex::default);

fn loaded() -> std::sync::MutexGuard<'static, HashMap<usize, usize>> {
    LOADED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The C descriptor of `plugin` if it is a loaded C plugin.
pub(crate) fn descriptor_of(plugin: &Arc<dyn Plugin>) -> Option<*mut vaccel_plugin> {
    let key = Arc::as_ptr(plugin).cast::<()>() as usize;
    loaded().get(&key).map(|desc| *desc as *mut vaccel_plugin)
}

/// The table SDK plugins receive.
static HOST: vaccel_rs_host = vaccel_rs_host {
    abi_version: VACCEL_RS_HOST_ABI,
    log_write: Some(crate::log_bridge::host_log_write),
    log_enabled: Some(crate::log_bridge::host_log_enabled),
    resource_retain: Some(host_resource_retain),
    resource_blob: Some(host_resource_blob),
    resource_release: Some(host_resource_release),
};

/// `vaccel_rs_host::resource_retain`.
unsafe extern "C" fn host_resource_retain(res: *const vaccel_resource) -> *const c_void {
    crate::ffi::guard_value(
        "resource_retain",
        std::ptr::null(),
        |_| std::ptr::null(),
        || Ok(crate::views::retain_resource(res)),
    )
}

/// `vaccel_rs_host::resource_blob`.
///
/// # Safety
///
/// `token` is live (from `resource_retain`); `data` and `size` are writable.
unsafe extern "C" fn host_resource_blob(
    token: *const c_void,
    index: usize,
    data: *mut *const u8,
    size: *mut usize,
) -> bool {
    crate::ffi::guard_value(
        "resource_blob",
        false,
        |_| false,
        || {
            if token.is_null() {
                return Ok(false);
            }
            let data = crate::ffi::out_ptr(data, "data")?;
            let size = crate::ffi::out_ptr(size, "size")?;
            // SAFETY: a live token (caller guarantee).
            let Some((p, n)) = (unsafe { crate::views::retained_blob(token, index) }) else {
                return Ok(false);
            };
            // SAFETY: checked non-null and aligned; writable (caller guarantee).
            unsafe {
                crate::ffi::write_out(data, p);
                crate::ffi::write_out(size, n);
            }
            Ok(true)
        },
    )
}

/// `vaccel_rs_host::resource_release`.
///
/// # Safety
///
/// `token` comes from `resource_retain` and is given back once.
unsafe extern "C" fn host_resource_release(token: *const c_void) {
    if !token.is_null() {
        // SAFETY: caller guarantee.
        unsafe { crate::views::release_resource(token) };
    }
}

fn not_a_plugin(spec: &str, reason: impl Into<String>) -> Error {
    let reason = reason.into();
    log::error!("{spec} is not a vaccel plugin: {reason}");
    Error::NotAPlugin {
        name: spec.to_owned(),
        reason,
    }
}

fn rejected(name: &str, reason: &str) -> Error {
    log::error!("{reason}");
    Error::PluginRejected {
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

impl PluginLoader for DlLoader {
    fn load(&self, spec: &str, config: &Config) -> Result<Arc<dyn Plugin>> {
        self.open(spec, config, false)
    }

    fn load_optional(&self, spec: &str, config: &Config) -> Result<Arc<dyn Plugin>> {
        self.open(spec, config, true)
    }
}

impl DlLoader {
    /// Loads `spec`; a library that cannot be found is logged as an error unless `optional`
    /// (a group's member: the group logs the skip).
    fn open(&self, spec: &str, config: &Config, optional: bool) -> Result<Arc<dyn Plugin>> {
        // A static program (the thin client, `+crt-static`) cannot load shared libraries:
        // glibc's `dlopen` there crashes on a library that needs `libc.so`. Not found, so that
        // `cpu` reports each backend missing rather than crashing.
        if cfg!(target_feature = "crt-static") {
            return Err(Error::PluginNotFound {
                name: spec.to_owned(),
                reason: "this program is statically linked and cannot load plugin libraries \
                         (its bundled plugins: noop, exec, mbench, rpc)"
                    .to_owned(),
            });
        }
        // A program without the C API (see `c_api_available`) binds every symbol now, so a C
        // plugin that needs the API fails here, with the symbol's name, instead of killing
        // the process at its first call.
        let api = c_api_available();
        let mode = if api { RTLD_LAZY } else { RTLD_NOW };
        let lib =
            // SAFETY: `dlopen` runs the library's initialisers. A plugin library is code the
            // operator chose to load into this process (VACCEL_PLUGINS), trusted like upstream
            // trusts it; nothing else is assumed. The handle is owned by the `Lib` below.
            unsafe { Library::open(Some(OsStr::new(spec)), mode | RTLD_LOCAL) }.map_err(|e| {
                let text = e.to_string();
                // The C API: the `vaccel_*` functions, and `slog_print`, which the log
                // macros of `vaccel/log.h` call.
                let api_symbol = ["vaccel_", "slog_print", "fs_file_read"]
                    .iter()
                    .any(|s| text.contains(&format!("undefined symbol: {s}")));
                let hint = if !api && api_symbol {
                    " (this program does not export vAccel's C API, which the plugin calls: \
                     build it on the `vaccel` crate's builder and link it with \
                     -Wl,--export-dynamic-symbol=vaccel_* and the same for slog_print and fs_file_read)"
                } else {
                    ""
                };
                let reason = format!("could not dlopen: {e}{hint}");
                if std::path::Path::new(spec).exists() {
                    // There is such a file, but it is no loadable library.
                    not_a_plugin(spec, reason)
                } else {
                    if optional {
                        log::debug!("Could not dlopen plugin {spec}: {e}");
                    } else {
                        log::error!("Could not dlopen plugin {spec}: {e}");
                    }
                    Error::PluginNotFound {
                        name: spec.to_owned(),
                        reason,
                    }
                }
            })?;
        let lib = Lib(Some(lib));
        let desc = lib.descriptor(spec)?;
        if loaded().values().any(|d| *d == desc as usize) {
            return Err(Error::PluginExists(spec.to_owned()));
        }
        // SAFETY: `desc` is the non-null descriptor the library exports (checked by
        // `descriptor`), valid while the library stays loaded, which `lib` guarantees; it
        // is only read here.
        let raw = unsafe { cplugin::RawInfo::read(desc) }.map_err(|e| not_a_plugin(spec, e))?;
        let name = raw
            .name
            .clone()
            .ok_or_else(|| rejected(spec, "Plugin needs to have a name"))?;
        // Errors name the plugin and the file it came from.
        let named = format!("{name} ({spec})");
        if raw.version.is_none() {
            return Err(rejected(&named, "Plugin needs to have a version"));
        }
        if raw.hooks.init.is_none() {
            return Err(rejected(&named, "Plugin needs to expose an init function"));
        }
        if raw.hooks.fini.is_none() {
            return Err(rejected(&named, "Plugin needs to expose a fini function"));
        }
        check_version(
            &named,
            raw.vaccel_version.as_deref().unwrap_or_default(),
            config.version_ignore,
        )?;
        let sdk = lib.bind_sdk(&name)?;
        if sdk {
            keep_loaded(spec);
        }
        let handle = lib.into_raw();
        // From here the handle is owned by the `CPlugin` (closed when it drops).
        let plugin = CPlugin::init(desc, raw, handle, sdk)?;
        let plugin: Arc<dyn Plugin> = Arc::new(plugin);
        let key = Arc::as_ptr(&plugin).cast::<()>() as usize;
        loaded().insert(key, desc as usize);
        Ok(plugin)
    }
}

/// Whether this process offers vAccel's C API to the libraries it loads: `libvaccel.so`, or a
/// program that links and exports it (see `vaccel_capi::link_c_api`).
fn c_api_available() -> bool {
    // SAFETY: `dlsym` with `RTLD_DEFAULT` and a NUL-terminated name has no preconditions; the
    // result is only compared with null.
    !unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"vaccel_plugin_register_ops".as_ptr()) }.is_null()
}

/// Marks a loaded library never to be unmapped (`RTLD_NODELETE`), for plugin libraries built
/// with the SDK: a Rust library registers thread-exit destructors (its own standard library's
/// thread-locals) on the threads that called it, and unmapping it would leave those threads
/// to run code that is gone when they exit. `dlclose` still runs its `fini`; reloading it finds
/// the same library.
fn keep_loaded(spec: &str) {
    let Ok(path) = std::ffi::CString::new(spec) else {
        return;
    };
    // SAFETY: `path` is NUL-terminated; with `RTLD_NOLOAD` nothing new is loaded (the library
    // is, by us), so no initialiser runs; the extra reference is dropped right away.
    unsafe {
        let handle = libc::dlopen(
            path.as_ptr(),
            libc::RTLD_LAZY | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
        );
        if !handle.is_null() {
            libc::dlclose(handle);
        }
    }
}

/// A library being loaded; closed on drop unless handed over with [`Lib::into_raw`].
struct Lib(Option<Library>);

impl Lib {
    fn library(&self) -> Result<&Library> {
        self.0
            .as_ref()
            .ok_or_else(|| Error::invalid("library already handed over"))
    }

    /// `*(struct vaccel_plugin **)dlsym(lib, "vaccel_plugin")`, non-null.
    fn descriptor(&self, spec: &str) -> Result<*mut vaccel_plugin> {
        // SAFETY: the symbol is asked for as a pointer to a data object of pointer type, which
        // is what upstream's `VACCEL_PLUGIN()` exports (`const struct vaccel_plugin
        // *vaccel_plugin`); nothing is assumed before the null checks below.
        let sym = unsafe {
            self.library()?
                .get::<*mut *mut vaccel_plugin>(b"vaccel_plugin\0")
        }
        .map_err(|_| not_a_plugin(spec, "no `vaccel_plugin` symbol"))?;
        let slot = *sym;
        if slot.is_null() {
            return Err(not_a_plugin(spec, "`vaccel_plugin` is NULL"));
        }
        // SAFETY: `slot` is the non-null address of the exported pointer variable, readable
        // while the library is loaded (it is: `self` holds it).
        let desc = unsafe { slot.read() };
        if desc.is_null() {
            return Err(not_a_plugin(spec, "`vaccel_plugin` points at NULL"));
        }
        Ok(desc)
    }

    /// Calls `vaccel_rs_plugin_bind` if the library has it (an SDK plugin).
    fn bind_sdk(&self, name: &str) -> Result<bool> {
        // SAFETY: looked up as a data pointer first so a missing or null symbol is never
        // turned into a function pointer.
        let Ok(sym) = (unsafe {
            self.library()?
                .get::<*mut c_void>(b"vaccel_rs_plugin_bind\0")
        }) else {
            return Ok(false);
        };
        let raw = *sym;
        if raw.is_null() {
            return Ok(false);
        }
        // SAFETY: (1) same size (POSIX: data and function pointers interconvert for dlsym);
        // (2) non-null; (3) the SDK defines `vaccel_rs_plugin_bind` with this signature, the
        // contract of that (vaccel-rs specific) symbol name.
        let bind = unsafe { std::mem::transmute::<*mut c_void, vaccel_rs_plugin_bind_fn>(raw) };
        // SAFETY: `HOST` is a static, valid for the whole process; the function only reads it.
        let ret: c_int = unsafe { bind(&raw const HOST) };
        if ret != 0 {
            return Err(Error::backend(
                name,
                ErrorCode::from_i32(ret).unwrap_or(ErrorCode::EBACKEND),
                format!("vaccel_rs_plugin_bind returned {ret}"),
            ));
        }
        Ok(true)
    }

    fn into_raw(mut self) -> *mut c_void {
        self.0
            .take()
            .map_or(std::ptr::null_mut(), Library::into_raw)
    }
}

impl Drop for Lib {
    fn drop(&mut self) {
        if let Some(lib) = self.0.take()
            && let Err(e) = lib.close()
        {
            log::warn!("dlclose failed: {e}");
        }
    }
}

/// Forgets a plugin when its adapter is dropped.
pub(crate) fn unregister(plugin: &CPlugin) {
    let key = std::ptr::from_ref(plugin).cast::<()>() as usize;
    loaded().remove(&key);
}
