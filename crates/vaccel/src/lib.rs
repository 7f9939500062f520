//! vAccel for applications: the runtime of [`vaccel_core`] with the bundled plugins (`noop`,
//! `exec`, `mbench`, and the `rpc` transport) selectable through `VACCEL_PLUGINS`.
//!
//! ```
//! # fn main() -> vaccel::Result<()> {
//! use vaccel::{Config, Session};
//! let rt = vaccel::builder().config(Config::default().with_plugins("noop")).build()?;
//! let sess = Session::new(&rt, 0)?;
//! sess.noop()?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use vaccel_core::*;

/// Every plugin compiled into this crate, by the name `VACCEL_PLUGINS` uses.
pub fn bundled_plugins() -> Vec<BundledPlugin> {
    vec![
        vaccel_plugin_noop::bundled(),
        vaccel_plugin_exec::bundled(),
        vaccel_plugin_mbench::bundled(),
        vaccel_plugin_rpc::bundled(),
        vaccel_plugin_blas::bundled(),
        vaccel_plugin_tflite::bundled(),
        vaccel_plugin_onnx::bundled(),
        vaccel_plugin_tf::bundled(),
        vaccel_plugin_torch::bundled(),
    ]
}

/// Names standing for several bundled plugins: `cpu` selects every CPU backend.
pub fn plugin_groups() -> Vec<PluginGroup> {
    vec![PluginGroup {
        name: "cpu",
        members: &["blas", "tflite", "onnx", "tf", "torch"],
    }]
}

/// A runtime builder that knows the bundled plugins and groups.
pub fn builder() -> RuntimeBuilder {
    Runtime::builder()
        .bundled(bundled_plugins())
        .groups(plugin_groups())
}

/// A runtime configured from the environment (`VACCEL_PLUGINS`, `VACCEL_LOG_LEVEL`, ...),
/// as upstream's library constructor does. Malformed values are errors, not zeros.
pub fn from_env() -> Result<Runtime> {
    builder().config(Config::from_env()?).build()
}
