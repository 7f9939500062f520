//! The exported op functions: C views in, the plugin's Rust methods on the attached objects, results
//! written back into the host's buffers (or heap tensors the host frees with `free`).

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

use vaccel_abi::{
    vaccel_arg, vaccel_resource, vaccel_session, vaccel_tf_buffer, vaccel_tf_node,
    vaccel_tf_status, vaccel_tf_tensor, vaccel_tflite_tensor, vaccel_torch_buffer,
    vaccel_torch_tensor,
};
use vaccel_core::plugin::{Plugin, SgemmArgs};
use vaccel_core::tensor::Tensor;
use vaccel_core::{OpType, Result, Session, TorchDataType};

use crate::attached;
use crate::descriptor::state;
use crate::ffi::{self, guard, invalid};
use vaccel_ffi::arg::c_args;
use vaccel_ffi::tensor as ct;

/// The plugin and the session attached to `sess`.
///
/// # Safety
///
/// `sess` is a valid session view.
unsafe fn ctx(sess: *mut vaccel_session) -> Result<(&'static Arc<dyn Plugin>, Arc<Session>)> {
    let plugin = &state().ok_or_else(attached::not_constructed)?.plugin;
    // SAFETY: caller guarantee.
    Ok((plugin, unsafe { attached::session(sess) }?))
}

/// The plugin and the attached session and resource.
type Context = (
    &'static Arc<dyn Plugin>,
    Arc<Session>,
    Arc<vaccel_core::Resource>,
);

/// The plugin and the session and resource attached to `sess` and `res`.
///
/// # Safety
///
/// `sess` and `res` are valid views.
unsafe fn ctx_res(sess: *mut vaccel_session, res: *mut vaccel_resource) -> Result<Context> {
    let plugin = &state().ok_or_else(attached::not_constructed)?.plugin;
    // SAFETY: caller guarantee.
    let (s, r) = unsafe { attached::resource(res, sess) }?;
    Ok((plugin, s, r))
}

/// The function the descriptor registers for `op`.
pub(crate) fn function(op: OpType) -> *mut c_void {
    let f: *const () = match op {
        OpType::Noop => noop as *const (),
        OpType::Exec => exec as *const (),
        OpType::ExecWithResource => exec_with_resource as *const (),
        OpType::ImageClassify => image_classify as *const (),
        OpType::ImageDetect => image_detect as *const (),
        OpType::ImageSegment => image_segment as *const (),
        OpType::ImagePose => image_pose as *const (),
        OpType::ImageDepth => image_depth as *const (),
        OpType::TfModelLoad => tf_model_load as *const (),
        OpType::TfModelUnload => tf_model_unload as *const (),
        OpType::TfModelRun => tf_model_run as *const (),
        OpType::TfliteModelLoad => tflite_model_load as *const (),
        OpType::TfliteModelUnload => tflite_model_unload as *const (),
        OpType::TfliteModelRun => tflite_model_run as *const (),
        OpType::TorchModelLoad => torch_model_load as *const (),
        OpType::TorchModelRun => torch_model_run as *const (),
        OpType::TorchSgemm => torch_sgemm as *const (),
        OpType::BlasSgemm => sgemm as *const (),
        OpType::FpgaArraycopy => fpga_arraycopy as *const (),
        OpType::FpgaMmult => fpga_mmult as *const (),
        OpType::FpgaParallel => fpga_parallel as *const (),
        OpType::FpgaVectoradd => fpga_vadd as *const (),
        OpType::Minmax => minmax as *const (),
        OpType::Opencv => opencv as *const (),
    };
    f.cast_mut().cast()
}

unsafe extern "C" fn noop(sess: *mut vaccel_session) -> c_int {
    guard(|| {
        // SAFETY: the host passes a valid view (op contract).
        let (p, s) = unsafe { ctx(sess) }?;
        p.noop(&s)
    })
}

