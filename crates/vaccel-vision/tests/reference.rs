//! The pipelines on real model outputs: an engine replays the outputs LiteRT and onnxruntime
//! gave for the fixture pictures (`fixtures/reference/`), and the decoded results must be the
//! ones the fixture script computed (`manifest.json`, `semantic`). The preprocessing is checked
//! against the recorded input tensors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use vaccel_vision::classify::parse_labels;
use vaccel_vision::segment::Mask;
use vaccel_vision::{ModelKind, Output, RecordedEngine, Task, Tensor, TensorView, model_kind, run};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");

fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join(rel)
}

fn manifest() -> Value {
    let path = fixture("reference/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (fixtures are written by scripts/fixtures)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// The manifest entry of the model stored as `file` (`models/...`).
fn model(file: &str) -> Value {
    manifest()["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in the manifest"))
        .clone()
}

fn shape(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn read_f32(rel: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(rel)).unwrap();
    assert_eq!(bytes.len() % 4, 0, "{rel}");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn tensor(entry: &Value) -> Tensor {
    let shape = shape(&entry["shape"]);
    let data = read_f32(entry["file"].as_str().unwrap());
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{entry}");
    Tensor { shape, data }
}

/// An engine that answers with the model's recorded outputs.
fn replay(m: &Value) -> RecordedEngine {
    let outputs = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(tensor)
        .collect();
    RecordedEngine::new(vec![shape(&m["input"]["shape"])], outputs)
}

fn image(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("images/{name}.jpg"))).unwrap()
}

fn f(v: &Value) -> f32 {
    v.as_f64().unwrap() as f32
}

/// Max and mean absolute difference between the tensor the pipeline fed and `input.bin`.
fn input_difference(engine: &RecordedEngine, m: &Value) -> (f32, f32) {
    let fed = &engine.last_inputs()[0];
    let reference = tensor(&m["input"]);
    assert_eq!(fed.shape, reference.shape);
    let diffs: Vec<f32> = fed
        .data
        .iter()
        .zip(&reference.data)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let max = diffs.iter().copied().fold(0.0, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    (max, mean)
}

/// The pictures are JPEGs: this crate decodes them with zune-jpeg, the fixture script with
/// libjpeg-turbo, and the two differ by up to 3 levels on about 1% of the samples. The resize
/// itself is Pillow's, exactly; after it the inputs differ by at most 1 level (measured), on a
/// few samples (mean about 0.01 level). The bound leaves one level of slack.
fn assert_input_close(engine: &RecordedEngine, m: &Value, level: f32) {
    let (max, mean) = input_difference(engine, m);
    eprintln!(
        "{}: preprocessed input vs input.bin: max {max:.5} ({:.2} levels), mean {mean:.6}",
        m["file"],
        max / level
    );
    assert!(max <= 2.0 * level + 1e-6, "max difference {max}");
    assert!(mean <= 0.02 * level, "mean difference {mean}");
}

fn run_task(task: Task, engine: &RecordedEngine, labels: Option<&[String]>, img: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let out = run(task, engine, labels, &image(img), dir.path()).unwrap();
    if let Some(name) = task.image_name() {
        assert_eq!(out.image_name, name);
        let written = std::fs::read(dir.path().join(name)).unwrap();
        let decoded = vaccel_vision::codec::decode(&written).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (512, 512));
    }
    out
}

fn check_faces(file: &str) {
    let m = model(file);
    let engine = replay(&m);
    assert_eq!(model_kind(&engine), Some(ModelKind::FaceDetector));
    let out = run_task(Task::Detect, &engine, None, "astronaut");
    assert_input_close(&engine, &m, 1.0 / 127.5);

    let want = &m["semantic"]["detections"];
    assert_eq!(out.detections.len(), 1, "{:?}", out.detections);
    assert_eq!(want.as_array().unwrap().len(), 1);
    let (d, w) = (&out.detections[0], &want[0]);
    eprintln!("{file}: {}", d.display_line());
    assert_eq!(d.label, "face");
    assert!((d.score - f(&w["score"])).abs() < 1e-5, "{d:?}");
    let b = &w["box_pixels"];
    for (got, want) in [
        (d.x0, &b["xmin"]),
        (d.y0, &b["ymin"]),
        (d.x1, &b["xmax"]),
        (d.y1, &b["ymax"]),
    ] {
        assert!((got - f(want)).abs() < 0.01, "{d:?} vs {b}");
    }
    // Over Eileen Collins' face.
    let (cx, cy) = d.center();
    assert!(
        (200.0..250.0).contains(&cx) && (100.0..150.0).contains(&cy),
        "{d:?}"
    );
    assert!((80.0..110.0).contains(&d.width()) && (80.0..110.0).contains(&d.height()));

    // The ONNX entry leaves the MediaPipe options to the TFLite model it was converted from.
    let options = model("models/face_detection_short_range.tflite")["mediapipe_options"].clone();
    let names = options["keypoint_names"].as_array().unwrap();
    assert_eq!(
        names,
        &vaccel_vision::pipeline::FACE_KEYPOINTS.map(Value::from)
    );
    let kps = &out.keypoints[0];
    assert_eq!(kps.len(), names.len());
    for (p, name) in kps.iter().zip(names) {
        let want = &w["keypoints_pixels"][name.as_str().unwrap()];
        assert!(
            (p.x - f(&want[0])).abs() < 0.01 && (p.y - f(&want[1])).abs() < 0.01,
            "{name}: {p:?} vs {want}"
        );
    }
    // The eyes lie inside the box, the right eye (the subject's) left of the left eye.
    assert!(kps[0].x < kps[1].x && kps[0].y > d.y0 && kps[0].y < d.y1);
    assert!(
        out.text.starts_with("1 detection: face 0.921"),
        "{}",
        out.text
    );
}

