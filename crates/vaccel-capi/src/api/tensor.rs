//! The TensorFlow, TensorFlow Lite and Torch helper types (`vaccel/ops/tf.h`,
//! `vaccel/ops/tflite.h`, `vaccel/ops/torch.h`): buffers, nodes, tensors and statuses, and
//! their conversions to and from the runtime's tensors.
//!
//! Every allocation here uses the C allocator: tensors made by the library are freed by
//! applications with `*_delete()`, and tensors made by plugins (with the same functions) are
//! freed by the library.
//!
//! # Safety
//!
//! Pointer arguments of the exported functions are null or valid for the struct they point
//! at; arrays hold the number of elements their count says; data pointers handed to
//! `*_init`/`*_set_data` stay valid while the struct uses them.

use std::borrow::Cow;
use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use vaccel_abi::{
    vaccel_tf_buffer, vaccel_tf_node, vaccel_tf_status, vaccel_tf_tensor, vaccel_tflite_tensor,
    vaccel_torch_buffer, vaccel_torch_tensor,
};
use vaccel_core::tensor::{DataType, Tensor, TfStatus};
use vaccel_core::{TfDataType, TfLiteDataType, TorchDataType};

use crate::cmem;
use crate::ffi::{self, Res, guard, invalid};

/// The common shape of the three C tensor structs.
pub(crate) trait CTensor: Sized {
    /// Element type of the `dims` array.
    type Dim: Copy + Into<i64> + TryFrom<i64>;
    /// The runtime's element-type enum.
    type Data: DataType;
    /// `(data, size, owned, nr_dims, dims, data_type)`.
    fn parts(&self) -> (*mut c_void, usize, bool, i64, *mut Self::Dim, u32);
    /// A struct from its parts (`nr_dims` already range-checked).
    fn from_parts(
        data: *mut c_void,
        size: usize,
        owned: bool,
        nr_dims: i64,
        dims: *mut Self::Dim,
        data_type: u32,
    ) -> Self;
    /// Whether `nr_dims` fits the struct's field.
    fn nr_dims_fits(nr_dims: i64) -> bool;
}

macro_rules! c_tensor {
    ($c:ty, $dim:ty, $data:ty, $nr:ty) => {
        impl CTensor for $c {
            type Dim = $dim;
            type Data = $data;
            fn parts(&self) -> (*mut c_void, usize, bool, i64, *mut $dim, u32) {
                (
                    self.data,
                    self.size,
                    self.owned,
                    i64::from(self.nr_dims),
                    self.dims,
                    self.data_type,
                )
            }
            fn from_parts(
                data: *mut c_void,
                size: usize,
                owned: bool,
                nr_dims: i64,
                dims: *mut $dim,
                data_type: u32,
            ) -> Self {
                Self {
                    data,
                    size,
                    owned,
                    nr_dims: <$nr>::try_from(nr_dims).unwrap_or_default(),
                    dims,
                    data_type,
                }
            }
            fn nr_dims_fits(nr_dims: i64) -> bool {
                <$nr>::try_from(nr_dims).is_ok()
            }
        }
    };
}

c_tensor!(vaccel_tf_tensor, i64, TfDataType, c_int);
c_tensor!(vaccel_tflite_tensor, i32, TfLiteDataType, c_int);
c_tensor!(vaccel_torch_tensor, i64, TorchDataType, i64);

/// `dims` as a Rust vector.
///
/// # Safety
///
/// When `nr_dims > 0`, `dims` points at `nr_dims` readable elements.
unsafe fn read_dims<D: Copy + Into<i64>>(dims: *const D, nr_dims: i64) -> Res<Vec<i64>> {
    let n = usize::try_from(nr_dims).map_err(|_| invalid("negative number of dimensions"))?;
    // SAFETY: caller guarantee.
    let dims = unsafe { ffi::slice(dims, n, "dims") }?;
    Ok(dims.iter().map(|d| (*d).into()).collect())
}