unsafe extern "C" fn exec(
    sess: *mut vaccel_session,
    library: *const c_char,
    fn_symbol: *const c_char,
    read: *mut vaccel_arg,
    nr_read: usize,
    write: *mut vaccel_arg,
    nr_write: usize,
) -> c_int {
    guard(|| {
        // SAFETY: the host passes valid views, strings and arg arrays (op contract).
        let (p, s, library, symbol, (r, mut w)) = unsafe {
            let (p, s) = ctx(sess)?;
            (
                p,
                s,
                ffi::str_arg(library, "library")?,
                ffi::str_arg(fn_symbol, "fn_symbol")?,
                c_args(read, nr_read, write, nr_write)?,
            )
        };
        p.exec(&s, library, symbol, &r, &mut w)
    })
}

unsafe extern "C" fn exec_with_resource(
    sess: *mut vaccel_session,
    res: *mut vaccel_resource,
    fn_symbol: *const c_char,
    read: *mut vaccel_arg,
    nr_read: usize,
    write: *mut vaccel_arg,
    nr_write: usize,
) -> c_int {
    guard(|| {
        // SAFETY: the host passes valid views, strings and arg arrays (op contract).
        let (p, s, m, symbol, (r, mut w)) = unsafe {
            let (p, s, m) = ctx_res(sess, res)?;
            (
                p,
                s,
                m,
                ffi::str_arg(fn_symbol, "fn_symbol")?,
                c_args(read, nr_read, write, nr_write)?,
            )
        };
        p.exec_with_resource(&s, &m, symbol, &r, &mut w)
    })
}

unsafe extern "C" fn image_classify(
    sess: *mut vaccel_session,
    img: *const c_void,
    out_text: *mut u8,
    out_imgname: *mut u8,
    len_img: usize,
    len_out_text: usize,
    len_out_imgname: usize,
) -> c_int {
    guard(|| {
        // SAFETY: the host passes valid buffers of these lengths, outputs disjoint (op
        // contract).
        let (p, s, image, text, name) = unsafe {
            let (p, s) = ctx(sess)?;
            (
                p,
                s,
                ffi::slice(img.cast::<u8>(), len_img, "img")?,
                ffi::slice_mut(out_text, len_out_text, "out_text")?,
                ffi::slice_mut(out_imgname, len_out_imgname, "out_imgname")?,
            )
        };
        p.image_classify(&s, image, text, name)
    })
}

/// The four `(img, out_imgname)` image ops.
///
/// # Safety
///
/// The host passes valid views and buffers (op contract).
unsafe fn image_op(
    op: OpType,
    sess: *mut vaccel_session,
    img: *const c_void,
    out_imgname: *mut u8,
    len_img: usize,
    len_out_imgname: usize,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let (p, s, image, name) = unsafe {
            let (p, s) = ctx(sess)?;
            (
                p,
                s,
                ffi::slice(img.cast::<u8>(), len_img, "img")?,
                ffi::slice_mut(out_imgname, len_out_imgname, "out_imgname")?,
            )
        };
        p.image_op(&s, op, image, name)
    })
}

macro_rules! image_fn {
    ($name:ident, $op:expr) => {
        unsafe extern "C" fn $name(
            sess: *mut vaccel_session,
            img: *const c_void,
            out_imgname: *mut u8,
            len_img: usize,
            len_out_imgname: usize,
        ) -> c_int {
            // SAFETY: forwarded op contract.
            unsafe { image_op($op, sess, img, out_imgname, len_img, len_out_imgname) }
        }
    };
}

image_fn!(image_detect, OpType::ImageDetect);
image_fn!(image_segment, OpType::ImageSegment);
image_fn!(image_pose, OpType::ImagePose);
image_fn!(image_depth, OpType::ImageDepth);

