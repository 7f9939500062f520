//! The guard every exported function runs in, and the checked conversions of C arguments.
//!
//! Rule F2: [`guard`] catches panics and turns errors into [`Error::code`] values; the helpers
//! here refuse null pointers, null-with-length buffers, misaligned arrays and non-UTF-8
//! strings before anything is dereferenced.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use vaccel_core::{Error, ErrorCode};

/// The result type of the C API's internals.
pub type Res<T> = vaccel_core::Result<T>;

/// Where errors created by this crate say they come from.
const ORIGIN: &str = "libvaccel";

/// An error with an explicit vAccel code.
pub fn err(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::backend(ORIGIN, code, message)
}

/// An `EINVAL` error.
pub fn invalid(message: impl Into<String>) -> Error {
    err(ErrorCode::EINVAL, message)
}

/// Describes a caught panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic")
}

/// Runs the body of an exported function returning a vAccel code: `VACCEL_OK` on success,
/// the error's code on failure, `VACCEL_EBACKEND` if it panicked (the panic never crosses
/// the C boundary).
pub fn guard(func: &'static str, body: impl FnOnce() -> Res<()>) -> c_int {
    guard_value(
        func,
        ErrorCode::EBACKEND.as_i32(),
        |e| e.code().as_i32(),
        || body().map(|()| vaccel_core::VACCEL_OK),
    )
}

/// Runs the body of an exported function returning a value: `on_error(e)` on failure,
/// `on_panic` if it panicked.
pub fn guard_value<T>(
    func: &'static str,
    on_panic: T,
    on_error: impl FnOnce(&Error) -> T,
    body: impl FnOnce() -> Res<T>,
) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            log::debug!("{func}: {e}");
            on_error(&e)
        }
        Err(payload) => {
            log::error!("{func}: internal error: {}", panic_message(&*payload));
            on_panic
        }
    }
}

/// A shared reference to `*ptr`, or `EINVAL` naming `what` when null.
///
/// # Safety
///
/// `ptr` is null or points at a valid, initialised `T` that nothing mutates for `'a`.
pub unsafe fn as_ref<'a, T>(ptr: *const T, what: &str) -> Res<&'a T> {
    // SAFETY: the caller guarantees `ptr` is null or valid for `'a`; null is handled.
    unsafe { ptr.as_ref() }.ok_or_else(|| invalid(format!("{what} is NULL")))
}

/// An exclusive reference to `*ptr`, or `EINVAL` naming `what` when null.
///
/// # Safety
///
/// `ptr` is null or points at a valid, initialised `T` that nothing else accesses for `'a`.
pub unsafe fn as_mut<'a, T>(ptr: *mut T, what: &str) -> Res<&'a mut T> {
    // SAFETY: as for `as_ref`, with exclusivity guaranteed by the caller.
    unsafe { ptr.as_mut() }.ok_or_else(|| invalid(format!("{what} is NULL")))
}

/// Checks an out-parameter pointer without dereferencing it.
pub fn out_ptr<T>(ptr: *mut T, what: &str) -> Res<*mut T> {
    if ptr.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    if !ptr.is_aligned() {
        return Err(invalid(format!("{what} is misaligned")));
    }
    Ok(ptr)
}

/// Writes an out-parameter (only ever called once the operation has succeeded).
///
/// # Safety
///
/// `ptr` was checked by [`out_ptr`] and points at writable memory for a `T`.
pub unsafe fn write_out<T>(ptr: *mut T, value: T) {
    // SAFETY: the caller guarantees `ptr` is non-null, aligned and writable; `write` does not
    // drop the old (possibly uninitialised) contents.
    unsafe { ptr.write(value) }
}

/// A NUL-terminated UTF-8 string, or `EINVAL` naming `what` when null or not UTF-8.
///
/// # Safety
///
/// `ptr` is null or points at a NUL-terminated string that lives and is not modified for `'a`.
pub unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Res<&'a str> {
    if ptr.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null, and NUL-terminated and live for `'a` by the caller's guarantee.
    let cstr = unsafe { CStr::from_ptr(ptr) };
    cstr.to_str()
        .map_err(|_| invalid(format!("{what} is not valid UTF-8")))
}

/// A NUL-terminated string of any bytes, or `EINVAL` naming `what` when null.
///
/// # Safety
///
/// As [`str_arg`].
pub unsafe fn cstr_arg<'a>(ptr: *const c_char, what: &str) -> Res<&'a CStr> {
    if ptr.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null, and NUL-terminated and live for `'a` by the caller's guarantee.
    Ok(unsafe { CStr::from_ptr(ptr) })
}

/// Like [`str_arg`], with null meaning `None`.
///
/// # Safety
///
/// As [`str_arg`].
pub unsafe fn opt_str_arg<'a>(ptr: *const c_char, what: &str) -> Res<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded caller guarantee.
    unsafe { str_arg(ptr, what) }.map(Some)
}

/// A C string as text for messages and descriptors: lossy, `None` when null.
///
/// # Safety
///
/// As [`str_arg`].
pub unsafe fn lossy_str(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated by the caller's guarantee.
    Some(
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// `len` elements at `ptr` as a slice. A zero length gives an empty slice whatever `ptr` is;
/// a null or misaligned `ptr` with a non-zero length is `EINVAL`.
///
/// # Safety
///
/// When `len > 0`, `ptr` points at `len` initialised `T`s that live and are not written for
/// `'a`.
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &str) -> Res<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    check_array(ptr, len, what)?;
    // SAFETY: non-null, aligned, `len` elements within one allocation (size checked by
    // `check_array`) and live for `'a`, by the caller's guarantee.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The mutable counterpart of [`slice`].
///
/// # Safety
///
/// When `len > 0`, `ptr` points at `len` initialised `T`s that nothing else accesses for `'a`.
pub unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize, what: &str) -> Res<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    check_array(ptr, len, what)?;
    // SAFETY: as for `slice`, with exclusivity guaranteed by the caller.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Bytes at a `void *`.