/// A runtime tensor borrowing a C tensor's bytes.
///
/// # Safety
///
/// `p` is null or a valid tensor whose `dims` and `data` are readable for their counts and
/// stay unchanged for `'a`.
pub(crate) unsafe fn view<'a, C: CTensor>(p: *const C, what: &str) -> Res<Tensor<'a, C::Data>> {
    // SAFETY: caller guarantee.
    let tensor = unsafe { ffi::as_ref(p, what) }?;
    let (data, size, _, nr_dims, dims, data_type) = tensor.parts();
    // SAFETY: caller guarantee on `dims` and `data`.
    let (dims, bytes) = unsafe {
        (
            read_dims(dims, nr_dims)?,
            ffi::bytes(data, size, "tensor data")?,
        )
    };
    let data_type = C::Data::try_from_value(data_type)
        .ok_or_else(|| invalid(format!("{what}: invalid data type {data_type}")))?;
    Tensor::new(dims, data_type, Cow::Borrowed(bytes))
}

/// Runtime tensors borrowing an array of C tensor pointers.
///
/// # Safety
///
/// `ptrs` is null (with `n == 0`) or holds `n` pointers each valid as for [`view`].
pub(crate) unsafe fn views<'a, C: CTensor>(
    ptrs: *const *mut C,
    n: c_int,
    what: &str,
) -> Res<Vec<Tensor<'a, C::Data>>> {
    let n = ffi::count(n, what)?;
    // SAFETY: caller guarantee.
    let ptrs = unsafe { ffi::slice(ptrs, n, what) }?;
    // SAFETY: each pointer is valid (caller guarantee).
    ptrs.iter().map(|p| unsafe { view(*p, what) }).collect()
}

/// A heap C tensor (calloc'ed struct, dims and data) holding a copy of `t`.
pub(crate) fn to_c<C: CTensor>(t: &Tensor<'_, C::Data>) -> Res<*mut C> {
    let nr_dims = i64::try_from(t.dims.len()).map_err(|_| invalid("too many dimensions"))?;
    if !C::nr_dims_fits(nr_dims) {
        return Err(invalid("too many dimensions"));
    }
    let dims: Vec<C::Dim> = t
        .dims
        .iter()
        .map(|d| C::Dim::try_from(*d).map_err(|_| invalid(format!("dimension {d} does not fit"))))
        .collect::<Res<_>>()?;
    let c_dims = cmem::calloc::<C::Dim>(dims.len(), "tensor dims")?;
    // SAFETY: `c_dims` holds `dims.len()` elements (fresh allocation).
    unsafe { ptr::copy_nonoverlapping(dims.as_ptr(), c_dims, dims.len()) };
    let data = match cmem::malloc_copy(&t.data, "tensor data") {
        Ok(p) => p,
        Err(e) => {
            // SAFETY: allocated above, not shared.
            unsafe { cmem::free(c_dims) };
            return Err(e);
        }
    };
    let tensor = C::from_parts(
        data.cast::<c_void>(),
        t.data.len(),
        true,
        nr_dims,
        c_dims,
        t.data_type.to_value(),
    );
    let p = match cmem::calloc::<C>(1, "tensor") {
        Ok(p) => p,
        Err(e) => {
            // SAFETY: allocated above, not shared.
            unsafe {
                cmem::free(c_dims);
                cmem::free(data);
            }
            return Err(e);
        }
    };
    // SAFETY: `p` is a fresh allocation for one `C`.
    unsafe { p.write(tensor) };
    Ok(p)
}

/// Frees a tensor's dims and (owned) data and resets it.
///
/// # Safety
///
/// `t` points at a valid tensor whose `dims` (and `data`, if owned) are null or from the C
/// allocator.
unsafe fn release<C: CTensor>(t: *mut C) {
    // SAFETY: caller guarantee.
    unsafe {
        let (data, _, owned, _, dims, data_type) = (*t).parts();
        cmem::free(dims);
        if owned {
            cmem::free(data);
        }
        t.write(C::from_parts(
            ptr::null_mut(),
            0,
            false,
            0,
            ptr::null_mut(),
            data_type,
        ));
    }
}

