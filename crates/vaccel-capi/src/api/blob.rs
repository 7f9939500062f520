//! `vaccel/blob.h`: blobs on the caller's structs, with upstream's semantics (spec §5.2).
//!
//! # Safety
//!
//! `blob` arguments are null or valid structs (for initialisers: writable) whose strings
//! are null or NUL-terminated and C-allocated, and whose data is C-allocated (BUFFER) or a
//! mapping (MAPPED) when owned; buffers hold their sizes; strings are NUL-terminated.

use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::{LazyLock, Mutex, PoisonError};

use vaccel_abi::{
    VACCEL_BLOB_BUFFER, VACCEL_BLOB_FILE, VACCEL_BLOB_MAPPED, VACCEL_BLOB_MAX, vaccel_blob,
};
use vaccel_core::{Error, ErrorCode};

use crate::cmem;
use crate::ffi::{self, Res, guard, guard_value, invalid};

fn io(context: String, e: std::io::Error) -> Error {
    Error::io(context, e)
}

/// Maps `len` bytes of `fd` privately and writably (what upstream gives `blob->data`).
fn map_fd(fd: &OwnedFd, len: usize, what: &str) -> Res<*mut u8> {
    // SAFETY: a fresh private mapping of an open descriptor; checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io(format!("mmap {what}"), std::io::Error::last_os_error()));
    }
    Ok(p.cast::<u8>())
}

/// Frees what a blob owns (not the file).
///
/// # Safety
///
/// See the module docs.
unsafe fn free_data(b: &mut vaccel_blob) {
    if b.data_owned && !b.data.is_null() {
        if b.r#type == VACCEL_BLOB_MAPPED {
            // SAFETY: owned MAPPED data is a mapping of `size` bytes made here.
            unsafe { libc::munmap(b.data.cast(), b.size) };
        } else {
            // SAFETY: owned BUFFER data is a C allocation.
            unsafe { cmem::free(b.data) };
        }
    }
    b.data = ptr::null_mut();
    b.data_owned = false;
}

/// # Safety
///
/// See the module docs.
unsafe fn init(blob: *mut vaccel_blob, path: *const c_char) -> Res<()> {
    let blob = ffi::out_ptr(blob, "blob")?;
    // SAFETY: caller guarantee.
    let path = unsafe { ffi::str_arg(path, "path") }?;
    // Upstream: anything but an existing regular file (missing ones too) is `EINVAL`.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        log::error!("Invalid file {path}");
        return Err(invalid(format!("{path} is not an existing regular file")));
    }
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = cmem::strdup(&name, "blob name")?;
    let path = match cmem::strdup(path, "blob path") {
        Ok(p) => p,
        Err(e) => {
            // SAFETY: allocated above.
            unsafe { cmem::free(name) };
            return Err(e);
        }
    };
    // SAFETY: checked by `out_ptr`.
    unsafe {
        blob.write(vaccel_blob {
            r#type: VACCEL_BLOB_FILE,
            name,
            path,
            path_owned: false,
            data: ptr::null_mut(),
            data_owned: false,
            size: 0,
        });
    }
    Ok(())
}

