//! `vaccel/arg.h`: arguments, argument arrays and the exec function convention.

use std::ffi::{c_int, c_void};

/// The C `vaccel_arg_type_t` enum (`vaccel/arg.h`): what an argument's buffer holds.
///
/// Kept as a plain integer rather than a Rust enum because values come from C callers and remote
/// peers, and an out-of-range discriminant in a Rust enum would be undefined behaviour.
pub type vaccel_arg_type_t = u32;

/// Raw bytes with no declared type; never validated.
pub const VACCEL_ARG_RAW: vaccel_arg_type_t = 0;
/// One `int8_t`.
pub const VACCEL_ARG_INT8: vaccel_arg_type_t = 1;
/// An array of `int8_t`.
pub const VACCEL_ARG_INT8_ARRAY: vaccel_arg_type_t = 2;
/// One `int16_t`.
pub const VACCEL_ARG_INT16: vaccel_arg_type_t = 3;
/// An array of `int16_t`.
pub const VACCEL_ARG_INT16_ARRAY: vaccel_arg_type_t = 4;
/// One `int32_t`.
pub const VACCEL_ARG_INT32: vaccel_arg_type_t = 5;
/// An array of `int32_t`.
pub const VACCEL_ARG_INT32_ARRAY: vaccel_arg_type_t = 6;
/// One `int64_t`.
pub const VACCEL_ARG_INT64: vaccel_arg_type_t = 7;
/// An array of `int64_t`.
pub const VACCEL_ARG_INT64_ARRAY: vaccel_arg_type_t = 8;
/// One `uint8_t`.
pub const VACCEL_ARG_UINT8: vaccel_arg_type_t = 9;
/// An array of `uint8_t`.
pub const VACCEL_ARG_UINT8_ARRAY: vaccel_arg_type_t = 10;
/// One `uint16_t`.
pub const VACCEL_ARG_UINT16: vaccel_arg_type_t = 11;
/// An array of `uint16_t`.
pub const VACCEL_ARG_UINT16_ARRAY: vaccel_arg_type_t = 12;
/// One `uint32_t`.
pub const VACCEL_ARG_UINT32: vaccel_arg_type_t = 13;
/// An array of `uint32_t`.
pub const VACCEL_ARG_UINT32_ARRAY: vaccel_arg_type_t = 14;
/// One `uint64_t`.
pub const VACCEL_ARG_UINT64: vaccel_arg_type_t = 15;
/// An array of `uint64_t`.
pub const VACCEL_ARG_UINT64_ARRAY: vaccel_arg_type_t = 16;
/// One `float`.
pub const VACCEL_ARG_FLOAT32: vaccel_arg_type_t = 17;
/// An array of `float`.
pub const VACCEL_ARG_FLOAT32_ARRAY: vaccel_arg_type_t = 18;
/// One `double`.
pub const VACCEL_ARG_FLOAT64: vaccel_arg_type_t = 19;
/// An array of `double`.
pub const VACCEL_ARG_FLOAT64_ARRAY: vaccel_arg_type_t = 20;
/// One `bool` (a byte holding 0 or 1).
pub const VACCEL_ARG_BOOL: vaccel_arg_type_t = 21;
/// An array of `bool` (bytes holding 0 or 1).
pub const VACCEL_ARG_BOOL_ARRAY: vaccel_arg_type_t = 22;
/// One `char`.
pub const VACCEL_ARG_CHAR: vaccel_arg_type_t = 23;
/// An array of `char`.
pub const VACCEL_ARG_CHAR_ARRAY: vaccel_arg_type_t = 24;
/// One `unsigned char`.
pub const VACCEL_ARG_UCHAR: vaccel_arg_type_t = 25;
/// An array of `unsigned char`.
pub const VACCEL_ARG_UCHAR_ARRAY: vaccel_arg_type_t = 26;
/// A NUL-terminated string; `size` counts the terminator.
pub const VACCEL_ARG_STRING: vaccel_arg_type_t = 27;
/// A non-empty opaque byte buffer.
pub const VACCEL_ARG_BUFFER: vaccel_arg_type_t = 28;
/// An application-defined type named by `custom_type_id`; never validated by vAccel.
pub const VACCEL_ARG_CUSTOM: vaccel_arg_type_t = 29;
/// One past the last valid argument type; also what `vaccel_arg_release` leaves in `type`.
pub const VACCEL_ARG_MAX: vaccel_arg_type_t = 30;

