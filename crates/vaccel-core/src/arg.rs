//! Typed arguments (`struct vaccel_arg`) and argument arrays (`struct vaccel_arg_array`).
//!
//! An [`Arg`] is a byte buffer tagged with an [`ArgType`] (and a custom type id). It either
//! borrows the caller's memory (read-only or writable) or owns its bytes, so building an
//! argument list for an operation copies nothing but scalars. Every constructor validates the
//! bytes against upstream's rules (§1.8): a scalar is exactly the size of its type, an array a
//! non-zero multiple of its element size, bools are 0 or 1, strings are NUL-terminated and
//! buffers non-empty. Violations are [`ArgError`]s (`VACCEL_EINVAL`), never panics.
//!
//! ```
//! use vaccel_core::arg::{Arg, ArgArray};
//! let input = [1.0f32, 2.0, 3.0];
//! let mut args = ArgArray::new();
//! args.add(7i32);
//! args.add_array(&input);
//! args.add_string("hello");
//! assert_eq!(args.get::<i32>().unwrap(), 7);
//! assert_eq!(&*args.get_array::<f32>().unwrap(), &input);
//! assert_eq!(args.get_string().unwrap(), "hello");
//! ```

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use bytemuck::NoUninit;
use bytemuck::checked::CheckedBitPattern;

use crate::error::{ArgError, Error, Result};
use crate::types::ArgType;

/// A Rust type that is the element of one scalar and one array [`ArgType`].
pub trait Scalar: Copy + NoUninit + CheckedBitPattern + fmt::Debug + 'static {
    /// The scalar arg type of `Self`.
    const SCALAR: ArgType;
    /// The array arg type of `Self`.
    const ARRAY: ArgType;
}

macro_rules! scalar {
    ($($t:ty => $s:ident, $a:ident;)+) => {
        $(impl Scalar for $t {
            const SCALAR: ArgType = ArgType::$s;
            const ARRAY: ArgType = ArgType::$a;
        })+
    };
}

scalar! {
    i8 => Int8, Int8Array;
    i16 => Int16, Int16Array;
    i32 => Int32, Int32Array;
    i64 => Int64, Int64Array;
    u8 => Uint8, Uint8Array;
    u16 => Uint16, Uint16Array;
    u32 => Uint32, Uint32Array;
    u64 => Uint64, Uint64Array;
    f32 => Float32, Float32Array;
    f64 => Float64, Float64Array;
    bool => Bool, BoolArray;
}

/// A type that travels as a `CUSTOM` argument in a serialized form (upstream's
/// serializer/deserializer callbacks).
pub trait ArgSerialize: Sized {
    /// The custom type id of the argument.
    const CUSTOM_ID: u32;
    /// The bytes to send.
    fn serialize(&self) -> Vec<u8>;
    /// Rebuilds the value, or `None` if the bytes are not a valid encoding.
    fn deserialize(bytes: &[u8]) -> Option<Self>;
}

enum Buf<'a> {
    Ref(&'a [u8]),
    Mut(&'a mut [u8]),
    Owned(Vec<u8>),
}

/// One argument: bytes, their [`ArgType`] and a custom type id.
pub struct Arg<'a> {
    ty: ArgType,
    custom_id: u32,
    buf: Buf<'a>,
}

impl fmt::Debug for Arg<'_> {
    // Payload bytes are never printed (rule G2): only their size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arg")
            .field("type", &self.ty)
            .field("custom_id", &self.custom_id)
            .field("size", &self.len())
            .field("writable", &self.is_writable())
            .finish()
    }
}

/// Checks `bytes` against the rules for `ty` (§1.8). `content` also checks values (bools,
/// string terminator), which output buffers skip: they are filled in later.
fn validate(ty: ArgType, bytes: &[u8], content: bool) -> Result<(), ArgError> {
    let size = bytes.len();
    match ty {
        ArgType::Raw | ArgType::Custom => Ok(()),
        ArgType::Buffer => {
            if size == 0 {
                Err(ArgError::EmptyBuffer)
            } else {
                Ok(())
            }
        }
        ArgType::String => {
            if size == 0 || (content && bytes.last() != Some(&0)) {
                Err(ArgError::NotNulTerminated)
            } else {
                Ok(())
            }
        }
        _ => {
            let elem = ty.elem_size().unwrap_or(1);
            if ty.is_array() {
                if size == 0 || !size.is_multiple_of(elem) {
                    return Err(ArgError::BadArraySize { elem, size });
                }
            } else if size != elem {
                return Err(ArgError::WrongSize {
                    expected: elem,
                    found: size,
                });
            }
            if content
                && matches!(ty, ArgType::Bool | ArgType::BoolArray)
                && let Some(&b) = bytes.iter().find(|&&b| b > 1)
            {
                return Err(ArgError::BadBool(b));
            }
            Ok(())
        }
    }
}

fn expect_type(found: ArgType, expected: ArgType) -> Result<(), ArgError> {
    if found == expected {
        Ok(())
    } else {
        Err(ArgError::WrongType { expected, found })
    }
}