/// Takes a heap tensor made by a plugin: copies it into a runtime tensor and frees it.
///
/// # Safety
///
/// `p` is null or a heap tensor from `*_new`/`*_allocate` (or equivalent C allocations),
/// not used afterwards.
unsafe fn take<C: CTensor>(p: *mut C) -> Res<Tensor<'static, C::Data>> {
    if p.is_null() {
        return Err(ffi::err(
            vaccel_core::ErrorCode::EBACKEND,
            "the plugin left an output tensor NULL",
        ));
    }
    // SAFETY: valid heap tensor (caller guarantee); converted, then freed exactly once.
    unsafe {
        let converted = view::<C>(p, "output tensor").map(Tensor::into_owned);
        release(p);
        cmem::free(p);
        converted
    }
}

/// [`take`] for TF outputs.
///
/// # Safety
///
/// As [`take`].
pub(crate) unsafe fn take_tf_tensor(p: *mut vaccel_tf_tensor) -> Res<Tensor<'static, TfDataType>> {
    // SAFETY: forwarded.
    unsafe { take(p) }
}

/// [`take`] for TFLite outputs.
///
/// # Safety
///
/// As [`take`].
pub(crate) unsafe fn take_tflite_tensor(
    p: *mut vaccel_tflite_tensor,
) -> Res<Tensor<'static, TfLiteDataType>> {
    // SAFETY: forwarded.
    unsafe { take(p) }
}

/// [`take`] for Torch outputs.
///
/// # Safety
///
/// As [`take`].
pub(crate) unsafe fn take_torch_tensor(
    p: *mut vaccel_torch_tensor,
) -> Res<Tensor<'static, TorchDataType>> {
    // SAFETY: forwarded.
    unsafe { take(p) }
}

/// [`take`] where a null output means "none".
///
/// # Safety
///
/// As [`take`].
pub(crate) unsafe fn take_torch_tensor_opt(
    p: *mut vaccel_torch_tensor,
) -> Res<Option<Tensor<'static, TorchDataType>>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded.
    unsafe { take(p) }.map(Some)
}

/// Reads and frees a status filled by a plugin.
///
/// # Safety
///
/// `status.message` is null or a NUL-terminated string from the C allocator.
pub(crate) unsafe fn take_tf_status(status: &mut vaccel_tf_status) -> TfStatus {
    // SAFETY: caller guarantee.
    let message = unsafe { ffi::lossy_str(status.message) }.unwrap_or_default();
    // SAFETY: caller guarantee; the pointer is cleared right after.
    unsafe { cmem::free(status.message) };
    status.message = ptr::null_mut();
    TfStatus::new(status.code, message)
}

/// Fills a caller's status (`code`, strdup'ed message). A previous message is not freed, as
/// upstream (the caller releases statuses between calls).
///
/// # Safety
///
/// `status` is null or valid for writes.
pub(crate) unsafe fn fill_tf_status(status: *mut vaccel_tf_status, s: &TfStatus) -> Res<()> {
    if status.is_null() {
        return Ok(());
    }
    let message = cmem::strdup(&s.message, "status message")?;
    // SAFETY: non-null and valid (caller guarantee).
    unsafe {
        (*status).code = s.code;
        (*status).message = message;
    }
    Ok(())
}

/// C tensors over runtime tensors' bytes, and the array of pointers to them that the
/// operations take.
pub(crate) struct CTensors<C> {
    _dims: Vec<Vec<i64>>,
    _dims32: Vec<Vec<i32>>,
    tensors: Vec<C>,
    ptrs: Vec<*mut C>,
}

