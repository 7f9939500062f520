//! Every TFLite fixture model, run through the plugin on its reference input, matches the
//! outputs of the reference runtime (`ai_edge_litert.interpreter.Interpreter`, recorded in
//! `fixtures/reference/`) within 1e-4, with one compilation for several runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::borrow::Cow;

use common::{Fx, f32s, fixture, litert, max_abs_diff};
use serde_json::Value;
use vaccel_core::{Resource, ResourceType, TfLiteDataType, TfLiteTensor};

const TOLERANCE: f32 = 1e-4;
const RUNS: usize = 3;

fn manifest() -> Value {
    let path = fixture("reference/manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn shape(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect()
}

#[test]
fn every_tflite_fixture_matches_the_reference_runtime() {
    if !litert("every_tflite_fixture_matches_the_reference_runtime") {
        return;
    }
    let manifest = manifest();
    let entries: Vec<&Value> = manifest["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["format"] == "tflite")
        .collect();
    assert!(entries.len() >= 4, "expected the four TFLite fixtures");
    let mut report = Vec::new();
    for entry in entries {
        let file = entry["file"].as_str().unwrap();
        let input = &entry["input"];
        assert_eq!(input["dtype"], "float32", "{file}");
        let in_bytes = std::fs::read(fixture(input["file"].as_str().unwrap())).unwrap();
        let in_tensor = TfLiteTensor::new(
            shape(&input["shape"]),
            TfLiteDataType::Float32,
            Cow::Borrowed(&in_bytes[..]),
        )
        .unwrap();
        let outputs = entry["outputs"].as_array().unwrap();
        let expected: Vec<Vec<f32>> = outputs
            .iter()
            .map(|o| f32s(&std::fs::read(fixture(o["file"].as_str().unwrap())).unwrap()))
            .collect();

        // The reference ran on one thread; the plugin's usual setting is every core.
        for threads in [1, 2] {
            let fx = Fx::with_threads(threads);
            let sess = fx.session();
            let model = Resource::new(&fx.rt, fixture(file).to_str().unwrap(), ResourceType::Model)
                .unwrap();
            sess.register(&model).unwrap();
            sess.tflite_model_load(&model).unwrap();
            let mut worst = vec![0.0f32; outputs.len()];
            for _ in 0..RUNS {
                let out = sess
                    .tflite_model_run(&model, &[in_tensor.borrowed()], outputs.len())
                    .unwrap();
                assert_eq!(out.status, 0);
                for (i, (got, meta)) in out.outputs.iter().zip(outputs).enumerate() {
                    assert_eq!(got.dims, shape(&meta["shape"]), "{file} out{i}");
                    assert_eq!(meta["dtype"], "float32", "{file} out{i}");
                    assert_eq!(got.data_type, TfLiteDataType::Float32, "{file} out{i}");
                    let diff = max_abs_diff(&f32s(&got.data), &expected[i]);
                    assert!(
                        diff <= TOLERANCE,
                        "{file} out{i} ({}), {threads} threads: max abs diff {diff}",
                        meta["name"]
                    );
                    worst[i] = worst[i].max(diff);
                }
            }
            assert_eq!(
                fx.plugin.compilations(),
                1,
                "{file}: one compilation for {RUNS} runs"
            );
            sess.tflite_model_unload(&model).unwrap();
            report.push(format!(
                "{file} ({threads} threads): max abs diff per output {worst:?}"
            ));
        }
    }
    for line in report {
        eprintln!("{line}");
    }
}
