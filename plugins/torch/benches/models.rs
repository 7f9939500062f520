//! Latency of one TorchScript model run of the `torch` plugin (`torch_model_run` through a
//! runtime and session, as `tests/libtorch.rs` does), beside `forward` called directly through
//! `tch` and PyTorch's own Python API (`torch.jit.load`, then `forward` under
//! `torch.no_grad()`) on the same `.pt` file and input, measured in the same run.
//!
//! Models: the face detector (`fixtures/torch/face_detection_short_range.pt`, MediaPipe's
//! short-range detector, on `fixtures/reference/face_detection_short_range.input.bin`, NHWC
//! `[1,128,128,3]` f32; two outputs) and the small CNN (`tiny_cnn.pt` on `tiny_cnn_input.bin`
//! and `tiny_cnn_classes.bin`; three outputs). Each side is timed in [`ROUNDS`] rounds, the
//! sides taking turns, so that a disturbance from the rest of a shared machine falls on all of
//! them alike; a round loads the model, runs it [`WARMUP`] times untimed (TorchScript's
//! profiling executor optimises the graph during the first runs), then times runs for its
//! share of the budget (default 3 s per side, first argument in seconds). The table gives the
//! median and 90th percentile of each side's runs, all rounds pooled.
//!
//! **Threads.** The plugin sets no thread count: its runs use libtorch's process-wide
//! intra-op pool at libtorch's default size (`OMP_NUM_THREADS`, else one per physical core
//! the process may run on). Both sides here are set to one intra-op thread
//! (`tch::set_num_threads`, `torch.set_num_threads`), so the ratio compares the work per
//! call, not parallel scaling; `--threads N` picks another count (`0` keeps libtorch's
//! default on every side). The header says what each side ended up with.
//!
//! **Allocator.** With glibc's malloc defaults a process may give the activations' memory
//! back to the kernel after a run (trimming, or a fresh `mmap` per large buffer) and fault
//! it in again on the next, and whether it does depends on the process's history (glibc raises
//! its thresholds when large mapped blocks are freed, as importing PyTorch in Python does).
//! So every model is measured twice, each time with all processes under the same settings:
//! glibc's defaults (`GLIBC_TUNABLES` removed), and the fixed thresholds the agent binary sets
//! at start (`crates/vaccel-agent/src/malloc.rs`: mmap 8 MiB, trim 32 MiB; here through
//! `GLIBC_TUNABLES`), which is how the plugin runs when `vaccel-rpc-agent` serves it. To
//! control that, the Rust sides run in child processes (this binary again, `--measure`).
//!
//! The reference runs in `$VACCEL_PYTHON` (default `python3`): the PyTorch install the plugin
//! was built against (see README.md), so every side runs the same libtorch. Without it the
//! Python columns show `-` and a note says why.
//!
//! `cargo bench -p vaccel-plugin-torch --features libtorch --bench models [-- <seconds per
//! side> [--threads N]]`
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

use tch::{CModule, Device, IValue, Kind, Tensor};
use vaccel_core::{
    PluginType, Resource, ResourceType, Runtime, Session, TorchDataType, TorchTensor,
};
use vaccel_plugin_torch::TorchPlugin;

const WARMUP: usize = 50;
const MIN_RUNS: usize = 10;
const ROUNDS: u32 = 3;
/// The Python the reference runs in (the name the `tf` plugin uses for the same purpose).
const VACCEL_PYTHON: &str = "VACCEL_PYTHON";
/// The agent binary's allocator thresholds (`crates/vaccel-agent/src/malloc.rs`), spelled as
/// glibc tunables so that a process starts with them.
const AGENT_MALLOC: &str =
    "glibc.malloc.mmap_threshold=8388608:glibc.malloc.trim_threshold=33554432";

/// argv: threads (0: keep the default), seconds, warm-up, min runs, model path, then one
/// `file:dtype:d0,d1,...` per input. Prints `version`, `threads`, then `python` and every
/// run's time in nanoseconds.
const REFERENCE: &str = r#"
import sys, time
import numpy as np
import torch
threads, budget, warmup, min_runs = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if threads > 0:
    torch.set_num_threads(threads)
