//! `libvaccel-blas.so`: the `blas` CPU backend (sgemm, minmax, the fpga array ops) as a plugin
//! library, loaded with `VACCEL_PLUGINS=/path/to/libvaccel-blas.so` by vAccel runtimes (ours
//! and upstream's).
#![forbid(unsafe_code)]

vaccel_plugin_sdk::export_plugin!(vaccel_plugin_blas::bundled());