#[test]
fn face_detector_tflite_finds_the_astronauts_face() {
    check_faces("models/face_detection_short_range.tflite");
}

#[test]
fn face_detector_onnx_finds_the_astronauts_face() {
    check_faces("models/face_detection_short_range.onnx");
}

#[test]
fn pose_detector_finds_the_astronaut() {
    let m = model("models/pose_detection.tflite");
    let engine = replay(&m);
    assert_eq!(model_kind(&engine), Some(ModelKind::PoseDetector));
    let out = run_task(Task::Pose, &engine, None, "astronaut");
    assert_input_close(&engine, &m, 1.0 / 127.5);

    let w = &m["semantic"]["detections"][0];
    assert_eq!(out.detections.len(), 1, "{:?}", out.detections);
    let d = &out.detections[0];
    eprintln!("pose: {}", d.display_line());
    assert_eq!(d.label, "person");
    assert!((d.score - f(&w["score"])).abs() < 1e-5);
    let b = &w["box_pixels"];
    for (got, want) in [
        (d.x0, &b["xmin"]),
        (d.y0, &b["ymin"]),
        (d.x1, &b["xmax"]),
        (d.y1, &b["ymax"]),
    ] {
        assert!((got - f(want)).abs() < 0.01, "{d:?} vs {b}");
    }
    let names = m["mediapipe_options"]["keypoint_names"].as_array().unwrap();
    assert_eq!(
        names,
        &vaccel_vision::pipeline::PERSON_KEYPOINTS.map(Value::from)
    );
    for (p, name) in out.keypoints[0].iter().zip(names) {
        let want = &w["keypoints_pixels"][name.as_str().unwrap()];
        assert!(
            (p.x - f(&want[0])).abs() < 0.05 && (p.y - f(&want[1])).abs() < 0.05,
            "{name}: {p:?} vs {want}"
        );
    }
    // Hips below the shoulders, below the head-and-shoulders box.
    let kps = &out.keypoints[0];
    assert!(kps[0].y > kps[2].y && kps[2].y > d.y0);

    // The same model serves detection; it cannot segment.
    let det = run_task(Task::Detect, &engine, None, "astronaut");
    assert_eq!(det.detections, out.detections);
    let dir = tempfile::tempdir().unwrap();
    let err = run(
        Task::Segment,
        &engine,
        None,
        &image("astronaut"),
        dir.path(),
    )
    .unwrap_err();
    assert!(err.is_unsupported(), "{err}");
}

/// Fraction of mask samples over 0.5 in a region given as fractions `[x0, y0, x1, y1]`, rows
/// and columns `round(y0 * H)..round(y1 * H)` (the manifest's convention).
fn region_fraction(mask: &Mask, region: &Value) -> f32 {
    let r: Vec<f32> = region.as_array().unwrap().iter().map(f).collect();
    let (w, h) = (mask.width as f32, mask.height as f32);
    let (x0, x1) = ((r[0] * w).round() as usize, (r[2] * w).round() as usize);
    let (y0, y1) = ((r[1] * h).round() as usize, (r[3] * h).round() as usize);
    let mut on = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            on += usize::from(mask.data[y * mask.width + x] > 0.5);
        }
    }
    on as f32 / ((x1 - x0) * (y1 - y0)) as f32
}