print("version", torch.__version__)
print("threads", torch.get_num_threads())
m = torch.jit.load(sys.argv[5])
inputs = []
for spec in sys.argv[6:]:
    path, dtype, dims = spec.rsplit(":", 2)
    a = np.fromfile(path, dtype={"float32": "<f4", "int64": "<i8"}[dtype])
    inputs.append(torch.from_numpy(a.reshape([int(d) for d in dims.split(",")])))
clock = time.perf_counter_ns
with torch.no_grad():
    for _ in range(warmup):
        m(*inputs)
    ts = []
    end = clock() + int(budget * 1e9)
    while len(ts) < min_runs or clock() < end:
        t = clock()
        m(*inputs)
        ts.append(clock() - t)
print("python", *ts)
"#;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// One input tensor: a little-endian file under `fixtures/`, its type and dims.
struct Input {
    file: &'static str,
    data_type: TorchDataType,
    dims: &'static [i64],
}

impl Input {
    fn path(&self) -> PathBuf {
        fixtures().join(self.file)
    }

    /// Element size, numpy's name for the type (what the reference reads) and tch's kind.
    fn element(&self) -> (usize, &'static str, Kind) {
        match self.data_type {
            TorchDataType::Float => (4, "float32", Kind::Float),
            TorchDataType::Long => (8, "int64", Kind::Int64),
            other => unreachable!("no fixture input of {other:?}"),
        }
    }

    /// The file's values in the host's byte order, as vAccel tensors carry them.
    fn bytes(&self) -> Vec<u8> {
        let mut bytes = std::fs::read(self.path()).unwrap();
        if cfg!(target_endian = "big") {
            let size = self.element().0;
            bytes.chunks_exact_mut(size).for_each(<[u8]>::reverse);
        }
        bytes
    }

    /// How the reference script takes it: `file:dtype:d0,d1,...`.
    fn spec(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(i64::to_string).collect();
        format!(
            "{}:{}:{}",
            self.path().display(),
            self.element().1,
            dims.join(",")
        )
    }
}

/// A model of `fixtures/torch/`, its inputs and how many outputs it returns.
struct Case {
    name: &'static str,
    file: &'static str,
    inputs: &'static [Input],
    outputs: usize,
}

impl Case {
    fn path(&self) -> PathBuf {
        fixtures().join("torch").join(self.file)
    }
}

const CASES: [Case; 2] = [
    Case {
        name: "face_detection_short_range",
        file: "face_detection_short_range.pt",
        inputs: &[Input {
            file: "reference/face_detection_short_range.input.bin",
            data_type: TorchDataType::Float,
            dims: &[1, 128, 128, 3],
        }],
        outputs: 2,
    },
    Case {
        name: "tiny_cnn",
        file: "tiny_cnn.pt",
        inputs: &[
            Input {
                file: "torch/tiny_cnn_input.bin",
                data_type: TorchDataType::Float,
                dims: &[2, 3, 16, 16],
            },
            Input {
                file: "torch/tiny_cnn_classes.bin",
                data_type: TorchDataType::Long,
                dims: &[2],
            },
        ],
        outputs: 3,
    },
];