/// Creates `<dir>/<name>` exclusively (mode 0700), or a unique `<stem>_XXXXXX<ext>` when
/// `randomize` or when it exists. Returns the open file and its path.
fn create(dir: &str, filename: &str, randomize: bool) -> Res<(OwnedFd, String)> {
    use std::os::unix::fs::OpenOptionsExt;
    let target = format!("{dir}/{filename}");
    if !randomize {
        match std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o700)
            .open(&target)
        {
            Ok(f) => return Ok((OwnedFd::from(f), target)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                log::warn!("File {target} exists");
                log::warn!("Adding a random value to the filename");
            }
            Err(e) => return Err(io(format!("create {target}"), e)),
        }
    }
    let (stem, ext) = match filename.rfind('.') {
        Some(i) if i > 0 => filename.split_at(i),
        _ => (filename, ""),
    };
    let template = CString::new(format!("{dir}/{stem}_XXXXXX{ext}"))
        .map_err(|_| invalid("file name contains a NUL byte"))?;
    let mut bytes = template.into_bytes_with_nul();
    let suffix = i32::try_from(ext.len()).map_err(|_| invalid("extension too long"))?;
    // SAFETY: `bytes` is a writable NUL-terminated template ending in `XXXXXX` + `ext`;
    // mkstemps rewrites the Xs in place and returns a new descriptor or -1.
    let fd = unsafe { libc::mkstemps(bytes.as_mut_ptr().cast::<c_char>(), suffix) };
    if fd < 0 {
        return Err(io(
            format!("create a file in {dir}"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    bytes.pop();
    let path = String::from_utf8_lossy(&bytes).into_owned();
    // Upstream's files are 0700.
    // SAFETY: a valid descriptor.
    unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) };
    Ok((fd, path))
}

/// # Safety
///
/// See the module docs.
unsafe fn persist(
    blob: *mut vaccel_blob,
    dir: *const c_char,
    filename: *const c_char,
    randomize: bool,
) -> Res<()> {
    // Upstream's order: the blob, the file name (`EINVAL`), the directory (`ENOENT`, a NULL
    // one too), an existing file (`EEXIST`).
    // SAFETY: caller guarantee.
    let b = unsafe { ffi::as_mut(blob, "blob") }?;
    if b.data.is_null() || b.size == 0 || b.r#type >= VACCEL_BLOB_MAX {
        return Err(invalid("blob has no data to persist"));
    }
    // SAFETY: caller guarantee.
    let filename = unsafe { ffi::str_arg(filename, "filename") }?;
    // SAFETY: caller guarantee.
    let dir = unsafe { ffi::opt_str_arg(dir, "dir") }?
        .filter(|d| Path::new(d).is_dir())
        .ok_or_else(|| ffi::err(ErrorCode::ENOENT, "invalid directory"))?;
    if !b.path.is_null() {
        return Err(ffi::err(ErrorCode::EEXIST, "blob already has a file"));
    }
    if filename.is_empty() || filename.contains('/') {
        return Err(invalid(format!("invalid file name {filename:?}")));
    }
    let (fd, path) = create(dir, filename, randomize)?;
    // SAFETY: the blob's data holds `size` bytes (caller guarantee).
    let data = unsafe { ffi::bytes(b.data.cast(), b.size, "blob data") }?;
    let mut file = std::fs::File::from(fd);
    let written = std::io::Write::write_all(&mut file, data);
    let fd = OwnedFd::from(file);
    let mapped = written
        .map_err(|e| io(format!("write {path}"), e))
        .and_then(|()| map_fd(&fd, data.len(), &path));
    let mapped = match mapped {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    let final_name = Path::new(&path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    log::debug!("Persisting file {final_name} to {path}");
    let (name_c, path_c) = match (
        cmem::strdup(&final_name, "blob name"),
        cmem::strdup(&path, "blob path"),
    ) {
        (Ok(n), Ok(p)) => (n, p),
        (n, p) => {
            // SAFETY: whichever succeeded was just allocated; the mapping was just made.
            unsafe {
                if let Ok(n) = n {
                    cmem::free(n);
                }
                if let Ok(p) = p {
                    cmem::free(p);
                }
                libc::munmap(mapped.cast(), data.len());
            }
            let _ = std::fs::remove_file(&path);
            return Err(ffi::err(ErrorCode::ENOMEM, "out of memory"));
        }
    };
    let size = data.len();
    // SAFETY: the old owned data and name are released (caller guarantee on ownership).
    unsafe {
        free_data(b);
        cmem::free(b.name);
    }
    b.r#type = VACCEL_BLOB_MAPPED;
    b.name = name_c;
    b.path = path_c;
    b.path_owned = true;
    b.data = mapped;
    b.data_owned = true;
    b.size = size;
    Ok(())
}

/// # Safety
///
/// See the module docs.
#[allow(clippy::too_many_arguments)]
unsafe fn init_from_buf(
    blob: *mut vaccel_blob,
    buf: *const u8,
    size: usize,
    own: bool,
    filename: *const c_char,
    dir: *const c_char,
    randomize: bool,
) -> Res<()> {
    let out = ffi::out_ptr(blob, "blob")?;
    if buf.is_null() || size == 0 {
        return Err(invalid("buf is NULL or empty"));
    }
    // SAFETY: caller guarantee.
    let name = unsafe { ffi::str_arg(filename, "filename") }?;
    // SAFETY: `buf` holds `size` bytes (caller guarantee).
    let bytes = unsafe { ffi::bytes(buf.cast(), size, "buf") }?;
    let data = if own || !dir.is_null() {
        cmem::malloc_copy(bytes, "blob data")?
    } else {
        buf.cast_mut()
    };
    let name = match cmem::strdup(name, "blob name") {
        Ok(n) => n,
        Err(e) => {
            if own || !dir.is_null() {
                // SAFETY: allocated above.
                unsafe { cmem::free(data) };
            }
            return Err(e);
        }
    };
    // SAFETY: checked by `out_ptr`.
    unsafe {
        out.write(vaccel_blob {
            r#type: VACCEL_BLOB_BUFFER,
            name,
            path: ptr::null_mut(),
            path_owned: false,
            data,
            data_owned: own || !dir.is_null(),
            size,
        });
    }
    if !dir.is_null() {
        // SAFETY: `out` was just initialised; caller guarantee on the strings.
        if let Err(e) = unsafe { persist(out, dir, filename, randomize) } {
            // SAFETY: initialised above.
            unsafe { release(out) }?;
            return Err(e);
        }
    }
    Ok(())
}

/// # Safety
///
/// See the module docs.
unsafe fn release(blob: *mut vaccel_blob) -> Res<()> {
    // SAFETY: caller guarantee.
    let b = unsafe { ffi::as_mut(blob, "blob") }?;
    if b.r#type >= VACCEL_BLOB_MAX {
        return Err(invalid("blob is not initialized"));
    }
    if !b.data_owned
        && let Some(len) = READ_MAPPINGS.forget(b.data)
    {
        // SAFETY: a mapping of `len` bytes made by `read` for this blob and not unmapped yet
        // (it left the registry just now).
        unsafe { libc::munmap(b.data.cast(), len) };
        b.data = ptr::null_mut();
    }
    // SAFETY: caller guarantee on ownership.
    unsafe {
        free_data(b);
        cmem::free(b.name);
    }
    if !b.path.is_null() {
        // SAFETY: NUL-terminated (caller guarantee).
        let path = unsafe { ffi::cstr_arg(b.path, "blob path") }?;
        if b.path_owned {
            let path = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
            log::debug!("Removing file {}", path.display());
            if let Err(e) = std::fs::remove_file(path) {
                log::warn!("Could not remove {}: {e}", path.display());
            }
        }
        // SAFETY: a C allocation (caller guarantee).
        unsafe { cmem::free(b.path) };
    }
    *b = vaccel_blob {
        r#type: VACCEL_BLOB_MAX,
        name: ptr::null_mut(),
        path: ptr::null_mut(),
        path_owned: false,
        data: ptr::null_mut(),
        data_owned: false,
        size: 0,
    };
    Ok(())
}

/// The mappings `vaccel_blob_read` made, by address: upstream leaves them with
/// `data_owned == false` (a caller may test it), so `vaccel_blob_release` finds them here to
/// unmap them (upstream never does).
struct ReadMappings(Mutex<HashMap<usize, usize>>);

static READ_MAPPINGS: LazyLock<ReadMappings> =
    LazyLock::new(|| ReadMappings(Mutex::new(HashMap::new())));

impl ReadMappings {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, data: *mut u8, len: usize) {
        self.lock().insert(data as usize, len);
    }

    /// The length of the mapping at `data`, if `read` made it and it is still mapped.
    fn forget(&self, data: *mut u8) -> Option<usize> {
        if data.is_null() {
            return None;
        }
        self.lock().remove(&(data as usize))
    }
}

