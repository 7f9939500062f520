//! The adapter from a C plugin descriptor to the [`Plugin`] trait.
//!
//! Each method turns its Rust operands into the C forms upstream plugins expect (the C views
//! of the session and resources, `struct vaccel_arg` arrays over the callers' own buffers,
//! tensors over the input bytes), calls the plugin's function, and turns the results back.
//! Nothing is copied except what C cannot borrow (strings need a NUL, dims a C array).

use std::ffi::{CString, c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use vaccel_abi::{
    VACCEL_OP_MAX, vaccel_arg, vaccel_plugin, vaccel_plugin_init_fn, vaccel_plugin_resource_fn,
    vaccel_plugin_session_flags_fn, vaccel_plugin_session_fn, vaccel_tf_buffer, vaccel_tf_node,
    vaccel_tf_status, vaccel_tf_tensor, vaccel_tflite_tensor, vaccel_torch_buffer,
    vaccel_torch_tensor,
};
use vaccel_core::arg::Arg;
use vaccel_core::plugin::{Plugin, PluginInfo, SgemmArgs};
use vaccel_core::tensor::{
    TfLiteRunOutput, TfLiteTensor, TfNode, TfRunOutput, TfStatus, TfTensor, TorchTensor,
};
use vaccel_core::{Error, ErrorCode, Id, OpSet, OpType, PluginType, Resource, Result, Session};

use crate::ffi;
use crate::ops::Signature;
use crate::ops::sig::{
    vaccel_exec_op_fn, vaccel_exec_with_resource_fn, vaccel_fpga_arraycopy_fn,
    vaccel_fpga_mmult_fn, vaccel_fpga_parallel_fn, vaccel_fpga_vadd_fn, vaccel_image_classify_fn,
    vaccel_image_op_fn, vaccel_minmax_fn, vaccel_model_fn, vaccel_noop_fn, vaccel_opencv_fn,
    vaccel_sgemm_fn, vaccel_tf_model_fn, vaccel_tf_model_run_fn, vaccel_tflite_model_run_fn,
    vaccel_torch_model_run_fn, vaccel_torch_sgemm_fn,
};
use crate::tensor::{self as t};
use crate::views::{self, ResGuard};

/// The hooks of a descriptor, copied at load.
#[derive(Clone, Copy)]
pub(crate) struct Hooks {
    pub(crate) init: vaccel_plugin_init_fn,
    pub(crate) fini: vaccel_plugin_init_fn,
    session_init: vaccel_plugin_session_flags_fn,
    session_release: vaccel_plugin_session_fn,
    session_update: vaccel_plugin_session_flags_fn,
    resource_register: vaccel_plugin_resource_fn,
    resource_unregister: vaccel_plugin_resource_fn,
    resource_sync: vaccel_plugin_resource_fn,
}

/// What a descriptor says, read once at load.
pub(crate) struct RawInfo {
    pub(crate) name: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) vaccel_version: Option<String>,
    is_virtio: bool,
    plugin_type: u32,
    pub(crate) hooks: Hooks,
}

impl RawInfo {
    /// Reads `desc->info`.
    ///
    /// # Safety
    ///
    /// `desc` points at a `struct vaccel_plugin` that stays valid (its library loaded) for
    /// the call; its `info` is null or points at a valid `struct vaccel_plugin_info` whose
    /// strings are null or NUL-terminated.
    pub(crate) unsafe fn read(desc: *mut vaccel_plugin) -> std::result::Result<RawInfo, String> {
        // SAFETY: caller guarantee.
        let info = unsafe { (*desc).info };
        if info.is_null() {
            return Err("its descriptor has no info".into());
        }
        // SAFETY: non-null and valid by the caller's guarantee; only read.
        let info = unsafe { &*info };
        // SAFETY: the strings are null or NUL-terminated (caller guarantee).
        let (name, version, vaccel_version) = unsafe {
            (
                ffi::lossy_str(info.name),
                ffi::lossy_str(info.version),
                ffi::lossy_str(info.vaccel_version),
            )
        };
        Ok(RawInfo {
            name: name.filter(|n| !n.is_empty()),
            version: version.filter(|v| !v.is_empty()),
            vaccel_version,
            is_virtio: info.is_virtio,
            plugin_type: info.r#type,
            hooks: Hooks {
                init: info.init,
                fini: info.fini,
                session_init: info.session_init,
                session_release: info.session_release,
                session_update: info.session_update,
                resource_register: info.resource_register,
                resource_unregister: info.resource_unregister,
                resource_sync: info.resource_sync,
            },
        })
    }
}

