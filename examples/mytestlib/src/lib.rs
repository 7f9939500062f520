//! `libmytestlib.so`: the functions upstream vAccel's exec examples call through the exec plugin.
//!
//! Both exports follow the exec convention (upstream §9.2, [`vaccel_abi::vaccel_exec_fn`]) and
//! print the same lines as upstream's `mytestlib.c`:
//!
//! * [`mytestfunc`] reads an `int32` from `read[0]` and writes twice its value to `write[0]`.
//! * [`mytestfunc_nonser`] reads a serialized `mydata` (`[count, e0, …, e(count-1)]` as
//!   native-endian `u32` words) from `read[0]` and writes the elements reversed, in the same
//!   layout, to `write[0]`.
//!
//! Both return 0 on success and 1, with a one-line reason on stderr, on any bad argument: the
//! caller is a long-running runtime or agent, so nothing here aborts or unwinds into C.
//!
//! The `mydata` layout is also available as safe helpers for the examples that build the input:
//!
//! ```
//! use mytestlib::{deserialize_mydata, serialize_mydata};
//!
//! let bytes = serialize_mydata(&[0, 2, 4]);
//! assert_eq!(bytes.len(), 4 * 4);
//! assert_eq!(deserialize_mydata(&bytes), Some(vec![0, 2, 4]));
//! ```

#![warn(missing_docs)]

use std::ffi::{c_int, c_void};
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use vaccel_abi::vaccel_arg;

/// Return value of the exports on success.
const OK: c_int = 0;
/// Return value of the exports on any failure (upstream's test library also returns 1).
const FAILED: c_int = 1;

/// Size in bytes of one `mydata` word.
const WORD: usize = size_of::<u32>();

/// Serializes `values` as `mydata`: `[count, e0, …, e(count-1)]`, native-endian `u32` words.
///
/// # Panics
///
/// If `values` holds more than `u32::MAX` elements, which the count word cannot express.
pub fn serialize_mydata(values: &[u32]) -> Vec<u8> {
    let Ok(count) = u32::try_from(values.len()) else {
        panic!(
            "mydata holds at most {} values, got {}",
            u32::MAX,
            values.len()
        );
    };
    // Cannot overflow: the slice itself already occupies `size_of_val(values)` bytes.
    let mut bytes = Vec::with_capacity(size_of_val(values) + WORD);
    bytes.extend_from_slice(&count.to_ne_bytes());
    for value in values {
        bytes.extend_from_slice(&value.to_ne_bytes());
    }
    bytes
}

/// Deserializes `mydata` written by [`serialize_mydata`].
///
/// Returns `None` if `bytes` is shorter than the count word or than the `count` elements it
/// announces. Bytes after the last element are ignored, as upstream's deserializer does. The
/// count is checked against `bytes.len()` before anything is allocated, so a hostile count
/// cannot trigger a large allocation.
pub fn deserialize_mydata(bytes: &[u8]) -> Option<Vec<u32>> {
    let (count, rest) = bytes.split_first_chunk::<WORD>()?;
    let count = usize::try_from(u32::from_ne_bytes(*count)).ok()?;
    let body = rest.get(..count.checked_mul(WORD)?)?;
    let mut values = Vec::with_capacity(count);
    for chunk in body.chunks_exact(WORD) {
        let word: [u8; WORD] = chunk.try_into().ok()?;
        values.push(u32::from_ne_bytes(word));
    }
    Some(values)
}

/// Number of bytes a `mydata` with `count` elements occupies, or `None` if that overflows.
fn mydata_len(count: u32) -> Option<usize> {
    usize::try_from(count)
        .ok()?
        .checked_add(1)?
        .checked_mul(WORD)
}