impl<C: CTensor> CTensors<C> {
    fn build(
        tensors: &[Tensor<'_, C::Data>],
        dims_of: impl Fn(&[i64]) -> Res<(Vec<i64>, Vec<i32>)>,
        dim_ptr: impl Fn(&mut Vec<i64>, &mut Vec<i32>) -> *mut C::Dim,
    ) -> Res<CTensors<C>> {
        let mut d64 = Vec::with_capacity(tensors.len());
        let mut d32 = Vec::with_capacity(tensors.len());
        for t in tensors {
            let (a, b) = dims_of(&t.dims)?;
            d64.push(a);
            d32.push(b);
        }
        let mut c = Vec::with_capacity(tensors.len());
        for ((t, a), b) in tensors.iter().zip(d64.iter_mut()).zip(d32.iter_mut()) {
            let nr_dims = i64::try_from(t.dims.len()).map_err(|_| invalid("too many dims"))?;
            if !C::nr_dims_fits(nr_dims) {
                return Err(invalid("too many dimensions"));
            }
            c.push(C::from_parts(
                // Inputs are read-only for plugins; `*mut` only for the C field type.
                t.data.as_ptr().cast_mut().cast::<c_void>(),
                t.data.len(),
                false,
                nr_dims,
                dim_ptr(a, b),
                t.data_type.to_value(),
            ));
        }
        let ptrs = c.iter_mut().map(ptr::from_mut).collect();
        Ok(CTensors {
            _dims: d64,
            _dims32: d32,
            tensors: c,
            ptrs,
        })
    }

    /// The `T *const *` argument (null when empty).
    pub(crate) fn ptrs(&mut self) -> *const *mut C {
        if self.ptrs.is_empty() {
            ptr::null()
        } else {
            self.ptrs.as_ptr()
        }
    }

    /// The pointers, for ops that take them one by one.
    pub(crate) fn ptr_vec(&mut self) -> Vec<*mut C> {
        self.tensors.iter_mut().map(ptr::from_mut).collect()
    }
}

impl CTensors<vaccel_tf_tensor> {
    /// C views of TF tensors.
    pub(crate) fn tf(tensors: &[Tensor<'_, TfDataType>]) -> Res<Self> {
        Self::build(
            tensors,
            |d| Ok((d.to_vec(), Vec::new())),
            |a, _| a.as_mut_ptr(),
        )
    }
}

impl CTensors<vaccel_torch_tensor> {
    /// C views of Torch tensors.
    pub(crate) fn torch(tensors: &[Tensor<'_, TorchDataType>]) -> Res<Self> {
        Self::build(
            tensors,
            |d| Ok((d.to_vec(), Vec::new())),
            |a, _| a.as_mut_ptr(),
        )
    }
}

impl CTensors<vaccel_tflite_tensor> {
    /// C views of TFLite tensors (dims narrowed to `int32_t`).
    pub(crate) fn tflite(tensors: &[Tensor<'_, TfLiteDataType>]) -> Res<Self> {
        Self::build(
            tensors,
            |d| {
                let narrow = d
                    .iter()
                    .map(|x| i32::try_from(*x).map_err(|_| invalid("dimension exceeds int32")))
                    .collect::<Res<Vec<i32>>>()?;
                Ok((Vec::new(), narrow))
            },
            |_, b| b.as_mut_ptr(),
        )
    }
}

// ---- exported helpers -------------------------------------------------------------------

/// `init` of the three tensor types.
///
/// # Safety
///
/// `t` is null or writable; `dims` holds `nr_dims` elements.
unsafe fn tensor_init<C: CTensor>(
    t: *mut C,
    nr_dims: i64,
    dims: *const C::Dim,
    ty: u32,
) -> Res<()> {
    let t = ffi::out_ptr(t, "tensor")?;
    if nr_dims < 1 || !C::nr_dims_fits(nr_dims) {
        return Err(invalid(format!("invalid number of dimensions {nr_dims}")));
    }
    let n = usize::try_from(nr_dims).map_err(|_| invalid("invalid number of dimensions"))?;
    // SAFETY: caller guarantee on `dims`.
    let src = unsafe { ffi::slice(dims, n, "dims") }?;
    let c_dims = cmem::calloc::<C::Dim>(n, "tensor dims")?;
    // SAFETY: fresh allocation of `n` elements; `t` checked non-null and aligned.
    unsafe {
        ptr::copy_nonoverlapping(src.as_ptr(), c_dims, n);
        t.write(C::from_parts(
            ptr::null_mut(),
            0,
            false,
            nr_dims,
            c_dims,
            ty,
        ));
    }
    Ok(())
}

/// `new`.
///
/// # Safety
///
/// As [`tensor_init`], with `out` null or writable.
unsafe fn tensor_new<C: CTensor>(
    out: *mut *mut C,
    nr_dims: i64,
    dims: *const C::Dim,
    ty: u32,
    total_size: Option<usize>,
) -> Res<()> {
    let out = ffi::out_ptr(out, "tensor")?;
    let t = cmem::calloc::<C>(1, "tensor")?;
    // SAFETY: `t` is a fresh allocation; caller guarantee on `dims`.
    if let Err(e) = unsafe { tensor_init(t, nr_dims, dims, ty) } {
        // SAFETY: allocated above, not shared.
        unsafe { cmem::free(t) };
        return Err(e);
    }
    if let Some(size) = total_size.filter(|s| *s > 0) {
        match cmem::calloc::<u8>(size, "tensor data") {
            // SAFETY: `t` was initialised above.
            Ok(data) => unsafe {
                let (_, _, _, nr, dims, ty) = (*t).parts();
                t.write(C::from_parts(data.cast(), size, true, nr, dims, ty));
            },
            Err(e) => {
                // SAFETY: initialised above, not shared.
                unsafe {
                    release(t);
                    cmem::free(t);
                }
                return Err(e);
            }
        }
    }
    // SAFETY: checked by `out_ptr`.
    unsafe { ffi::write_out(out, t) };
    Ok(())
}

/// `release`.
///
/// # Safety
///
/// `t` is null or a valid tensor made by these functions (or with C allocations).
unsafe fn tensor_release<C: CTensor>(t: *mut C) -> Res<()> {
    let t = ffi::out_ptr(t, "tensor")?;
    // SAFETY: caller guarantee.
    unsafe { release(t) };
    Ok(())
}

/// `delete`.
///
/// # Safety
///
/// `t` is null or a heap tensor from `new`/`allocate`, not used afterwards.
unsafe fn tensor_delete<C: CTensor>(t: *mut C) -> Res<()> {
    let t = ffi::out_ptr(t, "tensor")?;
    // SAFETY: caller guarantee.
    unsafe {
        release(t);
        cmem::free(t);
    }
    Ok(())
}

/// `set_data`: references `data` (not owned).
///
/// # Safety
///
/// `t` is null or a valid tensor.
unsafe fn tensor_set_data<C: CTensor>(t: *mut C, data: *mut c_void, size: usize) -> Res<()> {
    let t = ffi::out_ptr(t, "tensor")?;
    if data.is_null() != (size == 0) {
        return Err(invalid("data is NULL iff size is 0"));
    }
    // SAFETY: caller guarantee.
    unsafe {
        let (_, _, owned, nr, dims, ty) = (*t).parts();
        if owned {
            log::warn!("Previous tensor data will not be freed by release");
        }
        t.write(C::from_parts(data, size, false, nr, dims, ty));
    }
    Ok(())
}

/// `take_data`: hands the data to the caller.
///
/// # Safety
///
/// `t` is null or a valid tensor; `data`/`size` null or writable.
unsafe fn tensor_take_data<C: CTensor>(
    t: *mut C,
    data: *mut *mut c_void,
    size: *mut usize,
) -> Res<()> {
    let t = ffi::out_ptr(t, "tensor")?;
    let data = ffi::out_ptr(data, "data")?;
    let size = ffi::out_ptr(size, "size")?;
    // SAFETY: caller guarantee; out-params checked.
    unsafe {
        let (d, s, _, nr, dims, ty) = (*t).parts();
        ffi::write_out(data, d);
        ffi::write_out(size, s);
        t.write(C::from_parts(ptr::null_mut(), 0, false, nr, dims, ty));
    }
    Ok(())
}

macro_rules! tensor_exports {
    ($c:ty, $dim:ty, $nr:ty, $init:ident, $release:ident, $new:ident, $allocate:ident,
     $delete:ident, $set_data:ident, $take_data:ident) => {
        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $init(
            t: *mut $c,
            nr_dims: $nr,
            dims: *const $dim,
            ty: u32,
        ) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($init), || unsafe {
                tensor_init(t, i64::from(nr_dims), dims, ty)
            })
        }

        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $release(t: *mut $c) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($release), || unsafe { tensor_release(t) })
        }

        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $new(
            t: *mut *mut $c,
            nr_dims: $nr,
            dims: *const $dim,
            ty: u32,
        ) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($new), || unsafe {
                tensor_new(t, i64::from(nr_dims), dims, ty, None)
            })
        }

        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $allocate(
            t: *mut *mut $c,
            nr_dims: $nr,
            dims: *const $dim,
            ty: u32,
            total_size: usize,
        ) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($allocate), || unsafe {
                tensor_new(t, i64::from(nr_dims), dims, ty, Some(total_size))
            })
        }

        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $delete(t: *mut $c) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($delete), || unsafe { tensor_delete(t) })
        }

        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $set_data(t: *mut $c, data: *mut c_void, size: usize) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($set_data), || unsafe {
                tensor_set_data(t, data, size)
            })
        }

        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $take_data(
            t: *mut $c,
            data: *mut *mut c_void,
            size: *mut usize,
        ) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($take_data), || unsafe {
                tensor_take_data(t, data, size)
            })
        }
    };
}

