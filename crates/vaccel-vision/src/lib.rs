//! Image operations on real pretrained models, independent of the runtime that runs them.
//!
//! A backend (TFLite, ONNX, ...) implements [`Engine`] for a loaded model; this crate
//! recognises the model's family from its tensor shapes ([`model_kind`]), turns image bytes
//! into the model's input tensor, decodes its outputs (SSD boxes and keypoints, masks, class
//! probabilities) and renders result images.
//!
//! ```
//! use vaccel_vision::{RecordedEngine, Task, Tensor, VisionError, run};
//!
//! // A stand-in for a loaded 3-class classifier (a backend implements `Engine` for real).
//! let engine = RecordedEngine::new(
//!     vec![vec![1, 64, 64, 3]],
//!     vec![Tensor { shape: vec![1, 3], data: vec![0.1, 0.7, 0.2] }],
//! );
//! let labels = ["cat".to_owned(), "dog".to_owned(), "bird".to_owned()];
//! let image = vaccel_vision::codec::encode_png(&vaccel_vision::RgbImage::new(32, 32))?;
//! let out = run(Task::Classify, &engine, Some(&labels), &image, &std::env::temp_dir())?;
//! assert_eq!(out.text, "70.00% dog");
//!
//! // The same model cannot segment: a plugin declines.
//! let err = run(Task::Segment, &engine, None, &image, &std::env::temp_dir()).unwrap_err();
//! assert!(err.is_unsupported());
//! # Ok::<(), VisionError>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
#![warn(missing_docs)]

pub mod anchors;
pub mod classify;
pub mod codec;
pub mod engine;
pub mod error;
pub mod model;
pub mod pipeline;
pub mod plugin;
pub mod preprocess;
pub mod resample;
pub mod rgb;
pub mod segment;
pub mod ssd;

pub use engine::{Engine, EngineError, RecordedEngine, Tensor, TensorView};
pub use error::VisionError;
pub use model::{ModelKind, Task, model_kind};
pub use pipeline::{Object, Output, Point, run, run_image};
pub use rgb::RgbImage;
