//! `vaccel/log.h`: logging through the runtime's logger (upstream's line format).
//!
//! Its macros expand to `slog.h`'s, as upstream's do, which call `slog_print`: variadic, so it
//! is written in C (`slog.c`, compiled by the build script) over [`vaccel_log_enabled`] and
//! [`vaccel_log_write`].
//!
//! # Safety
//!
//! `msg` is null or NUL-terminated.

use std::ffi::{c_char, c_int};

use vaccel_core::ErrorCode;

use crate::ffi::guard;
use crate::global;

unsafe extern "C" {
    /// `slog.c`: `void slog_print(SLOG_FLAGS_E eFlag, uint8_t nNewLine, const char *pMsg, ...)`.
    fn slog_print(flag: c_int, new_line: u8, msg: *const c_char, ...);
}

/// Makes the object file of this crate (one, see `link_c_api`) refer to `slog_print`, so that
/// the linker takes `slog.c`'s object from its archive into every library and program that
/// links the C API, where they export it.
#[used]
static SLOG_PRINT: unsafe extern "C" fn(c_int, u8, *const c_char, ...) = slog_print;

/// `vaccel_log_init`: (re)applies the configuration's log level and destination.
#[unsafe(no_mangle)]
pub extern "C" fn vaccel_log_init() -> c_int {
    guard("vaccel_log_init", || {
        let config =
            global::with_state(ErrorCode::EBACKEND, |s| Ok(s.config.clone())).unwrap_or_default();
        vaccel_core::logging::init(&config)
    })
}

/// `vaccel_log_shutdown`: turns logging off.
#[unsafe(no_mangle)]
pub extern "C" fn vaccel_log_shutdown() -> c_int {
    guard("vaccel_log_shutdown", || {
        log::set_max_level(log::LevelFilter::Off);
        Ok(())
    })
}

/// `vaccel_log_enabled` (vaccel-rs): whether a message at `level` would be written.
#[unsafe(no_mangle)]
pub extern "C" fn vaccel_log_enabled(level_value: c_int) -> bool {
    crate::ffi::guard_value(
        "vaccel_log_enabled",
        false,
        |_| false,
        || Ok(vaccel_ffi::log_bridge::host_log_enabled(level_value)),
    )
}

/// `vaccel_log_write` (vaccel-rs): writes one message (a trailing newline is dropped).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_log_write(level_value: c_int, msg: *const c_char) {
    guard("vaccel_log_write", || {
        // SAFETY: forwarded caller guarantee (null or NUL-terminated).
        unsafe { vaccel_ffi::log_bridge::host_log_write(level_value, msg) };
        Ok(())
    });
}

/// `vaccel_str_to_lower` (`vaccel/utils/str.h`).
///
/// # Safety
///
/// `str` NUL-terminated; `lower` null or `size` writable bytes; `alloc_lower` null or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_str_to_lower(
    str: *const c_char,
    lower: *mut c_char,
    size: usize,
    alloc_lower: *mut *mut c_char,
) -> c_int {
    guard("vaccel_str_to_lower", || {
        // SAFETY: null or NUL-terminated (caller guarantee).
        let bytes = unsafe { crate::ffi::cstr_arg(str, "str") }?.to_bytes();
        let lowered: Vec<u8> = bytes.iter().map(u8::to_ascii_lowercase).collect();
        if !alloc_lower.is_null() {
            let out = crate::ffi::out_ptr(alloc_lower, "alloc_lower")?;
            let p = crate::cmem::malloc(lowered.len() + 1, "string")?;
            // SAFETY: `p` holds `len + 1` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(lowered.as_ptr(), p, lowered.len());
                p.add(lowered.len()).write(0);
                crate::ffi::write_out(out, p.cast::<c_char>());
            }
            return Ok(());
        }
        if lower.is_null() || size == 0 {
            return Err(crate::ffi::invalid("no output buffer"));
        }
        // SAFETY: `lower` holds `size` writable bytes (caller guarantee).
        let out = unsafe { crate::ffi::slice_mut(lower.cast::<u8>(), size, "lower") }?;
        // Truncated to `size - 1` bytes and NUL-terminated, byte for byte (no UTF-8 rules).
        let n = lowered.len().min(size - 1);
        for (dst, src) in out.iter_mut().zip(lowered.iter().take(n)) {
            *dst = *src;
        }
        if let Some(nul) = out.get_mut(n) {
            *nul = 0;
        }
        Ok(())
    })
}
