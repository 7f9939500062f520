//! One op table, and the C op functions generated from it.
//!
//! [`op_table!`] lists every operation once: its [`OpType`], the C function type of its
//! `vaccel_op` entry (from `vaccel-abi`) and the name of its C function. [`c_op_functions!`]
//! writes each op's C function once: C arguments in (the session and resources through a
//! [`Resolve`], buffers as borrowed slices, args and tensors through this crate's views,
//! every pointer checked), the runtime's `Session` method called, results written back. Two
//! programs instantiate it: `libvaccel.so` (the exported `vaccel_noop`, ...; the application's
//! views) and every plugin library built with the SDK (the functions its descriptor lists;
//! the sessions attached to the host's, whose runtime holds the library's plugin). The third
//! translation, Rust operands into a loaded C plugin's function, is `loader::CPlugin`, which
//! takes each function's type from the same table. A unit test proves the table covers
//! [`OpType`], and each generated function is checked at compile time against its
//! `vaccel-abi` type.
//!
//! Adding an op: its row in [`op_table!`] and its function in [`c_op_functions!`], its
//! `Session`/`Plugin` methods in the core, its `CPlugin` method, and the rpc plugin.
//!
//! # Safety
//!
//! The C functions' contract: `sess`/resource arguments are null or valid views. Buffers hold
//! the sizes their length arguments (or dimensions) say; `struct vaccel_arg` arrays hold their
//! counts and each arg's `buf` holds its `size`; strings are NUL-terminated; tensors and nodes
//! are valid for their counts; out-parameters are null or writable. Output buffers must not
//! overlap inputs or each other (refused with `VACCEL_EINVAL` where detectable).

use std::ffi::c_void;
use std::sync::Arc;

use vaccel_abi::{vaccel_resource, vaccel_session};
use vaccel_core::{OpType, Resource, Session};

use crate::ffi::{self, Res, Span, invalid};

/// How the op functions find the runtime objects behind the C views they are given.
pub trait Resolve {
    /// The session of a view.
    ///
    /// # Safety
    ///
    /// `sess` is null or a valid session view.
    unsafe fn session(sess: *mut vaccel_session) -> Res<Arc<Session>>;

    /// The resource of a view, as `sess` uses it. The ops that take a resource check its
    /// type: an implementation reads the struct's public `type` back (see
    /// [`crate::views::resource_for_op`]) so that a caller's write to it counts, as upstream.
    ///
    /// # Safety
    ///
    /// `res` and `sess` are null or valid views.
    unsafe fn resource(
        res: *const vaccel_resource,
        sess: *mut vaccel_session,
    ) -> Res<Arc<Resource>>;
}

/// Calls `$m!` with every op as `(OpType variant, vaccel-abi function type, C function name)`.
#[macro_export]
macro_rules! op_table {
    ($m:ident) => {
        $m! {
            (Noop, vaccel_noop_fn, vaccel_noop),
            (Exec, vaccel_exec_op_fn, vaccel_exec),
            (ExecWithResource, vaccel_exec_with_resource_fn, vaccel_exec_with_resource),
            (ImageClassify, vaccel_image_classify_fn, vaccel_image_classification),
            (ImageDetect, vaccel_image_op_fn, vaccel_image_detection),
            (ImageSegment, vaccel_image_op_fn, vaccel_image_segmentation),
            (ImagePose, vaccel_image_op_fn, vaccel_image_pose),
            (ImageDepth, vaccel_image_op_fn, vaccel_image_depth),
            (TfModelLoad, vaccel_tf_model_fn, vaccel_tf_model_load),
            (TfModelUnload, vaccel_tf_model_fn, vaccel_tf_model_unload),
            (TfModelRun, vaccel_tf_model_run_fn, vaccel_tf_model_run),
            (TfliteModelLoad, vaccel_model_fn, vaccel_tflite_model_load),
            (TfliteModelUnload, vaccel_model_fn, vaccel_tflite_model_unload),
            (TfliteModelRun, vaccel_tflite_model_run_fn, vaccel_tflite_model_run),
            (TorchModelLoad, vaccel_model_fn, vaccel_torch_model_load),
            (TorchModelRun, vaccel_torch_model_run_fn, vaccel_torch_model_run),
            (TorchSgemm, vaccel_torch_sgemm_fn, vaccel_torch_sgemm),
            (BlasSgemm, vaccel_sgemm_fn, vaccel_sgemm),
            (FpgaArraycopy, vaccel_fpga_arraycopy_fn, vaccel_fpga_arraycopy),
            (FpgaMmult, vaccel_fpga_mmult_fn, vaccel_fpga_mmult),
            (FpgaParallel, vaccel_fpga_parallel_fn, vaccel_fpga_parallel),
            (FpgaVectoradd, vaccel_fpga_vadd_fn, vaccel_fpga_vadd),
            (Minmax, vaccel_minmax_fn, vaccel_minmax),
            (Opencv, vaccel_opencv_fn, vaccel_opencv),
        }
    };
}

