//! vAccel for applications: the runtime of [`vaccel_core`] with the bundled plugins (`noop`,
//! `exec`, `mbench`, the `rpc` transport and, with the default `cpu` feature, the CPU backends)
//! and plugin libraries, selectable through `VACCEL_PLUGINS`.
//!
//! Without the `cpu` feature (`default-features = false`) a program is a thin client: `cpu`
//! then loads the backends' plugin libraries (`libvaccel-blas.so`, ...) that are installed.
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

pub use vaccel_capi::global::plugin_groups;

/// Memory for a large input or output that the `rpc` transport shares with the agent instead
/// of copying it (on a unix socket to our agent); ordinary memory for every other plugin. Fill
/// it and pass it (or a part of it) where an op takes bytes, or where it writes its output.
pub use vaccel_rpc::shm::SharedBuffer;

/// Every plugin this program bundles, by the name `VACCEL_PLUGINS` uses: `libvaccel.so`'s
/// (noop, exec, mbench, rpc), then the CPU backends with the `cpu` feature.
pub fn bundled_plugins() -> Vec<BundledPlugin> {
    let mut plugins = vaccel_capi::global::bundled_plugins();
    plugins.extend(cpu_backends());
    plugins
}

/// The CPU backends bundled into this program.
#[cfg(feature = "cpu")]
fn cpu_backends() -> Vec<BundledPlugin> {
    vec![
        vaccel_plugin_blas::bundled(),
        vaccel_plugin_tflite::bundled(),
        vaccel_plugin_onnx::bundled(),
        vaccel_plugin_tf::bundled(),
        vaccel_plugin_torch::bundled(),
    ]
}

/// No CPU backend is bundled without the `cpu` feature.
#[cfg(not(feature = "cpu"))]
fn cpu_backends() -> Vec<BundledPlugin> {
    Vec::new()
}

/// Loads plugin libraries (`VACCEL_PLUGINS=/path/libvaccel-foo.so`); [`builder`] installs one.
pub use vaccel_ffi::DlLoader;

/// A runtime builder that knows the bundled plugins and groups, and loads plugin libraries:
/// upstream-style C plugins (which find the C API they call in this program, see
/// `vaccel_capi::link_c_api`) and plugins built with the SDK.
pub fn builder() -> RuntimeBuilder {
    vaccel_capi::global::builder().bundled(cpu_backends())
}

/// A runtime configured from the environment (`VACCEL_PLUGINS`, `VACCEL_LOG_LEVEL`, ...),
/// as upstream's library constructor does. Malformed values are errors, not zeros.
pub fn from_env() -> Result<Runtime> {
    builder().config(Config::from_env()?).build()
}
