//! The example programs on the CPU backends with real models (`VACCEL_PLUGINS=cpu`), locally
//! and through a real agent on a unix socket: the face on the astronaut picture, upstream's
//! banana with the bundled ImageNet classifier, the dog-breed classifier with a registered
//! model, segmentation, pose, and depth's clear refusal.
//!
//! The tflite plugin needs LiteRT (`./scripts/runtimes.sh`). Without it, the tests that need it
//! print why and pass, unless `VACCEL_REQUIRE_BACKENDS=1` (CI sets it) makes that a failure.
//! Detection works without LiteRT too: the onnx plugin serves it with its bundled model.
//!
//! With the backends bundled (the `cpu` feature, the default) only: the programs' `detection:`
//! lines come from structured results (`Session::image_detect_objects`), which a backend loaded
//! as a plugin library cannot return yet (see docs/backends.md).
#![cfg(feature = "cpu")]
// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{Agent, Run, SESSION_LINE, run};

/// The face box of `fixtures/reference/manifest.json` (`semantic`), in pixels.
const FACE: [f32; 4] = [177.3, 80.6, 271.9, 175.1];

fn fixture(name: &str) -> String {
    format!("{}/../fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Where each program runs: in-process CPU backends, and through an agent running them.
fn places(agent: &Agent) -> Vec<(&'static str, Vec<(&str, &str)>)> {
    vec![
        ("local", vec![("VACCEL_PLUGINS", "cpu")]),
        ("agent", agent.env().to_vec()),
    ]
}

/// Whether LiteRT is missing: the run says so. Fails instead when backends are required.
fn litert_missing(r: &Run) -> bool {
    let missing = r.code() == Some(95) && r.stderr.contains("ai-edge-litert");
    if missing {
        assert!(
            std::env::var_os("VACCEL_REQUIRE_BACKENDS").is_none(),
            "LiteRT is required (VACCEL_REQUIRE_BACKENDS) but missing\n{r}"
        );
        eprintln!("SKIP: LiteRT not found (./scripts/runtimes.sh installs it)\n{r}");
    }
    missing
}

/// The `detection:` lines of a detect run, parsed.
fn detections(r: &Run) -> Vec<(String, f32, [f32; 4])> {
    r.program_lines()
        .iter()
        .filter_map(|l| l.strip_prefix("detection: "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 6, "malformed line {l:?}");
            let n = |i: usize| f[i].parse::<f32>().unwrap();
            (f[0].to_owned(), n(1), [n(2), n(3), n(4), n(5)])
        })
        .collect()
}

fn assert_one_face(r: &Run) {
    r.assert_success();
    let found = detections(r);
    assert_eq!(found.len(), 1, "expected exactly one face\n{r}");
    let (label, score, b) = &found[0];
    assert_eq!(label, "face", "{r}");
    assert!(*score > 0.9, "score {score}\n{r}");
    for (got, want) in b.iter().zip(FACE) {
        assert!((got - want).abs() < 4.0, "box {b:?} is not {FACE:?}\n{r}");
    }
    let lines = r.program_lines();
    assert_eq!(lines[0], SESSION_LINE, "{r}");
    assert_eq!(lines[1], "detection imagename: detection.png", "{r}");
}

#[test]
fn detect_finds_the_one_face_on_the_astronaut_locally_and_through_the_agent() {
    let agent = Agent::start("unix", "cpu");
    let image = fixture("images/astronaut.jpg");
    let onnx = fixture("models/face_detection_short_range.onnx");
    for (place, env) in places(&agent) {
        for program in ["detect", "detect_generic"] {
            let r = run(program, &[image.as_str(), "1"], &env);
            assert_one_face(&r);
            // Two iterations: two identical answers.
            let r = run(program, &[image.as_str(), "2"], &env);
            r.assert_success();
            assert_eq!(detections(&r).len(), 2, "{place}\n{r}");
        }
        // The same with a registered ONNX model: the onnx plugin serves it.
        let r = run("detect", &[image.as_str(), "1", onnx.as_str()], &env);
        assert_one_face(&r);
    }
    // The agent ran the detector on its side (our extension carried the boxes back).
    let log = agent.log_with(&["Destroyed session"]);
    assert!(log.contains("Created session"), "{log}");
}

#[test]
fn classify_with_a_registered_model_names_its_top_label() {
    let agent = Agent::start("unix", "cpu");
    let image = fixture("images/chelsea.jpg");
    // A directory resource: the model and its labels travel together, also to the agent.
    let model = fixture("models/dog_breeds");
    for (place, env) in places(&agent) {
        let r = run("classify", &[image.as_str(), "1", model.as_str()], &env);
        if litert_missing(&r) {
            return;
        }
        r.assert_success();
        let tags = r
            .program_lines()
            .iter()
            .find_map(|l| l.strip_prefix("classification tags: "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no tags line\n{r}"));
        // The reference (LiteRT on Pillow's decoding of the same JPEG): Chihuahua 43.34%.
        let (prob, label) = tags.split_once("% ").unwrap();
        assert_eq!(label, "Chihuahua", "{place}\n{r}");
        let prob: f32 = prob.parse().unwrap();
        assert!((prob - 43.34).abs() < 1.0, "{place}: {prob}\n{r}");
    }
}

/// Issue #16: without a registered model, `classify` names upstream's example picture, a
/// banana, with the bundled ImageNet classifier (onnx's EfficientNet-Lite0; the reference,
/// PyTorch on Pillow's decoding, gives 98.5%). It needs no LiteRT: `tflite` declines.
#[test]
fn classify_names_upstreams_banana_with_the_bundled_imagenet_model() {
    let agent = Agent::start("unix", "cpu");
    let image = format!("{}/data/example.jpg", env!("CARGO_MANIFEST_DIR"));
    for (place, env) in places(&agent) {
        let r = run("classify", &[image.as_str(), "1"], &env);
        r.assert_success();
        let lines = r.program_lines();
        assert_eq!(lines[0], SESSION_LINE, "{place}\n{r}");
        let tags = lines
            .iter()
            .find_map(|l| l.strip_prefix("classification tags: "))
            .unwrap_or_else(|| panic!("no tags line\n{r}"));
        let (prob, label) = tags.split_once("% ").unwrap();
        assert_eq!(label, "banana", "{place}\n{r}");
        let prob: f32 = prob.parse().unwrap();
        assert!((prob - 98.5).abs() < 1.0, "{place}: {prob}\n{r}");
    }
}

#[test]
fn segment_and_pose_write_their_images_and_depth_is_refused() {
    let agent = Agent::start("unix", "cpu");
    let image = fixture("images/astronaut.jpg");
    for (place, env) in places(&agent) {
        let r = run("segment", &[image.as_str(), "1"], &env);
        r.assert_success();
        assert_eq!(
            r.program_lines()[1],
            "segmentation imagename: segmentation.png",
            "{place}\n{r}"
        );
        let r = run("pose", &[image.as_str(), "1"], &env);
        if litert_missing(&r) {
            continue;
        }
        r.assert_success();
        assert_eq!(
            r.program_lines()[1],
            "pose estimation imagename: pose.png",
            "{place}\n{r}"
        );
        // No freely licensed depth model exists: a clear ENOTSUP, never a fake image.
        let r = run("depth", &[image.as_str(), "1"], &env);
        r.assert_code(95);
    }
}
