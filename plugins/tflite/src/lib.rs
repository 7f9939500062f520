//! The `tflite` CPU plugin (work in progress).
