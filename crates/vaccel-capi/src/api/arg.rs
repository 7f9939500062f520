//! `vaccel/arg.h`: arguments, argument arrays and the deprecated argument list (spec §1.8).
//!
//! These functions work on the caller's C structs with upstream's semantics: added args
//! reference caller memory (`owned = false`) unless the function says it copies, and owned
//! buffers come from the C allocator. Built-in types are validated with the runtime's own
//! rules (`Arg::from_parts`), so what an array accepts is exactly what an operation accepts.
//!
//! # Safety
//!
//! `arg`/`array` arguments are null or valid structs (for initialisers: writable memory);
//! an array's `args` holds `capacity` slots of which `count` are initialised; every arg's
//! `buf` holds `size` bytes; value pointers hold their type (and `count` elements for
//! arrays); strings are NUL-terminated; callbacks are null or valid functions of their type;
//! out-parameters are null or writable. Referenced caller memory must outlive its use.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use vaccel_abi::{
    VACCEL_ARG_BUFFER, VACCEL_ARG_CUSTOM, VACCEL_ARG_MAX, VACCEL_ARG_RAW, VACCEL_ARG_STRING,
    vaccel_arg, vaccel_arg_array, vaccel_arg_deserializer_fn, vaccel_arg_list,
    vaccel_arg_serializer_fn, vaccel_arg_type_validator_fn,
};
use vaccel_core::arg::Arg;
use vaccel_core::{Error, ErrorCode};

use crate::cmem;
use crate::ffi::{self, Res, guard, guard_value, invalid};

/// Upstream's default capacity.
const DEFAULT_CAPACITY: usize = 8;

fn out_of_range(position: usize, count: usize) -> Error {
    Error::OutOfRange { position, count }
}

/// Checks `bytes` against the rules of `ty` (scalar sizes, array multiples, bools 0/1, NUL
/// terminators, non-empty buffers). RAW and CUSTOM pass.
fn validate(ty: u32, bytes: &[u8]) -> Res<()> {
    Arg::from_parts(ty, 0, bytes)
        .map(|_| ())
        .map_err(|e| Error::arg(0, e))
}

// ---- single args ------------------------------------------------------------------------

/// # Safety
///
/// See the module docs.
unsafe fn arg_init(
    arg: *mut vaccel_arg,
    buf: *const c_void,
    size: usize,
    ty: u32,
    custom: u32,
) -> Res<()> {
    let arg = ffi::out_ptr(arg, "arg")?;
    if !buf.is_null() && size == 0 {
        return Err(invalid("buf given with size 0"));
    }
    let data = if size == 0 {
        ptr::null_mut()
    } else if buf.is_null() {
        cmem::calloc::<u8>(size, "arg buffer")?
    } else {
        // SAFETY: `buf` holds `size` bytes (caller guarantee).
        let bytes = unsafe { ffi::bytes(buf, size, "buf") }?;
        cmem::malloc_copy(bytes, "arg buffer")?
    };
    // SAFETY: checked by `out_ptr`.
    unsafe {
        arg.write(vaccel_arg {
            buf: data.cast(),
            size,
            r#type: ty,
            custom_type_id: custom,
            owned: true,
        });
    }
    Ok(())
}

/// The rule of a referencing arg (`vaccel_arg_init_from_buf`, `_add_raw`): `buf` is NULL
/// exactly when `size` is 0.
fn check_ref(buf: *const c_void, size: usize) -> Res<()> {
    if buf.is_null() != (size == 0) {
        return Err(invalid("buf must be NULL exactly when size is 0"));
    }
    Ok(())
}

/// # Safety
///
/// See the module docs.
unsafe fn arg_init_from_buf(
    arg: *mut vaccel_arg,
    buf: *mut c_void,
    size: usize,
    ty: u32,
    custom: u32,
) -> Res<()> {
    let arg = ffi::out_ptr(arg, "arg")?;
    check_ref(buf, size)?;
    // SAFETY: checked by `out_ptr`.
    unsafe {
        arg.write(vaccel_arg {
            buf,
            size,
            r#type: ty,
            custom_type_id: custom,
            owned: false,
        });
    }
    Ok(())
}

/// Frees an arg's owned buffer and resets it.
///
/// # Safety
///
/// `arg` is a valid arg; if `owned`, its `buf` is from the C allocator.
unsafe fn release_arg(arg: &mut vaccel_arg) {
    if arg.owned {
        // SAFETY: owned buffers come from the C allocator (caller guarantee).
        unsafe { cmem::free(arg.buf) };
    }
    *arg = vaccel_arg {
        buf: ptr::null_mut(),
        size: 0,
        r#type: VACCEL_ARG_MAX,
        custom_type_id: 0,
        owned: false,
    };
}

/// `vaccel_arg_init`: copies `buf` into an owned buffer.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_init(
    arg: *mut vaccel_arg,
    buf: *const c_void,
    size: usize,
    ty: u32,
    custom_id: u32,
) -> c_int {
    // SAFETY: forwarded caller guarantees.
    guard("vaccel_arg_init", || unsafe {
        arg_init(arg, buf, size, ty, custom_id)
    })
}

/// `vaccel_arg_init_from_buf`: references `buf`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_init_from_buf(
    arg: *mut vaccel_arg,
    buf: *mut c_void,
    size: usize,
    ty: u32,
    custom_id: u32,
) -> c_int {
    // SAFETY: forwarded caller guarantees.
    guard("vaccel_arg_init_from_buf", || unsafe {
        arg_init_from_buf(arg, buf, size, ty, custom_id)
    })
}

/// `vaccel_arg_release`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_release(arg: *mut vaccel_arg) -> c_int {
    guard("vaccel_arg_release", || {
        // SAFETY: caller guarantee.
        let arg = unsafe { ffi::as_mut(arg, "arg") }?;
        // SAFETY: caller guarantee on owned buffers.
        unsafe { release_arg(arg) };
        Ok(())
    })
}

/// Heap variant of an initialiser.
fn new_arg(out: *mut *mut vaccel_arg, init: impl FnOnce(*mut vaccel_arg) -> Res<()>) -> Res<()> {
    let out = ffi::out_ptr(out, "arg")?;
    let arg = cmem::calloc::<vaccel_arg>(1, "arg")?;
    if let Err(e) = init(arg) {
        // SAFETY: allocated above, not shared.
        unsafe { cmem::free(arg) };
        return Err(e);
    }
    // SAFETY: checked by `out_ptr`.
    unsafe { ffi::write_out(out, arg) };
    Ok(())
}

/// `vaccel_arg_new`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_new(
    arg: *mut *mut vaccel_arg,
    buf: *const c_void,
    size: usize,
    ty: u32,
    custom_id: u32,
) -> c_int {
    guard("vaccel_arg_new", || {
        // SAFETY: a fresh allocation; forwarded caller guarantees.
        new_arg(arg, |a| unsafe { arg_init(a, buf, size, ty, custom_id) })
    })
}

/// `vaccel_arg_from_buf`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_from_buf(
    arg: *mut *mut vaccel_arg,
    buf: *mut c_void,
    size: usize,
    ty: u32,
    custom_id: u32,
) -> c_int {
    guard("vaccel_arg_from_buf", || {
        // SAFETY: a fresh allocation; forwarded caller guarantees.
        new_arg(arg, |a| unsafe {
            arg_init_from_buf(a, buf, size, ty, custom_id)
        })
    })
}

