//! The onnxruntime engine: each fixture ONNX model, run on its reference input, gives what
//! onnxruntime gave when the reference was made (`fixtures/reference/<model>.onnx.out<N>.bin`),
//! and the plugin serves the image ops with it. Needs an installed onnxruntime
//! (`./scripts/runtimes.sh`); without one these tests print why and pass, unless
//! `VACCEL_REQUIRE_BACKENDS=1` makes that a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vaccel_core::plugin::Plugin;
use vaccel_core::{ErrorCode, Resource, ResourceType, Runtime, Session};
use vaccel_plugin_onnx::onnxruntime::{self, OnnxRuntime};
use vaccel_plugin_onnx::{EngineChoice, OnnxPlugin, OrtEngine, Settings};
use vaccel_vision::{Engine, TensorView};

/// Largest difference allowed from the stored onnxruntime outputs. The same library on the
/// same input gives the same bits; the margin covers another onnxruntime version or CPU
/// choosing other kernels.
const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The loaded library, or `None` (after saying why) when it is missing and not required.
fn library(test: &str) -> Option<&'static OnnxRuntime> {
    match onnxruntime::runtime() {
        Ok(rt) => Some(rt),
        Err(why) => {
            assert!(
                std::env::var_os("VACCEL_REQUIRE_BACKENDS").is_none(),
                "{test}: onnxruntime is required (VACCEL_REQUIRE_BACKENDS) but missing: {why}"
            );
            eprintln!("{test}: skipped, {why}");
            None
        }
    }
}

fn compare(model: &str, input_shape: &[usize], output_shapes: &[&[usize]]) {
    let Some(rt) = library(model) else {
        return;
    };
    let root = fixtures();
    let bytes = std::fs::read(root.join("models").join(format!("{model}.onnx"))).unwrap();
    let engine = OrtEngine::from_bytes(rt, &bytes, 1).unwrap();
    assert_eq!(engine.input_shapes(), vec![input_shape.to_vec()]);
    let input = read_f32(&root.join("reference").join(format!("{model}.input.bin")));
    let outputs = engine
        .run(&[TensorView {
            shape: input_shape,
            data: &input,
        }])
        .unwrap();
    assert_eq!(outputs.len(), output_shapes.len(), "{model}: output count");
    for (n, (out, shape)) in outputs.iter().zip(output_shapes).enumerate() {
        assert_eq!(&out.shape, shape, "{model}: output {n} shape");
        let expected = read_f32(
            &root
                .join("reference")
                .join(format!("{model}.onnx.out{n}.bin")),
        );
        assert_eq!(out.data.len(), expected.len(), "{model}: output {n} length");
        let worst = out
            .data
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{model} output {n}: max abs diff from the reference {worst:e}");
        assert!(worst <= TOLERANCE, "{model} output {n}: {worst:e}");
    }
}

#[test]
fn face_detection_matches_the_reference() {
    compare(
        "face_detection_short_range",
        &[1, 128, 128, 3],
        &[&[1, 896, 16], &[1, 896, 1]],
    );
}

#[test]
fn selfie_segmentation_matches_the_reference() {
    compare(
        "selfie_segmentation",
        &[1, 256, 256, 3],
        &[&[1, 256, 256, 1]],
    );
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
    if library("detect").is_none() {
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
    if library("refuse").is_none() {
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
