//! The models compiled into the plugin, used by image operations on sessions without a model
//! of their own. Each is compiled once per process (and thread count).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vaccel_vision::Task;

use crate::error::TfliteError;
use crate::model::Model;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/models/",
            $name
        ))
    };
}

/// A bundled model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultModel {
    /// MediaPipe BlazeFace short range (`face_detection_short_range.tflite`): detection.
    FaceDetection,
    /// MediaPipe selfie segmentation (`selfie_segmentation.tflite`): segmentation.
    SelfieSegmentation,
    /// MediaPipe BlazePose detector (`pose_detection.tflite`): pose.
    PoseDetection,
}

impl DefaultModel {
    /// The bundled model serving `task`. None for depth, and none for classification: the
    /// `onnx` plugin's bundled ImageNet classifier serves it (`cpu` tries `tflite` first, so
    /// a TFLite default here would shadow it).
    pub fn for_task(task: Task) -> Option<DefaultModel> {
        match task {
            Task::Detect => Some(DefaultModel::FaceDetection),
            Task::Segment => Some(DefaultModel::SelfieSegmentation),
            Task::Pose => Some(DefaultModel::PoseDetection),
            Task::Classify | Task::Depth => None,
        }
    }

    /// The flatbuffer.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            DefaultModel::FaceDetection => fixture!("face_detection_short_range.tflite"),
            DefaultModel::SelfieSegmentation => fixture!("selfie_segmentation.tflite"),
            DefaultModel::PoseDetection => fixture!("pose_detection.tflite"),
        }
    }
}

static COMPILED: Mutex<Vec<(DefaultModel, usize, Arc<Model>)>> = Mutex::new(Vec::new());
static COMPILATIONS: AtomicU64 = AtomicU64::new(0);

/// The compiled `model` for `threads` CPU threads, compiled at the first call.
pub fn model(model: DefaultModel, threads: usize) -> Result<Arc<Model>, TfliteError> {
    // Held while compiling: a second caller waits for the first compilation, not repeats it.
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, m)) = compiled
        .iter()
        .find(|(d, t, _)| *d == model && *t == threads)
    {
        return Ok(Arc::clone(m));
    }
    let m = Arc::new(Model::load(model.bytes(), threads)?);
    COMPILATIONS.fetch_add(1, Ordering::Relaxed);
    log::debug!("tflite: compiled the bundled {model:?} model");
    compiled.push((model, threads, Arc::clone(&m)));
    Ok(m)
}

/// How many bundled models this process has compiled.
pub fn compilations() -> u64 {
    COMPILATIONS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_tflite;

    #[test]
    fn bundled_models_are_tflite() {
        for m in [
            DefaultModel::FaceDetection,
            DefaultModel::SelfieSegmentation,
            DefaultModel::PoseDetection,
        ] {
            assert!(is_tflite(m.bytes()), "{m:?}");
        }
        assert_eq!(DefaultModel::for_task(Task::Depth), None);
        assert_eq!(DefaultModel::for_task(Task::Classify), None);
    }
}
