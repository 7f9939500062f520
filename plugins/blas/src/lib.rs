//! stub: replaced by the blas plugin
use std::sync::Arc;
use vaccel_core::plugin::{Plugin, PluginInfo};
use vaccel_core::{BundledPlugin, OpSet, PluginType};
struct Stub(PluginInfo);
impl Plugin for Stub {
    fn info(&self) -> &PluginInfo { &self.0 }
    fn ops(&self) -> OpSet { OpSet::EMPTY }
}
/// The bundled descriptor.
pub fn bundled() -> BundledPlugin {
    BundledPlugin { name: "blas", create: |_| Ok(Arc::new(Stub(PluginInfo::new("blas", "0", PluginType::CPU)))) }
}
