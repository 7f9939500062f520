//! Logging across the C boundary, in the numbering C uses (1 error ... 5 trace): the host side
//! writes C messages to this process's `log` logger; plugin libraries built with the SDK are
//! handed [`host_log_write`] and [`host_log_enabled`] (in `struct vaccel_rs_host`) so their
//! records reach the host's logger.

use std::ffi::{CStr, c_char, c_int};

/// Where C messages go (`vaccel` is the target upstream's log lines carry).
pub const TARGET: &str = "vaccel";

/// A C log level as a `log` level (0 and 1 are errors; above 4 is trace).
pub fn level(level: c_int) -> log::Level {
    match level {
        1 | 0 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

/// A `log` level in the C numbering.
pub fn c_level(level: log::Level) -> c_int {
    match level {
        log::Level::Error => 1,
        log::Level::Warn => 2,
        log::Level::Info => 3,
        log::Level::Debug => 4,
        log::Level::Trace => 5,
    }
}

/// Whether a message at `level_value` would be written.
pub extern "C" fn host_log_enabled(level_value: c_int) -> bool {
    log::log_enabled!(target: TARGET, level(level_value))
}

/// Writes one C message at `level_value` (a trailing newline is dropped; null is ignored).
///
/// # Safety
///
/// `msg` is null or NUL-terminated.
pub unsafe extern "C" fn host_log_write(level_value: c_int, msg: *const c_char) {
    if msg.is_null() {
        return;
    }
    // SAFETY: non-null and NUL-terminated (caller guarantee).
    let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    let text = text.strip_suffix('\n').unwrap_or(&text);
    log::log!(target: TARGET, level(level_value), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip() {
        for l in [
            log::Level::Error,
            log::Level::Warn,
            log::Level::Info,
            log::Level::Debug,
            log::Level::Trace,
        ] {
            assert_eq!(level(c_level(l)), l);
        }
        assert_eq!(c_level(log::Level::Error), 1);
        assert_eq!(c_level(log::Level::Debug), 4);
        assert_eq!(c_level(log::Level::Trace), 5);
        assert_eq!(level(0), log::Level::Error);
        assert_eq!(level(9), log::Level::Trace);
    }

    #[test]
    fn null_messages_are_ignored() {
        // SAFETY: null is allowed.
        unsafe { host_log_write(1, std::ptr::null()) };
    }
}