tensor_exports!(
    vaccel_tf_tensor,
    i64,
    c_int,
    vaccel_tf_tensor_init,
    vaccel_tf_tensor_release,
    vaccel_tf_tensor_new,
    vaccel_tf_tensor_allocate,
    vaccel_tf_tensor_delete,
    vaccel_tf_tensor_set_data,
    vaccel_tf_tensor_take_data
);
tensor_exports!(
    vaccel_tflite_tensor,
    i32,
    c_int,
    vaccel_tflite_tensor_init,
    vaccel_tflite_tensor_release,
    vaccel_tflite_tensor_new,
    vaccel_tflite_tensor_allocate,
    vaccel_tflite_tensor_delete,
    vaccel_tflite_tensor_set_data,
    vaccel_tflite_tensor_take_data
);
tensor_exports!(
    vaccel_torch_tensor,
    i64,
    i64,
    vaccel_torch_tensor_init,
    vaccel_torch_tensor_release,
    vaccel_torch_tensor_new,
    vaccel_torch_tensor_allocate,
    vaccel_torch_tensor_delete,
    vaccel_torch_tensor_set_data,
    vaccel_torch_tensor_take_data
);

/// The two buffer structs: `(data, size)`.
trait CBuffer {
    fn set(&mut self, data: *mut c_void, size: usize);
    fn get(&self) -> (*mut c_void, usize);
}