impl<'a> Arg<'a> {
    /// A read-only argument over borrowed bytes, validated for `ty`.
    pub fn new(ty: ArgType, bytes: &'a [u8]) -> Result<Self, ArgError> {
        validate(ty, bytes, true)?;
        Ok(Arg {
            ty,
            custom_id: 0,
            buf: Buf::Ref(bytes),
        })
    }

    /// A writable (output) argument over borrowed bytes; only the size rules of `ty` apply.
    pub fn new_mut(ty: ArgType, bytes: &'a mut [u8]) -> Result<Self, ArgError> {
        validate(ty, bytes, false)?;
        Ok(Arg {
            ty,
            custom_id: 0,
            buf: Buf::Mut(bytes),
        })
    }

    /// An argument owning `bytes`, validated for `ty`. Owned arguments are writable.
    pub fn owned(ty: ArgType, bytes: Vec<u8>) -> Result<Arg<'static>, ArgError> {
        validate(ty, &bytes, true)?;
        Ok(Arg {
            ty,
            custom_id: 0,
            buf: Buf::Owned(bytes),
        })
    }

    /// An owned, zero-filled output argument of `size` bytes.
    pub fn zeroed(ty: ArgType, size: usize) -> Result<Arg<'static>, ArgError> {
        let bytes = vec![0u8; size];
        validate(ty, &bytes, false)?;
        Ok(Arg {
            ty,
            custom_id: 0,
            buf: Buf::Owned(bytes),
        })
    }

    /// Rebuilds an argument from wire or C fields: numeric type, custom id and bytes.
    /// Unknown type numbers are rejected.
    pub fn from_parts(ty: u32, custom_id: u32, bytes: &'a [u8]) -> Result<Self, ArgError> {
        let ty = ArgType::from_value(ty).ok_or(ArgError::UnknownType(ty))?;
        Ok(Arg::new(ty, bytes)?.with_custom_id(custom_id))
    }

    /// Like [`Arg::from_parts`] for a writable argument (size rules only).
    pub fn from_parts_mut(ty: u32, custom_id: u32, bytes: &'a mut [u8]) -> Result<Self, ArgError> {
        let ty = ArgType::from_value(ty).ok_or(ArgError::UnknownType(ty))?;
        Ok(Arg::new_mut(ty, bytes)?.with_custom_id(custom_id))
    }

    /// Untyped bytes (`RAW`, unchecked).
    pub fn raw(bytes: &'a [u8]) -> Self {
        Arg {
            ty: ArgType::Raw,
            custom_id: 0,
            buf: Buf::Ref(bytes),
        }
    }

    /// Writable untyped bytes (`RAW`).
    pub fn raw_mut(bytes: &'a mut [u8]) -> Self {
        Arg {
            ty: ArgType::Raw,
            custom_id: 0,
            buf: Buf::Mut(bytes),
        }
    }

    /// A scalar, copied (`INT32` for `i32`, `FLOAT64` for `f64`, `BOOL` for `bool`...).
    pub fn scalar<T: Scalar>(value: T) -> Arg<'static> {
        Arg {
            ty: T::SCALAR,
            custom_id: 0,
            buf: Buf::Owned(bytemuck::bytes_of(&value).to_vec()),
        }
    }

    /// An array borrowed without copying. Empty slices are refused (upstream rule).
    pub fn array<T: Scalar>(values: &'a [T]) -> Result<Self, ArgError> {
        Arg::new(T::ARRAY, bytemuck::cast_slice(values))
    }

    /// A writable scalar output over caller memory.
    pub fn out_scalar<T: Scalar + bytemuck::Pod>(value: &'a mut T) -> Self {
        Arg {
            ty: T::SCALAR,
            custom_id: 0,
            buf: Buf::Mut(bytemuck::bytes_of_mut(value)),
        }
    }

    /// A writable array output over caller memory.
    pub fn out_array<T: Scalar + bytemuck::Pod>(values: &'a mut [T]) -> Result<Self, ArgError> {
        Arg::new_mut(T::ARRAY, bytemuck::cast_slice_mut(values))
    }

    /// A `STRING` argument: the text plus a NUL terminator (copied). Interior NULs are refused.
    pub fn string(text: &str) -> Result<Arg<'static>, ArgError> {
        if text.as_bytes().contains(&0) {
            return Err(ArgError::NotNulTerminated);
        }
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
        Ok(Arg {
            ty: ArgType::String,
            custom_id: 0,
            buf: Buf::Owned(bytes),
        })
    }

    /// A `STRING` argument over borrowed NUL-terminated bytes.
    pub fn cstr(text: &'a std::ffi::CStr) -> Self {
        Arg {
            ty: ArgType::String,
            custom_id: 0,
            buf: Buf::Ref(text.to_bytes_with_nul()),
        }
    }

    /// A non-empty `BUFFER` borrowed without copying.
    pub fn buffer(bytes: &'a [u8]) -> Result<Self, ArgError> {
        Arg::new(ArgType::Buffer, bytes)
    }

    /// A `CUSTOM` argument with its type id.
    pub fn custom(custom_id: u32, bytes: &'a [u8]) -> Self {
        Arg {
            ty: ArgType::Custom,
            custom_id,
            buf: Buf::Ref(bytes),
        }
    }

    /// A `CUSTOM` argument holding `value` serialized.
    pub fn serialized<S: ArgSerialize>(value: &S) -> Arg<'static> {
        Arg {
            ty: ArgType::Custom,
            custom_id: S::CUSTOM_ID,
            buf: Buf::Owned(value.serialize()),
        }
    }

    /// Sets the custom type id.
    pub fn with_custom_id(mut self, custom_id: u32) -> Self {
        self.custom_id = custom_id;
        self
    }

    /// The argument type.
    pub fn ty(&self) -> ArgType {
        self.ty
    }

    /// The custom type id (0 unless `CUSTOM`).
    pub fn custom_id(&self) -> u32 {
        self.custom_id
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.buf {
            Buf::Ref(b) => b,
            Buf::Mut(b) => b,
            Buf::Owned(b) => b,
        }
    }

    /// The bytes for writing; read-only arguments refuse.
    pub fn bytes_mut(&mut self) -> Result<&mut [u8], ArgError> {
        match &mut self.buf {
            Buf::Ref(_) => Err(ArgError::ReadOnly),
            Buf::Mut(b) => Ok(b),
            Buf::Owned(b) => Ok(b),
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Whether the argument holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`Arg::bytes_mut`] succeeds.
    pub fn is_writable(&self) -> bool {
        !matches!(self.buf, Buf::Ref(_))
    }

    /// A copy that owns its bytes.
    pub fn to_owned_arg(&self) -> Arg<'static> {
        Arg {
            ty: self.ty,
            custom_id: self.custom_id,
            buf: Buf::Owned(self.bytes().to_vec()),
        }
    }

    /// Takes the bytes out (copying when borrowed).
    pub fn into_bytes(self) -> Vec<u8> {
        match self.buf {
            Buf::Owned(b) => b,
            Buf::Ref(b) => b.to_vec(),
            Buf::Mut(b) => b.to_vec(),
        }
    }

    /// Reads a scalar of type `T`; the type and exact size must match.
    pub fn get<T: Scalar>(&self) -> Result<T, ArgError> {
        expect_type(self.ty, T::SCALAR)?;
        read_scalar(self.bytes())
    }

    /// Reads a scalar of size `T` from an argument of any type (upstream's untyped layouts:
    /// minmax, fpga).
    pub fn get_untyped<T: Scalar>(&self) -> Result<T, ArgError> {
        read_scalar(self.bytes())
    }

    /// Reads an array of `T`: borrowed when the bytes are aligned, copied otherwise.
    pub fn get_array<T: Scalar>(&self) -> Result<Cow<'_, [T]>, ArgError> {
        expect_type(self.ty, T::ARRAY)?;
        read_array(self.bytes())
    }

    /// Reads the bytes as an array of `T` whatever the argument's type; trailing bytes that do
    /// not fill an element are ignored.
    pub fn get_untyped_array<T: Scalar>(&self) -> Result<Cow<'_, [T]>, ArgError> {
        let bytes = self.bytes();
        let elem = std::mem::size_of::<T>();
        read_array(
            bytes
                .get(..bytes.len() - bytes.len() % elem)
                .unwrap_or_default(),
        )
    }

    /// Reads a `STRING` as text (without its NUL).
    pub fn get_str(&self) -> Result<&str, ArgError> {
        expect_type(self.ty, ArgType::String)?;
        let bytes = self.bytes();
        let text = match bytes.split_last() {
            Some((0, text)) => text,
            _ => return Err(ArgError::NotNulTerminated),
        };
        if text.contains(&0) {
            return Err(ArgError::NotNulTerminated);
        }
        std::str::from_utf8(text).map_err(|_| ArgError::InvalidUtf8)
    }

    /// Reads a `BUFFER`.
    pub fn get_buffer(&self) -> Result<&[u8], ArgError> {
        expect_type(self.ty, ArgType::Buffer)?;
        Ok(self.bytes())
    }

    /// Reads a `CUSTOM` argument with the expected id, checked by `validator`.
    pub fn get_custom(
        &self,
        expected_id: u32,
        validator: impl FnOnce(&[u8], u32) -> bool,
    ) -> Result<&[u8], ArgError> {
        expect_type(self.ty, ArgType::Custom)?;
        if self.custom_id != expected_id {
            return Err(ArgError::WrongCustomId {
                expected: expected_id,
                found: self.custom_id,
            });
        }
        if !validator(self.bytes(), self.custom_id) {
            return Err(ArgError::CustomRejected);
        }
        Ok(self.bytes())
    }

    /// Deserializes a `CUSTOM` argument of `S`.
    pub fn get_serialized<S: ArgSerialize>(&self) -> Result<S, ArgError> {
        let bytes = self.get_custom(S::CUSTOM_ID, |_, _| true)?;
        S::deserialize(bytes).ok_or(ArgError::CustomRejected)
    }

    /// Overwrites a scalar output of type `T`.
    pub fn set<T: Scalar>(&mut self, value: T) -> Result<(), ArgError> {
        expect_type(self.ty, T::SCALAR)?;
        self.write_prefix(bytemuck::bytes_of(&value), true)
    }

    /// Writes a scalar of size `T` into an argument of any type (untyped layouts).
    pub fn set_untyped<T: Scalar>(&mut self, value: T) -> Result<(), ArgError> {
        self.write_prefix(bytemuck::bytes_of(&value), false)
    }

    /// Writes `values` at the start of an array output (it must hold at least that many).
    pub fn set_array<T: Scalar>(&mut self, values: &[T]) -> Result<(), ArgError> {
        expect_type(self.ty, T::ARRAY)?;
        self.write_prefix(bytemuck::cast_slice(values), false)
    }

    /// Writes a NUL-terminated string into a `STRING` output (it must have room for the NUL).
    pub fn set_str(&mut self, text: &str) -> Result<(), ArgError> {
        expect_type(self.ty, ArgType::String)?;
        let bytes = self.bytes_mut()?;
        let needed = text.len() + 1;
        let capacity = bytes.len();
        let dst = bytes
            .get_mut(..needed)
            .ok_or(ArgError::TooSmall { needed, capacity })?;
        let (last, head) = dst.split_last_mut().ok_or(ArgError::NotNulTerminated)?;
        head.copy_from_slice(text.as_bytes());
        *last = 0;
        Ok(())
    }

    /// Writes bytes at the start of a writable argument of any type (it must be large enough).
    pub fn set_bytes(&mut self, data: &[u8]) -> Result<(), ArgError> {
        self.write_prefix(data, false)
    }

    /// Writes `text` as a C string truncated to fit (like `snprintf`): always NUL-terminated
    /// when the output holds at least one byte. Returns the bytes written, NUL excluded.
    pub fn write_c_string(&mut self, text: &str) -> Result<usize, ArgError> {
        let out = self.bytes_mut()?;
        Ok(write_c_string(out, text))
    }

    fn write_prefix(&mut self, data: &[u8], exact: bool) -> Result<(), ArgError> {
        let out = self.bytes_mut()?;
        if exact && out.len() != data.len() {
            return Err(ArgError::WrongSize {
                expected: data.len(),
                found: out.len(),
            });
        }
        let capacity = out.len();
        out.get_mut(..data.len())
            .ok_or(ArgError::TooSmall {
                needed: data.len(),
                capacity,
            })?
            .copy_from_slice(data);
        Ok(())
    }
}