/// # Safety
///
/// See the module docs.
unsafe fn read(b: &mut vaccel_blob) -> Res<()> {
    if b.r#type >= VACCEL_BLOB_MAX {
        return Err(invalid("blob is not initialized"));
    }
    if !b.data.is_null() {
        return Ok(());
    }
    if b.path.is_null() {
        return Err(invalid("blob has neither data nor path"));
    }
    // SAFETY: NUL-terminated (caller guarantee).
    let path = unsafe { ffi::str_arg(b.path, "path") }?;
    let file = std::fs::File::open(path).map_err(|e| io(format!("open {path}"), e))?;
    let len = usize::try_from(
        file.metadata()
            .map_err(|e| io(format!("stat {path}"), e))?
            .len(),
    )
    .map_err(|_| invalid("file too large"))?;
    if len == 0 {
        return Err(invalid(format!("{path} is empty")));
    }
    let fd = OwnedFd::from(file);
    b.data = map_fd(&fd, len, path)?;
    READ_MAPPINGS.record(b.data, len);
    b.size = len;
    b.r#type = VACCEL_BLOB_MAPPED;
    // As upstream: the data is mapped, not owned (release unmaps it all the same).
    b.data_owned = false;
    Ok(())
}

/// `vaccel_blob_init`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_init(blob: *mut vaccel_blob, path: *const c_char) -> c_int {
    // SAFETY: forwarded.
    guard("vaccel_blob_init", || unsafe { init(blob, path) })
}

/// `vaccel_blob_init_from_buf`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_init_from_buf(
    blob: *mut vaccel_blob,
    buf: *const u8,
    size: usize,
    own: bool,
    filename: *const c_char,
    dir: *const c_char,
    randomize: bool,
) -> c_int {
    // SAFETY: forwarded.
    guard("vaccel_blob_init_from_buf", || unsafe {
        init_from_buf(blob, buf, size, own, filename, dir, randomize)
    })
}

