//! `vaccel/core.h`: bootstrap and cleanup of the process-wide runtime (spec §4.2).
//!
//! # Safety
//!
//! `config` arguments are null or valid `struct vaccel_config`s.

use std::ffi::{c_char, c_int};

use vaccel_abi::vaccel_config;

use crate::ffi::{guard, guard_value};
use crate::global;

/// `vaccel_bootstrap`: (re)initialises the runtime from the environment.
#[unsafe(no_mangle)]
pub extern "C" fn vaccel_bootstrap() -> c_int {
    guard("vaccel_bootstrap", global::bootstrap_from_env)
}

/// `vaccel_bootstrap_with_config`: (re)initialises the runtime with a copy of `config`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_bootstrap_with_config(config: *mut vaccel_config) -> c_int {
    guard("vaccel_bootstrap_with_config", || {
        // SAFETY: caller guarantee.
        let config = unsafe { super::config::to_rust(config) }.inspect_err(|e| {
            eprintln!("Error: Could not init main config: {e}");
        })?;
        global::bootstrap(config)
    })
}

/// `vaccel_cleanup`: releases everything; no-op when not initialised.
#[unsafe(no_mangle)]
pub extern "C" fn vaccel_cleanup() -> c_int {
    guard("vaccel_cleanup", || {
        global::cleanup();
        Ok(())
    })
}

/// `vaccel_is_initialized`.
#[unsafe(no_mangle)]
pub extern "C" fn vaccel_is_initialized() -> bool {
    guard_value(
        "vaccel_is_initialized",
        false,
        |_| false,
        || Ok(global::is_initialized()),
    )
}

/// `vaccel_rundir`: the runtime's directory (owned by the library), or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn vaccel_rundir() -> *const c_char {
    guard_value(
        "vaccel_rundir",
        std::ptr::null(),
        |_| std::ptr::null(),
        || Ok(global::rundir_ptr()),
    )
}

/// `vaccel_config`: the configuration in force (owned by the library), or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn vaccel_config() -> *const vaccel_config {
    guard_value(
        "vaccel_config",
        std::ptr::null(),
        |_| std::ptr::null(),
        || Ok(global::config_ptr()),
    )
}
