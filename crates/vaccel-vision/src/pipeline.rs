//! The image operations end to end: bytes → tensor → engine → decoder → result.

use std::path::Path;

use vaccel_core::detection::Detection;

use crate::anchors::{AnchorOptions, generate};
use crate::classify::{Class, probabilities, top_k};
use crate::codec;
use crate::engine::{Engine, Tensor};
use crate::error::VisionError;
use crate::model::{ModelKind, Task, class_count, model_kind, ssd_outputs};
use crate::preprocess::{InputSpec, Placement, Preprocess, to_tensor};
use crate::resample::Filter;
use crate::rgb::{Rgb, RgbImage};
use crate::segment::{Mask, render};
use crate::ssd::{SsdBox, SsdOptions, decode, weighted_nms};

/// Tensor values for pixel values 0 and 255 of each family's input. MediaPipe detectors take
/// `[-1, 1]`, selfie segmentation `[0, 1]` (their TFLite metadata and MediaPipe's graphs);
/// classifiers `[-1, 1]` (Keras MobileNet's `preprocess_input`).
///
/// The resize is Pillow's antialiased one: bilinear for the MediaPipe models, bicubic for
/// classifiers (Pillow's default, which Keras-era model cards use). Detectors letterbox as
/// MediaPipe does; segmentation and classification stretch.
pub const DETECTOR_RANGE: (f32, f32) = (-1.0, 1.0);
/// See [`DETECTOR_RANGE`].
pub const SEGMENTER_RANGE: (f32, f32) = (0.0, 1.0);
/// See [`DETECTOR_RANGE`].
pub const CLASSIFIER_RANGE: (f32, f32) = (-1.0, 1.0);

/// How many classes a classification result lists.
pub const TOP_K: usize = 5;

/// Names of a face's keypoints, in [`Object::keypoints`] order (the subject's right and left).
pub const FACE_KEYPOINTS: [&str; 6] = [
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
];

/// Names of a person's keypoints, in [`Object::keypoints`] order: the full body lies in the
/// circle around the hip centre through the full-body point, the upper body in the circle
/// around the shoulder centre through the upper-body point.
pub const PERSON_KEYPOINTS: [&str; 4] = [
    "mid_hip_center",
    "full_body_circle_point",
    "mid_shoulder_center",
    "upper_body_circle_point",
];

/// A point in input-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Horizontal, from the left edge.
    pub x: f32,
    /// Vertical, from the top edge.
    pub y: f32,
}

/// One object a detector found: its box and keypoints, in input-image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Label, score and box (clipped to the image).
    pub detection: Detection,
    /// [`FACE_KEYPOINTS`] or [`PERSON_KEYPOINTS`]; they may lie outside the image (a
    /// person's hips below a portrait).
    pub keypoints: Vec<Point>,
}

/// The result of one image operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The task that ran.
    pub task: Task,
    /// Classification: `"<prob>% <label>"` of the best class (`87.31% golden_retriever`);
    /// others: a one-line summary.
    pub text: String,
    /// File name (no directory) of the result image written into the output directory;
    /// classification writes none and repeats `text` here.
    pub image_name: String,
    /// Detection: one per object; pose: one `person` per person; otherwise empty. Input-image
    /// pixels.
    pub detections: Vec<Detection>,
    /// Keypoints of each detection, in the same order (see [`Object::keypoints`]).
    pub keypoints: Vec<Vec<Point>>,
    /// Classification: the [`TOP_K`] best classes, best first; otherwise empty.
    pub classes: Vec<Class>,
    /// Segmentation: the fraction of image pixels that are person.
    pub coverage: Option<f32>,
}

impl Output {
    fn new(task: Task, text: String, image_name: String) -> Self {
        Self {
            task,
            text,
            image_name,
            detections: Vec::new(),
            keypoints: Vec::new(),
            classes: Vec::new(),
            coverage: None,
        }
    }
}