/// `vaccel_arg_delete`.
///
/// # Safety
///
/// `arg` is null or from `vaccel_arg_new`/`_from_buf`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_delete(arg: *mut vaccel_arg) -> c_int {
    // SAFETY: forwarded.
    let ret = unsafe { vaccel_arg_release(arg) };
    if ret == 0 {
        // SAFETY: a heap arg (caller guarantee).
        unsafe { cmem::free(arg) };
    }
    ret
}

// ---- arrays -----------------------------------------------------------------------------

/// The initialised args of an array.
///
/// # Safety
///
/// `a` is valid (module docs).
unsafe fn args<'a>(a: &vaccel_arg_array) -> Res<&'a mut [vaccel_arg]> {
    if a.count > a.capacity {
        return Err(invalid("array count exceeds its capacity"));
    }
    // SAFETY: `args` holds `count` initialised args (caller guarantee).
    unsafe { ffi::slice_mut(a.args, a.count, "array args") }
}

/// # Safety
///
/// `array` is writable.
unsafe fn array_init(array: *mut vaccel_arg_array, capacity: usize) -> Res<()> {
    let array = ffi::out_ptr(array, "array")?;
    let capacity = if capacity == 0 {
        DEFAULT_CAPACITY
    } else {
        capacity
    };
    let args = cmem::calloc::<vaccel_arg>(capacity, "arg array")?;
    // SAFETY: checked by `out_ptr`.
    unsafe {
        array.write(vaccel_arg_array {
            args,
            count: 0,
            capacity,
            position: 0,
            owned: true,
        });
    }
    Ok(())
}

/// Appends `arg` (growing owned arrays, `ERANGE` for wrapped ones). On failure an owned
/// `arg` buffer is freed.
///
/// # Safety
///
/// `a` is valid; an owned `arg.buf` is from the C allocator.
unsafe fn push(a: &mut vaccel_arg_array, arg: vaccel_arg) -> Res<()> {
    let fail = |arg: vaccel_arg, e: Error| {
        if arg.owned {
            // SAFETY: owned buffers come from the C allocator.
            unsafe { cmem::free(arg.buf) };
        }
        Err(e)
    };
    if a.count > a.capacity {
        return fail(arg, invalid("array count exceeds its capacity"));
    }
    if a.count == a.capacity {
        if !a.owned {
            return fail(
                arg,
                Error::ArrayFull {
                    capacity: a.capacity,
                },
            );
        }
        let capacity = a.capacity.max(1).saturating_mul(2);
        // SAFETY: owned arrays' `args` come from the C allocator.
        match unsafe { cmem::realloc(a.args, capacity, "arg array") } {
            Ok(p) => {
                a.args = p;
                a.capacity = capacity;
            }
            Err(e) => return fail(arg, e),
        }
    }
    // SAFETY: `count < capacity`, so the slot is inside the allocation.
    unsafe { a.args.add(a.count).write(arg) };
    a.count += 1;
    Ok(())
}

/// A referencing arg over validated caller bytes.
///
/// # Safety
///
/// `buf` holds `size` bytes.
unsafe fn checked_ref(buf: *const c_void, size: usize, ty: u32, custom: u32) -> Res<vaccel_arg> {
    if buf.is_null() {
        return Err(invalid("value is NULL"));
    }
    // SAFETY: caller guarantee.
    let bytes = unsafe { ffi::bytes(buf, size, "value") }?;
    validate(ty, bytes)?;
    Ok(vaccel_arg {
        buf: buf.cast_mut(),
        size,
        r#type: ty,
        custom_type_id: custom,
        owned: false,
    })
}

/// Adds a validated reference to caller memory.
///
/// # Safety
///
/// See the module docs.
unsafe fn add_ref(
    array: *mut vaccel_arg_array,
    buf: *const c_void,
    size: usize,
    ty: u32,
) -> Res<()> {
    // SAFETY: caller guarantees.
    unsafe {
        let a = ffi::as_mut(array, "array")?;
        let arg = checked_ref(buf, size, ty, 0)?;
        push(a, arg)
    }
}

/// The arg at the cursor (`ERANGE` past the end).
///
/// # Safety
///
/// See the module docs.
unsafe fn current<'a>(
    array: *mut vaccel_arg_array,
) -> Res<(&'a mut vaccel_arg_array, *mut vaccel_arg)> {
    // SAFETY: caller guarantee.
    let a = unsafe { ffi::as_mut(array, "array") }?;
    if a.position >= a.count {
        return Err(out_of_range(a.position, a.count));
    }
    if a.count > a.capacity || a.args.is_null() {
        return Err(invalid("corrupt array"));
    }
    // SAFETY: `position < count <= capacity`: an initialised slot.
    let arg = unsafe { a.args.add(a.position) };
    Ok((a, arg))
}

/// The bytes of an arg, checked against `ty`.
///
/// # Safety
///
/// `arg` is valid.
unsafe fn typed_bytes<'a>(arg: &vaccel_arg, ty: u32) -> Res<&'a [u8]> {
    if arg.r#type != ty {
        return Err(invalid(format!("arg type is {}, not {}", arg.r#type, ty)));
    }
    // SAFETY: `buf` holds `size` bytes (caller guarantee).
    unsafe { ffi::bytes(arg.buf, arg.size, "arg") }
}

/// Overwrites the start of the current arg's buffer with `data` after `check` accepts the
/// arg, then advances.
///
/// # Safety
///
/// See the module docs; `data` holds its bytes.
unsafe fn set_current(
    array: *mut vaccel_arg_array,
    data: &[u8],
    check: impl FnOnce(&vaccel_arg) -> Res<()>,
) -> Res<()> {
    // SAFETY: caller guarantee.
    let (a, arg) = unsafe { current(array) }?;
    // SAFETY: an initialised slot.
    let arg = unsafe { &mut *arg };
    check(arg)?;
    if data.len() > arg.size {
        return Err(invalid(format!(
            "value of {} bytes does not fit the arg's {}",
            data.len(),
            arg.size
        )));
    }
    if !data.is_empty() {
        if arg.buf.is_null() {
            return Err(invalid("arg has no buffer"));
        }
        // SAFETY: `arg.buf` holds `arg.size >= data.len()` bytes; `copy` tolerates overlap.
        unsafe { ptr::copy(data.as_ptr(), arg.buf.cast::<u8>(), data.len()) };
    }
    a.position += 1;
    Ok(())
}

fn expect_type(arg: &vaccel_arg, ty: u32) -> Res<()> {
    if arg.r#type == ty {
        Ok(())
    } else {
        Err(invalid(format!("arg type is {}, not {ty}", arg.r#type)))
    }
}

/// `vaccel_arg_array_init`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_init(
    array: *mut vaccel_arg_array,
    initial_capacity: usize,
) -> c_int {
    // SAFETY: forwarded.
    guard("vaccel_arg_array_init", || unsafe {
        array_init(array, initial_capacity)
    })
}

/// `vaccel_arg_array_release`: releases every arg, frees `args` if owned.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_release(array: *mut vaccel_arg_array) -> c_int {
    guard("vaccel_arg_array_release", || {
        // SAFETY: caller guarantee.
        let a = unsafe { ffi::as_mut(array, "array") }?;
        if a.args.is_null() {
            return Err(invalid("array has no args"));
        }
        // SAFETY: caller guarantee.
        for arg in unsafe { args(a) }? {
            // SAFETY: caller guarantee on owned buffers.
            unsafe { release_arg(arg) };
        }
        if a.owned {
            // SAFETY: owned arrays' storage is from the C allocator.
            unsafe { cmem::free(a.args) };
        }
        *a = vaccel_arg_array {
            args: ptr::null_mut(),
            count: 0,
            capacity: 0,
            position: 0,
            owned: false,
        };
        Ok(())
    })
}

/// `vaccel_arg_array_new`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_new(
    array: *mut *mut vaccel_arg_array,
    initial_capacity: usize,
) -> c_int {
    guard("vaccel_arg_array_new", || {
        let out = ffi::out_ptr(array, "array")?;
        let a = cmem::calloc::<vaccel_arg_array>(1, "arg array")?;
        // SAFETY: a fresh allocation.
        if let Err(e) = unsafe { array_init(a, initial_capacity) } {
            // SAFETY: allocated above.
            unsafe { cmem::free(a) };
            return Err(e);
        }
        // SAFETY: checked by `out_ptr`.
        unsafe { ffi::write_out(out, a) };
        Ok(())
    })
}

/// `vaccel_arg_array_delete`.
///
/// # Safety
///
/// `array` is null or from `vaccel_arg_array_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_delete(array: *mut vaccel_arg_array) -> c_int {
    // SAFETY: forwarded.
    let ret = unsafe { vaccel_arg_array_release(array) };
    if ret == 0 {
        // SAFETY: a heap array (caller guarantee).
        unsafe { cmem::free(array) };
    }
    ret
}

