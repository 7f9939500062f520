//! The operations (`vaccel/ops/*.h`): each finds the Rust session (and resources) of its C
//! arguments, turns the C buffers into borrowed slices and typed args (nothing is copied:
//! plugins write straight into the caller's output buffers), and calls the runtime.
//!
//! # Safety
//!
//! `sess`/resource arguments are looked up by address. Buffers hold the sizes their length
//! arguments (or dimensions) say; `struct vaccel_arg` arrays hold their counts and each arg's
//! `buf` holds its `size`; strings are NUL-terminated; tensors and nodes are valid for their
//! counts; out-parameters are null or writable. Output buffers must not overlap inputs or
//! each other (refused with `VACCEL_EINVAL` where detectable).

use std::ffi::{c_char, c_int, c_void};

use vaccel_abi::{
    vaccel_arg, vaccel_resource, vaccel_session, vaccel_tf_buffer, vaccel_tf_node,
    vaccel_tf_status, vaccel_tf_tensor, vaccel_tflite_tensor, vaccel_torch_buffer,
    vaccel_torch_tensor,
};
use vaccel_core::OpType;
use vaccel_core::plugin::SgemmArgs;

use crate::ffi::{self, Res, Span, guard, invalid};
use crate::views;
use vaccel_ffi::arg::c_args;
use vaccel_ffi::tensor::{self as t, hand_out, nodes};

/// `vaccel_noop`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_noop(sess: *mut vaccel_session) -> c_int {
    guard("vaccel_noop", || views::session_from_c(sess)?.noop())
}

/// `vaccel_exec`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
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
        let session = views::session_from_c(sess)?;
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
/// See the module docs.
#[unsafe(no_mangle)]
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
        let session = views::session_from_c(sess)?;
        let res = views::resource_from_c(resource)?;
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
/// See the module docs.
#[unsafe(no_mangle)]
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
        let session = views::session_from_c(sess)?;
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

/// The four image ops of the `(img, out_imgname)` form.
///
/// # Safety
///
/// See the module docs.
unsafe fn image_op(
    op: OpType,
    sess: *mut vaccel_session,
    img: *const c_void,
    out_imgname: *mut u8,
    len_img: usize,
    len_out_imgname: usize,
) -> Res<()> {
    let session = views::session_from_c(sess)?;
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

macro_rules! image_export {
    ($name:ident, $op:expr) => {
        /// See `vaccel/ops/image.h`.
        ///
        /// # Safety
        ///
        /// See the module docs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            sess: *mut vaccel_session,
            img: *const c_void,
            out_imgname: *mut u8,
            len_img: usize,
            len_out_imgname: usize,
        ) -> c_int {
            // SAFETY: forwarded caller guarantees.
            guard(stringify!($name), || unsafe {
                image_op($op, sess, img, out_imgname, len_img, len_out_imgname)
            })
        }
    };
}

image_export!(vaccel_image_detection, OpType::ImageDetect);
image_export!(vaccel_image_segmentation, OpType::ImageSegment);
image_export!(vaccel_image_pose, OpType::ImagePose);
image_export!(vaccel_image_depth, OpType::ImageDepth);

