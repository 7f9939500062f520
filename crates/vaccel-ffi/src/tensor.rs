//! The TensorFlow, TensorFlow Lite and Torch tensor structs (`vaccel/ops/tf.h`,
//! `vaccel/ops/tflite.h`, `vaccel/ops/torch.h`) and statuses, and their conversions to and
//! from the runtime's tensors.
//!
//! Every allocation here uses the C allocator: tensors made by the library are freed by
//! applications with `*_delete()`, and tensors made by plugins (with the same functions) are
//! freed by the library.

use std::borrow::Cow;
use std::ffi::{c_int, c_void};
use std::ptr;

use vaccel_abi::{
    vaccel_tf_node, vaccel_tf_status, vaccel_tf_tensor, vaccel_tflite_tensor, vaccel_torch_tensor,
};
use vaccel_core::tensor::{DataType, Tensor, TfNode, TfStatus};
use vaccel_core::{TfDataType, TfLiteDataType, TorchDataType};

use crate::cmem;
use crate::ffi::{self, Res, invalid};

/// The common shape of the three C tensor structs.
pub trait CTensor: Sized {
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
pub unsafe fn read_dims<D: Copy + Into<i64>>(dims: *const D, nr_dims: i64) -> Res<Vec<i64>> {
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
pub unsafe fn view<'a, C: CTensor>(p: *const C, what: &str) -> Res<Tensor<'a, C::Data>> {
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
pub unsafe fn views<'a, C: CTensor>(
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
pub fn to_c<C: CTensor>(t: &Tensor<'_, C::Data>) -> Res<*mut C> {
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
pub unsafe fn release<C: CTensor>(t: *mut C) {
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
pub unsafe fn take<C: CTensor>(p: *mut C) -> Res<Tensor<'static, C::Data>> {
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

/// Takes every output tensor a plugin made, all of them even after one fails (so none
/// leaks): the tensors, or the first error.
///
/// # Safety
///
/// Each pointer is as for [`take`], and none is used afterwards.
pub unsafe fn take_all<C: CTensor>(ptrs: Vec<*mut C>) -> Res<Vec<Tensor<'static, C::Data>>> {
    let mut out = Vec::with_capacity(ptrs.len());
    let mut first_err = None;
    for p in ptrs {
        // SAFETY: caller guarantee; each pointer is taken once.
        match unsafe { take(p) } {
            Ok(tensor) => out.push(tensor),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(out), Err)
}

/// [`take`] for TF outputs.
///
/// # Safety
///
/// As [`take`].
pub unsafe fn take_tf_tensor(p: *mut vaccel_tf_tensor) -> Res<Tensor<'static, TfDataType>> {
    // SAFETY: forwarded.
    unsafe { take(p) }
}

/// [`take`] for TFLite outputs.
///
/// # Safety
///
/// As [`take`].
pub unsafe fn take_tflite_tensor(
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
pub unsafe fn take_torch_tensor(
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
pub unsafe fn take_torch_tensor_opt(
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
pub unsafe fn take_tf_status(status: &mut vaccel_tf_status) -> TfStatus {
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
pub unsafe fn fill_tf_status(status: *mut vaccel_tf_status, s: &TfStatus) -> Res<()> {
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
pub struct CTensors<C> {
    _dims: Vec<Vec<i64>>,
    _dims32: Vec<Vec<i32>>,
    tensors: Vec<C>,
    ptrs: Vec<*mut C>,
}

impl<C> std::fmt::Debug for CTensors<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CTensors")
            .field("len", &self.tensors.len())
            .finish()
    }
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
    pub fn ptrs(&mut self) -> *const *mut C {
        if self.ptrs.is_empty() {
            ptr::null()
        } else {
            self.ptrs.as_ptr()
        }
    }

    /// The pointers, for ops that take them one by one.
    pub fn ptr_vec(&mut self) -> Vec<*mut C> {
        self.tensors.iter_mut().map(ptr::from_mut).collect()
    }
}

impl CTensors<vaccel_tf_tensor> {
    /// C views of TF tensors.
    pub fn tf(tensors: &[Tensor<'_, TfDataType>]) -> Res<Self> {
        Self::build(
            tensors,
            |d| Ok((d.to_vec(), Vec::new())),
            |a, _| a.as_mut_ptr(),
        )
    }
}

impl CTensors<vaccel_torch_tensor> {
    /// C views of Torch tensors.
    pub fn torch(tensors: &[Tensor<'_, TorchDataType>]) -> Res<Self> {
        Self::build(
            tensors,
            |d| Ok((d.to_vec(), Vec::new())),
            |a, _| a.as_mut_ptr(),
        )
    }
}

impl CTensors<vaccel_tflite_tensor> {
    /// C views of TFLite tensors (dims narrowed to `int32_t`).
    pub fn tflite(tensors: &[Tensor<'_, TfLiteDataType>]) -> Res<Self> {
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

/// TF nodes of a C array.
///
/// # Safety
///
/// `nodes` holds `n` nodes with NUL-terminated names.
pub unsafe fn nodes(nodes: *const vaccel_tf_node, n: usize, what: &str) -> Res<Vec<TfNode>> {
    // SAFETY: caller guarantee.
    let nodes = unsafe { ffi::slice(nodes, n, what) }?;
    nodes
        .iter()
        .map(|node| {
            // SAFETY: caller guarantee on the names.
            unsafe { ffi::str_arg(node.name, "node name") }.map(|s| TfNode::new(s, node.id))
        })
        .collect()
}

/// Hands heap copies of `outputs` to the caller's slots (all or nothing).
///
/// # Safety
///
/// `slots` holds `outputs.len()` writable pointers.
pub unsafe fn hand_out<C: CTensor>(slots: *mut *mut C, outputs: &[Tensor<'_, C::Data>]) -> Res<()> {
    let mut made = Vec::with_capacity(outputs.len());
    for o in outputs {
        match to_c::<C>(o) {
            Ok(p) => made.push(p),
            Err(e) => {
                for p in made {
                    // SAFETY: made just above by `to_c`, not handed out.
                    unsafe { free_tensor(p) };
                }
                return Err(e);
            }
        }
    }
    // SAFETY: caller guarantee on `slots`.
    let slots = unsafe { ffi::slice_mut(slots, made.len(), "output tensors") }?;
    for (slot, p) in slots.iter_mut().zip(made) {
        *slot = p;
    }
    Ok(())
}

/// Frees a tensor made by `to_c`.
///
/// # Safety
///
/// `p` comes from [`to_c`] and is not used afterwards.
pub unsafe fn free_tensor<C: CTensor>(p: *mut C) {
    // SAFETY: caller guarantee: the struct, dims and data are C allocations.
    unsafe {
        let (data, _, _, _, dims, _) = (*p).parts();
        cmem::free(data);
        cmem::free(dims);
        cmem::free(p);
    }
}
