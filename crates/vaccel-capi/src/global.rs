//! The process-wide runtime behind the C API: bootstrap (at library load, from the artifact's
//! constructor), cleanup (at unload, spec §4.2), and the strong references that keep
//! C-created sessions and resources alive. A program that links this crate without the
//! artifact (the agent, the examples) has no such runtime: the C functions its plugin
//! libraries call on the views they are given work, the ones that create objects answer that
//! vAccel is not initialized.

use std::collections::HashMap;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use vaccel_abi::vaccel_config;
use vaccel_core::config::{bootstrap_enabled, cleanup_enabled, env_lookup};
use vaccel_core::{Config, Error, ErrorCode, Id, LogLevel, Resource, Runtime, Session};

use crate::ffi::{Res, err};
use crate::loader::DlLoader;
use crate::views;

/// What one bootstrap created.
pub(crate) struct State {
    pub(crate) rt: Runtime,
    pub(crate) config: Config,
    /// `vaccel_config()`'s answer: a C copy of `config` and the strings it points at.
    c_config: Box<vaccel_config>,
    _c_strings: Vec<CString>,
    /// `vaccel_rundir()`'s answer.
    rundir: CString,
    /// Sessions created through the C API, alive until `vaccel_session_release`.
    pub(crate) sessions: HashMap<Id, Arc<Session>>,
    /// Resources created through the C API, alive until `vaccel_resource_release`.
    pub(crate) resources: HashMap<Id, Arc<Resource>>,
}

// SAFETY: the raw pointers in `c_config` point into `_c_strings`, owned by the same `State`
// and never mutated; the C side only reads them. Everything else is `Send + Sync`.
unsafe impl Send for State {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for State {}

static STATE: RwLock<Option<State>> = RwLock::new(None);

/// Serialises bootstrap and cleanup (which run plugins' code outside the state lock).
static LIFECYCLE: Mutex<()> = Mutex::new(());

fn read() -> RwLockReadGuard<'static, Option<State>> {
    implicit_bootstrap();
    STATE.read().unwrap_or_else(PoisonError::into_inner)
}

fn write() -> RwLockWriteGuard<'static, Option<State>> {
    implicit_bootstrap();
    STATE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on the state, or fails with `code` when the library is not initialised.
pub(crate) fn with_state<T>(code: ErrorCode, f: impl FnOnce(&State) -> Res<T>) -> Res<T> {
    match &*read() {
        Some(state) => f(state),
        None => Err(not_initialized(code)),
    }
}

/// Runs `f` on the mutable state, or fails with `code` when the library is not initialised.
/// `f` must not call into plugins (their code may call back into the C API).
pub(crate) fn with_state_mut<T>(code: ErrorCode, f: impl FnOnce(&mut State) -> Res<T>) -> Res<T> {
    match &mut *write() {
        Some(state) => f(state),
        None => Err(not_initialized(code)),
    }
}

fn not_initialized(code: ErrorCode) -> Error {
    err(
        code,
        "vAccel is not initialized (bootstrap failed or was disabled)",
    )
}

/// The runtime, for operations that create objects.
pub(crate) fn runtime(code: ErrorCode) -> Res<Runtime> {
    with_state(code, |s| Ok(s.rt.clone()))
}

/// Whether a runtime is up.
pub fn is_initialized() -> bool {
    read().is_some()
}

/// `vaccel_rundir()`: valid until the next cleanup or bootstrap.
pub(crate) fn rundir_ptr() -> *const c_char {
    read()
        .as_ref()
        .map_or(std::ptr::null(), |s| s.rundir.as_ptr())
}

/// `vaccel_config()`: valid until the next cleanup or bootstrap.
pub(crate) fn config_ptr() -> *const vaccel_config {
    read()
        .as_ref()
        .map_or(std::ptr::null(), |s| &raw const *s.c_config)
}