/// Copies `text` into `out` as a NUL-terminated C string, truncating like `snprintf` but at a
/// character boundary (a cut never leaves half a UTF-8 sequence). Returns the number of text
/// bytes written; an empty `out` is left alone.
pub fn write_c_string(out: &mut [u8], text: &str) -> usize {
    let Some(room) = out.len().checked_sub(1) else {
        return 0;
    };
    let mut n = text.len().min(room);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    if let (Some(dst), Some(src)) = (out.get_mut(..n), text.as_bytes().get(..n)) {
        dst.copy_from_slice(src);
    }
    if let Some(nul) = out.get_mut(n) {
        *nul = 0;
    }
    n
}

/// Reads a C string out of a NUL-padded buffer (up to the first NUL), lossily as UTF-8.
pub fn read_c_string(bytes: &[u8]) -> Cow<'_, str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default())
}

fn read_scalar<T: Scalar>(bytes: &[u8]) -> Result<T, ArgError> {
    let size = std::mem::size_of::<T>();
    if bytes.len() != size {
        return Err(ArgError::WrongSize {
            expected: size,
            found: bytes.len(),
        });
    }
    bytemuck::checked::try_pod_read_unaligned(bytes).map_err(|_| bad_value(bytes))
}

fn read_array<T: Scalar>(bytes: &[u8]) -> Result<Cow<'_, [T]>, ArgError> {
    let elem = std::mem::size_of::<T>();
    if bytes.is_empty() || !bytes.len().is_multiple_of(elem) {
        return Err(ArgError::BadArraySize {
            elem,
            size: bytes.len(),
        });
    }
    match bytemuck::checked::try_cast_slice(bytes) {
        Ok(slice) => Ok(Cow::Borrowed(slice)),
        Err(bytemuck::checked::CheckedCastError::PodCastError(_)) => bytes
            .chunks_exact(elem)
            .map(|c| bytemuck::checked::try_pod_read_unaligned(c).map_err(|_| bad_value(c)))
            .collect::<Result<Vec<T>, _>>()
            .map(Cow::Owned),
        Err(bytemuck::checked::CheckedCastError::InvalidBitPattern) => Err(bad_value(bytes)),
    }
}

