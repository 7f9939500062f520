//! stub: replaced by the rpc plugin
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
    BundledPlugin { name: "rpc", create: |_| Ok(Arc::new(Stub(PluginInfo::new("rpc", "0", PluginType::REMOTE).remote()))) }
}
