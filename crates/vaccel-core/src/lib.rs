//! The vAccel runtime: sessions, resources, typed arguments, every operation, and dispatch to
//! plugins. Pure Rust, no C vAccel underneath; names, numbers and behaviour follow upstream
//! vAccel so that applications, plugins and remote peers written for it work with this one.
//!
//! Applications normally use the `vaccel` crate, which adds the bundled plugins; this crate is
//! what plugins build against.
//!
//! ```
//! # fn main() -> vaccel_core::Result<()> {
//! use std::sync::Arc;
//! use vaccel_core::plugin::{Plugin, PluginInfo};
//! use vaccel_core::{OpSet, OpType, PluginType, Runtime, Session};
//!
//! struct Hello(PluginInfo);
//! impl Plugin for Hello {
//!     fn info(&self) -> &PluginInfo { &self.0 }
//!     fn ops(&self) -> OpSet { OpSet::of(&[OpType::Noop]) }
//!     fn noop(&self, _sess: &Session) -> vaccel_core::Result<()> { Ok(()) }
//! }
//!
//! let rt = Runtime::builder()
//!     .plugin(Arc::new(Hello(PluginInfo::new("hello", "1.0.0", PluginType::CPU))))
//!     .build()?;
//! let sess = Session::new(&rt, 0)?;
//! sess.noop()?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
#![warn(missing_docs)]

pub mod arg;
pub mod blob;
pub mod config;
pub mod detection;
pub mod error;
pub mod genop;
pub mod id_pool;
pub mod logging;
mod ops;
pub mod plugin;
pub mod prof;
pub mod python;
pub mod registry;
pub mod resource;
pub mod runtime;
pub mod session;
pub mod tensor;
pub mod types;

pub use arg::{Arg, ArgArray};
pub use blob::Blob;
pub use config::Config;
pub use detection::Detection;
pub use error::{ArgError, Error, ErrorCode, Result, VACCEL_OK};
pub use plugin::{Plugin, PluginInfo, SgemmArgs};
pub use registry::{BundledPlugin, PluginGroup};
pub use resource::Resource;
pub use runtime::{Runtime, RuntimeBuilder};
pub use session::Session;
pub use tensor::{
    TfDataType, TfLiteDataType, TfLiteTensor, TfNode, TfStatus, TfTensor, TorchDataType,
    TorchTensor,
};
pub use types::{
    ArgType, BlobType, Id, LogLevel, OpSet, OpType, PathType, PluginType, ResourceType,
};

/// The upstream vAccel API version this runtime implements (what plugins are checked against).
pub const VACCEL_VERSION: &str = "0.8.0";
