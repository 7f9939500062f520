//! onnxruntime as the plugin's fast engine: the library is found and loaded at run time (the
//! `ort` crate with `load-dynamic`; nothing is linked or downloaded at build time), once per
//! process. Where it is missing, or cannot load a model, the plugin runs the model on tract.
//!
//! The library, in this order:
//! 1. `$VACCEL_ONNXRUNTIME_LIB`, when set and non-empty: that file and nothing else.
//! 2. `libonnxruntime.so` through the dynamic loader's search (`LD_LIBRARY_PATH`, `ld.so.cache`).
//! 3. The `capi/libonnxruntime.so.*` of the Python package `onnxruntime`, located by
//!    `$VACCEL_PYTHON` (default `python3`) with `importlib.util.find_spec` in one short
//!    subprocess, so `python3 -m pip install onnxruntime` is enough.
//!
//! onnxruntime 1.17 or later is required (the C API version `ort` asks for); the version the
//! project tests is pinned in `scripts/runtimes.sh`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use vaccel_vision::{Engine, EngineError, Tensor, TensorView};

use crate::engine::{MAX_INPUT_ELEMENTS, check_inputs};
use crate::error::{OnnxError, chain};

/// Path of `libonnxruntime.so`; when set (non-empty), the only candidate.
pub const ENV_LIB: &str = "VACCEL_ONNXRUNTIME_LIB";
/// The library's name for the loader's search.
pub const LIB_NAME: &str = "libonnxruntime.so";

/// Longest the Python probe may take (a cold interpreter start on a loaded machine).
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Prints the `capi` directory of the `onnxruntime` package without importing it.
const PROBE: &str = "import importlib.util as u, os\n\
s = u.find_spec('onnxruntime')\n\
print(os.path.join(os.path.dirname(s.origin), 'capi') if s is not None and s.origin else '')";

/// The loaded library.
#[derive(Debug)]
pub struct OnnxRuntime {
    env: ort::environment::Environment,
    path: PathBuf,
}

impl OnnxRuntime {
    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `ort` environment, to build sessions of one's own (the benchmark's reference).
    pub fn environment(&self) -> &ort::environment::Environment {
        &self.env
    }
}

/// The process's onnxruntime, found and loaded at the first call; later calls return the
/// same library or the same reason it is missing.
pub fn runtime() -> Result<&'static OnnxRuntime, &'static str> {
    static RUNTIME: OnceLock<Result<OnnxRuntime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let found = discover();
            match &found {
                Ok(rt) => log::info!("onnx: loaded onnxruntime from {}", rt.path.display()),
                Err(why) => log::info!("onnx: no onnxruntime, models run on tract ({why})"),
            }
            found
        })
        .as_ref()
        .map_err(String::as_str)
}

fn discover() -> Result<OnnxRuntime, String> {
    if let Some(path) = std::env::var_os(ENV_LIB).filter(|v| !v.is_empty()) {
        // An explicit path is not second-guessed: its failure is the answer.
        return open(Path::new(&path));
    }
    let mut tried = vec![format!("{ENV_LIB} unset")];
    match open(Path::new(LIB_NAME)) {
        Ok(rt) => return Ok(rt),
        Err(e) => tried.push(format!("loader search: {e}")),
    }
    let python = vaccel_core::python::interpreter();
    match python_capi_dir(&python).and_then(|dir| newest_library(&dir)) {
        Ok(path) => match open(&path) {
            Ok(rt) => return Ok(rt),
            Err(e) => tried.push(e),
        },
        Err(why) => tried.push(format!("{}: {why}", python.to_string_lossy())),
    }
    Err(format!(
        "onnxruntime not found (tried: {}); install it with `python3 -m pip install \
         onnxruntime` or set {ENV_LIB}",
        tried.join("; ")
    ))
}

fn open(path: &Path) -> Result<OnnxRuntime, String> {
    let env = ort::init_from(path)
        .map_err(|e| e.to_string())?
        .with_name("vaccel-onnx")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(OnnxRuntime {
        env,
        path: path.to_owned(),
    })
}

/// The `capi` directory of `onnxruntime` as `python` sees it.
fn python_capi_dir(python: &OsString) -> Result<PathBuf, String> {
    let out = vaccel_core::python::run(python, PROBE, PROBE_TIMEOUT)?;
    let dir = out.trim();
    if dir.is_empty() {
        return Err("no module onnxruntime".to_owned());
    }
    Ok(PathBuf::from(dir))
}

/// The wheel ships `libonnxruntime.so.<version>`: the highest such file of `dir`.
fn newest_library(dir: &Path) -> Result<PathBuf, String> {
    let mut libs: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let version = name.strip_prefix(LIB_NAME)?;
            let key = version
                .trim_start_matches('.')
                .split('.')
                .filter_map(|n| n.parse().ok())
                .collect();
            Some((key, p))
        })
        .collect();
    libs.sort();
    libs.pop()
        .map(|(_, p)| p)
        .ok_or_else(|| format!("no {LIB_NAME}* in {}", dir.display()))
}