/// Upstream's `struct vaccel_arg` (`vaccel/arg.h`): one argument of an operation.
///
/// ```c
/// struct vaccel_arg { void *buf; size_t size; vaccel_arg_type_t type;
///                     uint32_t custom_type_id; bool owned; };
/// ```
///
/// Nothing here is checked: `buf` may be null or dangling, and `size` is whatever the sender
/// claims. Code that dereferences `buf` must validate both first.
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_arg {
    /// Start of the argument's bytes; null for an empty argument.
    pub buf: *mut c_void,
    /// Length of `buf` in bytes.
    pub size: usize,
    /// What `buf` holds: one of the `VACCEL_ARG_*` constants (C field `type`).
    pub r#type: vaccel_arg_type_t,
    /// For [`VACCEL_ARG_CUSTOM`], the application's type id; otherwise 0.
    pub custom_type_id: u32,
    /// Whether the argument owns `buf` and frees it on release.
    pub owned: bool,
}

/// The exec plugin's target function convention (upstream §9.2):
///
/// ```c
/// int fn(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write);
/// ```
///
/// `read` and `write` point to arrays of `nr_read` and `nr_write` arguments; the function reads
/// its inputs from `read` and stores results in the buffers of `write`. A non-zero return means
/// failure (the exec plugin reports it as `VACCEL_EBACKEND`).
pub type vaccel_exec_fn = unsafe extern "C" fn(
    read: *mut vaccel_arg,
    nr_read: usize,
    write: *mut vaccel_arg,
    nr_write: usize,
) -> c_int;

/// Upstream's `struct vaccel_arg_array` (`vaccel/arg.h`): an argument list with a cursor.
///
/// ```c
/// struct vaccel_arg_array { struct vaccel_arg *args; size_t count; size_t capacity;
///                           size_t position; bool owned; };
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_arg_array {
    /// The arguments (`capacity` slots, `count` used).
    pub args: *mut vaccel_arg,
    /// Number of arguments added.
    pub count: usize,
    /// Number of slots in `args`.
    pub capacity: usize,
    /// Index of the next argument a `get`/`set` reads or writes.
    pub position: usize,
    /// Whether the library allocated `args` (and frees it on release).
    pub owned: bool,
}

/// Upstream's deprecated `struct vaccel_arg_list` (`vaccel/arg.h`).
///
/// ```c
/// struct vaccel_arg_list { uint32_t size; struct vaccel_arg *list; int curr_idx;
///                          int *idcs_allocated_space; };
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_arg_list {
    /// Number of slots in `list`.
    pub size: u32,
    /// The arguments.
    pub list: *mut vaccel_arg,
    /// Index of the next slot to fill.
    pub curr_idx: c_int,
    /// Per slot, 1 when the library allocated the slot's buffer.
    pub idcs_allocated_space: *mut c_int,
}

/// `bool (*vaccel_arg_type_validator_fn)(const void *buf, size_t size, uint32_t custom_id)`.
pub type vaccel_arg_type_validator_fn =
    Option<unsafe extern "C" fn(buf: *const c_void, size: usize, custom_id: u32) -> bool>;

/// `int (*vaccel_arg_serializer_fn)(const void *data, size_t data_size, uint32_t custom_id,
/// void **buf, size_t *size)`: allocates (with `malloc`) the serialized bytes.
pub type vaccel_arg_serializer_fn = Option<
    unsafe extern "C" fn(
        data: *const c_void,
        data_size: usize,
        custom_id: u32,
        buf: *mut *mut c_void,
        size: *mut usize,
    ) -> c_int,
>;

/// `int (*vaccel_arg_deserializer_fn)(const void *buf, size_t size, uint32_t custom_id,
/// size_t data_size, void *data)`.
pub type vaccel_arg_deserializer_fn = Option<
    unsafe extern "C" fn(
        buf: *const c_void,
        size: usize,
        custom_id: u32,
        data_size: usize,
        data: *mut c_void,
    ) -> c_int,