/// A loaded C plugin.
pub(crate) struct CPlugin {
    info: PluginInfo,
    ops: OpSet,
    /// The op functions (`vaccel_op.func`), by op type; null where not implemented.
    funcs: [*mut c_void; VACCEL_OP_MAX as usize],
    hooks: Hooks,
    /// An SDK plugin: session hooks run for local sessions too.
    sdk: bool,
    /// The `dlopen` handle, closed on drop.
    handle: *mut c_void,
    finished: AtomicBool,
}

// SAFETY: the raw pointers are the library's descriptor and functions, valid while `handle`
// is open (until drop). Plugins are called from any thread, as upstream calls them: a plugin
// library must be thread-safe, the contract of the plugin API.
unsafe impl Send for CPlugin {}
// SAFETY: as above; `&self` methods only read the pointers.
unsafe impl Sync for CPlugin {}

fn c_len(n: usize, what: &str) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| Error::invalid(format!("too many {what} for a C int: {n}")))
}

fn c_string(text: &str, what: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::invalid(format!("{what} contains a NUL byte")))
}

/// `struct vaccel_arg` arrays over the bytes of Rust args (nothing copied).
struct CArgs {
    read: Vec<vaccel_arg>,
    write: Vec<vaccel_arg>,
}

impl CArgs {
    fn new(read: &[Arg<'_>], write: &mut [Arg<'_>]) -> Result<CArgs> {
        let c_arg = |ptr: *mut u8, size: usize, ty: u32, custom: u32| vaccel_arg {
            buf: if size == 0 {
                ptr::null_mut()
            } else {
                ptr.cast::<c_void>()
            },
            size,
            r#type: ty,
            custom_type_id: custom,
            owned: false,
        };
        let read = read
            .iter()
            .map(|a| {
                // `*mut` only because the C struct has a `void *`: plugins read inputs.
                let b = a.bytes();
                c_arg(
                    b.as_ptr().cast_mut(),
                    b.len(),
                    a.ty().value(),
                    a.custom_id(),
                )
            })
            .collect();
        let mut out = Vec::with_capacity(write.len());
        for (i, a) in write.iter_mut().enumerate() {
            let (ty, custom) = (a.ty().value(), a.custom_id());
            let b = a.bytes_mut().map_err(|e| Error::arg(i, e))?;
            out.push(c_arg(b.as_mut_ptr(), b.len(), ty, custom));
        }
        Ok(CArgs { read, write: out })
    }

    fn read_ptr(&mut self) -> *mut vaccel_arg {
        if self.read.is_empty() {
            ptr::null_mut()
        } else {
            self.read.as_mut_ptr()
        }
    }

    fn write_ptr(&mut self) -> *mut vaccel_arg {
        if self.write.is_empty() {
            ptr::null_mut()
        } else {
            self.write.as_mut_ptr()
        }
    }
}

fn out_ptr<T>(s: &mut [T]) -> *mut T {
    if s.is_empty() {
        ptr::null_mut()
    } else {
        s.as_mut_ptr()
    }
}

/// Calls the plugin's function of `$op` (of the op table's signature `$sig`) with the arguments
/// `($s, ...)`, `$s` being the C view of `$sess`: the code it returned, or why it could not be
/// called.
macro_rules! c_invoke {
    ($self:ident, $sess:expr, $op:expr, $sig:ty, |$s:ident| ($($arg:expr),* $(,)?)) => {
        'call: {
            let f = match $self.op_fn::<$sig>($op) {
                Ok(f) => f,
                Err(e) => break 'call Err(e),
            };
            let $s = match views::session_for_plugin($sess) {
                Ok(s) => s,
                Err(e) => break 'call Err(e),
            };
            // SAFETY: `f` has the op's C signature (`op_fn`) and `$s` is a live view. Every
            // pointer argument is null with a zero length or borrows that many elements of a
            // Rust slice or local for the call: inputs shared (cast to `*mut` only for the C
            // prototypes), outputs exclusive and disjoint from everything else, as Rust
            // borrows guarantee; lengths, dimensions and strides are what the runtime
            // validated for the op (each method says what else it passes).
            Ok(unsafe { f($($arg),*) })
        }
    };
}

/// [`c_invoke!`], then the returned code checked.
macro_rules! c_call {
    ($self:ident, $sess:expr, $op:expr, $sig:ty, |$s:ident| ($($arg:expr),* $(,)?)) => {
        c_invoke!($self, $sess, $op, $sig, |$s| ($($arg),*)).and_then(|ret| $self.check($op, ret))
    };
}

/// An input slice as the `*mut` of a C prototype (the plugin only reads it).
fn in_mut<T>(s: &[T]) -> *mut T {
    in_ptr(s).cast_mut()
}

fn in_ptr<T>(s: &[T]) -> *const T {
    if s.is_empty() {
        ptr::null()
    } else {
        s.as_ptr()
    }
}

