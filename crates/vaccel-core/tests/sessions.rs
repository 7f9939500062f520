//! Sessions: ids, plugin selection, remote sessions, hooks, concurrency.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::{Recorder, runtime};
use vaccel_core::{
    Config, ErrorCode, OpType, PluginType, Resource, ResourceType, Runtime, Session,
};

#[test]
fn ids_start_at_one_and_rundirs_come_and_go() {
    let p = Recorder::new("rec", PluginType::CPU, false);
    let (rt, _base) = runtime(&[p.clone()]);
    let a = Session::new(&rt, 0).unwrap();
    let b = Session::new(&rt, 0).unwrap();
    assert_eq!((a.id(), b.id()), (1, 2));
    assert!(a.rundir().is_dir());
    assert_eq!(a.rundir(), rt.rundir().join("session.1"));
    let dir = a.rundir().to_owned();
    drop(a);
    assert!(!dir.exists());
    assert_eq!(rt.session_count(), 1);
    assert!(rt.session_by_id(2).is_ok());
    assert_eq!(rt.session_by_id(1).unwrap_err().code(), ErrorCode::ENOENT);
    assert_eq!(
        p.calls(),
        vec![
            "session_init 1 0x0",
            "session_init 2 0x0",
            "session_release 1"
        ]
    );
}

#[test]
fn no_plugins_means_enotsup() {
    let (rt, _base) = runtime(&[]);
    let e = Session::new(&rt, 0).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOTSUP);
    assert!(e.to_string().contains("VACCEL_PLUGINS"), "{e}");
    assert_eq!(rt.session_count(), 0, "failed init returns the id");
}

#[test]
fn plugin_selection_follows_hints_and_load_order() {
    let cpu = Recorder::new("cpu", PluginType::CPU, false);
    let gpu = Recorder::new("gpu", PluginType::GPU, false);
    let remote = Recorder::new("remote", PluginType::REMOTE, true);
    let (rt, _base) = runtime(&[remote.clone(), cpu.clone(), gpu.clone()]);
    let name = |s: &Session| s.plugin().info().name.clone();
    assert_eq!(name(&Session::new(&rt, 0).unwrap()), "cpu");
    assert_eq!(
        name(&Session::new(&rt, PluginType::GPU.bits()).unwrap()),
        "gpu"
    );
    assert_eq!(
        name(&Session::new(&rt, PluginType::FPGA.bits()).unwrap()),
        "cpu"
    );
    let r = Session::new(&rt, PluginType::REMOTE.bits() | PluginType::GPU.bits()).unwrap();
    assert_eq!(name(&r), "remote");
    assert!(r.is_remote());
    assert!(r.remote_id() >= 100);
    // The remote plugin sees the flags without the REMOTE bit.
    assert!(
        remote
            .calls()
            .iter()
            .any(|c| c.ends_with(&format!("{:#x}", PluginType::GPU.bits())))
    );
}

#[test]
fn remote_sessions_need_a_remote_plugin() {
    let cpu = Recorder::new("cpu", PluginType::CPU, false);
    let (rt, _base) = runtime(&[cpu]);
    let e = Session::new(&rt, PluginType::REMOTE.bits()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOTSUP);
    // A lone remote plugin makes every session remote.
    let remote = Recorder::new("remote", PluginType::REMOTE, true);
    let (rt, _base) = runtime(&[remote]);
    assert!(Session::new(&rt, 0).unwrap().is_remote());
}

#[test]
fn unimplemented_ops_are_enotsup_with_names() {
    let p = Recorder::new("rec", PluginType::CPU, false);
    let (rt, _base) = runtime(&[p]);
    let s = Session::new(&rt, 0).unwrap();
    s.noop().unwrap();
    let e = s.image_detect(b"img", &mut [0; 8]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOTSUP);
    assert!(
        e.to_string().contains("rec") && e.to_string().contains("IMAGE_DETECT"),
        "{e}"
    );
    // Operands are checked before dispatch.
    assert_eq!(
        s.image_detect(b"", &mut [0; 8]).unwrap_err().code(),
        ErrorCode::EINVAL
    );
}

#[test]
fn update_reselects_plugin_only_without_resources() {
    let cpu = Recorder::new("cpu", PluginType::CPU, false);
    let gpu = Recorder::new("gpu", PluginType::GPU, false);
    let (rt, base) = runtime(&[cpu, gpu]);
    let s = Session::new(&rt, 0).unwrap();
    s.update(PluginType::GPU.bits()).unwrap();
    assert_eq!(s.plugin().info().name, "gpu");
    assert_eq!(s.hint(), PluginType::GPU.bits());
    let f = base.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    let r = Resource::new(&rt, f.to_str().unwrap(), ResourceType::Data).unwrap();
    s.register(&r).unwrap();
    assert_eq!(s.update(0).unwrap_err().code(), ErrorCode::ENOTSUP);
}