/// Every op of the table, for the coverage test.
#[cfg(test)]
macro_rules! table_ops {
    ($(($op:ident, $ty:ident, $name:ident),)*) => {
        [$(OpType::$op),*]
    };
}

/// Items the generated code names (not a stable API).
#[doc(hidden)]
pub mod __private {
    pub use std::ffi::{c_char, c_int, c_void};

    pub use vaccel_abi::*;
    pub use vaccel_core::plugin::SgemmArgs;
    pub use vaccel_core::{OpType, Session};

    pub use crate::__op_function;
    pub use crate::arg::{c_args, c_args_counted};
    pub use crate::ffi::{self, Res, Span, guard, invalid};
    pub use crate::ops::{Resolve, arrays, extent, image_op, model_run};
    pub use crate::tensor::{self as t, hand_out, nodes};
}

/// The function of `op`, by the table (generated into [`c_op_functions!`]'s module).
#[doc(hidden)]
#[macro_export]
macro_rules! __op_function {
    ($(($op:ident, $ty:ident, $name:ident),)*) => {
        /// The C function of `op` (a `vaccel_op.func`).
        #[allow(dead_code)]
        pub fn op_function(op: OpType) -> *mut c_void {
            let f: *const () = match op {
                $(OpType::$op => $name as *const (),)*
            };
            f.cast_mut().cast()
        }

        // Each function has the type `vaccel-abi` gives its op.
        const _: () = {
            $(let _: $ty = $name;)*
        };
    };
}

/// The common start of the three model runs: the session, the model, and the number of
/// outputs (whose array must then be non-null).
///
/// # Safety
///
/// `sess` and `model` are null or valid views.
pub unsafe fn model_run<R: Resolve, T>(
    sess: *mut vaccel_session,
    model: *const vaccel_resource,
    outputs: *mut T,
    nr_outputs: std::ffi::c_int,
) -> Res<(Arc<Session>, Arc<Resource>, usize)> {
    // SAFETY: caller guarantee.
    let (session, model) = unsafe { (R::session(sess)?, R::resource(model, sess)?) };
    let nr_out = ffi::count(nr_outputs, "nr_outputs")?;
    if nr_out > 0 {
        ffi::out_ptr(outputs, "outputs")?;
    }
    Ok((session, model, nr_out))
}

