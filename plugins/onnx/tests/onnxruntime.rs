//! The plugin on its onnxruntime engine (its outputs against the references are checked in
//! `reference.rs`). Needs an installed onnxruntime (`./scripts/runtimes.sh`); without one
//! these tests print why and pass, unless `VACCEL_REQUIRE_BACKENDS=1` makes that a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vaccel_core::plugin::Plugin;
use vaccel_core::{ErrorCode, Resource, ResourceType, Runtime, Session};
use vaccel_plugin_onnx::onnxruntime;
use vaccel_plugin_onnx::{EngineChoice, OnnxPlugin, Settings};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Whether onnxruntime is installed; says why not (and fails when it is required).
fn library(test: &str) -> bool {
    match onnxruntime::runtime() {
        Ok(_) => true,
        Err(why) => {
            assert!(
                std::env::var_os("VACCEL_REQUIRE_BACKENDS").is_none(),
                "{test}: onnxruntime is required (VACCEL_REQUIRE_BACKENDS) but missing: {why}"
            );
            eprintln!("{test}: skipped, {why}");
            false
        }
    }
}

fn runtime(settings: Settings) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Arc::new(OnnxPlugin::with_settings(settings));
    let rt = Runtime::builder()
        .skip_logging()
        .rundir_base(dir.path())
        .plugin(plugin as Arc<dyn Plugin>)
        .build()
        .unwrap();
    (dir, rt)
}

#[test]
fn the_plugin_detects_the_face_on_onnxruntime_as_on_tract() {
    if !library("detect") {
        return;
    }
    let image = std::fs::read(fixtures().join("images/astronaut.jpg")).unwrap();
    let model = fixtures().join("models/face_detection_short_range.onnx");
    let mut found = Vec::new();
    for engine in [EngineChoice::OnnxRuntime, EngineChoice::Tract] {
        let (_dir, rt) = runtime(Settings { engine, threads: 1 });
        let sess = Session::new(&rt, 0).unwrap();
        let res = Resource::new(&rt, model.to_str().unwrap(), ResourceType::Model).unwrap();
        sess.register(&res).unwrap();
        let mut name = [0u8; 256];
        found.push(sess.image_detect_objects(&image, &mut name).unwrap());
    }
    assert_eq!(found[0].len(), 1, "{:?}", found[0]);
    assert_eq!(found[1].len(), 1, "{:?}", found[1]);
    let (a, b) = (&found[0][0], &found[1][0]);
    for (x, y) in [(a.x0, b.x0), (a.y0, b.y0), (a.x1, b.x1), (a.y1, b.y1)] {
        assert!((x - y).abs() < 0.01, "{a:?} vs {b:?}");
    }
}

#[test]
fn models_onnxruntime_refuses_are_errors_when_it_is_required() {
    if !library("refuse") {
        return;
    }
    let (_dir, rt) = runtime(Settings {
        engine: EngineChoice::OnnxRuntime,
        threads: 1,
    });
    let sess = Session::new(&rt, 0).unwrap();
    // An ONNX header and nothing runnable in it.
    let junk = Resource::from_buf(
        &rt,
        b"\x08\x07\x12\x04junk:\x02\x0a\x00".to_vec(),
        ResourceType::Model,
        Some("junk.onnx"),
        true,
    )
    .unwrap();
    sess.register(&junk).unwrap();
    let mut name = [0u8; 64];
    let e = sess.image_detect(b"x", &mut name).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
}