/// One ONNX model on onnxruntime, as a [`vaccel_vision::Engine`]. Only models whose inputs and
/// outputs are all float32 tensors are taken (the image ops feed and read float32); others
/// are refused at load, and the plugin runs them on tract.
#[derive(Debug)]
pub struct OrtEngine {
    /// Runs are serialised: a session is run through `&mut`.
    session: Mutex<Session>,
    inputs: Vec<Vec<usize>>,
    outputs: Vec<Vec<usize>>,
}

impl OrtEngine {
    /// Loads a model from its bytes with `threads` intra-op threads.
    pub fn from_bytes(rt: &OnnxRuntime, bytes: &[u8], threads: usize) -> Result<Self, OnnxError> {
        let load = |e: ort::Error| OnnxError::OrtLoad(e.to_string());
        let session = Session::builder(&rt.env)
            .map_err(load)?
            .with_intra_threads(threads)
            .map_err(|e| load(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| load(e.into()))?
            .with_parallel_execution(false)
            .map_err(|e| load(e.into()))?
            // Idle pool threads sleep instead of spinning: the agent shares its cores.
            .with_intra_op_spinning(false)
            .map_err(|e| load(e.into()))?
            .commit_from_memory(bytes)
            .map_err(load)?;
        let inputs = session
            .inputs()
            .iter()
            .enumerate()
            .map(|(i, o)| float_shape(o.dtype(), "input", i, true))
            .collect::<Result<Vec<_>, _>>()?;
        for (index, shape) in inputs.iter().enumerate() {
            let elements = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n <= MAX_INPUT_ELEMENTS);
            if elements.is_none() {
                return Err(OnnxError::UnshapedInput {
                    input: index,
                    what: format!("shape {shape:?}, over {MAX_INPUT_ELEMENTS} elements"),
                });
            }
        }
        let outputs = session
            .outputs()
            .iter()
            .enumerate()
            .map(|(i, o)| float_shape(o.dtype(), "output", i, false))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OrtEngine {
            session: Mutex::new(session),
            inputs,
            outputs,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the model, with the plugin's typed error.
    pub fn run_tensors(&self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, OnnxError> {
        check_inputs(inputs, self.inputs.iter().map(Vec::as_slice))?;
        let mut values = Vec::with_capacity(inputs.len());
        for (view, shape) in inputs.iter().zip(&self.inputs) {
            let tensor = TensorRef::from_array_view((shape.clone(), view.data))
                .map_err(|e| OnnxError::InputMismatch(e.to_string()))?;
            values.push(ort::session::SessionInputValue::from(tensor));
        }
        let mut session = self.lock();
        let outputs = session
            .run(values.as_slice())
            .map_err(|e| OnnxError::OrtRun(e.to_string()))?;
        outputs
            .values()
            .enumerate()
            .map(|(index, value)| {
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| OnnxError::OrtRun(format!("output {index}: {e}")))?;
                Ok(Tensor {
                    shape: shape
                        .iter()
                        .map(|&d| usize::try_from(d).unwrap_or(0))
                        .collect(),
                    data: data.to_vec(),
                })
            })
            .collect()
    }
}

/// The concrete shape of a float32 tensor input or output (`-1` batch: 1 for inputs, 0 for
/// outputs, which are data-dependent).
fn float_shape(
    dtype: &ValueType,
    what: &str,
    index: usize,
    input: bool,
) -> Result<Vec<usize>, OnnxError> {
    let ValueType::Tensor { ty, shape, .. } = dtype else {
        return Err(OnnxError::OrtLoad(format!(
            "{what} {index} is not a tensor ({dtype})"
        )));
    };
    if *ty != TensorElementType::Float32 {
        return Err(OnnxError::OrtLoad(format!(
            "{what} {index} is {ty}, not float32"
        )));
    }
    shape
        .iter()
        .enumerate()
        .map(|(axis, &d)| match usize::try_from(d) {
            Ok(n) => Ok(n),
            Err(_) if axis == 0 => Ok(usize::from(input)),
            Err(_) if !input => Ok(0),
            Err(_) => Err(OnnxError::UnshapedInput {
                input: index,
                what: format!("an unknown dimension {axis}"),
            }),
        })
        .collect()
}

impl Engine for OrtEngine {
    fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.inputs.clone()
    }

    fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.outputs.clone()
    }

    fn run(&self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, EngineError> {
        self.run_tensors(inputs)
            .map_err(|e| EngineError::new(chain(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_library_of_a_wheel_directory() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.31.1",
            "libonnxruntime_providers_shared.so",
            "__init__.py",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(
            newest_library(dir.path()).unwrap(),
            dir.path().join("libonnxruntime.so.1.31.1")
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(newest_library(empty.path()).is_err());
    }

    #[test]
    fn missing_interpreter_is_an_error_not_a_panic() {
        let e = python_capi_dir(&OsString::from("/nonexistent/python3")).unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
    }
}
