//! A compiled TFLite model, safe to share between threads.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use vaccel_core::{TfLiteDataType, TfLiteTensor};
use vaccel_vision::{Engine, EngineError, Tensor, TensorView};

use crate::discovery;
use crate::error::TfliteError;
use crate::ffi::{self, Compiled};

/// One input or output of a model, as the model declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name (may be empty).
    pub name: String,
    /// Element type (TFLite numbering, which vAccel's `VACCEL_TFLITE_*` values share).
    pub data_type: TfLiteDataType,
    /// Static dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Size in bytes of the dense tensor.
    pub byte_size: usize,
}

impl TensorSpec {
    fn from_port(port: &ffi::Port) -> Result<TensorSpec, TfliteError> {
        let data_type = u32::try_from(port.element_type)
            .ok()
            .and_then(TfLiteDataType::from_value)
            .ok_or(TfliteError::UnsupportedType {
                tensor: port.name.clone(),
                element_type: port.element_type,
            })?;
        Ok(TensorSpec {
            name: port.name.clone(),
            data_type,
            dims: port.dims.clone(),
            byte_size: port.byte_size,
        })
    }

    /// Dimensions as vAccel tensors carry them.
    pub fn dims_i64(&self) -> Vec<i64> {
        self.dims
            .iter()
            .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
            .collect()
    }
}

/// Whether `bytes` is a TFLite flatbuffer: file identifier `TFL3` at offset 4.
pub fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"TFL3".as_slice())
}

/// A TFLite model parsed and compiled for LiteRT's CPU accelerator, with its input and output
/// buffers allocated once. Runs on one model are serialised (its buffers are reused); runs on
/// different models proceed in parallel.
pub struct Model {
    compiled: Mutex<Compiled>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    threads: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Parses and compiles `bytes` with `threads` CPU threads (0: LiteRT's default). The bytes
    /// are copied; the caller may drop them.
    pub fn load(bytes: &[u8], threads: usize) -> Result<Model, TfliteError> {
        if !is_tflite(bytes) {
            return Err(TfliteError::NotTflite);
        }
        let litert = discovery::litert().map_err(TfliteError::Unavailable)?;
        let compiled = litert.compile(bytes, threads)?;
        let inputs = compiled
            .inputs()
            .iter()
            .map(TensorSpec::from_port)
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = compiled
            .outputs()
            .iter()
            .map(TensorSpec::from_port)
            .collect::<Result<Vec<_>, _>>()?;
        log::debug!(
            "tflite: compiled a {} byte model ({} inputs, {} outputs, {threads} threads)",
            bytes.len(),
            inputs.len(),
            outputs.len()
        );
        Ok(Model {
            compiled: Mutex::new(compiled),
            inputs,
            outputs,
            threads,
        })
    }

    /// Reads the file at `path` and loads it like [`Model::load`].
    pub fn load_file(path: &Path, threads: usize) -> Result<Model, TfliteError> {
        let bytes = std::fs::read(path).map_err(|source| TfliteError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Model::load(&bytes, threads)
    }

    /// Inputs, in the interpreter's order.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// Outputs, in the interpreter's order.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// The CPU thread count it was compiled with (0: LiteRT's default).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Where the LiteRT library in use was loaded from.
    pub fn library_path(&self) -> std::path::PathBuf {
        self.lock().litert().path().to_path_buf()
    }

    fn lock(&self) -> MutexGuard<'_, Compiled> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs on raw input bytes (one slice per input, exactly its byte size) and returns every
    /// output's bytes.
    pub fn run(&self, inputs: &[&[u8]]) -> Result<Vec<Vec<u8>>, TfliteError> {
        self.lock().run(inputs)
    }

    /// Runs on vAccel tensors after checking them against the model (count, element type,
    /// byte size) and returns the first `nr_outputs` outputs.
    pub fn run_tensors(
        &self,
        inputs: &[TfLiteTensor<'_>],
        nr_outputs: usize,
    ) -> Result<Vec<TfLiteTensor<'static>>, TfliteError> {
        if inputs.len() != self.inputs.len() {
            return Err(TfliteError::InputCount {
                expected: self.inputs.len(),
                found: inputs.len(),
            });
        }
        if nr_outputs > self.outputs.len() {
            return Err(TfliteError::OutputCount {
                available: self.outputs.len(),
                requested: nr_outputs,
            });
        }
        for (index, (t, spec)) in inputs.iter().zip(&self.inputs).enumerate() {
            if t.data_type != spec.data_type {
                return Err(TfliteError::InputType {
                    index,
                    expected: spec.data_type.value(),
                    found: t.data_type.value(),
                });
            }
            if t.data.len() != spec.byte_size {
                return Err(TfliteError::InputSize {
                    index,
                    expected: spec.byte_size,
                    found: t.data.len(),
                });
            }
        }
        let raw: Vec<&[u8]> = inputs.iter().map(|t| &*t.data).collect();
        let outs = self.run(&raw)?;
        Ok(outs
            .into_iter()
            .zip(&self.outputs)
            .take(nr_outputs)
            .map(|(data, spec)| TfLiteTensor {
                dims: spec.dims_i64(),
                data_type: spec.data_type,
                data: Cow::Owned(data),
            })
            .collect())
    }
}

/// f32 values to the bytes of a tensor of `ty` (non-float types by numeric conversion:
/// quantization parameters are not applied).
fn encode(values: &[f32], ty: TfLiteDataType) -> Result<Vec<u8>, EngineError> {
    let mut out = Vec::with_capacity(values.len() * 4);
    for &v in values {
        match ty {
            TfLiteDataType::Float32 => out.extend_from_slice(&v.to_ne_bytes()),
            TfLiteDataType::Float64 => out.extend_from_slice(&f64::from(v).to_ne_bytes()),
            TfLiteDataType::Uint8 => out.push(v.round() as u8),
            TfLiteDataType::Int8 => out.extend_from_slice(&(v.round() as i8).to_ne_bytes()),
            TfLiteDataType::Int16 => out.extend_from_slice(&(v.round() as i16).to_ne_bytes()),
            TfLiteDataType::Int32 => out.extend_from_slice(&(v.round() as i32).to_ne_bytes()),
            TfLiteDataType::Int64 => out.extend_from_slice(&(v.round() as i64).to_ne_bytes()),
            TfLiteDataType::Bool => out.push(u8::from(v != 0.0)),
            other => {
                return Err(EngineError::new(format!(
                    "tflite: cannot feed f32 values to a {other:?} input"
                )));
            }
        }
    }
    Ok(out)
}

/// The bytes of a tensor of `ty` as f32 values.
fn decode(bytes: &[u8], ty: TfLiteDataType) -> Result<Vec<f32>, EngineError> {
    fn arr<const N: usize>(c: &[u8]) -> [u8; N] {
        <[u8; N]>::try_from(c).unwrap_or([0; N])
    }
    Ok(match ty {
        TfLiteDataType::Float32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes(arr(c)))
            .collect(),
        TfLiteDataType::Float64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_ne_bytes(arr(c)) as f32)
            .collect(),
        TfLiteDataType::Uint8 | TfLiteDataType::Bool => {
            bytes.iter().map(|&b| f32::from(b)).collect()
        }
        TfLiteDataType::Int8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
        TfLiteDataType::Int16 => bytes
            .chunks_exact(2)
            .map(|c| f32::from(i16::from_ne_bytes(arr(c))))
            .collect(),
        TfLiteDataType::Int32 => bytes
            .chunks_exact(4)
            .map(|c| i32::from_ne_bytes(arr(c)) as f32)
            .collect(),
        TfLiteDataType::Int64 => bytes
            .chunks_exact(8)
            .map(|c| i64::from_ne_bytes(arr(c)) as f32)
            .collect(),
        other => {
            return Err(EngineError::new(format!(
                "tflite: cannot read a {other:?} output as f32"
            )));
        }
    })
}

