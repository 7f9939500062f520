//! The `tflite` CPU plugin: TensorFlow Lite models run by LiteRT (Google's TFLite runtime,
//! the `ai-edge-litert` wheel) through its C API, for `vaccel_tflite_model_load/run/unload`
//! and, with [`vaccel_vision`], the image operations (classify, detect, segment, pose).
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use std::borrow::Cow;
//! use std::sync::Arc;
//! use vaccel_core::{
//!     PluginType, Resource, ResourceType, Runtime, Session, TfLiteDataType, TfLiteTensor,
//! };
//! use vaccel_plugin_tflite::TflitePlugin;
//!
//! let rt = Runtime::builder().plugin(Arc::new(TflitePlugin::new())).build()?;
//! let sess = Session::new(&rt, PluginType::CPU.bits())?;
//! let model = Resource::new(&rt, "face_detection_short_range.tflite", ResourceType::Model)?;
//! sess.register(&model)?;
//! sess.tflite_model_load(&model)?; // parse + compile, once
//! let input = vec![0u8; 128 * 128 * 3 * 4];
//! let t = TfLiteTensor::new(vec![1, 128, 128, 3], TfLiteDataType::Float32, Cow::from(&input[..]))?;
//! let out = sess.tflite_model_run(&model, &[t], 2)?;
//! assert_eq!(out.outputs[1].dims, vec![1, 896, 1]);
//! sess.tflite_model_unload(&model)?;
//! # Ok(()) }
//! ```
//!
//! # Finding LiteRT
//!
//! `libLiteRt.so` is loaded at run time, once per process, at the first operation that needs
//! it. The candidates, in order:
//!
//! 1. `$VACCEL_LITERT_LIB`, when set and non-empty: that file and nothing else.
//! 2. `libLiteRt.so` through the dynamic loader's search (`LD_LIBRARY_PATH`, `ld.so.cache`).
//! 3. The directory of the Python package `ai_edge_litert`, asked from `$VACCEL_PYTHON`
//!    (default `python3`) in one short subprocess (`importlib.util.find_spec`, which locates
//!    the package without importing it), so `python3 -m pip install ai-edge-litert==2.3.0`
//!    (system, user or virtual environment) is enough.
//!
//! When nothing is found the plugin still registers, and every model operation returns
//! [`vaccel_core::Error::Declined`] with the install hint, so the runtime tries the next CPU
//! plugin that implements the operation. The binding targets the LiteRT 2.3 C API (the
//! "CompiledModel" API: the wheel does not export the classic `TfLiteInterpreter*` one) and
//! refuses libraries that lack its symbols.
//!
//! # Operations
//!
//! * `tflite_model_load`: the model is the first TFLite blob of the MODEL resource (file,
//!   directory, buffer or blob resources alike, so models sent over RPC work). It is parsed and compiled once and
//!   cached for the (session, resource) pair; loading again is a no-op. A resource that is not
//!   a TFLite flatbuffer is declined.
//! * `tflite_model_run`: inputs are checked against the model (count, element type, byte size;
//!   `EINVAL` otherwise) and copied in; the first `nr_outputs` outputs come back with the
//!   model's dims and type; status 0. Every fixed-size element type is supported (float32,
//!   int32, uint8, int8, int64, bool, float16, ...), as byte copies. A model that was not loaded
//!   in the session is an `EINVAL` error (upstream's examples always load first); only static
//!   shapes are supported.
//! * `tflite_model_unload`: drops the compiled model; `EINVAL` if it was not loaded. Models are
//!   also dropped when the resource is unregistered or the session released.
//! * Image operations: the model is the first MODEL resource of the session that is a TFLite
//!   flatbuffer (labels: a blob of it named `*.txt`, one per line); sessions with models but
//!   none in TFLite are declined; sessions without models use the bundled ones (BlazeFace
//!   short range for detection, selfie segmentation, the BlazePose detector for pose),
//!   compiled once per process. Classification and depth have no bundled model here: without
//!   a registered model they are declined, and under `cpu` the `onnx` plugin's bundled
//!   ImageNet classifier answers classification. Result images are written into the
//!   session's run directory.
//!
//! # Threads
//!
//! Models run on LiteRT's CPU accelerator (XNNPACK) with [`TflitePlugin::threads`] threads,
//! set through the CPU options (`num_threads`): `$VACCEL_TFLITE_THREADS`, else every
//! available core. Runs on one compiled model are serialised (its buffers are reused);
//! different models run in parallel. Compilation and other environment calls are serialised
//! process-wide.
//!
//! # Unsafe
//!
//! All of it is in the private `ffi` module: the function table, the `LiteRtRankedTensorType`
//! layout (static-asserted at 72 bytes, as upstream asserts), and owned wrappers that destroy
//! every LiteRT object once, in dependency order.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod defaults;
mod discovery;
mod error;
#[allow(unsafe_code)]
mod ffi;
mod model;

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vaccel_core::plugin::{Plugin, PluginInfo};
use vaccel_core::tensor::TfLiteRunOutput;
use vaccel_core::{
    BundledPlugin, Detection, Error, Id, OpSet, OpType, PluginType, Resource, ResourceType, Result,
    Session, TfLiteTensor, VACCEL_VERSION,
};
use vaccel_vision::Task;