impl CBuffer for vaccel_tf_buffer {
    fn set(&mut self, data: *mut c_void, size: usize) {
        self.data = data;
        self.size = size;
    }
    fn get(&self) -> (*mut c_void, usize) {
        (self.data, self.size)
    }
}

impl CBuffer for vaccel_torch_buffer {
    fn set(&mut self, data: *mut c_void, size: usize) {
        self.data = data.cast::<c_char>();
        self.size = size;
    }
    fn get(&self) -> (*mut c_void, usize) {
        (self.data.cast::<c_void>(), self.size)
    }
}

/// # Safety
///
/// `b` null or valid; `data` null or from the C allocator (ownership is taken).
unsafe fn buffer_init<B: CBuffer>(b: *mut B, data: *mut c_void, size: usize) -> Res<()> {
    // SAFETY: caller guarantee.
    let b = unsafe { ffi::as_mut(b, "buffer") }?;
    if data.is_null() || size == 0 {
        return Err(invalid("buffer data is NULL or empty"));
    }
    b.set(data, size);
    Ok(())
}

/// # Safety
///
/// `b` null or valid, its data null or from the C allocator.
unsafe fn buffer_release<B: CBuffer>(b: *mut B) -> Res<()> {
    // SAFETY: caller guarantee.
    let b = unsafe { ffi::as_mut(b, "buffer") }?;
    // SAFETY: the buffer owns its data (init's contract).
    unsafe { cmem::free(b.get().0) };
    b.set(ptr::null_mut(), 0);
    Ok(())
}