/// Warms `run` up, then times it until `budget` is spent; each run's time in nanoseconds.
fn time(budget: Duration, mut run: impl FnMut()) -> Vec<u64> {
    for _ in 0..WARMUP {
        run();
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < MIN_RUNS || start.elapsed() < budget {
        let t = Instant::now();
        run();
        samples.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    samples
}

/// The plugin: `torch_model_run` through a runtime and session, inputs and outputs copied as
/// applications get them.
fn time_plugin(case: &Case, budget: Duration) -> Vec<u64> {
    let rt = Runtime::builder()
        .skip_logging()
        .rundir_base(std::env::temp_dir())
        .plugin(Arc::new(TorchPlugin::new()))
        .build()
        .unwrap();
    let sess = Session::new(&rt, PluginType::CPU.bits()).unwrap();
    let res = Resource::new(&rt, case.path().to_str().unwrap(), ResourceType::Model).unwrap();
    sess.register(&res).unwrap();
    sess.torch_model_load(&res).unwrap();
    let inputs: Vec<TorchTensor<'static>> = case
        .inputs
        .iter()
        .map(|i| TorchTensor::new(i.dims.to_vec(), i.data_type, i.bytes()).unwrap())
        .collect();
    time(budget, || {
        let out = sess
            .torch_model_run(&res, None, &inputs, case.outputs)
            .unwrap();
        assert_eq!(out.len(), case.outputs);
        std::hint::black_box(out);
    })
}

/// `forward` called directly through `tch`; the outputs stay libtorch tensors.
fn time_tch(case: &Case, budget: Duration) -> Vec<u64> {
    let mut module = CModule::load_on_device(case.path(), Device::Cpu).unwrap();
    module.set_eval();
    let args: Vec<IValue> = case
        .inputs
        .iter()
        .map(|i| {
            IValue::Tensor(Tensor::f_from_data_size(&i.bytes(), i.dims, i.element().2).unwrap())
        })
        .collect();
    time(budget, || {
        let out = tch::no_grad(|| module.forward_is(&args)).unwrap();
        std::hint::black_box(out);
    })
}

fn print_samples(side: &str, samples: &[u64]) {
    let text: Vec<String> = samples.iter().map(u64::to_string).collect();
    println!("{side} {}", text.join(" "));
}

/// Child mode (`--measure <case> <threads> <seconds> <side>`): times one Rust side in this
/// process, under the allocator settings the parent started it with.
fn measure(args: &[String]) {
    let case = CASES.iter().find(|c| c.name == args[0]).unwrap();
    let threads: i32 = args[1].parse().unwrap();
    let budget = Duration::from_secs_f64(args[2].parse().unwrap());
    println!("default_threads {}", tch::get_num_threads());
    if threads > 0 {
        tch::set_num_threads(threads);
    }
    println!("threads {}", tch::get_num_threads());
    match args[3].as_str() {
        "plugin" => print_samples("plugin", &time_plugin(case, budget)),
        _ => print_samples("tch", &time_tch(case, budget)),
    }
}

/// A process's stdout, or why there is none.
fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").to_owned();
        return Err(format!("{what} failed ({}): {last}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of the line starting with `key` and a space.
fn field<'a>(stdout: &'a str, key: &str) -> Result<&'a str, String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .ok_or_else(|| format!("no '{key}' line in the output"))
}

fn samples(stdout: &str, key: &str) -> Result<Vec<u64>, String> {
    field(stdout, key)?
        .split_whitespace()
        .map(|s| {
            s.parse()
                .map_err(|e| format!("bad '{key}' sample {s:?}: {e}"))
        })
        .collect()
}

/// Every process of one setting gets the same allocator settings: `None` for glibc's
/// defaults, else these tunables.
fn allocator(mut cmd: Command, tunables: Option<&str>) -> Command {
    match tunables {
        Some(t) => cmd.env("GLIBC_TUNABLES", t),
        None => cmd.env_remove("GLIBC_TUNABLES"),
    };
    cmd
}

/// The three sides of one case under one allocator setting: pooled samples, and what each
/// side reported about itself.
#[derive(Default)]
struct Sides {
    plugin: Vec<u64>,
    tch: Vec<u64>,
    python: Vec<u64>,
    /// Why the reference did not run, if it did not.
    python_error: Option<String>,
    version: String,
    rust_threads: String,
    default_threads: String,
    python_threads: String,
}

impl Sides {
    /// One round: the plugin's child, `tch`'s child, then the reference.
    fn round(
        &mut self,
        case: &Case,
        threads: i32,
        budget: Duration,
        tunables: Option<&str>,
    ) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        for side in ["plugin", "tch"] {
            let mut cmd = allocator(Command::new(&exe), tunables);
            cmd.arg("--measure")
                .arg(case.name)
                .arg(threads.to_string())
                .arg(budget.as_secs_f64().to_string())
                .arg(side);
            let out = run(&mut cmd, &format!("the {side} child"))?;
            let mut got = samples(&out, side)?;
            if side == "plugin" {
                self.plugin.append(&mut got);
            } else {
                self.tch.append(&mut got);
            }
            field(&out, "threads")?.clone_into(&mut self.rust_threads);
            field(&out, "default_threads")?.clone_into(&mut self.default_threads);
        }
        if self.python_error.is_some() {
            return Ok(());
        }
        let python = std::env::var_os(VACCEL_PYTHON)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "python3".into());
        let mut cmd = allocator(Command::new(&python), tunables);
        cmd.args(["-c", REFERENCE])
            .arg(threads.to_string())
            .arg(budget.as_secs_f64().to_string())
            .arg(WARMUP.to_string())
            .arg(MIN_RUNS.to_string())
            .arg(case.path())
            .args(case.inputs.iter().map(Input::spec));
        let got = run(&mut cmd, &python.to_string_lossy()).and_then(|out| {
            self.python.append(&mut samples(&out, "python")?);
            field(&out, "version")?.clone_into(&mut self.version);
            field(&out, "threads")?.clone_into(&mut self.python_threads);
            Ok(())
        });
        self.python_error = got.err();
        Ok(())
    }
}

