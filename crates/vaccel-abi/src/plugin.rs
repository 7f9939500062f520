//! Plugins and their operations (`vaccel/plugin.h`, `vaccel/op.h`, spec §1.12 and §3), and the
//! C signatures of every operation a plugin implements (spec §1.15, §2.2).
//!
//! A C plugin exports `const struct vaccel_plugin *vaccel_plugin`; its `info->init` registers
//! its operations with `vaccel_plugin_register_ops`, which stores `&ops[i]` in
//! `owner->ops[ops[i].type]`. Each `vaccel_op.func` is a function of the matching `*_fn` type
//! below, cast to `void *`.

use std::ffi::{c_char, c_int, c_void};

use crate::arg::vaccel_arg;
use crate::consts::{VACCEL_OP_MAX, vaccel_op_type_t, vaccel_plugin_type_t};
use crate::objects::{vaccel_list_entry_t, vaccel_resource, vaccel_session};
use crate::ops::{
    vaccel_tf_buffer, vaccel_tf_node, vaccel_tf_status, vaccel_tf_tensor, vaccel_tflite_tensor,
    vaccel_torch_buffer, vaccel_torch_tensor,
};

/// `struct vaccel_op`: one operation of a plugin.
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_op {
    /// Which operation (`VACCEL_OP_*`).
    pub r#type: vaccel_op_type_t,
    /// The implementing function, of the `*_fn` type of the operation.
    pub func: *mut c_void,
    /// The plugin the operation belongs to (`&vaccel_this_plugin`).
    pub owner: *mut vaccel_plugin,
}

/// `int (*)(void)`: a plugin's `init` and `fini`.
pub type vaccel_plugin_init_fn = Option<unsafe extern "C" fn() -> c_int>;
/// `int (*)(struct vaccel_session *, uint32_t)`: `session_init` and `session_update`.
pub type vaccel_plugin_session_flags_fn =
    Option<unsafe extern "C" fn(sess: *mut vaccel_session, flags: u32) -> c_int>;
/// `int (*)(struct vaccel_session *)`: `session_release`.
pub type vaccel_plugin_session_fn =
    Option<unsafe extern "C" fn(sess: *mut vaccel_session) -> c_int>;
/// `int (*)(struct vaccel_resource *, struct vaccel_session *)`: the resource hooks.
pub type vaccel_plugin_resource_fn =
    Option<unsafe extern "C" fn(res: *mut vaccel_resource, sess: *mut vaccel_session) -> c_int>;

/// `struct vaccel_plugin_info`: a plugin's descriptor (field order as upstream).
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_plugin_info {
    /// Name, e.g. `noop`.
    pub name: *const c_char,
    /// The plugin's own version.
    pub version: *const c_char,
    /// The vAccel version the plugin was built with (checked at load, §3).
    pub vaccel_version: *const c_char,
    /// Called once after loading; registers the operations.
    pub init: vaccel_plugin_init_fn,
    /// Called once before unloading.
    pub fini: vaccel_plugin_init_fn,
    /// Whether the plugin forwards to a remote runtime.
    pub is_virtio: bool,
    /// Type bitmask, matched against session hints.
    pub r#type: vaccel_plugin_type_t,
    /// Remote session created (`sess->remote_id` to be set).
    pub session_init: vaccel_plugin_session_flags_fn,
    /// Remote session released.
    pub session_release: vaccel_plugin_session_fn,
    /// Remote session's flags changed.
    pub session_update: vaccel_plugin_session_flags_fn,
    /// Resource registered with a session of this plugin.
    pub resource_register: vaccel_plugin_resource_fn,
    /// Resource unregistered from a session of this plugin.
    pub resource_unregister: vaccel_plugin_resource_fn,
    /// Resource bytes to refresh from the plugin.
    pub resource_sync: vaccel_plugin_resource_fn,
}

