//! `libvaccel-rpc.so`: the `rpc` transport plugin as a plugin library, loaded with
//! `VACCEL_PLUGINS=/path/to/libvaccel-rpc.so` by vAccel runtimes (ours and upstream's); the
//! agent's address comes from `VACCEL_RPC_ADDRESS`, as for the built-in twin.
#![forbid(unsafe_code)]

vaccel_plugin_sdk::export_plugin!(vaccel_plugin_rpc::bundled());
