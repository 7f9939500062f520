//! Guards and checked conversions of the C arguments the host passes to the library.

use std::borrow::Cow;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use vaccel_abi::vaccel_arg;
use vaccel_core::arg::Arg;
use vaccel_core::tensor::{DataType, Tensor};
use vaccel_core::{Error, ErrorCode, Result};

/// Runs a hook or op body: `VACCEL_OK`, the error's code, or `VACCEL_EBACKEND` on a panic
/// (which never crosses into the host).
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            log::debug!("plugin call failed: {e}");
            e.code().as_i32()
        }
        Err(_) => {
            log::error!("plugin call panicked");
            ErrorCode::EBACKEND.as_i32()
        }
    }
}

/// `EINVAL` with a message.
pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::backend("plugin library", ErrorCode::EINVAL, message)
}

/// `len` elements at `ptr` (empty when `len` is 0; `EINVAL` when null or misaligned).
///
/// # Safety
///
/// When `len > 0`, `ptr` points at `len` initialised elements valid for `'a`.
pub(crate) unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return Err(invalid(format!("{what} is NULL or misaligned")));
    }
    // SAFETY: caller guarantee; non-null and aligned checked.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The mutable counterpart of [`slice`].
///
/// # Safety
///
/// When `len > 0`, `ptr` points at `len` elements nothing else accesses for `'a`.
pub(crate) unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize, what: &str) -> Result<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return Err(invalid(format!("{what} is NULL or misaligned")));
    }
    // SAFETY: caller guarantee; non-null and aligned checked.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A C string as UTF-8.
///
/// # Safety
///
/// `ptr` is null or NUL-terminated and valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: caller guarantee.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| invalid(format!("{what} is not UTF-8")))
}

/// A C string, lossily, `None` when null.
///
/// # Safety
///
/// As [`str_arg`].
pub(crate) unsafe fn lossy(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: caller guarantee.
    Some(
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// A count passed as C `int`.
pub(crate) fn count(n: c_int, what: &str) -> Result<usize> {
    usize::try_from(n).map_err(|_| invalid(format!("{what} is negative")))
}

/// Typed args over the host's arrays (read args validated, write args by size; the host has
/// already checked that outputs do not overlap other buffers).
///
/// # Safety
///
/// The arrays hold their counts; each `buf` holds `size` bytes, valid for `'a`, and the write
/// buffers are not accessed by anything else for `'a`.
pub(crate) unsafe fn args<'a>(
    read: *const vaccel_arg,
    nr_read: usize,
    write: *mut vaccel_arg,
    nr_write: usize,
) -> Result<(Vec<Arg<'a>>, Vec<Arg<'a>>)> {
    // SAFETY: caller guarantee.
    let (r, w) = unsafe {
        (
            slice(read, nr_read, "read")?,
            slice(write.cast_const(), nr_write, "write")?,
        )
    };
    let mut reads = Vec::with_capacity(r.len());
    for (i, a) in r.iter().enumerate() {
        // SAFETY: caller guarantee.
        let bytes = unsafe { slice(a.buf.cast::<u8>().cast_const(), a.size, "read arg") }?;
        reads.push(
            Arg::from_parts(a.r#type, a.custom_type_id, bytes).map_err(|e| Error::arg(i, e))?,
        );
    }
    let mut writes = Vec::with_capacity(w.len());
    for (i, a) in w.iter().enumerate() {
        // SAFETY: caller guarantee (exclusive).
        let bytes = unsafe { slice_mut(a.buf.cast::<u8>(), a.size, "write arg") }?;
        writes.push(
            Arg::from_parts_mut(a.r#type, a.custom_type_id, bytes).map_err(|e| Error::arg(i, e))?,
        );
    }
    Ok((reads, writes))
}

/// The fields the three C tensor structs share, in a common form.
pub(crate) struct CTensorParts<D> {
    pub(crate) data: *mut c_void,
    pub(crate) size: usize,
    pub(crate) dims: Vec<i64>,
    pub(crate) data_type: u32,
    pub(crate) _marker: std::marker::PhantomData<D>,
}

/// A runtime tensor over C tensor parts.
///
/// # Safety
///
/// `data` holds `size` bytes valid for `'a`.
pub(crate) unsafe fn tensor<'a, D: DataType>(parts: CTensorParts<D>) -> Result<Tensor<'a, D>> {
    // SAFETY: caller guarantee.
    let bytes = unsafe {
        slice(
            parts.data.cast::<u8>().cast_const(),
            parts.size,
            "tensor data",
        )
    }?;
    let ty = D::try_from_value(parts.data_type)
        .ok_or_else(|| invalid(format!("invalid tensor data type {}", parts.data_type)))?;
    Tensor::new(parts.dims, ty, Cow::Borrowed(bytes))
}

/// `calloc` that reports `ENOMEM`.
pub(crate) fn calloc<T>(n: usize) -> Result<*mut T> {
    // SAFETY: no preconditions; the result is checked.
    let p = unsafe { libc::calloc(n.max(1), size_of::<T>().max(1)) }.cast::<T>();
    if p.is_null() {
        return Err(Error::backend(
            "plugin library",
            ErrorCode::ENOMEM,
            "out of memory",
        ));
    }
    Ok(p)
}

/// A `malloc`ed copy of `bytes`.
pub(crate) fn malloc_copy(bytes: &[u8]) -> Result<*mut c_void> {
    let p = calloc::<u8>(bytes.len())?;
    // SAFETY: `p` holds `bytes.len()` bytes (fresh allocation, no overlap).
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    Ok(p.cast())
}

/// A `malloc`ed array copy of `values`.
pub(crate) fn malloc_array<T: Copy>(values: &[T]) -> Result<*mut T> {
    let p = calloc::<T>(values.len())?;
    // SAFETY: `p` holds `values.len()` elements (fresh allocation, no overlap).
    unsafe { ptr::copy_nonoverlapping(values.as_ptr(), p, values.len()) };
    Ok(p)
}

/// A `strdup` of `text`.
pub(crate) fn strdup(text: &str) -> Result<*mut c_char> {
    let mut bytes = text.replace('\0', "").into_bytes();
    bytes.push(0);
    malloc_copy(&bytes).map(|p| p.cast())
}
