//! Tasks, and the model families this crate recognises from their tensor shapes.

use std::fmt;

use crate::engine::Engine;
use crate::preprocess::InputSpec;

/// An image operation of vAccel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// `vaccel_image_classification`: the most likely class.
    Classify,
    /// `vaccel_image_detection`: boxes around objects.
    Detect,
    /// `vaccel_image_segmentation`: a per-pixel person mask.
    Segment,
    /// `vaccel_image_pose`: people and their body keypoints.
    Pose,
    /// `vaccel_image_depth`: a depth map (no supported model family).
    Depth,
}

impl Task {
    /// Every task.
    pub const ALL: [Task; 5] = [
        Task::Classify,
        Task::Detect,
        Task::Segment,
        Task::Pose,
        Task::Depth,
    ];

    /// The file name of this task's result image in the output directory (classification
    /// writes none: its result is text).
    pub fn image_name(self) -> Option<&'static str> {
        match self {
            Task::Classify => None,
            Task::Detect => Some("detection.png"),
            Task::Segment => Some("segmentation.png"),
            Task::Pose => Some("pose.png"),
            Task::Depth => Some("depth.png"),
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Classify => "image classification",
            Task::Detect => "object detection",
            Task::Segment => "image segmentation",
            Task::Pose => "pose estimation",
            Task::Depth => "depth estimation",
        })
    }
}

/// A supported model family, recognised from the model's tensor shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// MediaPipe BlazeFace short range (`face_detection_short_range`): one 128x128 RGB input,
    /// outputs `[1, 896, 16]` boxes + 6 keypoints and `[1, 896, 1]` scores.
    FaceDetector,
    /// MediaPipe BlazePose detector (`pose_detection`): one 224x224 RGB input, outputs
    /// `[1, 2254, 12]` boxes + 4 keypoints and `[1, 2254, 1]` scores.
    PoseDetector,
    /// A one-channel mask the size of the input, `[1, H, W, 1]` (MediaPipe selfie
    /// segmentation): per-pixel person probability.
    Segmenter,
    /// One RGB image in, `[1, N]` class scores out (`N >= 2`).
    Classifier {
        /// Number of classes.
        classes: usize,
    },
}

impl ModelKind {
    /// Whether this family can do `task`. A pose detector also serves detection (its people
    /// as `person` boxes); nothing does depth.
    pub fn supports(self, task: Task) -> bool {
        matches!(
            (self, task),
            (ModelKind::FaceDetector, Task::Detect)
                | (ModelKind::PoseDetector, Task::Detect | Task::Pose)
                | (ModelKind::Segmenter, Task::Segment)
                | (ModelKind::Classifier { .. }, Task::Classify)
        )
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelKind::FaceDetector => f.write_str("face detector"),
            ModelKind::PoseDetector => f.write_str("pose detector"),
            ModelKind::Segmenter => f.write_str("segmentation"),
            ModelKind::Classifier { classes } => write!(f, "{classes}-class classifier"),
        }
    }
}

/// The dimensions of `shape` without its leading 1s (and a leading 0, a dynamic batch).
pub(crate) fn squeeze_leading(shape: &[usize]) -> &[usize] {
    let mut s = shape;
    if let Some((&0, rest)) = s.split_first() {
        s = rest;
    }
    while let Some((&1, rest)) = s.split_first() {
        if rest.is_empty() {
            break;
        }
        s = rest;
    }
    s
}

/// The two SSD outputs of a MediaPipe detector: (index of `[.., boxes, coords]`, index of
/// `[.., boxes, 1]`), in whatever order the model lists them.
pub(crate) fn ssd_outputs(
    shapes: &[Vec<usize>],
    boxes: usize,
    coords: usize,
) -> Option<(usize, usize)> {
    if shapes.len() != 2 {
        return None;
    }
    let find = |want: [usize; 2]| {
        shapes
            .iter()
            .position(|s| squeeze_leading(s) == want.as_slice())
    };
    let reg = find([boxes, coords])?;
    let score = find([boxes, 1])?;
    (reg != score).then_some((reg, score))
}

/// `(height, width)` of a one-channel map output: `[1, H, W, 1]`, `[1, 1, H, W]`, `[1, H, W]`.
pub(crate) fn map_size(shape: &[usize]) -> Option<(usize, usize)> {
    match *squeeze_leading(shape) {
        [h, w, 1] | [h, w] if h > 1 && w > 1 => Some((h, w)),
        _ => None,
    }
}

/// The number of classes of a `[1, N]` / `[N]` output.
pub(crate) fn class_count(shape: &[usize]) -> Option<usize> {
    match *squeeze_leading(shape) {
        [n] if n >= 2 => Some(n),
        _ => None,
    }
}

