//! Median latency of one model run on tract, beside onnxruntime measured in the same run.
//!
//! For every `fixtures/models/*.onnx` (input: `fixtures/reference/<model>.input.bin` when present,
//! zeros otherwise), both engines load the model from the same bytes, run it a few times to
//! warm up, then are timed on the same input until a time budget is spent. Both run on one
//! thread: tract is single-threaded, and onnxruntime gets `intra_op_num_threads = 1`,
//! `inter_op_num_threads = 1` and sequential execution, so the ratio compares kernels, not
//! core counts (onnxruntime's default would use every core).
//!
//! The reference library is `$ORT_DYLIB_PATH`, else the `libonnxruntime.so` of the Python
//! `onnxruntime` package that `$VACCEL_PYTHON` (default `python3`) imports. Without either the
//! tract numbers are printed alone, with a line saying why the reference was skipped.
//!
//! `cargo bench -p vaccel-plugin-onnx --bench models [-- <seconds per engine and model>]`
//! (`VACCEL_ONNX_BENCH_MODELS=<dir>` measures the `*.onnx` of another directory).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vaccel_plugin_onnx::TractEngine;
use vaccel_vision::{Engine, TensorView};

const WARMUP: usize = 3;
const MIN_RUNS: usize = 10;
const MAX_RUNS: usize = 1000;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Runs `f` `WARMUP` times, then at least `MIN_RUNS` times and until `budget` is spent.
fn time(budget: Duration, mut f: impl FnMut() -> Result<(), String>) -> Result<Duration, String> {
    for _ in 0..WARMUP {
        f()?;
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < MIN_RUNS || (start.elapsed() < budget && samples.len() < MAX_RUNS) {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    Ok(median(samples))
}

fn read_f32(path: &Path) -> Option<Vec<f32>> {
    let bytes = std::fs::read(path).ok()?;
    Some(
        bytes
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok().map(f32::from_le_bytes))
            .collect(),
    )
}

/// Where `libonnxruntime.so` is, or why there is none.
fn find_onnxruntime() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(PathBuf::from(p));
    }
    let python = std::env::var("VACCEL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(&python)
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))",
        ])
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{python} cannot import onnxruntime (set VACCEL_PYTHON to a Python that can, or \
             ORT_DYLIB_PATH to a libonnxruntime.so)"
        ));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    libs.sort();
    libs.pop()
        .ok_or_else(|| format!("no libonnxruntime.so in {}", dir.display()))
}

/// onnxruntime, single-threaded.
struct Reference {
    env: ort::environment::Environment,
    version: String,
}

impl Reference {
    fn load() -> Result<Reference, String> {
        let lib = find_onnxruntime()?;
        let env = ort::init_from(&lib)
            .map_err(|e| format!("{}: {e}", lib.display()))?
            .with_name("vaccel-onnx-bench")
            .build()
            .map_err(|e| e.to_string())?;
        let version = lib
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("libonnxruntime.so."))
            .unwrap_or("?")
            .to_owned();
        Ok(Reference { env, version })
    }

    fn session(&self, model: &[u8]) -> Result<ort::session::Session, String> {
        ort::session::Session::builder(&self.env)
            .map_err(|e| e.to_string())?
            .with_intra_threads(1)
            .map_err(|e| e.to_string())?
            .with_inter_threads(1)
            .map_err(|e| e.to_string())?
            .with_parallel_execution(false)
            .map_err(|e| e.to_string())?
            .commit_from_memory(model)
            .map_err(|e| e.to_string())
    }
}

fn main() {
    let budget = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .map_or(Duration::from_secs(3), Duration::from_secs_f64);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let model_dir = std::env::var_os("VACCEL_ONNX_BENCH_MODELS")
        .map_or_else(|| fixtures.join("models"), PathBuf::from);
    let mut models: Vec<PathBuf> = std::fs::read_dir(&model_dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
                .collect()
        })
        .unwrap_or_default();
    models.sort();
    if models.is_empty() {
        println!(
            "no ONNX models under {}: nothing to measure",
            model_dir.display()
        );
        return;
    }
    let reference = Reference::load();
    match &reference {
        Ok(r) => println!(
            "reference: onnxruntime {} (intra_op_num_threads=1, inter_op_num_threads=1, sequential)",
            r.version
        ),
        Err(why) => println!("reference: onnxruntime skipped: {why}"),
    }
    println!("tract: tract-onnx, single-threaded; median of runs over {budget:?} per engine");
    println!();
    println!(
        "{:<40} {:>16} {:>12} {:>12} {:>10}",
        "model", "input", "tract ms", "ort ms", "tract/ort"
    );
    for path in &models {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
        let bytes = std::fs::read(path).expect("model");
        let engine = match TractEngine::from_bytes(&bytes) {
            Ok(e) => e,
            Err(e) => {
                println!("{stem:<40} tract cannot load it: {e}");
                continue;
            }
        };
        let shape = engine.input_shapes().into_iter().next().unwrap_or_default();
        let len: usize = shape.iter().product();
        let input = read_f32(&fixtures.join("reference").join(format!("{stem}.input.bin")))
            .filter(|d| d.len() == len)
            .unwrap_or_else(|| vec![0.0; len]);
        let view = [TensorView {
            shape: &shape,
            data: &input,
        }];
        let tract = time(budget, || {
            engine.run(&view).map(drop).map_err(|e| e.to_string())
        });
        let ort = reference
            .as_ref()
            .ok()
            .map(|r| -> Result<Duration, String> {
                let mut session = r.session(&bytes)?;
                time(budget, || {
                    let tensor = ort::value::Tensor::from_array((shape.clone(), input.clone()))
                        .map_err(|e| e.to_string())?;
                    session
                        .run(ort::inputs![tensor])
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
            });
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        let shape_text = format!("{shape:?}");
        match (&tract, &ort) {
            (Ok(t), Some(Ok(o))) => println!(
                "{stem:<40} {shape_text:>16} {:>12.3} {:>12.3} {:>9.2}x",
                ms(t),
                ms(o),
                ms(t) / ms(o)
            ),
            (Ok(t), None) => println!(
                "{stem:<40} {shape_text:>16} {:>12.3} {:>12} {:>10}",
                ms(t),
                "-",
                "-"
            ),
            (Ok(t), Some(Err(e))) => println!(
                "{stem:<40} {shape_text:>16} {:>12.3}   onnxruntime failed: {e}",
                ms(t)
            ),
            (Err(e), _) => println!("{stem:<40} tract failed: {e}"),
        }
    }
}
