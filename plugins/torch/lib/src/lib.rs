//! `libvaccel-torch.so`: the `torch` CPU backend as a plugin library, loaded with
//! `VACCEL_PLUGINS=/path/to/libvaccel-torch.so` by vAccel runtimes (ours and upstream's).
//! Built without the `libtorch` feature it loads and declines every op, like its built-in twin.
#![forbid(unsafe_code)]

vaccel_plugin_sdk::export_plugin!(vaccel_plugin_torch::bundled());