/// The C form of a log level: 0 when logging is off.
pub(crate) fn level_value(level: Option<LogLevel>) -> u32 {
    level.map_or(0, |l| u32::from(l.value()))
}

fn c_string(text: &str, what: &str) -> Res<CString> {
    CString::new(text).map_err(|_| crate::ffi::invalid(format!("{what} contains a NUL byte")))
}

impl State {
    fn new(rt: Runtime, config: Config) -> Res<State> {
        let mut strings = Vec::new();
        let mut keep = |value: Option<String>, what: &str| -> Res<*mut c_char> {
            match value {
                Some(v) => {
                    let s = c_string(&v, what)?;
                    let p = s.as_ptr().cast_mut();
                    strings.push(s);
                    Ok(p)
                }
                None => Ok(std::ptr::null_mut()),
            }
        };
        let plugins = keep(config.plugins.clone(), "plugins")?;
        let log_file = keep(
            config
                .log_file
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            "log_file",
        )?;
        let c_config = Box::new(vaccel_config {
            plugins,
            log_level: level_value(config.log_level),
            log_file,
            profiling_enabled: config.profiling_enabled,
            version_ignore: config.version_ignore,
        });
        let rundir = c_string(&rt.rundir().to_string_lossy(), "rundir")?;
        Ok(State {
            rt,
            config,
            c_config,
            _c_strings: strings,
            rundir,
            sessions: HashMap::new(),
            resources: HashMap::new(),
        })
    }
}

/// Builds the global runtime from `config`, replacing (and first cleaning up) any previous
/// one. On failure the library is left uninitialised.
pub(crate) fn bootstrap(config: Config) -> Res<()> {
    STARTED.store(true, Ordering::Release);
    let _serialised = LIFECYCLE.lock().unwrap_or_else(PoisonError::into_inner);
    let previous = write().take();
    if let Some(previous) = previous {
        log::debug!("Reloading vAccel");
        teardown(previous);
    }
    let rt = builder()
        .config(config.clone())
        .build()
        .inspect_err(|e| log::error!("Could not initialize vAccel: {e}"))?;
    let state = State::new(rt, config)?;
    *write() = Some(state);
    Ok(())
}

/// Every plugin compiled into the library, by the name `VACCEL_PLUGINS` uses: the small ones.
/// The CPU backends are plugin libraries (`libvaccel-onnx.so`, ...), which the `vaccel` facade
/// bundles for Rust programs instead (its `cpu` feature).
pub fn bundled_plugins() -> Vec<vaccel_core::BundledPlugin> {
    vec![
        vaccel_plugin_noop::bundled(),
        vaccel_plugin_exec::bundled(),
        vaccel_plugin_mbench::bundled(),
        vaccel_plugin_rpc::bundled(),
    ]
}

/// The CPU backends, in priority order, by their plugin libraries' names.
pub const CPU_BACKENDS: &[&str] = &[
    "libvaccel-blas.so",
    "libvaccel-tflite.so",
    "libvaccel-onnx.so",
    "libvaccel-tf.so",
    "libvaccel-torch.so",
];

/// Names standing for several plugins: `cpu` selects every CPU backend that is available. Its
/// members are library names: a program that bundles a backend (the `vaccel` facade with its
/// `cpu` feature) uses the bundled one, others (`libvaccel.so`) load the library through the
/// loader's search (beside `libvaccel.so`, `LD_LIBRARY_PATH`, the system's library path). A
/// member that is not installed is skipped with a warning; none at all is an error.
pub fn plugin_groups() -> Vec<vaccel_core::PluginGroup> {
    vec![vaccel_core::PluginGroup {
        name: "cpu",
        members: CPU_BACKENDS,
    }]
}

