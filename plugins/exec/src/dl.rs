//! Every `unsafe` of the crate: opening a library, finding a function in it and calling it.
//!
//! The three steps are sound only under the trust model of the crate docs: the library is host
//! code the operator chose, its initialisers are sound, and an exported symbol named by the
//! caller really is a function of the exec convention that stays inside the buffers it is
//! given. Nothing here can check that; what is checked is everything on the Rust side (handles
//! outlive the functions taken from them, null symbols are refused, the argument arrays point
//! at live buffers of the sizes they claim).

use std::ffi::{OsStr, c_int, c_void};
use std::marker::PhantomData;
use std::ptr;

use libloading::os::unix::Library;
use vaccel_abi::{vaccel_arg, vaccel_exec_fn};
use vaccel_core::arg::Arg;
use vaccel_core::error::{Error, Result};

/// An open library (`dlopen` handle).
///
/// Dropping it calls `dlclose` only when it was opened with `close`; otherwise the handle is
/// deliberately leaked, which is what upstream's "dlclose disabled" means: some libraries (those
/// that start threads, register `atexit` handlers or thread-local destructors) crash the process
/// when unmapped, so they are never closed.
pub(crate) struct Handle {
    lib: Option<Library>,
    close: bool,
    path: String,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("path", &self.path)
            .field("close", &self.close)
            .finish()
    }
}

impl Handle {
    /// `dlopen(path, flags)`. A name without `/` is searched on the normal library path.
    pub(crate) fn open(path: &str, flags: c_int, close: bool) -> Result<Handle, libloading::Error> {
        // SAFETY: `dlopen` itself is thread-safe; what makes it unsafe is that it runs the
        // library's initialisers (ELF constructors) and may run its finalisers on failure.
        // Invariant: the library is trusted host code (crate docs, "Trust model"), so its
        // initialisers are sound. Nothing else is assumed: the returned handle is owned by
        // `Handle` and closed at most once (in `Drop`).
        let lib = unsafe { Library::open(Some(OsStr::new(path)), flags) }?;
        Ok(Handle {
            lib: Some(lib),
            close,
            path: path.to_owned(),
        })
    }

    /// The path or name the library was opened with.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Looks `symbol` up (`dlsym`) as a function of the exec convention.
    pub(crate) fn function(&self, symbol: &str) -> Result<ExecFn<'_>, SymbolError> {
        let lib = self.lib.as_ref().ok_or(SymbolError::Closed)?;
        // Asked for as a data pointer first: libloading returns a null symbol without error on
        // Linux, and a null `extern "C" fn` would be undefined behaviour.
        // SAFETY: `get::<T>` is unsafe because `T` is not checked against the symbol. `T` is
        // `*mut c_void`, which any symbol address is; nothing is dereferenced. The symbol is
        // only used while `lib` is open, which `ExecFn`'s lifetime enforces.
        let sym =
            unsafe { lib.get::<*mut c_void>(symbol.as_bytes()) }.map_err(SymbolError::Dlsym)?;
        let raw = sym.into_raw();
        if raw.is_null() {
            return Err(SymbolError::Null);
        }
        // SAFETY: invariants of the transmute: (1) sizes agree: a data pointer and a function
        // pointer have the same size on every POSIX target, which POSIX requires for `dlsym`
        // (checked at compile time by `transmute`); (2) the value is not null (checked above),
        // as `extern "C" fn` requires; (3) it is the address of a function with the exec
        // signature: the trust model (crate docs) makes this the library's contract for the
        // symbols callers name, as in upstream.
        let f = unsafe { std::mem::transmute::<*mut c_void, vaccel_exec_fn>(raw) };
        Ok(ExecFn {
            f,
            _lib: PhantomData,
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let Some(lib) = self.lib.take() else {
            return;
        };
        if self.close {
            log::debug!("[exec] Closing {}", self.path);
            if let Err(e) = lib.close() {
                log::warn!("[exec] dlclose failed for {}: {e}", self.path);
            }
        } else {
            // Leaked on purpose (see the type docs): the library stays mapped for the life of
            // the process.
            let _ = lib.into_raw();
        }
    }
}

/// Why a function could not be taken from a library.
#[derive(Debug)]
pub(crate) enum SymbolError {
    /// `dlsym` failed (the symbol is not defined).
    Dlsym(libloading::Error),
    /// The symbol is defined with a null address.
    Null,
    /// The handle was already closed (cannot happen: handles close only when dropped).
    Closed,
}

impl std::fmt::Display for SymbolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SymbolError::Dlsym(e) => write!(f, "{e}"),
            SymbolError::Null => f.write_str("symbol has a null address"),
            SymbolError::Closed => f.write_str("library is closed"),
        }
    }
}

