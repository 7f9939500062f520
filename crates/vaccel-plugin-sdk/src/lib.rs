//! Write vAccel plugin libraries in Rust: implement [`vaccel_core::Plugin`], then
//! [`export_plugin!`] turns the crate (built as a `cdylib`) into a library that any vAccel
//! runtime loads through `VACCEL_PLUGINS=/path/libfoo.so`, exactly like an upstream C plugin.
//!
//! ```ignore
//! // Cargo.toml: [lib] crate-type = ["cdylib"]
//! use std::sync::Arc;
//! use vaccel_core::plugin::{Plugin, PluginInfo};
//! use vaccel_core::{OpSet, OpType, PluginType, Result, Session};
//!
//! struct Hello(PluginInfo);
//! impl Plugin for Hello {
//!     fn info(&self) -> &PluginInfo { &self.0 }
//!     fn ops(&self) -> OpSet { OpSet::of(&[OpType::Noop]) }
//!     fn noop(&self, sess: &Session) -> Result<()> {
//!         log::info!("hello from session {}", sess.id());
//!         Ok(())
//!     }
//! }
//!
//! vaccel_plugin_sdk::export_plugin!(|_config| -> vaccel_core::Result<Arc<dyn Plugin>> {
//!     Ok(Arc::new(Hello(PluginInfo::new("hello", "1.0.0", PluginType::CPU))))
//! });
//! ```
//!
//! # How it works
//!
//! The macro exports upstream's descriptor (`const struct vaccel_plugin *vaccel_plugin`, with
//! the `struct vaccel_plugin_info` and one `struct vaccel_op` per implemented operation) and
//! a library constructor that creates the plugin. The exported op functions receive the
//! host's C views (`struct vaccel_session *`, `struct vaccel_resource *`, `struct vaccel_arg`
//! arrays, tensors) and call the plugin's Rust methods with `Session`s and `Resource`s
//! *attached* to the host's: the same ids and run directories, file blobs by the host's paths
//! and buffer blobs borrowing the host's bytes (a vaccel-rs host keeps them alive for as long
//! as the plugin holds them; other hosts' buffers are copied). A session bound to the library
//! is found through the view's `priv` field, without a lock, so plugin code sees the same
//! `Session`/`Resource` API as when it is compiled into the runtime. Log records go to the
//! host's logger.
//!
//! A vaccel-rs host calls `vaccel_rs_plugin_bind` (exported by the macro) before `init`,
//! which hands the library the host's logger and the borrowing functions and asks for session
//! hooks on local sessions, so sessions are attached and released with the host's. Under
//! another host (upstream's libvaccel), a local plugin's sessions are attached on first use,
//! and log records are dropped.
//!
//! `MAPPED` blobs appear to the plugin as `FILE` blobs of the same file (no copy is made).
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
// Rule N2: FFI items keep their C names.
#![allow(non_camel_case_types)]

pub use vaccel_core;
pub use vaccel_ffi::export::Factory;

/// Exports a plugin from a `cdylib` crate as a vAccel plugin library: the argument is an
/// expression implementing [`Factory`] (e.g. `my_plugin::bundled()`). Use it once per library.
#[macro_export]
macro_rules! export_plugin {
    ($factory:expr) => {
        /// The descriptor vAccel's loader looks up (`const struct vaccel_plugin *vaccel_plugin`).
        #[unsafe(no_mangle)]
        pub static vaccel_plugin: $crate::__private::DescriptorPtr =
            $crate::__private::DescriptorPtr::new();

        /// vaccel-rs hosts call this before `init` with their services.
        ///
        /// # Safety
        ///
        /// `host` is null or points at a `struct vaccel_rs_host` valid for the process.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn vaccel_rs_plugin_bind(
            host: *const $crate::__private::vaccel_rs_host,
        ) -> ::std::ffi::c_int {
            // SAFETY: forwarded caller contract.
            unsafe { $crate::__private::bind(host) }
        }

        const _: () = {
            extern "C" fn __vaccel_plugin_ctor() {
                $crate::__private::construct(&$factory);
            }
            #[used]
            // SAFETY: `.init_array` entries are called once by the dynamic loader with no
            // arguments, which is the function's signature; `construct` never unwinds.
            #[unsafe(link_section = ".init_array")]
            static __VACCEL_PLUGIN_CTOR: extern "C" fn() = __vaccel_plugin_ctor;
        };
    };
}

/// Implementation details of [`export_plugin!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use vaccel_abi::vaccel_rs_host;
    pub use vaccel_ffi::export::{DescriptorPtr, bind, construct};
}