#[test]
fn set_hint_keeps_the_plugin() {
    let cpu = Recorder::new("cpu", PluginType::CPU, false);
    let gpu = Recorder::new("gpu", PluginType::GPU, false);
    let (rt, _base) = runtime(&[cpu, gpu]);
    let s = Session::new(&rt, 0).unwrap();
    s.set_hint(PluginType::GPU.bits());
    assert_eq!(s.hint(), PluginType::GPU.bits());
    assert_eq!(s.plugin().info().name, "cpu");
}

#[test]
fn bundled_plugins_resolve_from_config() {
    let base = tempfile::tempdir().unwrap();
    let bundled = vaccel_core::BundledPlugin {
        name: "rec",
        create: |_| {
            Ok(Recorder::new("rec", PluginType::DEBUG, false) as Arc<dyn vaccel_core::Plugin>)
        },
    };
    let build = |plugins: &str| {
        Runtime::builder()
            .rundir_base(base.path())
            .skip_logging()
            .bundled([bundled])
            .config(Config::default().with_plugins(plugins))
            .build()
    };
    assert_eq!(build("rec").unwrap().plugins()[0].name, "rec");
    assert_eq!(build("libvaccel-rec.so").unwrap().plugins().len(), 1);
    let e = build("rec:doesnotexist").unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOENT);
    assert!(e.to_string().contains("doesnotexist"));
}

#[test]
fn profiling_counts_op_calls_when_enabled() {
    let base = tempfile::tempdir().unwrap();
    let p = Recorder::new("rec", PluginType::CPU, false);
    for enabled in [false, true] {
        let rt = Runtime::builder()
            .rundir_base(base.path())
            .skip_logging()
            .config(Config::default().with_profiling(enabled))
            .plugin(p.clone())
            .build()
            .unwrap();
        let s = Session::new(&rt, 0).unwrap();
        for _ in 0..3 {
            s.noop().unwrap();
        }
        let region = rt.op_regions().region(OpType::Noop);
        assert_eq!(region.nr_entries(), if enabled { 3 } else { 0 });
        assert_eq!(region.name(), "vaccel_noop_op");
    }
}

#[test]
fn runtime_directory_is_removed_with_everything_in_it() {
    let p = Recorder::new("rec", PluginType::CPU, false);
    let (rt, _base) = runtime(&[p]);
    let top = rt.rundir().to_owned();
    let s = Session::new(&rt, 0).unwrap();
    let r = Resource::from_buf(
        &rt,
        b"abc".to_vec(),
        ResourceType::Data,
        Some("a.bin"),
        false,
    )
    .unwrap();
    s.register(&r).unwrap();
    std::fs::write(s.rundir().join("leftover"), b"x").unwrap();
    drop((s, r, rt));
    assert!(!top.exists(), "rundir {} leaked", top.display());
}

#[test]
fn concurrent_sessions_and_resources_never_share_ids() {
    let p = Recorder::new("rec", PluginType::CPU, false);
    let (rt, base) = runtime(&[p]);
    let file = base.path().join("lib.so");
    std::fs::write(&file, b"not really a library").unwrap();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let shared = Session::new(&rt, 0).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..50 {
                    let s = Session::new(&rt, 0).unwrap();
                    assert!(
                        seen.lock().unwrap().insert(("s", s.id())),
                        "live session id reused"
                    );
                    let r = Resource::new(&rt, file.to_str().unwrap(), ResourceType::Lib).unwrap();
                    assert!(
                        seen.lock().unwrap().insert(("r", r.id())),
                        "live resource id reused"
                    );
                    s.register(&r).unwrap();
                    shared.register(&r).unwrap();
                    assert_eq!(r.refcount(), 2);
                    s.noop().unwrap();
                    shared.noop().unwrap();
                    shared.exec_with_resource(&r, "f", &[], &mut []).unwrap();
                    shared.unregister(&r).unwrap();
                    seen.lock().unwrap().remove(&("s", s.id()));
                    seen.lock().unwrap().remove(&("r", r.id()));
                    drop(s);
                    r.release().unwrap();
                }
            });
        }
    });
    assert_eq!(rt.session_count(), 1);
    assert_eq!(rt.resource_count(), 0);
    assert!(shared.resources().is_empty());
}