>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn vaccel_arg_layout_matches_upstream_on_64_bit() {
        assert_eq!(size_of::<vaccel_arg>(), 32);
        assert_eq!(align_of::<vaccel_arg>(), 8);
        assert_eq!(offset_of!(vaccel_arg, buf), 0);
        assert_eq!(offset_of!(vaccel_arg, size), 8);
        assert_eq!(offset_of!(vaccel_arg, r#type), 16);
        assert_eq!(offset_of!(vaccel_arg, custom_type_id), 20);
        assert_eq!(offset_of!(vaccel_arg, owned), 24);
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn arg_array_and_list_layouts() {
        assert_eq!(size_of::<vaccel_arg_array>(), 40);
        assert_eq!(offset_of!(vaccel_arg_array, args), 0);
        assert_eq!(offset_of!(vaccel_arg_array, count), 8);
        assert_eq!(offset_of!(vaccel_arg_array, capacity), 16);
        assert_eq!(offset_of!(vaccel_arg_array, position), 24);
        assert_eq!(offset_of!(vaccel_arg_array, owned), 32);
        assert_eq!(size_of::<vaccel_arg_list>(), 32);
        assert_eq!(offset_of!(vaccel_arg_list, size), 0);
        assert_eq!(offset_of!(vaccel_arg_list, list), 8);
        assert_eq!(offset_of!(vaccel_arg_list, curr_idx), 16);
        assert_eq!(offset_of!(vaccel_arg_list, idcs_allocated_space), 24);
    }

    #[test]
    fn arg_type_constants_match_upstream_table() {
        // Upstream's `vaccel_arg_type_t` in declaration order (spec §1.2); the value is the index.
        let upstream = [
            ("RAW", VACCEL_ARG_RAW),
            ("INT8", VACCEL_ARG_INT8),
            ("INT8_ARRAY", VACCEL_ARG_INT8_ARRAY),
            ("INT16", VACCEL_ARG_INT16),
            ("INT16_ARRAY", VACCEL_ARG_INT16_ARRAY),
            ("INT32", VACCEL_ARG_INT32),
            ("INT32_ARRAY", VACCEL_ARG_INT32_ARRAY),
            ("INT64", VACCEL_ARG_INT64),
            ("INT64_ARRAY", VACCEL_ARG_INT64_ARRAY),
            ("UINT8", VACCEL_ARG_UINT8),
            ("UINT8_ARRAY", VACCEL_ARG_UINT8_ARRAY),
            ("UINT16", VACCEL_ARG_UINT16),
            ("UINT16_ARRAY", VACCEL_ARG_UINT16_ARRAY),
            ("UINT32", VACCEL_ARG_UINT32),
            ("UINT32_ARRAY", VACCEL_ARG_UINT32_ARRAY),
            ("UINT64", VACCEL_ARG_UINT64),
            ("UINT64_ARRAY", VACCEL_ARG_UINT64_ARRAY),
            ("FLOAT32", VACCEL_ARG_FLOAT32),
            ("FLOAT32_ARRAY", VACCEL_ARG_FLOAT32_ARRAY),
            ("FLOAT64", VACCEL_ARG_FLOAT64),
            ("FLOAT64_ARRAY", VACCEL_ARG_FLOAT64_ARRAY),
            ("BOOL", VACCEL_ARG_BOOL),
            ("BOOL_ARRAY", VACCEL_ARG_BOOL_ARRAY),
            ("CHAR", VACCEL_ARG_CHAR),
            ("CHAR_ARRAY", VACCEL_ARG_CHAR_ARRAY),
            ("UCHAR", VACCEL_ARG_UCHAR),
            ("UCHAR_ARRAY", VACCEL_ARG_UCHAR_ARRAY),
            ("STRING", VACCEL_ARG_STRING),
            ("BUFFER", VACCEL_ARG_BUFFER),
            ("CUSTOM", VACCEL_ARG_CUSTOM),
            ("MAX", VACCEL_ARG_MAX),
        ];
        for (expected, (name, value)) in (0u32..).zip(upstream) {
            assert_eq!(value, expected, "VACCEL_ARG_{name}");
        }
        assert_eq!(upstream.len(), 31);
    }

    #[test]
    fn exec_fn_is_a_plain_function_pointer() {
        // Loaders turn a symbol address into this type, so it must be exactly pointer-sized.
        assert_eq!(size_of::<vaccel_exec_fn>(), size_of::<*const c_void>());
        assert_eq!(
            size_of::<Option<vaccel_exec_fn>>(),
            size_of::<*const c_void>()
        );
    }
}