/// Doubles the `int32` in `read[0]` into `write[0]` (upstream's `mytestfunc`).
///
/// Prints `I got nr_in: <nr_read>, nr_out: <nr_write>`, `I got input: <v>` and
/// `Will return output: <2v>` to stdout. Returns 0 on success; returns 1 and prints the reason to
/// stderr if either array is null or empty, or if `read[0]` / `write[0]` has a null buffer or
/// fewer than 4 bytes. Doubling wraps on overflow. Arguments past the first are ignored, and the
/// arguments' `type` fields are not checked (upstream does not check them either).
///
/// # Safety
///
/// This is the exec convention's contract; the function cannot check it:
/// * `read` is null or points to `nr_read` initialized `vaccel_arg`s (only the first is read);
///   the same holds for `write` and `nr_write`.
/// * A non-null `read[0].buf` is valid for reads of `read[0].size` bytes and a non-null
///   `write[0].buf` is valid for writes of `write[0].size` bytes. The two buffers may overlap.
/// * Nothing else accesses these arguments or buffers during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mytestfunc(
    read: *mut vaccel_arg,
    nr_read: usize,
    write: *mut vaccel_arg,
    nr_write: usize,
) -> c_int {
    guard("mytestfunc", || {
        let mut out = io::stdout().lock();
        // SAFETY: our caller upholds this function's `# Safety` contract, which is exactly
        // `double_int32`'s.
        let result = unsafe { double_int32(read, nr_read, write, nr_write, &mut out) };
        // Output problems (closed stdout, EPIPE) must not fail the call, as with C's printf.
        let _ = out.flush();
        result
    })
}

/// Reverses the serialized `mydata` in `read[0]` into `write[0]` (upstream's
/// `mytestfunc_nonser`).
///
/// Prints `I got nr_in: <nr_read>, nr_out: <nr_write>` to stdout. `read[0]` must hold at least
/// `4 * (count + 1)` bytes for the count it announces, and `write[0]` must have room for the
/// same number of bytes; the result is written in the same `[count, reversed…]` layout and any
/// further bytes of `write[0]` are left untouched. Returns 0 on success; returns 1 and prints the
/// reason to stderr on a null or empty array, a null buffer, or a buffer too small.
///
/// # Safety
///
/// This is the exec convention's contract; the function cannot check it:
/// * `read` is null or points to `nr_read` initialized `vaccel_arg`s (only the first is read);
///   the same holds for `write` and `nr_write`.
/// * A non-null `read[0].buf` is valid for reads of `read[0].size` initialized bytes and a
///   non-null `write[0].buf` is valid for writes of `write[0].size` bytes. The two buffers may
///   overlap.
/// * Nothing else accesses these arguments or buffers during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mytestfunc_nonser(
    read: *mut vaccel_arg,
    nr_read: usize,
    write: *mut vaccel_arg,
    nr_write: usize,
) -> c_int {
    guard("mytestfunc_nonser", || {
        let mut out = io::stdout().lock();
        // SAFETY: our caller upholds this function's `# Safety` contract, which is exactly
        // `reverse_mydata`'s.
        let result = unsafe { reverse_mydata(read, nr_read, write, nr_write, &mut out) };
        let _ = out.flush();
        result
    })
}

/// Runs an export's body, turning an error or a panic into [`FAILED`] plus one stderr line, so
/// that nothing unwinds into the C caller (rule F2).
fn guard(name: &str, body: impl FnOnce() -> Result<(), String>) -> c_int {
    // AssertUnwindSafe: after a panic nothing from `body` is observed again; the caller only
    // sees the return code.
    let reason = match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return OK,
        Ok(Err(reason)) => reason,
        Err(_) => "internal error: the function panicked".to_owned(),
    };
    // A closed stderr cannot be reported anywhere; the return code still says it failed.
    let _ = writeln!(io::stderr(), "{name}: {reason}");
    FAILED
}