// Only bool has invalid bit patterns among the scalar types.
fn bad_value(bytes: &[u8]) -> ArgError {
    ArgError::BadBool(bytes.iter().copied().find(|&b| b > 1).unwrap_or(0))
}

/// An argument list with a cursor (`struct vaccel_arg_array`).
///
/// `add*` appends, `get*` reads the argument at the cursor and advances it on success, `set*`
/// overwrites the argument at the cursor (type-checked) and advances. The cursor is a `Cell` so
/// getters can hand out references into the array while it keeps moving.
#[derive(Debug, Default)]
pub struct ArgArray<'a> {
    args: Vec<Arg<'a>>,
    position: Cell<usize>,
    fixed_capacity: Option<usize>,
}

impl<'a> ArgArray<'a> {
    /// An empty, growable array.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty growable array with room for `capacity` arguments (0 → upstream's default 8).
    pub fn with_capacity(capacity: usize) -> Self {
        ArgArray {
            args: Vec::with_capacity(if capacity == 0 { 8 } else { capacity }),
            position: Cell::new(0),
            fixed_capacity: None,
        }
    }

    /// An array that cannot grow beyond `capacity` (upstream's `_wrap`): adds past it fail
    /// with `ERANGE`.
    pub fn fixed(capacity: usize) -> Self {
        ArgArray {
            args: Vec::with_capacity(capacity),
            position: Cell::new(0),
            fixed_capacity: Some(capacity),
        }
    }

