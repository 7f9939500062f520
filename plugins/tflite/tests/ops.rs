//! The model operations through a real runtime and session: load, run and unload from file
//! and buffer resources, argument errors, caching (one compilation per load), cleanup on
//! unregister and session release, concurrent runs, and declining when LiteRT is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::borrow::Cow;
use std::sync::Arc;

use common::{Fx, f32s, fixture, litert, pseudo_random_f32_bytes};
use vaccel_core::{
    Error, ErrorCode, Resource, ResourceType, Session, TfLiteDataType, TfLiteTensor,
};
use vaccel_plugin_tflite::{Model, TflitePlugin};

const FACE: &str = "models/face_detection_short_range.tflite";
const FACE_IN: usize = 128 * 128 * 3;

fn face_input(seed: u64) -> TfLiteTensor<'static> {
    TfLiteTensor::new(
        vec![1, 128, 128, 3],
        TfLiteDataType::Float32,
        Cow::Owned(pseudo_random_f32_bytes(FACE_IN, seed)),
    )
    .unwrap()
}

fn face_resource(fx: &Fx) -> Arc<Resource> {
    Resource::new(&fx.rt, fixture(FACE).to_str().unwrap(), ResourceType::Model).unwrap()
}

fn code<T: std::fmt::Debug>(r: vaccel_core::Result<T>) -> ErrorCode {
    r.unwrap_err().code()
}

#[test]
fn load_run_unload_from_a_file_resource() {
    if !litert("load_run_unload_from_a_file_resource") {
        return;
    }
    let fx = Fx::new();
    let sess = fx.session();
    let model = face_resource(&fx);
    sess.register(&model).unwrap();
    sess.tflite_model_load(&model).unwrap();
    sess.tflite_model_load(&model).unwrap(); // already loaded: no second compilation

    let direct = Model::load_file(&fixture(FACE), 2).unwrap();
    for seed in 1..=3 {
        let input = face_input(seed);
        let out = sess
            .tflite_model_run(&model, &[input.borrowed()], 2)
            .unwrap();
        assert_eq!(out.status, 0);
        assert_eq!(out.outputs.len(), 2);
        assert_eq!(out.outputs[0].dims, vec![1, 896, 16]);
        assert_eq!(out.outputs[1].dims, vec![1, 896, 1]);
        assert_eq!(out.outputs[0].data_type, TfLiteDataType::Float32);
        assert_eq!(out.outputs[0].data.len(), 896 * 16 * 4);
        // The same bytes as a model compiled directly: the cached model is the real one.
        let expect = direct.run(&[&input.data]).unwrap();
        assert_eq!(
            common::max_abs_diff(&f32s(&out.outputs[0].data), &f32s(&expect[0])),
            0.0
        );
        assert_eq!(
            common::max_abs_diff(&f32s(&out.outputs[1].data), &f32s(&expect[1])),
            0.0
        );
    }
    assert_eq!(
        fx.plugin.compilations(),
        1,
        "load compiles once, runs reuse it"
    );

    // Fewer outputs than the model has: the first ones.
    let out = sess.tflite_model_run(&model, &[face_input(9)], 1).unwrap();
    assert_eq!(out.outputs.len(), 1);
    assert_eq!(out.outputs[0].dims, vec![1, 896, 16]);

    sess.tflite_model_unload(&model).unwrap();
    assert_eq!(fx.plugin.loaded_count(), 0);
    assert_eq!(
        code(sess.tflite_model_run(&model, &[face_input(1)], 2)),
        ErrorCode::EINVAL
    );
}

#[test]
fn load_run_from_a_buffer_resource() {
    if !litert("load_run_from_a_buffer_resource") {
        return;
    }
    let fx = Fx::new();
    let sess = fx.session();
    let bytes = std::fs::read(fixture(FACE)).unwrap();
    for mem_only in [true, false] {
        let model = Resource::from_buf(
            &fx.rt,
            bytes.clone(),
            ResourceType::Model,
            Some("face.tflite"),
            mem_only,
        )
        .unwrap();
        sess.register(&model).unwrap();
        sess.tflite_model_load(&model).unwrap();
        let out = sess.tflite_model_run(&model, &[face_input(5)], 2).unwrap();
        assert_eq!(out.outputs[1].dims, vec![1, 896, 1]);
        let scores = f32s(&out.outputs[1].data);
        assert!(scores.iter().all(|s| s.is_finite()));
        sess.tflite_model_unload(&model).unwrap();
    }
    assert_eq!(fx.plugin.compilations(), 2);
}