/// Body of [`mytestfunc`], printing to `out`.
///
/// # Safety
///
/// As for [`mytestfunc`].
unsafe fn double_int32(
    read: *mut vaccel_arg,
    nr_read: usize,
    write: *mut vaccel_arg,
    nr_write: usize,
    out: &mut dyn Write,
) -> Result<(), String> {
    // Stdout failures are ignored throughout, like unchecked printf calls in upstream's C.
    let _ = writeln!(out, "I got nr_in: {nr_read}, nr_out: {nr_write}");

    // SAFETY: per our contract `read` is null or points to `nr_read` initialized args;
    // `first_arg` handles null and `nr_read == 0` itself.
    let input = unsafe { first_arg(read, nr_read, "read") }?;
    input.require(size_of::<i32>())?;
    // SAFETY: `require` checked that `buf` is non-null and `size >= 4`, and per our contract a
    // non-null `read[0].buf` is readable for `size` bytes; `read_unaligned` drops any alignment
    // requirement on the caller's buffer.
    let value = unsafe { input.buf.cast::<i32>().read_unaligned() };
    let _ = writeln!(out, "I got input: {value}");

    let result = value.wrapping_mul(2);
    // SAFETY: per our contract `write` is null or points to `nr_write` initialized args.
    let output = unsafe { first_arg(write, nr_write, "write") }?;
    output.require(size_of::<i32>())?;
    let _ = writeln!(out, "Will return output: {result}");
    // SAFETY: `require` checked that `buf` is non-null and `size >= 4`, and per our contract a
    // non-null `write[0].buf` is writable for `size` bytes; `write_unaligned` drops any alignment
    // requirement. No reference into the read buffer is alive, so overlap is harmless.
    unsafe { output.buf.cast::<i32>().write_unaligned(result) };
    Ok(())
}

/// Body of [`mytestfunc_nonser`], printing to `out`.
///
/// # Safety
///
/// As for [`mytestfunc_nonser`].
unsafe fn reverse_mydata(
    read: *mut vaccel_arg,
    nr_read: usize,
    write: *mut vaccel_arg,
    nr_write: usize,
    out: &mut dyn Write,
) -> Result<(), String> {
    let _ = writeln!(out, "I got nr_in: {nr_read}, nr_out: {nr_write}");

    // SAFETY: per our contract `read` is null or points to `nr_read` initialized args.
    let input = unsafe { first_arg(read, nr_read, "read") }?;
    input.require(WORD)?;
    // SAFETY: `require` checked that `buf` is non-null and `size >= 4`, and per our contract a
    // non-null `read[0].buf` is readable for `size` bytes; the read is unaligned-safe.
    let count = unsafe { input.buf.cast::<u32>().read_unaligned() };
    // Validate the untrusted count against the buffer before touching or allocating anything.
    let needed = mydata_len(count)
        .ok_or_else(|| format!("read[0] announces {count} elements, which cannot fit in memory"))?;
    input.require(needed)?;
    let values = {
        // SAFETY: `buf` is non-null and `size >= needed` (checked above); per our contract it is
        // valid for reads of `size` initialized bytes that nothing mutates during the call, and
        // `needed <= size` means the slice lies within that one buffer (so it also fits in
        // `isize`). The slice is dropped at the end of this block, before `write[0]` is written,
        // so an overlapping write buffer is never aliased by a live reference.
        let bytes = unsafe { std::slice::from_raw_parts(input.buf.cast::<u8>(), needed) };
        deserialize_mydata(bytes)
    };
    let mut values = values.ok_or("read[0] does not hold a valid mydata")?;
    values.reverse();
    let serialized = serialize_mydata(&values);

    // SAFETY: per our contract `write` is null or points to `nr_write` initialized args.
    let output = unsafe { first_arg(write, nr_write, "write") }?;
    output.require(serialized.len())?;
    // SAFETY: `require` checked that `buf` is non-null and `size >= serialized.len()`, and per
    // our contract a non-null `write[0].buf` is writable for `size` bytes; bytes have no
    // alignment. The source is our own fresh allocation, so it cannot overlap the destination.
    unsafe {
        ptr::copy_nonoverlapping(
            serialized.as_ptr(),
            output.buf.cast::<u8>(),
            serialized.len(),
        );
    };
    Ok(())
}

/// The two fields of a caller's `vaccel_arg` this library uses, copied out of the caller's
/// memory so no reference to it outlives the check.
#[derive(Debug, Clone, Copy)]
struct ArgBuf {
    /// `which[0]`, for error messages.
    which: &'static str,
    buf: *mut c_void,
    size: usize,
}

