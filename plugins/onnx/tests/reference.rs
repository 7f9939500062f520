//! Each fixture ONNX model, run by [`TractEngine`] on its reference input, matches both what
//! onnxruntime computed for it (`fixtures/reference/<model>.onnx.out<N>.bin`) and the exact
//! result: the model evaluated in float64 by onnx's reference evaluator
//! (`<model>.onnx.exact<N>.bin`, written by `scripts/fixtures/exact_onnx.py`).
//!
//! Both float32 runtimes are within [`EXACT_TOLERANCE`] of the exact result. They sum
//! convolutions in different orders, so their rounding errors differ, and where they go in
//! opposite directions on a large value the two land further apart than either is from the
//! exact value: on the face detector's logit -58.2 tract and onnxruntime differ by 1.2e-4.
//! Hence the relative [`TOLERANCE`] between them, and the absolute one against the exact
//! result.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use vaccel_plugin_onnx::TractEngine;
use vaccel_vision::{Engine, TensorView};

/// Largest difference allowed between tract and onnxruntime: absolute for values up to 1 in
/// magnitude, relative above (the logit -58.2 differs by 1.2e-4, 2e-6 relative, ~30 ulp).
const TOLERANCE: f32 = 1e-4;

/// Largest absolute difference allowed between a float32 runtime and the exact result.
/// onnxruntime stays within it as well (checked below), so the bound is one a correct
/// float32 implementation meets, not one fitted to tract.
const EXACT_TOLERANCE: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn read_bytes(path: &Path, width: usize) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len() % width, 0, "{}", path.display());
    bytes
}