/// Runs `task` with the model behind `engine` on `image` (PNG or JPEG bytes) and writes the
/// result image (a fixed name per task, see [`Task::image_name`]) into `out_dir`, replacing an
/// older one atomically.
///
/// `labels` name the classes of a classifier (else `class <i>`). A model of no supported
/// family, or of one that cannot do `task`, gives [`VisionError::Unsupported`] before the image
/// is even decoded.
pub fn run(
    task: Task,
    engine: &dyn Engine,
    labels: Option<&[String]>,
    image: &[u8],
    out_dir: &Path,
) -> Result<Output, VisionError> {
    let kind = check_task(task, engine)?;
    let image = codec::decode(image)?;
    run_decoded(task, kind, engine, labels, &image, out_dir)
}

/// [`run`] on an already decoded image.
pub fn run_image(
    task: Task,
    engine: &dyn Engine,
    labels: Option<&[String]>,
    image: &RgbImage,
    out_dir: &Path,
) -> Result<Output, VisionError> {
    let kind = check_task(task, engine)?;
    run_decoded(task, kind, engine, labels, image, out_dir)
}

/// The family of the model behind `engine` if it can do `task`, else
/// [`VisionError::Unsupported`].
pub fn check_task(task: Task, engine: &dyn Engine) -> Result<ModelKind, VisionError> {
    match model_kind(engine) {
        Some(kind) if kind.supports(task) => Ok(kind),
        model => Err(VisionError::Unsupported { task, model }),
    }
}

fn run_decoded(
    task: Task,
    kind: ModelKind,
    engine: &dyn Engine,
    labels: Option<&[String]>,
    image: &RgbImage,
    out_dir: &Path,
) -> Result<Output, VisionError> {
    let name = task.image_name().unwrap_or_default();
    log::debug!(
        "{task} with a {kind} model on a {}x{} image",
        image.width(),
        image.height()
    );
    let out = run_task(task, kind, engine, labels, image, out_dir, name)?;
    log::debug!("{task}: {}", out.text);
    Ok(out)
}

fn run_task(
    task: Task,
    kind: ModelKind,
    engine: &dyn Engine,
    labels: Option<&[String]>,
    image: &RgbImage,
    out_dir: &Path,
    name: &str,
) -> Result<Output, VisionError> {
    match (task, kind) {
        (Task::Classify, _) => {
            let classes = classify(engine, image, labels, TOP_K)?;
            let text = classes
                .first()
                .map_or_else(|| "no class".to_owned(), Class::text);
            let mut out = Output::new(task, text.clone(), text);
            out.classes = classes;
            Ok(out)
        }
        (Task::Segment, _) => {
            let (mask, place) = segment(engine, image)?;
            let (rendered, coverage) = render(image, &mask, &place);
            codec::write_png(out_dir, name, &rendered)?;
            let text = format!("person covers {:.2}% of the image", coverage * 100.0);
            let mut out = Output::new(task, text, name.to_owned());
            out.coverage = Some(coverage);
            Ok(out)
        }
        (Task::Detect | Task::Pose, ModelKind::FaceDetector | ModelKind::PoseDetector) => {
            let objects = if kind == ModelKind::FaceDetector {
                detect_faces(engine, image)?
            } else {
                detect_people(engine, image)?
            };
            let rendered = draw_objects(image, &objects, task == Task::Pose);
            codec::write_png(out_dir, name, &rendered)?;
            let mut out = Output::new(task, summary(&objects), name.to_owned());
            (out.detections, out.keypoints) = objects
                .into_iter()
                .map(|o| (o.detection, o.keypoints))
                .unzip();
            Ok(out)
        }
        _ => Err(VisionError::Unsupported {
            task,
            model: Some(kind),
        }),
    }
}

fn summary(objects: &[Object]) -> String {
    if objects.is_empty() {
        return "nothing found".to_owned();
    }
    let list: Vec<String> = objects
        .iter()
        .map(|o| format!("{} {:.3}", o.detection.label, o.detection.score))
        .collect();
    let n = objects.len();
    format!(
        "{n} detection{}: {}",
        if n == 1 { "" } else { "s" },
        list.join(", ")
    )
}

/// The model's single image input.
pub fn input_spec(engine: &dyn Engine) -> Result<InputSpec, VisionError> {
    match engine.input_shapes().as_slice() {
        [shape] => InputSpec::from_shape(shape).ok_or_else(|| {
            VisionError::ModelInput(format!(
                "{shape:?} is not a [1, H, W, 3] or [1, 3, H, W] image"
            ))
        }),
        shapes => Err(VisionError::ModelInput(format!(
            "{} inputs, expected one image",
            shapes.len()
        ))),
    }
}

