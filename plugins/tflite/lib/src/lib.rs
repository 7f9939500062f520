//! `libvaccel-tflite.so`: the `tflite` CPU backend (TFLite models and the image ops on LiteRT)
//! as a plugin library, loaded with `VACCEL_PLUGINS=/path/to/libvaccel-tflite.so` by vAccel
//! runtimes (ours and upstream's). LiteRT is found as for the built-in twin.
#![forbid(unsafe_code)]

vaccel_plugin_sdk::export_plugin!(vaccel_plugin_tflite::bundled());
