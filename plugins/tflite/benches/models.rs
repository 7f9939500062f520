//! Inference time of every fixture model on this plugin's LiteRT binding, beside the
//! reference runtime (`ai_edge_litert.interpreter.Interpreter`, the wheel's classic TFLite
//! interpreter) measured in the same run with the same thread count.
//!
//! Each figure is the best of [`ROUNDS`] round medians, a round being [`RUNS`] timed runs
//! (after [`WARMUP`] untimed ones): on a shared machine the best round is the one least
//! disturbed by other processes, for both runtimes alike. Inputs are the model's reference input when `fixtures/reference/<model>.input.bin` exists (else
//! reproducible pseudo-random values). The reference runs in a `$VACCEL_PYTHON` (default
//! `python3`) subprocess that times only `invoke()`; it is skipped with a message when that
//! Python lacks `ai_edge_litert` or numpy. Threads: `$VACCEL_TFLITE_THREADS`, else every core.
//!
//! Run with `cargo bench -p vaccel-plugin-tflite --bench models`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vaccel_plugin_tflite::{Model, default_threads};

const WARMUP: usize = 5;
const ROUNDS: usize = 5;
const RUNS: usize = 15;

/// Times `invoke()` of the reference interpreter: argv = model, threads, warm-up, rounds,
/// runs, optional input file (raw bytes of the first input). Prints each round's median in
/// milliseconds, one per line.
const REFERENCE: &str = r#"
import sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, threads, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rounds, runs = int(sys.argv[4]), int(sys.argv[5])
it = Interpreter(model_path=path, num_threads=threads)
it.allocate_tensors()
rng = np.random.default_rng(0)
for i, d in enumerate(it.get_input_details()):
    if len(sys.argv) > 6 and i == 0:
        x = np.fromfile(sys.argv[6], dtype=d['dtype']).reshape(d['shape'])
    else:
        x = rng.random(d['shape']).astype(d['dtype'])
    it.set_tensor(d['index'], x)
for _ in range(warmup):
    it.invoke()
for _ in range(rounds):
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        ts.append(time.perf_counter() - t)
    ts.sort()
    print(ts[len(ts) // 2] * 1e3, flush=True)
"#;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn inputs(model: &Model, path: &Path) -> Vec<Vec<u8>> {
    let stem = path.file_stem().unwrap().to_string_lossy();
    let reference = fixtures()
        .join("reference")
        .join(format!("{stem}.input.bin"));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    model
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            if i == 0
                && let Ok(bytes) = std::fs::read(&reference)
                && bytes.len() == spec.byte_size
            {
                return bytes;
            }
            (0..spec.byte_size)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 56) as u8 & 0x3f // small values: finite for any float type
                })
                .collect()
        })
        .collect()
}

fn ours(model: &Model, inputs: &[Vec<u8>]) -> Duration {
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    for _ in 0..WARMUP {
        model.run(&refs).unwrap();
    }
    (0..ROUNDS)
        .map(|_| {
            median(
                (0..RUNS)
                    .map(|_| {
                        let t = Instant::now();
                        std::hint::black_box(model.run(&refs).unwrap());
                        t.elapsed()
                    })
                    .collect(),
            )
        })
        .min()
        .unwrap()
}

/// The reference's best round median in ms, or why there is none.
fn reference(path: &Path, threads: usize) -> Result<f64, String> {
    let stem = path.file_stem().unwrap().to_string_lossy();
    let input = fixtures()
        .join("reference")
        .join(format!("{stem}.input.bin"));
    let python = std::env::var_os("VACCEL_PYTHON")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into());
    let mut cmd = Command::new(&python);
    cmd.args(["-c", REFERENCE])
        .arg(path)
        .arg(threads.to_string())
        .arg(WARMUP.to_string())
        .arg(ROUNDS.to_string())
        .arg(RUNS.to_string());
    if input.is_file() {
        cmd.arg(&input);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.to_string_lossy()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").to_owned();
        return Err(format!("{} failed: {last}", python.to_string_lossy()));
    }
    let rounds: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if rounds.len() != ROUNDS {
        return Err(format!("unexpected reference output: {stdout}"));
    }
    Ok(rounds.into_iter().fold(f64::INFINITY, f64::min))
}

fn main() {
    if let Err(why) = vaccel_plugin_tflite::litert_available() {
        println!("SKIP: {why}");
        return;
    }
    let threads = default_threads().unwrap();
    let mut models: Vec<PathBuf> = std::fs::read_dir(fixtures().join("models"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "tflite"))
                .collect()
        })
        .unwrap_or_default();
    // Models kept in a folder with their labels.
    models.push(fixtures().join("models/dog_breeds/dog_breeds.tflite"));
    models.retain(|p| p.exists());
    models.sort();
    if models.is_empty() {
        println!("SKIP: no fixtures/models/*.tflite");
        return;
    }
    println!(
        "tflite model run: best of {ROUNDS} medians of {RUNS} runs (after {WARMUP} warm-up \
         runs), {threads} threads, both runtimes"
    );
    println!(
        "{:<34} {:>12} {:>16} {:>8}",
        "model", "ours (ms)", "reference (ms)", "ratio"
    );
    let mut reference_note = None;
    for path in &models {
        let name = path.file_name().unwrap().to_string_lossy();
        let model = match Model::load_file(path, threads) {
            Ok(m) => m,
            Err(e) => {
                println!("{name:<34} cannot load: {e}");
                continue;
            }
        };
        let ins = inputs(&model, path);
        let ours_ms = ours(&model, &ins).as_secs_f64() * 1e3;
        match reference(path, threads) {
            Ok(ref_ms) => println!(
                "{name:<34} {ours_ms:>12.3} {ref_ms:>16.3} {:>8.2}",
                ours_ms / ref_ms
            ),
            Err(why) => {
                println!("{name:<34} {ours_ms:>12.3} {:>16} {:>8}", "-", "-");
                reference_note.get_or_insert(why);
            }
        }
    }
    if let Some(why) = reference_note {
        println!("reference skipped: {why} (pip install ai-edge-litert==2.3.0 numpy)");
    }
}