fn check_segmentation(file: &str) {
    let m = model(file);
    let engine = replay(&m);
    assert_eq!(model_kind(&engine), Some(ModelKind::Segmenter));
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        Task::Segment,
        &engine,
        None,
        &image("astronaut"),
        dir.path(),
    )
    .unwrap();
    assert_input_close(&engine, &m, 1.0 / 255.0);

    let semantic = &m["semantic"];
    let fractions = &semantic["fraction_above_threshold"];
    let output = tensor(&m["outputs"][0]);
    let mask = Mask::from_output(TensorView {
        shape: &output.shape,
        data: &output.data,
    })
    .unwrap();
    // On the model's own 256x256 mask: exactly the script's numbers.
    assert!((mask.coverage() - f(&fractions["whole_image"])).abs() < 1e-6);
    for (name, region) in semantic["regions"].as_object().unwrap() {
        let got = region_fraction(&mask, region);
        assert!((got - f(&fractions[name])).abs() < 1e-6, "{name}: {got}");
    }
    // Upsampled to the 512x512 picture: the same coverage within a fraction of a percent.
    let coverage = out.coverage.unwrap();
    eprintln!("{file}: coverage {coverage} ({})", out.text);
    assert!(
        (coverage - f(&fractions["whole_image"])).abs() < 0.005,
        "{coverage}"
    );

    // The result image keeps the person and darkens the background.
    let result =
        vaccel_vision::codec::decode(&std::fs::read(dir.path().join("segmentation.png")).unwrap())
            .unwrap();
    let original = vaccel_vision::codec::decode(&image("astronaut")).unwrap();
    let brightness = |img: &vaccel_vision::RgbImage, x0: u32, y0: u32, x1: u32, y1: u32| {
        let mut sum = 0u64;
        for y in y0..y1 {
            for x in x0..x1 {
                sum += img
                    .pixel(x, y)
                    .unwrap()
                    .iter()
                    .map(|&v| u64::from(v))
                    .sum::<u64>();
            }
        }
        sum as f64 / f64::from((x1 - x0) * (y1 - y0))
    };
    // Face and chest (x 0.36-0.50, y 0.18-0.75 of 512) vs the top-left corner (0.12).
    let person = brightness(&result, 184, 92, 256, 384) / brightness(&original, 184, 92, 256, 384);
    let corner = brightness(&result, 0, 0, 61, 61) / brightness(&original, 0, 0, 61, 61);
    assert!(
        person > 0.97 && corner < 0.7,
        "person {person}, corner {corner}"
    );
}

#[test]
fn segmenter_tflite_covers_the_astronaut() {
    check_segmentation("models/selfie_segmentation.tflite");
}

#[test]
fn segmenter_onnx_covers_the_astronaut() {
    check_segmentation("models/selfie_segmentation.onnx");
}

#[test]
fn classifier_ranks_as_the_reference() {
    let m = model("models/dog_breeds/dog_breeds.tflite");
    let engine = replay(&m);
    assert_eq!(
        model_kind(&engine),
        Some(ModelKind::Classifier { classes: 19 })
    );
    let labels =
        parse_labels(&std::fs::read_to_string(fixture("models/dog_breeds/labels.txt")).unwrap());
    assert_eq!(labels.len(), 19);
    let out = run_task(Task::Classify, &engine, Some(&labels), "chelsea");
    assert_input_close(&engine, &m, 1.0 / 127.5);

    let top3 = m["semantic"]["top3"]["chelsea"].as_array().unwrap();
    for (got, want) in out.classes.iter().zip(top3) {
        assert_eq!(got.index as u64, want["index"].as_u64().unwrap());
        assert_eq!(got.label, want["label"].as_str().unwrap());
        assert!((got.probability - f(&want["probability"])).abs() < 1e-6);
    }
    assert_eq!(out.classes.len(), 5);
    assert_eq!(out.text, "43.34% Chihuahua");
    assert_eq!(out.image_name, out.text);
    // Already a distribution: no second softmax.
    let sum: f32 = out.classes.iter().map(|c| c.probability).sum();
    assert!(sum < 1.0);

    // Without labels, the index.
    let out = run_task(Task::Classify, &engine, None, "chelsea");
    assert_eq!(out.text, "43.34% class 0");
}

/// Model kinds from the shapes the manifest records, and the tasks each declines.
#[test]
fn every_fixture_model_is_recognised() {
    let expect = [
        (
            "models/face_detection_short_range.tflite",
            ModelKind::FaceDetector,
        ),
        (
            "models/face_detection_short_range.onnx",
            ModelKind::FaceDetector,
        ),
        ("models/selfie_segmentation.tflite", ModelKind::Segmenter),
        ("models/selfie_segmentation.onnx", ModelKind::Segmenter),
        ("models/pose_detection.tflite", ModelKind::PoseDetector),
        (
            "models/dog_breeds/dog_breeds.tflite",
            ModelKind::Classifier { classes: 19 },
        ),
    ];
    for (file, kind) in expect {
        let engine = replay(&model(file));
        assert_eq!(model_kind(&engine), Some(kind), "{file}");
        assert!(!kind.supports(Task::Depth));
        let dir = tempfile::tempdir().unwrap();
        let err = run(Task::Depth, &engine, None, &image("astronaut"), dir.path()).unwrap_err();
        assert!(err.is_unsupported(), "{file}: {err}");
    }
}