/// `vaccel_arg_array_wrap`: a fixed-size array over caller args.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_wrap(
    array: *mut vaccel_arg_array,
    args: *mut vaccel_arg,
    count: usize,
) -> c_int {
    guard("vaccel_arg_array_wrap", || {
        let array = ffi::out_ptr(array, "array")?;
        if args.is_null() {
            return Err(invalid("args is NULL"));
        }
        // SAFETY: checked by `out_ptr`.
        unsafe {
            array.write(vaccel_arg_array {
                args,
                count,
                capacity: count,
                position: 0,
                owned: false,
            });
        }
        Ok(())
    })
}

/// `vaccel_arg_array_clear`: releases every arg, keeps the storage.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_clear(array: *mut vaccel_arg_array) {
    guard("vaccel_arg_array_clear", || {
        // SAFETY: caller guarantee.
        let a = unsafe { ffi::as_mut(array, "array") }?;
        // SAFETY: caller guarantee.
        for arg in unsafe { args(a) }? {
            // SAFETY: caller guarantee on owned buffers.
            unsafe { release_arg(arg) };
        }
        a.count = 0;
        a.position = 0;
        Ok(())
    });
}

/// `vaccel_arg_array_add_raw`: no type validation; `buf` is NULL exactly when `size` is 0
/// (upstream initialises the slot with `vaccel_arg_init_from_buf`).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_add_raw(
    array: *mut vaccel_arg_array,
    buf: *mut c_void,
    size: usize,
) -> c_int {
    guard("vaccel_arg_array_add_raw", || {
        // SAFETY: caller guarantee.
        let a = unsafe { ffi::as_mut(array, "array") }?;
        check_ref(buf, size)?;
        let arg = vaccel_arg {
            buf,
            size,
            r#type: VACCEL_ARG_RAW,
            custom_type_id: 0,
            owned: false,
        };
        // SAFETY: a referencing arg.
        unsafe { push(a, arg) }
    })
}

macro_rules! numeric {
    ($($name:ident: $t:ty = $scalar:ident / $array:ident;)+) => { $( numeric_impl!($name, $t, $scalar, $array); )+ };
}

macro_rules! numeric_impl {
    ($name:ident, $t:ty, $scalar:ident, $array:ident) => {
        mod $name {
            use super::*;
            use vaccel_abi::{$array, $scalar};

            fn scalar_size() -> usize {
                size_of::<$t>()
            }

            /// Adds a reference to `*value`.
            ///
            /// # Safety
            ///
            /// See the module docs.
            pub(super) unsafe fn add(array: *mut vaccel_arg_array, value: *mut $t) -> Res<()> {
                // SAFETY: `value` holds one element (caller guarantee).
                unsafe { add_ref(array, value.cast_const().cast(), scalar_size(), $scalar) }
            }

            /// Adds a reference to `count` values.
            ///
            /// # Safety
            ///
            /// See the module docs.
            pub(super) unsafe fn add_array(
                array: *mut vaccel_arg_array,
                values: *mut $t,
                count: usize,
            ) -> Res<()> {
                let size = count
                    .checked_mul(scalar_size())
                    .ok_or_else(|| invalid("array too large"))?;
                // SAFETY: `values` holds `count` elements (caller guarantee).
                unsafe { add_ref(array, values.cast_const().cast(), size, $array) }
            }

            /// Copies the current arg into `*value` and advances.
            ///
            /// # Safety
            ///
            /// See the module docs.
            pub(super) unsafe fn get(array: *mut vaccel_arg_array, value: *mut $t) -> Res<()> {
                let value = ffi::out_ptr(value, "value")?;
                // SAFETY: caller guarantee.
                let (a, arg) = unsafe { current(array) }?;
                // SAFETY: an initialised slot whose buffer holds `size` bytes.
                let (src, len) = unsafe {
                    let bytes = typed_bytes(&*arg, $scalar)?;
                    validate($scalar, bytes)?;
                    (bytes.as_ptr(), bytes.len())
                };
                // SAFETY: `src` is exactly one valid element (validated); `value` checked. The
                // two may be the same memory (an arg referencing the output), hence `copy`.
                unsafe { ptr::copy(src, value.cast::<u8>(), len) };
                a.position += 1;
                Ok(())
            }

            /// Points `*values` at the current arg's elements and advances.
            ///
            /// # Safety
            ///
            /// See the module docs.
            pub(super) unsafe fn get_array(
                array: *mut vaccel_arg_array,
                values: *mut *mut $t,
                count: *mut usize,
            ) -> Res<()> {
                let values = ffi::out_ptr(values, "values")?;
                // SAFETY: caller guarantee.
                let (a, arg) = unsafe { current(array) }?;
                // SAFETY: an initialised slot.
                let arg = unsafe { &*arg };
                // SAFETY: the buffer holds `size` bytes.
                let bytes = unsafe { typed_bytes(arg, $array) }?;
                validate($array, bytes)?;
                // SAFETY: `values` checked; `count` null or writable (caller guarantee).
                unsafe {
                    ffi::write_out(values, arg.buf.cast::<$t>());
                    if !count.is_null() {
                        ffi::write_out(ffi::out_ptr(count, "count")?, bytes.len() / scalar_size());
                    }
                }
                a.position += 1;
                Ok(())
            }

            /// Overwrites the current arg with `*value` and advances.
            ///
            /// # Safety
            ///
            /// See the module docs.
            pub(super) unsafe fn set(array: *mut vaccel_arg_array, value: *mut $t) -> Res<()> {
                let data =
                    // SAFETY: `value` holds one element (caller guarantee).
                    unsafe { ffi::bytes(value.cast_const().cast(), scalar_size(), "value") }?;
                if value.is_null() {
                    return Err(invalid("value is NULL"));
                }
                validate($scalar, data)?;
                // SAFETY: caller guarantees.
                unsafe {
                    set_current(array, data, |arg| {
                        expect_type(arg, $scalar)?;
                        if arg.size != scalar_size() {
                            return Err(invalid("arg size is not the type's"));
                        }
                        Ok(())
                    })
                }
            }

            /// Overwrites the start of the current array arg with `count` values.
            ///
            /// # Safety
            ///
            /// See the module docs.
            pub(super) unsafe fn set_array(
                array: *mut vaccel_arg_array,
                values: *mut $t,
                count: usize,
            ) -> Res<()> {
                let size = count
                    .checked_mul(scalar_size())
                    .ok_or_else(|| invalid("array too large"))?;
                if values.is_null() || count == 0 {
                    return Err(invalid("values is NULL or empty"));
                }
                // SAFETY: `values` holds `count` elements (caller guarantee).
                let data = unsafe { ffi::bytes(values.cast_const().cast(), size, "values") }?;
                validate($array, data)?;
                // SAFETY: caller guarantees.
                unsafe { set_current(array, data, |arg| expect_type(arg, $array)) }
            }
        }
    };
}