/// Elements a row-major matrix of `rows` rows of stride `ld` (the last row `cols` long)
/// spans.
fn extent(rows: i64, ld: i64, cols: i64, what: &str) -> Res<usize> {
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

/// `vaccel_sgemm`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
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
        let session = views::session_from_c(sess)?;
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
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_fpga_arraycopy(
    sess: *mut vaccel_session,
    a: *mut c_int,
    out_a: *mut c_int,
    len_a: usize,
) -> c_int {
    guard("vaccel_fpga_arraycopy", || {
        let session = views::session_from_c(sess)?;
        ffi::check_disjoint(
            &[
                Span::read(a.cast_const(), len_a),
                Span::write(out_a.cast_const(), len_a),
            ],
            "fpga_arraycopy",
        )?;
        // SAFETY: both arrays hold `len_a` ints (caller guarantee) and are disjoint.
        let (sa, so) = unsafe {
            (
                ffi::slice(a.cast_const(), len_a, "a")?,
                ffi::slice_mut(out_a, len_a, "out_a")?,
            )
        };
        session.fpga_arraycopy(sa, so)
    })
}

/// `vaccel_fpga_mmult`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_fpga_mmult(
    sess: *mut vaccel_session,
    a: *mut f32,
    b: *mut f32,
    c: *mut f32,
    len_a: usize,
) -> c_int {
    guard("vaccel_fpga_mmult", || {
        let session = views::session_from_c(sess)?;
        ffi::check_disjoint(
            &[
                Span::read(a.cast_const(), len_a),
                Span::read(b.cast_const(), len_a),
                Span::write(c.cast_const(), len_a),
            ],
            "fpga_mmult",
        )?;
        // SAFETY: every array holds `len_a` floats (caller guarantee); `c` is disjoint.
        let (sa, sb, sc) = unsafe {
            (
                ffi::slice(a.cast_const(), len_a, "a")?,
                ffi::slice(b.cast_const(), len_a, "b")?,
                ffi::slice_mut(c, len_a, "c")?,
            )
        };
        session.fpga_mmult(sa, sb, sc)
    })
}

/// `vaccel_fpga_parallel`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_fpga_parallel(
    sess: *mut vaccel_session,
    a: *mut f32,
    b: *mut f32,
    add_output: *mut f32,
    mult_output: *mut f32,
    len_a: usize,
) -> c_int {
    guard("vaccel_fpga_parallel", || {
        let session = views::session_from_c(sess)?;
        ffi::check_disjoint(
            &[
                Span::read(a.cast_const(), len_a),
                Span::read(b.cast_const(), len_a),
                Span::write(add_output.cast_const(), len_a),
                Span::write(mult_output.cast_const(), len_a),
            ],
            "fpga_parallel",
        )?;
        // SAFETY: every array holds `len_a` floats (caller guarantee); outputs disjoint.
        let (sa, sb, add, mult) = unsafe {
            (
                ffi::slice(a.cast_const(), len_a, "a")?,
                ffi::slice(b.cast_const(), len_a, "b")?,
                ffi::slice_mut(add_output, len_a, "add_output")?,
                ffi::slice_mut(mult_output, len_a, "mult_output")?,
            )
        };
        session.fpga_parallel(sa, sb, add, mult)
    })
}

/// `vaccel_fpga_vadd`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_fpga_vadd(
    sess: *mut vaccel_session,
    a: *mut f32,
    b: *mut f32,
    c: *mut f32,
    len_a: usize,
    len_b: usize,
) -> c_int {
    guard("vaccel_fpga_vadd", || {
        let session = views::session_from_c(sess)?;
        ffi::check_disjoint(
            &[
                Span::read(a.cast_const(), len_a),
                Span::read(b.cast_const(), len_b),
                Span::write(c.cast_const(), len_a),
            ],
            "fpga_vadd",
        )?;
        // SAFETY: `a` and `c` hold `len_a` floats, `b` holds `len_b` (caller guarantee).
        let (sa, sb, sc) = unsafe {
            (
                ffi::slice(a.cast_const(), len_a, "a")?,
                ffi::slice(b.cast_const(), len_b, "b")?,
                ffi::slice_mut(c, len_a, "c")?,
            )
        };
        session.fpga_vadd(sa, sb, sc)
    })
}

/// `vaccel_minmax`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
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
        let session = views::session_from_c(sess)?;
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

/// `vaccel_genop`: read[0] is the op type (UINT8), then the op's operands.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_genop(
    sess: *mut vaccel_session,
    read: *mut vaccel_arg,
    nr_read: c_int,
    write: *mut vaccel_arg,
    nr_write: c_int,
) -> c_int {
    guard("vaccel_genop", || {
        let session = views::session_from_c(sess)?;
        let nr_read = ffi::count(nr_read, "nr_read")?;
        let nr_write = ffi::count(nr_write, "nr_write")?;
        // SAFETY: caller guarantees (module docs).
        let (r, mut w) = unsafe { c_args(read, nr_read, write, nr_write) }?;
        session.genop(&r, &mut w)
    })
}

