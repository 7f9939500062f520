//! The plugin interface: what a backend or transport implements.
//!
//! A plugin declares its name, version, type bitmask and the set of operations it implements,
//! and overrides the matching methods; every other method answers "not implemented". Session
//! and resource hooks are optional. Plugins are shared between threads: every method takes
//! `&self`, and a plugin keeps any per-session state behind its own locks.
//!
//! ```
//! use vaccel_core::plugin::{Plugin, PluginInfo};
//! use vaccel_core::{OpSet, OpType, PluginType, Result, Session};
//!
//! struct Hello(PluginInfo);
//! impl Plugin for Hello {
//!     fn info(&self) -> &PluginInfo { &self.0 }
//!     fn ops(&self) -> OpSet { OpSet::of(&[OpType::Noop]) }
//!     fn noop(&self, _sess: &Session) -> Result<()> { Ok(()) }
//! }
//! let plugin = Hello(PluginInfo::new("hello", "1.0.0", PluginType::CPU));
//! assert!(plugin.ops().contains(OpType::Noop));
//! ```

use std::fmt;

use crate::VACCEL_VERSION;
use crate::arg::Arg;
use crate::detection::Detection;
use crate::error::{Error, Result};
use crate::resource::Resource;
use crate::session::Session;
use crate::tensor::{
    TfLiteRunOutput, TfLiteTensor, TfNode, TfRunOutput, TfStatus, TfTensor, TorchTensor,
};
use crate::types::{Id, OpSet, OpType, PluginType};

/// A plugin's descriptor (`struct vaccel_plugin_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Name, e.g. `noop`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The vAccel API version it was built for (checked at registration, §3).
    pub vaccel_version: String,
    /// Type bitmask, matched against session hints.
    pub plugin_type: PluginType,
    /// Whether it forwards to a remote runtime (upstream's `is_virtio`).
    pub remote: bool,
}

impl PluginInfo {
    /// A local plugin built for this runtime's vAccel version.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        plugin_type: PluginType,
    ) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            vaccel_version: VACCEL_VERSION.to_owned(),
            plugin_type,
            remote: false,
        }
    }

    /// Marks the plugin as a remote transport.
    pub fn remote(mut self) -> Self {
        self.remote = true;
        self
    }
}

/// The operands of `vaccel_sgemm`: `C = alpha * A x B + beta * C`, row-major.
#[derive(Debug, Clone, Copy)]
pub struct SgemmArgs<'a> {
    /// Rows of A and C.
    pub m: i64,
    /// Columns of B and C.
    pub n: i64,
    /// Columns of A, rows of B.
    pub k: i64,
    /// Scale of the product.
    pub alpha: f32,
    /// A, `m` rows of stride `lda`.
    pub a: &'a [f32],
    /// Row stride of A.
    pub lda: i64,
    /// B, `k` rows of stride `ldb`.
    pub b: &'a [f32],
    /// Row stride of B.
    pub ldb: i64,
    /// Scale of C.
    pub beta: f32,
    /// Row stride of C.
    pub ldc: i64,
}

impl SgemmArgs<'_> {
    /// Checks dimensions, strides and that every slice holds the rows it is said to hold, so a
    /// plugin can index without bounds surprises. `c` is the output's length.
    pub fn validate(&self, c_len: usize) -> Result<()> {
        let dim = |v: i64, what: &'static str| -> Result<usize> {
            usize::try_from(v).map_err(|_| Error::invalid(what))
        };
        let m = dim(self.m, "sgemm: m is negative")?;
        let n = dim(self.n, "sgemm: n is negative")?;
        let k = dim(self.k, "sgemm: k is negative")?;
        let lda = dim(self.lda, "sgemm: lda is negative")?;
        let ldb = dim(self.ldb, "sgemm: ldb is negative")?;
        let ldc = dim(self.ldc, "sgemm: ldc is negative")?;
        if lda < k || ldb < n || ldc < n {
            return Err(Error::invalid(
                "sgemm: a leading dimension is smaller than its row",
            ));
        }
        let needed = |rows: usize, ld: usize, cols: usize| -> Option<usize> {
            if rows == 0 {
                Some(0)
            } else {
                (rows - 1).checked_mul(ld)?.checked_add(cols)
            }
        };
        let fits = |len: usize, rows, ld, cols| needed(rows, ld, cols).is_some_and(|n| len >= n);
        if !fits(self.a.len(), m, lda, k) {
            return Err(Error::invalid("sgemm: A is smaller than m x lda"));
        }
        if !fits(self.b.len(), k, ldb, n) {
            return Err(Error::invalid("sgemm: B is smaller than k x ldb"));
        }
        if !fits(c_len, m, ldc, n) {
            return Err(Error::invalid("sgemm: C is smaller than m x ldc"));
        }
        Ok(())
    }
}

