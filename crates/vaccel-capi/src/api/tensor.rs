//! The exported TensorFlow, TensorFlow Lite and Torch helpers (`vaccel/ops/tf.h`,
//! `vaccel/ops/tflite.h`, `vaccel/ops/torch.h`) over [`vaccel_ffi::tensor`].
//!
//! # Safety
//!
//! Pointer arguments of the exported functions are null or valid for the struct they point
//! at; arrays hold the number of elements their count says; data pointers handed to
//! `*_init`/`*_set_data` stay valid while the struct uses them.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use vaccel_abi::{
    vaccel_tf_buffer, vaccel_tf_node, vaccel_tf_status, vaccel_tf_tensor, vaccel_tflite_tensor,
    vaccel_torch_buffer, vaccel_torch_tensor,
};

use crate::cmem;
use crate::ffi::{self, Res, guard, invalid};
use vaccel_ffi::tensor::{CTensor, release};

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

/// Takes `data` into the buffer. NULL and 0 make an empty buffer, as upstream (which takes
/// any pair); only NULL data with a non-zero size is refused, as no buffer can hold it.
///
/// # Safety
///
/// `b` null or valid; `data` null or from the C allocator (ownership is taken).
unsafe fn buffer_init<B: CBuffer>(b: *mut B, data: *mut c_void, size: usize) -> Res<()> {
    // SAFETY: caller guarantee.
    let b = unsafe { ffi::as_mut(b, "buffer") }?;
    if data.is_null() && size > 0 {
        return Err(invalid("buffer data is NULL but its size is not 0"));
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