/// `vaccel_opencv`: the args pass through to the plugin.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_opencv(
    sess: *mut vaccel_session,
    read: *mut vaccel_arg,
    nr_read: c_int,
    write: *mut vaccel_arg,
    nr_write: c_int,
) -> c_int {
    guard("vaccel_opencv", || {
        let session = views::session_from_c(sess)?;
        let nr_read = ffi::count(nr_read, "nr_read")?;
        let nr_write = ffi::count(nr_write, "nr_write")?;
        // SAFETY: caller guarantees (module docs).
        let (r, mut w) = unsafe { c_args(read, nr_read, write, nr_write) }?;
        session.opencv(&r, &mut w)
    })
}

/// `vaccel_opencv_unpack`: the same as `vaccel_opencv` (upstream's genop unpacker).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_opencv_unpack(
    sess: *mut vaccel_session,
    read: *mut vaccel_arg,
    nr_read: c_int,
    write: *mut vaccel_arg,
    nr_write: c_int,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { vaccel_opencv(sess, read, nr_read, write, nr_write) }
}

/// `vaccel_tf_model_load`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tf_model_load(
    sess: *mut vaccel_session,
    model: *mut vaccel_resource,
    status: *mut vaccel_tf_status,
) -> c_int {
    guard("vaccel_tf_model_load", || {
        let session = views::session_from_c(sess)?;
        let model = views::resource_from_c(model)?;
        let s = session.tf_model_load(&model)?;
        // SAFETY: null or writable (caller guarantee).
        unsafe { t::fill_tf_status(status, &s) }
    })
}

/// `vaccel_tf_model_unload`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tf_model_unload(
    sess: *mut vaccel_session,
    model: *mut vaccel_resource,
    status: *mut vaccel_tf_status,
) -> c_int {
    guard("vaccel_tf_model_unload", || {
        let session = views::session_from_c(sess)?;
        let model = views::resource_from_c(model)?;
        let s = session.tf_model_unload(&model)?;
        // SAFETY: null or writable (caller guarantee).
        unsafe { t::fill_tf_status(status, &s) }
    })
}

/// `vaccel_tf_model_run`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
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
        let session = views::session_from_c(sess)?;
        let model = views::resource_from_c(model)?;
        let nr_out = ffi::count(nr_outputs, "nr_outputs")?;
        let nr_in = ffi::count(nr_inputs, "nr_inputs")?;
        if nr_out > 0 {
            ffi::out_ptr(out_tensors, "out_tensors")?;
        }
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

/// `vaccel_tflite_model_load`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tflite_model_load(
    sess: *mut vaccel_session,
    model: *mut vaccel_resource,
) -> c_int {
    guard("vaccel_tflite_model_load", || {
        let session = views::session_from_c(sess)?;
        let model = views::resource_from_c(model)?;
        session.tflite_model_load(&model)
    })
}

/// `vaccel_tflite_model_unload`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_tflite_model_unload(
    sess: *mut vaccel_session,
    model: *mut vaccel_resource,
) -> c_int {
    guard("vaccel_tflite_model_unload", || {
        let session = views::session_from_c(sess)?;
        let model = views::resource_from_c(model)?;
        session.tflite_model_unload(&model)
    })
}

/// `vaccel_tflite_model_run`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
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
        let session = views::session_from_c(sess)?;
        let model = views::resource_from_c(model)?;
        let nr_out = ffi::count(nr_outputs, "nr_outputs")?;
        if nr_out > 0 {
            ffi::out_ptr(outputs, "outputs")?;
        }
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

/// `vaccel_torch_model_load`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_torch_model_load(
    sess: *mut vaccel_session,
    model: *mut vaccel_resource,
) -> c_int {
    guard("vaccel_torch_model_load", || {
        let session = views::session_from_c(sess)?;
        let model = views::resource_from_c(model)?;
        session.torch_model_load(&model)
    })
}

/// `vaccel_torch_model_run`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
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
        let session = views::session_from_c(sess)?;
        let model = views::resource_from_c(model)?;
        let nr_out = ffi::count(nr_outputs, "nr_outputs")?;
        if nr_out > 0 {
            ffi::out_ptr(outputs, "outputs")?;
        }
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
/// See the module docs.
#[unsafe(no_mangle)]
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
        let session = views::session_from_c(sess)?;
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
