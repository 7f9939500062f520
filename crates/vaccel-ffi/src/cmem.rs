//! Memory handed to C code that C may free (and memory from C that we free): always the C
//! allocator, never Rust's, so `free()` on either side is correct.

use std::ffi::{c_char, c_void};

use vaccel_core::ErrorCode;

use crate::ffi::{Res, err};

fn oom(what: &str) -> vaccel_core::Error {
    err(
        ErrorCode::ENOMEM,
        format!("out of memory allocating {what}"),
    )
}

/// `malloc(size)` (at least one byte, so a zero size still gives a unique pointer).
pub fn malloc(size: usize, what: &str) -> Res<*mut u8> {
    // SAFETY: `malloc` has no preconditions; the result is checked for null.
    let p = unsafe { libc::malloc(size.max(1)) }.cast::<u8>();
    if p.is_null() {
        return Err(oom(what));
    }
    Ok(p)
}

/// `calloc(count, size_of::<T>())` (at least one byte).
pub fn calloc<T>(count: usize, what: &str) -> Res<*mut T> {
    // SAFETY: `calloc` checks the multiplication itself and has no other preconditions.
    let p = unsafe { libc::calloc(count.max(1), size_of::<T>().max(1)) }.cast::<T>();
    if p.is_null() {
        return Err(oom(what));
    }
    Ok(p)
}

/// `realloc(ptr, count * size_of::<T>())`; on failure the old block is untouched.
///
/// # Safety
///
/// `ptr` is null or a live block from the C allocator.
pub unsafe fn realloc<T>(ptr: *mut T, count: usize, what: &str) -> Res<*mut T> {
    let bytes = count
        .checked_mul(size_of::<T>())
        .ok_or_else(|| oom(what))?
        .max(1);
    // SAFETY: `ptr` is null or from the C allocator (caller guarantee).
    let p = unsafe { libc::realloc(ptr.cast::<c_void>(), bytes) }.cast::<T>();
    if p.is_null() {
        return Err(oom(what));
    }
    Ok(p)
}

/// A `malloc`ed copy of `bytes`.
pub fn malloc_copy(bytes: &[u8], what: &str) -> Res<*mut u8> {
    let p = malloc(bytes.len(), what)?;
    // SAFETY: `p` holds at least `bytes.len()` bytes and is a fresh allocation, so the
    // ranges cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    Ok(p)
}

/// A `malloc`ed NUL-terminated copy of `text` (interior NULs end the C string early).
pub fn strdup(text: &str, what: &str) -> Res<*mut c_char> {
    let p = malloc(text.len() + 1, what)?;
    // SAFETY: `p` holds `text.len() + 1` bytes; the copy and the terminator stay inside.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), p, text.len());
        p.add(text.len()).write(0);
    }
    Ok(p.cast::<c_char>())
}

/// `free(ptr)` (null is fine).
///
/// # Safety
///
/// `ptr` is null or a live block from the C allocator, not used afterwards.
pub unsafe fn free<T>(ptr: *mut T) {
    // SAFETY: caller guarantee.
    unsafe { libc::free(ptr.cast::<c_void>()) }
}