/// The output slots of a model run: null pointers the plugin fills with heap tensors, and
/// their count as the C prototypes take it.
struct OutSlots<C> {
    slots: Vec<*mut C>,
    count: c_int,
}

impl<C: t::CTensor> OutSlots<C> {
    fn new(n: usize) -> Result<OutSlots<C>> {
        Ok(OutSlots {
            slots: vec![ptr::null_mut(); n],
            count: c_len(n, "output tensors")?,
        })
    }

    fn ptr(&mut self) -> *mut *mut C {
        out_ptr(&mut self.slots)
    }

    /// The tensors the plugin left in the slots (taken whatever its return code, so that none
    /// leaks).
    ///
    /// # Safety
    ///
    /// Each slot is null or a heap tensor the plugin allocated (the op's contract).
    unsafe fn take(self) -> Result<Vec<vaccel_core::tensor::Tensor<'static, C::Data>>> {
        // SAFETY: caller guarantee.
        unsafe { t::take_all(self.slots) }
    }
}

/// C nodes over Rust nodes (the names are NUL-terminated copies kept in `_names`).
struct CNodes {
    _names: Vec<CString>,
    nodes: Vec<vaccel_tf_node>,
}

impl CNodes {
    fn new(nodes: &[TfNode]) -> Result<CNodes> {
        let names = nodes
            .iter()
            .map(|n| c_string(&n.name, "node name"))
            .collect::<Result<Vec<_>>>()?;
        let nodes = nodes
            .iter()
            .zip(&names)
            .map(|(n, name)| vaccel_tf_node {
                name: name.as_ptr().cast_mut(),
                id: n.id,
            })
            .collect();
        Ok(CNodes {
            _names: names,
            nodes,
        })
    }
}

impl CPlugin {
    /// Runs the plugin's `init` and reads the ops it registered. Takes ownership of `handle`
    /// (closed on failure, or when the plugin is dropped).
    pub(crate) fn init(
        desc: *mut vaccel_plugin,
        raw: RawInfo,
        handle: *mut c_void,
        sdk: bool,
    ) -> Result<CPlugin> {
        let mut info = PluginInfo::new(
            raw.name.clone().unwrap_or_default(),
            raw.version.clone().unwrap_or_default(),
            PluginType::from_bits_retain(raw.plugin_type),
        );
        info.vaccel_version = raw.vaccel_version.clone().unwrap_or_default();
        info.remote = raw.is_virtio;
        let mut plugin = CPlugin {
            info,
            ops: OpSet::EMPTY,
            funcs: [ptr::null_mut(); VACCEL_OP_MAX as usize],
            hooks: raw.hooks,
            sdk,
            handle,
            // Until `init` succeeds there is nothing for `fini` to undo.
            finished: AtomicBool::new(true),
        };
        // SAFETY: the descriptor is valid while the library is loaded (it is); `dl_handle` is
        // a plain field the plugin may read, as upstream sets it.
        unsafe { (*desc).dl_handle = handle };
        let init = plugin
            .hooks
            .init
            .ok_or_else(|| Error::invalid("Plugin needs to expose an init function"))?;
        // SAFETY: the plugin's own init function (non-null), called once, with no arguments,
        // as upstream calls it after registration. It may call `vaccel_plugin_register_ops`.
        let ret = unsafe { init() };
        if ret != 0 {
            log::error!("Plugin {} init failed: {ret}", plugin.info.name);
            return Err(plugin.error("init", ret));
        }
        plugin.finished.store(false, Ordering::Release);
        for (index, slot) in plugin.funcs.iter_mut().enumerate() {
            // SAFETY: the descriptor is valid (library loaded); `ops[i]` is null or points at
            // a `struct vaccel_op` the plugin registered and keeps alive while loaded.
            let func = unsafe {
                let op = (*desc).ops.get(index).copied().unwrap_or(ptr::null_mut());
                if op.is_null() {
                    ptr::null_mut()
                } else {
                    (*op).func
                }
            };
            if func.is_null() {
                continue;
            }
            if let Some(op) = u8::try_from(index).ok().and_then(OpType::from_value) {
                *slot = func;
                plugin.ops = plugin.ops.with(op);
            }
        }
        Ok(plugin)
    }

    fn name(&self) -> &str {
        &self.info.name
    }

    fn error(&self, what: &str, ret: c_int) -> Error {
        let code = ErrorCode::from_i32(ret).unwrap_or(ErrorCode::EBACKEND);
        Error::backend(self.name(), code, format!("{what} returned {ret}"))
    }

    fn check(&self, op: OpType, ret: c_int) -> Result<()> {
        if ret == 0 {
            Ok(())
        } else {
            Err(self.error(&op.name(), ret))
        }
    }