/// What [`arrays`] gives: the read slices and the written ones.
pub type Arrays<'a, T, const R: usize, const W: usize> = ([&'a [T]; R], [&'a mut [T]; W]);

/// Slices over a C op's arrays: `reads` shared, `writes` exclusive, each `(pointer, length,
/// name)`; a written range that overlaps any other range is `EINVAL`.
///
/// # Safety
///
/// Each pointer holds its length of initialised elements that live for `'a`, and nothing but
/// the returned slices touches the written ones meanwhile.
pub unsafe fn arrays<'a, T, const R: usize, const W: usize>(
    what: &str,
    reads: [(*mut T, usize, &str); R],
    writes: [(*mut T, usize, &str); W],
) -> Res<Arrays<'a, T, R, W>> {
    let spans: Vec<Span> = reads
        .iter()
        .map(|(p, n, _)| Span::read(p.cast_const(), *n))
        .chain(
            writes
                .iter()
                .map(|(p, n, _)| Span::write(p.cast_const(), *n)),
        )
        .collect();
    ffi::check_disjoint(&spans, what)?;
    let mut shared = Vec::with_capacity(R);
    for (p, n, name) in reads {
        // SAFETY: caller guarantee.
        shared.push(unsafe { ffi::slice(p.cast_const(), n, name) }?);
    }
    let mut exclusive = Vec::with_capacity(W);
    for (p, n, name) in writes {
        // SAFETY: caller guarantee; disjoint from every other range (checked above).
        exclusive.push(unsafe { ffi::slice_mut(p, n, name) }?);
    }
    let count = || invalid(format!("{what}: wrong number of arrays"));
    Ok((
        shared.try_into().map_err(|_| count())?,
        exclusive.try_into().map_err(|_| count())?,
    ))
}

/// A model op of the `(sess, model)` form: the TFLite and Torch loads and unloads, and with
/// `status` (a `struct vaccel_tf_status *` filled from the op's result) the TensorFlow ones.
#[doc(hidden)]
#[macro_export]
macro_rules! __model_op_fn {
    ($name:ident, $method:ident, $resolve:ty, $($status:ident)?, $(#[$attr:meta])*) => {
        /// See `vaccel/ops/tf.h`, `vaccel/ops/tflite.h`, `vaccel/ops/torch.h`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn $name(
            sess: *mut vaccel_session,
            model: *mut vaccel_resource,
            $($status: *mut vaccel_tf_status,)?
        ) -> c_int {
            guard(stringify!($name), || {
                // SAFETY: `sess` and `model` are null or valid views (the op's C contract).
                let (session, model) = unsafe {
                    (
                        <$resolve as Resolve>::session(sess)?,
                        <$resolve as Resolve>::resource(model, sess)?,
                    )
                };
                let _result = session.$method(&model)?;
                $(
                    // SAFETY: `status` is null or writable (the op's C contract).
                    unsafe { t::fill_tf_status($status, &_result) }?;
                )?
                Ok(())
            })
        }
    };
}

/// One of the four image ops of the `(img, out_imgname)` form.
#[doc(hidden)]
#[macro_export]
macro_rules! __image_op_fn {
    ($name:ident, $op:ident, $resolve:ty, $(#[$attr:meta])*) => {
        /// See `vaccel/ops/image.h`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn $name(
            sess: *mut vaccel_session,
            img: *const c_void,
            out_imgname: *mut u8,
            len_img: usize,
            len_out_imgname: usize,
        ) -> c_int {
            guard(stringify!($name), || {
                // SAFETY: `sess` is null or a valid view; the buffers hold their lengths (the
                // op's C contract).
                unsafe {
                    let session = <$resolve as Resolve>::session(sess)?;
                    image_op(OpType::$op, &session, img, out_imgname, len_img, len_out_imgname)
                }
            })
        }
    };
}