numeric! {
    num_int8: i8 = VACCEL_ARG_INT8 / VACCEL_ARG_INT8_ARRAY;
    num_int16: i16 = VACCEL_ARG_INT16 / VACCEL_ARG_INT16_ARRAY;
    num_int32: i32 = VACCEL_ARG_INT32 / VACCEL_ARG_INT32_ARRAY;
    num_int64: i64 = VACCEL_ARG_INT64 / VACCEL_ARG_INT64_ARRAY;
    num_uint8: u8 = VACCEL_ARG_UINT8 / VACCEL_ARG_UINT8_ARRAY;
    num_uint16: u16 = VACCEL_ARG_UINT16 / VACCEL_ARG_UINT16_ARRAY;
    num_uint32: u32 = VACCEL_ARG_UINT32 / VACCEL_ARG_UINT32_ARRAY;
    num_uint64: u64 = VACCEL_ARG_UINT64 / VACCEL_ARG_UINT64_ARRAY;
    num_float: f32 = VACCEL_ARG_FLOAT32 / VACCEL_ARG_FLOAT32_ARRAY;
    num_double: f64 = VACCEL_ARG_FLOAT64 / VACCEL_ARG_FLOAT64_ARRAY;
    num_bool: u8 = VACCEL_ARG_BOOL / VACCEL_ARG_BOOL_ARRAY;
    num_char: c_char = VACCEL_ARG_CHAR / VACCEL_ARG_CHAR_ARRAY;
    num_uchar: u8 = VACCEL_ARG_UCHAR / VACCEL_ARG_UCHAR_ARRAY;
}

/// The exported add/get/set functions of one numeric type.
macro_rules! numeric_exports {
    ($module:ident, $t:ty, $add:ident, $add_array:ident, $get:ident, $get_array:ident, $set:ident, $set_array:ident) => {
        /// See `vaccel/arg.h`: adds a reference to one value.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $add(array: *mut vaccel_arg_array, value: *mut $t) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($add), || unsafe { $module::add(array, value) })
        }

        /// See `vaccel/arg.h`: adds a reference to `count` values.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $add_array(
            array: *mut vaccel_arg_array,
            values: *mut $t,
            count: usize,
        ) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($add_array), || unsafe {
                $module::add_array(array, values, count)
            })
        }

        /// See `vaccel/arg.h`: copies the current arg out and advances.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $get(array: *mut vaccel_arg_array, value: *mut $t) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($get), || unsafe { $module::get(array, value) })
        }

        /// See `vaccel/arg.h`: points at the current array arg's elements and advances.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $get_array(
            array: *mut vaccel_arg_array,
            values: *mut *mut $t,
            count: *mut usize,
        ) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($get_array), || unsafe {
                $module::get_array(array, values, count)
            })
        }

        /// See `vaccel/arg.h`: overwrites the current arg and advances.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $set(array: *mut vaccel_arg_array, value: *mut $t) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($set), || unsafe { $module::set(array, value) })
        }

        /// See `vaccel/arg.h`: overwrites the current array arg and advances.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $set_array(
            array: *mut vaccel_arg_array,
            values: *mut $t,
            count: usize,
        ) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($set_array), || unsafe {
                $module::set_array(array, values, count)
            })
        }
    };
}

numeric_exports!(
    num_int8,
    i8,
    vaccel_arg_array_add_int8,
    vaccel_arg_array_add_int8_array,
    vaccel_arg_array_get_int8,
    vaccel_arg_array_get_int8_array,
    vaccel_arg_array_set_int8,
    vaccel_arg_array_set_int8_array
);
numeric_exports!(
    num_int16,
    i16,
    vaccel_arg_array_add_int16,
    vaccel_arg_array_add_int16_array,
    vaccel_arg_array_get_int16,
    vaccel_arg_array_get_int16_array,
    vaccel_arg_array_set_int16,
    vaccel_arg_array_set_int16_array
);
numeric_exports!(
    num_int32,
    i32,
    vaccel_arg_array_add_int32,
    vaccel_arg_array_add_int32_array,
    vaccel_arg_array_get_int32,
    vaccel_arg_array_get_int32_array,
    vaccel_arg_array_set_int32,
    vaccel_arg_array_set_int32_array
);
numeric_exports!(
    num_int64,
    i64,
    vaccel_arg_array_add_int64,
    vaccel_arg_array_add_int64_array,
    vaccel_arg_array_get_int64,
    vaccel_arg_array_get_int64_array,
    vaccel_arg_array_set_int64,
    vaccel_arg_array_set_int64_array
);
numeric_exports!(
    num_uint8,
    u8,
    vaccel_arg_array_add_uint8,
    vaccel_arg_array_add_uint8_array,
    vaccel_arg_array_get_uint8,
    vaccel_arg_array_get_uint8_array,
    vaccel_arg_array_set_uint8,
    vaccel_arg_array_set_uint8_array
);
numeric_exports!(
    num_uint16,
    u16,
    vaccel_arg_array_add_uint16,
    vaccel_arg_array_add_uint16_array,
    vaccel_arg_array_get_uint16,
    vaccel_arg_array_get_uint16_array,
    vaccel_arg_array_set_uint16,
    vaccel_arg_array_set_uint16_array
);
numeric_exports!(
    num_uint32,
    u32,
    vaccel_arg_array_add_uint32,
    vaccel_arg_array_add_uint32_array,
    vaccel_arg_array_get_uint32,
    vaccel_arg_array_get_uint32_array,
    vaccel_arg_array_set_uint32,
    vaccel_arg_array_set_uint32_array
);
numeric_exports!(
    num_uint64,
    u64,
    vaccel_arg_array_add_uint64,
    vaccel_arg_array_add_uint64_array,
    vaccel_arg_array_get_uint64,
    vaccel_arg_array_get_uint64_array,
    vaccel_arg_array_set_uint64,
    vaccel_arg_array_set_uint64_array
);
numeric_exports!(
    num_float,
    f32,
    vaccel_arg_array_add_float,
    vaccel_arg_array_add_float_array,
    vaccel_arg_array_get_float,
    vaccel_arg_array_get_float_array,
    vaccel_arg_array_set_float,
    vaccel_arg_array_set_float_array
);
numeric_exports!(
    num_double,
    f64,
    vaccel_arg_array_add_double,
    vaccel_arg_array_add_double_array,
    vaccel_arg_array_get_double,
    vaccel_arg_array_get_double_array,
    vaccel_arg_array_set_double,
    vaccel_arg_array_set_double_array
);
// C `bool` is one byte holding 0 or 1; it is handled as `u8` so invalid bytes from C are
// validated instead of being undefined behaviour in a Rust `bool`.
numeric_exports!(
    num_bool,
    u8,
    vaccel_arg_array_add_bool,
    vaccel_arg_array_add_bool_array,
    vaccel_arg_array_get_bool,
    vaccel_arg_array_get_bool_array,
    vaccel_arg_array_set_bool,
    vaccel_arg_array_set_bool_array
);
numeric_exports!(
    num_char,
    c_char,
    vaccel_arg_array_add_char,
    vaccel_arg_array_add_char_array,
    vaccel_arg_array_get_char,
    vaccel_arg_array_get_char_array,
    vaccel_arg_array_set_char,
    vaccel_arg_array_set_char_array
);
numeric_exports!(
    num_uchar,
    u8,
    vaccel_arg_array_add_uchar,
    vaccel_arg_array_add_uchar_array,
    vaccel_arg_array_get_uchar,
    vaccel_arg_array_get_uchar_array,
    vaccel_arg_array_set_uchar,
    vaccel_arg_array_set_uchar_array
);