    fn func(&self, op: OpType) -> Result<*mut c_void> {
        let f = self
            .funcs
            .get(usize::from(op.value()))
            .copied()
            .unwrap_or(ptr::null_mut());
        if f.is_null() {
            return Err(vaccel_core::plugin::not_implemented(self, op));
        }
        Ok(f)
    }

    /// The plugin's function of `op`, typed by its signature in the op table; an op the
    /// signature does not list is refused, so no function is called with another op's type.
    fn op_fn<S: Signature>(&self, op: OpType) -> Result<S::Fn> {
        if !S::OPS.contains(&op) {
            return Err(Error::invalid(format!(
                "op {op} is called with another op's C signature"
            )));
        }
        let raw = self.func(op)?;
        const {
            assert!(size_of::<S::Fn>() == size_of::<*mut c_void>());
        }
        // SAFETY: (1) `S::Fn` is a function pointer type (`vaccel-abi`'s `*_fn`, through the op
        // table), of the size of a data pointer (asserted above), as on every POSIX target;
        // (2) `raw` is non-null (`func`); (3) the plugin registered it for `op`, whose
        // signature is `S` (checked above) by the contract of `vaccel_plugin_register_ops`
        // (spec §1.15); (4) the library stays loaded while `self` lives.
        Ok(unsafe { std::mem::transmute_copy::<*mut c_void, S::Fn>(&raw) })
    }

    /// Whether session hooks apply to `sess`: remote sessions (upstream), and every session
    /// of an SDK plugin.
    fn session_hooks_apply(&self, sess: &Session) -> bool {
        sess.is_remote() || self.sdk
    }

    fn resource(&self, res: &Resource, sess: &Session) -> Result<ResGuard> {
        views::resource_for_plugin(res, sess.is_remote())
    }

    fn resource_hook(
        &self,
        hook: vaccel_plugin_resource_fn,
        what: &str,
        res: &Resource,
        sess: &Session,
    ) -> Result<Option<(ResGuard, *mut vaccel_abi::vaccel_session)>> {
        let Some(hook) = hook else {
            if sess.is_remote() {
                return Err(Error::unsupported(format!(
                    "remote plugin {} has no {what} hook",
                    self.name()
                )));
            }
            return Ok(None);
        };
        let s = views::session_for_plugin(sess)?;
        let r = self.resource(res, sess)?;
        // SAFETY: `hook` is the plugin's own function with this signature (its descriptor's
        // contract); `r.ptr` and `s` are live views, valid for the call (`r` holds the
        // allocations they point at).
        let ret = unsafe { hook(r.ptr, s) };
        if ret != 0 {
            return Err(self.error(what, ret));
        }
        Ok(Some((r, s)))
    }
}

impl Drop for CPlugin {
    fn drop(&mut self) {
        if !self.finished.swap(true, Ordering::AcqRel)
            && let Err(e) = self.run_fini()
        {
            log::warn!("Failed to remove plugin {}: {e}", self.info.name);
        }
        super::unregister(self);
        if !self.handle.is_null() {
            // SAFETY: the handle came from `Library::into_raw` at load and is reclaimed once;
            // every function pointer taken from it dies with `self`.
            let lib = unsafe { libloading::os::unix::Library::from_raw(self.handle) };
            if let Err(e) = lib.close() {
                log::warn!("dlclose of plugin {} failed: {e}", self.info.name);
            }
        }
    }
}

impl CPlugin {
    fn run_fini(&self) -> Result<()> {
        let Some(fini) = self.hooks.fini else {
            return Ok(());
        };
        // SAFETY: the plugin's own fini (non-null), called once (`finished` guards it).
        let ret = unsafe { fini() };
        if ret != 0 {
            return Err(self.error("fini", ret));
        }
        Ok(())
    }
}