    /// Wraps existing arguments.
    pub fn from_args(args: Vec<Arg<'a>>) -> Self {
        ArgArray {
            args,
            position: Cell::new(0),
            fixed_capacity: None,
        }
    }

    /// Appends an argument.
    pub fn push(&mut self, arg: Arg<'a>) -> Result<()> {
        if let Some(capacity) = self.fixed_capacity
            && self.args.len() >= capacity
        {
            return Err(Error::ArrayFull { capacity });
        }
        self.args.push(arg);
        Ok(())
    }

    fn push_checked(&mut self, arg: Result<Arg<'a>, ArgError>) -> Result<()> {
        let index = self.args.len();
        self.push(arg.map_err(|e| Error::arg(index, e))?)
    }

    /// Appends a scalar (copied).
    pub fn add<T: Scalar>(&mut self, value: T) -> Result<()> {
        self.push(Arg::scalar(value))
    }

    /// Appends a borrowed array.
    pub fn add_array<T: Scalar>(&mut self, values: &'a [T]) -> Result<()> {
        self.push_checked(Arg::array(values))
    }

    /// Appends a string.
    pub fn add_string(&mut self, text: &str) -> Result<()> {
        self.push_checked(Arg::string(text))
    }

    /// Appends a borrowed buffer.
    pub fn add_buffer(&mut self, bytes: &'a [u8]) -> Result<()> {
        self.push_checked(Arg::buffer(bytes))
    }

    /// Appends raw bytes (no validation).
    pub fn add_raw(&mut self, bytes: &'a [u8]) -> Result<()> {
        self.push(Arg::raw(bytes))
    }

    /// Appends a custom argument after `validator` accepts it.
    pub fn add_custom(
        &mut self,
        custom_id: u32,
        bytes: &'a [u8],
        validator: impl FnOnce(&[u8], u32) -> bool,
    ) -> Result<()> {
        if !validator(bytes, custom_id) {
            return Err(Error::arg(self.args.len(), ArgError::CustomRejected));
        }
        self.push(Arg::custom(custom_id, bytes))
    }

    /// Appends a value serialized as a custom argument.
    pub fn add_serialized<S: ArgSerialize>(&mut self, value: &S) -> Result<()> {
        self.push(Arg::serialized(value))
    }

    /// Appends `count` arguments of `src` from `start`, copying their bytes when `copy`
    /// (otherwise the new arguments borrow from `src`).
    pub fn add_range<'s: 'a>(
        &mut self,
        src: &'s ArgArray<'_>,
        start: usize,
        count: usize,
        copy: bool,
    ) -> Result<()> {
        let end = start.checked_add(count).ok_or(Error::OutOfRange {
            position: start,
            count: src.len(),
        })?;
        let slice = src.args.get(start..end).ok_or(Error::OutOfRange {
            position: end,
            count: src.len(),
        })?;
        for arg in slice {
            let new = if copy {
                arg.to_owned_arg()
            } else {
                Arg {
                    ty: arg.ty,
                    custom_id: arg.custom_id,
                    buf: Buf::Ref(arg.bytes()),
                }
            };
            self.push(new)?;
        }
        Ok(())
    }

    /// Appends the arguments of `src` from its cursor on.
    pub fn add_remaining<'s: 'a>(&mut self, src: &'s ArgArray<'_>, copy: bool) -> Result<()> {
        let start = src.position();
        self.add_range(src, start, src.len() - start, copy)
    }

    /// Appends every argument of `src`.
    pub fn add_all<'s: 'a>(&mut self, src: &'s ArgArray<'_>, copy: bool) -> Result<()> {
        self.add_range(src, 0, src.len(), copy)
    }

    fn current(&self) -> Result<(usize, &Arg<'a>)> {
        let position = self.position.get();
        self.args
            .get(position)
            .map(|a| (position, a))
            .ok_or(Error::OutOfRange {
                position,
                count: self.args.len(),
            })
    }