pub use defaults::DefaultModel;
pub use discovery::{ENV_LIB, ENV_PYTHON, LIB_NAME};
pub use error::{LiteRtStatus, TfliteError};
pub use model::{Model, TensorSpec, is_tflite};

/// The plugin's name.
pub const PLUGIN_NAME: &str = "tflite";

/// CPU threads per model (a positive integer); default: every available core.
pub const ENV_THREADS: &str = "VACCEL_TFLITE_THREADS";

/// The operations this plugin implements.
pub const OPS: [OpType; 8] = [
    OpType::TfliteModelLoad,
    OpType::TfliteModelUnload,
    OpType::TfliteModelRun,
    OpType::ImageClassify,
    OpType::ImageDetect,
    OpType::ImageSegment,
    OpType::ImagePose,
    OpType::ImageDepth,
];

/// Whether LiteRT can be loaded in this process (running discovery if it has not run yet),
/// or why not.
pub fn litert_available() -> std::result::Result<std::path::PathBuf, String> {
    discovery::litert()
        .map(|lt| lt.path().to_path_buf())
        .map_err(|e| error::chain(e))
}

/// How many bundled models this process has compiled (each at most once per thread count).
pub fn default_compilations() -> u64 {
    defaults::compilations()
}

/// A bundled model compiled for `threads` CPU threads: compiled at the first call, the same
/// shared model afterwards.
pub fn default_model(
    model: DefaultModel,
    threads: usize,
) -> std::result::Result<Arc<Model>, TfliteError> {
    defaults::model(model, threads)
}

/// The thread count from `$VACCEL_TFLITE_THREADS`, else every available core.
pub fn default_threads() -> Result<usize> {
    match std::env::var(ENV_THREADS) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::Config {
                key: ENV_THREADS.to_owned(),
                value: v,
                reason: "a positive integer",
            }),
        },
        _ => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// Compiled models keyed by (session id, resource id).
type ModelMap = HashMap<(Id, Id), Arc<Model>>;

/// The tflite plugin: name `tflite`, type `CPU`, the ops in [`OPS`].
#[derive(Debug)]
pub struct TflitePlugin {
    info: PluginInfo,
    threads: usize,
    /// Models loaded with `tflite_model_load`.
    loaded: Mutex<ModelMap>,
    /// Session models compiled for image operations.
    vision: Mutex<ModelMap>,
    compilations: AtomicU64,
}

impl Default for TflitePlugin {
    fn default() -> Self {
        TflitePlugin::new()
    }
}

