//! Which model serves a call, and the cache that keeps parsed models between calls.
//!
//! A session's model is the first `MODEL` resource registered with it whose first blob is ONNX;
//! its labels are the first other blob whose name ends in `.txt`, one label per line. Models
//! registered with sessions are cached per (session, resource) and dropped by the plugin's
//! `resource_unregister` and `session_release` hooks (ids are reused, so nothing may outlive
//! them). What is found out about a resource is cached whatever it is: a loaded model, "not
//! ONNX" (the reason a call is declined) or the error of an ONNX model tract cannot load, so no
//! call re-reads or re-parses a model. The bundled default models are loaded once per process.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use vaccel_core::{Blob, Error, ErrorCode, Id, Resource, ResourceType, Result, Session};

use vaccel_vision::Task;
use vaccel_vision::engine::{Engine, TensorView};

use crate::backend::{AnyEngine, Settings};
use crate::engine::{SNIFF_LEN, decode, sniff};

/// Longest labels file read (a label per line; ImageNet's 1000 labels take ~20 KiB).
const MAX_LABELS_BYTES: u64 = 4 << 20;

/// A model ready to serve image ops.
#[derive(Debug)]
pub struct Model {
    /// The runnable model.
    pub engine: AnyEngine,
    /// Class names, one per class index, when the resource carries a labels file.
    pub labels: Option<Vec<String>>,
    /// What it was loaded from, for logs and errors (`resource 3 (mobilenet.onnx)`).
    pub origin: String,
}

/// What was found out about one registered resource.
#[derive(Debug, Clone)]
enum Verdict {
    /// An ONNX model, loaded.
    Onnx(Arc<Model>),
    /// Not ONNX, and why (so a declined call does not re-read the file).
    NotOnnx(String),
    /// ONNX that cannot be loaded: the error's code and message, so that later calls fail
    /// the same way without parsing it again.
    Broken(ErrorCode, String),
}

type Slot = Arc<Mutex<Option<Verdict>>>;

