//! The `torch` CPU plugin: vAccel's Torch operations (`vaccel_torch_model_load`,
//! `vaccel_torch_model_run`, `vaccel_torch_sgemm`) on TorchScript models, run by libtorch
//! through the [`tch`](https://crates.io/crates/tch) crate.
//!
//! libtorch is optional: it comes with the `libtorch` cargo feature, built against the
//! libtorch of a PyTorch 2.13.0 install (see `README.md`). Without the feature the crate
//! needs no libtorch at all, and every op is declined (`ENOTSUP` when no other plugin serves
//! it) with a message that says how to enable it.
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use std::sync::Arc;
//! use vaccel_core::{PluginType, Resource, ResourceType, Runtime, Session};
//! use vaccel_core::{TorchDataType, TorchTensor};
//! use vaccel_plugin_torch::TorchPlugin;
//!
//! let rt = Runtime::builder()
//!     .skip_logging()
//!     .plugin(Arc::new(TorchPlugin::new()))
//!     .build()?;
//! let sess = Session::new(&rt, PluginType::CPU.bits())?;
//! let model = Resource::new(&rt, "fixtures/torch/tiny_cnn.pt", ResourceType::Model)?;
//! sess.register(&model)?;
//! sess.torch_model_load(&model)?;
//! let image = vec![0u8; 2 * 3 * 16 * 16 * 4]; // f32, native endian
//! let classes = [3i64, 7].iter().flat_map(|c| c.to_ne_bytes()).collect::<Vec<_>>();
//! let inputs = [
//!     TorchTensor::new(vec![2, 3, 16, 16], TorchDataType::Float, &image[..])?,
//!     TorchTensor::new(vec![2], TorchDataType::Long, &classes[..])?,
//! ];
//! let outputs = sess.torch_model_run(&model, None, &inputs, 3)?;
//! assert_eq!(outputs[0].dims, [2, 10]);
//! # Ok(()) }
//! ```
//!
//! # Semantics
//!
//! * **Models**: the first file of a `MODEL` resource, a TorchScript archive
//!   (`torch.jit.trace`/`script` then `save`), loaded onto the CPU in eval mode. A model is
//!   loaded once per session and resource, by `torch_model_load` or by the first run, and
//!   dropped when the resource is unregistered or the session released.
//! * **Runs**: input tensors are copied into libtorch tensors (each must hold exactly
//!   `product(dims) * element size` bytes, else `EINVAL`) and passed positionally to
//!   `forward`, without autograd. The result, a tensor or tuples and lists of tensors, is
//!   flattened in order and its first `nr_outputs` tensors are returned; asking for more than
//!   there are is `EINVAL`. FLOAT64 and BFLOAT16 outputs come back as FLOAT and BOOL as BYTE
//!   (vAccel has no such types); a 0-dimensional output gets dims `[1]`. `run_options` are
//!   accepted and ignored. A model that fails inside `forward` (inputs of the wrong count,
//!   shape or type for it) gives `EBACKEND` with libtorch's message.
//! * **`torch_sgemm`**: `out = C + A x B` with FLOAT row-major `A` (`m x k`), `B` (`k x n`)
//!   and `C` (`m x n`), returned as a new `m x n` tensor; operands are matched by element
//!   count (their dims are not read).
//!
//! Tensor bytes are in the host's byte order, as everywhere in vAccel.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::sync::Arc;

use vaccel_core::plugin::{Plugin, PluginInfo};
use vaccel_core::{
    BundledPlugin, OpSet, OpType, PluginType, Resource, Result, Session, TorchTensor,
    VACCEL_VERSION,
};

mod cache;
#[cfg(feature = "libtorch")]
mod engine;
mod error;
pub mod tensor;

pub use error::TorchError;

use cache::ModelCache;

/// The plugin's name.
pub const NAME: &str = "torch";

/// The operations this plugin implements.
pub const OPS: [OpType; 3] = [
    OpType::TorchModelLoad,
    OpType::TorchModelRun,
    OpType::TorchSgemm,
];

/// Whether this build can run models (the `libtorch` feature).
pub const WITH_LIBTORCH: bool = cfg!(feature = "libtorch");

/// What the cache holds: a loaded module, or nothing ever without libtorch.
#[cfg(feature = "libtorch")]
type Loaded = engine::Model;
#[cfg(not(feature = "libtorch"))]
type Loaded = std::convert::Infallible;

/// The torch plugin: name `torch`, type `CPU`, the ops in [`OPS`].
#[derive(Debug)]
pub struct TorchPlugin {
    info: PluginInfo,
    models: ModelCache<Loaded>,
}

impl Default for TorchPlugin {
    fn default() -> Self {
        TorchPlugin::new()
    }
}

impl TorchPlugin {
    /// The plugin, with no model loaded.
    pub fn new() -> Self {
        TorchPlugin {
            info: PluginInfo::new(NAME, VACCEL_VERSION, PluginType::CPU),
            models: ModelCache::default(),
        }
    }

    /// How many models this plugin has loaded so far (each once per session and resource,
    /// however many calls use it).
    pub fn models_loaded(&self) -> usize {
        self.models.loads()
    }

    /// How many loaded models are cached now.
    pub fn models_cached(&self) -> usize {
        self.models.len()
    }

    /// The model of `res` in `sess`, loaded now if it is not yet.
    #[cfg(feature = "libtorch")]
    fn model(&self, sess: &Session, res: &Resource) -> Result<Arc<Loaded>, TorchError> {
        self.models.get_or_load(sess.id(), res.id(), || {
            let blobs = res.blobs();
            let blob = blobs.first().ok_or(TorchError::NoModelFile(res.id()))?;
            let origin = format!("resource {} ({})", res.id(), blob.name());
            let model = engine::Model::load(blob, origin)?;
            log::info!("torch: session {} loaded {}", sess.id(), model.origin());
            Ok(model)
        })
    }

