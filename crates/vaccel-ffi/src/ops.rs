//! The C op functions, generated from the op table.
//!
//! The op table ([`vaccel_abi::op_table!`]) declares every operation's C function once: its
//! signature and, per op, its [`OpType`], C name and `Session` method. From it
//! [`c_op_functions!`] generates each op's C function (C arguments in: the session and
//! resources through a [`Resolve`], buffers as borrowed slices, args and tensors through this
//! crate's views, every pointer checked; the `Session` method called; results written back),
//! with one body per *signature* in [`__op_body!`](crate::__op_body). Two programs instantiate
//! it: `libvaccel.so` (the exported `vaccel_noop`, ...; the application's views) and every
//! plugin library built with the SDK (the functions its descriptor lists; the sessions
//! attached to the host's). The third translation, Rust operands into a loaded C plugin's
//! function, is `loader::CPlugin`, which calls each function through its [`Signature`] from
//! the same table, so an op can only be called with the type the table gives it. A unit test
//! proves the table covers [`OpType`]; the functions' types are the table's by construction.
//!
//! Adding an op: its row in the op table (and, for a new signature, its body in
//! [`__op_body!`](crate::__op_body)), its `Session`/`Plugin` methods in the core, its
//! `CPlugin` method, and the rpc plugin.
//!
//! # Safety
//!
//! The C functions' contract: `sess`/resource arguments are null or valid views. Buffers hold
//! the sizes their length arguments (or dimensions) say; `struct vaccel_arg` arrays hold their
//! counts and each arg's `buf` holds its `size`; strings are NUL-terminated; tensors and nodes
//! are valid for their counts; out-parameters are null or writable. Output buffers must not
//! overlap inputs or each other (refused with `VACCEL_EINVAL` where detectable).

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

/// One C signature of the op table: its function type and the ops whose functions have it.
/// [`sig`] has one per signature, named after its `vaccel-abi` type.
pub trait Signature {
    /// The function type (`vaccel-abi`'s `*_fn`).
    type Fn: Copy;
    /// The ops whose functions have this type.
    const OPS: &'static [OpType];
}