#[test]
fn bad_inputs_are_einval_not_panics() {
    if !litert("bad_inputs_are_einval_not_panics") {
        return;
    }
    let fx = Fx::new();
    let sess = fx.session();
    let model = face_resource(&fx);
    sess.register(&model).unwrap();
    sess.tflite_model_load(&model).unwrap();

    let short = TfLiteTensor::new(
        vec![1, 128, 128, 3],
        TfLiteDataType::Float32,
        vec![0u8; FACE_IN * 4 - 4],
    )
    .unwrap();
    let e = sess.tflite_model_run(&model, &[short], 2).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL);
    assert!(e.to_string().contains("196608 bytes"), "{e}");

    let int = TfLiteTensor::new(
        vec![1, 128, 128, 3],
        TfLiteDataType::Int32,
        vec![0u8; FACE_IN * 4],
    )
    .unwrap();
    let e = sess.tflite_model_run(&model, &[int], 2).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL);
    assert!(e.to_string().contains("element type"), "{e}");

    assert_eq!(
        code(sess.tflite_model_run(&model, &[], 2)),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.tflite_model_run(&model, &[face_input(1), face_input(2)], 2)),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.tflite_model_run(&model, &[face_input(1)], 3)),
        ErrorCode::EINVAL
    );
    // Still usable afterwards.
    sess.tflite_model_run(&model, &[face_input(1)], 2).unwrap();
}

#[test]
fn unload_or_run_of_a_model_never_loaded_is_an_error() {
    if !litert("unload_or_run_of_a_model_never_loaded_is_an_error") {
        return;
    }
    let fx = Fx::new();
    let sess = fx.session();
    let model = face_resource(&fx);
    sess.register(&model).unwrap();
    let e = sess.tflite_model_unload(&model).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL);
    assert!(e.to_string().contains("not loaded"), "{e}");
    let e = sess
        .tflite_model_run(&model, &[face_input(1)], 2)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL);
    assert!(e.to_string().contains("tflite_model_load"), "{e}");
    // Loading in one session does not load it in another.
    sess.tflite_model_load(&model).unwrap();
    let other = fx.session();
    other.register(&model).unwrap();
    assert_eq!(
        code(other.tflite_model_run(&model, &[face_input(1)], 2)),
        ErrorCode::EINVAL
    );
}

#[test]
fn models_are_dropped_on_unregister_and_session_release() {
    if !litert("models_are_dropped_on_unregister_and_session_release") {
        return;
    }
    let fx = Fx::new();
    let a = fx.session();
    let b = fx.session();
    let model = face_resource(&fx);
    a.register(&model).unwrap();
    b.register(&model).unwrap();
    a.tflite_model_load(&model).unwrap();
    b.tflite_model_load(&model).unwrap();
    assert_eq!(fx.plugin.loaded_count(), 2);
    a.unregister(&model).unwrap();
    assert_eq!(fx.plugin.loaded_count(), 1);
    drop(b);
    assert_eq!(fx.plugin.loaded_count(), 0);
}

#[test]
fn a_model_that_is_not_tflite_is_declined() {
    if !litert("a_model_that_is_not_tflite_is_declined") {
        return;
    }
    let fx = Fx::new();
    let sess = fx.session();
    let onnx = Resource::from_buf(
        &fx.rt,
        b"\x08\x07\x12\x04onnx-ish bytes".to_vec(),
        ResourceType::Model,
        Some("m.onnx"),
        true,
    )
    .unwrap();
    sess.register(&onnx).unwrap();
    let e = sess.tflite_model_load(&onnx).unwrap_err();
    assert!(matches!(e, Error::Declined { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::ENOTSUP);
    assert!(matches!(
        sess.tflite_model_run(&onnx, &[face_input(1)], 1)
            .unwrap_err(),
        Error::Declined { .. }
    ));
}

#[test]
fn concurrent_runs_on_one_model_agree() {
    if !litert("concurrent_runs_on_one_model_agree") {
        return;
    }
    let fx = Fx::new();
    let sess = fx.session();
    let model = face_resource(&fx);
    sess.register(&model).unwrap();
    sess.tflite_model_load(&model).unwrap();
    let expect = sess.tflite_model_run(&model, &[face_input(7)], 2).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    let out = sess.tflite_model_run(&model, &[face_input(7)], 2).unwrap();
                    assert_eq!(out.outputs, expect.outputs);
                }
            });
        }
    });
    assert_eq!(fx.plugin.compilations(), 1);
}