/// A function of the exec convention, callable while the [`Handle`] it came from is open.
#[derive(Clone, Copy)]
pub(crate) struct ExecFn<'h> {
    f: vaccel_exec_fn,
    _lib: PhantomData<&'h Handle>,
}

/// Builds the C view of one argument. Zero-sized arguments get a null `buf`, as upstream's
/// `vaccel_arg_init_from_buf` requires.
fn c_arg(ptr: *mut u8, size: usize, ty: u32, custom_type_id: u32) -> vaccel_arg {
    vaccel_arg {
        buf: if size == 0 {
            ptr::null_mut()
        } else {
            ptr.cast::<c_void>()
        },
        size,
        r#type: ty,
        custom_type_id,
        owned: false,
    }
}

/// Pointer and count of an argument array; an empty one is passed as `NULL, 0`.
fn c_array(args: &mut [vaccel_arg]) -> (*mut vaccel_arg, usize) {
    if args.is_empty() {
        (ptr::null_mut(), 0)
    } else {
        (args.as_mut_ptr(), args.len())
    }
}

impl ExecFn<'_> {
    /// Calls the function with `read` and `write` laid out as `struct vaccel_arg` arrays whose
    /// `buf`s are the arguments' own bytes: nothing is copied, the function writes straight
    /// into the caller's output buffers. Returns the function's return value.
    ///
    /// A read-only write argument is refused (`EINVAL`) before anything is called.
    pub(crate) fn call(self, read: &[Arg<'_>], write: &mut [Arg<'_>]) -> Result<c_int> {
        let mut c_read: Vec<vaccel_arg> = read
            .iter()
            .map(|a| {
                // Cast to `*mut` only because the C struct has a `void *`; the trust model
                // forbids the function to write through read arguments.
                let bytes = a.bytes();
                c_arg(
                    bytes.as_ptr().cast_mut(),
                    bytes.len(),
                    a.ty().value(),
                    a.custom_id(),
                )
            })
            .collect();
        let mut c_write: Vec<vaccel_arg> = Vec::with_capacity(write.len());
        for (index, arg) in write.iter_mut().enumerate() {
            // Type and id are read before the bytes are borrowed mutably, so the pointer taken
            // last is not invalidated by a later access to the argument.
            let (ty, custom_id) = (arg.ty().value(), arg.custom_id());
            let bytes = arg.bytes_mut().map_err(|e| Error::arg(index, e))?;
            c_write.push(c_arg(bytes.as_mut_ptr(), bytes.len(), ty, custom_id));
        }
        // From here to the call nothing can panic: only pointer reads of local vectors.
        let (read_ptr, nr_read) = c_array(&mut c_read);
        let (write_ptr, nr_write) = c_array(&mut c_write);
        // SAFETY: invariants of the call:
        // (1) `self.f` is a live function of the exec signature: its handle is borrowed for
        //     `'h`, so the library cannot be closed during the call (see `Handle::function`).
        // (2) `read_ptr`/`write_ptr` point at `nr_read`/`nr_write` initialised `vaccel_arg`s
        //     (or are null with a count of 0), owned by `c_read`/`c_write`, which live until
        //     after the call and are not touched meanwhile; the function may rewrite these
        //     structs, which only affects our copies.
        // (3) each `buf` points at `size` live bytes: the bytes of `read` (shared borrow held
        //     by this call) and of `write` (exclusive borrow of every argument held for the
        //     whole call, so nothing else can read or write them concurrently). `read` and
        //     `write` cannot overlap: one is borrowed shared, the other exclusively.
        // (4) the function writes only within the `write` buffers and never through `read`
        //     buffers, and does not keep any pointer after returning: the exec convention's
        //     contract, which the trust model (crate docs) puts on the library.
        // (5) it does not unwind: an exception escaping an `extern "C"` function is undefined
        //     behaviour, and the trust model excludes it like any other crash of the library.
        let ret = unsafe { (self.f)(read_ptr, nr_read, write_ptr, nr_write) };
        drop(c_read);
        drop(c_write);
        Ok(ret)
    }
}