/// Preprocesses `image`, runs the engine, and checks that every output's data matches its
/// shape. Returns the outputs and where the image landed in the input.
pub fn infer(
    engine: &dyn Engine,
    image: &RgbImage,
    pre: &Preprocess,
) -> Result<(Vec<Tensor>, Placement), VisionError> {
    let (input, place) = to_tensor(image, pre);
    let outputs = engine.run(&[input.view()]).map_err(VisionError::Engine)?;
    for (i, t) in outputs.iter().enumerate() {
        let n = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if n != Some(t.data.len()) {
            return Err(VisionError::ModelOutput(format!(
                "output {i} of shape {:?} has {} values",
                t.shape,
                t.data.len()
            )));
        }
    }
    Ok((outputs, place))
}

/// Runs an SSD detector and returns its merged boxes (fractions of the model input) and where
/// the image landed in the input.
pub fn detect_boxes(
    engine: &dyn Engine,
    image: &RgbImage,
    anchors: &AnchorOptions,
    opts: &SsdOptions,
) -> Result<(Vec<SsdBox>, Placement), VisionError> {
    let spec = input_spec(engine)?;
    let (outputs, place) = infer(engine, image, &Preprocess::letterbox(spec, DETECTOR_RANGE))?;
    let anchors = generate(anchors);
    let shapes: Vec<Vec<usize>> = outputs.iter().map(|t| t.shape.clone()).collect();
    let (reg, score) = ssd_outputs(&shapes, anchors.len(), opts.num_coords).ok_or_else(|| {
        VisionError::ModelOutput(format!(
            "expected [1, {n}, {}] and [1, {n}, 1], got {shapes:?}",
            opts.num_coords,
            n = anchors.len()
        ))
    })?;
    let (Some(reg), Some(score)) = (outputs.get(reg), outputs.get(score)) else {
        return Err(VisionError::ModelOutput("missing outputs".to_owned()));
    };
    let boxes = decode(&reg.data, &score.data, &anchors, opts)?;
    Ok((
        weighted_nms(boxes, opts.iou_threshold, opts.max_detections),
        place,
    ))
}

fn clip_detection(label: &str, score: f32, corners: [f32; 4], image: &RgbImage) -> Detection {
    let (w, h) = (image.width() as f32, image.height() as f32);
    Detection {
        label: label.to_owned(),
        score,
        x0: corners[0].clamp(0.0, w),
        y0: corners[1].clamp(0.0, h),
        x1: corners[2].clamp(0.0, w),
        y1: corners[3].clamp(0.0, h),
    }
}

fn to_points(place: &Placement, keypoints: &[(f32, f32)]) -> Vec<Point> {
    keypoints
        .iter()
        .map(|&(x, y)| {
            let (x, y) = place.to_image(x, y);
            Point { x, y }
        })
        .collect()
}

/// Faces found by a [`ModelKind::FaceDetector`], best first, with their 6 keypoints.
pub fn detect_faces(engine: &dyn Engine, image: &RgbImage) -> Result<Vec<Object>, VisionError> {
    let (boxes, place) = detect_boxes(
        engine,
        image,
        &AnchorOptions::face_short_range(),
        &SsdOptions::face_short_range(),
    )?;
    Ok(objects("face", &boxes, &place, image))
}

/// People found by a [`ModelKind::PoseDetector`], best first, with their 4 alignment
/// keypoints. The box is the detector's own (MediaPipe's pose detection box, over the head and
/// shoulders), labelled `person`; the body's extent is in the keypoints: the full body lies in
/// the circle around the hip centre through the full-body point (keypoints may lie outside
/// the image).
pub fn detect_people(engine: &dyn Engine, image: &RgbImage) -> Result<Vec<Object>, VisionError> {
    let (boxes, place) = detect_boxes(
        engine,
        image,
        &AnchorOptions::pose_detection(),
        &SsdOptions::pose_detection(),
    )?;
    Ok(objects("person", &boxes, &place, image))
}