/// `vaccel_arg_array_add_string`: references `str` (size includes the NUL).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_add_string(
    array: *mut vaccel_arg_array,
    str: *mut c_char,
) -> c_int {
    guard("vaccel_arg_array_add_string", || {
        // SAFETY: null or NUL-terminated (caller guarantee).
        let len = unsafe { ffi::cstr_arg(str, "str") }?
            .to_bytes_with_nul()
            .len();
        // SAFETY: `str` holds `len` bytes.
        unsafe { add_ref(array, str.cast_const().cast(), len, VACCEL_ARG_STRING) }
    })
}

/// `vaccel_arg_array_add_buffer`: references `buf`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_add_buffer(
    array: *mut vaccel_arg_array,
    buf: *mut c_void,
    size: usize,
) -> c_int {
    // SAFETY: forwarded caller guarantees.
    guard("vaccel_arg_array_add_buffer", || unsafe {
        add_ref(array, buf.cast_const(), size, VACCEL_ARG_BUFFER)
    })
}

/// Runs a caller validator: it must be given (NULL is `EINVAL`, as upstream) and accept.
///
/// # Safety
///
/// `validator` is null or a valid function; `buf` holds `size` bytes.
unsafe fn run_validator(
    validator: vaccel_arg_type_validator_fn,
    buf: *const c_void,
    size: usize,
    id: u32,
) -> Res<()> {
    let f = validator.ok_or_else(|| invalid("validator is NULL"))?;
    // SAFETY: caller guarantee.
    if unsafe { f(buf, size, id) } {
        Ok(())
    } else {
        Err(invalid("rejected by the custom validator"))
    }
}

/// `vaccel_arg_array_add_custom`: references `buf` after `validator` accepts it.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_add_custom(
    array: *mut vaccel_arg_array,
    custom_id: u32,
    buf: *mut c_void,
    size: usize,
    validator: vaccel_arg_type_validator_fn,
) -> c_int {
    guard("vaccel_arg_array_add_custom", || {
        // SAFETY: caller guarantees.
        unsafe {
            let a = ffi::as_mut(array, "array")?;
            run_validator(validator, buf, size, custom_id)?;
            push(
                a,
                vaccel_arg {
                    buf,
                    size,
                    r#type: VACCEL_ARG_CUSTOM,
                    custom_type_id: custom_id,
                    owned: false,
                },
            )
        }
    })
}

/// Runs a serializer: a C-allocated buffer and its size.
///
/// # Safety
///
/// `serializer` is a valid function; `data` holds `data_size` bytes.
unsafe fn serialize(
    serializer: vaccel_arg_serializer_fn,
    data: *const c_void,
    data_size: usize,
    id: u32,
) -> Res<(*mut c_void, usize)> {
    let f = serializer.ok_or_else(|| invalid("serializer is NULL"))?;
    let (mut buf, mut size) = (ptr::null_mut::<c_void>(), 0usize);
    // SAFETY: caller guarantee; the out-params are locals.
    let ret = unsafe { f(data, data_size, id, &raw mut buf, &raw mut size) };
    if ret != 0 {
        return Err(ffi::err(
            ErrorCode::from_i32(ret).unwrap_or(ErrorCode::EINVAL),
            format!("serializer returned {ret}"),
        ));
    }
    if buf.is_null() && size > 0 {
        return Err(invalid("serializer returned NULL with a size"));
    }
    Ok((buf, size))
}

/// `vaccel_arg_array_add_serialized`: the serialized bytes are owned by the array.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_add_serialized(
    array: *mut vaccel_arg_array,
    ty: u32,
    custom_id: u32,
    data: *const c_void,
    data_size: usize,
    serializer: vaccel_arg_serializer_fn,
) -> c_int {
    guard("vaccel_arg_array_add_serialized", || {
        // SAFETY: caller guarantee.
        let a = unsafe { ffi::as_mut(array, "array") }?;
        // SAFETY: caller guarantees.
        let (buf, size) = unsafe { serialize(serializer, data, data_size, custom_id) }?;
        // SAFETY: the serializer's buffer holds `size` bytes.
        let check = unsafe { ffi::bytes(buf, size, "serialized") }.and_then(|b| validate(ty, b));
        if let Err(e) = check {
            // SAFETY: the serializer allocated it with the C allocator (its contract).
            unsafe { cmem::free(buf) };
            return Err(e);
        }
        let arg = vaccel_arg {
            buf,
            size,
            r#type: ty,
            custom_type_id: custom_id,
            owned: true,
        };
        // SAFETY: an owned C allocation; freed by `push` on failure.
        unsafe { push(a, arg) }
    })
}

/// Appends `count` args of `src` from `start`, copied or referenced.
///
/// # Safety
///
/// See the module docs.
unsafe fn add_range(
    dest: *mut vaccel_arg_array,
    src: *const vaccel_arg_array,
    start: usize,
    count: usize,
    copy: bool,
) -> Res<()> {
    // Snapshot the source first: `dest` may be `src`, and growing it moves its args.
    let picked: Vec<vaccel_arg> = {
        // SAFETY: caller guarantee.
        let s = unsafe { ffi::as_ref(src, "src") }?;
        // SAFETY: caller guarantee.
        let all = unsafe { args(s) }?;
        let end = start
            .checked_add(count)
            .ok_or_else(|| out_of_range(start, all.len()))?;
        all.get(start..end)
            .ok_or_else(|| out_of_range(end, all.len()))?
            .iter()
            .map(|a| vaccel_arg {
                buf: a.buf,
                size: a.size,
                r#type: a.r#type,
                custom_type_id: a.custom_type_id,
                owned: false,
            })
            .collect()
    };
    // SAFETY: caller guarantee.
    let d = unsafe { ffi::as_mut(dest, "dest") }?;
    for mut arg in picked {
        if copy && arg.size > 0 {
            // SAFETY: the source arg's buffer holds `size` bytes.
            let bytes = unsafe { ffi::bytes(arg.buf, arg.size, "arg") }?;
            arg.buf = cmem::malloc_copy(bytes, "arg copy")?.cast();
            arg.owned = true;
        }
        // SAFETY: `arg` is a reference or an owned C allocation.
        unsafe { push(d, arg) }?;
    }
    Ok(())
}

/// `vaccel_arg_array_add_range`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_add_range(
    dest: *mut vaccel_arg_array,
    src: *const vaccel_arg_array,
    start_idx: usize,
    count: usize,
    copy: bool,
) -> c_int {
    // SAFETY: forwarded caller guarantees.
    guard("vaccel_arg_array_add_range", || unsafe {
        add_range(dest, src, start_idx, count, copy)
    })
}

/// `vaccel_arg_array_add_remaining`: from `src`'s position.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_add_remaining(
    dest: *mut vaccel_arg_array,
    src: *const vaccel_arg_array,
    copy: bool,
) -> c_int {
    guard("vaccel_arg_array_add_remaining", || {
        // SAFETY: caller guarantee.
        let s = unsafe { ffi::as_ref(src, "src") }?;
        let (start, count) = (s.position, s.count.saturating_sub(s.position));
        // SAFETY: forwarded caller guarantees.
        unsafe { add_range(dest, src, start, count, copy) }
    })
}