/// The [`Plugin`] methods of the op table (expanded inside `impl Plugin for CPlugin`): one arm
/// per signature, which writes the method of each op the table lists with it (the four image
/// ops share `Plugin::image_op`). An op added to the table with a new signature has no arm
/// here until its Rust → C translation is written: the build fails, it does not fall back to
/// "not implemented".
macro_rules! plugin_methods {
    ({} $($(#[$doc:meta])* ($ty:ident, $params:tt, [$(($op:ident, $name:ident, $m:ident)),*]),)*) => {
        $(plugin_methods!(@sig $ty [$(($op, $m)),*]);)*
    };
    (@sig vaccel_noop_fn [($op:ident, $m:ident)]) => {
        fn $m(&self, sess: &Session) -> Result<()> {
            c_call!(self, sess, OpType::$op, vaccel_noop_fn, |s| (s))
        }
    };
    (@sig vaccel_exec_op_fn [($op:ident, $m:ident)]) => {
        fn $m(
            &self,
            sess: &Session,
            library: &str,
            symbol: &str,
            read: &[Arg<'_>],
            write: &mut [Arg<'_>],
        ) -> Result<()> {
            let library = c_string(library, "library")?;
            let symbol = c_string(symbol, "symbol")?;
            let mut args = CArgs::new(read, write)?;
            let (nr_read, nr_write) = (args.read.len(), args.write.len());
            let (r, w) = (args.read_ptr(), args.write_ptr());
            // The strings are NUL-terminated and live for the call; the arg arrays hold
            // `nr_read`/`nr_write` entries whose buffers are the args' bytes, borrowed (shared
            // for `read`, exclusive for `write`) for the whole call. Plugins must not write
            // through read buffers.
            c_call!(self, sess, OpType::$op, vaccel_exec_op_fn, |s| (
                s,
                library.as_ptr(),
                symbol.as_ptr(),
                r,
                nr_read,
                w,
                nr_write
            ))
        }
    };
    (@sig vaccel_exec_with_resource_fn [($op:ident, $m:ident)]) => {
        fn $m(
            &self,
            sess: &Session,
            res: &Resource,
            symbol: &str,
            read: &[Arg<'_>],
            write: &mut [Arg<'_>],
        ) -> Result<()> {
            let r = self.resource(res, sess)?;
            let symbol = c_string(symbol, "symbol")?;
            let mut args = CArgs::new(read, write)?;
            let (nr_read, nr_write) = (args.read.len(), args.write.len());
            let (rd, wr) = (args.read_ptr(), args.write_ptr());
            // As for `exec`; `r` keeps the resource view and its blobs alive.
            c_call!(self, sess, OpType::$op, vaccel_exec_with_resource_fn, |s| (
                s,
                r.ptr,
                symbol.as_ptr(),
                rd,
                nr_read,
                wr,
                nr_write
            ))
        }
    };
    (@sig vaccel_image_classify_fn [($op:ident, $m:ident)]) => {
        fn $m(
            &self,
            sess: &Session,
            image: &[u8],
            out_text: &mut [u8],
            out_imgname: &mut [u8],
        ) -> Result<()> {
            let (len_img, len_text, len_name) = (image.len(), out_text.len(), out_imgname.len());
            let (img, text, name) = (
                in_ptr(image).cast(),
                out_ptr(out_text),
                out_ptr(out_imgname),
            );
            c_call!(self, sess, OpType::$op, vaccel_image_classify_fn, |s| (
                s, img, text, name, len_img, len_text, len_name
            ))
        }
    };
    (@sig vaccel_image_op_fn [$(($op:ident, $m:ident)),*]) => {
        fn image_op(
            &self,
            sess: &Session,
            op: OpType,
            image: &[u8],
            out_imgname: &mut [u8],
        ) -> Result<()> {
            let (len_img, len_name) = (image.len(), out_imgname.len());
            let (img, name) = (in_ptr(image).cast(), out_ptr(out_imgname));
            c_call!(self, sess, op, vaccel_image_op_fn, |s| (
                s, img, name, len_img, len_name
            ))
        }
    };
    (@sig vaccel_sgemm_fn [($op:ident, $m:ident)]) => {
        fn $m(&self, sess: &Session, a: &SgemmArgs<'_>, c: &mut [f32]) -> Result<()> {
            let (pa, pb, pc) = (in_mut(a.a), in_mut(a.b), out_ptr(c));
            c_call!(self, sess, OpType::$op, vaccel_sgemm_fn, |s| (
                s, a.m, a.n, a.k, a.alpha, pa, a.lda, pb, a.ldb, a.beta, pc, a.ldc
            ))
        }
    };
    (@sig vaccel_fpga_arraycopy_fn [($op:ident, $m:ident)]) => {
        fn $m(&self, sess: &Session, a: &[i32], out: &mut [i32]) -> Result<()> {
            let (pa, po, n) = (in_mut(a), out_ptr(out), a.len());
            c_call!(self, sess, OpType::$op, vaccel_fpga_arraycopy_fn, |s| (s, pa, po, n))
        }
    };
    (@sig vaccel_fpga_mmult_fn [($op:ident, $m:ident)]) => {
        fn $m(&self, sess: &Session, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
            let (pa, pb, pc, n) = (in_mut(a), in_mut(b), out_ptr(c), a.len());
            c_call!(self, sess, OpType::$op, vaccel_fpga_mmult_fn, |s| (s, pa, pb, pc, n))
        }
    };
    (@sig vaccel_fpga_parallel_fn [($op:ident, $m:ident)]) => {
        fn $m(
            &self,
            sess: &Session,
            a: &[f32],
            b: &[f32],
            add_out: &mut [f32],
            mult_out: &mut [f32],
        ) -> Result<()> {
            let (pa, pb, n) = (in_mut(a), in_mut(b), a.len());
            let (add, mult) = (out_ptr(add_out), out_ptr(mult_out));
            c_call!(self, sess, OpType::$op, vaccel_fpga_parallel_fn, |s| (
                s, pa, pb, add, mult, n
            ))
        }
    };
    (@sig vaccel_fpga_vadd_fn [($op:ident, $m:ident)]) => {
        fn $m(&self, sess: &Session, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
            let (pa, pb, pc, (na, nb)) = (in_mut(a), in_mut(b), out_ptr(c), (a.len(), b.len()));
            c_call!(self, sess, OpType::$op, vaccel_fpga_vadd_fn, |s| (
                s, pa, pb, pc, na, nb
            ))
        }
    };
    (@sig vaccel_minmax_fn [($op:ident, $m:ident)]) => {
        fn $m(
            &self,
            sess: &Session,
            indata: &[f64],
            low_threshold: i32,
            high_threshold: i32,
            outdata: &mut [f64],
        ) -> Result<(f64, f64)> {
            let ndata = c_len(indata.len(), "data points")?;
            let (mut min, mut max) = (0f64, 0f64);
            let (input, output) = (in_ptr(indata), out_ptr(outdata));
            // `outdata` holds at least `indata.len()` elements (checked by the runtime);
            // `min`/`max` are locals.
            c_call!(self, sess, OpType::$op, vaccel_minmax_fn, |s| (
                s,
                input,
                ndata,
                low_threshold,
                high_threshold,
                output,
                &raw mut min,
                &raw mut max
            ))?;
            Ok((min, max))
        }
    };
    (@sig vaccel_opencv_fn [($op:ident, $m:ident)]) => {
        fn $m(&self, sess: &Session, read: &[Arg<'_>], write: &mut [Arg<'_>]) -> Result<()> {
            let mut args = CArgs::new(read, write)?;
            let nr_read = c_len(args.read.len(), "read args")?;
            let nr_write = c_len(args.write.len(), "write args")?;
            let (r, w) = (args.read_ptr(), args.write_ptr());
            // As for `exec`.
            c_call!(self, sess, OpType::$op, vaccel_opencv_fn, |s| (
                s, r, nr_read, w, nr_write
            ))
        }
    };
    (@sig vaccel_tf_model_fn [$(($op:ident, $m:ident)),*]) => {
        $(
            fn $m(&self, sess: &Session, model: &Resource) -> Result<TfStatus> {
                self.tf_model(OpType::$op, sess, model)
            }
        )*
    };
    (@sig vaccel_model_fn [$(($op:ident, $m:ident)),*]) => {
        $(
            fn $m(&self, sess: &Session, model: &Resource) -> Result<()> {
                self.model_op(OpType::$op, sess, model)
            }
        )*
    };
    (@sig vaccel_tf_model_run_fn [($op:ident, $m:ident)]) => {
        fn $m(
            &self,
            sess: &Session,
            model: &Resource,
            run_options: Option<&[u8]>,
            in_nodes: &[TfNode],
            in_tensors: &[TfTensor<'_>],
            out_nodes: &[TfNode],
        ) -> Result<TfRunOutput> {
            let m = self.resource(model, sess)?;
            let options = run_options.map(|o| vaccel_tf_buffer {
                data: in_ptr(o).cast_mut().cast::<c_void>(),
                size: o.len(),
            });
            let c_in_nodes = CNodes::new(in_nodes)?;
            let c_out_nodes = CNodes::new(out_nodes)?;
            let mut inputs = t::CTensors::tf(in_tensors)?;
            let mut outs = OutSlots::<vaccel_tf_tensor>::new(out_nodes.len())?;
            let nr_in = c_len(in_tensors.len(), "input tensors")?;
            let mut status = vaccel_tf_status {
                code: 0,
                message: ptr::null_mut(),
            };
            let opts = options.as_ref().map_or(ptr::null(), ptr::from_ref);
            let (ins, outputs, nr_out) = (inputs.ptrs(), outs.ptr(), outs.count);
            // Every pointer is null (empty) or points at locals that live for the call: the
            // options over the caller's bytes, node arrays with NUL-terminated names, tensors
            // over the input bytes (read-only for the plugin), `nr_out` null output slots the
            // plugin fills with heap tensors, and a status.
            let ret = c_invoke!(self, sess, OpType::$op, vaccel_tf_model_run_fn, |s| (
                s,
                m.ptr,
                opts,
                in_ptr(&c_in_nodes.nodes),
                ins,
                nr_in,
                in_ptr(&c_out_nodes.nodes),
                outputs,
                nr_out,
                &raw mut status
            ))?;
            // SAFETY: the status was filled by the plugin (message null or heap, from strdup);
            // the slots as the op's contract says.
            let (status, outputs) = unsafe { (t::take_tf_status(&mut status), outs.take()) };
            self.check(OpType::$op, ret)?;
            Ok(TfRunOutput {
                outputs: outputs?,
                status,
            })
        }
    };
    (@sig vaccel_tflite_model_run_fn [($op:ident, $m:ident)]) => {
        fn $m(
            &self,
            sess: &Session,
            model: &Resource,
            inputs: &[TfLiteTensor<'_>],
            nr_outputs: usize,
        ) -> Result<TfLiteRunOutput> {
            let m = self.resource(model, sess)?;
            let mut c_inputs = t::CTensors::tflite(inputs)?;
            let mut outs = OutSlots::<vaccel_tflite_tensor>::new(nr_outputs)?;
            let nr_in = c_len(inputs.len(), "input tensors")?;
            let mut status = 0u8;
            let (ins, outputs, nr_out) = (c_inputs.ptrs(), outs.ptr(), outs.count);
            // As for `tf_model_run`.
            let ret = c_invoke!(self, sess, OpType::$op, vaccel_tflite_model_run_fn, |s| (
                s,
                m.ptr,
                ins,
                nr_in,
                outputs,
                nr_out,
                &raw mut status
            ))?;
            // SAFETY: the slots as the op's contract says.
            let outputs = unsafe { outs.take() };
            self.check(OpType::$op, ret)?;
            Ok(TfLiteRunOutput {
                outputs: outputs?,
                status,
            })
        }
    };
    (@sig vaccel_torch_model_run_fn [($op:ident, $m:ident)]) => {
        fn $m(
            &self,
            sess: &Session,
            model: &Resource,
            run_options: Option<&[u8]>,
            inputs: &[TorchTensor<'_>],
            nr_outputs: usize,
        ) -> Result<Vec<TorchTensor<'static>>> {
            let m = self.resource(model, sess)?;
            let options = run_options.map(|o| vaccel_torch_buffer {
                data: in_ptr(o).cast_mut().cast::<c_char>(),
                size: o.len(),
            });
            let mut c_inputs = t::CTensors::torch(inputs)?;
            let mut outs = OutSlots::<vaccel_torch_tensor>::new(nr_outputs)?;
            let nr_in = c_len(inputs.len(), "input tensors")?;
            let opts = options.as_ref().map_or(ptr::null(), ptr::from_ref);
            let (ins, outputs, nr_out) = (c_inputs.ptrs(), outs.ptr(), outs.count);
            // As for `tf_model_run`.
            let ret = c_invoke!(self, sess, OpType::$op, vaccel_torch_model_run_fn, |s| (
                s, m.ptr, opts, ins, nr_in, outputs, nr_out
            ))?;
            // SAFETY: the slots as the op's contract says.
            let outputs = unsafe { outs.take() };
            self.check(OpType::$op, ret)?;
            outputs
        }
    };
    (@sig vaccel_torch_sgemm_fn [($op:ident, $m:ident)]) => {
        fn $m(
            &self,
            sess: &Session,
            a: &TorchTensor<'_>,
            b: &TorchTensor<'_>,
            c: &TorchTensor<'_>,
            m: i32,
            n: i32,
            k: i32,
        ) -> Result<Option<TorchTensor<'static>>> {
            let mut inputs = t::CTensors::torch(&[a.borrowed(), b.borrowed(), c.borrowed()])?;
            let mut ptrs = inputs.ptr_vec();
            let mut out = ptr::null_mut::<vaccel_torch_tensor>();
            let (pa, pb, pc) = match ptrs.as_mut_slice() {
                [pa, pb, pc] => (ptr::from_mut(pa), ptr::from_mut(pb), ptr::from_mut(pc)),
                _ => return Err(Error::invalid("torch_sgemm needs three tensors")),
            };
            // The three in-tensor slots point at C tensors over the inputs' bytes (live for the
            // call), `out` is a null slot the plugin may fill with a heap tensor.
            let ret = c_invoke!(self, sess, OpType::$op, vaccel_torch_sgemm_fn, |s| (
                s,
                pa,
                pb,
                pc,
                m,
                n,
                k,
                &raw mut out
            ))?;
            // SAFETY: null or a heap tensor the plugin allocated.
            let out = unsafe { t::take_torch_tensor_opt(out) };
            self.check(OpType::$op, ret)?;
            out
        }
    };
}

impl Plugin for CPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        self.ops
    }

    fn fini(&self) -> Result<()> {
        if self.finished.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.run_fini()
    }

    fn session_init(&self, sess: &Session, flags: u32) -> Result<Id> {
        if !self.session_hooks_apply(sess) {
            return Ok(0);
        }
        let Some(hook) = self.hooks.session_init else {
            if sess.is_remote() {
                return Err(Error::unsupported(format!(
                    "Cannot initialize remote session; plugin {} has no session_init",
                    self.name()
                )));
            }
            return Ok(0);
        };
        let s = views::session_for_plugin(sess)?;
        // SAFETY: the plugin's hook with this signature; `s` is a live view for the call.
        let ret = unsafe { hook(s, flags) };
        if ret != 0 {
            // The session will not be released through the plugin: drop its view now.
            views::forget_session(sess);
            return Err(self.error("session_init", ret));
        }
        // SAFETY: `s` is still the live view; the plugin set `remote_id` (remote sessions).
        let remote_id = unsafe { (*s).remote_id };
        Ok(if sess.is_remote() { remote_id } else { 0 })
    }

    fn session_update(&self, sess: &Session, flags: u32) -> Result<()> {
        if !self.session_hooks_apply(sess) {
            return Ok(());
        }
        let Some(hook) = self.hooks.session_update else {
            if sess.is_remote() {
                return Err(Error::unsupported(format!(
                    "remote plugin {} has no session_update",
                    self.name()
                )));
            }
            return Ok(());
        };
        let s = views::session_for_plugin(sess)?;
        // SAFETY: the plugin's hook; `s` is a live view for the call.
        let ret = unsafe { hook(s, flags) };
        if ret != 0 {
            return Err(self.error("session_update", ret));
        }
        Ok(())
    }

    fn session_release(&self, sess: &Session) -> Result<()> {
        let result = match self.hooks.session_release {
            Some(hook) if self.session_hooks_apply(sess) => {
                let s = views::session_for_plugin(sess)?;
                // SAFETY: the plugin's hook; `s` is a live view for the call.
                let ret = unsafe { hook(s) };
                if ret != 0 {
                    Err(self.error("session_release", ret))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        };
        // Shadows die with their session; the C API forgets its own views itself.
        if let Some(c) = views::session_c(sess)
            && views::session_from_c(c).is_err()
        {
            views::forget_session(sess);
        }
        result
    }

    fn resource_register(&self, res: &Resource, sess: &Session) -> Result<Id> {
        match self.resource_hook(self.hooks.resource_register, "resource_register", res, sess)? {
            // SAFETY: `r` keeps the view alive; the plugin may have set `remote_id`.
            Some((r, _)) => Ok(unsafe { (*r.ptr).remote_id }),
            None => Ok(0),
        }
    }

    fn resource_unregister(&self, res: &Resource, sess: &Session) -> Result<()> {
        self.resource_hook(
            self.hooks.resource_unregister,
            "resource_unregister",
            res,
            sess,
        )
        .map(|_| ())
    }

    fn resource_sync(&self, res: &Resource, sess: &Session) -> Result<()> {
        if let Some((r, _)) =
            self.resource_hook(self.hooks.resource_sync, "resource_sync", res, sess)?
        {
            views::sync_back(res, &r)?;
        }
        Ok(())
    }

    // The op methods: one per op of the op table, each calling the function of its op through
    // its signature (`plugin_methods!`).
    vaccel_abi::op_table!(plugin_methods);
}

impl CPlugin {
    fn tf_model(&self, op: OpType, sess: &Session, model: &Resource) -> Result<TfStatus> {
        let f = self.op_fn::<vaccel_tf_model_fn>(op)?;
        let s = views::session_for_plugin(sess)?;
        let m = self.resource(model, sess)?;
        let mut status = vaccel_tf_status {
            code: 0,
            message: ptr::null_mut(),
        };
        // SAFETY: `f` has the TF load/unload signature; `s`, `m.ptr` and the status are live
        // for the call.
        let ret = unsafe { f(s, m.ptr, &raw mut status) };
        // SAFETY: filled by the plugin: message null or from strdup.
        let status = unsafe { t::take_tf_status(&mut status) };
        self.check(op, ret)?;
        Ok(status)
    }

    fn model_op(&self, op: OpType, sess: &Session, model: &Resource) -> Result<()> {
        let f = self.op_fn::<vaccel_model_fn>(op)?;
        let s = views::session_for_plugin(sess)?;
        let m = self.resource(model, sess)?;
        // SAFETY: `f` has the `(sess, model)` signature of this op; both views are live.
        let ret = unsafe { f(s, m.ptr) };
        self.check(op, ret)
    }
}
