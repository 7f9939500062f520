//! `fs_file_read`: upstream's file reader (`src/utils/fs.c`). It is no part of upstream's
//! installed headers, but upstream's example programs call it and import it from
//! `libvaccel.so`, so ours exports it for them to run.
//!
//! # Safety
//!
//! `path` is null or NUL-terminated; `data` and `size` are null or writable.

use std::ffi::{CStr, OsStr, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use vaccel_core::Error;

use crate::ffi::{cstr_arg, guard, invalid, out_ptr, write_out};

/// Reads the whole file at `path`.
fn read(path: &CStr) -> Result<Vec<u8>, Error> {
    let path = Path::new(OsStr::from_bytes(path.to_bytes()));
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(format!("could not read {}", path.display()), e))?;
    if bytes.is_empty() {
        return Err(invalid(format!("{} is empty", path.display())));
    }
    Ok(bytes)
}

/// `int fs_file_read(const char *path, void **data, size_t *size)`: the file's bytes in a
/// `malloc`ed buffer the caller frees, and their count. An empty file is `VACCEL_EINVAL`, a
/// missing one `VACCEL_ENOENT` (the `errno` of the failed read); `size` may be NULL.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fs_file_read(
    path: *const c_char,
    data: *mut *mut c_void,
    size: *mut usize,
) -> c_int {
    guard("fs_file_read", || {
        // SAFETY: null or NUL-terminated (caller guarantee).
        let path = unsafe { cstr_arg(path, "path") }?;
        let data = out_ptr(data, "data")?;
        let size = if size.is_null() {
            None
        } else {
            Some(out_ptr(size, "size")?)
        };
        let bytes = read(path)?;
        let buffer = crate::cmem::malloc_copy(&bytes, "file data")?;
        // SAFETY: both checked by `out_ptr` and writable (caller guarantee).
        unsafe {
            write_out(data, buffer.cast::<c_void>());
            if let Some(size) = size {
                write_out(size, bytes.len());
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::ffi::CString;
    use std::ptr;

    use vaccel_core::ErrorCode;

    use super::*;

    fn read_c(path: &Path) -> (c_int, Vec<u8>) {
        let path = CString::new(path.as_os_str().as_bytes()).unwrap();
        let mut data: *mut c_void = ptr::null_mut();
        let mut size = 0usize;
        // SAFETY: a NUL-terminated path and writable out-parameters.
        let rc = unsafe { fs_file_read(path.as_ptr(), &mut data, &mut size) };
        if data.is_null() {
            return (rc, Vec::new());
        }
        // SAFETY: on success `data` holds `size` bytes from `malloc`, ours to free.
        let bytes = unsafe {
            let bytes = vaccel_ffi::ffi::bytes(data, size, "data").unwrap().to_vec();
            libc::free(data);
            bytes
        };
        (rc, bytes)
    }

    #[test]
    fn reads_a_file_refuses_empty_and_missing_files_and_null_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.bin");
        std::fs::write(&file, b"\x00vAccel\xff").unwrap();
        assert_eq!(read_c(&file), (0, b"\x00vAccel\xff".to_vec()));

        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(read_c(&empty), (ErrorCode::EINVAL.as_i32(), Vec::new()));
        let missing = dir.path().join("missing");
        assert_eq!(read_c(&missing), (ErrorCode::ENOENT.as_i32(), Vec::new()));

        let path = CString::new(file.as_os_str().as_bytes()).unwrap();
        let mut data: *mut c_void = ptr::null_mut();
        // SAFETY: null pointers are refused before any access.
        unsafe {
            assert_eq!(
                fs_file_read(ptr::null(), &mut data, ptr::null_mut()),
                ErrorCode::EINVAL.as_i32()
            );
            assert_eq!(
                fs_file_read(path.as_ptr(), ptr::null_mut(), ptr::null_mut()),
                ErrorCode::EINVAL.as_i32()
            );
        }
        assert!(data.is_null());
    }
}
