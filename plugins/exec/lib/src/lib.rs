//! `libvaccel-exec.so`: the bundled `exec` plugin as a plugin library, loaded with
//! `VACCEL_PLUGINS=/path/to/libvaccel-exec.so` by vAccel runtimes (ours and upstream's).
#![forbid(unsafe_code)]

vaccel_plugin_sdk::export_plugin!(vaccel_plugin_exec::bundled());