fn objects(label: &str, boxes: &[SsdBox], place: &Placement, image: &RgbImage) -> Vec<Object> {
    boxes
        .iter()
        .map(|b| {
            let (x0, y0) = place.to_image(b.xmin, b.ymin);
            let (x1, y1) = place.to_image(b.xmax, b.ymax);
            Object {
                detection: clip_detection(label, b.score, [x0, y0, x1, y1], image),
                keypoints: to_points(place, &b.keypoints),
            }
        })
        .collect()
}

/// Runs a [`ModelKind::Segmenter`] on `image` (stretched to the input) and returns its mask
/// and where the image landed in the input.
pub fn segment(engine: &dyn Engine, image: &RgbImage) -> Result<(Mask, Placement), VisionError> {
    let spec = input_spec(engine)?;
    let (outputs, place) = infer(engine, image, &Preprocess::stretch(spec, SEGMENTER_RANGE))?;
    let [output] = outputs.as_slice() else {
        return Err(VisionError::ModelOutput(format!(
            "{} outputs, expected one mask",
            outputs.len()
        )));
    };
    Ok((Mask::from_output(output.view())?, place))
}

/// Runs a [`ModelKind::Classifier`] on `image` (stretched to the input, bicubic) and returns
/// its `k` best classes, best first.
pub fn classify(
    engine: &dyn Engine,
    image: &RgbImage,
    labels: Option<&[String]>,
    k: usize,
) -> Result<Vec<Class>, VisionError> {
    let spec = input_spec(engine)?;
    let pre = Preprocess::stretch(spec, CLASSIFIER_RANGE).with_filter(Filter::Bicubic);
    let (outputs, _) = infer(engine, image, &pre)?;
    let scores = match outputs.as_slice() {
        [output] if class_count(&output.shape).is_some() => &output.data,
        _ => {
            return Err(VisionError::ModelOutput(format!(
                "expected one [1, N] output, got {:?}",
                outputs.iter().map(|t| &t.shape).collect::<Vec<_>>()
            )));
        }
    };
    Ok(top_k(&probabilities(scores)?, labels, k))
}

const BOX_COLORS: [Rgb; 4] = [[0, 230, 64], [255, 170, 0], [0, 160, 255], [230, 40, 200]];
const KEYPOINT_COLOR: Rgb = [255, 40, 40];

