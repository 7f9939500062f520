//! Image operations on real pretrained models, independent of the runtime that runs them.
//!
//! A backend (TFLite, ONNX, ...) implements [`Engine`] for a loaded model; this crate turns
//! image bytes into the model's input tensor, decodes its outputs (detections, masks,
//! keypoints, class probabilities) and renders result images.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod engine;

pub use engine::{Engine, EngineError, Tensor, TensorView};