/// The models of registered resources, per (session id, resource id).
#[derive(Debug, Default)]
pub struct ModelCache {
    settings: Settings,
    slots: Mutex<HashMap<(Id, Id), Slot>>,
    loads: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ModelCache {
    /// An empty cache loading models as `settings` say.
    pub fn new(settings: Settings) -> ModelCache {
        ModelCache {
            settings,
            ..ModelCache::default()
        }
    }

    /// How many models were parsed and loaded so far.
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::Relaxed)
    }

    /// The session's ONNX model: `Ok(None)` when no model resource is registered, a declined
    /// error when none of them is ONNX, a load error when the first ONNX one cannot be loaded.
    pub fn for_session(&self, sess: &Session) -> Result<Option<Arc<Model>>> {
        let resources = sess.resources_by_type(ResourceType::Model);
        if resources.is_empty() {
            return Ok(None);
        }
        let mut reasons = Vec::new();
        for res in &resources {
            match self.verdict(sess, res)? {
                Verdict::Onnx(model) => return Ok(Some(model)),
                Verdict::NotOnnx(why) => reasons.push(why),
                Verdict::Broken(code, message) => return Err(model_error(code, message)),
            }
        }
        Err(Error::declined(
            "onnx",
            format!("no registered model is ONNX ({})", reasons.join("; ")),
        ))
    }

    fn verdict(&self, sess: &Session, res: &Resource) -> Result<Verdict> {
        let slot = Arc::clone(lock(&self.slots).entry((sess.id(), res.id())).or_default());
        // Held while loading: a second caller for the same model waits instead of parsing too.
        let mut slot = lock(&slot);
        if let Some(v) = &*slot {
            return Ok(v.clone());
        }
        let verdict = self.examine(res)?;
        *slot = Some(verdict.clone());
        Ok(verdict)
    }

    fn examine(&self, res: &Resource) -> Result<Verdict> {
        let blobs = res.blobs();
        let Some(first) = blobs.first() else {
            return Ok(Verdict::NotOnnx(format!(
                "resource {} has no file",
                res.id()
            )));
        };
        let origin = format!("resource {} ({})", res.id(), first.name());
        if !sniff(&head(first)?) {
            log::debug!("onnx: {origin} is not ONNX");
            return Ok(Verdict::NotOnnx(format!("{origin} is not ONNX")));
        }
        let bytes = first.read()?;
        let proto = match decode(&bytes) {
            Ok(proto) => proto,
            Err(e) => {
                log::debug!("onnx: {origin}: {e}");
                return Ok(Verdict::NotOnnx(format!(
                    "{origin}: {}",
                    crate::error::chain(&e)
                )));
            }
        };
        self.loads.fetch_add(1, Ordering::Relaxed);
        let engine = match AnyEngine::load(&self.settings, &bytes, &proto) {
            Ok(engine) => engine,
            Err(e) => {
                let message = format!("{origin}: {}", crate::error::chain(&e));
                log::warn!("onnx: {message}");
                return Ok(Verdict::Broken(e.code(), message));
            }
        };
        let labels = match blobs.iter().skip(1).find(|b| b.name().ends_with(".txt")) {
            Some(blob) => Some(read_labels(blob)?),
            None => None,
        };
        log::info!(
            "onnx: loaded {origin} on {}{}",
            engine.name(),
            labels
                .as_ref()
                .map(|l| format!(" with {} labels", l.len()))
                .unwrap_or_default()
        );
        Ok(Verdict::Onnx(Arc::new(Model {
            engine,
            labels,
            origin,
        })))
    }

    /// Whether the resource's first file looks like ONNX (its first bytes only).
    pub fn recognizes(&self, res: &Resource) -> bool {
        res.blobs()
            .first()
            .and_then(|b| head(b).ok())
            .is_some_and(|h| sniff(&h))
    }

    /// Loads the resource's model (nothing cached) and runs it once on zeros: the vetting
    /// probe of [`vaccel_core::plugin::Plugin::probe_model`]. Inputs of more than
    /// `limit` values in all are not run.
    pub fn probe(&self, res: &Resource, limit: usize) -> Result<()> {
        let model = match self.examine(res)? {
            Verdict::Onnx(model) => model,
            Verdict::NotOnnx(why) => return Err(Error::declined("onnx", why)),
            Verdict::Broken(code, message) => return Err(model_error(code, message)),
        };
        let shapes = model.engine.input_shapes();
        let sizes: Vec<usize> = shapes.iter().map(|s| s.iter().product()).collect();
        if sizes.iter().sum::<usize>() > limit {
            return Ok(());
        }
        let zeros: Vec<Vec<f32>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
        let inputs: Vec<TensorView<'_>> = shapes
            .iter()
            .zip(&zeros)
            .map(|(shape, data)| TensorView { shape, data })
            .collect();
        model.engine.run(&inputs).map_err(|e| {
            Error::backend(
                "onnx",
                ErrorCode::EBACKEND,
                format!("{}: {e}", model.origin),
            )
        })?;
        Ok(())
    }

    /// Drops what is cached for one resource of one session.
    pub fn forget_resource(&self, sess: Id, res: Id) {
        lock(&self.slots).remove(&(sess, res));
    }

    /// Drops everything cached for a session.
    pub fn forget_session(&self, sess: Id) {
        lock(&self.slots).retain(|(s, _), _| *s != sess);
    }

    /// Number of (session, resource) entries cached.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.slots).len()
    }
}

/// The runtime error for a model that cannot be loaded.
fn model_error(code: ErrorCode, message: String) -> Error {
    if code == ErrorCode::EINVAL {
        Error::invalid(format!("onnx: {message}"))
    } else {
        Error::backend("onnx", code, message)
    }
}

/// The first bytes of a blob, without reading a whole file.
fn head(blob: &Blob) -> Result<Vec<u8>> {
    if let Some(data) = blob.data() {
        return Ok(data.iter().take(SNIFF_LEN).copied().collect());
    }
    let Some(path) = blob.path() else {
        return Ok(Vec::new());
    };
    let mut head = Vec::with_capacity(SNIFF_LEN);
    std::fs::File::open(path)
        .and_then(|f| f.take(SNIFF_LEN as u64).read_to_end(&mut head))
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok(head)
}

/// A labels file: one label per line, surrounding whitespace trimmed (`\r\n` files too).
fn read_labels(blob: &Blob) -> Result<Vec<String>> {
    if blob.size()? > MAX_LABELS_BYTES {
        return Err(Error::invalid(format!(
            "onnx: labels file {} is over {MAX_LABELS_BYTES} bytes",
            blob.name()
        )));
    }
    let bytes = blob.read()?;
    Ok(parse_labels(&bytes))
}

fn parse_labels(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

/// A model built into the plugin, used when a session registered none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bundled {
    /// MediaPipe's short-range face detector (BlazeFace, 128x128): image detection.
    FaceDetection,
    /// MediaPipe's selfie segmenter (256x256): image segmentation.
    SelfieSegmentation,
    /// EfficientNet-Lite0, the 1000 ImageNet-1k classes (224x224, labels
    /// `examples/data/imagenet.txt`): image classification.
    ImageNet,
}

static FACE_DETECTION: &[u8] =
    include_bytes!("../../../fixtures/models/face_detection_short_range.onnx");