/// The error every unimplemented op method returns.
pub fn not_implemented(plugin: &(impl Plugin + ?Sized), op: OpType) -> Error {
    Error::OpNotImplemented {
        plugin: plugin.info().name.clone(),
        op,
    }
}

/// A vAccel plugin. See the module docs.
///
/// The runtime validates what it can before calling an op (argument types, registration of
/// resources, slice lengths that the op's signature ties together), so plugins can rely on it.
#[allow(unused_variables)] // default bodies ignore their operands
pub trait Plugin: Send + Sync + 'static {
    /// The descriptor.
    fn info(&self) -> &PluginInfo;

    /// The operations this plugin implements. Only these methods are ever called.
    fn ops(&self) -> OpSet;

    /// Called when the plugin is unregistered (runtime shutdown).
    fn fini(&self) -> Result<()> {
        Ok(())
    }

    /// A session bound to this plugin is being created. Remote plugins return the id of the
    /// session on the remote side; local plugins return 0.
    fn session_init(&self, sess: &Session, flags: u32) -> Result<Id> {
        Ok(0)
    }

    /// The (deprecated) session update: new hint flags.
    fn session_update(&self, sess: &Session, flags: u32) -> Result<()> {
        Ok(())
    }

    /// Whether `res` is a model in this plugin's format that its runtime could load now: a
    /// cheap look (file names, magic bytes), nothing parsed. Hosts that take models from
    /// untrusted peers (the agent) vet such models with [`Plugin::probe_model`] in a
    /// disposable process before loading them in their own, since a native runtime may crash
    /// on a malformed model.
    fn recognizes_model(&self, res: &Resource) -> bool {
        false
    }

    /// Loads `res` as a model and runs it once on zero-filled inputs, keeping nothing: the
    /// work of a vetting process (see [`Plugin::recognizes_model`]). An error is an answer,
    /// not a failure of the vetting: only a crash of the process rejects the model.
    fn probe_model(&self, sess: &Session, res: &Resource) -> Result<()> {
        Ok(())
    }

    /// The session is being released (its resources are already unregistered).
    fn session_release(&self, sess: &Session) -> Result<()> {
        Ok(())
    }

    /// A resource is being registered with a session bound to this plugin. Remote plugins
    /// return the resource's id on the remote side; local plugins return 0.
    fn resource_register(&self, res: &Resource, sess: &Session) -> Result<Id> {
        Ok(0)
    }

    /// A resource has been unregistered from a session bound to this plugin.
    fn resource_unregister(&self, res: &Resource, sess: &Session) -> Result<()> {
        Ok(())
    }

    /// Refresh a buffer resource's bytes from where the plugin keeps them.
    fn resource_sync(&self, res: &Resource, sess: &Session) -> Result<()> {
        Ok(())
    }

    /// `VACCEL_OP_NOOP`.
    fn noop(&self, sess: &Session) -> Result<()> {
        Err(not_implemented(self, OpType::Noop))
    }

    /// `VACCEL_OP_EXEC`: call `symbol` of `library` with the C convention of the exec plugin.
    fn exec(
        &self,
        sess: &Session,
        library: &str,
        symbol: &str,
        read: &[Arg<'_>],
        write: &mut [Arg<'_>],
    ) -> Result<()> {
        Err(not_implemented(self, OpType::Exec))
    }

    /// `VACCEL_OP_EXEC_WITH_RESOURCE`: blobs `0..n-1` are dependencies, the last the library.
    fn exec_with_resource(
        &self,
        sess: &Session,
        res: &Resource,
        symbol: &str,
        read: &[Arg<'_>],
        write: &mut [Arg<'_>],
    ) -> Result<()> {
        Err(not_implemented(self, OpType::ExecWithResource))
    }

    /// `VACCEL_OP_IMAGE_CLASSIFY`: writes NUL-terminated text into both outputs.
    fn image_classify(
        &self,
        sess: &Session,
        image: &[u8],
        out_text: &mut [u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        Err(not_implemented(self, OpType::ImageClassify))
    }

    /// `VACCEL_OP_IMAGE_DETECT`, `_SEGMENT`, `_POSE`, `_DEPTH`: `op` tells which.
    fn image_op(
        &self,
        sess: &Session,
        op: OpType,
        image: &[u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        Err(not_implemented(self, op))
    }

    /// `VACCEL_OP_IMAGE_DETECT` with structured results (our extension): writes the result
    /// image name like [`Plugin::image_op`] and returns what was found. Plugins that only
    /// produce the image keep this default, which reports no detections.
    fn image_detect_objects(
        &self,
        sess: &Session,
        image: &[u8],
        out_imgname: &mut [u8],
    ) -> Result<Vec<Detection>> {
        self.image_op(sess, OpType::ImageDetect, image, out_imgname)
            .map(|()| Vec::new())
    }

    /// `VACCEL_OP_BLAS_SGEMM` (dimensions already validated).
    fn sgemm(&self, sess: &Session, args: &SgemmArgs<'_>, c: &mut [f32]) -> Result<()> {
        Err(not_implemented(self, OpType::BlasSgemm))
    }

    /// `VACCEL_OP_FPGA_ARRAYCOPY` (`out.len() >= a.len()`).
    fn fpga_arraycopy(&self, sess: &Session, a: &[i32], out: &mut [i32]) -> Result<()> {
        Err(not_implemented(self, OpType::FpgaArraycopy))
    }

    /// `VACCEL_OP_FPGA_MMULT` (`b.len() >= a.len()`, `c.len() >= a.len()`).
    fn fpga_mmult(&self, sess: &Session, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
        Err(not_implemented(self, OpType::FpgaMmult))
    }

    /// `VACCEL_OP_FPGA_PARALLEL` (every slice at least `a.len()`).
    fn fpga_parallel(
        &self,
        sess: &Session,
        a: &[f32],
        b: &[f32],
        add_out: &mut [f32],
        mult_out: &mut [f32],
    ) -> Result<()> {
        Err(not_implemented(self, OpType::FpgaParallel))
    }

    /// `VACCEL_OP_FPGA_VECTORADD` (`b` and `c` at least `a.len()`).
    fn fpga_vadd(&self, sess: &Session, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
        Err(not_implemented(self, OpType::FpgaVectoradd))
    }

    /// `VACCEL_OP_MINMAX`: returns `(min, max)` (`outdata.len() >= indata.len()`).
    fn minmax(
        &self,
        sess: &Session,
        indata: &[f64],
        low_threshold: i32,
        high_threshold: i32,
        outdata: &mut [f64],
    ) -> Result<(f64, f64)> {
        Err(not_implemented(self, OpType::Minmax))
    }

    /// `VACCEL_OP_OPENCV`: arguments passed through.
    fn opencv(&self, sess: &Session, read: &[Arg<'_>], write: &mut [Arg<'_>]) -> Result<()> {
        Err(not_implemented(self, OpType::Opencv))
    }

    /// `VACCEL_OP_TF_MODEL_LOAD`.
    fn tf_model_load(&self, sess: &Session, model: &Resource) -> Result<TfStatus> {
        Err(not_implemented(self, OpType::TfModelLoad))
    }

    /// `VACCEL_OP_TF_MODEL_UNLOAD`.
    fn tf_model_unload(&self, sess: &Session, model: &Resource) -> Result<TfStatus> {
        Err(not_implemented(self, OpType::TfModelUnload))
    }

    /// `VACCEL_OP_TF_MODEL_RUN`: one output tensor per output node.
    #[allow(clippy::too_many_arguments)]
    fn tf_model_run(
        &self,
        sess: &Session,
        model: &Resource,
        run_options: Option<&[u8]>,
        in_nodes: &[TfNode],
        in_tensors: &[TfTensor<'_>],
        out_nodes: &[TfNode],
    ) -> Result<TfRunOutput> {
        Err(not_implemented(self, OpType::TfModelRun))
    }

    /// `VACCEL_OP_TFLITE_MODEL_LOAD`.
    fn tflite_model_load(&self, sess: &Session, model: &Resource) -> Result<()> {
        Err(not_implemented(self, OpType::TfliteModelLoad))
    }

    /// `VACCEL_OP_TFLITE_MODEL_UNLOAD`.
    fn tflite_model_unload(&self, sess: &Session, model: &Resource) -> Result<()> {
        Err(not_implemented(self, OpType::TfliteModelUnload))
    }

    /// `VACCEL_OP_TFLITE_MODEL_RUN`: `nr_outputs` tensors.
    fn tflite_model_run(
        &self,
        sess: &Session,
        model: &Resource,
        inputs: &[TfLiteTensor<'_>],
        nr_outputs: usize,
    ) -> Result<TfLiteRunOutput> {
        Err(not_implemented(self, OpType::TfliteModelRun))
    }

    /// `VACCEL_OP_TORCH_MODEL_LOAD`.
    fn torch_model_load(&self, sess: &Session, model: &Resource) -> Result<()> {
        Err(not_implemented(self, OpType::TorchModelLoad))
    }

    /// `VACCEL_OP_TORCH_MODEL_RUN`: `nr_outputs` tensors.
    fn torch_model_run(
        &self,
        sess: &Session,
        model: &Resource,
        run_options: Option<&[u8]>,
        inputs: &[TorchTensor<'_>],
        nr_outputs: usize,
    ) -> Result<Vec<TorchTensor<'static>>> {
        Err(not_implemented(self, OpType::TorchModelRun))
    }

    /// `VACCEL_OP_TORCH_SGEMM` (deprecated upstream): `None` leaves the output untouched.
    #[allow(clippy::too_many_arguments)]
    fn torch_sgemm(
        &self,
        sess: &Session,
        a: &TorchTensor<'_>,
        b: &TorchTensor<'_>,
        c: &TorchTensor<'_>,
        m: i32,
        n: i32,
        k: i32,
    ) -> Result<Option<TorchTensor<'static>>> {
        Err(not_implemented(self, OpType::TorchSgemm))
    }
}

impl fmt::Debug for dyn Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.info();
        f.debug_struct("Plugin")
            .field("name", &info.name)
            .field("version", &info.version)
            .field("type", &info.plugin_type)
            .field("remote", &info.remote)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgemm_validation() {
        let a = [0f32; 6];
        let b = [0f32; 6];
        let args = SgemmArgs {
            m: 2,
            n: 2,
            k: 3,
            alpha: 1.0,
            a: &a,
            lda: 3,
            b: &b,
            ldb: 2,
            beta: 0.0,
            ldc: 2,
        };
        assert!(args.validate(4).is_ok());
        assert!(args.validate(3).is_err());
        assert!(SgemmArgs { m: -1, ..args }.validate(4).is_err());
        assert!(SgemmArgs { lda: 2, ..args }.validate(4).is_err());
        assert!(SgemmArgs { a: &a[..5], ..args }.validate(4).is_err());
        assert!(
            SgemmArgs {
                m: i64::MAX,
                ..args
            }
            .validate(4)
            .is_err()
        );
        assert!(SgemmArgs { m: 0, ..args }.validate(0).is_ok());
    }
}
