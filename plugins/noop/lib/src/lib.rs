//! `libvaccel-noop.so`: the bundled `noop` plugin as a plugin library, loaded with
//! `VACCEL_PLUGINS=/path/to/libvaccel-noop.so` by vAccel runtimes (ours and upstream's).
#![forbid(unsafe_code)]

vaccel_plugin_sdk::export_plugin!(vaccel_plugin_noop::bundled());