impl vaccel_plugin_info {
    /// No strings, no functions, no type: the start of a descriptor being filled in.
    pub const EMPTY: vaccel_plugin_info = vaccel_plugin_info {
        name: std::ptr::null(),
        version: std::ptr::null(),
        vaccel_version: std::ptr::null(),
        init: None,
        fini: None,
        is_virtio: false,
        r#type: 0,
        session_init: None,
        session_release: None,
        session_update: None,
        resource_register: None,
        resource_unregister: None,
        resource_sync: None,
    };
}

/// `struct vaccel_plugin`.
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_plugin {
    /// The `dlopen` handle of the library (set by the loader).
    pub dl_handle: *mut c_void,
    /// Entry in the list of plugins.
    pub entry: vaccel_list_entry_t,
    /// The registered operations, indexed by op type; null where not implemented.
    pub ops: [*mut vaccel_op; VACCEL_OP_MAX as usize],
    /// The descriptor.
    pub info: *mut vaccel_plugin_info,
}

/// Calls `$m!` with the op table, the one place where every operation's C function is
/// declared: each C signature (its doc line, its `*_fn` type name and its parameters) with the
/// operations whose function has it, each as `(OpType variant, C API function, Session method)`.
/// Everything per op is generated from it: the `*_fn` types below, the `vaccel_*` functions of
/// `libvaccel.so` and of every SDK plugin library, the op-to-function map, and the signatures
/// the plugin loader calls a C plugin's functions with (`vaccel-ffi`).
///
/// `$m!` receives `{ $extra }` first (whatever follows `$m,` here), then one row per signature:
/// `$(#[doc])* (fn_type, (param: Type, ...), [(Op, c_name, method), ...]),`. Parameter types
/// are written bare: the expansion site has this crate's items and `std::ffi`'s C types in
/// scope.
#[macro_export]
macro_rules! op_table {
    ($m:path $(, $($extra:tt)*)?) => {
        $m! {
            { $($($extra)*)? }
            /// `noop`: `int f(struct vaccel_session *sess)`.
            (vaccel_noop_fn, (sess: *mut vaccel_session), [(Noop, vaccel_noop, noop)]),
            /// `exec`: `int f(sess, const char *library, const char *fn_symbol,
            /// struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write)`.
            (vaccel_exec_op_fn, (
                sess: *mut vaccel_session, library: *const c_char, fn_symbol: *const c_char,
                read: *mut vaccel_arg, nr_read: usize, write: *mut vaccel_arg, nr_write: usize
            ), [(Exec, vaccel_exec, exec)]),
            /// `exec_with_resource`: `int f(sess, struct vaccel_resource *res,
            /// const char *fn_symbol, read, nr_read, write, nr_write)`.
            (vaccel_exec_with_resource_fn, (
                sess: *mut vaccel_session, res: *mut vaccel_resource, fn_symbol: *const c_char,
                read: *mut vaccel_arg, nr_read: usize, write: *mut vaccel_arg, nr_write: usize
            ), [(ExecWithResource, vaccel_exec_with_resource, exec_with_resource)]),
            /// `image_classify`: `int f(sess, const void *img, unsigned char *out_text,
            /// unsigned char *out_imgname, size_t len_img, size_t len_out_text,
            /// size_t len_out_imgname)`.
            (vaccel_image_classify_fn, (
                sess: *mut vaccel_session, img: *const c_void, out_text: *mut u8,
                out_imgname: *mut u8, len_img: usize, len_out_text: usize, len_out_imgname: usize
            ), [(ImageClassify, vaccel_image_classification, image_classify)]),
            /// `image_detect`, `_segment`, `_pose`, `_depth`: `int f(sess, const void *img,
            /// unsigned char *out_imgname, size_t len_img, size_t len_out_imgname)`.
            (vaccel_image_op_fn, (
                sess: *mut vaccel_session, img: *const c_void, out_imgname: *mut u8,
                len_img: usize, len_out_imgname: usize
            ), [
                (ImageDetect, vaccel_image_detection, image_detect),
                (ImageSegment, vaccel_image_segmentation, image_segment),
                (ImagePose, vaccel_image_pose, image_pose),
                (ImageDepth, vaccel_image_depth, image_depth)
            ]),
            /// `blas_sgemm`: `int f(sess, int64_t m, int64_t n, int64_t k, float alpha,
            /// float *a, int64_t lda, float *b, int64_t ldb, float beta, float *c, int64_t ldc)`.
            (vaccel_sgemm_fn, (
                sess: *mut vaccel_session, m: i64, n: i64, k: i64, alpha: f32, a: *mut f32,
                lda: i64, b: *mut f32, ldb: i64, beta: f32, c: *mut f32, ldc: i64
            ), [(BlasSgemm, vaccel_sgemm, sgemm)]),
            /// `fpga_arraycopy`: `int f(sess, int a[], int out_a[], size_t len_a)`.
            (vaccel_fpga_arraycopy_fn, (
                sess: *mut vaccel_session, a: *mut c_int, out_a: *mut c_int, len_a: usize
            ), [(FpgaArraycopy, vaccel_fpga_arraycopy, fpga_arraycopy)]),
            /// `fpga_mmult`: `int f(sess, float a[], float b[], float c[], size_t len_a)`.
            (vaccel_fpga_mmult_fn, (
                sess: *mut vaccel_session, a: *mut f32, b: *mut f32, c: *mut f32, len_a: usize
            ), [(FpgaMmult, vaccel_fpga_mmult, fpga_mmult)]),
            /// `fpga_parallel`: `int f(sess, float a[], float b[], float add_output[],
            /// float mult_output[], size_t len_a)`.
            (vaccel_fpga_parallel_fn, (
                sess: *mut vaccel_session, a: *mut f32, b: *mut f32, add_output: *mut f32,
                mult_output: *mut f32, len_a: usize
            ), [(FpgaParallel, vaccel_fpga_parallel, fpga_parallel)]),
            /// `fpga_vectoradd`: `int f(sess, float a[], float b[], float c[], size_t len_a,
            /// size_t len_b)`.
            (vaccel_fpga_vadd_fn, (
                sess: *mut vaccel_session, a: *mut f32, b: *mut f32, c: *mut f32,
                len_a: usize, len_b: usize
            ), [(FpgaVectoradd, vaccel_fpga_vadd, fpga_vadd)]),
            /// `minmax`: `int f(sess, const double *indata, int ndata, int low_threshold,
            /// int high_threshold, double *outdata, double *min, double *max)`.
            (vaccel_minmax_fn, (
                sess: *mut vaccel_session, indata: *const f64, ndata: c_int, low_threshold: c_int,
                high_threshold: c_int, outdata: *mut f64, min: *mut f64, max: *mut f64
            ), [(Minmax, vaccel_minmax, minmax)]),
            /// `opencv`: `int f(sess, struct vaccel_arg *read, int nr_read,
            /// struct vaccel_arg *write, int nr_write)`.
            (vaccel_opencv_fn, (
                sess: *mut vaccel_session, read: *mut vaccel_arg, nr_read: c_int,
                write: *mut vaccel_arg, nr_write: c_int
            ), [(Opencv, vaccel_opencv, opencv)]),
            /// `tf_model_load` and `tf_model_unload`: `int f(sess,
            /// struct vaccel_resource *model, struct vaccel_tf_status *status)`.
            (vaccel_tf_model_fn, (
                sess: *mut vaccel_session, model: *mut vaccel_resource,
                status: *mut vaccel_tf_status
            ), [
                (TfModelLoad, vaccel_tf_model_load, tf_model_load),
                (TfModelUnload, vaccel_tf_model_unload, tf_model_unload)
            ]),
            /// `tf_model_run`: outputs are allocated by the plugin
            /// (`vaccel_tf_tensor_allocate`).
            (vaccel_tf_model_run_fn, (
                sess: *mut vaccel_session, model: *const vaccel_resource,
                run_options: *const vaccel_tf_buffer, in_nodes: *const vaccel_tf_node,
                in_tensors: *const *mut vaccel_tf_tensor, nr_inputs: c_int,
                out_nodes: *const vaccel_tf_node, out_tensors: *mut *mut vaccel_tf_tensor,
                nr_outputs: c_int, status: *mut vaccel_tf_status
            ), [(TfModelRun, vaccel_tf_model_run, tf_model_run)]),
            /// `tflite_model_load`, `tflite_model_unload` and `torch_model_load`:
            /// `int f(sess, struct vaccel_resource *model)`.
            (vaccel_model_fn, (sess: *mut vaccel_session, model: *mut vaccel_resource), [
                (TfliteModelLoad, vaccel_tflite_model_load, tflite_model_load),
                (TfliteModelUnload, vaccel_tflite_model_unload, tflite_model_unload),
                (TorchModelLoad, vaccel_torch_model_load, torch_model_load)
            ]),
            /// `tflite_model_run`: `int f(sess, model, struct vaccel_tflite_tensor *const *in,
            /// int nr_inputs, struct vaccel_tflite_tensor **out, int nr_outputs,
            /// uint8_t *status)`.
            (vaccel_tflite_model_run_fn, (
                sess: *mut vaccel_session, model: *const vaccel_resource,
                inputs: *const *mut vaccel_tflite_tensor, nr_inputs: c_int,
                outputs: *mut *mut vaccel_tflite_tensor, nr_outputs: c_int, status: *mut u8
            ), [(TfliteModelRun, vaccel_tflite_model_run, tflite_model_run)]),
            /// `torch_model_run`: `int f(sess, model,
            /// const struct vaccel_torch_buffer *run_options,
            /// struct vaccel_torch_tensor *const *in, int nr_inputs,
            /// struct vaccel_torch_tensor **out, int nr_outputs)`.
            (vaccel_torch_model_run_fn, (
                sess: *mut vaccel_session, model: *const vaccel_resource,
                run_options: *const vaccel_torch_buffer, inputs: *const *mut vaccel_torch_tensor,
                nr_inputs: c_int, outputs: *mut *mut vaccel_torch_tensor, nr_outputs: c_int
            ), [(TorchModelRun, vaccel_torch_model_run, torch_model_run)]),
            /// `torch_sgemm`: `int f(sess, struct vaccel_torch_tensor **in_A, **in_B, **in_C,
            /// int M, int N, int K, struct vaccel_torch_tensor **out)`.
            (vaccel_torch_sgemm_fn, (
                sess: *mut vaccel_session, in_a: *mut *mut vaccel_torch_tensor,
                in_b: *mut *mut vaccel_torch_tensor, in_c: *mut *mut vaccel_torch_tensor,
                m: c_int, n: c_int, k: c_int, out: *mut *mut vaccel_torch_tensor
            ), [(TorchSgemm, vaccel_torch_sgemm, torch_sgemm)]),
        }
    };
}