fn read_f32(path: &Path) -> Vec<f32> {
    read_bytes(path, 4)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn read_f64(path: &Path) -> Vec<f64> {
    read_bytes(path, 8)
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Asserts that every value of `got` is within `EXACT_TOLERANCE` of `exact` and returns the
/// largest difference.
fn max_error_vs_exact(what: &str, got: &[f32], exact: &[f64]) -> f64 {
    assert_eq!(got.len(), exact.len(), "{what}: length");
    let mut worst = 0f64;
    for (i, (&got, &want)) in got.iter().zip(exact).enumerate() {
        let diff = (f64::from(got) - want).abs();
        assert!(
            diff <= EXACT_TOLERANCE,
            "{what}[{i}]: {got} exact {want} (diff {diff:e} > {EXACT_TOLERANCE:e})"
        );
        worst = worst.max(diff);
    }
    worst
}

/// Runs `model` on its reference input and checks every output against onnxruntime and the
/// exact result, printing the largest differences.
fn compare(model: &str, input_shape: &[usize], output_shapes: &[&[usize]]) {
    let root = fixtures();
    let reference = root.join("reference");
    let bytes = std::fs::read(root.join("models").join(format!("{model}.onnx"))).unwrap();
    let engine = TractEngine::from_bytes(&bytes).unwrap();
    assert_eq!(engine.input_shapes(), vec![input_shape.to_vec()]);
    let input = read_f32(&reference.join(format!("{model}.input.bin")));
    let outputs = engine
        .run(&[TensorView {
            shape: input_shape,
            data: &input,
        }])
        .unwrap();
    assert_eq!(outputs.len(), output_shapes.len(), "{model}: output count");
    for (n, (out, shape)) in outputs.iter().zip(output_shapes).enumerate() {
        assert_eq!(&out.shape, shape, "{model}: output {n} shape");
        let onnxruntime = read_f32(&reference.join(format!("{model}.onnx.out{n}.bin")));
        assert_eq!(
            out.data.len(),
            onnxruntime.len(),
            "{model}: output {n} length"
        );
        let mut worst = 0f32;
        for (i, (&got, &want)) in out.data.iter().zip(&onnxruntime).enumerate() {
            let diff = (got - want).abs();
            let allowed = TOLERANCE * want.abs().max(1.0);
            assert!(
                diff <= allowed,
                "{model} output {n}[{i}]: tract {got} onnxruntime {want} (diff {diff:e} > {allowed:e})"
            );
            worst = worst.max(diff);
        }
        let exact = read_f64(&reference.join(format!("{model}.onnx.exact{n}.bin")));
        let tract_exact =
            max_error_vs_exact(&format!("{model} output {n} tract"), &out.data, &exact);
        let ort_exact = max_error_vs_exact(
            &format!("{model} output {n} onnxruntime"),
            &onnxruntime,
            &exact,
        );
        eprintln!(
            "{model} output {n}: max abs diff tract-onnxruntime {worst:.3e}, \
             tract-exact {tract_exact:.3e}, onnxruntime-exact {ort_exact:.3e}"
        );
    }
    onnxruntime_engine(model, &bytes, input_shape, &input);
}

/// The plugin's onnxruntime engine on the same input gives the stored onnxruntime outputs
/// (the same library: measured identical), so it too is within `EXACT_TOLERANCE` of the exact
/// result. Skipped when onnxruntime is not installed, unless `VACCEL_REQUIRE_BACKENDS` is set.
fn onnxruntime_engine(model: &str, bytes: &[u8], input_shape: &[usize], input: &[f32]) {
    let rt = match vaccel_plugin_onnx::onnxruntime::runtime() {
        Ok(rt) => rt,
        Err(why) => {
            assert!(
                std::env::var_os("VACCEL_REQUIRE_BACKENDS").is_none(),
                "{model}: onnxruntime is required (VACCEL_REQUIRE_BACKENDS) but missing: {why}"
            );
            eprintln!("{model}: onnxruntime engine not checked: {why}");
            return;
        }
    };
    let engine = vaccel_plugin_onnx::OrtEngine::from_bytes(rt, bytes, 1).unwrap();
    let outputs = engine
        .run(&[TensorView {
            shape: input_shape,
            data: input,
        }])
        .unwrap();
    let reference = fixtures().join("reference");
    for (n, out) in outputs.iter().enumerate() {
        let stored = read_f32(&reference.join(format!("{model}.onnx.out{n}.bin")));
        assert_eq!(out.data.len(), stored.len(), "{model}: output {n} length");
        let worst = out
            .data
            .iter()
            .zip(&stored)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= TOLERANCE, "{model} output {n}: {worst:e}");
        let exact = read_f64(&reference.join(format!("{model}.onnx.exact{n}.bin")));
        let ort_exact = max_error_vs_exact(
            &format!("{model} output {n} onnxruntime engine"),
            &out.data,
            &exact,
        );
        eprintln!(
            "{model} output {n}: onnxruntime engine vs stored onnxruntime {worst:.3e}, \
             vs exact {ort_exact:.3e}"
        );
    }
}

#[test]
fn face_detection_matches_onnxruntime_and_exact() {
    compare(
        "face_detection_short_range",
        &[1, 128, 128, 3],
        &[&[1, 896, 16], &[1, 896, 1]],
    );
}

#[test]
fn selfie_segmentation_matches_onnxruntime_and_exact() {
    compare(
        "selfie_segmentation",
        &[1, 256, 256, 3],
        &[&[1, 256, 256, 1]],
    );
}

/// The bundled ImageNet classifier (EfficientNet-Lite0, float16 weights) on upstream's
/// banana: tract matches onnxruntime's stored logits, and both stay within
/// [`TORCH_TOLERANCE`] of PyTorch's float32 checkpoint (`scripts/fixtures/efficientnet_lite0.py`).
#[test]
fn efficientnet_lite0_matches_onnxruntime_and_pytorch() {
    /// The float16 weights move the logits (up to ~15) by 0.017 at most from PyTorch's.
    const TORCH_TOLERANCE: f32 = 0.03;
    let root = fixtures();
    let reference = root.join("reference");
    let bytes =
        std::fs::read(root.join("models/efficientnet_lite0/efficientnet_lite0.onnx")).unwrap();
    let engine = TractEngine::from_bytes(&bytes).unwrap();
    let shape = [1, 3, 224, 224];
    assert_eq!(engine.input_shapes(), vec![shape.to_vec()]);
    let input = read_f32(&reference.join("efficientnet_lite0.input.bin"));
    let outputs = engine
        .run(&[TensorView {
            shape: &shape,
            data: &input,
        }])
        .unwrap();
    let [logits] = outputs.as_slice() else {
        panic!("{} outputs", outputs.len());
    };
    assert_eq!(logits.shape, vec![1, 1000]);
    let onnxruntime = read_f32(&reference.join("efficientnet_lite0.onnx.out0.bin"));
    let torch = read_f32(&reference.join("efficientnet_lite0.torch.out0.bin"));
    let max_diff = |a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    let vs_ort = max_diff(&logits.data, &onnxruntime);
    let vs_torch = max_diff(&logits.data, &torch);
    let ort_vs_torch = max_diff(&onnxruntime, &torch);
    eprintln!(
        "efficientnet_lite0: max abs diff tract-onnxruntime {vs_ort:.3e}, tract-torch \
         {vs_torch:.3e}, onnxruntime-torch {ort_vs_torch:.3e}"
    );
    assert!(vs_ort <= 1e-3, "tract vs onnxruntime {vs_ort:e}");
    assert!(vs_torch <= TORCH_TOLERANCE, "tract vs torch {vs_torch:e}");
    assert!(
        ort_vs_torch <= TORCH_TOLERANCE,
        "onnxruntime vs torch {ort_vs_torch:e}"
    );
    let top = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    // Index 954 is `banana` in examples/data/imagenet.txt.
    assert_eq!(top(&logits.data), Some(954));
    assert_eq!(top(&torch), Some(954));
}