/// A runtime builder with the bundled plugins, the groups and the plugin library loader: what
/// `libvaccel.so` bootstraps, and what the `vaccel` facade gives Rust programs.
pub fn builder() -> vaccel_core::RuntimeBuilder {
    // A Rust program building its own runtime hosts the C API for its plugins: no implicit
    // process-wide runtime beside its own.
    STARTED.store(true, Ordering::Release);
    crate::link_c_api();
    vaccel_core::Runtime::builder()
        .bundled(bundled_plugins())
        .groups(plugin_groups())
        .loader(Arc::new(DlLoader::new()))
}

/// `vaccel_bootstrap()`: configuration from the environment.
pub fn bootstrap_from_env() -> Res<()> {
    let config = Config::from_env().inspect_err(|e| {
        // Logging is not set up yet (it needs the configuration), as upstream.
        eprintln!("Error: Could not init main config from env: {e}");
    })?;
    bootstrap(config)
}

/// `vaccel_cleanup()`: no-op when not initialised.
pub fn cleanup() {
    STARTED.store(true, Ordering::Release);
    let _serialised = LIFECYCLE.lock().unwrap_or_else(PoisonError::into_inner);
    let state = write().take();
    if let Some(state) = state {
        teardown(state);
    }
}

/// Releases everything of one runtime, outside the state lock (plugins run here and may call
/// back into the C API, which then sees an uninitialised library).
fn teardown(state: State) {
    let State {
        rt,
        sessions,
        resources,
        ..
    } = state;
    log::debug!("Cleaning up sessions");
    for (_, sess) in sessions {
        views::forget_session(&sess);
        drop(sess);
    }
    log::debug!("Cleaning up resources");
    for (_, res) in resources {
        if let Err(e) = res.release() {
            log::warn!("Could not release resource {}: {e}", res.id());
        }
        views::forget_resource(&res);
    }
    // The last references: the runtime prints its profiling regions, unloads its plugins and
    // removes its directory.
    drop(rt);
}

/// Adds plugins to the running configuration by rebuilding the runtime, which is only
/// possible while no session or resource of it is alive (`vaccel_plugin_load`). Entries load
/// in order; the first failure stops the list, keeping the plugins loaded before it (as
/// upstream) and the runtime up.
pub(crate) fn load_plugins(list: &str) -> Res<()> {
    let mut current = with_state(ErrorCode::EBACKEND, |s| {
        if !s.sessions.is_empty()
            || !s.resources.is_empty()
            || s.rt.session_count() > 0
            || s.rt.resource_count() > 0
        {
            return Err(err(
                ErrorCode::EBUSY,
                "plugins can only be loaded while no session or resource is alive",
            ));
        }
        Ok(s.config.clone())
    })?;
    for entry in list.split(':').filter(|e| !e.trim().is_empty()) {
        let mut next = current.clone();
        next.plugins = Some(match next.plugins.take() {
            Some(existing) if !existing.is_empty() => format!("{existing}:{entry}"),
            _ => entry.to_owned(),
        });
        if let Err(e) = bootstrap(next.clone()) {
            if let Err(restore) = bootstrap(current) {
                log::error!("Could not restore the previous plugins: {restore}");
            }
            return Err(e);
        }
        current = next;
    }
    Ok(())
}

/// Whether log lines go to the program's stdout (the artifact's constructor then makes stdout
/// line-buffered, see `libvaccel.so`'s `line_buffer_stdout`).
pub fn logs_to_stdout() -> bool {
    with_state(ErrorCode::EBACKEND, |s| {
        Ok(s.config.log_level.is_some()
            && s.config
                .log_file
                .as_ref()
                .is_none_or(|f| f.as_os_str() == "/dev/stdout"))
    })
    .unwrap_or(false)
}

/// Runs `f` without letting a panic escape (library constructor and destructor).
fn quietly(f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        eprintln!("vaccel: internal error during library load or unload");
    }
}

/// Cleans up when the main thread's thread-locals are destroyed at `exit()`.
///
/// glibc's `exit()` destroys the exiting thread's thread-locals *before* it runs library
/// destructors, and the logger's local-time cache is a thread-local: cleaning up (which logs)
/// from the destructor would find it gone. Thread-local destructors run in reverse order of
/// registration, so this guard, registered after the logger's cache was initialised, runs
/// while the cache is still alive.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        quietly(|| {
            if cleanup_enabled(env_lookup) {
                cleanup();
            }
        });
    }
}