/// Elements a row-major matrix spans (0 when empty).
fn extent(rows: i64, ld: i64, cols: i64) -> Result<usize> {
    let dim = |v: i64| usize::try_from(v).map_err(|_| invalid("negative sgemm dimension"));
    let (rows, ld, cols) = (dim(rows)?, dim(ld)?, dim(cols)?);
    if rows == 0 || cols == 0 {
        return Ok(0);
    }
    (rows - 1)
        .checked_mul(ld)
        .and_then(|n| n.checked_add(cols))
        .ok_or_else(|| invalid("sgemm dimensions overflow"))
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn sgemm(
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
    guard(|| {
        let (a_len, b_len, c_len) = (extent(m, lda, k)?, extent(k, ldb, n)?, extent(m, ldc, n)?);
        // SAFETY: the host validated the arrays against these dimensions (op contract).
        let (p, s, sa, sb, sc) = unsafe {
            let (p, s) = ctx(sess)?;
            (
                p,
                s,
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
        args.validate(sc.len())?;
        p.sgemm(&s, &args, sc)
    })
}

unsafe extern "C" fn fpga_arraycopy(
    sess: *mut vaccel_session,
    a: *mut c_int,
    out_a: *mut c_int,
    len_a: usize,
) -> c_int {
    guard(|| {
        // SAFETY: both arrays hold `len_a` ints (op contract).
        let (p, s, sa, so) = unsafe {
            let (p, s) = ctx(sess)?;
            (
                p,
                s,
                ffi::slice(a.cast_const(), len_a, "a")?,
                ffi::slice_mut(out_a, len_a, "out_a")?,
            )
        };
        p.fpga_arraycopy(&s, sa, so)
    })
}

unsafe extern "C" fn fpga_mmult(
    sess: *mut vaccel_session,
    a: *mut f32,
    b: *mut f32,
    c: *mut f32,
    len_a: usize,
) -> c_int {
    guard(|| {
        // SAFETY: every array holds `len_a` floats (op contract).
        let (p, s, sa, sb, sc) = unsafe {
            let (p, s) = ctx(sess)?;
            (
                p,
                s,
                ffi::slice(a.cast_const(), len_a, "a")?,
                ffi::slice(b.cast_const(), len_a, "b")?,
                ffi::slice_mut(c, len_a, "c")?,
            )
        };
        p.fpga_mmult(&s, sa, sb, sc)
    })
}

unsafe extern "C" fn fpga_parallel(
    sess: *mut vaccel_session,
    a: *mut f32,
    b: *mut f32,
    add_output: *mut f32,
    mult_output: *mut f32,
    len_a: usize,
) -> c_int {
    guard(|| {
        // SAFETY: every array holds `len_a` floats (op contract).
        let (p, s, sa, sb, add, mult) = unsafe {
            let (p, s) = ctx(sess)?;
            (
                p,
                s,
                ffi::slice(a.cast_const(), len_a, "a")?,
                ffi::slice(b.cast_const(), len_a, "b")?,
                ffi::slice_mut(add_output, len_a, "add_output")?,
                ffi::slice_mut(mult_output, len_a, "mult_output")?,
            )
        };
        p.fpga_parallel(&s, sa, sb, add, mult)
    })
}

unsafe extern "C" fn fpga_vadd(
    sess: *mut vaccel_session,
    a: *mut f32,
    b: *mut f32,
    c: *mut f32,
    len_a: usize,
    len_b: usize,
) -> c_int {
    guard(|| {
        // SAFETY: `a`/`c` hold `len_a` floats, `b` holds `len_b` (op contract).
        let (p, s, sa, sb, sc) = unsafe {
            let (p, s) = ctx(sess)?;
            (
                p,
                s,
                ffi::slice(a.cast_const(), len_a, "a")?,
                ffi::slice(b.cast_const(), len_b, "b")?,
                ffi::slice_mut(c, len_a, "c")?,
            )
        };
        p.fpga_vadd(&s, sa, sb, sc)
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn minmax(
    sess: *mut vaccel_session,
    indata: *const f64,
    ndata: c_int,
    low_threshold: c_int,
    high_threshold: c_int,
    outdata: *mut f64,
    min: *mut f64,
    max: *mut f64,
) -> c_int {
    guard(|| {
        let n = ffi::count(ndata, "ndata")?;
        if min.is_null() || max.is_null() {
            return Err(invalid("min or max is NULL"));
        }
        // SAFETY: both arrays hold `ndata` doubles (op contract).
        let (p, s, input, output) = unsafe {
            let (p, s) = ctx(sess)?;
            (
                p,
                s,
                ffi::slice(indata, n, "indata")?,
                ffi::slice_mut(outdata, n, "outdata")?,
            )
        };
        let (lo, hi) = p.minmax(&s, input, low_threshold, high_threshold, output)?;
        // SAFETY: non-null, writable (op contract).
        unsafe {
            min.write(lo);
            max.write(hi);
        }
        Ok(())
    })
}

unsafe extern "C" fn opencv(
    sess: *mut vaccel_session,
    read: *mut vaccel_arg,
    nr_read: c_int,
    write: *mut vaccel_arg,
    nr_write: c_int,
) -> c_int {
    guard(|| {
        let (nr, nw) = (
            ffi::count(nr_read, "nr_read")?,
            ffi::count(nr_write, "nr_write")?,
        );
        // SAFETY: valid views and arg arrays (op contract).
        let (p, s, (r, mut w)) = unsafe {
            let (p, s) = ctx(sess)?;
            (p, s, c_args(read, nr, write, nw)?)
        };
        p.opencv(&s, &r, &mut w)
    })
}

unsafe extern "C" fn tf_model_load(
    sess: *mut vaccel_session,
    model: *mut vaccel_resource,
    status: *mut vaccel_tf_status,
) -> c_int {
    guard(|| {
        // SAFETY: valid views (op contract).
        let (p, s, m) = unsafe { ctx_res(sess, model) }?;
        let st = p.tf_model_load(&s, &m)?;
        // SAFETY: null or writable (op contract).
        unsafe { ct::fill_tf_status(status, &st) }
    })
}

unsafe extern "C" fn tf_model_unload(
    sess: *mut vaccel_session,
    model: *mut vaccel_resource,
    status: *mut vaccel_tf_status,
) -> c_int {
    guard(|| {
        // SAFETY: valid views (op contract).
        let (p, s, m) = unsafe { ctx_res(sess, model) }?;
        let st = p.tf_model_unload(&s, &m)?;
        // SAFETY: null or writable (op contract).
        unsafe { ct::fill_tf_status(status, &st) }
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn tf_model_run(
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
    guard(|| {
        let (nr_in, nr_out) = (
            ffi::count(nr_inputs, "nr_inputs")?,
            ffi::count(nr_outputs, "nr_outputs")?,
        );
        // SAFETY: valid views, options, nodes and tensors (op contract).
        let (p, s, m, options, ins, tensors, outs) = unsafe {
            let (p, s, m) = ctx_res(sess, model.cast_mut())?;
            let options = match run_options.as_ref() {
                Some(o) => Some(ffi::slice(
                    o.data.cast::<u8>().cast_const(),
                    o.size,
                    "run_options",
                )?),
                None => None,
            };
            (
                p,
                s,
                m,
                options,
                ct::nodes(in_nodes, nr_in, "in_nodes")?,
                ct::views::<vaccel_tf_tensor>(in_tensors, nr_inputs, "in_tensors")?,
                ct::nodes(out_nodes, nr_out, "out_nodes")?,
            )
        };
        let out = p.tf_model_run(&s, &m, options, &ins, &tensors, &outs)?;
        // SAFETY: `out_tensors` holds `nr_outputs` slots (op contract).
        unsafe {
            ct::hand_out::<vaccel_tf_tensor>(out_tensors, &out.outputs)?;
            ct::fill_tf_status(status, &out.status)
        }
    })
}

unsafe extern "C" fn tflite_model_load(
    sess: *mut vaccel_session,
    model: *mut vaccel_resource,
) -> c_int {
    guard(|| {
        // SAFETY: valid views (op contract).
        let (p, s, m) = unsafe { ctx_res(sess, model) }?;
        p.tflite_model_load(&s, &m)
    })
}

unsafe extern "C" fn tflite_model_unload(
    sess: *mut vaccel_session,
    model: *mut vaccel_resource,
) -> c_int {
    guard(|| {
        // SAFETY: valid views (op contract).
        let (p, s, m) = unsafe { ctx_res(sess, model) }?;
        p.tflite_model_unload(&s, &m)
    })
}

unsafe extern "C" fn tflite_model_run(
    sess: *mut vaccel_session,
    model: *const vaccel_resource,
    in_tensors: *const *mut vaccel_tflite_tensor,
    nr_inputs: c_int,
    out_tensors: *mut *mut vaccel_tflite_tensor,
    nr_outputs: c_int,
    status: *mut u8,
) -> c_int {
    guard(|| {
        let nr_out = ffi::count(nr_outputs, "nr_outputs")?;
        // SAFETY: valid views and tensors (op contract).
        let (p, s, m, tensors) = unsafe {
            let (p, s, m) = ctx_res(sess, model.cast_mut())?;
            (
                p,
                s,
                m,
                ct::views::<vaccel_tflite_tensor>(in_tensors, nr_inputs, "in_tensors")?,
            )
        };
        let out = p.tflite_model_run(&s, &m, &tensors, nr_out)?;
        // SAFETY: `out_tensors` holds `nr_outputs` slots; `status` null or writable.
        unsafe {
            ct::hand_out::<vaccel_tflite_tensor>(out_tensors, &out.outputs)?;
            if !status.is_null() {
                status.write(out.status);
            }
        }
        Ok(())
    })
}

unsafe extern "C" fn torch_model_load(
    sess: *mut vaccel_session,
    model: *mut vaccel_resource,
) -> c_int {
    guard(|| {
        // SAFETY: valid views (op contract).
        let (p, s, m) = unsafe { ctx_res(sess, model) }?;
        p.torch_model_load(&s, &m)
    })
}

unsafe extern "C" fn torch_model_run(
    sess: *mut vaccel_session,
    model: *const vaccel_resource,
    run_options: *const vaccel_torch_buffer,
    in_tensors: *const *mut vaccel_torch_tensor,
    nr_inputs: c_int,
    out_tensors: *mut *mut vaccel_torch_tensor,
    nr_outputs: c_int,
) -> c_int {
    guard(|| {
        let nr_out = ffi::count(nr_outputs, "nr_outputs")?;
        // SAFETY: valid views, options and tensors (op contract).
        let (p, s, m, options, tensors) = unsafe {
            let (p, s, m) = ctx_res(sess, model.cast_mut())?;
            let options = match run_options.as_ref() {
                Some(o) => Some(ffi::slice(
                    o.data.cast::<u8>().cast_const(),
                    o.size,
                    "run_options",
                )?),
                None => None,
            };
            (
                p,
                s,
                m,
                options,
                ct::views::<vaccel_torch_tensor>(in_tensors, nr_inputs, "in_tensors")?,
            )
        };
        let out = p.torch_model_run(&s, &m, options, &tensors, nr_out)?;
        // SAFETY: `out_tensors` holds `nr_outputs` slots (op contract).
        unsafe { ct::hand_out::<vaccel_torch_tensor>(out_tensors, &out) }
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn torch_sgemm(
    sess: *mut vaccel_session,
    in_a: *mut *mut vaccel_torch_tensor,
    in_b: *mut *mut vaccel_torch_tensor,
    in_c: *mut *mut vaccel_torch_tensor,
    m: c_int,
    n: c_int,
    k: c_int,
    out: *mut *mut vaccel_torch_tensor,
) -> c_int {
    guard(|| {
        // SAFETY: each `in_*` points at a valid tensor pointer (op contract).
        let (p, s, a, b, c) = unsafe {
            let (p, s) = ctx(sess)?;
            let one = |pp: *mut *mut vaccel_torch_tensor| -> Result<Tensor<'_, TorchDataType>> {
                let t = pp.as_ref().ok_or_else(|| invalid("tensor is NULL"))?;
                ct::view::<vaccel_torch_tensor>(*t, "tensor")
            };
            (p, s, one(in_a)?, one(in_b)?, one(in_c)?)
        };
        if let Some(result) = p.torch_sgemm(&s, &a, &b, &c, m, n, k)? {
            if out.is_null() {
                return Err(invalid("out is NULL"));
            }
            // SAFETY: `out` is one writable slot (op contract).
            unsafe { ct::hand_out::<vaccel_torch_tensor>(out, std::slice::from_ref(&result)) }?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgemm_extents() {
        assert_eq!(extent(2, 3, 3).unwrap(), 6);
        assert_eq!(extent(2, 4, 3).unwrap(), 7);
        assert_eq!(extent(0, 4, 3).unwrap(), 0);
        assert!(extent(-1, 4, 3).is_err());
        assert!(extent(i64::MAX, i64::MAX, 1).is_err());
    }

    #[test]
    fn every_op_has_a_function() {
        for op in OpType::ALL {
            assert!(!function(*op).is_null(), "{op}");
        }
    }
}