/// Runs in a child process of this test binary with `VACCEL_LITERT_LIB` pointing nowhere, so
/// discovery fails whatever is installed.
#[test]
fn missing_litert_declines_every_model_op() {
    const CHILD: &str = "TFLITE_TEST_MISSING_LIB_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "missing_litert_declines_every_model_op",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("VACCEL_LITERT_LIB", "/nonexistent/libLiteRt.so")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{text}");
        assert!(
            text.contains("1 passed"),
            "child did not run the test:\n{text}"
        );
        return;
    }
    let fx = Fx::new();
    let sess: Arc<Session> = fx.session();
    let model = Resource::from_buf(
        &fx.rt,
        std::fs::read(fixture(FACE)).unwrap(),
        ResourceType::Model,
        None,
        true,
    )
    .unwrap();
    sess.register(&model).unwrap();
    for e in [
        sess.tflite_model_load(&model).unwrap_err(),
        sess.tflite_model_run(&model, &[face_input(1)], 2)
            .unwrap_err(),
        sess.tflite_model_unload(&model).unwrap_err(),
        sess.image_detect(b"\x89PNG", &mut [0u8; 64]).unwrap_err(),
    ] {
        assert!(matches!(e, Error::Declined { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("pip install ai-edge-litert==2.3.0"), "{text}");
        assert!(text.contains("VACCEL_LITERT_LIB"), "{text}");
    }
    assert!(TflitePlugin::with_threads(1).loaded_count() == 0);
}

/// A model that fails to compile half-way used to deadlock: the partly built model was
/// destroyed while the environment lock was still held.
#[test]
fn failed_compilation_returns_an_error_and_does_not_deadlock() {
    if !litert("failed_compilation_returns_an_error_and_does_not_deadlock") {
        return;
    }
    let bytes = std::fs::read(fixture(FACE)).unwrap();
    let mut corrupt = bytes.clone();
    for i in (100..corrupt.len()).step_by(997) {
        corrupt[i] ^= 0x5a;
    }
    for bad in [&bytes[..8], &bytes[..bytes.len() / 2], &corrupt[..]] {
        for _ in 0..2 {
            let e = Model::load(bad, 1).unwrap_err();
            assert!(e.to_string().contains("InvalidFlatbuffer"), "{e}");
        }
    }
    let fx = Fx::new();
    let sess = fx.session();
    let model = Resource::from_buf(&fx.rt, corrupt, ResourceType::Model, None, true).unwrap();
    sess.register(&model).unwrap();
    assert_eq!(code(sess.tflite_model_load(&model)), ErrorCode::EBACKEND);
    assert_eq!(fx.plugin.loaded_count(), 0);
    // The environment is still usable.
    Model::load(&bytes, 1).unwrap();
}

#[test]
fn probe_compiles_and_runs_a_model_and_keeps_nothing() {
    if !litert("probe_compiles_and_runs_a_model_and_keeps_nothing") {
        return;
    }
    use vaccel_core::plugin::Plugin;
    let fx = Fx::new();
    let sess = fx.session();
    let model = face_resource(&fx);
    sess.register(&model).unwrap();
    assert!(fx.plugin.recognizes_model(&model));
    let before = fx.plugin.compilations();
    fx.plugin.probe_model(&sess, &model).unwrap();
    assert_eq!(fx.plugin.compilations(), before + 1);
    assert_eq!(fx.plugin.loaded_count(), 0, "the probe keeps no model");

    // Other formats are not the plugin's to probe.
    let other = Resource::from_buf(
        &fx.rt,
        b"\x08\x07\x12\x04onnx-ish bytes".to_vec(),
        ResourceType::Model,
        Some("m.onnx"),
        true,
    )
    .unwrap();
    assert!(!fx.plugin.recognizes_model(&other));
    assert_eq!(
        code(fx.plugin.probe_model(&sess, &other)),
        ErrorCode::ENOTSUP
    );
}