/// `vaccel_arg_array_add_all`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_add_all(
    dest: *mut vaccel_arg_array,
    src: *const vaccel_arg_array,
    copy: bool,
) -> c_int {
    guard("vaccel_arg_array_add_all", || {
        // SAFETY: caller guarantee.
        let count = unsafe { ffi::as_ref(src, "src") }?.count;
        // SAFETY: forwarded caller guarantees.
        unsafe { add_range(dest, src, 0, count, copy) }
    })
}

/// Reads the current arg's buffer and size after `check`, then advances.
///
/// # Safety
///
/// See the module docs.
unsafe fn get_ptr(
    array: *mut vaccel_arg_array,
    buf: *mut *mut c_void,
    size: *mut usize,
    check: impl FnOnce(&vaccel_arg) -> Res<()>,
) -> Res<()> {
    let buf = ffi::out_ptr(buf, "buf")?;
    // SAFETY: caller guarantee.
    let (a, arg) = unsafe { current(array) }?;
    // SAFETY: an initialised slot.
    let arg = unsafe { &*arg };
    check(arg)?;
    // SAFETY: `buf` checked; `size` null or writable (caller guarantee).
    unsafe {
        ffi::write_out(buf, arg.buf);
        if !size.is_null() {
            ffi::write_out(ffi::out_ptr(size, "size")?, arg.size);
        }
    }
    a.position += 1;
    Ok(())
}

/// `vaccel_arg_array_get_raw`: the current arg must be RAW; `size` is required.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_get_raw(
    array: *mut vaccel_arg_array,
    buf: *mut *mut c_void,
    size: *mut usize,
) -> c_int {
    // SAFETY: forwarded caller guarantees.
    guard("vaccel_arg_array_get_raw", || unsafe {
        ffi::out_ptr(size, "size")?;
        get_ptr(array, buf, size, |arg| expect_type(arg, VACCEL_ARG_RAW))
    })
}

/// `vaccel_arg_array_get_string`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_get_string(
    array: *mut vaccel_arg_array,
    str: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded caller guarantees.
    guard("vaccel_arg_array_get_string", || unsafe {
        get_ptr(array, str.cast(), ptr::null_mut(), |arg| {
            // SAFETY: the buffer holds `size` bytes.
            let bytes = typed_bytes(arg, VACCEL_ARG_STRING)?;
            validate(VACCEL_ARG_STRING, bytes)
        })
    })
}

/// `vaccel_arg_array_get_buffer`: `size` is required.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_get_buffer(
    array: *mut vaccel_arg_array,
    buf: *mut *mut c_void,
    size: *mut usize,
) -> c_int {
    // SAFETY: forwarded caller guarantees.
    guard("vaccel_arg_array_get_buffer", || unsafe {
        ffi::out_ptr(size, "size")?;
        get_ptr(array, buf, size, |arg| {
            // SAFETY: the buffer holds `size` bytes.
            let bytes = typed_bytes(arg, VACCEL_ARG_BUFFER)?;
            validate(VACCEL_ARG_BUFFER, bytes)
        })
    })
}

/// `vaccel_arg_array_get_custom`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_get_custom(
    array: *mut vaccel_arg_array,
    expected_id: u32,
    buf: *mut *mut c_void,
    size: *mut usize,
    validator: vaccel_arg_type_validator_fn,
) -> c_int {
    // SAFETY: forwarded caller guarantees.
    guard("vaccel_arg_array_get_custom", || unsafe {
        get_ptr(array, buf, size, |arg| {
            expect_type(arg, VACCEL_ARG_CUSTOM)?;
            if arg.custom_type_id != expected_id {
                return Err(invalid("custom type id mismatch"));
            }
            run_validator(validator, arg.buf, arg.size, arg.custom_type_id)
        })
    })
}

/// `vaccel_arg_array_get_serialized`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_get_serialized(
    array: *mut vaccel_arg_array,
    expected_type: u32,
    expected_custom_id: u32,
    data: *mut c_void,
    expected_size: usize,
    deserializer: vaccel_arg_deserializer_fn,
) -> c_int {
    guard("vaccel_arg_array_get_serialized", || {
        let f = deserializer.ok_or_else(|| invalid("deserializer is NULL"))?;
        // SAFETY: caller guarantee.
        let (a, arg) = unsafe { current(array) }?;
        // SAFETY: an initialised slot.
        let arg = unsafe { &*arg };
        expect_type(arg, expected_type)?;
        if expected_type == VACCEL_ARG_CUSTOM && arg.custom_type_id != expected_custom_id {
            return Err(invalid("custom type id mismatch"));
        }
        // SAFETY: the caller's deserializer reads `size` bytes of `buf` and writes
        // `expected_size` bytes of `data` (its contract).
        let ret = unsafe { f(arg.buf, arg.size, arg.custom_type_id, expected_size, data) };
        if ret != 0 {
            return Err(ffi::err(
                ErrorCode::from_i32(ret).unwrap_or(ErrorCode::EINVAL),
                format!("deserializer returned {ret}"),
            ));
        }
        a.position += 1;
        Ok(())
    })
}

/// `vaccel_arg_array_set_raw`: copies into a RAW arg (an empty arg takes no data).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_set_raw(
    array: *mut vaccel_arg_array,
    buf: *mut c_void,
    size: usize,
) -> c_int {
    guard("vaccel_arg_array_set_raw", || {
        // SAFETY: `buf` holds `size` bytes (caller guarantee).
        let data = unsafe { ffi::bytes(buf, size, "buf") }?;
        // SAFETY: caller guarantees.
        unsafe {
            set_current(array, data, |arg| {
                expect_type(arg, VACCEL_ARG_RAW)?;
                if buf.is_null() && arg.size != 0 {
                    return Err(invalid("no data for a non-empty arg"));
                }
                Ok(())
            })
        }
    })
}

/// `vaccel_arg_array_set_string`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_set_string(
    array: *mut vaccel_arg_array,
    str: *mut c_char,
) -> c_int {
    guard("vaccel_arg_array_set_string", || {
        // SAFETY: null or NUL-terminated (caller guarantee).
        let data = unsafe { ffi::cstr_arg(str, "str") }?.to_bytes_with_nul();
        // SAFETY: caller guarantees.
        unsafe { set_current(array, data, |arg| expect_type(arg, VACCEL_ARG_STRING)) }
    })
}

/// `vaccel_arg_array_set_buffer`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_set_buffer(
    array: *mut vaccel_arg_array,
    buf: *mut c_void,
    size: usize,
) -> c_int {
    guard("vaccel_arg_array_set_buffer", || {
        if buf.is_null() || size == 0 {
            return Err(invalid("buf is NULL or empty"));
        }
        // SAFETY: `buf` holds `size` bytes (caller guarantee).
        let data = unsafe { ffi::bytes(buf, size, "buf") }?;
        // SAFETY: caller guarantees.
        unsafe { set_current(array, data, |arg| expect_type(arg, VACCEL_ARG_BUFFER)) }
    })
}

/// `vaccel_arg_array_set_custom`: the size must equal the arg's.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_set_custom(
    array: *mut vaccel_arg_array,
    expected_id: u32,
    buf: *mut c_void,
    size: usize,
    validator: vaccel_arg_type_validator_fn,
) -> c_int {
    guard("vaccel_arg_array_set_custom", || {
        // SAFETY: `buf` holds `size` bytes (caller guarantee).
        let data = unsafe { ffi::bytes(buf, size, "buf") }?;
        // SAFETY: caller guarantees.
        unsafe {
            run_validator(validator, buf, size, expected_id)?;
            set_current(array, data, |arg| {
                expect_type(arg, VACCEL_ARG_CUSTOM)?;
                if arg.custom_type_id != expected_id {
                    return Err(invalid("custom type id mismatch"));
                }
                if arg.size != size {
                    return Err(invalid("size differs from the arg's"));
                }
                Ok(())
            })
        }
    })
}

