//! The one error type of this crate.

use std::path::PathBuf;

use crate::engine::EngineError;
use crate::model::{ModelKind, Task};

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// The model is of no supported family, or of one that cannot do the task (a face detector
    /// asked for a segmentation, any model asked for depth). A plugin reports this as "declined"
    /// / not supported, so that another backend may try.
    #[error("{}", unsupported_message(*.task, *.model))]
    Unsupported {
        /// The task asked for.
        task: Task,
        /// What the model was recognised as (`None`: no supported family).
        model: Option<ModelKind>,
    },

    /// The image bytes are neither PNG nor JPEG.
    #[error("the image is neither PNG nor JPEG")]
    UnknownImageFormat,

    /// The image is larger than [`MAX_SIDE`](crate::codec::MAX_SIDE) on a side or
    /// [`MAX_PIXELS`](crate::codec::MAX_PIXELS) in area, or has no pixels at all.
    #[error(
        "image of {width}x{height} pixels refused (limits: 1 to {max_side} per side, {max_pixels} pixels)"
    )]
    ImageSize {
        /// Width the image header states.
        width: u32,
        /// Height the image header states.
        height: u32,
        /// The side limit.
        max_side: u32,
        /// The area limit.
        max_pixels: u64,
    },

    /// The PNG or JPEG data is corrupt or uses a feature the decoder lacks.
    #[error("cannot decode the image")]
    Decode(#[source] image::ImageError),

    /// Pixel data whose length does not match its stated dimensions (a caller-built
    /// [`RgbImage`](crate::RgbImage)).
    #[error("{width}x{height} RGB image needs {expected} bytes, got {actual}")]
    PixelCount {
        /// Stated width.
        width: u32,
        /// Stated height.
        height: u32,
        /// `width * height * 3`.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },

    /// The inference engine failed.
    #[error("inference failed")]
    Engine(#[source] EngineError),

    /// The engine returned outputs that do not match the shapes the model declared or the
    /// decoder needs (wrong count, shape, or a data length that disagrees with the shape).
    #[error("unexpected model output: {0}")]
    ModelOutput(String),

    /// The model declares an input this crate cannot feed (not one image tensor, absurd size).
    #[error("unsupported model input: {0}")]
    ModelInput(String),

    /// Encoding the result PNG failed.
    #[error("cannot encode the result image")]
    Encode(#[source] image::ImageError),

    /// Writing the result image into the output directory failed.
    #[error("cannot write {}", .path.display())]
    Write {
        /// The file being written (its final name).
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
}

impl VisionError {
    /// Whether this is "this model cannot do that" (a plugin declines) rather than a failure.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, VisionError::Unsupported { .. })
    }

    /// Whether the caller's image is at fault (bad bytes, too large): an invalid-argument error.
    pub fn is_bad_image(&self) -> bool {
        matches!(
            self,
            VisionError::UnknownImageFormat
                | VisionError::ImageSize { .. }
                | VisionError::Decode(_)
                | VisionError::PixelCount { .. }
        )
    }
}

fn unsupported_message(task: Task, model: Option<ModelKind>) -> String {
    match model {
        Some(kind) => format!("a {kind} model cannot do {task}"),
        None => format!("the model is of no supported family, cannot do {task}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_task_and_model() {
        let e = VisionError::Unsupported {
            task: Task::Segment,
            model: Some(ModelKind::FaceDetector),
        };
        assert_eq!(
            e.to_string(),
            "a face detector model cannot do image segmentation"
        );
        assert!(e.is_unsupported());
        assert!(!e.is_bad_image());
        let e = VisionError::Unsupported {
            task: Task::Depth,
            model: None,
        };
        assert!(e.to_string().contains("no supported family"));
        assert!(VisionError::UnknownImageFormat.is_bad_image());
    }
}