    #[cfg(not(feature = "libtorch"))]
    fn model(&self, _sess: &Session, _res: &Resource) -> Result<Arc<Loaded>, TorchError> {
        Err(TorchError::NotBuilt)
    }
}

/// The descriptor the `vaccel` facade registers, so `VACCEL_PLUGINS=torch` selects this plugin.
pub fn bundled() -> BundledPlugin {
    BundledPlugin {
        name: NAME,
        create: |_| Ok(Arc::new(TorchPlugin::new())),
    }
}

impl Plugin for TorchPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        OpSet::of(&OPS)
    }

    #[cfg(feature = "libtorch")]
    fn recognizes_model(&self, res: &Resource) -> bool {
        res.blobs()
            .first()
            .is_some_and(|b| tensor::looks_like_torchscript(&engine::head(b)))
    }

    /// Loads the module only: TorchScript does not declare its inputs' shapes.
    #[cfg(feature = "libtorch")]
    fn probe_model(&self, _sess: &Session, res: &Resource) -> Result<()> {
        let blobs = res.blobs();
        let blob = blobs.first().ok_or(TorchError::NoModelFile(res.id()))?;
        let origin = format!("resource {} ({})", res.id(), blob.name());
        engine::Model::load(blob, origin)?;
        Ok(())
    }

    fn session_release(&self, sess: &Session) -> Result<()> {
        self.models.forget_session(sess.id());
        Ok(())
    }

    fn resource_unregister(&self, res: &Resource, sess: &Session) -> Result<()> {
        self.models.forget_resource(sess.id(), res.id());
        Ok(())
    }

    fn torch_model_load(&self, sess: &Session, model: &Resource) -> Result<()> {
        log::debug!(
            "torch: session {} model load (resource {})",
            sess.id(),
            model.id()
        );
        self.model(sess, model)?;
        Ok(())
    }

    fn torch_model_run(
        &self,
        sess: &Session,
        model: &Resource,
        run_options: Option<&[u8]>,
        inputs: &[TorchTensor<'_>],
        nr_outputs: usize,
    ) -> Result<Vec<TorchTensor<'static>>> {
        log::debug!(
            "torch: session {} model run (resource {}, {} inputs, {} outputs, {} option bytes)",
            sess.id(),
            model.id(),
            inputs.len(),
            nr_outputs,
            run_options.map_or(0, <[u8]>::len)
        );
        let loaded = self.model(sess, model)?;
        #[cfg(feature = "libtorch")]
        return Ok(loaded.run(inputs, nr_outputs)?);
        #[cfg(not(feature = "libtorch"))]
        match *loaded {}
    }

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
        log::debug!("torch: session {} sgemm m={m} n={n} k={k}", sess.id());
        #[cfg(feature = "libtorch")]
        return Ok(Some(engine::sgemm(a, b, c, m, n, k)?));
        #[cfg(not(feature = "libtorch"))]
        {
            let _ = (a, b, c);
            Err(TorchError::NotBuilt.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use vaccel_core::Runtime;

    use super::*;

    fn session() -> (Runtime, Arc<Session>) {
        let rt = Runtime::builder()
            .skip_logging()
            .plugin(Arc::new(TorchPlugin::new()))
            .build()
            .unwrap();
        let sess = Session::new(&rt, PluginType::CPU.bits()).unwrap();
        (rt, sess)
    }

    #[test]
    fn descriptor() {
        let p = TorchPlugin::new();
        assert_eq!(p.info().name, "torch");
        assert_eq!(p.info().plugin_type, PluginType::CPU);
        for op in OPS {
            assert!(p.ops().contains(op));
        }
        assert!(!p.ops().contains(OpType::TfModelRun));
        assert_eq!(bundled().name, "torch");
    }

    #[cfg(not(feature = "libtorch"))]
    #[test]
    fn without_libtorch_every_op_is_declined_with_how_to_enable() {
        use vaccel_core::{ErrorCode, ResourceType, TorchDataType};
        let (rt, sess) = session();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.pt");
        std::fs::write(&path, b"PK\x03\x04 not really").unwrap();
        let model = Resource::new(&rt, path.to_str().unwrap(), ResourceType::Model).unwrap();
        sess.register(&model).unwrap();

        let e = sess.torch_model_load(&model).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ENOTSUP);
        let text = e.to_string();
        assert!(
            text.contains("built without the libtorch feature"),
            "{text}"
        );
        assert!(text.contains("--features libtorch"), "{text}");

        let x = TorchTensor::new(vec![1], TorchDataType::Float, vec![0u8; 4]).unwrap();
        let e = sess
            .torch_model_run(&model, None, std::slice::from_ref(&x), 1)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ENOTSUP, "{e}");
        let e = sess.torch_sgemm(&x, &x, &x, 1, 1, 1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ENOTSUP, "{e}");
    }

    #[test]
    fn hooks_are_harmless_for_models_never_loaded() {
        use vaccel_core::ResourceType;
        let (rt, sess) = session();
        let p = TorchPlugin::new();
        let model = Resource::from_buf(&rt, vec![1u8], ResourceType::Model, None, true).unwrap();
        p.resource_unregister(&model, &sess).unwrap();
        p.session_release(&sess).unwrap();
        assert_eq!((p.models_loaded(), p.models_cached()), (0, 0));
    }
}