/// The descriptor the `vaccel` facade registers, so `VACCEL_PLUGINS=tflite` selects this
/// plugin. Fails only on a malformed `$VACCEL_TFLITE_THREADS`.
pub fn bundled() -> BundledPlugin {
    BundledPlugin {
        name: PLUGIN_NAME,
        create: |_| Ok(Arc::new(TflitePlugin::with_threads(default_threads()?))),
    }
}

/// Inputs larger than this in all are not run by [`Plugin::probe_model`] (compiled only).
const PROBE_INPUT_LIMIT: usize = 256 << 20;

fn lock(map: &Mutex<ModelMap>) -> MutexGuard<'_, ModelMap> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// The bytes of the resource's model: its first TFLite blob, else its first blob (which then
/// fails to load with a clear error).
fn model_bytes(res: &Resource) -> Result<impl std::ops::Deref<Target = [u8]>> {
    let blobs = res.blobs();
    blobs
        .iter()
        .find(|b| blob_is_tflite(b))
        .or_else(|| blobs.first())
        .ok_or_else(|| Error::invalid(format!("tflite: resource {} has no blobs", res.id())))?
        .read()
}

/// Whether one of the resource's blobs is a TFLite flatbuffer (a directory resource holds
/// the model beside its labels), reading at most 8 bytes of each file.
fn first_blob_is_tflite(res: &Resource) -> bool {
    res.blobs().iter().any(|b| blob_is_tflite(b))
}

fn blob_is_tflite(blob: &vaccel_core::Blob) -> bool {
    if let Some(data) = blob.data() {
        return is_tflite(data);
    }
    let Some(path) = blob.path() else {
        return false;
    };
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && is_tflite(&head)
}

/// Labels from a `*.txt` blob of the resource: one per line, trailing empty lines dropped.
fn resource_labels(res: &Resource) -> Result<Option<Vec<String>>> {
    let Some(blob) = res.blobs().into_iter().find(|b| b.name().ends_with(".txt")) else {
        return Ok(None);
    };
    Ok(Some(parse_labels(&String::from_utf8_lossy(&blob.read()?))))
}

fn parse_labels(text: &str) -> Vec<String> {
    let mut labels: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').trim().to_owned())
        .collect();
    while labels.last().is_some_and(String::is_empty) {
        labels.pop();
    }
    labels
}

fn declined(reason: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::declined(PLUGIN_NAME, reason)
}

/// The model an image operation runs and its labels.
struct VisionModel {
    model: Arc<Model>,
    labels: Option<Vec<String>>,
}

impl TflitePlugin {
    /// The plugin with [`default_threads`] (every core when `$VACCEL_TFLITE_THREADS` is unset
    /// or malformed).
    pub fn new() -> Self {
        let threads = default_threads().unwrap_or_else(|e| {
            log::warn!("tflite: {e}; using every core");
            std::thread::available_parallelism().map_or(1, |n| n.get())
        });
        TflitePlugin::with_threads(threads)
    }

    /// The plugin with `threads` CPU threads per model (0: LiteRT's default).
    pub fn with_threads(threads: usize) -> Self {
        TflitePlugin {
            info: PluginInfo::new(PLUGIN_NAME, VACCEL_VERSION, PluginType::CPU),
            threads,
            loaded: Mutex::new(HashMap::new()),
            vision: Mutex::new(HashMap::new()),
            compilations: AtomicU64::new(0),
        }
    }

    /// CPU threads per model.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How many session models this plugin has compiled (bundled models are counted by
    /// [`default_compilations`]).
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// How many models are loaded with `tflite_model_load` now, over every session.
    pub fn loaded_count(&self) -> usize {
        lock(&self.loaded).len()
    }

    /// Declines when LiteRT cannot be loaded.
    fn require_litert(&self) -> Result<()> {
        discovery::litert().map(|_| ()).map_err(Error::from)
    }

    fn compile(&self, res: &Resource) -> Result<Arc<Model>> {
        if !first_blob_is_tflite(res) {
            return Err(declined(format!(
                "resource {} is not a TFLite model (no TFL3 identifier)",
                res.id()
            )));
        }
        let bytes = model_bytes(res)?;
        let model = Model::load(&bytes, self.threads)?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(model))
    }

    /// The model and labels for an image operation (see the crate docs).
    fn vision_model(&self, sess: &Session, task: Task) -> Result<VisionModel> {
        self.require_litert()?;
        let models = sess.resources_by_type(ResourceType::Model);
        if models.is_empty() {
            let Some(default) = DefaultModel::for_task(task) else {
                return Err(declined(format!("no bundled model for {task}")));
            };
            return Ok(VisionModel {
                model: defaults::model(default, self.threads)?,
                labels: None,
            });
        }
        let Some(res) = models.iter().find(|r| first_blob_is_tflite(r)) else {
            return Err(declined(format!(
                "none of the {} model resources of session {} is a TFLite model",
                models.len(),
                sess.id()
            )));
        };
        let key = (sess.id(), res.id());
        let loaded = lock(&self.loaded).get(&key).cloned();
        let existing = loaded.or_else(|| lock(&self.vision).get(&key).cloned());
        let model = match existing {
            Some(m) => m,
            None => {
                let m = self.compile(res)?;
                Arc::clone(lock(&self.vision).entry(key).or_insert(m))
            }
        };
        Ok(VisionModel {
            model,
            labels: resource_labels(res)?,
        })
    }

    fn run_vision(
        &self,
        sess: &Session,
        task: Task,
        image: &[u8],
    ) -> Result<vaccel_vision::Output> {
        let vm = self.vision_model(sess, task)?;
        vaccel_vision::run(task, &*vm.model, vm.labels.as_deref(), image, sess.rundir())
            .map_err(|e| vaccel_vision::plugin::to_core(e, PLUGIN_NAME, "image op"))
    }
}

