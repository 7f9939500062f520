//! Image operations on the bundled models through a real runtime (needs LiteRT; skipped with
//! a message without it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{Fx, fixture, litert};
use vaccel_core::{Error, Resource, ResourceType};
use vaccel_plugin_tflite::{DefaultModel, default_model};

fn c_str(buf: &[u8]) -> &str {
    let end = buf.iter().position(|&b| b == 0).unwrap();
    std::str::from_utf8(&buf[..end]).unwrap()
}

#[test]
fn detect_finds_the_astronauts_face_with_the_bundled_model() {
    if !litert("detect_finds_the_astronauts_face_with_the_bundled_model") {
        return;
    }
    let fx = Fx::new();
    let sess = fx.session();
    let image = std::fs::read(fixture("images/astronaut.jpg")).unwrap();
    let mut name = [0u8; 256];
    let found = sess.image_detect_objects(&image, &mut name).unwrap();
    for d in &found {
        eprintln!("{}", d.display_line());
    }
    assert_eq!(found.len(), 1, "{found:?}");
    let face = &found[0];
    assert_eq!(face.label, "face");
    assert!(face.score > 0.5, "{face:?}");
    // The box the reference pipeline decoded from the reference runtime's outputs (the same
    // image, resized by the fixture script rather than by vaccel-vision: a few pixels apart).
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("reference/manifest.json")).unwrap())
            .unwrap();
    let entry = manifest["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["file"] == "models/face_detection_short_range.tflite")
        .unwrap();
    let expect = &entry["semantic"]["detections"][0]["box_pixels"];
    let px = |k: &str| expect[k].as_f64().unwrap() as f32;
    for (got, want) in [
        (face.x0, px("xmin")),
        (face.y0, px("ymin")),
        (face.x1, px("xmax")),
        (face.y1, px("ymax")),
    ] {
        assert!((got - want).abs() < 4.0, "{face:?} vs {expect}");
    }
    let name = c_str(&name);
    assert!(sess.rundir().join(name).is_file(), "{name}");
}

#[test]
fn segment_pose_and_classify_write_their_results() {
    if !litert("segment_pose_and_classify_write_their_results") {
        return;
    }
    let fx = Fx::new();
    let sess = fx.session();
    let image = std::fs::read(fixture("images/astronaut.jpg")).unwrap();
    for op in ["segment", "pose"] {
        let mut name = [0u8; 256];
        match op {
            "segment" => sess.image_segment(&image, &mut name).unwrap(),
            _ => sess.image_pose(&image, &mut name).unwrap(),
        }
        let name = c_str(&name);
        assert!(sess.rundir().join(name).is_file(), "{op}: {name}");
    }
    // Classification has no bundled TFLite model (the onnx plugin's ImageNet classifier
    // serves `cpu`); the dog-breed classifier registered as a directory, labels and all, on
    // the cat picture: the reference ranks Chihuahua first at 43%, far ahead of the next (10%).
    let dogs = Resource::new(
        &fx.rt,
        fixture("models/dog_breeds").to_str().unwrap(),
        ResourceType::Model,
    )
    .unwrap();
    sess.register(&dogs).unwrap();
    let cat = std::fs::read(fixture("images/chelsea.jpg")).unwrap();
    let (mut text, mut name) = ([0u8; 256], [0u8; 256]);
    sess.image_classify(&cat, &mut text, &mut name).unwrap();
    let text = c_str(&text);
    assert!(text.ends_with("% Chihuahua"), "{text}");
    assert_eq!(c_str(&name), text);
    // Truncated safely into a small buffer.
    let (mut small, mut name) = ([0xffu8; 5], [0u8; 3]);
    sess.image_classify(&image, &mut small, &mut name).unwrap();
    assert_eq!(small[4], 0);
    assert_eq!(name[2], 0);
}

#[test]
fn a_session_model_is_used_and_other_formats_are_declined() {
    if !litert("a_session_model_is_used_and_other_formats_are_declined") {
        return;
    }
    let fx = Fx::new();
    let sess = fx.session();
    let image = std::fs::read(fixture("images/astronaut.jpg")).unwrap();

    // A non-TFLite model only: declined, not served with the bundled one.
    let other = Resource::from_buf(
        &fx.rt,
        b"not tflite".to_vec(),
        ResourceType::Model,
        None,
        true,
    )
    .unwrap();
    sess.register(&other).unwrap();
    let e = sess.image_detect(&image, &mut [0u8; 64]).unwrap_err();
    assert!(matches!(e, Error::Declined { .. }), "{e}");

    // The session's pose detector serves detection (people, not faces), compiled once.
    let pose = Resource::new(
        &fx.rt,
        fixture("models/pose_detection.tflite").to_str().unwrap(),
        ResourceType::Model,
    )
    .unwrap();
    sess.register(&pose).unwrap();
    for _ in 0..2 {
        let found = sess.image_detect_objects(&image, &mut [0u8; 64]).unwrap();
        assert!(found.iter().all(|d| d.label == "person"), "{found:?}");
    }
    assert_eq!(fx.plugin.compilations(), 1);
    // A pose detector cannot segment: declined.
    let e = sess.image_segment(&image, &mut [0u8; 64]).unwrap_err();
    assert!(matches!(e, Error::Declined { .. }), "{e}");
}

#[test]
fn depth_and_classify_have_no_bundled_model_and_bad_images_are_einval() {
    if !litert("depth_and_classify_have_no_bundled_model_and_bad_images_are_einval") {
        return;
    }
    let fx = Fx::new();
    let sess = fx.session();
    let e = sess
        .image_depth(b"\x89PNG whatever", &mut [0u8; 64])
        .unwrap_err();
    assert!(matches!(e, Error::Declined { .. }), "{e}");
    let e = sess
        .image_classify(b"\x89PNG whatever", &mut [0u8; 64], &mut [0u8; 64])
        .unwrap_err();
    assert!(matches!(e, Error::Declined { .. }), "{e}");
    let e = sess
        .image_detect(b"neither png nor jpeg", &mut [0u8; 64])
        .unwrap_err();
    assert_eq!(e.code(), vaccel_core::ErrorCode::EINVAL, "{e}");
}

#[test]
fn bundled_models_are_compiled_once_per_process() {
    if !litert("bundled_models_are_compiled_once_per_process") {
        return;
    }
    let a = default_model(DefaultModel::SelfieSegmentation, 2).unwrap();
    let fx = Fx::new(); // 2 threads, like `a`
    let sess = fx.session();
    let image = std::fs::read(fixture("images/coffee.jpg")).unwrap();
    sess.image_segment(&image, &mut [0u8; 64]).unwrap();
    let b = default_model(DefaultModel::SelfieSegmentation, 2).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(
        fx.plugin.compilations(),
        0,
        "bundled models are not session models"
    );
    assert_eq!(a.inputs()[0].dims, vec![1, 256, 256, 3]);
}