impl Engine for Model {
    fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.inputs.iter().map(|s| s.dims.clone()).collect()
    }

    fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.outputs.iter().map(|s| s.dims.clone()).collect()
    }

    fn run(&self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, EngineError> {
        if inputs.len() != self.inputs.len() {
            return Err(EngineError::new(format!(
                "tflite: the model takes {} inputs, got {}",
                self.inputs.len(),
                inputs.len()
            )));
        }
        let mut raw = Vec::with_capacity(inputs.len());
        for (view, spec) in inputs.iter().zip(&self.inputs) {
            let elements: usize = spec.dims.iter().product();
            if view.data.len() != elements {
                return Err(EngineError::new(format!(
                    "tflite: input '{}' takes {elements} values, got {}",
                    spec.name,
                    view.data.len()
                )));
            }
            raw.push(encode(view.data, spec.data_type)?);
        }
        let refs: Vec<&[u8]> = raw.iter().map(Vec::as_slice).collect();
        let outs =
            Model::run(self, &refs).map_err(|e| EngineError::new(crate::error::chain(&e)))?;
        outs.iter()
            .zip(&self.outputs)
            .map(|(bytes, spec)| {
                Ok(Tensor {
                    shape: spec.dims.clone(),
                    data: decode(bytes, spec.data_type)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tflite_identifier() {
        assert!(is_tflite(b"\x1c\0\0\0TFL3rest"));
        assert!(!is_tflite(b"\x1c\0\0\0ONNX"));
        assert!(!is_tflite(b"TFL3"));
        assert!(!is_tflite(b""));
    }

    #[test]
    fn not_tflite_is_refused_before_the_library_is_needed() {
        assert!(matches!(
            Model::load(b"definitely not a model", 1),
            Err(TfliteError::NotTflite)
        ));
    }

    #[test]
    fn f32_round_trips_through_every_numeric_type() {
        let values = [0.0f32, 1.0, 2.0, 100.0];
        for ty in [
            TfLiteDataType::Float32,
            TfLiteDataType::Float64,
            TfLiteDataType::Uint8,
            TfLiteDataType::Int8,
            TfLiteDataType::Int16,
            TfLiteDataType::Int32,
            TfLiteDataType::Int64,
        ] {
            let bytes = encode(&values, ty).unwrap();
            assert_eq!(decode(&bytes, ty).unwrap(), values, "{ty:?}");
        }
        assert!(encode(&values, TfLiteDataType::String).is_err());
        assert!(decode(&[0; 4], TfLiteDataType::Complex64).is_err());
    }
}