thread_local! {
    static EXIT_GUARD: ExitGuard = const { ExitGuard };
}

/// What `libvaccel.so`'s constructor runs: bootstraps from the environment unless
/// `VACCEL_BOOTSTRAP_ENABLED=0`. A failure (e.g. a missing plugin) is logged and leaves the
/// library uninitialised; unlike upstream it never exits the host process.
pub fn library_loaded() {
    STARTED.store(true, Ordering::Release);
    quietly(|| {
        if bootstrap_enabled(env_lookup) {
            // The error is logged by `bootstrap`.
            let _ = bootstrap_from_env();
            line_buffer_stdout();
        }
        guard_exit();
    });
}

/// Registers the exit guard on this thread, after initialising the local-time cache (see
/// `ExitGuard`).
fn guard_exit() {
    let _ = chrono::Local::now();
    EXIT_GUARD.with(|_| {});
}

/// Whether the process-wide runtime's life has begun: bootstrapped (by the library
/// constructor, `vaccel_bootstrap`, or implicitly), cleaned up, or declined by a Rust program
/// that hosts the C API (see [`builder`]).
static STARTED: AtomicBool = AtomicBool::new(false);

/// Bootstraps from the environment on the first use of the C API when nothing has yet: a C
/// program that linked `libvaccel.a` has no constructor of ours (the linker takes only the
/// objects it needs), so its first call starts the runtime, and the exit guard of the calling
/// thread cleans up.
fn implicit_bootstrap() {
    if STARTED.load(Ordering::Acquire) || STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    quietly(|| {
        if bootstrap_enabled(env_lookup) {
            let _ = bootstrap_from_env();
        }
        guard_exit();
    });
}

unsafe extern "C" {
    /// glibc's `stdout` stream.
    static mut stdout: *mut libc::FILE;
}

/// Upstream logs with `printf`, so its log lines and the program's own output share the C
/// stdout buffer and come out in order. Ours are written by the Rust logger; when it writes to
/// stdout, the program's stdout is made line-buffered so the two interleave as upstream's do
/// even when stdout is a pipe. Runs in the constructor, before the program wrote anything.
fn line_buffer_stdout() {
    if logs_to_stdout() {
        // SAFETY: `stdout` is glibc's stream object, valid for the whole process; `setvbuf`
        // is allowed before any output on the stream, which holds in a library constructor
        // (it runs before `main`, or at `dlopen` before the caller used the library).
        unsafe {
            libc::setvbuf(
                stdout,
                std::ptr::null_mut(),
                libc::_IOLBF,
                libc::BUFSIZ as usize,
            )
        };
    }
}

/// What `libvaccel.so`'s destructor runs: cleans up unless `VACCEL_CLEANUP_ENABLED=0`
/// (normally the exit guard already did; this covers `dlclose` and exits from other threads).
/// Logging is turned off first when the calling thread's thread-locals may be gone.
pub fn library_unloaded() {
    quietly(|| {
        if cleanup_enabled(env_lookup) && is_initialized() {
            if EXIT_GUARD.try_with(|_| {}).is_err() {
                log::set_max_level(log::LevelFilter::Off);
            }
            cleanup();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let _ = dir;
        bootstrap(Config::default().with_plugins("noop")).unwrap();
        assert!(is_initialized());
        assert!(!rundir_ptr().is_null());
        assert!(!config_ptr().is_null());
        assert!(bootstrap(Config::default().with_plugins("nosuchplugin")).is_err());
        assert!(!is_initialized());
        assert!(rundir_ptr().is_null());
        bootstrap(Config::default()).unwrap();
        cleanup();
        cleanup();
        assert!(!is_initialized());
    }
}