/// `vaccel_arg_array_set_serialized`: the serialized size must equal the arg's.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_set_serialized(
    array: *mut vaccel_arg_array,
    expected_type: u32,
    expected_custom_id: u32,
    data: *mut c_void,
    data_size: usize,
    serializer: vaccel_arg_serializer_fn,
) -> c_int {
    guard("vaccel_arg_array_set_serialized", || {
        // SAFETY: caller guarantees.
        let (buf, size) = unsafe { serialize(serializer, data, data_size, expected_custom_id) }?;
        // SAFETY: the serializer's buffer holds `size` bytes.
        let result = unsafe { ffi::bytes(buf, size, "serialized") }.and_then(|bytes| {
            // SAFETY: caller guarantees.
            unsafe {
                set_current(array, bytes, |arg| {
                    expect_type(arg, expected_type)?;
                    if expected_type == VACCEL_ARG_CUSTOM
                        && arg.custom_type_id != expected_custom_id
                    {
                        return Err(invalid("custom type id mismatch"));
                    }
                    if arg.size != size {
                        return Err(invalid("serialized size differs from the arg's"));
                    }
                    Ok(())
                })
            }
        });
        // SAFETY: the serializer allocated it with the C allocator (its contract).
        unsafe { cmem::free(buf) };
        result
    })
}

/// `vaccel_arg_array_get_remaining`: does not advance.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_get_remaining(
    array: *mut vaccel_arg_array,
    out_args: *mut *mut vaccel_arg,
    count: *mut usize,
) -> c_int {
    guard("vaccel_arg_array_get_remaining", || {
        // SAFETY: caller guarantee.
        let a = unsafe { ffi::as_ref(array, "array") }?;
        let out = ffi::out_ptr(out_args, "args")?;
        let out_n = ffi::out_ptr(count, "count")?;
        let (p, n) = if a.position < a.count && !a.args.is_null() {
            // SAFETY: `position < count`: inside the allocation.
            (unsafe { a.args.add(a.position) }, a.count - a.position)
        } else {
            (ptr::null_mut(), 0)
        };
        // SAFETY: checked by `out_ptr`.
        unsafe {
            ffi::write_out(out, p);
            ffi::write_out(out_n, n);
        }
        Ok(())
    })
}

/// Reads a field of a possibly-null array (0 when null).
///
/// # Safety
///
/// `array` is null or valid.
unsafe fn field(
    array: *const vaccel_arg_array,
    f: impl FnOnce(&vaccel_arg_array) -> usize,
) -> usize {
    // SAFETY: caller guarantee.
    unsafe { array.as_ref() }.map_or(0, f)
}

/// `vaccel_arg_array_remaining_count`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_remaining_count(array: *const vaccel_arg_array) -> usize {
    guard_value(
        "vaccel_arg_array_remaining_count",
        0,
        |_| 0,
        || {
            // SAFETY: forwarded caller guarantee.
            Ok(unsafe { field(array, |a| a.count.saturating_sub(a.position)) })
        },
    )
}

/// `vaccel_arg_array_position`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_position(array: *const vaccel_arg_array) -> usize {
    guard_value(
        "vaccel_arg_array_position",
        0,
        |_| 0,
        || {
            // SAFETY: forwarded caller guarantee.
            Ok(unsafe { field(array, |a| a.position) })
        },
    )
}

/// `vaccel_arg_array_count`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_count(array: *const vaccel_arg_array) -> usize {
    guard_value(
        "vaccel_arg_array_count",
        0,
        |_| 0,
        || {
            // SAFETY: forwarded caller guarantee.
            Ok(unsafe { field(array, |a| a.count) })
        },
    )
}

/// `vaccel_arg_array_set_position`: clamped to the count.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_set_position(
    array: *mut vaccel_arg_array,
    position: usize,
) {
    guard("vaccel_arg_array_set_position", || {
        // SAFETY: caller guarantee.
        let a = unsafe { ffi::as_mut(array, "array") }?;
        a.position = position.min(a.count);
        Ok(())
    });
}

/// `vaccel_arg_array_reset_position`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_reset_position(array: *mut vaccel_arg_array) {
    // SAFETY: forwarded.
    unsafe { vaccel_arg_array_set_position(array, 0) }
}

/// `vaccel_arg_array_raw`: the args (NULL for a NULL array).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_arg_array_raw(array: *mut vaccel_arg_array) -> *mut vaccel_arg {
    guard_value(
        "vaccel_arg_array_raw",
        ptr::null_mut(),
        |_| ptr::null_mut(),
        || {
            // SAFETY: caller guarantee.
            Ok(unsafe { array.as_ref() }.map_or(ptr::null_mut(), |a| a.args))
        },
    )
}

// ---- the deprecated list API ------------------------------------------------------------

/// `void *(*)(void *, uint32_t *)`: upstream's old serializer.
type ListSerializer = Option<unsafe extern "C" fn(*mut c_void, *mut u32) -> *mut c_void>;
/// `void *(*)(void *, uint32_t)`: upstream's old deserializer.
type ListDeserializer = Option<unsafe extern "C" fn(*mut c_void, u32) -> *mut c_void>;

/// The next free slot of a list and its index.
///
/// # Safety
///
/// `list` is null or a list from `vaccel_args_init`.
unsafe fn next_slot<'a>(list: *mut vaccel_arg_list) -> Res<(&'a mut vaccel_arg_list, usize)> {
    // SAFETY: caller guarantee.
    let l = unsafe { ffi::as_mut(list, "list") }?;
    let idx = usize::try_from(l.curr_idx).map_err(|_| invalid("corrupt list"))?;
    if idx >= l.size as usize || l.list.is_null() || l.idcs_allocated_space.is_null() {
        return Err(out_of_range(idx, l.size as usize));
    }
    Ok((l, idx))
}

/// Stores `arg` in the next slot (`allocated` marks a buffer the list frees).
///
/// # Safety
///
/// As [`next_slot`].
unsafe fn list_push(list: *mut vaccel_arg_list, arg: vaccel_arg, allocated: bool) -> Res<()> {
    // SAFETY: caller guarantee.
    let (l, idx) = unsafe { next_slot(list) }?;
    // SAFETY: `idx < size`: inside both arrays.
    unsafe {
        l.list.add(idx).write(arg);
        l.idcs_allocated_space
            .add(idx)
            .write(c_int::from(allocated));
    }
    l.curr_idx += 1;
    Ok(())
}

/// `vaccel_args_init` (deprecated): a list of `size` slots, or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn vaccel_args_init(size: u32) -> *mut vaccel_arg_list {
    guard_value(
        "vaccel_args_init",
        ptr::null_mut(),
        |_| ptr::null_mut(),
        || {
            let n = size as usize;
            let list = cmem::calloc::<vaccel_arg>(n, "arg list")?;
            let Ok(idcs) = cmem::calloc::<c_int>(n, "arg list") else {
                // SAFETY: allocated above.
                unsafe { cmem::free(list) };
                return Err(invalid("out of memory"));
            };
            let Ok(l) = cmem::calloc::<vaccel_arg_list>(1, "arg list") else {
                // SAFETY: allocated above.
                unsafe {
                    cmem::free(list);
                    cmem::free(idcs);
                }
                return Err(invalid("out of memory"));
            };
            // SAFETY: a fresh allocation.
            unsafe {
                l.write(vaccel_arg_list {
                    size,
                    list,
                    curr_idx: 0,
                    idcs_allocated_space: idcs,
                });
            }
            Ok(l)
        },
    )
}

