//! `vaccel/config.h`: the configuration struct.
//!
//! # Safety
//!
//! `config` arguments are null or valid `struct vaccel_config`s whose strings are null or
//! NUL-terminated and (for release) from the C allocator; string arguments are null or
//! NUL-terminated.

use std::ffi::{c_char, c_int};
use std::path::PathBuf;
use std::ptr;

use vaccel_abi::vaccel_config;
use vaccel_core::{Config, LogLevel};

use crate::cmem;
use crate::ffi::{self, Res, guard};
use crate::global::level_value;

/// The runtime configuration a C struct describes.
///
/// # Safety
///
/// `config` is null or valid (module docs).
pub(crate) unsafe fn to_rust(config: *const vaccel_config) -> Res<Config> {
    // SAFETY: caller guarantee.
    let c = unsafe { ffi::as_ref(config, "config") }?;
    // SAFETY: the strings are null or NUL-terminated (caller guarantee).
    let (plugins, log_file) = unsafe {
        (
            ffi::opt_str_arg(c.plugins, "plugins")?,
            ffi::opt_str_arg(c.log_file, "log_file")?,
        )
    };
    Ok(Config {
        plugins: plugins.filter(|p| !p.is_empty()).map(str::to_owned),
        // Upstream: any value outside 1-4 enables nothing.
        log_level: u8::try_from(c.log_level)
            .ok()
            .and_then(LogLevel::from_value),
        log_file: log_file.filter(|f| !f.is_empty()).map(PathBuf::from),
        profiling_enabled: c.profiling_enabled,
        version_ignore: c.version_ignore,
    })
}

fn dup(value: Option<&str>, what: &str) -> Res<*mut c_char> {
    value.map_or(Ok(ptr::null_mut()), |v| cmem::strdup(v, what))
}

/// Writes `config` into `c` (strings strdup'ed).
fn fill(c: *mut vaccel_config, config: &Config) -> Res<()> {
    let c = ffi::out_ptr(c, "config")?;
    let plugins = dup(config.plugins.as_deref(), "plugins")?;
    let log_file = match dup(
        config
            .log_file
            .as_ref()
            .map(|p| p.to_string_lossy())
            .as_deref(),
        "log_file",
    ) {
        Ok(p) => p,
        Err(e) => {
            // SAFETY: allocated just above, not shared.
            unsafe { cmem::free(plugins) };
            return Err(e);
        }
    };
    // SAFETY: checked by `out_ptr`; the previous contents (possibly uninitialised) are not
    // read.
    unsafe {
        c.write(vaccel_config {
            plugins,
            log_level: level_value(config.log_level),
            log_file,
            profiling_enabled: config.profiling_enabled,
            version_ignore: config.version_ignore,
        });
    }
    Ok(())
}

/// Heap allocation of a config filled by `init`.
fn new_with(out: *mut *mut vaccel_config, config: Res<Config>) -> Res<()> {
    let out = ffi::out_ptr(out, "config")?;
    let config = config?;
    let c = cmem::calloc::<vaccel_config>(1, "config")?;
    if let Err(e) = fill(c, &config) {
        // SAFETY: allocated above, not shared.
        unsafe { cmem::free(c) };
        return Err(e);
    }
    // SAFETY: checked by `out_ptr`.
    unsafe { ffi::write_out(out, c) };
    Ok(())
}

/// # Safety
///
/// See the module docs.
unsafe fn from_args(
    plugins: *const c_char,
    log_level: u32,
    log_file: *const c_char,
    profiling_enabled: bool,
    version_ignore: bool,
) -> Res<Config> {
    // SAFETY: caller guarantee.
    let (plugins, log_file) = unsafe {
        (
            ffi::opt_str_arg(plugins, "plugins")?,
            ffi::opt_str_arg(log_file, "log_file")?,
        )
    };
    Ok(Config {
        plugins: plugins.map(str::to_owned),
        log_level: u8::try_from(log_level).ok().and_then(LogLevel::from_value),
        log_file: log_file.map(PathBuf::from),
        profiling_enabled,
        version_ignore,
    })
}

/// `vaccel_config_init`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_config_init(
    config: *mut vaccel_config,
    plugins: *const c_char,
    log_level: u32,
    log_file: *const c_char,
    profiling_enabled: bool,
    version_ignore: bool,
) -> c_int {
    guard("vaccel_config_init", || {
        // SAFETY: caller guarantee.
        let c = unsafe {
            from_args(
                plugins,
                log_level,
                log_file,
                profiling_enabled,
                version_ignore,
            )
        }?;
        fill(config, &c)
    })
}

/// `vaccel_config_init_from_env`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_config_init_from_env(config: *mut vaccel_config) -> c_int {
    guard("vaccel_config_init_from_env", || {
        ffi::out_ptr(config, "config")?;
        fill(config, &Config::from_env()?)
    })
}

/// `vaccel_config_init_from`: deep copy.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_config_init_from(
    config: *mut vaccel_config,
    config_src: *mut vaccel_config,
) -> c_int {
    guard("vaccel_config_init_from", || {
        ffi::out_ptr(config, "config")?;
        // SAFETY: caller guarantee.
        let src = unsafe { to_rust(config_src) }?;
        fill(config, &src)
    })
}

/// `vaccel_config_release`: frees the strings and resets every field to its default.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_config_release(config: *mut vaccel_config) -> c_int {
    guard("vaccel_config_release", || {
        // SAFETY: caller guarantee.
        let c = unsafe { ffi::as_mut(config, "config") }?;
        // SAFETY: the strings were strdup'ed by the init functions (caller guarantee).
        unsafe {
            cmem::free(c.plugins);
            cmem::free(c.log_file);
        }
        let defaults = Config::default();
        c.plugins = ptr::null_mut();
        c.log_file = ptr::null_mut();
        c.log_level = level_value(defaults.log_level);
        c.profiling_enabled = defaults.profiling_enabled;
        c.version_ignore = defaults.version_ignore;
        Ok(())
    })
}

/// `vaccel_config_new`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_config_new(
    config: *mut *mut vaccel_config,
    plugins: *const c_char,
    log_level: u32,
    log_file: *const c_char,
    profiling_enabled: bool,
    version_ignore: bool,
) -> c_int {
    guard("vaccel_config_new", || {
        // SAFETY: caller guarantee.
        let c = unsafe {
            from_args(
                plugins,
                log_level,
                log_file,
                profiling_enabled,
                version_ignore,
            )
        };
        new_with(config, c)
    })
}

/// `vaccel_config_from_env`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_config_from_env(config: *mut *mut vaccel_config) -> c_int {
    guard("vaccel_config_from_env", || {
        new_with(config, Config::from_env())
    })
}

/// `vaccel_config_from`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_config_from(
    config: *mut *mut vaccel_config,
    config_src: *mut vaccel_config,
) -> c_int {
    guard("vaccel_config_from", || {
        // SAFETY: caller guarantee.
        new_with(config, unsafe { to_rust(config_src) })
    })
}

/// `vaccel_config_delete`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_config_delete(config: *mut vaccel_config) -> c_int {
    // SAFETY: forwarded.
    let ret = unsafe { vaccel_config_release(config) };
    if ret == 0 {
        // SAFETY: a heap config from `vaccel_config_new*` (caller guarantee).
        unsafe { cmem::free(config) };
    }
    ret
}

/// `vaccel_config_print_debug`: logs the configuration at debug level.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_config_print_debug(config: *mut vaccel_config) {
    guard("vaccel_config_print_debug", || {
        // SAFETY: caller guarantee.
        let c = unsafe { to_rust(config) }?;
        c.print_debug();
        Ok(())
    });
}
