//! `tf_inference`, `tflite_inference` and `torch_inference` with the noop plugin, whose output
//! tensor is a copy of the input: so the prediction is the label at the largest of the first
//! 1000 input values, which the test computes with the programs' own preprocessing.

// Test code: a panic is a failed test. (clippy's allow-*-in-tests settings cover only
// `#[test]` functions, not the helpers of an integration test crate.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{EINVAL, ENOENT, NOOP_PLUGINS, data, data_dir, run};
use vaccel_examples::inference::{Layout, SIDE, floats, prediction, preprocess};

const NOOP_STATUS: &str = "code:0 message:Operation handled by noop plugin";

/// The `Prediction:` line for the example image in `layout`.
fn prediction_line(layout: Layout) -> String {
    let image = std::fs::read(data("example.jpg")).unwrap();
    let labels: Vec<String> = std::fs::read_to_string(data("imagenet.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let input = preprocess(&image, layout).unwrap();
    assert_eq!(input.len(), SIDE * SIDE * 3);
    format!("Prediction: {}", prediction(&labels, &input).unwrap())
}

/// The programs' lines for `iterations` runs; `prediction` is `None` for an undecodable image.
fn expected(program: &str, iterations: usize, prediction: Option<&str>) -> Vec<String> {
    let header = [
        "Initialized model resource 1".to_owned(),
        "Initialized vAccel session 1".to_owned(),
    ];
    let (first, per_iteration, last): (Vec<String>, Vec<String>, Vec<String>) = match program {
        "tf_inference" => (
            vec![format!("Session load status => {NOOP_STATUS}")],
            vec![
                format!("Session run status => {NOOP_STATUS}"),
                "Success!".into(),
                "Output tensor => type:1 nr_dims:4 size:602112B".into(),
            ],
            vec![format!("Session delete status => {NOOP_STATUS}")],
        ),
        "tflite_inference" => (
            vec![],
            vec![
                "Session run status: 0".into(),
                "Success!".into(),
                "Output tensor => type:1 nr_dims:4 size:602112B".into(),
            ],
            vec![],
        ),
        "torch_inference" => (
            vec![],
            vec![
                "Success!".into(),
                "Result Tensor :".into(),
                "Output tensor => type:7 nr_dims:4 size:602112B".into(),
            ],
            vec![],
        ),
        other => panic!("not an inference program: {other}"),
    };
    let mut per_iteration = per_iteration;
    per_iteration.extend(prediction.map(str::to_owned));
    let mut lines = [header.to_vec(), first].concat();
    for _ in 0..iterations {
        lines.extend(per_iteration.iter().cloned());
    }
    lines.extend(last);
    lines
}

fn check(program: &str, layout: Layout, model: &str) {
    let prediction = prediction_line(layout);
    let image = data("example.jpg");
    let labels = data("imagenet.txt");
    for plugins in NOOP_PLUGINS {
        for (iterations, args) in [
            (1, vec![image.as_str(), model, labels.as_str()]),
            (2, vec![image.as_str(), model, labels.as_str(), "2"]),
        ] {
            let lines = expected(program, iterations, Some(&prediction));
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let out = run(program, &args, &[("VACCEL_PLUGINS", plugins)]);
            out.assert_stdout(&lines);
            assert_eq!(out.stderr, "", "nothing on stderr expected\n{out}");
        }
    }
}

#[test]
fn tf_inference_prints_statuses_output_and_prediction() {
    // A SavedModel is a directory; the noop plugin does not read it.
    check("tf_inference", Layout::Hwc, &data_dir());
}

#[test]
fn tflite_inference_prints_status_output_and_prediction() {
    check("tflite_inference", Layout::Hwc, &data("imagenet.txt"));
}

#[test]
fn torch_inference_prints_output_and_prediction() {
    check("torch_inference", Layout::Chw, &data("imagenet.txt"));
}

#[test]
fn layouts_hold_the_same_values() {
    let image = std::fs::read(data("example.jpg")).unwrap();
    let hwc = preprocess(&image, Layout::Hwc).unwrap();
    let chw = preprocess(&image, Layout::Chw).unwrap();
    for (y, x, c) in [(0, 0, 0), (100, 37, 1), (223, 223, 2)] {
        assert_eq!(hwc[(y * SIDE + x) * 3 + c], chw[(c * SIDE + y) * SIDE + x]);
    }
    // The example is a colour photograph: normalised values spread around 0.
    assert!(hwc.iter().any(|&v| v < 0.0) && hwc.iter().any(|&v| v > 0.0));
    assert_eq!(
        floats(&hwc.iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<_>>()),
        hwc
    );
}

#[test]
fn undecodable_image_warns_and_predicts_nothing() {
    let labels = data("imagenet.txt");
    let not_an_image = data("input_2048.csv");
    for (program, model) in [
        ("tf_inference", data_dir()),
        ("tflite_inference", labels.clone()),
        ("torch_inference", labels.clone()),
    ] {
        let lines = expected(program, 1, None);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        run(
            program,
            &[not_an_image.as_str(), model.as_str(), labels.as_str()],
            &[("VACCEL_PLUGINS", "noop")],
        )
        .assert_stdout(&lines)
        .assert_stderr_contains("Warning: could not decode image; will generate random input");
    }
}

#[test]
fn missing_files_fail() {
    let image = data("example.jpg");
    let labels = data("imagenet.txt");
    for program in ["tf_inference", "tflite_inference", "torch_inference"] {
        let env = [("VACCEL_PLUGINS", "noop")];
        run(
            program,
            &["/nonexistent.jpg", labels.as_str(), labels.as_str()],
            &env,
        )
        .assert_code(ENOENT);
        run(
            program,
            &[image.as_str(), labels.as_str(), "/nonexistent.txt"],
            &env,
        )
        .assert_code(ENOENT);
        let out = run(
            program,
            &[image.as_str(), "/nonexistent/model", labels.as_str()],
            &env,
        );
        out.assert_no_panic()
            .assert_stderr_contains("Could not create model resource");
        assert!(!out.status.success(), "must fail\n{out}");
    }
}

#[test]
fn bad_command_lines_print_usage() {
    let image = data("example.jpg");
    for program in ["tf_inference", "tflite_inference", "torch_inference"] {
        let usage =
            format!("Usage: {program} <image_file> <model_path> <labels_file> [iterations]");
        let cases: [&[&str]; 3] = [&[], &[&image, &image], &[&image, &image, &image, "1", "2"]];
        for args in cases {
            run(program, args, &[("VACCEL_PLUGINS", "noop")])
                .assert_code(EINVAL)
                .assert_stderr_contains(&usage);
        }
    }
}
