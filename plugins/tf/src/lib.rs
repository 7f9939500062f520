//! The `tf` CPU plugin: vAccel's TensorFlow operations (`tf_model_load`, `tf_model_run`,
//! `tf_model_unload`) on real TensorFlow, through its stable C API opened at run time.
//!
//! Nothing is linked at build time: the TensorFlow C library (`libtensorflow_cc.so.2` of the
//! `tensorflow-cpu` pip wheel, or `libtensorflow.so.2` of a libtensorflow tarball) is found
//! when the first TF operation runs (see [`library`] for the order: `VACCEL_TF_LIB`, the
//! dynamic loader, then the `tensorflow` package of `$VACCEL_PYTHON`/`python3`) and kept for
//! the life of the process. Without it the plugin still registers, and every operation is
//! declined with a message saying how to install it, so the runtime can try another plugin.
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use std::sync::Arc;
//! use vaccel_core::{
//!     PluginType, Resource, ResourceType, Runtime, Session, TfDataType, TfNode, TfTensor,
//! };
//! use vaccel_plugin_tf::TfPlugin;
//!
//! let rt = Runtime::builder()
//!     .skip_logging()
//!     .plugin(Arc::new(TfPlugin::new()))
//!     .build()?;
//! let sess = Session::new(&rt, PluginType::CPU.bits())?;
//! let model = Resource::new(&rt, "fixtures/tf/cnn_saved_model", ResourceType::Model)?;
//! sess.register(&model)?;
//! sess.tf_model_load(&model)?;
//! let image = TfTensor::new(vec![1, 8, 8, 3], TfDataType::Float, vec![0u8; 768])?;
//! let out = sess.tf_model_run(
//!     &model,
//!     None,
//!     &[TfNode::new("serving_default_image", 0)],
//!     &[image],
//!     &[TfNode::new("StatefulPartitionedCall", 1)],
//! )?;
//! assert_eq!(out.outputs[0].dims, [1, 5]);
//! sess.tf_model_unload(&model)?;
//! # Ok(()) }
//! ```
//!
//! # Semantics
//!
//! * **Models**: a `MODEL` resource holding a SavedModel (a directory, or its files) or a
//!   binary frozen `GraphDef`; see [`model`] for how the files are read. SavedModels are
//!   loaded with the tag `serve`.
//! * **`tf_model_load`** loads the model into a TensorFlow session kept per (session,
//!   resource). Loading a loaded model again is not an error and loads nothing. Status:
//!   code 0 and a message naming the format and TensorFlow version.
//! * **`tf_model_run`** feeds each input tensor to its node (operation name and output
//!   index), fetches the output nodes in order and returns one tensor per output node. The
//!   model must have been loaded in this session (`EINVAL` otherwise: upstream's plugin needs
//!   the load too). Inputs are checked before TensorFlow sees them: the element type must be
//!   fixed-size (not `STRING`, `RESOURCE`, `VARIANT`: `ENOTSUP`) and equal to the node's type,
//!   the bytes exactly `product(dims) * element size`, `BOOL` bytes 0 or 1, every node an
//!   existing operation and output (`EINVAL`). `run_options` is a serialized `RunOptions`
//!   proto, passed to TensorFlow as is. A scalar output comes back with dims `[1]`.
//! * **`tf_model_unload`** closes the TensorFlow session (`EINVAL` when not loaded). Models
//!   are also dropped when their resource is unregistered from the session and when the
//!   session is released.
//! * **TensorFlow failures** (a bad model, a shape TensorFlow refuses, an op failing) are
//!   errors carrying TensorFlow's status code and message, `TF_SessionRun failed with TF
//!   status 3 INVALID_ARGUMENT: ...`, reported with the errno of the same meaning
//!   (`INVALID_ARGUMENT` → `EINVAL`, `NOT_FOUND` → `ENOENT`, `RESOURCE_EXHAUSTED` → `ENOMEM`,
//!   `UNIMPLEMENTED` → `ENOTSUP`, ...) and `EBACKEND` for the rest. (The plugin interface
//!   returns a [`TfStatus`] only on success, so the TF code travels in the message.)
//!
//! # Logging
//!
//! TensorFlow logs to stderr on its own (`I tensorflow/...` lines at load); set
//! `TF_CPP_MIN_LOG_LEVEL=2` in the environment to keep only errors. The plugin logs through
//! `log`: the library found (info), each load, run and unload (debug; sizes, never bytes).
//!
//! # Threads
//!
//! A loaded model serves concurrent runs (`TF_SessionRun` is thread-safe); TensorFlow uses
//! its own thread pools, sized to the machine, inside each run.
//!
//! # Unsafe
//!
//! Only in the `ffi` module, which owns every TensorFlow object.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::sync::Arc;
use std::time::Instant;

use vaccel_core::plugin::{Plugin, PluginInfo};
use vaccel_core::tensor::TfRunOutput;
use vaccel_core::{
    BundledPlugin, OpSet, OpType, PluginType, Resource, Result, Session, TfNode, TfStatus,
    TfTensor, VACCEL_VERSION,
};

mod error;
mod ffi;
pub mod library;
pub mod model;

pub use error::{TfCode, TfError};
use model::{Model, ModelCache};

/// The operations this plugin implements.
pub const OPS: [OpType; 3] = [
    OpType::TfModelLoad,
    OpType::TfModelUnload,
    OpType::TfModelRun,
];