    fn advance<T>(&self, index: usize, value: Result<T, ArgError>) -> Result<T> {
        let value = value.map_err(|e| Error::arg(index, e))?;
        self.position.set(index + 1);
        Ok(value)
    }

    /// Reads a scalar at the cursor.
    pub fn get<T: Scalar>(&self) -> Result<T> {
        let (i, arg) = self.current()?;
        self.advance(i, arg.get())
    }

    /// Reads an array at the cursor.
    pub fn get_array<T: Scalar>(&self) -> Result<Cow<'_, [T]>> {
        let (i, arg) = self.current()?;
        self.advance(i, arg.get_array())
    }

    /// Reads a string at the cursor.
    pub fn get_string(&self) -> Result<&str> {
        let (i, arg) = self.current()?;
        self.advance(i, arg.get_str())
    }

    /// Reads a buffer at the cursor.
    pub fn get_buffer(&self) -> Result<&[u8]> {
        let (i, arg) = self.current()?;
        self.advance(i, arg.get_buffer())
    }

    /// Reads a `RAW` argument at the cursor.
    pub fn get_raw(&self) -> Result<&[u8]> {
        let (i, arg) = self.current()?;
        let value = expect_type(arg.ty, ArgType::Raw).map(|()| arg.bytes());
        self.advance(i, value)
    }

    /// Reads a custom argument at the cursor.
    pub fn get_custom(
        &self,
        expected_id: u32,
        validator: impl FnOnce(&[u8], u32) -> bool,
    ) -> Result<&[u8]> {
        let (i, arg) = self.current()?;
        self.advance(i, arg.get_custom(expected_id, validator))
    }

    /// Deserializes a custom argument at the cursor.
    pub fn get_serialized<S: ArgSerialize>(&self) -> Result<S> {
        let (i, arg) = self.current()?;
        self.advance(i, arg.get_serialized())
    }

    fn set_with(&mut self, f: impl FnOnce(&mut Arg<'a>) -> Result<(), ArgError>) -> Result<()> {
        let position = self.position.get();
        let count = self.args.len();
        let arg = self
            .args
            .get_mut(position)
            .ok_or(Error::OutOfRange { position, count })?;
        f(arg).map_err(|e| Error::arg(position, e))?;
        self.position.set(position + 1);
        Ok(())
    }

    /// Overwrites the scalar at the cursor.
    pub fn set<T: Scalar>(&mut self, value: T) -> Result<()> {
        self.set_with(|a| a.set(value))
    }

    /// Overwrites the array at the cursor (its size must hold `values`).
    pub fn set_array<T: Scalar>(&mut self, values: &[T]) -> Result<()> {
        self.set_with(|a| a.set_array(values))
    }

    /// Overwrites the string at the cursor (its size must hold the text and a NUL).
    pub fn set_string(&mut self, text: &str) -> Result<()> {
        self.set_with(|a| a.set_str(text))
    }

    /// Overwrites the buffer at the cursor (its size must hold `data`).
    pub fn set_buffer(&mut self, data: &[u8]) -> Result<()> {
        self.set_with(|a| {
            expect_type(a.ty, ArgType::Buffer)?;
            a.set_bytes(data)
        })
    }

    /// Overwrites the `RAW` argument at the cursor (its size must hold `data`).
    pub fn set_raw(&mut self, data: &[u8]) -> Result<()> {
        self.set_with(|a| {
            expect_type(a.ty, ArgType::Raw)?;
            a.set_bytes(data)
        })
    }

    /// Overwrites the custom argument at the cursor; the size must match exactly.
    pub fn set_custom(&mut self, custom_id: u32, data: &[u8]) -> Result<()> {
        self.set_with(|a| {
            expect_type(a.ty, ArgType::Custom)?;
            if a.custom_id != custom_id {
                return Err(ArgError::WrongCustomId {
                    expected: custom_id,
                    found: a.custom_id,
                });
            }
            a.write_prefix(data, true)
        })
    }

    /// Serializes `value` into the custom argument at the cursor (same size required).
    pub fn set_serialized<S: ArgSerialize>(&mut self, value: &S) -> Result<()> {
        let data = value.serialize();
        self.set_custom(S::CUSTOM_ID, &data)
    }

    /// The arguments from the cursor on (the cursor does not move).
    pub fn remaining(&self) -> &[Arg<'a>] {
        self.args.get(self.position.get()..).unwrap_or_default()
    }

    /// How many arguments remain after the cursor.
    pub fn remaining_count(&self) -> usize {
        self.args.len().saturating_sub(self.position.get())
    }

    /// The cursor.
    pub fn position(&self) -> usize {
        self.position.get()
    }

    /// Moves the cursor (clamped to the count).
    pub fn set_position(&self, position: usize) {
        self.position.set(position.min(self.args.len()));
    }

    /// Moves the cursor to the start.
    pub fn reset_position(&self) {
        self.position.set(0);
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Removes every argument and resets the cursor, keeping the storage.
    pub fn clear(&mut self) {
        self.args.clear();
        self.position.set(0);
    }

    /// The arguments.
    pub fn as_slice(&self) -> &[Arg<'a>] {
        &self.args
    }

    /// The arguments, writable.
    pub fn as_mut_slice(&mut self) -> &mut [Arg<'a>] {
        &mut self.args
    }

    /// The arguments, by value.
    pub fn into_vec(self) -> Vec<Arg<'a>> {
        self.args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn scalar_rules() {
        assert!(Arg::new(ArgType::Int32, &[0; 4]).is_ok());
        assert_eq!(
            Arg::new(ArgType::Int32, &[0; 3]).unwrap_err(),
            ArgError::WrongSize {
                expected: 4,
                found: 3
            }
        );
        assert!(Arg::new(ArgType::Float64, &[0; 8]).is_ok());
        assert!(Arg::new(ArgType::Int8, &[]).is_err());
        assert_eq!(
            Arg::new(ArgType::Bool, &[2]).unwrap_err(),
            ArgError::BadBool(2)
        );
        assert!(Arg::new(ArgType::Bool, &[1]).is_ok());
    }

    #[test]
    fn array_rules() {
        assert!(Arg::new(ArgType::Int16Array, &[0; 6]).is_ok());
        assert_eq!(
            Arg::new(ArgType::Int16Array, &[0; 5]).unwrap_err(),
            ArgError::BadArraySize { elem: 2, size: 5 }
        );
        assert!(Arg::new(ArgType::Float32Array, &[]).is_err());
        assert_eq!(
            Arg::new(ArgType::BoolArray, &[0, 1, 7]).unwrap_err(),
            ArgError::BadBool(7)
        );
        assert!(Arg::array::<f32>(&[]).is_err());
    }

    #[test]
    fn string_buffer_raw_custom_rules() {
        assert!(Arg::new(ArgType::String, b"hi\0").is_ok());
        assert!(Arg::new(ArgType::String, b"hi").is_err());
        assert!(Arg::new(ArgType::String, b"").is_err());
        assert!(Arg::new(ArgType::Buffer, b"").is_err());
        assert!(Arg::new(ArgType::Raw, b"").is_ok());
        assert!(Arg::new(ArgType::Custom, b"").is_ok());
        assert!(Arg::string("a\0b").is_err());
        assert_eq!(Arg::string("abc").unwrap().get_str().unwrap(), "abc");
        assert_eq!(
            Arg::from_parts(99, 0, b"x").unwrap_err(),
            ArgError::UnknownType(99)
        );
    }

    #[test]
    fn output_buffers_skip_content_rules() {
        let mut s = [7u8; 8];
        let mut arg = Arg::new_mut(ArgType::String, &mut s).unwrap();
        arg.set_str("abc").unwrap();
        assert_eq!(arg.get_str().unwrap_err(), ArgError::NotNulTerminated);
        assert_eq!(read_c_string(arg.bytes()), "abc");
        assert_eq!(
            arg.set_str("too long!").unwrap_err(),
            ArgError::TooSmall {
                needed: 10,
                capacity: 8
            }
        );
    }

    #[test]
    fn typed_get_checks_type_and_size() {
        let a = Arg::scalar(10i32);
        assert_eq!(a.get::<i32>().unwrap(), 10);
        assert!(matches!(a.get::<u32>(), Err(ArgError::WrongType { .. })));
        assert!(matches!(a.get::<i64>(), Err(ArgError::WrongType { .. })));
        assert_eq!(a.get_untyped::<u32>().unwrap(), 10);
        let b = Arg::scalar(true);
        assert!(b.get::<bool>().unwrap());
    }

    #[test]
    fn unaligned_arrays_are_copied() {
        let storage = [0u8, 1, 0, 0, 0, 2, 0, 0, 0];
        let arg = Arg::new(ArgType::Int32Array, &storage[1..]).unwrap();
        let values = arg.get_array::<i32>().unwrap();
        assert_eq!(&*values, &[1, 2]);
    }

    #[test]
    fn outputs_write_through_to_caller_memory() {
        let mut out = 0i32;
        let mut arr = [0f32; 3];
        {
            let mut a = Arg::out_scalar(&mut out);
            a.set(42i32).unwrap();
            let mut b = Arg::out_array(&mut arr).unwrap();
            b.set_array(&[1.0f32, 2.0]).unwrap();
            assert!(b.set_array(&[0f32; 4]).is_err());
        }
        assert_eq!(out, 42);
        assert_eq!(arr, [1.0, 2.0, 0.0]);
        let ro = [0u8; 4];
        let mut r = Arg::new(ArgType::Int32, &ro).unwrap();
        assert_eq!(r.set(1i32).unwrap_err(), ArgError::ReadOnly);
    }

    #[test]
    fn c_strings_truncate_like_snprintf() {
        let mut out = [0xffu8; 5];
        assert_eq!(write_c_string(&mut out, "abcdefg"), 4);
        assert_eq!(&out, b"abcd\0");
        assert_eq!(write_c_string(&mut [], "x"), 0);
        let mut out = [0xffu8; 4];
        assert_eq!(
            write_c_string(&mut out, "é€"),
            2,
            "3 bytes of room: only \"é\" fits"
        );
        assert_eq!(&out[..3], "é\0".as_bytes());
        assert_eq!(read_c_string(b"ab\0cd"), "ab");
        assert_eq!(read_c_string(b"ab"), "ab");
    }

    struct MyData(Vec<u32>);
    impl ArgSerialize for MyData {
        const CUSTOM_ID: u32 = 100;
        fn serialize(&self) -> Vec<u8> {
            let mut v = vec![self.0.len() as u32];
            v.extend(&self.0);
            bytemuck::cast_slice(&v).to_vec()
        }
        fn deserialize(bytes: &[u8]) -> Option<Self> {
            let words: Vec<u32> = bytes
                .chunks_exact(4)
                .map(|c| u32::from_ne_bytes(c.try_into().unwrap()))
                .collect();
            let (count, rest) = words.split_first()?;
            (rest.len() == *count as usize).then(|| MyData(rest.to_vec()))
        }
    }

    #[test]
    fn array_cursor_get_and_set() {
        let mut floats = [1.5f64, 2.5];
        let mut buf = *b"buf";
        let mut a = ArgArray::with_capacity(0);
        a.add(1u8).unwrap();
        a.push(Arg::out_array(&mut floats).unwrap()).unwrap();
        a.add_string("s").unwrap();
        a.push(Arg::new_mut(ArgType::Buffer, &mut buf).unwrap())
            .unwrap();
        a.push(Arg::raw_mut(&mut [])).unwrap();
        a.add_serialized(&MyData(vec![1, 2])).unwrap();
        a.add_custom(5, b"ok", |b, id| id == 5 && b == b"ok")
            .unwrap();
        assert!(a.add_custom(5, b"no", |_, _| false).is_err());
        assert_eq!(a.len(), 7);

        assert_eq!(a.get::<u8>().unwrap(), 1);
        // A wrong type leaves the cursor in place.
        assert_eq!(a.get::<f64>().unwrap_err().code(), ErrorCode::EINVAL);
        assert_eq!(a.position(), 1);
        assert_eq!(&*a.get_array::<f64>().unwrap(), &[1.5, 2.5]);
        assert_eq!(a.remaining_count(), 5);
        assert_eq!(a.get_string().unwrap(), "s");
        assert_eq!(a.get_buffer().unwrap(), b"buf");
        assert_eq!(a.get_raw().unwrap(), b"");
        assert_eq!(a.get_serialized::<MyData>().unwrap().0, vec![1, 2]);
        assert_eq!(a.get_custom(5, |_, _| true).unwrap(), b"ok");
        assert_eq!(a.get::<u8>().unwrap_err().code(), ErrorCode::ERANGE);

        a.set_position(100);
        assert_eq!(a.position(), 7);
        a.reset_position();
        a.set(9u8).unwrap();
        assert!(a.set_array(&[0f64; 3]).is_err());
        a.set_array(&[3.0f64]).unwrap();
        a.set_string("t").unwrap();
        a.set_buffer(b"BU").unwrap();
        a.set_raw(b"").unwrap();
        a.set_serialized(&MyData(vec![7, 8])).unwrap();
        assert!(a.set_custom(5, b"too long").is_err());
        a.reset_position();
        assert_eq!(a.get::<u8>().unwrap(), 9);
        assert_eq!(&*a.get_array::<f64>().unwrap(), &[3.0, 2.5]);
        // Arguments added as read-only borrows cannot be overwritten.
        let ro = [1.0f32];
        let mut b = ArgArray::new();
        b.add_array(&ro).unwrap();
        assert!(matches!(
            b.set_array(&[2.0f32]),
            Err(Error::Arg {
                source: ArgError::ReadOnly,
                ..
            })
        ));
    }

    #[test]
    fn ranges_copy_or_borrow() {
        let mut src = ArgArray::new();
        src.add(1i32).unwrap();
        src.add(2i32).unwrap();
        src.add(3i32).unwrap();
        src.set_position(1);
        let mut dst = ArgArray::new();
        dst.add_remaining(&src, false).unwrap();
        dst.add_all(&src, true).unwrap();
        dst.add_range(&src, 0, 1, true).unwrap();
        assert!(dst.add_range(&src, 2, 5, true).is_err());
        let values: Vec<i32> = dst.as_slice().iter().map(|a| a.get().unwrap()).collect();
        assert_eq!(values, vec![2, 3, 1, 2, 3, 1]);
        assert!(!dst.as_slice()[0].is_writable());
        assert!(dst.as_slice()[2].is_writable());
    }

    #[test]
    fn fixed_arrays_do_not_grow() {
        let mut a = ArgArray::fixed(1);
        a.add(1i8).unwrap();
        assert_eq!(a.add(2i8).unwrap_err().code(), ErrorCode::ERANGE);
        a.clear();
        assert!(a.is_empty());
        a.add(3i8).unwrap();
    }
}
