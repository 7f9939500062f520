//! The `onnx` CPU plugin (work in progress).