impl ArgBuf {
    /// Fails unless the buffer is non-null and holds at least `min` bytes.
    fn require(self, min: usize) -> Result<(), String> {
        let Self { which, buf, size } = self;
        if buf.is_null() {
            return Err(format!("{which}[0].buf is NULL"));
        }
        if size < min {
            return Err(format!(
                "{which}[0] holds {size} bytes, at least {min} are needed"
            ));
        }
        Ok(())
    }
}

/// Copies `buf` and `size` out of `args[0]`, after checking that the array is non-null,
/// non-empty and aligned.
///
/// # Safety
///
/// `args` is null or points to `nr` initialized `vaccel_arg`s that nothing mutates during the
/// call.
unsafe fn first_arg(
    args: *const vaccel_arg,
    nr: usize,
    which: &'static str,
) -> Result<ArgBuf, String> {
    if args.is_null() {
        return Err(format!("{which} arguments are NULL"));
    }
    if nr < 1 {
        return Err(format!("expected at least 1 {which} argument, got 0"));
    }
    if !args.is_aligned() {
        return Err(format!("{which} arguments are misaligned"));
    }
    // SAFETY: `args` is non-null and aligned (checked above) and, since `nr >= 1`, points to an
    // initialized `vaccel_arg` per our contract. Only the `buf` and `size` fields are read, in
    // place, so no reference is formed to the caller's struct and its other fields (including
    // the `bool`, whose validity we cannot vouch for) are never read.
    let (buf, size) = unsafe {
        (
            (&raw const (*args).buf).read(),
            (&raw const (*args).size).read(),
        )
    };
    Ok(ArgBuf { which, buf, size })
}

