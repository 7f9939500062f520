//! `libvaccel-tf.so`: the `tf` CPU backend (TensorFlow frozen graphs and SavedModels through
//! the TensorFlow C API) as a plugin library, loaded with
//! `VACCEL_PLUGINS=/path/to/libvaccel-tf.so` by vAccel runtimes (ours and upstream's).
#![forbid(unsafe_code)]

vaccel_plugin_sdk::export_plugin!(vaccel_plugin_tf::bundled());