/// `vaccel_add_serial_arg` (deprecated): references `buf` as RAW.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_add_serial_arg(
    args: *mut vaccel_arg_list,
    buf: *mut c_void,
    size: u32,
) -> c_int {
    guard("vaccel_add_serial_arg", || {
        let arg = vaccel_arg {
            buf,
            size: size as usize,
            r#type: VACCEL_ARG_RAW,
            custom_type_id: 0,
            owned: false,
        };
        // SAFETY: caller guarantee.
        unsafe { list_push(args, arg, false) }
    })
}

/// `vaccel_expect_serial_arg` (deprecated): same as `vaccel_add_serial_arg`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_expect_serial_arg(
    args: *mut vaccel_arg_list,
    buf: *mut c_void,
    size: u32,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { vaccel_add_serial_arg(args, buf, size) }
}

/// `vaccel_add_nonserial_arg` (deprecated): serializes `buf` (CUSTOM, id = `type`).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_add_nonserial_arg(
    args: *mut vaccel_arg_list,
    buf: *mut c_void,
    ty: u32,
    serializer: ListSerializer,
) -> c_int {
    guard("vaccel_add_nonserial_arg", || {
        let f = serializer.ok_or_else(|| invalid("serializer is NULL"))?;
        // Checked before the serializer allocates.
        // SAFETY: caller guarantee.
        unsafe { next_slot(args) }?;
        let mut size = 0u32;
        // SAFETY: the caller's serializer (its contract: returns a malloc'ed buffer).
        let data = unsafe { f(buf, &raw mut size) };
        let arg = vaccel_arg {
            buf: data,
            size: size as usize,
            r#type: VACCEL_ARG_CUSTOM,
            custom_type_id: ty,
            owned: true,
        };
        // SAFETY: caller guarantee; the slot was checked above.
        unsafe { list_push(args, arg, true) }
    })
}

/// `vaccel_expect_nonserial_arg` (deprecated): a zeroed owned buffer of `expected_size`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_expect_nonserial_arg(
    args: *mut vaccel_arg_list,
    expected_size: u32,
) -> c_int {
    guard("vaccel_expect_nonserial_arg", || {
        // SAFETY: caller guarantee.
        unsafe { next_slot(args) }?;
        let buf = cmem::calloc::<u8>(expected_size as usize, "arg")?;
        let arg = vaccel_arg {
            buf: buf.cast(),
            size: expected_size as usize,
            r#type: VACCEL_ARG_RAW,
            custom_type_id: 0,
            owned: true,
        };
        // SAFETY: caller guarantee; the slot was checked above.
        unsafe { list_push(args, arg, true) }
    })
}

/// The arg at `idx` of a raw arg array (no count to check against: upstream's contract).
///
/// # Safety
///
/// `args` holds more than `idx` args.
unsafe fn at<'a>(args: *mut vaccel_arg, idx: c_int) -> Res<&'a mut vaccel_arg> {
    let idx = usize::try_from(idx).map_err(|_| invalid("negative index"))?;
    if args.is_null() {
        return Err(invalid("args is NULL"));
    }
    // SAFETY: caller guarantee.
    Ok(unsafe { &mut *args.add(idx) })
}

/// `vaccel_extract_serial_arg` (deprecated): the buffer of `args[idx]`, or NULL.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_extract_serial_arg(
    args: *mut vaccel_arg,
    idx: c_int,
) -> *mut c_void {
    guard_value(
        "vaccel_extract_serial_arg",
        ptr::null_mut(),
        |_| ptr::null_mut(),
        || {
            // SAFETY: caller guarantee.
            Ok(unsafe { at(args, idx) }?.buf)
        },
    )
}

/// `vaccel_extract_nonserial_arg` (deprecated): `deserializer(args[idx].buf, size)`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_extract_nonserial_arg(
    args: *mut vaccel_arg,
    idx: c_int,
    deserializer: ListDeserializer,
) -> *mut c_void {
    guard_value(
        "vaccel_extract_nonserial_arg",
        ptr::null_mut(),
        |_| ptr::null_mut(),
        || {
            let f = deserializer.ok_or_else(|| invalid("deserializer is NULL"))?;
            // SAFETY: caller guarantee.
            let arg = unsafe { at(args, idx) }?;
            let size = u32::try_from(arg.size).map_err(|_| invalid("arg too large"))?;
            // SAFETY: the caller's deserializer (its contract).
            Ok(unsafe { f(arg.buf, size) })
        },
    )
}

/// `vaccel_write_serial_arg` (deprecated): copies `args[idx].size` bytes of `buf`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_write_serial_arg(
    args: *mut vaccel_arg,
    idx: c_int,
    buf: *mut c_void,
) -> c_int {
    guard("vaccel_write_serial_arg", || {
        // SAFETY: caller guarantee.
        let arg = unsafe { at(args, idx) }?;
        if arg.size > 0 && (buf.is_null() || arg.buf.is_null()) {
            return Err(invalid("NULL buffer"));
        }
        // SAFETY: both buffers hold `arg.size` bytes (caller guarantee); `copy` tolerates
        // overlap.
        unsafe { ptr::copy(buf.cast::<u8>(), arg.buf.cast::<u8>(), arg.size) };
        Ok(())
    })
}

/// `vaccel_write_nonserial_arg` (deprecated): serializes `buf` into `args[idx]`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_write_nonserial_arg(
    args: *mut vaccel_arg,
    idx: c_int,
    buf: *mut c_void,
    serializer: ListSerializer,
) -> c_int {
    guard("vaccel_write_nonserial_arg", || {
        let f = serializer.ok_or_else(|| invalid("serializer is NULL"))?;
        // SAFETY: caller guarantee.
        let arg = unsafe { at(args, idx) }?;
        let mut size = 0u32;
        // SAFETY: the caller's serializer (its contract: returns a malloc'ed buffer).
        let data = unsafe { f(buf, &raw mut size) };
        let size = size as usize;
        let result = if data.is_null() || size > arg.size || arg.buf.is_null() {
            Err(invalid("serialized data does not fit the arg"))
        } else {
            // SAFETY: `data` holds `size` bytes, `arg.buf` at least that many.
            unsafe { ptr::copy(data.cast::<u8>(), arg.buf.cast::<u8>(), size) };
            Ok(())
        };
        // SAFETY: from the serializer (C allocator).
        unsafe { cmem::free(data) };
        result
    })
}

/// `vaccel_delete_args` (deprecated): frees the list and the buffers it allocated.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_delete_args(args: *mut vaccel_arg_list) -> c_int {
    guard("vaccel_delete_args", || {
        // SAFETY: caller guarantee.
        let l = unsafe { ffi::as_mut(args, "list") }?;
        let used = usize::try_from(l.curr_idx)
            .unwrap_or(0)
            .min(l.size as usize);
        for i in 0..used {
            // SAFETY: `i < size`: inside both arrays.
            unsafe {
                if *l.idcs_allocated_space.add(i) == 1 {
                    cmem::free((*l.list.add(i)).buf);
                }
            }
        }
        // SAFETY: all from `vaccel_args_init`.
        unsafe {
            cmem::free(l.list);
            cmem::free(l.idcs_allocated_space);
            cmem::free(args);
        }
        Ok(())
    })
}