#[cfg(test)]
// Tests index fixed-size local arrays whose lengths they chose.
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use vaccel_abi::{VACCEL_ARG_CUSTOM, VACCEL_ARG_INT32, vaccel_arg_type_t, vaccel_exec_fn};

    /// The exports must have the exec convention's exact signature.
    const _: [vaccel_exec_fn; 2] = [mytestfunc, mytestfunc_nonser];

    fn arg(buf: &mut [u8], r#type: vaccel_arg_type_t) -> vaccel_arg {
        vaccel_arg {
            buf: buf.as_mut_ptr().cast(),
            size: buf.len(),
            r#type,
            custom_type_id: 0,
            owned: false,
        }
    }

    fn null_arg() -> vaccel_arg {
        vaccel_arg {
            buf: ptr::null_mut(),
            size: 4,
            r#type: VACCEL_ARG_INT32,
            custom_type_id: 0,
            owned: false,
        }
    }

    /// Calls `f` through the C ABI with one-element arrays (or null ones).
    fn call(f: vaccel_exec_fn, read: Option<vaccel_arg>, write: Option<vaccel_arg>) -> c_int {
        let (nr_read, nr_write) = (usize::from(read.is_some()), usize::from(write.is_some()));
        let (mut read, mut write) = (read, write);
        let read_ptr = read.as_mut().map_or(ptr::null_mut(), ptr::from_mut);
        let write_ptr = write.as_mut().map_or(ptr::null_mut(), ptr::from_mut);
        // SAFETY: each pointer is null or points to one live, initialized `vaccel_arg` (counts
        // match), and the tests build every non-null `buf` from a live slice of `size` bytes.
        unsafe { f(read_ptr, nr_read, write_ptr, nr_write) }
    }

    fn int32_call(f: vaccel_exec_fn, input: i32) -> (c_int, i32) {
        let mut input = input.to_ne_bytes();
        let mut output = [0xAA_u8; 4];
        let rc = call(
            f,
            Some(arg(&mut input, VACCEL_ARG_INT32)),
            Some(arg(&mut output, VACCEL_ARG_INT32)),
        );
        (rc, i32::from_ne_bytes(output))
    }

    #[test]
    fn mytestfunc_doubles_its_input() {
        assert_eq!(int32_call(mytestfunc, 10), (0, 20));
        assert_eq!(int32_call(mytestfunc, -21), (0, -42));
    }

    #[test]
    fn mytestfunc_wraps_on_overflow() {
        assert_eq!(
            int32_call(mytestfunc, i32::MAX),
            (0, i32::MAX.wrapping_mul(2))
        );
    }

    #[test]
    fn mytestfunc_prints_upstream_lines() {
        let mut input = 10_i32.to_ne_bytes();
        let mut output = [0_u8; 4];
        let mut read = arg(&mut input, VACCEL_ARG_INT32);
        let mut write = arg(&mut output, VACCEL_ARG_INT32);
        let mut printed = Vec::new();
        // SAFETY: both pointers point to one live `vaccel_arg` built from live 4-byte buffers.
        let result = unsafe { double_int32(&mut read, 1, &mut write, 1, &mut printed) };
        assert_eq!(result, Ok(()));
        assert_eq!(
            String::from_utf8_lossy(&printed),
            "I got nr_in: 1, nr_out: 1\nI got input: 10\nWill return output: 20\n"
        );
    }

    #[test]
    fn mytestfunc_handles_unaligned_buffers() {
        let mut input = [0_u8; 5];
        input[1..].copy_from_slice(&7_i32.to_ne_bytes());
        let mut output = [0_u8; 5];
        let rc = call(
            mytestfunc,
            Some(arg(&mut input[1..], VACCEL_ARG_INT32)),
            Some(arg(&mut output[1..], VACCEL_ARG_INT32)),
        );
        assert_eq!(rc, 0);
        assert_eq!(output[1..], 14_i32.to_ne_bytes());
    }

    #[test]
    fn mytestfunc_rejects_bad_arguments() {
        let mut ok_in = 10_i32.to_ne_bytes();
        let mut ok_out = [0_u8; 4];
        let mut short = [0_u8; 3];
        // Each case replaces one good argument with a bad one.
        assert_eq!(call(mytestfunc, None, Some(arg(&mut ok_out, 0))), 1);
        assert_eq!(
            call(mytestfunc, Some(null_arg()), Some(arg(&mut ok_out, 0))),
            1
        );
        assert_eq!(
            call(
                mytestfunc,
                Some(arg(&mut short, 0)),
                Some(arg(&mut ok_out, 0))
            ),
            1
        );
        assert_eq!(call(mytestfunc, Some(arg(&mut ok_in, 0)), None), 1);
        assert_eq!(
            call(mytestfunc, Some(arg(&mut ok_in, 0)), Some(null_arg())),
            1
        );
        assert_eq!(
            call(
                mytestfunc,
                Some(arg(&mut ok_in, 0)),
                Some(arg(&mut short, 0))
            ),
            1
        );
        assert_eq!(short, [0; 3], "a too-small output must not be written");
    }

    #[test]
    fn mytestfunc_rejects_zero_counts_with_valid_pointers() {
        let mut input = 10_i32.to_ne_bytes();
        let mut output = [0_u8; 4];
        let mut read = arg(&mut input, VACCEL_ARG_INT32);
        let mut write = arg(&mut output, VACCEL_ARG_INT32);
        // SAFETY: both pointers point to one live `vaccel_arg` (the counts claim fewer).
        let rc = unsafe { mytestfunc(&mut read, 0, &mut write, 1) };
        assert_eq!(rc, 1);
        // SAFETY: as above.
        let rc = unsafe { mytestfunc(&mut read, 1, &mut write, 0) };
        assert_eq!(rc, 1);
        assert_eq!(output, [0; 4]);
    }

    fn nonser_call(input: &[u8], output_len: usize) -> (c_int, Vec<u8>) {
        let mut input = input.to_vec();
        let mut output = vec![0xAA_u8; output_len];
        let rc = call(
            mytestfunc_nonser,
            Some(arg(&mut input, VACCEL_ARG_CUSTOM)),
            Some(arg(&mut output, VACCEL_ARG_CUSTOM)),
        );
        (rc, output)
    }

    #[test]
    fn mytestfunc_nonser_reverses_mydata() {
        let input = serialize_mydata(&[0, 2, 4, 6, 8, 10]);
        let (rc, output) = nonser_call(&input, input.len());
        assert_eq!(rc, 0);
        assert_eq!(output, serialize_mydata(&[10, 8, 6, 4, 2, 0]));
        assert_eq!(deserialize_mydata(&output), Some(vec![10, 8, 6, 4, 2, 0]));
    }

    #[test]
    fn mytestfunc_nonser_leaves_extra_output_bytes_alone() {
        let input = serialize_mydata(&[1, 2]);
        let (rc, output) = nonser_call(&input, input.len() + 3);
        assert_eq!(rc, 0);
        let mut expected = serialize_mydata(&[2, 1]);
        expected.extend_from_slice(&[0xAA; 3]);
        assert_eq!(output, expected);
    }

    #[test]
    fn mytestfunc_nonser_handles_empty_mydata() {
        let input = serialize_mydata(&[]);
        assert_eq!(nonser_call(&input, 4), (0, input));
    }

    #[test]
    fn mytestfunc_nonser_rejects_count_larger_than_buffer() {
        let mut input = serialize_mydata(&[1, 2, 3]);
        input.truncate(input.len() - 1);
        let (rc, output) = nonser_call(&input, 64);
        assert_eq!(rc, 1);
        assert_eq!(
            output,
            vec![0xAA; 64],
            "output must be untouched on failure"
        );

        // A hostile count must be refused before any allocation is attempted.
        let (rc, _) = nonser_call(&u32::MAX.to_ne_bytes(), 64);
        assert_eq!(rc, 1);
    }

    #[test]
    fn mytestfunc_nonser_rejects_bad_arguments() {
        let input = serialize_mydata(&[1, 2, 3]);
        // Output one byte too small.
        assert_eq!(nonser_call(&input, input.len() - 1).0, 1);
        // Input shorter than the count word.
        assert_eq!(nonser_call(&[1, 0], 64).0, 1);
        let mut output = [0_u8; 64];
        let mut input = input;
        assert_eq!(
            call(
                mytestfunc_nonser,
                Some(null_arg()),
                Some(arg(&mut output, 0))
            ),
            1
        );
        assert_eq!(call(mytestfunc_nonser, None, Some(arg(&mut output, 0))), 1);
        assert_eq!(
            call(
                mytestfunc_nonser,
                Some(arg(&mut input, 0)),
                Some(null_arg())
            ),
            1
        );
        assert_eq!(call(mytestfunc_nonser, Some(arg(&mut input, 0)), None), 1);
        assert_eq!(output, [0; 64]);
    }

    #[test]
    fn mytestfunc_nonser_works_in_place() {
        // Upstream callers may pass the same buffer for input and output.
        let mut buf = serialize_mydata(&[5, 6, 7]);
        // Both args share one raw pointer, so neither borrow invalidates the other.
        let shared = arg(&mut buf, VACCEL_ARG_CUSTOM);
        let alias = vaccel_arg { ..shared };
        let rc = call(mytestfunc_nonser, Some(shared), Some(alias));
        assert_eq!(rc, 0);
        assert_eq!(deserialize_mydata(&buf), Some(vec![7, 6, 5]));
    }

    #[test]
    fn mydata_layout_is_count_then_native_endian_words() {
        let mut expected = Vec::new();
        for word in [3_u32, 10, 20, 30] {
            expected.extend_from_slice(&word.to_ne_bytes());
        }
        assert_eq!(serialize_mydata(&[10, 20, 30]), expected);
        assert_eq!(serialize_mydata(&[]), 0_u32.to_ne_bytes());
    }

    #[test]
    fn deserialize_mydata_checks_lengths() {
        assert_eq!(deserialize_mydata(&[]), None);
        assert_eq!(deserialize_mydata(&[0, 0, 0]), None);
        assert_eq!(deserialize_mydata(&0_u32.to_ne_bytes()), Some(vec![]));
        assert_eq!(deserialize_mydata(&u32::MAX.to_ne_bytes()), None);
        let mut bytes = serialize_mydata(&[1, 2]);
        bytes.pop();
        assert_eq!(deserialize_mydata(&bytes), None);
        // Trailing bytes after the announced elements are ignored.
        let mut bytes = serialize_mydata(&[1, 2]);
        bytes.extend_from_slice(&[9, 9, 9, 9, 9]);
        assert_eq!(deserialize_mydata(&bytes), Some(vec![1, 2]));
    }
}