/// `vaccel_blob_persist`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_persist(
    blob: *mut vaccel_blob,
    dir: *const c_char,
    filename: *const c_char,
    randomize: bool,
) -> c_int {
    // SAFETY: forwarded.
    guard("vaccel_blob_persist", || unsafe {
        persist(blob, dir, filename, randomize)
    })
}

/// `vaccel_blob_release`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_release(blob: *mut vaccel_blob) -> c_int {
    // SAFETY: forwarded.
    guard("vaccel_blob_release", || unsafe { release(blob) })
}

/// Heap variant of an initialiser.
fn new_blob(out: *mut *mut vaccel_blob, init: impl FnOnce(*mut vaccel_blob) -> Res<()>) -> Res<()> {
    let out = ffi::out_ptr(out, "blob")?;
    let b = cmem::calloc::<vaccel_blob>(1, "blob")?;
    if let Err(e) = init(b) {
        // SAFETY: allocated above, not shared.
        unsafe { cmem::free(b) };
        return Err(e);
    }
    // SAFETY: checked by `out_ptr`.
    unsafe { ffi::write_out(out, b) };
    Ok(())
}

/// `vaccel_blob_new`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_new(
    blob: *mut *mut vaccel_blob,
    path: *const c_char,
) -> c_int {
    guard("vaccel_blob_new", || {
        // SAFETY: a fresh allocation; forwarded caller guarantees.
        new_blob(blob, |b| unsafe { init(b, path) })
    })
}

/// `vaccel_blob_from_buf`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_from_buf(
    blob: *mut *mut vaccel_blob,
    buf: *const u8,
    size: usize,
    own: bool,
    filename: *const c_char,
    dir: *const c_char,
    randomize: bool,
) -> c_int {
    guard("vaccel_blob_from_buf", || {
        // SAFETY: a fresh allocation; forwarded caller guarantees.
        new_blob(blob, |b| unsafe {
            init_from_buf(b, buf, size, own, filename, dir, randomize)
        })
    })
}

/// `vaccel_blob_delete`.
///
/// # Safety
///
/// `blob` is null or from `vaccel_blob_new`/`_from_buf`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_delete(blob: *mut vaccel_blob) -> c_int {
    guard("vaccel_blob_delete", || {
        // SAFETY: caller guarantee.
        unsafe {
            release(blob)?;
            cmem::free(blob);
        }
        Ok(())
    })
}

/// `vaccel_blob_read`: maps a FILE blob's bytes (`type` becomes MAPPED, `data_owned` stays
/// false as upstream's).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_read(blob: *mut vaccel_blob) -> c_int {
    guard("vaccel_blob_read", || {
        // SAFETY: caller guarantee.
        unsafe { read(ffi::as_mut(blob, "blob")?) }
    })
}

/// `vaccel_blob_data`: the bytes (read first if needed), NULL on error.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_data(blob: *mut vaccel_blob, size: *mut usize) -> *mut u8 {
    guard_value(
        "vaccel_blob_data",
        ptr::null_mut(),
        |_| ptr::null_mut(),
        || {
            // SAFETY: caller guarantee.
            let b = unsafe { ffi::as_mut(blob, "blob") }?;
            // SAFETY: caller guarantee.
            unsafe { read(b) }?;
            // `size` is optional, as upstream.
            if !size.is_null() {
                let out = ffi::out_ptr(size, "size")?;
                // SAFETY: checked by `out_ptr`.
                unsafe { ffi::write_out(out, b.size) };
            }
            Ok(b.data)
        },
    )
}

/// `vaccel_blob_path`: the file of FILE and MAPPED blobs, else NULL.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_path(blob: *mut vaccel_blob) -> *const c_char {
    guard_value(
        "vaccel_blob_path",
        ptr::null(),
        |_| ptr::null(),
        || {
            // SAFETY: caller guarantee.
            let b = unsafe { ffi::as_ref(blob, "blob") }?;
            Ok(match b.r#type {
                VACCEL_BLOB_FILE | VACCEL_BLOB_MAPPED => b.path.cast_const(),
                _ => ptr::null(),
            })
        },
    )
}

/// `vaccel_blob_valid`: `type < MAX && name && (path || (size && data))`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_blob_valid(blob: *const vaccel_blob) -> bool {
    guard_value(
        "vaccel_blob_valid",
        false,
        |_| false,
        || {
            // SAFETY: caller guarantee.
            let b = unsafe { ffi::as_ref(blob, "blob") }?;
            Ok(b.r#type < VACCEL_BLOB_MAX
                && !b.name.is_null()
                && (!b.path.is_null() || (b.size > 0 && !b.data.is_null())))
        },
    )
}
