//! C views of arguments: `struct vaccel_arg` arrays as typed [`Arg`]s over the caller's own
//! buffers (nothing copied).

use vaccel_abi::vaccel_arg;
use vaccel_core::Error;
use vaccel_core::arg::Arg;

use crate::ffi::{self, Res, Span};

/// Typed args over the caller's `struct vaccel_arg` arrays: read args validated by the rules
/// of their type (§1.8), write args by size only (they are outputs).
///
/// # Safety
///
/// The arrays hold their counts; each arg's `buf` holds `size` bytes that live, unchanged
/// except through the returned write args, for `'a`.
pub unsafe fn c_args<'a>(
    read: *const vaccel_arg,
    nr_read: usize,
    write: *mut vaccel_arg,
    nr_write: usize,
) -> Res<(Vec<Arg<'a>>, Vec<Arg<'a>>)> {
    // SAFETY: caller guarantee on the arrays; only the structs' fields are copied out.
    let (r, w) = unsafe {
        (
            ffi::slice(read, nr_read, "read args")?,
            ffi::slice(write.cast_const(), nr_write, "write args")?,
        )
    };
    let fields = |a: &vaccel_arg| (a.buf, a.size, a.r#type, a.custom_type_id);
    let r: Vec<_> = r.iter().map(fields).collect();
    let w: Vec<_> = w.iter().map(fields).collect();
    let spans: Vec<Span> = r
        .iter()
        .map(|(buf, size, ..)| Span::read(buf.cast::<u8>(), *size))
        .chain(
            w.iter()
                .map(|(buf, size, ..)| Span::write(buf.cast::<u8>(), *size)),
        )
        .collect();
    ffi::check_disjoint(&spans, "args")?;
    let mut reads = Vec::with_capacity(r.len());
    for (i, (buf, size, ty, custom)) in r.into_iter().enumerate() {
        // SAFETY: caller guarantee on `buf`/`size`.
        let bytes = unsafe { ffi::bytes(buf, size, "read arg") }?;
        reads.push(Arg::from_parts(ty, custom, bytes).map_err(|e| Error::arg(i, e))?);
    }
    let mut writes = Vec::with_capacity(w.len());
    for (i, (buf, size, ty, custom)) in w.into_iter().enumerate() {
        // SAFETY: caller guarantee; the spans check above makes every write buffer disjoint
        // from every other buffer, so this is the only reference to its bytes.
        let bytes = unsafe { ffi::bytes_mut(buf, size, "write arg") }?;
        writes.push(Arg::from_parts_mut(ty, custom, bytes).map_err(|e| Error::arg(i, e))?);
    }
    Ok((reads, writes))
}

/// [`c_args`] for the functions whose counts are C `int`s (`vaccel_genop`, `vaccel_opencv`):
/// a negative count is `EINVAL`.
///
/// # Safety
///
/// As [`c_args`].
pub unsafe fn c_args_counted<'a>(
    read: *const vaccel_arg,
    nr_read: std::ffi::c_int,
    write: *mut vaccel_arg,
    nr_write: std::ffi::c_int,
) -> Res<(Vec<Arg<'a>>, Vec<Arg<'a>>)> {
    let (nr_read, nr_write) = (
        ffi::count(nr_read, "nr_read")?,
        ffi::count(nr_write, "nr_write")?,
    );
    // SAFETY: forwarded caller guarantee.
    unsafe { c_args(read, nr_read, write, nr_write) }
}
