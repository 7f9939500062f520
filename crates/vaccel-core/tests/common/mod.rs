//! A recording plugin and runtime helpers shared by the core's integration tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use vaccel_core::plugin::{Plugin, PluginInfo};
use vaccel_core::{Id, OpSet, OpType, PluginType, Resource, Result, Runtime, Session};

/// Records every hook and op call as a line, e.g. `register 1 2` (resource, session).
pub struct Recorder {
    info: PluginInfo,
    ops: OpSet,
    pub calls: Mutex<Vec<String>>,
    next_remote: AtomicI64,
}

impl Recorder {
    pub fn new(name: &str, ty: PluginType, remote: bool) -> Arc<Recorder> {
        let mut info = PluginInfo::new(name, "1.0.0", ty);
        info.remote = remote;
        Arc::new(Recorder {
            info,
            ops: OpSet::of(&[OpType::Noop, OpType::ExecWithResource]),
            calls: Mutex::new(Vec::new()),
            next_remote: AtomicI64::new(100),
        })
    }

    fn log(&self, line: String) {
        self.calls.lock().unwrap().push(line);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Plugin for Recorder {
    fn info(&self) -> &PluginInfo {
        &self.info
    }
    fn ops(&self) -> OpSet {
        self.ops
    }
    fn session_init(&self, sess: &Session, flags: u32) -> Result<Id> {
        self.log(format!("session_init {} {flags:#x}", sess.id()));
        Ok(if self.info.remote {
            self.next_remote.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        })
    }
    fn session_release(&self, sess: &Session) -> Result<()> {
        self.log(format!("session_release {}", sess.id()));
        Ok(())
    }
    fn resource_register(&self, res: &Resource, sess: &Session) -> Result<Id> {
        self.log(format!("register {} {}", res.id(), sess.id()));
        Ok(if self.info.remote {
            self.next_remote.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        })
    }
    fn resource_unregister(&self, res: &Resource, sess: &Session) -> Result<()> {
        self.log(format!("unregister {} {}", res.id(), sess.id()));
        Ok(())
    }
    fn noop(&self, sess: &Session) -> Result<()> {
        self.log(format!("noop {}", sess.id()));
        Ok(())
    }
    fn exec_with_resource(
        &self,
        _sess: &Session,
        res: &Resource,
        symbol: &str,
        _read: &[vaccel_core::Arg<'_>],
        _write: &mut [vaccel_core::Arg<'_>],
    ) -> Result<()> {
        self.log(format!("exec_with_resource {} {symbol}", res.id()));
        Ok(())
    }
}

/// A runtime in its own temp directory with the given plugins, not touching the logger.
pub fn runtime(plugins: &[Arc<Recorder>]) -> (Runtime, tempfile::TempDir) {
    let base = tempfile::tempdir().unwrap();
    let mut b = Runtime::builder().rundir_base(base.path()).skip_logging();
    for p in plugins {
        b = b.plugin(Arc::clone(p) as Arc<dyn Plugin>);
    }
    (b.build().unwrap(), base)
}