static SELFIE_SEGMENTATION: &[u8] =
    include_bytes!("../../../fixtures/models/selfie_segmentation.onnx");
static IMAGENET: &[u8] =
    include_bytes!("../../../fixtures/models/efficientnet_lite0/efficientnet_lite0.onnx");
/// The ImageNet-1k labels in class-index order, the ones upstream's examples use.
static IMAGENET_LABELS: &[u8] = include_bytes!("../../../examples/data/imagenet.txt");

/// Parses of bundled models in this process (each is parsed at most once).
static BUNDLED_LOADS: AtomicUsize = AtomicUsize::new(0);

impl Bundled {
    /// The bundled model for an op, if there is one.
    pub fn for_task(task: Task) -> Option<Bundled> {
        match task {
            Task::Detect => Some(Bundled::FaceDetection),
            Task::Segment => Some(Bundled::SelfieSegmentation),
            Task::Classify => Some(Bundled::ImageNet),
            Task::Pose | Task::Depth => None,
        }
    }

    /// The model's file name.
    pub fn name(self) -> &'static str {
        match self {
            Bundled::FaceDetection => "face_detection_short_range.onnx",
            Bundled::SelfieSegmentation => "selfie_segmentation.onnx",
            Bundled::ImageNet => "efficientnet_lite0.onnx",
        }
    }

    /// The model's bytes.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Bundled::FaceDetection => FACE_DETECTION,
            Bundled::SelfieSegmentation => SELFIE_SEGMENTATION,
            Bundled::ImageNet => IMAGENET,
        }
    }

    /// The class labels, one per class index (classifiers only).
    pub fn labels(self) -> Option<Vec<String>> {
        match self {
            Bundled::ImageNet => Some(parse_labels(IMAGENET_LABELS)),
            Bundled::FaceDetection | Bundled::SelfieSegmentation => None,
        }
    }

    /// The model, parsed on first use and kept for the life of the process (one copy per
    /// engine preference: onnxruntime first, or tract only; the first plugin to load it sets
    /// its thread count).
    pub(crate) fn model(self, settings: &Settings) -> Result<Arc<Model>> {
        type Cell = OnceLock<std::result::Result<Arc<Model>, String>>;
        static FACE: [Cell; 2] = [OnceLock::new(), OnceLock::new()];
        static SELFIE: [Cell; 2] = [OnceLock::new(), OnceLock::new()];
        static IMAGENET_CELLS: [Cell; 2] = [OnceLock::new(), OnceLock::new()];
        let cells = match self {
            Bundled::FaceDetection => &FACE,
            Bundled::SelfieSegmentation => &SELFIE,
            Bundled::ImageNet => &IMAGENET_CELLS,
        };
        let [tract_cell, ort_cell] = cells;
        let cell = if settings.prefers_onnxruntime() {
            ort_cell
        } else {
            tract_cell
        };
        cell.get_or_init(|| {
            BUNDLED_LOADS.fetch_add(1, Ordering::Relaxed);
            let origin = format!("bundled {}", self.name());
            let loaded = decode(self.bytes())
                .and_then(|proto| AnyEngine::load(settings, self.bytes(), &proto));
            match loaded {
                Ok(engine) => {
                    log::info!("onnx: loaded {origin} on {}", engine.name());
                    Ok(Arc::new(Model {
                        engine,
                        labels: self.labels(),
                        origin,
                    }))
                }
                Err(e) => Err(format!("{origin}: {}", crate::error::chain(&e))),
            }
        })
        .clone()
        .map_err(|message| Error::backend("onnx", ErrorCode::EBACKEND, message))
    }
}

/// How many times a bundled model was parsed in this process.
#[cfg(test)]
pub fn bundled_loads() -> usize {
    BUNDLED_LOADS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_one_per_line() {
        assert_eq!(
            parse_labels(b"tench\r\ngoldfish\n great white shark \n"),
            vec!["tench", "goldfish", "great white shark"]
        );
        assert!(parse_labels(b"").is_empty());
        // Invalid UTF-8 is replaced, not refused.
        assert_eq!(parse_labels(b"a\xffb\n").len(), 1);
    }

    #[test]
    fn the_bundled_classifier_has_the_imagenet_labels_in_class_order() {
        let labels = Bundled::ImageNet.labels().unwrap();
        assert_eq!(labels.len(), 1000);
        assert_eq!(labels[0], "tench, Tinca tinca");
        assert_eq!(labels[954], "banana");
        assert_eq!(Bundled::for_task(Task::Classify), Some(Bundled::ImageNet));
        assert_eq!(Bundled::FaceDetection.labels(), None);
    }
}