impl Plugin for TflitePlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        OpSet::of(&OPS)
    }

    fn recognizes_model(&self, res: &Resource) -> bool {
        first_blob_is_tflite(res) && self.require_litert().is_ok()
    }

    fn probe_model(&self, _sess: &Session, res: &Resource) -> Result<()> {
        let model = self.compile(res)?;
        let sizes: Vec<usize> = model.inputs().iter().map(|t| t.byte_size).collect();
        if sizes.iter().sum::<usize>() > PROBE_INPUT_LIMIT {
            log::info!(
                "tflite: probe of resource {} compiled it; inputs too large to run",
                res.id()
            );
            return Ok(());
        }
        let zeros: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0; n]).collect();
        let inputs: Vec<&[u8]> = zeros.iter().map(Vec::as_slice).collect();
        model.run(&inputs)?;
        Ok(())
    }

    fn fini(&self) -> Result<()> {
        lock(&self.loaded).clear();
        lock(&self.vision).clear();
        Ok(())
    }

    fn session_release(&self, sess: &Session) -> Result<()> {
        let id = sess.id();
        lock(&self.loaded).retain(|k, _| k.0 != id);
        lock(&self.vision).retain(|k, _| k.0 != id);
        Ok(())
    }

    fn resource_unregister(&self, res: &Resource, sess: &Session) -> Result<()> {
        let key = (sess.id(), res.id());
        lock(&self.loaded).remove(&key);
        lock(&self.vision).remove(&key);
        Ok(())
    }

    fn tflite_model_load(&self, sess: &Session, model: &Resource) -> Result<()> {
        self.require_litert()?;
        let key = (sess.id(), model.id());
        if lock(&self.loaded).contains_key(&key) {
            log::debug!("session:{} tflite: model {} already loaded", key.0, key.1);
            return Ok(());
        }
        // Compiled outside the lock: other sessions keep running meanwhile. Two concurrent
        // loads of one pair both compile; the first stored wins.
        let compiled = self.compile(model)?;
        lock(&self.loaded).entry(key).or_insert(compiled);
        log::debug!("session:{} tflite: loaded model {}", key.0, key.1);
        Ok(())
    }

    fn tflite_model_unload(&self, sess: &Session, model: &Resource) -> Result<()> {
        self.require_litert()?;
        match lock(&self.loaded).remove(&(sess.id(), model.id())) {
            Some(_) => Ok(()),
            None if !first_blob_is_tflite(model) => Err(declined(format!(
                "resource {} is not a TFLite model",
                model.id()
            ))),
            None => Err(Error::invalid(format!(
                "tflite: model {} is not loaded in session {}",
                model.id(),
                sess.id()
            ))),
        }
    }

    fn tflite_model_run(
        &self,
        sess: &Session,
        model: &Resource,
        inputs: &[TfLiteTensor<'_>],
        nr_outputs: usize,
    ) -> Result<TfLiteRunOutput> {
        self.require_litert()?;
        let Some(compiled) = lock(&self.loaded).get(&(sess.id(), model.id())).cloned() else {
            if !first_blob_is_tflite(model) {
                return Err(declined(format!(
                    "resource {} is not a TFLite model",
                    model.id()
                )));
            }
            return Err(Error::invalid(format!(
                "tflite: model {} is not loaded in session {} (call vaccel_tflite_model_load \
                 first)",
                model.id(),
                sess.id()
            )));
        };
        let outputs = compiled.run_tensors(inputs, nr_outputs)?;
        Ok(TfLiteRunOutput { outputs, status: 0 })
    }

    fn image_classify(
        &self,
        sess: &Session,
        image: &[u8],
        out_text: &mut [u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        vaccel_vision::plugin::classify(|t| self.run_vision(sess, t, image), out_text, out_imgname)
    }

    fn image_op(
        &self,
        sess: &Session,
        op: OpType,
        image: &[u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        vaccel_vision::plugin::image_op(self, op, |t| self.run_vision(sess, t, image), out_imgname)
    }

    fn image_detect_objects(
        &self,
        sess: &Session,
        image: &[u8],
        out_imgname: &mut [u8],
    ) -> Result<Vec<Detection>> {
        vaccel_vision::plugin::detect_objects(|t| self.run_vision(sess, t, image), out_imgname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaccel_core::arg::write_c_string;
    use vaccel_vision::plugin::task_of;

    #[test]
    fn c_strings_are_terminated_and_cut_at_char_boundaries() {
        let mut out = [0xffu8; 8];
        write_c_string(&mut out, "abc");
        assert_eq!(&out[..4], b"abc\0");
        let mut out = [0xffu8; 4];
        write_c_string(&mut out, "abcdef");
        assert_eq!(&out, b"abc\0");
        let mut out = [0xffu8; 3];
        write_c_string(&mut out, "é€"); // 2 + 3 bytes: only "é" fits
        assert_eq!(&out, "é\0".as_bytes());
        let mut out = [0xffu8; 2];
        write_c_string(&mut out, "€");
        assert_eq!(out[0], 0);
        write_c_string(&mut [], "x"); // nothing to write into, no panic
    }

    #[test]
    fn labels_keep_positions() {
        assert_eq!(
            parse_labels("background\r\ncat\n\ndog\n\n"),
            vec!["background", "cat", "", "dog"]
        );
    }

    #[test]
    fn plugin_descriptor() {
        let p = TflitePlugin::with_threads(1);
        assert_eq!(p.info().name, "tflite");
        assert_eq!(p.info().plugin_type, PluginType::CPU);
        for op in OPS {
            assert!(p.ops().contains(op));
        }
        assert!(!p.ops().contains(OpType::BlasSgemm));
        assert_eq!(task_of(OpType::ImagePose), Some(Task::Pose));
        assert_eq!(task_of(OpType::Noop), None);
    }
}