/// # Safety
///
/// `out` null or writable; `data` as for [`buffer_init`].
unsafe fn buffer_new<B: CBuffer>(out: *mut *mut B, data: *mut c_void, size: usize) -> Res<()> {
    let out = ffi::out_ptr(out, "buffer")?;
    let b = cmem::calloc::<B>(1, "buffer")?;
    // SAFETY: fresh zeroed allocation (a valid empty buffer); caller guarantee on `data`.
    if let Err(e) = unsafe { buffer_init(b, data, size) } {
        // SAFETY: allocated above, not shared.
        unsafe { cmem::free(b) };
        return Err(e);
    }
    // SAFETY: checked by `out_ptr`.
    unsafe { ffi::write_out(out, b) };
    Ok(())
}

/// # Safety
///
/// `b` null or a heap buffer from `new`.
unsafe fn buffer_delete<B: CBuffer>(b: *mut B) -> Res<()> {
    // SAFETY: caller guarantee.
    unsafe {
        buffer_release(b)?;
        cmem::free(b);
    }
    Ok(())
}

/// # Safety
///
/// `b` null or valid; out-params null or writable.
unsafe fn buffer_take<B: CBuffer>(b: *mut B, data: *mut *mut c_void, size: *mut usize) -> Res<()> {
    // SAFETY: caller guarantee.
    let b = unsafe { ffi::as_mut(b, "buffer") }?;
    let data = ffi::out_ptr(data, "data")?;
    let size = ffi::out_ptr(size, "size")?;
    let (d, s) = b.get();
    // SAFETY: checked by `out_ptr`.
    unsafe {
        ffi::write_out(data, d);
        ffi::write_out(size, s);
    }
    b.set(ptr::null_mut(), 0);
    Ok(())
}

macro_rules! buffer_exports {
    ($b:ty, $data:ty, $init:ident, $release:ident, $new:ident, $delete:ident, $take:ident) => {
        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $init(b: *mut $b, data: *mut $data, size: usize) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($init), || unsafe {
                buffer_init(b, data.cast(), size)
            })
        }

        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $release(b: *mut $b) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($release), || unsafe { buffer_release(b) })
        }

        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $new(b: *mut *mut $b, data: *mut $data, size: usize) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($new), || unsafe {
                buffer_new(b, data.cast(), size)
            })
        }

        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $delete(b: *mut $b) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($delete), || unsafe { buffer_delete(b) })
        }

        /// See the header.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $take(
            b: *mut $b,
            data: *mut *mut c_void,
            size: *mut usize,
        ) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($take), || unsafe { buffer_take(b, data, size) })
        }
    };
}

buffer_exports!(
    vaccel_tf_buffer,
    c_void,
    vaccel_tf_buffer_init,
    vaccel_tf_buffer_release,
    vaccel_tf_buffer_new,
    vaccel_tf_buffer_delete,
    vaccel_tf_buffer_take_data
);
buffer_exports!(
    vaccel_torch_buffer,
    c_char,
    vaccel_torch_buffer_init,
    vaccel_torch_buffer_release,
    vaccel_torch_buffer_new,
    vaccel_torch_buffer_delete,
    vaccel_torch_buffer_take_data
);

/// `vaccel_tf_node_init`: copies `name`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tf_node_init(
    node: *mut vaccel_tf_node,
    name: *const c_char,
    id: c_int,
) -> c_int {
    guard("vaccel_tf_node_init", || {
        let node = ffi::out_ptr(node, "node")?;
        // SAFETY: caller guarantee.
        let name = unsafe { ffi::str_arg(name, "name") }?;
        let name = cmem::strdup(name, "node name")?;
        // SAFETY: checked by `out_ptr`.
        unsafe { node.write(vaccel_tf_node { name, id }) };
        Ok(())
    })
}

