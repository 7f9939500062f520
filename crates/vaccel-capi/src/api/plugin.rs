//! `vaccel/plugin.h`: what plugin libraries call (`vaccel_plugin_register_ops`) and loading
//! plugins into the running library.
//!
//! # Safety
//!
//! `ops` holds `nr_ops` ops whose `owner` is the registering plugin's `struct vaccel_plugin`,
//! all valid while the plugin is loaded; strings are NUL-terminated.

use std::ffi::{c_char, c_int};

use vaccel_abi::{VACCEL_OP_MAX, vaccel_op};

use crate::ffi::{self, guard, invalid};
use crate::global;

/// `vaccel_plugin_register_ops`: stores `&ops[i]` in `owner->ops[ops[i].type]`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_plugin_register_ops(ops: *mut vaccel_op, nr_ops: usize) -> c_int {
    guard("vaccel_plugin_register_ops", || {
        if ops.is_null() || nr_ops == 0 {
            log::error!("No operations defined");
            return Err(invalid("No operations defined"));
        }
        if nr_ops > VACCEL_OP_MAX as usize {
            return Err(invalid(format!("too many operations: {nr_ops}")));
        }
        // SAFETY: `ops` holds `nr_ops` ops (caller guarantee).
        let list = unsafe { ffi::slice(ops.cast_const(), nr_ops, "ops") }?;
        let owner = list.first().map_or(std::ptr::null_mut(), |op| op.owner);
        if owner.is_null() {
            return Err(invalid("operations have no owner plugin"));
        }
        if let Some(bad) = list.iter().find(|op| op.r#type >= VACCEL_OP_MAX) {
            return Err(invalid(format!("invalid operation type {}", bad.r#type)));
        }
        for (i, op) in list.iter().enumerate() {
            // SAFETY: `owner` is the plugin's descriptor (caller guarantee), its `ops` array
            // has `VACCEL_OP_MAX` slots and `op.type` is below that (checked above); the
            // stored pointer stays valid while the plugin is loaded (caller guarantee).
            unsafe {
                let slot = (&raw mut (*owner).ops)
                    .cast::<*mut vaccel_op>()
                    .add(op.r#type as usize);
                slot.write(ops.add(i));
            }
        }
        Ok(())
    })
}

/// `vaccel_plugin_load`: adds a plugin library (path or file name) to the running library.
/// Only while no session or resource is alive (`VACCEL_EBUSY`).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_plugin_load(lib: *const c_char) -> c_int {
    guard("vaccel_plugin_load", || {
        // SAFETY: caller guarantee.
        let lib = unsafe { ffi::str_arg(lib, "lib") }?;
        if lib.is_empty() || lib.contains(':') {
            return Err(invalid("lib must name one library"));
        }
        global::load_plugins(lib)
    })
}

/// `vaccel_plugin_parse_and_load`: a `:`-separated list, stopping at the first failure.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_plugin_parse_and_load(lib_str: *const c_char) -> c_int {
    guard("vaccel_plugin_parse_and_load", || {
        // SAFETY: caller guarantee.
        let list = unsafe { ffi::str_arg(lib_str, "lib_str") }?;
        global::load_plugins(list)
    })
}