/// Median and 90th percentile in milliseconds.
fn stats(samples: &mut [u64]) -> Option<(f64, f64)> {
    samples.sort_unstable();
    let n = samples.len();
    let ms = |i: usize| samples.get(i).map(|&ns| ns as f64 / 1e6);
    Some((ms(n / 2)?, ms((n * 9 / 10).min(n.checked_sub(1)?))?))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--measure") {
        measure(&args[at + 1..]);
        return;
    }
    let threads_at = args.iter().position(|a| a == "--threads");
    let threads: i32 = threads_at
        .and_then(|at| args.get(at + 1)?.parse().ok())
        .unwrap_or(1);
    let budget = args
        .iter()
        .enumerate()
        .filter(|&(i, _)| threads_at.is_none_or(|at| i != at + 1))
        .find_map(|(_, a)| a.parse::<f64>().ok())
        .map_or(Duration::from_secs(3), Duration::from_secs_f64);
    let per_round = budget / ROUNDS;

    let settings = [("glibc defaults", None), ("agent's", Some(AGENT_MALLOC))];
    let mut results = Vec::new();
    let mut notes = Vec::new();
    for case in &CASES {
        let mut sides: [Sides; 2] = Default::default();
        let mut failed = None;
        'rounds: for _ in 0..ROUNDS {
            for ((_, tunables), sides) in settings.iter().zip(&mut sides) {
                if let Err(e) = sides.round(case, threads, per_round, *tunables) {
                    failed = Some(e);
                    break 'rounds;
                }
            }
        }
        match failed {
            Some(e) => notes.push(format!("{}: {e}", case.name)),
            None => results.push((case.name, sides)),
        }
    }

    let Some((_, [first, _])) = results.first() else {
        notes.iter().for_each(|n| println!("{n}"));
        return;
    };
    println!(
        "torch model run, PyTorch {}: median and p90 of each side's runs, {ROUNDS} rounds of \
         >= {per_round:?} per side in turn (each after {WARMUP} warm-up runs); libtorch \
         intra-op threads: plugin and tch {}, python {} (libtorch's default here, which the \
         plugin itself keeps: {}); malloc \"agent's\" = GLIBC_TUNABLES={AGENT_MALLOC} for \
         every process",
        if first.version.is_empty() {
            "(unknown: no reference)"
        } else {
            &first.version
        },
        first.rust_threads,
        if first.python_threads.is_empty() {
            "-"
        } else {
            &first.python_threads
        },
        first.default_threads,
    );
    println!();
    println!(
        "| model | malloc | plugin ms | tch ms | python ms | plugin / python | tch / python \
         | plugin p90 | tch p90 | python p90 | runs (plugin/tch/python) |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, sides) in &mut results {
        for ((label, _), s) in settings.iter().zip(sides.iter_mut()) {
            let runs = (s.plugin.len(), s.tch.len(), s.python.len());
            let (Some(plugin), Some(tch)) = (stats(&mut s.plugin), stats(&mut s.tch)) else {
                continue;
            };
            let python = stats(&mut s.python);
            let cell = |v: Option<f64>, digits: usize| {
                v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
            };
            println!(
                "| {name} | {label} | {:.3} | {:.3} | {} | {} | {} | {:.3} | {:.3} | {} | \
                 {}/{}/{} |",
                plugin.0,
                tch.0,
                cell(python.map(|p| p.0), 3),
                cell(python.map(|p| plugin.0 / p.0), 2),
                cell(python.map(|p| tch.0 / p.0), 2),
                plugin.1,
                tch.1,
                cell(python.map(|p| p.1), 3),
                runs.0,
                runs.1,
                runs.2,
            );
            if let Some(e) = &s.python_error {
                notes.push(format!("{name} ({label}): reference skipped: {e}"));
            }
        }
    }
    if !notes.is_empty() {
        println!();
    }
    notes.iter().for_each(|n| println!("{n}"));
}
