//! One session, several local plugins: ops go to a plugin that implements them, plugins that
//! decline a call hand it to the next, and every plugin used hears of the session's lifecycle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::{Arc, Mutex};

use common::Recorder;
use vaccel_core::plugin::{Plugin, PluginInfo};
use vaccel_core::{
    Detection, Error, ErrorCode, Id, OpSet, OpType, PluginType, Resource, ResourceType, Result,
    Runtime, Session,
};

/// Implements detection only; declines when `decline` is set (with `ENOTSUP` as its code,
/// as a plugin library's decline arrives, when `with_code` is).
struct Detector {
    info: PluginInfo,
    decline: bool,
    with_code: bool,
    calls: Mutex<Vec<String>>,
}

impl Detector {
    fn new(name: &str, decline: bool) -> Arc<Detector> {
        Arc::new(Detector {
            info: PluginInfo::new(name, "1.0.0", PluginType::CPU),
            decline,
            with_code: false,
            calls: Mutex::new(Vec::new()),
        })
    }
    fn declining_with_code(name: &str) -> Arc<Detector> {
        Arc::new(Detector {
            info: PluginInfo::new(name, "1.0.0", PluginType::CPU),
            decline: true,
            with_code: true,
            calls: Mutex::new(Vec::new()),
        })
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn log(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
}

impl Plugin for Detector {
    fn info(&self) -> &PluginInfo {
        &self.info
    }
    fn ops(&self) -> OpSet {
        OpSet::of(&[OpType::ImageDetect])
    }
    fn session_init(&self, sess: &Session, _flags: u32) -> Result<Id> {
        self.log(format!("init {}", sess.id()));
        Ok(0)
    }
    fn session_release(&self, sess: &Session) -> Result<()> {
        self.log(format!("release {}", sess.id()));
        Ok(())
    }
    fn resource_register(&self, res: &Resource, _sess: &Session) -> Result<Id> {
        self.log(format!("register {}", res.id()));
        Ok(0)
    }
    fn resource_unregister(&self, res: &Resource, _sess: &Session) -> Result<()> {
        self.log(format!("unregister {}", res.id()));
        Ok(())
    }
    fn image_detect_objects(
        &self,
        _sess: &Session,
        _image: &[u8],
        out: &mut [u8],
    ) -> Result<Vec<Detection>> {
        self.log("detect".into());
        if self.decline && self.with_code {
            return Err(Error::backend(
                self.info.name.clone(),
                ErrorCode::ENOTSUP,
                "image_detect returned 95",
            ));
        }
        if self.decline {
            return Err(Error::declined(self.info.name.clone(), "not my model"));
        }
        out[0] = 0;
        Ok(vec![Detection {
            label: self.info.name.clone(),
            score: 1.0,
            x0: 0.0,
            y0: 0.0,
            x1: 1.0,
            y1: 1.0,
        }])
    }
    fn image_op(&self, sess: &Session, _op: OpType, image: &[u8], out: &mut [u8]) -> Result<()> {
        self.image_detect_objects(sess, image, out).map(|_| ())
    }
}

fn runtime(plugins: Vec<Arc<dyn Plugin>>) -> (Runtime, tempfile::TempDir) {
    let base = tempfile::tempdir().unwrap();
    let mut b = Runtime::builder().rundir_base(base.path()).skip_logging();
    for p in plugins {
        b = b.plugin(p);
    }
    (b.build().unwrap(), base)
}

#[test]
fn ops_the_bound_plugin_lacks_go_to_one_that_has_them() {
    let first = Recorder::new("first", PluginType::CPU, false);
    let det = Detector::new("det", false);
    let (rt, _base) = runtime(vec![first.clone(), det.clone()]);
    let file = tempfile::NamedTempFile::new().unwrap();
    let model = Resource::new(&rt, file.path().to_str().unwrap(), ResourceType::Model).unwrap();
    let sess = Session::new(&rt, 0).unwrap();
    assert_eq!(sess.plugin().info().name, "first");
    sess.register(&model).unwrap();
    sess.noop().unwrap();
    let found = sess.image_detect_objects(b"img", &mut [1; 8]).unwrap();
    assert_eq!(found[0].label, "det");
    sess.image_detect(b"img", &mut [1; 8]).unwrap();
    let sid = sess.id();
    let rid = model.id();
    // Joined once, told of the resource registered before, and of later registrations.
    let other = Resource::new(&rt, file.path().to_str().unwrap(), ResourceType::Data).unwrap();
    sess.register(&other).unwrap();
    sess.unregister(&other).unwrap();
    drop(sess);
    assert_eq!(
        det.calls(),
        [
            format!("init {sid}"),
            format!("register {rid}"),
            "detect".into(),
            "detect".into(),
            format!("register {}", other.id()),
            format!("unregister {}", other.id()),
            format!("unregister {rid}"),
            format!("release {sid}"),
        ]
    );
    assert!(first.calls().contains(&format!("session_release {sid}")));
}

/// Also a regression: a CPU backend loaded as a plugin library (`cpu` on libvaccel.so)
/// declines with its code, `ENOTSUP`; the call must reach the next backend as a bundled
/// decline does, and alone its error comes back unchanged.
#[test]
fn declined_calls_fall_through_in_load_order() {
    for a in [Detector::new("a", true), Detector::declining_with_code("a")] {
        let b = Detector::new("b", false);
        let (rt, _base) = runtime(vec![a.clone(), b.clone()]);
        let sess = Session::new(&rt, 0).unwrap();
        let found = sess.image_detect_objects(b"img", &mut [1; 8]).unwrap();
        assert_eq!(found[0].label, "b");
        assert_eq!(a.calls().last().unwrap(), "detect");
    }
    let (rt, _base) = runtime(vec![Detector::declining_with_code("lib")]);
    let e = Session::new(&rt, 0)
        .unwrap()
        .image_detect(b"img", &mut [1; 8])
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOTSUP);
    assert!(e.to_string().contains("image_detect returned 95"), "{e}");

    // Everyone declines: the first reason is reported, as ENOTSUP.
    let c = Detector::new("c", true);
    let d = Detector::new("d", true);
    let (rt, _base) = runtime(vec![c, d]);
    let sess = Session::new(&rt, 0).unwrap();
    let e = sess.image_detect(b"img", &mut [1; 8]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOTSUP);
    assert!(e.to_string().contains("plugin c"), "{e}");
}

#[test]
fn hints_naming_types_restrict_routing() {
    let first = Recorder::new("first", PluginType::GPU, false);
    let det = Detector::new("det", false);
    let (rt, _base) = runtime(vec![first, det.clone()]);
    let sess = Session::new(&rt, PluginType::GPU.bits()).unwrap();
    let e = sess.image_detect(b"img", &mut [1; 8]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOTSUP);
    assert!(det.calls().is_empty());
}

#[test]
fn plugins_without_structured_results_report_none() {
    let rec = Recorder::new("rec", PluginType::CPU, false);
    let (rt, _base) = runtime(vec![rec]);
    let sess = Session::new(&rt, 0).unwrap();
    let e = sess.image_detect_objects(b"img", &mut [0; 8]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOTSUP);
}
