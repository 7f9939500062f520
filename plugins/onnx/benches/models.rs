//! Median latency of one model run on the plugin's two engines (tract, and its onnxruntime
//! engine), beside onnxruntime called directly through `ort`, measured in the same run.
//!
//! For every `fixtures/models/*.onnx` (input: `fixtures/reference/<model>.input.bin` when present,
//! zeros otherwise), each engine loads the model from the same bytes, runs it a few times to
//! warm up, then is timed on the same input until a time budget is spent. All run on one
//! thread: tract is single-threaded, and onnxruntime gets `intra_op_num_threads = 1`,
//! `inter_op_num_threads = 1` and sequential execution, so the ratio compares kernels, not
//! core counts (onnxruntime's default would use every core).
//!
//! The onnxruntime library is the one the plugin finds (`$VACCEL_ONNXRUNTIME_LIB`, the
//! loader's search, or the `onnxruntime` package of `$VACCEL_PYTHON`, default `python3`).
//! Without it the tract numbers are printed alone, with a line saying why.
//!
//! `cargo bench -p vaccel-plugin-onnx --bench models [-- <seconds per engine and model>]`
//! (`VACCEL_ONNX_BENCH_MODELS=<dir>` measures the `*.onnx` of another directory).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vaccel_plugin_onnx::onnxruntime::OnnxRuntime;
use vaccel_plugin_onnx::{OrtEngine, TractEngine};
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

/// onnxruntime, single-threaded, called through `ort` directly: the reference.
struct Reference {
    rt: &'static OnnxRuntime,
    version: String,
}

impl Reference {
    fn load() -> Result<Reference, String> {
        let rt = vaccel_plugin_onnx::onnxruntime::runtime().map_err(str::to_owned)?;
        let version = rt
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("libonnxruntime.so."))
            .unwrap_or("?")
            .to_owned();
        Ok(Reference { rt, version })
    }

    fn session(&self, model: &[u8]) -> Result<ort::session::Session, String> {
        ort::session::Session::builder(self.rt.environment())
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
    println!("vaccel ort: the plugin's onnxruntime engine (OrtEngine), 1 thread");
    println!();
    println!(
        "{:<30} {:>16} {:>10} {:>12} {:>9} {:>10} {:>12}",
        "model", "input", "tract ms", "vaccel ort", "ort ms", "tract/ort", "vaccel/ort"
    );
    for path in &models {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
        let bytes = std::fs::read(path).expect("model");
        let engine = match TractEngine::from_bytes(&bytes) {
            Ok(e) => e,
            Err(e) => {
                println!("{stem:<30} tract cannot load it: {e}");
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
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let tract = time(budget, || {
            engine.run(&view).map(drop).map_err(|e| e.to_string())
        });
        let (ours, ort) = match &reference {
            Ok(r) => {
                let ours = OrtEngine::from_bytes(r.rt, &bytes, 1)
                    .map_err(|e| e.to_string())
                    .and_then(|e| {
                        time(budget, || e.run(&view).map(drop).map_err(|e| e.to_string()))
                    });
                let ort = r.session(&bytes).and_then(|mut session| {
                    time(budget, || {
                        let tensor = ort::value::TensorRef::from_array_view((
                            shape.clone(),
                            input.as_slice(),
                        ))
                        .map_err(|e| e.to_string())?;
                        session
                            .run(ort::inputs![tensor])
                            .map(drop)
                            .map_err(|e| e.to_string())
                    })
                });
                (Some(ours), Some(ort))
            }
            Err(_) => (None, None),
        };
        let cell = |r: &Option<Result<Duration, String>>| match r {
            Some(Ok(d)) => format!("{:.3}", ms(*d)),
            Some(Err(_)) => "failed".to_owned(),
            None => "-".to_owned(),
        };
        let ratio =
            |a: &Result<Duration, String>, b: &Option<Result<Duration, String>>| match (a, b) {
                (Ok(a), Some(Ok(b))) => format!("{:.2}x", ms(*a) / ms(*b)),
                _ => "-".to_owned(),
            };
        let tract_ratio = ratio(&tract, &ort);
        let ours_ratio = ours.as_ref().map_or("-".to_owned(), |o| ratio(o, &ort));
        println!(
            "{stem:<30} {:>16} {:>10} {:>12} {:>9} {:>10} {:>12}",
            format!("{shape:?}"),
            cell(&Some(tract.clone())),
            cell(&ours),
            cell(&ort),
            tract_ratio,
            ours_ratio
        );
        for (what, r) in [
            ("tract", Some(&tract)),
            ("vaccel ort", ours.as_ref()),
            ("ort", ort.as_ref()),
        ] {
            if let Some(Err(e)) = r {
                println!("  {what} failed: {e}");
            }
        }
    }
}
