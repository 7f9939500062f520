//! `classify`, `detect`, `segment`, `pose`, `depth` and their `_generic` versions with the noop
//! plugin: the stdout lines of upstream's examples, every iteration.

// Test code: a panic is a failed test. (clippy's allow-*-in-tests settings cover only
// `#[test]` functions, not the helpers of an integration test crate.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{EINVAL, ENOENT, NOOP_PLUGINS, SESSION_LINE, data, repeated, run};

const IMGNAME: &str = "This is a dummy imgname!";

/// The lines one iteration of `program` prints with the noop plugin.
fn iteration_lines(program: &str) -> Vec<String> {
    let op = program.trim_end_matches("_generic");
    let label = match op {
        "classify" => {
            return vec![
                "classification tags: This is a dummy classification tag!".to_owned(),
                format!("classification imagename: {IMGNAME}"),
            ];
        }
        "detect" => "detection",
        "segment" => "segmentation",
        "pose" => "pose estimation",
        "depth" => "depth estimation",
        other => panic!("not an image program: {other}"),
    };
    vec![format!("{label} imagename: {IMGNAME}")]
}

/// Two iterations print the session line, then the iteration's lines twice; with a model the
/// output is the same (the noop plugin only logs the model's path).
fn check(program: &str) {
    let image = data("example.jpg");
    let model = data("imagenet.txt");
    let lines = iteration_lines(program);
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    for plugins in NOOP_PLUGINS {
        let env = [("VACCEL_PLUGINS", plugins)];
        run(program, &[image.as_str(), "2"], &env).assert_stdout(&repeated(
            &[SESSION_LINE],
            &lines,
            2,
        ));
        run(program, &[image.as_str()], &env).assert_stdout(&repeated(&[SESSION_LINE], &lines, 1));
        run(program, &[image.as_str(), "1", model.as_str()], &env).assert_stdout(&repeated(
            &[SESSION_LINE],
            &lines,
            1,
        ));
    }
}

#[test]
fn classify_prints_tags_and_imagename() {
    check("classify");
}

#[test]
fn classify_generic_prints_tags_and_imagename() {
    check("classify_generic");
}

#[test]
fn detect_prints_imagename() {
    check("detect");
}

#[test]
fn detect_generic_prints_imagename() {
    check("detect_generic");
}

#[test]
fn segment_prints_imagename() {
    check("segment");
}

#[test]
fn segment_generic_prints_imagename() {
    check("segment_generic");
}

#[test]
fn pose_prints_imagename() {
    check("pose");
}

#[test]
fn pose_generic_prints_imagename() {
    check("pose_generic");
}

#[test]
fn depth_prints_imagename() {
    check("depth");
}

#[test]
fn depth_generic_prints_imagename() {
    check("depth_generic");
}

#[test]
fn zero_iterations_run_nothing() {
    run(
        "classify",
        &[data("example.jpg").as_str(), "0"],
        &[("VACCEL_PLUGINS", "noop")],
    )
    .assert_stdout(&[SESSION_LINE]);
}

#[test]
fn debug_log_shows_core_lines_around_the_example_lines() {
    for program in ["classify", "detect_generic"] {
        let out = run(
            program,
            &[data("example.jpg").as_str(), "2"],
            &[("VACCEL_PLUGINS", "noop"), ("VACCEL_LOG_LEVEL", "4")],
        );
        out.assert_success();
        let op = if program == "classify" {
            "image_classify"
        } else {
            "image_detect"
        };
        let lookup =
            format!("\x1b[34m<debug>\x1b[0m session:1 Looking for func implementing op {op}");
        let debug_lines = out
            .lines()
            .into_iter()
            .filter(|l| l.ends_with(&lookup))
            .count();
        assert_eq!(
            debug_lines, 2,
            "one dispatch line per iteration expected\n{out}"
        );
        assert!(
            out.lines()
                .iter()
                .any(|l| l.ends_with("Initializing vAccel")),
            "missing the runtime's start line\n{out}"
        );
        let lines = iteration_lines(program);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(
            out.program_lines(),
            repeated(&[SESSION_LINE], &lines, 2),
            "the example lines must be unchanged between the log lines\n{out}"
        );
    }
}

#[test]
fn missing_image_fails_with_enoent() {
    for program in ["classify", "pose_generic"] {
        run(
            program,
            &["/nonexistent/image.jpg"],
            &[("VACCEL_PLUGINS", "noop")],
        )
        .assert_code(ENOENT)
        .assert_stderr_contains("/nonexistent/image.jpg");
    }
}

#[test]
fn empty_image_is_an_op_failure() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    for program in ["classify", "classify_generic", "depth"] {
        run(program, &[&empty], &[("VACCEL_PLUGINS", "noop")])
            .assert_code(EINVAL)
            .assert_stderr_contains("Could not run op: 22 (");
    }
}

#[test]
fn missing_model_fails() {
    let out = run(
        "segment",
        &[data("example.jpg").as_str(), "1", "/nonexistent/model.pt"],
        &[("VACCEL_PLUGINS", "noop")],
    );
    out.assert_stderr_contains("Could not create model resource")
        .assert_no_panic();
    assert!(!out.status.success(), "must fail\n{out}");
}

#[test]
fn bad_command_lines_print_usage() {
    let usage = "Usage: classify <image_file> [iterations] [model_path]";
    let image = data("example.jpg");
    let cases: [&[&str]; 3] = [&[], &[&image, "many"], &[&image, "1", "model", "extra"]];
    for args in cases {
        run("classify", args, &[("VACCEL_PLUGINS", "noop")])
            .assert_code(EINVAL)
            .assert_stderr_contains(usage);
    }
}

#[test]
fn model_path_is_registered_and_reaches_the_plugin() {
    let model = data("imagenet.txt");
    for program in ["classify", "depth_generic"] {
        let out = run(
            program,
            &[data("example.jpg").as_str(), "1", model.as_str()],
            &[("VACCEL_PLUGINS", "noop"), ("VACCEL_LOG_LEVEL", "4")],
        );
        out.assert_success();
        for expected in [
            "session:1 Registered resource 1".to_owned(),
            format!("[noop] model: {model}"),
        ] {
            assert!(
                out.lines().iter().any(|l| l.ends_with(&expected)),
                "missing log line {expected:?}\n{out}"
            );
        }
    }
}
