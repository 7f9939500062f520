//! Each fixture ONNX model, run by [`TractEngine`] on its reference input, matches what
//! onnxruntime computed for it (`fixtures/reference/<model>.onnx.out<N>.bin`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use vaccel_plugin_onnx::TractEngine;
use vaccel_vision::{Engine, TensorView};

/// Largest difference allowed from onnxruntime: absolute for values up to 1 in magnitude,
/// relative above. tract and onnxruntime sum convolutions in different orders, so large
/// values differ in their last bits: the face detector's logit -58.2 comes out 1.2e-4 apart
/// (2e-6 relative, ~30 ulp), every value of magnitude up to 1 within 1e-4.
const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len() % 4, 0, "{}", path.display());
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Runs `model` on its reference input and returns the largest difference per output.
fn compare(model: &str, input_shape: &[usize], output_shapes: &[&[usize]]) -> Vec<f32> {
    let root = fixtures();
    let bytes = std::fs::read(root.join("models").join(format!("{model}.onnx"))).unwrap();
    let engine = TractEngine::from_bytes(&bytes).unwrap();
    assert_eq!(engine.input_shapes(), vec![input_shape.to_vec()]);
    let input = read_f32(&root.join("reference").join(format!("{model}.input.bin")));
    let outputs = engine
        .run(&[TensorView {
            shape: input_shape,
            data: &input,
        }])
        .unwrap();
    assert_eq!(outputs.len(), output_shapes.len(), "{model}: output count");
    let mut diffs = Vec::new();
    for (n, (out, shape)) in outputs.iter().zip(output_shapes).enumerate() {
        assert_eq!(&out.shape, shape, "{model}: output {n} shape");
        let file = root
            .join("reference")
            .join(format!("{model}.onnx.out{n}.bin"));
        let expected = read_f32(&file);
        assert_eq!(out.data.len(), expected.len(), "{model}: output {n} length");
        let mut worst = 0f32;
        for (i, (&got, &want)) in out.data.iter().zip(&expected).enumerate() {
            let diff = (got - want).abs();
            let allowed = TOLERANCE * want.abs().max(1.0);
            assert!(
                diff <= allowed,
                "{model} output {n}[{i}]: tract {got} onnxruntime {want} (diff {diff:e} > {allowed:e})"
            );
            worst = worst.max(diff);
        }
        eprintln!("{model} output {n}: max abs diff {worst:e}");
        diffs.push(worst);
    }
    diffs
}

#[test]
fn face_detection_matches_onnxruntime() {
    compare(
        "face_detection_short_range",
        &[1, 128, 128, 3],
        &[&[1, 896, 16], &[1, 896, 1]],
    );
}

#[test]
fn selfie_segmentation_matches_onnxruntime() {
    compare(
        "selfie_segmentation",
        &[1, 256, 256, 3],
        &[&[1, 256, 256, 1]],
    );
}