/// The plugin name.
pub const NAME: &str = "tf";

/// The tf plugin: name `tf`, type `CPU`, the ops in [`OPS`].
#[derive(Debug)]
pub struct TfPlugin {
    info: PluginInfo,
    models: ModelCache,
}

impl Default for TfPlugin {
    fn default() -> Self {
        TfPlugin::new()
    }
}

impl TfPlugin {
    /// The plugin, with no model loaded. TensorFlow itself is looked for at the first
    /// operation.
    pub fn new() -> Self {
        TfPlugin {
            info: PluginInfo::new(NAME, VACCEL_VERSION, PluginType::CPU),
            models: ModelCache::default(),
        }
    }

    /// How many models this plugin has loaded into TensorFlow so far (each once per session
    /// and resource, however many runs use it).
    pub fn models_loaded(&self) -> usize {
        self.models.loads()
    }

    /// How many models are loaded now, over all sessions.
    pub fn models_open(&self) -> usize {
        self.models.open()
    }

    fn not_loaded(sess: &Session, res: &Resource) -> TfError {
        TfError::NotLoaded {
            session: sess.id(),
            resource: res.id(),
        }
    }
}

/// The TensorFlow version in use (`TF_Version()`), or why there is none.
pub fn tf_version() -> std::result::Result<String, TfError> {
    library::api().map(|api| api.version().to_owned())
}

/// The descriptor the `vaccel` facade registers, so `VACCEL_PLUGINS=tf` selects this plugin.
pub fn bundled() -> BundledPlugin {
    BundledPlugin {
        name: NAME,
        create: |_| Ok(Arc::new(TfPlugin::new())),
    }
}

impl Plugin for TfPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        OpSet::of(&OPS)
    }

    fn recognizes_model(&self, res: &Resource) -> bool {
        // A frozen graph or a SavedModel has a `.pb` file; TensorFlow must be installed.
        res.blobs().iter().any(|b| b.name().ends_with(".pb")) && library::api().is_ok()
    }

    fn probe_model(&self, sess: &Session, res: &Resource) -> Result<()> {
        // Importing the graph (or restoring the SavedModel) is where TensorFlow checks it; a
        // run would need the caller's feeds.
        Model::load(library::api()?, sess, res).map(drop)
    }

    fn session_release(&self, sess: &Session) -> Result<()> {
        self.models.forget_session(sess.id());
        Ok(())
    }

    fn resource_unregister(&self, res: &Resource, sess: &Session) -> Result<()> {
        drop(self.models.remove(sess.id(), res.id()));
        Ok(())
    }

    fn tf_model_load(&self, sess: &Session, model: &Resource) -> Result<TfStatus> {
        let api = library::api()?;
        let start = Instant::now();
        let (loaded, fresh) = self
            .models
            .load(sess.id(), model.id(), || Model::load(api, sess, model))?;
        let what = format!("{}, TensorFlow {}", loaded.format, api.version());
        if fresh {
            log::debug!(
                "tf: session {} loaded resource {} ({what}) in {:.1} ms",
                sess.id(),
                model.id(),
                start.elapsed().as_secs_f64() * 1e3
            );
            Ok(TfStatus::new(0, format!("Model loaded ({what})")))
        } else {
            log::debug!(
                "tf: session {} resource {} already loaded",
                sess.id(),
                model.id()
            );
            Ok(TfStatus::new(0, format!("Model already loaded ({what})")))
        }
    }

    fn tf_model_unload(&self, sess: &Session, model: &Resource) -> Result<TfStatus> {
        library::api()?;
        let loaded = self
            .models
            .remove(sess.id(), model.id())
            .ok_or_else(|| Self::not_loaded(sess, model))?;
        drop(loaded);
        log::debug!("tf: session {} unloaded resource {}", sess.id(), model.id());
        Ok(TfStatus::new(0, "Model unloaded"))
    }

    fn tf_model_run(
        &self,
        sess: &Session,
        model: &Resource,
        run_options: Option<&[u8]>,
        in_nodes: &[TfNode],
        in_tensors: &[TfTensor<'_>],
        out_nodes: &[TfNode],
    ) -> Result<TfRunOutput> {
        library::api()?;
        let loaded = self
            .models
            .get(sess.id(), model.id())
            .ok_or_else(|| Self::not_loaded(sess, model))?;
        let in_bytes: usize = in_tensors.iter().map(|t| t.data.len()).sum();
        log::debug!(
            "tf: session {} run resource {}: {} inputs ({in_bytes} bytes), {} outputs",
            sess.id(),
            model.id(),
            in_nodes.len(),
            out_nodes.len()
        );
        let outputs = loaded.run(run_options, in_nodes, in_tensors, out_nodes)?;
        Ok(TfRunOutput {
            outputs,
            status: TfStatus::new(0, "Model run"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor() {
        let p = TfPlugin::new();
        assert_eq!(p.info().name, "tf");
        assert_eq!(p.info().plugin_type, PluginType::CPU);
        for op in OPS {
            assert!(p.ops().contains(op));
        }
        assert!(!p.ops().contains(OpType::TfliteModelRun));
        assert_eq!(bundled().name, "tf");
        assert_eq!(p.models_loaded(), 0);
        assert_eq!(p.models_open(), 0);
    }
}