///
/// # Safety
///
/// As [`slice`].
pub unsafe fn bytes<'a>(ptr: *const c_void, len: usize, what: &str) -> Res<&'a [u8]> {
    // SAFETY: forwarded caller guarantee.
    unsafe { slice(ptr.cast::<u8>(), len, what) }
}

/// Mutable bytes at a `void *`.
///
/// # Safety
///
/// As [`slice_mut`].
pub unsafe fn bytes_mut<'a>(ptr: *mut c_void, len: usize, what: &str) -> Res<&'a mut [u8]> {
    // SAFETY: forwarded caller guarantee.
    unsafe { slice_mut(ptr.cast::<u8>(), len, what) }
}

/// Bytes at a `uint8_t *` with a size, `None` when null or empty.
///
/// # Safety
///
/// As [`slice`].
pub unsafe fn opt_slice<'a>(ptr: *const u8, len: usize) -> Res<Option<&'a [u8]>> {
    if ptr.is_null() || len == 0 {
        return Ok(None);
    }
    // SAFETY: forwarded caller guarantee.
    unsafe { slice(ptr, len, "data") }.map(Some)
}

fn check_array<T>(ptr: *const T, len: usize, what: &str) -> Res<()> {
    if ptr.is_null() {
        return Err(invalid(format!("{what} is NULL but its length is {len}")));
    }
    if !ptr.is_aligned() {
        return Err(invalid(format!("{what} is misaligned")));
    }
    let fits = len
        .checked_mul(size_of::<T>())
        .is_some_and(|n| n <= isize::MAX as usize);
    if !fits {
        return Err(invalid(format!("{what}: length {len} is too large")));
    }
    Ok(())
}

/// A count passed as C `int`: negative is `EINVAL`.
pub fn count(value: c_int, what: &str) -> Res<usize> {
    usize::try_from(value).map_err(|_| invalid(format!("{what} is negative ({value})")))
}

/// A byte range of memory, to check that buffers handed out as `&mut` do not overlap.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    start: usize,
    len: usize,
    writable: bool,
}

impl Span {
    /// A range read through a shared slice.
    pub fn read<T>(ptr: *const T, len: usize) -> Span {
        Span {
            start: ptr as usize,
            len: len.saturating_mul(size_of::<T>()),
            writable: false,
        }
    }

    /// A range written through an exclusive slice.
    pub fn write<T>(ptr: *const T, len: usize) -> Span {
        Span {
            writable: true,
            ..Span::read(ptr, len)
        }
    }

    fn overlaps(&self, other: &Span) -> bool {
        self.len > 0
            && other.len > 0
            && self.start < other.start.saturating_add(other.len)
            && other.start < self.start.saturating_add(self.len)
    }
}

/// Refuses (`EINVAL`) buffers where a written range overlaps any other range: Rust may not
/// hold a `&mut` to memory that is also reachable through another reference.
pub fn check_disjoint(spans: &[Span], what: &str) -> Res<()> {
    for (i, a) in spans.iter().enumerate() {
        for b in spans.iter().skip(i + 1) {
            if (a.writable || b.writable) && a.overlaps(b) {
                return Err(invalid(format!(
                    "{what}: an output buffer overlaps another buffer"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_maps_errors_and_panics() {
        assert_eq!(guard("t", || Ok(())), 0);
        assert_eq!(guard("t", || Err(invalid("x"))), 22);
        assert_eq!(guard("t", || panic!("boom")), 71);
        assert_eq!(guard_value("t", -1, |_| -2, || Ok(5)), 5);
    }

    #[test]
    fn slices_are_checked() {
        let v = [1u32, 2, 3];
        // SAFETY: `v` is live for the test; the null cases are refused before any access.
        unsafe {
            assert_eq!(slice(v.as_ptr(), 3, "v").unwrap(), &v);
            assert!(slice::<u32>(std::ptr::null(), 0, "v").unwrap().is_empty());
            assert!(slice::<u32>(std::ptr::null(), 1, "v").is_err());
            let misaligned = v.as_ptr().cast::<u8>().wrapping_add(1).cast::<u32>();
            assert!(slice(misaligned, 1, "v").is_err());
            assert!(str_arg(std::ptr::null(), "s").is_err());
            assert_eq!(str_arg(c"hi".as_ptr(), "s").unwrap(), "hi");
            let bad = [0xffu8, 0];
            assert!(str_arg(bad.as_ptr().cast(), "s").is_err());
        }
        assert!(count(-1, "n").is_err());
    }

    #[test]
    fn overlapping_outputs_are_refused() {
        let buf = [0u8; 16];
        let p = buf.as_ptr();
        let a = Span::read(p, 8);
        let b = Span::write(p.wrapping_add(4), 8);
        let c = Span::write(p.wrapping_add(12), 4);
        assert!(check_disjoint(&[a, Span::read(p, 16)], "x").is_ok());
        assert!(check_disjoint(&[a, b], "x").is_err());
        assert!(check_disjoint(&[a, c], "x").is_ok());
        assert!(check_disjoint(&[b, c], "x").is_ok());
        let d = Span::write(p.wrapping_add(10), 4);
        assert!(check_disjoint(&[b, d], "x").is_err());
        assert!(check_disjoint(&[Span::write(p, 0), Span::write(p, 4)], "x").is_ok());
    }
}