/// Recognises the family of the model behind `engine` from its tensor shapes; `None` when it
/// is of none this crate can drive (a plugin then declines every image operation on it).
pub fn model_kind(engine: &dyn Engine) -> Option<ModelKind> {
    kind_of(&engine.input_shapes(), &engine.output_shapes())
}

/// [`model_kind`] on bare shapes.
pub fn kind_of(inputs: &[Vec<usize>], outputs: &[Vec<usize>]) -> Option<ModelKind> {
    let [input] = inputs else {
        return None;
    };
    let spec = InputSpec::from_shape(input)?;
    let size = (spec.width, spec.height);
    if size == (128, 128) && ssd_outputs(outputs, 896, 16).is_some() {
        return Some(ModelKind::FaceDetector);
    }
    if size == (224, 224) && ssd_outputs(outputs, 2254, 12).is_some() {
        return Some(ModelKind::PoseDetector);
    }
    let [output] = outputs else {
        return None;
    };
    if map_size(output) == Some((spec.height, spec.width)) {
        return Some(ModelKind::Segmenter);
    }
    class_count(output).map(|classes| ModelKind::Classifier { classes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&[usize]]) -> Vec<Vec<usize>> {
        s.iter().map(|x| x.to_vec()).collect()
    }

    #[test]
    fn recognises_the_families() {
        let face_in = v(&[&[1, 128, 128, 3]]);
        assert_eq!(
            kind_of(&face_in, &v(&[&[1, 896, 16], &[1, 896, 1]])),
            Some(ModelKind::FaceDetector)
        );
        // Output order and a dynamic batch do not matter.
        assert_eq!(
            kind_of(&v(&[&[0, 128, 128, 3]]), &v(&[&[1, 896, 1], &[1, 896, 16]])),
            Some(ModelKind::FaceDetector)
        );
        assert_eq!(
            kind_of(
                &v(&[&[1, 224, 224, 3]]),
                &v(&[&[1, 2254, 12], &[1, 2254, 1]])
            ),
            Some(ModelKind::PoseDetector)
        );
        assert_eq!(
            kind_of(&v(&[&[1, 256, 256, 3]]), &v(&[&[1, 256, 256, 1]])),
            Some(ModelKind::Segmenter)
        );
        assert_eq!(
            kind_of(&v(&[&[1, 224, 224, 3]]), &v(&[&[1, 19]])),
            Some(ModelKind::Classifier { classes: 19 })
        );
        assert_eq!(
            kind_of(&v(&[&[1, 3, 224, 224]]), &v(&[&[1, 1000]])),
            Some(ModelKind::Classifier { classes: 1000 })
        );
    }

    #[test]
    fn refuses_the_rest() {
        let img = v(&[&[1, 128, 128, 3]]);
        assert_eq!(kind_of(&img, &v(&[&[1, 896, 16]])), None);
        assert_eq!(kind_of(&img, &v(&[&[1, 896, 16], &[1, 896, 16]])), None);
        // Face outputs on a 224 input: not BlazeFace short range.
        assert_eq!(
            kind_of(&v(&[&[1, 224, 224, 3]]), &v(&[&[1, 896, 16], &[1, 896, 1]])),
            None
        );
        assert_eq!(kind_of(&img, &v(&[&[1, 1]])), None);
        assert_eq!(kind_of(&img, &v(&[&[1, 64, 64, 1]])), None);
        assert_eq!(kind_of(&v(&[&[1, 128, 128, 1]]), &v(&[&[1, 10]])), None);
        assert_eq!(kind_of(&v(&[&[1, 10], &[1, 10]]), &v(&[&[1, 10]])), None);
        assert_eq!(kind_of(&[], &v(&[&[1, 10]])), None);
    }

    #[test]
    fn tasks_per_family() {
        assert!(ModelKind::FaceDetector.supports(Task::Detect));
        assert!(!ModelKind::FaceDetector.supports(Task::Pose));
        assert!(ModelKind::PoseDetector.supports(Task::Pose));
        assert!(ModelKind::Segmenter.supports(Task::Segment));
        assert!(ModelKind::Classifier { classes: 3 }.supports(Task::Classify));
        for kind in [
            ModelKind::FaceDetector,
            ModelKind::PoseDetector,
            ModelKind::Segmenter,
            ModelKind::Classifier { classes: 3 },
        ] {
            assert!(!kind.supports(Task::Depth));
        }
        assert_eq!(squeeze_leading(&[1, 1, 5]), &[5]);
        assert_eq!(squeeze_leading(&[1]), &[1]);
        assert_eq!(squeeze_leading(&[0, 1, 7, 2]), &[7, 2]);
    }
}
