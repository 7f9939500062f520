//! vAccel for applications: the runtime of [`vaccel_core`] with the bundled plugins (`noop`,
//! `exec`, `mbench`, the `rpc` transport and the CPU backends) and plugin libraries, selectable
//! through `VACCEL_PLUGINS`.
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

pub use vaccel_capi::global::{bundled_plugins, plugin_groups};

/// Loads plugin libraries (`VACCEL_PLUGINS=/path/libvaccel-foo.so`); [`builder`] installs one.
pub use vaccel_ffi::DlLoader;

/// A runtime builder that knows the bundled plugins and groups, and loads plugin libraries:
/// upstream-style C plugins (which find the C API they call in this program, see
/// `vaccel_capi::link_c_api`) and plugins built with the SDK.
pub fn builder() -> RuntimeBuilder {
    vaccel_capi::global::builder()
}

/// A runtime configured from the environment (`VACCEL_PLUGINS`, `VACCEL_LOG_LEVEL`, ...),
/// as upstream's library constructor does. Malformed values are errors, not zeros.
pub fn from_env() -> Result<Runtime> {
    builder().config(Config::from_env()?).build()
}