/// The [`Signature`]s of the op table.
macro_rules! signatures {
    ({} $($(#[$doc:meta])* ($ty:ident, $params:tt, [$(($op:ident, $name:ident, $m:ident)),*]),)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $ty;

            impl Signature for $ty {
                type Fn = vaccel_abi::$ty;
                const OPS: &'static [OpType] = &[$(OpType::$op),*];
            }
        )*
    };
}

/// Each signature of the op table as a type (see [`Signature`]).
#[allow(non_camel_case_types)]
pub mod sig {
    use super::{OpType, Signature};

    vaccel_abi::op_table!(signatures);
}

/// Every op of the table (`LISTED`), for the coverage test.
#[cfg(test)]
macro_rules! table_ops {
    ({} $($(#[$doc:meta])* ($ty:ident, $params:tt, [$(($op:ident, $name:ident, $m:ident)),*]),)*) => {
        const LISTED: &[OpType] = &[$($(OpType::$op,)*)*];
    };
}

/// Items the generated code names (not a stable API).
#[doc(hidden)]
pub mod __private {
    pub use std::ffi::{c_char, c_int, c_void};

    pub use vaccel_abi::*;
    pub use vaccel_core::plugin::SgemmArgs;
    pub use vaccel_core::{OpType, Session};

    pub use crate::arg::{c_args, c_args_counted};
    pub use crate::ffi::{self, Res, Span, guard, invalid};
    pub use crate::ops::{Resolve, arrays, extent, image_buffers, model_run, session_and_resource};
    pub use crate::tensor::{self as t, hand_out, nodes};
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

            $crate::ops::__private::op_table!($crate::__c_functions, $resolve; [$(#[$attr])*]);
        }
    };
}

/// [`c_op_functions!`] over the op table: each signature's functions, and `op_function`.
#[doc(hidden)]
#[macro_export]
macro_rules! __c_functions {
    (
        { $resolve:ty; $attrs:tt }
        $($(#[$doc:meta])* ($ty:ident, $params:tt, [$(($op:ident, $name:ident, $m:ident)),*]),)*
    ) => {
        $($crate::__c_function_group! { ($resolve; $attrs) $ty $params [$(($op, $name, $m)),*] })*

        /// The C function of `op` (a `vaccel_op.func`).
        #[allow(dead_code)]
        pub fn op_function(op: OpType) -> *mut c_void {
            let f: *const () = match op {
                $($(OpType::$op => $name as *const (),)*)*
            };
            f.cast_mut().cast()
        }
    };
}

/// The functions of one signature of the op table.
#[doc(hidden)]
#[macro_export]
macro_rules! __c_function_group {
    ($cfg:tt $ty:ident $params:tt [$(($op:ident, $name:ident, $m:ident)),*]) => {
        $($crate::__c_function! { $cfg $ty $params $op $name $m })*
    };
}

/// The C function `$name` of op `$op`, of signature `$ty`, calling `Session::$m`.
#[doc(hidden)]
#[macro_export]
macro_rules! __c_function {
    (
        ($resolve:ty; [$(#[$attr:meta])*])
        $ty:ident ($($p:ident: $t:ty),*) $op:ident $name:ident $m:ident
    ) => {
        #[doc = concat!("`", stringify!($name), "` (see `vaccel/ops/*.h`).")]
        ///
        /// # Safety
        ///
        /// See the `vaccel_ffi::ops` module docs.
        $(#[$attr])*
        pub unsafe extern "C" fn $name($($p: $t),*) -> c_int {
            guard(stringify!($name), || {
                $crate::__op_body!($ty, $op, $m, $resolve; $($p),*)
            })
        }
    };
}

/// The body of the C functions of one signature: `(signature, op, Session method, resolver;
/// the parameters in order)`, a `Res<()>`. One arm per signature of the op table.
#[doc(hidden)]
#[macro_export]
macro_rules! __op_body {
    (vaccel_noop_fn, $op:ident, $m:ident, $R:ty; $sess:ident) => {
        // SAFETY: `sess` is null or a valid view (the op's C contract).
        unsafe { <$R as Resolve>::session($sess) }?.$m()
    };
    (
        vaccel_exec_op_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $library:ident, $symbol:ident, $read:ident, $nr_read:ident, $write:ident,
        $nr_write:ident
    ) => {{
        // SAFETY: `sess` is null or a valid view (the op's C contract).
        let session = unsafe { <$R as Resolve>::session($sess) }?;
        // SAFETY: caller guarantees (module docs).
        let (library, symbol, (r, mut w)) = unsafe {
            (
                ffi::str_arg($library, "library")?,
                ffi::str_arg($symbol, "fn_symbol")?,
                c_args($read, $nr_read, $write, $nr_write)?,
            )
        };
        session.$m(library, symbol, &r, &mut w)
    }};
    (
        vaccel_exec_with_resource_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $res:ident, $symbol:ident, $read:ident, $nr_read:ident, $write:ident,
        $nr_write:ident
    ) => {{
        // SAFETY: `sess` and `res` are null or valid views (the op's C contract).
        let (session, res) = unsafe { session_and_resource::<$R>($sess, $res) }?;
        // SAFETY: caller guarantees (module docs).
        let (symbol, (r, mut w)) = unsafe {
            (
                ffi::str_arg($symbol, "fn_symbol")?,
                c_args($read, $nr_read, $write, $nr_write)?,
            )
        };
        session.$m(&res, symbol, &r, &mut w)
    }};
    (
        vaccel_image_classify_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $img:ident, $out_text:ident, $out_imgname:ident, $len_img:ident,
        $len_out_text:ident, $len_out_imgname:ident
    ) => {{
        // SAFETY: `sess` is null or a valid view (the op's C contract).
        let session = unsafe { <$R as Resolve>::session($sess) }?;
        ffi::check_disjoint(
            &[
                Span::read($img.cast::<u8>(), $len_img),
                Span::write($out_text, $len_out_text),
                Span::write($out_imgname, $len_out_imgname),
            ],
            "image classification",
        )?;
        // SAFETY: caller guarantees; the outputs are disjoint from each other and the image.
        let (image, text, imgname) = unsafe {
            (
                ffi::bytes($img, $len_img, "img")?,
                ffi::slice_mut($out_text, $len_out_text, "out_text")?,
                ffi::slice_mut($out_imgname, $len_out_imgname, "out_imgname")?,
            )
        };
        session.$m(image, text, imgname)
    }};
    (
        vaccel_image_op_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $img:ident, $out_imgname:ident, $len_img:ident, $len_out_imgname:ident
    ) => {{
        // SAFETY: `sess` is null or a valid view; the buffers hold their lengths (the op's C
        // contract).
        let (session, (image, imgname)) = unsafe {
            (
                <$R as Resolve>::session($sess)?,
                image_buffers($img, $out_imgname, $len_img, $len_out_imgname)?,
            )
        };
        session.$m(image, imgname)
    }};
    (
        vaccel_sgemm_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $mm:ident, $n:ident, $k:ident, $alpha:ident, $a:ident, $lda:ident, $b:ident,
        $ldb:ident, $beta:ident, $c:ident, $ldc:ident
    ) => {{
        // SAFETY: `sess` is null or a valid view (the op's C contract).
        let session = unsafe { <$R as Resolve>::session($sess) }?;
        let a_len = extent($mm, $lda, $k, "sgemm A")?;
        let b_len = extent($k, $ldb, $n, "sgemm B")?;
        let c_len = extent($mm, $ldc, $n, "sgemm C")?;
        // SAFETY: the caller's arrays hold the elements their dimensions span.
        let ([a, b], [c]) = unsafe {
            arrays(
                "sgemm",
                [($a, a_len, "a"), ($b, b_len, "b")],
                [($c, c_len, "c")],
            )
        }?;
        let args = SgemmArgs {
            m: $mm,
            n: $n,
            k: $k,
            alpha: $alpha,
            a,
            lda: $lda,
            b,
            ldb: $ldb,
            beta: $beta,
            ldc: $ldc,
        };
        session.$m(&args, c)
    }};
    (
        vaccel_fpga_arraycopy_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $a:ident, $out_a:ident, $len_a:ident
    ) => {
        $crate::__op_body!(@arrays $m, $R, $sess, [($a, $len_a)] => [($out_a, $len_a)])
    };
    (
        vaccel_fpga_mmult_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $a:ident, $b:ident, $c:ident, $len_a:ident
    ) => {
        $crate::__op_body!(@arrays $m, $R, $sess, [($a, $len_a), ($b, $len_a)] => [($c, $len_a)])
    };
    (
        vaccel_fpga_parallel_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $a:ident, $b:ident, $add:ident, $mult:ident, $len_a:ident
    ) => {
        $crate::__op_body!(
            @arrays $m, $R, $sess, [($a, $len_a), ($b, $len_a)] => [($add, $len_a), ($mult, $len_a)]
        )
    };
    (
        vaccel_fpga_vadd_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $a:ident, $b:ident, $c:ident, $len_a:ident, $len_b:ident
    ) => {
        $crate::__op_body!(@arrays $m, $R, $sess, [($a, $len_a), ($b, $len_b)] => [($c, $len_a)])
    };
    // The ops over plain arrays: each `(pointer, length)`, read ones then written ones, passed
    // to the method as slices in that order.
    (
        @arrays $m:ident, $R:ty, $sess:ident,
        [$(($r:ident, $rn:ident)),*] => [$(($w:ident, $wn:ident)),*]
    ) => {{
        let reads = [$(($r, $rn, stringify!($r))),*];
        let writes = [$(($w, $wn, stringify!($w))),*];
        // SAFETY: `sess` is null or a valid view; each array holds the elements its length
        // argument says (the op's C contract).
        let (session, ([$($r),*], [$($w),*])) = unsafe {
            (
                <$R as Resolve>::session($sess)?,
                arrays(stringify!($m), reads, writes)?,
            )
        };
        session.$m($($r,)* $($w),*)
    }};
    (
        vaccel_minmax_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $indata:ident, $ndata:ident, $low:ident, $high:ident, $outdata:ident,
        $min:ident, $max:ident
    ) => {{
        // SAFETY: `sess` is null or a valid view (the op's C contract).
        let session = unsafe { <$R as Resolve>::session($sess) }?;
        let n = ffi::count($ndata, "ndata")?;
        let min = ffi::out_ptr($min, "min")?;
        let max = ffi::out_ptr($max, "max")?;
        ffi::check_disjoint(
            &[
                Span::read($indata, n),
                Span::write($outdata.cast_const(), n),
                Span::write(min.cast_const(), 1),
                Span::write(max.cast_const(), 1),
            ],
            "minmax",
        )?;
        // SAFETY: both arrays hold `ndata` doubles (caller guarantee), disjoint.
        let (input, output) = unsafe {
            (
                ffi::slice($indata, n, "indata")?,
                ffi::slice_mut($outdata, n, "outdata")?,
            )
        };
        let (lo, hi) = session.$m(input, $low, $high, output)?;
        // SAFETY: checked by `out_ptr`, disjoint from the arrays.
        unsafe {
            ffi::write_out(min, lo);
            ffi::write_out(max, hi);
        }
        Ok(())
    }};
    (
        vaccel_opencv_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $read:ident, $nr_read:ident, $write:ident, $nr_write:ident
    ) => {{
        // SAFETY: `sess` is null or a valid view (the op's C contract).
        let session = unsafe { <$R as Resolve>::session($sess) }?;
        // SAFETY: caller guarantees (module docs).
        let (r, mut w) = unsafe { c_args_counted($read, $nr_read, $write, $nr_write) }?;
        session.$m(&r, &mut w)
    }};
    (vaccel_model_fn, $op:ident, $m:ident, $R:ty; $sess:ident, $model:ident) => {{
        // SAFETY: `sess` and `model` are null or valid views (the op's C contract).
        let (session, model) = unsafe { session_and_resource::<$R>($sess, $model) }?;
        session.$m(&model)
    }};
    (vaccel_tf_model_fn, $op:ident, $m:ident, $R:ty; $sess:ident, $model:ident, $status:ident) => {{
        // SAFETY: `sess` and `model` are null or valid views (the op's C contract).
        let (session, model) = unsafe { session_and_resource::<$R>($sess, $model) }?;
        let result = session.$m(&model)?;
        // SAFETY: `status` is null or writable (the op's C contract).
        unsafe { t::fill_tf_status($status, &result) }
    }};
    (
        vaccel_tf_model_run_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $model:ident, $run_options:ident, $in_nodes:ident, $in_tensors:ident,
        $nr_inputs:ident, $out_nodes:ident, $out_tensors:ident, $nr_outputs:ident, $status:ident
    ) => {{
        // SAFETY: `sess` and `model` are null or valid views (the op's C contract).
        let start = unsafe { model_run::<$R, _>($sess, $model, $out_tensors, $nr_outputs) };
        let (session, model, nr_out) = start?;
        let nr_in = ffi::count($nr_inputs, "nr_inputs")?;
        // SAFETY: caller guarantees (module docs).
        let (options, ins, inputs, outs) = unsafe {
            let options = $run_options
                .as_ref()
                .map(|o| ffi::bytes(o.data, o.size, "run_options"))
                .transpose()?;
            (
                options,
                nodes($in_nodes, nr_in, "in_nodes")?,
                t::views::<vaccel_tf_tensor>($in_tensors, $nr_inputs, "in_tensors")?,
                nodes($out_nodes, nr_out, "out_nodes")?,
            )
        };
        let out = session.$m(&model, options, &ins, &inputs, &outs)?;
        // SAFETY: `out_tensors` holds `nr_outputs` slots (caller guarantee); the runtime
        // returned exactly that many outputs.
        unsafe { hand_out::<vaccel_tf_tensor>($out_tensors, &out.outputs) }?;
        // SAFETY: null or writable (caller guarantee).
        unsafe { t::fill_tf_status($status, &out.status) }
    }};
    (
        vaccel_tflite_model_run_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $model:ident, $inputs:ident, $nr_inputs:ident, $outputs:ident,
        $nr_outputs:ident, $status:ident
    ) => {{
        // SAFETY: `sess` and `model` are null or valid views (the op's C contract).
        let start = unsafe { model_run::<$R, _>($sess, $model, $outputs, $nr_outputs) };
        let (session, model, nr_out) = start?;
        // SAFETY: caller guarantees (module docs).
        let ins = unsafe { t::views::<vaccel_tflite_tensor>($inputs, $nr_inputs, "inputs") }?;
        let out = session.$m(&model, &ins, nr_out)?;
        // SAFETY: `outputs` holds `nr_outputs` slots (caller guarantee).
        unsafe { hand_out::<vaccel_tflite_tensor>($outputs, &out.outputs) }?;
        if !$status.is_null() {
            // SAFETY: non-null and writable (caller guarantee).
            unsafe { $status.write(out.status) };
        }
        Ok(())
    }};
    (
        vaccel_torch_model_run_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $model:ident, $run_options:ident, $inputs:ident, $nr_inputs:ident,
        $outputs:ident, $nr_outputs:ident
    ) => {{
        // SAFETY: `sess` and `model` are null or valid views (the op's C contract).
        let start = unsafe { model_run::<$R, _>($sess, $model, $outputs, $nr_outputs) };
        let (session, model, nr_out) = start?;
        // SAFETY: caller guarantees (module docs).
        let (options, ins) = unsafe {
            let options = $run_options
                .as_ref()
                .map(|o| ffi::bytes(o.data.cast::<c_void>(), o.size, "run_options"))
                .transpose()?;
            (
                options,
                t::views::<vaccel_torch_tensor>($inputs, $nr_inputs, "inputs")?,
            )
        };
        let out = session.$m(&model, options, &ins, nr_out)?;
        // SAFETY: `outputs` holds `nr_outputs` slots (caller guarantee).
        unsafe { hand_out::<vaccel_torch_tensor>($outputs, &out) }
    }};
    (
        vaccel_torch_sgemm_fn, $op:ident, $m:ident, $R:ty;
        $sess:ident, $in_a:ident, $in_b:ident, $in_c:ident, $mm:ident, $n:ident, $k:ident,
        $out:ident
    ) => {{
        // SAFETY: `sess` is null or a valid view (the op's C contract).
        let session = unsafe { <$R as Resolve>::session($sess) }?;
        let out = ffi::out_ptr($out, "out")?;
        // SAFETY: each `in_*` points at a tensor pointer (caller guarantee).
        let (a, b, c) = unsafe {
            let one = |p: *mut *mut vaccel_torch_tensor, what: &str| -> Res<_> {
                let tensor = *ffi::as_ref(p, what)?;
                t::view::<vaccel_torch_tensor>(tensor, what)
            };
            (
                one($in_a, "in_A")?,
                one($in_b, "in_B")?,
                one($in_c, "in_C")?,
            )
        };
        if let Some(result) = session.$m(&a, &b, &c, $mm, $n, $k)? {
            let p = t::to_c::<vaccel_torch_tensor>(&result)?;
            // SAFETY: checked by `out_ptr`.
            unsafe { ffi::write_out(out, p) };
        }
        Ok(())
    }};
}

/// The session and the resource of an op that takes one.
///
/// # Safety
///
/// `sess` and `res` are null or valid views.
pub unsafe fn session_and_resource<R: Resolve>(
    sess: *mut vaccel_session,
    res: *const vaccel_resource,
) -> Res<(Arc<Session>, Arc<Resource>)> {
    // SAFETY: caller guarantee.
    unsafe { Ok((R::session(sess)?, R::resource(res, sess)?)) }
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
    let (session, model) = unsafe { session_and_resource::<R>(sess, model) }?;
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

/// The image and output name of the four image ops of the `(img, out_imgname)` form, checked
/// disjoint.
///
/// # Safety
///
/// As the C op's contract (module docs): the buffers hold their lengths for `'a`.
pub unsafe fn image_buffers<'a>(
    img: *const std::ffi::c_void,
    out_imgname: *mut u8,
    len_img: usize,
    len_out_imgname: usize,
) -> Res<(&'a [u8], &'a mut [u8])> {
    ffi::check_disjoint(
        &[
            Span::read(img.cast::<u8>(), len_img),
            Span::write(out_imgname, len_out_imgname),
        ],
        "image op",
    )?;
    // SAFETY: caller guarantees; the output is disjoint from the image.
    unsafe {
        Ok((
            ffi::bytes(img, len_img, "img")?,
            ffi::slice_mut(out_imgname, len_out_imgname, "out_imgname")?,
        ))
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
        vaccel_abi::op_table!(table_ops);
        let listed = LISTED;
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
