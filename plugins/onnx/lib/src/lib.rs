//! `libvaccel-onnx.so`: the `onnx` CPU backend (the image ops on registered ONNX models) as a
//! plugin library, loaded with `VACCEL_PLUGINS=/path/to/libvaccel-onnx.so` by vAccel runtimes
//! (ours and upstream's). The engine is chosen as for the built-in twin.
#![forbid(unsafe_code)]

vaccel_plugin_sdk::export_plugin!(vaccel_plugin_onnx::bundled());