/// The `*_fn` types of the op table.
macro_rules! op_fn_types {
    ({} $($(#[$doc:meta])* ($ty:ident, $params:tt, [$($op:tt),*]),)*) => {
        $(
            $(#[$doc])*
            pub type $ty = unsafe extern "C" fn $params -> c_int;
        )*
    };
}

op_table!(op_fn_types);

/// The version of [`vaccel_rs_host`] this library passes.
pub const VACCEL_RS_HOST_ABI: u32 = 2;

/// vaccel-rs extension: services the runtime offers to plugin libraries built with the Rust
/// plugin SDK. A library that exports `int vaccel_rs_plugin_bind(const struct vaccel_rs_host *)`
/// is given this table before its `init` runs, and is then treated as an SDK plugin: its
/// session hooks are called for local sessions too (so it can keep per-session state).
/// Upstream's loader never calls the bind function, and the plugin works without it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vaccel_rs_host {
    /// [`VACCEL_RS_HOST_ABI`].
    pub abi_version: u32,
    /// Writes one log message at a level (1-4 as `vaccel_log_level_t`, 5 trace, 0 fatal).
    pub log_write: Option<unsafe extern "C" fn(level: c_int, msg: *const c_char)>,
    /// Whether a message at `level` would be written.
    pub log_enabled: Option<unsafe extern "C" fn(level: c_int) -> bool>,
    /// Version 2: takes a reference to the memory behind a resource view's blobs, so the
    /// plugin can borrow their bytes; null when `res` is not a live view of this host. The
    /// bytes stay valid and unchanged until the reference is given back.
    pub resource_retain: Option<unsafe extern "C" fn(res: *const vaccel_resource) -> *const c_void>,
    /// Version 2: the bytes of blob `index` of a retained resource (`false` past the last).
    pub resource_blob: Option<
        unsafe extern "C" fn(
            token: *const c_void,
            index: usize,
            data: *mut *const u8,
            size: *mut usize,
        ) -> bool,
    >,
    /// Version 2: gives back a reference taken by `resource_retain` (from any thread).
    pub resource_release: Option<unsafe extern "C" fn(token: *const c_void)>,
}

/// `int vaccel_rs_plugin_bind(const struct vaccel_rs_host *host)`.
pub type vaccel_rs_plugin_bind_fn = unsafe extern "C" fn(host: *const vaccel_rs_host) -> c_int;

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn op_layout() {
        assert_eq!(size_of::<vaccel_op>(), 24);
        assert_eq!(offset_of!(vaccel_op, r#type), 0);
        assert_eq!(offset_of!(vaccel_op, func), 8);
        assert_eq!(offset_of!(vaccel_op, owner), 16);
    }

    #[test]
    fn plugin_info_layout() {
        assert_eq!(offset_of!(vaccel_plugin_info, name), 0);
        assert_eq!(offset_of!(vaccel_plugin_info, version), 8);
        assert_eq!(offset_of!(vaccel_plugin_info, vaccel_version), 16);
        assert_eq!(offset_of!(vaccel_plugin_info, init), 24);
        assert_eq!(offset_of!(vaccel_plugin_info, fini), 32);
        assert_eq!(offset_of!(vaccel_plugin_info, is_virtio), 40);
        assert_eq!(offset_of!(vaccel_plugin_info, r#type), 44);
        assert_eq!(offset_of!(vaccel_plugin_info, session_init), 48);
        assert_eq!(offset_of!(vaccel_plugin_info, session_release), 56);
        assert_eq!(offset_of!(vaccel_plugin_info, session_update), 64);
        assert_eq!(offset_of!(vaccel_plugin_info, resource_register), 72);
        assert_eq!(offset_of!(vaccel_plugin_info, resource_unregister), 80);
        assert_eq!(offset_of!(vaccel_plugin_info, resource_sync), 88);
        assert_eq!(size_of::<vaccel_plugin_info>(), 96);
    }

    #[test]
    fn plugin_layout() {
        assert_eq!(offset_of!(vaccel_plugin, dl_handle), 0);
        assert_eq!(offset_of!(vaccel_plugin, entry), 8);
        assert_eq!(offset_of!(vaccel_plugin, ops), 24);
        assert_eq!(offset_of!(vaccel_plugin, info), 24 + 24 * 8);
        assert_eq!(size_of::<vaccel_plugin>(), 32 + 24 * 8);
    }

    #[test]
    fn host_table_layout() {
        assert_eq!(offset_of!(vaccel_rs_host, log_write), 8);
        assert_eq!(offset_of!(vaccel_rs_host, log_enabled), 16);
        assert_eq!(offset_of!(vaccel_rs_host, resource_retain), 24);
        assert_eq!(offset_of!(vaccel_rs_host, resource_blob), 32);
        assert_eq!(offset_of!(vaccel_rs_host, resource_release), 40);
        assert_eq!(size_of::<vaccel_rs_host>(), 48);
    }

    #[test]
    fn hooks_are_nullable_function_pointers() {
        assert_eq!(size_of::<vaccel_plugin_init_fn>(), size_of::<*const ()>());
        assert_eq!(
            size_of::<vaccel_plugin_resource_fn>(),
            size_of::<*const ()>()
        );
    }
}