/// Draws the objects over a copy of `image`: boxes, keypoints, and for people (`skeleton`) the
/// hip-to-shoulder line and the full-body circle.
pub fn draw_objects(image: &RgbImage, objects: &[Object], skeleton: bool) -> RgbImage {
    let mut out = image.clone();
    let thickness = (image.width().min(image.height()) / 200).max(2);
    let radius = thickness as f32 * 1.5;
    for (i, o) in objects.iter().enumerate() {
        let d = &o.detection;
        let color = BOX_COLORS
            .get(i % BOX_COLORS.len())
            .copied()
            .unwrap_or([0, 255, 0]);
        out.draw_box(d.x0, d.y0, d.x1, d.y1, thickness, color);
        if skeleton && let [hip, body, shoulder, ..] = o.keypoints.as_slice() {
            out.draw_line(hip.x, hip.y, shoulder.x, shoulder.y, thickness, color);
            let r = (body.x - hip.x).hypot(body.y - hip.y);
            out.draw_circle(hip.x, hip.y, r, thickness, color);
        }
        for p in &o.keypoints {
            out.fill_disc(p.x, p.y, radius, KEYPOINT_COLOR);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RecordedEngine;

    fn gray(w: u32, h: u32) -> RgbImage {
        RgbImage::from_raw(w, h, vec![128; (w * h * 3) as usize]).unwrap()
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        codec::encode_png(&gray(w, h)).unwrap()
    }

    fn face_engine(boxes: Vec<(usize, [f32; 4], f32)>) -> RecordedEngine {
        let mut reg = vec![0.0f32; 896 * 16];
        let mut scores = vec![-20.0f32; 896];
        for (i, b, s) in boxes {
            reg[i * 16..i * 16 + 4].copy_from_slice(&b);
            scores[i] = s;
        }
        RecordedEngine::new(
            vec![vec![1, 128, 128, 3]],
            vec![
                Tensor {
                    shape: vec![1, 896, 16],
                    data: reg,
                },
                Tensor {
                    shape: vec![1, 896, 1],
                    data: scores,
                },
            ],
        )
    }

    #[test]
    fn face_boxes_map_back_through_the_letterbox() {
        // Anchor 0 centre (4, 4) in model pixels; the box moves it to (64, 64), 32 x 16 big.
        let engine = face_engine(vec![(0, [60.0, 60.0, 32.0, 16.0], 4.0)]);
        let dir = tempfile::tempdir().unwrap();
        // 256 x 512 (portrait): scale 0.25, 32 model pixels of padding left and right.
        let out = run(Task::Detect, &engine, None, &png(256, 512), dir.path()).unwrap();
        assert_eq!(out.detections.len(), 1);
        let d = &out.detections[0];
        assert_eq!(d.label, "face");
        // Centre (64, 64) model → ((64 - 32) * 4, 64 * 4) = (128, 256); 128 x 64 pixels.
        assert!(
            (d.x0 - 64.0).abs() < 1e-3 && (d.x1 - 192.0).abs() < 1e-3,
            "{d:?}"
        );
        assert!(
            (d.y0 - 224.0).abs() < 1e-3 && (d.y1 - 288.0).abs() < 1e-3,
            "{d:?}"
        );
        assert_eq!(out.keypoints[0].len(), 6);
        // Keypoints left at the anchor centre: model (4, 4) → image (-112, 16).
        assert!((out.keypoints[0][0].x + 112.0).abs() < 1e-3);
        assert_eq!(out.image_name, "detection.png");
        assert!(
            out.text.starts_with("1 detection: face 0.98"),
            "{}",
            out.text
        );
        let written = codec::decode(&std::fs::read(dir.path().join("detection.png")).unwrap());
        assert_eq!(written.unwrap().width(), 256);
        // The letterboxed input: padding columns are black (-1), content gray.
        let input = &engine.last_inputs()[0];
        assert_eq!(input.shape, vec![1, 128, 128, 3]);
        assert_eq!(input.data[0], -1.0);
        assert!((input.data[64 * 3] - (128.0 / 127.5 - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn overlapping_faces_merge_and_distant_ones_stay() {
        let engine = face_engine(vec![
            (0, [60.0, 60.0, 32.0, 32.0], 4.0),
            (1, [62.0, 60.0, 32.0, 32.0], 2.0),
            (2, [20.0, 100.0, 16.0, 16.0], 1.0),
            (3, [0.0, 0.0, 16.0, 16.0], -1.0),
        ]);
        let objects = detect_faces(&engine, &gray(128, 128)).unwrap();
        assert_eq!(objects.len(), 2);
        assert!(objects[0].detection.score > objects[1].detection.score);
        // Anchor 0 and 1 share a centre: merged centre 4 + (60 * s0 + 62 * s1) / (s0 + s1).
        let (s0, s1) = (1.0 / (1.0 + (-4.0f32).exp()), 1.0 / (1.0 + (-2.0f32).exp()));
        let cx = 4.0 + (60.0 * s0 + 62.0 * s1) / (s0 + s1);
        let (x, _) = objects[0].detection.center();
        assert!((x - cx).abs() < 1e-3, "{x} vs {cx}");
    }

    #[test]
    fn unsupported_tasks_and_bad_inputs() {
        let engine = face_engine(vec![]);
        let dir = tempfile::tempdir().unwrap();
        for task in [Task::Classify, Task::Segment, Task::Pose, Task::Depth] {
            let err = run(task, &engine, None, b"not an image", dir.path()).unwrap_err();
            assert!(err.is_unsupported(), "{task}: {err}");
        }
        let err = run(Task::Detect, &engine, None, b"not an image", dir.path()).unwrap_err();
        assert!(err.is_bad_image());
        let out = run(Task::Detect, &engine, None, &png(10, 10), dir.path()).unwrap();
        assert!(out.detections.is_empty());
        assert_eq!(out.text, "nothing found");
        // An engine that returns outputs that disagree with their shapes.
        let liar = RecordedEngine::new(
            vec![vec![1, 128, 128, 3]],
            vec![
                Tensor {
                    shape: vec![1, 896, 16],
                    data: vec![0.0; 10],
                },
                Tensor {
                    shape: vec![1, 896, 1],
                    data: vec![0.0; 896],
                },
            ],
        );
        assert!(matches!(
            detect_faces(&liar, &gray(8, 8)),
            Err(VisionError::ModelOutput(_))
        ));
        // A missing output directory is a write error.
        let err = run(
            Task::Detect,
            &engine,
            None,
            &png(10, 10),
            &dir.path().join("nope"),
        )
        .unwrap_err();
        assert!(matches!(err, VisionError::Write { .. }));
    }

    #[test]
    fn classify_and_segment_end_to_end() {
        let engine = RecordedEngine::new(
            vec![vec![1, 32, 32, 3]],
            vec![Tensor {
                shape: vec![1, 3],
                data: vec![1.0, 3.0, 2.0],
            }],
        );
        let labels: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let dir = tempfile::tempdir().unwrap();
        let out = run(
            Task::Classify,
            &engine,
            Some(&labels),
            &png(40, 20),
            dir.path(),
        )
        .unwrap();
        assert_eq!(out.text, "66.52% b");
        assert_eq!(out.image_name, out.text);
        assert_eq!(out.classes.len(), 3);
        assert_eq!(out.classes[1].label, "c");

        let mut mask = vec![0.0f32; 16 * 16];
        for y in 0..16 {
            for x in 0..8 {
                mask[y * 16 + x] = 1.0;
            }
        }
        let engine = RecordedEngine::new(
            vec![vec![1, 16, 16, 3]],
            vec![Tensor {
                shape: vec![1, 16, 16, 1],
                data: mask,
            }],
        );
        let out = run(Task::Segment, &engine, None, &png(64, 32), dir.path()).unwrap();
        assert_eq!(out.coverage, Some(0.5));
        assert_eq!(out.text, "person covers 50.00% of the image");
        assert_eq!(out.image_name, "segmentation.png");
        assert!(dir.path().join("segmentation.png").exists());
        assert!((engine.last_inputs()[0].data[0] - 128.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn people_keep_the_detector_box_and_keypoints() {
        let mut reg = vec![0.0f32; 2254 * 12];
        let mut scores = vec![-20.0f32; 2254];
        // Anchor 2253: centre (6.5/7, 6.5/7) of 224 = (208, 208). Box 20 x 20 at (108, 108).
        let i = 2253;
        reg[i * 12..i * 12 + 4].copy_from_slice(&[-100.0, -100.0, 20.0, 20.0]);
        for k in 0..4 {
            reg[i * 12 + 4 + 2 * k] = -100.0;
            reg[i * 12 + 5 + 2 * k] = -100.0;
        }
        // The full-body point 300 px above the hip: off the image.
        reg[i * 12 + 7] = -400.0;
        scores[i] = 5.0;
        let engine = RecordedEngine::new(
            vec![vec![1, 224, 224, 3]],
            vec![
                Tensor {
                    shape: vec![1, 2254, 12],
                    data: reg,
                },
                Tensor {
                    shape: vec![1, 2254, 1],
                    data: scores,
                },
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let out = run(Task::Pose, &engine, None, &png(224, 224), dir.path()).unwrap();
        assert_eq!(out.detections.len(), 1);
        let d = &out.detections[0];
        assert_eq!(d.label, "person");
        assert!(
            (d.x0 - 98.0).abs() < 1e-3 && (d.y1 - 118.0).abs() < 1e-3,
            "{d:?}"
        );
        assert!((out.keypoints[0][0].x - 108.0).abs() < 1e-3);
        assert!((out.keypoints[0][1].y + 192.0).abs() < 1e-3);
        assert_eq!(out.image_name, "pose.png");
        assert!(
            out.text.starts_with("1 detection: person 0.993"),
            "{}",
            out.text
        );
        let det = run(Task::Detect, &engine, None, &png(224, 224), dir.path()).unwrap();
        assert_eq!(det.detections, out.detections);
    }
}