/// Defines the C function of every op of the table in a module `$module`, finding sessions and
/// resources with `$resolve` (a path that works inside the new module, e.g. `crate::x::R`), each
/// function carrying the attributes given (`#[unsafe(no_mangle)]` to export them), plus
/// `op_function(op)`, the function of an op.
#[macro_export]
macro_rules! c_op_functions {
    ($vis:vis mod $module:ident, $resolve:ty, $(#[$attr:meta])*) => {
        $vis mod $module {
            #![allow(clippy::too_many_arguments, clippy::missing_safety_doc)]
            use $crate::ops::__private::*;

        $crate::__model_op_fn!(vaccel_tflite_model_load, tflite_model_load, $resolve, , $(#[$attr])*);
        $crate::__model_op_fn!(vaccel_tflite_model_unload, tflite_model_unload, $resolve, , $(#[$attr])*);
        $crate::__model_op_fn!(vaccel_torch_model_load, torch_model_load, $resolve, , $(#[$attr])*);
        $crate::__model_op_fn!(vaccel_tf_model_load, tf_model_load, $resolve, status, $(#[$attr])*);
        $crate::__model_op_fn!(vaccel_tf_model_unload, tf_model_unload, $resolve, status, $(#[$attr])*);
        $crate::__image_op_fn!(vaccel_image_detection, ImageDetect, $resolve, $(#[$attr])*);
        $crate::__image_op_fn!(vaccel_image_segmentation, ImageSegment, $resolve, $(#[$attr])*);
        $crate::__image_op_fn!(vaccel_image_pose, ImagePose, $resolve, $(#[$attr])*);
        $crate::__image_op_fn!(vaccel_image_depth, ImageDepth, $resolve, $(#[$attr])*);

        /// `vaccel_noop`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_noop(sess: *mut vaccel_session) -> c_int {
            guard("vaccel_noop", || {
                // SAFETY: `sess` is null or a valid view (the op's C contract).
                unsafe { <$resolve as Resolve>::session(sess) }?.noop()
            })
        }

        /// `vaccel_exec`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_exec(
            sess: *mut vaccel_session,
            library: *const c_char,
            fn_symbol: *const c_char,
            read: *mut vaccel_arg,
            nr_read: usize,
            write: *mut vaccel_arg,
            nr_write: usize,
        ) -> c_int {
            guard("vaccel_exec", || {
                // SAFETY: `sess` is null or a valid view (the op's C contract).
                let session = unsafe { <$resolve as Resolve>::session(sess) }?;
                // SAFETY: caller guarantees (module docs).
                let (library, symbol, (r, mut w)) = unsafe {
                    (
                        ffi::str_arg(library, "library")?,
                        ffi::str_arg(fn_symbol, "fn_symbol")?,
                        c_args(read, nr_read, write, nr_write)?,
                    )
                };
                session.exec(library, symbol, &r, &mut w)
            })
        }

        /// `vaccel_exec_with_resource`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_exec_with_resource(
            sess: *mut vaccel_session,
            resource: *mut vaccel_resource,
            fn_symbol: *const c_char,
            read: *mut vaccel_arg,
            nr_read: usize,
            write: *mut vaccel_arg,
            nr_write: usize,
        ) -> c_int {
            guard("vaccel_exec_with_resource", || {
                // SAFETY: `sess` is null or a valid view (the op's C contract).
                let session = unsafe { <$resolve as Resolve>::session(sess) }?;
                // SAFETY: `resource` is null or a valid view (the op's C contract).
                let res = unsafe { <$resolve as Resolve>::resource(resource, sess) }?;
                // SAFETY: caller guarantees (module docs).
                let (symbol, (r, mut w)) = unsafe {
                    (
                        ffi::str_arg(fn_symbol, "fn_symbol")?,
                        c_args(read, nr_read, write, nr_write)?,
                    )
                };
                session.exec_with_resource(&res, symbol, &r, &mut w)
            })
        }

        /// `vaccel_image_classification`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_image_classification(
            sess: *mut vaccel_session,
            img: *const c_void,
            out_text: *mut u8,
            out_imgname: *mut u8,
            len_img: usize,
            len_out_text: usize,
            len_out_imgname: usize,
        ) -> c_int {
            guard("vaccel_image_classification", || {
                // SAFETY: `sess` is null or a valid view (the op's C contract).
                let session = unsafe { <$resolve as Resolve>::session(sess) }?;
                ffi::check_disjoint(
                    &[
                        Span::read(img.cast::<u8>(), len_img),
                        Span::write(out_text, len_out_text),
                        Span::write(out_imgname, len_out_imgname),
                    ],
                    "image classification",
                )?;
                // SAFETY: caller guarantees; the outputs are disjoint from each other and the image.
                let (image, text, imgname) = unsafe {
                    (
                        ffi::bytes(img, len_img, "img")?,
                        ffi::slice_mut(out_text, len_out_text, "out_text")?,
                        ffi::slice_mut(out_imgname, len_out_imgname, "out_imgname")?,
                    )
                };
                session.image_classify(image, text, imgname)
            })
        }

        /// `vaccel_sgemm`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_sgemm(
            sess: *mut vaccel_session,
            m: i64,
            n: i64,
            k: i64,
            alpha: f32,
            a: *mut f32,
            lda: i64,
            b: *mut f32,
            ldb: i64,
            beta: f32,
            c: *mut f32,
            ldc: i64,
        ) -> c_int {
            guard("vaccel_sgemm", || {
                // SAFETY: `sess` is null or a valid view (the op's C contract).
                let session = unsafe { <$resolve as Resolve>::session(sess) }?;
                let a_len = extent(m, lda, k, "sgemm A")?;
                let b_len = extent(k, ldb, n, "sgemm B")?;
                let c_len = extent(m, ldc, n, "sgemm C")?;
                ffi::check_disjoint(
                    &[
                        Span::read(a.cast_const(), a_len),
                        Span::read(b.cast_const(), b_len),
                        Span::write(c.cast_const(), c_len),
                    ],
                    "sgemm",
                )?;
                // SAFETY: the caller's arrays hold the elements their dimensions span; C is disjoint
                // from A and B.
                let (sa, sb, sc) = unsafe {
                    (
                        ffi::slice(a.cast_const(), a_len, "a")?,
                        ffi::slice(b.cast_const(), b_len, "b")?,
                        ffi::slice_mut(c, c_len, "c")?,
                    )
                };
                let args = SgemmArgs {
                    m,
                    n,
                    k,
                    alpha,
                    a: sa,
                    lda,
                    b: sb,
                    ldb,
                    beta,
                    ldc,
                };
                session.sgemm(&args, sc)
            })
        }

        /// `vaccel_fpga_arraycopy`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_fpga_arraycopy(
            sess: *mut vaccel_session,
            a: *mut c_int,
            out_a: *mut c_int,
            len_a: usize,
        ) -> c_int {
            guard("vaccel_fpga_arraycopy", || {
                // SAFETY: `sess` is null or a valid view; the arrays hold `len_a` ints (the
                // op's C contract).
                let (session, ([a], [out])) = unsafe {
                    (
                        <$resolve as Resolve>::session(sess)?,
                        arrays("fpga_arraycopy", [(a, len_a, "a")], [(out_a, len_a, "out_a")])?,
                    )
                };
                session.fpga_arraycopy(a, out)
            })
        }

        /// `vaccel_fpga_mmult`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_fpga_mmult(
            sess: *mut vaccel_session,
            a: *mut f32,
            b: *mut f32,
            c: *mut f32,
            len_a: usize,
        ) -> c_int {
            guard("vaccel_fpga_mmult", || {
                // SAFETY: as for `vaccel_fpga_arraycopy`, with `len_a` floats each.
                let (session, ([a, b], [c])) = unsafe {
                    (
                        <$resolve as Resolve>::session(sess)?,
                        arrays(
                            "fpga_mmult",
                            [(a, len_a, "a"), (b, len_a, "b")],
                            [(c, len_a, "c")],
                        )?,
                    )
                };
                session.fpga_mmult(a, b, c)
            })
        }

        /// `vaccel_fpga_parallel`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_fpga_parallel(
            sess: *mut vaccel_session,
            a: *mut f32,
            b: *mut f32,
            add_output: *mut f32,
            mult_output: *mut f32,
            len_a: usize,
        ) -> c_int {
            guard("vaccel_fpga_parallel", || {
                let inputs = [(a, len_a, "a"), (b, len_a, "b")];
                let outputs = [(add_output, len_a, "add_output"), (mult_output, len_a, "mult_output")];
                // SAFETY: as for `vaccel_fpga_arraycopy`, with `len_a` floats each.
                let (session, ([a, b], [add, mult])) = unsafe {
                    (
                        <$resolve as Resolve>::session(sess)?,
                        arrays("fpga_parallel", inputs, outputs)?,
                    )
                };
                session.fpga_parallel(a, b, add, mult)
            })
        }

        /// `vaccel_fpga_vadd`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_fpga_vadd(
            sess: *mut vaccel_session,
            a: *mut f32,
            b: *mut f32,
            c: *mut f32,
            len_a: usize,
            len_b: usize,
        ) -> c_int {
            guard("vaccel_fpga_vadd", || {
                let inputs = [(a, len_a, "a"), (b, len_b, "b")];
                // SAFETY: as for `vaccel_fpga_arraycopy`: `a` and `c` hold `len_a` floats,
                // `b` holds `len_b`.
                let (session, ([a, b], [c])) = unsafe {
                    (
                        <$resolve as Resolve>::session(sess)?,
                        arrays("fpga_vadd", inputs, [(c, len_a, "c")])?,
                    )
                };
                session.fpga_vadd(a, b, c)
            })
        }

        /// `vaccel_minmax`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_minmax(
            sess: *mut vaccel_session,
            indata: *const f64,
            ndata: c_int,
            low_threshold: c_int,
            high_threshold: c_int,
            outdata: *mut f64,
            min: *mut f64,
            max: *mut f64,
        ) -> c_int {
            guard("vaccel_minmax", || {
                // SAFETY: `sess` is null or a valid view (the op's C contract).
                let session = unsafe { <$resolve as Resolve>::session(sess) }?;
                let n = ffi::count(ndata, "ndata")?;
                let min = ffi::out_ptr(min, "min")?;
                let max = ffi::out_ptr(max, "max")?;
                ffi::check_disjoint(
                    &[
                        Span::read(indata, n),
                        Span::write(outdata.cast_const(), n),
                        Span::write(min.cast_const(), 1),
                        Span::write(max.cast_const(), 1),
                    ],
                    "minmax",
                )?;
                // SAFETY: both arrays hold `ndata` doubles (caller guarantee), disjoint.
                let (input, output) = unsafe {
                    (
                        ffi::slice(indata, n, "indata")?,
                        ffi::slice_mut(outdata, n, "outdata")?,
                    )
                };
                let (lo, hi) = session.minmax(input, low_threshold, high_threshold, output)?;
                // SAFETY: checked by `out_ptr`.
                unsafe {
                    ffi::write_out(min, lo);
                    ffi::write_out(max, hi);
                }
                Ok(())
            })
        }

        /// `vaccel_opencv`: the args pass through to the plugin.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_opencv(
            sess: *mut vaccel_session,
            read: *mut vaccel_arg,
            nr_read: c_int,
            write: *mut vaccel_arg,
            nr_write: c_int,
        ) -> c_int {
            guard("vaccel_opencv", || {
                // SAFETY: `sess` is null or a valid view (the op's C contract).
                let session = unsafe { <$resolve as Resolve>::session(sess) }?;
                // SAFETY: caller guarantees (module docs).
                let (r, mut w) = unsafe { c_args_counted(read, nr_read, write, nr_write) }?;
                session.opencv(&r, &mut w)
            })
        }

        /// `vaccel_tf_model_run`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_tf_model_run(
            sess: *mut vaccel_session,
            model: *const vaccel_resource,
            run_options: *const vaccel_tf_buffer,
            in_nodes: *const vaccel_tf_node,
            in_tensors: *const *mut vaccel_tf_tensor,
            nr_inputs: c_int,
            out_nodes: *const vaccel_tf_node,
            out_tensors: *mut *mut vaccel_tf_tensor,
            nr_outputs: c_int,
            status: *mut vaccel_tf_status,
        ) -> c_int {
            guard("vaccel_tf_model_run", || {
                let (session, model, nr_out) = {
                    // SAFETY: `sess` and `model` are null or valid views (the op's C contract).
                    unsafe { model_run::<$resolve, _>(sess, model, out_tensors, nr_outputs) }?
                };
                let nr_in = ffi::count(nr_inputs, "nr_inputs")?;
                // SAFETY: caller guarantees (module docs).
                let (options, ins, inputs, outs) = unsafe {
                    let options = match run_options.as_ref() {
                        Some(o) => Some(ffi::bytes(o.data, o.size, "run_options")?),
                        None => None,
                    };
                    (
                        options,
                        nodes(in_nodes, nr_in, "in_nodes")?,
                        t::views::<vaccel_tf_tensor>(in_tensors, nr_inputs, "in_tensors")?,
                        nodes(out_nodes, nr_out, "out_nodes")?,
                    )
                };
                let out = session.tf_model_run(&model, options, &ins, &inputs, &outs)?;
                // SAFETY: `out_tensors` holds `nr_outputs` slots (caller guarantee); the runtime
                // returned exactly that many outputs.
                unsafe { hand_out::<vaccel_tf_tensor>(out_tensors, &out.outputs) }?;
                // SAFETY: null or writable (caller guarantee).
                unsafe { t::fill_tf_status(status, &out.status) }
            })
        }

        /// `vaccel_tflite_model_run`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_tflite_model_run(
            sess: *mut vaccel_session,
            model: *const vaccel_resource,
            inputs: *const *mut vaccel_tflite_tensor,
            nr_inputs: c_int,
            outputs: *mut *mut vaccel_tflite_tensor,
            nr_outputs: c_int,
            status: *mut u8,
        ) -> c_int {
            guard("vaccel_tflite_model_run", || {
                let (session, model, nr_out) = {
                    // SAFETY: `sess` and `model` are null or valid views (the op's C contract).
                    unsafe { model_run::<$resolve, _>(sess, model, outputs, nr_outputs) }?
                };
                // SAFETY: caller guarantees (module docs).
                let ins = unsafe { t::views::<vaccel_tflite_tensor>(inputs, nr_inputs, "inputs") }?;
                let out = session.tflite_model_run(&model, &ins, nr_out)?;
                // SAFETY: `outputs` holds `nr_outputs` slots (caller guarantee).
                unsafe { hand_out::<vaccel_tflite_tensor>(outputs, &out.outputs) }?;
                if !status.is_null() {
                    // SAFETY: non-null and writable (caller guarantee).
                    unsafe { status.write(out.status) };
                }
                Ok(())
            })
        }

        /// `vaccel_torch_model_run`.
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_torch_model_run(
            sess: *mut vaccel_session,
            model: *const vaccel_resource,
            run_options: *const vaccel_torch_buffer,
            inputs: *const *mut vaccel_torch_tensor,
            nr_inputs: c_int,
            outputs: *mut *mut vaccel_torch_tensor,
            nr_outputs: c_int,
        ) -> c_int {
            guard("vaccel_torch_model_run", || {
                let (session, model, nr_out) = {
                    // SAFETY: `sess` and `model` are null or valid views (the op's C contract).
                    unsafe { model_run::<$resolve, _>(sess, model, outputs, nr_outputs) }?
                };
                // SAFETY: caller guarantees (module docs).
                let (options, ins) = unsafe {
                    let options = match run_options.as_ref() {
                        Some(o) => Some(ffi::bytes(o.data.cast::<c_void>(), o.size, "run_options")?),
                        None => None,
                    };
                    (
                        options,
                        t::views::<vaccel_torch_tensor>(inputs, nr_inputs, "inputs")?,
                    )
                };
                let out = session.torch_model_run(&model, options, &ins, nr_out)?;
                // SAFETY: `outputs` holds `nr_outputs` slots (caller guarantee).
                unsafe { hand_out::<vaccel_torch_tensor>(outputs, &out) }
            })
        }

        /// `vaccel_torch_sgemm` (deprecated upstream).
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn vaccel_torch_sgemm(
            sess: *mut vaccel_session,
            in_a: *mut *mut vaccel_torch_tensor,
            in_b: *mut *mut vaccel_torch_tensor,
            in_c: *mut *mut vaccel_torch_tensor,
            m: c_int,
            n: c_int,
            k: c_int,
            out: *mut *mut vaccel_torch_tensor,
        ) -> c_int {
            guard("vaccel_torch_sgemm", || {
                // SAFETY: `sess` is null or a valid view (the op's C contract).
                let session = unsafe { <$resolve as Resolve>::session(sess) }?;
                let out = ffi::out_ptr(out, "out")?;
                // SAFETY: each `in_*` points at a tensor pointer (caller guarantee).
                let (a, b, c) = unsafe {
                    let one = |p: *mut *mut vaccel_torch_tensor, what: &str| -> Res<_> {
                        let tensor = *ffi::as_ref(p, what)?;
                        t::view::<vaccel_torch_tensor>(tensor, what)
                    };
                    (one(in_a, "in_A")?, one(in_b, "in_B")?, one(in_c, "in_C")?)
                };
                if let Some(result) = session.torch_sgemm(&a, &b, &c, m, n, k)? {
                    let p = t::to_c::<vaccel_torch_tensor>(&result)?;
                    // SAFETY: checked by `out_ptr`.
                    unsafe { ffi::write_out(out, p) };
                }
                Ok(())
            })
        }

            $crate::op_table!(__op_function);
        }
    };
}

/// The four image ops of the `(img, out_imgname)` form.
///
/// # Safety
///
/// `session`'s views resolved; the rest as the C op's contract (module docs).
pub unsafe fn image_op(
    op: OpType,
    session: &Session,
    img: *const c_void,
    out_imgname: *mut u8,
    len_img: usize,
    len_out_imgname: usize,
) -> Res<()> {
    ffi::check_disjoint(
        &[
            Span::read(img.cast::<u8>(), len_img),
            Span::write(out_imgname, len_out_imgname),
        ],
        "image op",
    )?;
    // SAFETY: caller guarantees; the output is disjoint from the image.
    let (image, imgname) = unsafe {
        (
            ffi::bytes(img, len_img, "img")?,
            ffi::slice_mut(out_imgname, len_out_imgname, "out_imgname")?,
        )
    };
    match op {
        OpType::ImageDetect => session.image_detect(image, imgname),
        OpType::ImageSegment => session.image_segment(image, imgname),
        OpType::ImagePose => session.image_pose(image, imgname),
        _ => session.image_depth(image, imgname),
    }
}

/// Elements a row-major matrix of `rows` rows of stride `ld` (the last row `cols` long)
/// spans.
pub fn extent(rows: i64, ld: i64, cols: i64, what: &str) -> Res<usize> {
    let dim =
        |v: i64| usize::try_from(v).map_err(|_| invalid(format!("{what}: negative dimension")));
    let (rows, ld, cols) = (dim(rows)?, dim(ld)?, dim(cols)?);
    if rows == 0 || cols == 0 {
        return Ok(0);
    }
    if ld < cols {
        return Err(invalid(format!(
            "{what}: leading dimension smaller than a row"
        )));
    }
    (rows - 1)
        .checked_mul(ld)
        .and_then(|n| n.checked_add(cols))
        .ok_or_else(|| invalid(format!("{what}: dimensions overflow")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_every_op_once() {
        let listed = op_table!(table_ops);
        assert_eq!(listed.len(), OpType::ALL.len());
        for op in OpType::ALL {
            assert_eq!(
                listed.iter().filter(|o| **o == *op).count(),
                1,
                "{op} is not in the op table exactly once"
            );
        }
    }

    #[test]
    fn sgemm_extents() {
        assert_eq!(extent(2, 3, 3, "t").unwrap(), 6);
        assert_eq!(extent(2, 4, 3, "t").unwrap(), 7);
        assert_eq!(extent(0, 4, 3, "t").unwrap(), 0);
        assert!(extent(-1, 4, 3, "t").is_err());
        assert!(extent(i64::MAX, i64::MAX, 1, "t").is_err());
    }
}