/// `vaccel_tf_node_release`: frees the name; the id becomes -1.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tf_node_release(node: *mut vaccel_tf_node) -> c_int {
    guard("vaccel_tf_node_release", || {
        // SAFETY: caller guarantee.
        let node = unsafe { ffi::as_mut(node, "node") }?;
        // SAFETY: the name was strdup'ed by init.
        unsafe { cmem::free(node.name) };
        node.name = ptr::null_mut();
        node.id = -1;
        Ok(())
    })
}

/// `vaccel_tf_node_new`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tf_node_new(
    node: *mut *mut vaccel_tf_node,
    name: *const c_char,
    id: c_int,
) -> c_int {
    guard("vaccel_tf_node_new", || {
        let out = ffi::out_ptr(node, "node")?;
        let n = cmem::calloc::<vaccel_tf_node>(1, "node")?;
        // SAFETY: fresh allocation; caller guarantee on `name`.
        let ret = unsafe { vaccel_tf_node_init(n, name, id) };
        if ret != 0 {
            // SAFETY: allocated above.
            unsafe { cmem::free(n) };
            return Err(ffi::err(
                vaccel_core::ErrorCode::from_i32(ret).unwrap_or(vaccel_core::ErrorCode::EINVAL),
                "invalid node",
            ));
        }
        // SAFETY: checked by `out_ptr`.
        unsafe { ffi::write_out(out, n) };
        Ok(())
    })
}

/// `vaccel_tf_node_delete`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tf_node_delete(node: *mut vaccel_tf_node) -> c_int {
    // SAFETY: forwarded.
    let ret = unsafe { vaccel_tf_node_release(node) };
    if ret == 0 {
        // SAFETY: a heap node from `vaccel_tf_node_new` (caller guarantee).
        unsafe { cmem::free(node) };
    }
    ret
}

/// `vaccel_tf_status_init`: copies `message` (required).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tf_status_init(
    status: *mut vaccel_tf_status,
    code: u8,
    message: *const c_char,
) -> c_int {
    guard("vaccel_tf_status_init", || {
        let status = ffi::out_ptr(status, "status")?;
        // SAFETY: caller guarantee.
        let message = unsafe { ffi::str_arg(message, "message") }?;
        let message = cmem::strdup(message, "status message")?;
        // SAFETY: checked by `out_ptr`.
        unsafe { status.write(vaccel_tf_status { code, message }) };
        Ok(())
    })
}

/// `vaccel_tf_status_release`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tf_status_release(status: *mut vaccel_tf_status) -> c_int {
    guard("vaccel_tf_status_release", || {
        // SAFETY: caller guarantee.
        let status = unsafe { ffi::as_mut(status, "status") }?;
        // SAFETY: the message was strdup'ed (init, or a plugin with strdup).
        unsafe { cmem::free(status.message) };
        status.message = ptr::null_mut();
        status.code = 0;
        Ok(())
    })
}

/// `vaccel_tf_status_new`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tf_status_new(
    status: *mut *mut vaccel_tf_status,
    code: u8,
    message: *const c_char,
) -> c_int {
    guard("vaccel_tf_status_new", || {
        let out = ffi::out_ptr(status, "status")?;
        let s = cmem::calloc::<vaccel_tf_status>(1, "status")?;
        // SAFETY: fresh allocation; caller guarantee on `message`.
        let ret = unsafe { vaccel_tf_status_init(s, code, message) };
        if ret != 0 {
            // SAFETY: allocated above.
            unsafe { cmem::free(s) };
            return Err(invalid("invalid status message"));
        }
        // SAFETY: checked by `out_ptr`.
        unsafe { ffi::write_out(out, s) };
        Ok(())
    })
}

/// `vaccel_tf_status_delete`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tf_status_delete(status: *mut vaccel_tf_status) -> c_int {
    // SAFETY: forwarded.
    let ret = unsafe { vaccel_tf_status_release(status) };
    if ret == 0 {
        // SAFETY: a heap status from `vaccel_tf_status_new` (caller guarantee).
        unsafe { cmem::free(status) };
    }
    ret
}
