//! What a backend provides for one loaded model: float32 tensors in, float32 tensors out.

use std::borrow::Cow;

/// A failure inside an inference engine (the backend's message, already readable).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(pub Cow<'static, str>);

impl EngineError {
    /// An error with this message.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self(message.into())
    }
}

/// A dense row-major float32 tensor owned by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

/// A borrowed dense row-major float32 tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorView<'a> {
    /// Dimensions, outermost first.
    pub shape: &'a [usize],
    /// `shape.iter().product()` values.
    pub data: &'a [f32],
}

impl Tensor {
    /// A borrowed view of this tensor.
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            shape: &self.shape,
            data: &self.data,
        }
    }
}

/// One loaded model, ready to run many times. Implementations must be usable from several
/// threads (a backend serialises internally if its runtime is not re-entrant).
pub trait Engine: Send + Sync {
    /// Shapes of the model's inputs, in order (images are NHWC unless the model says NCHW).
    fn input_shapes(&self) -> Vec<Vec<usize>>;

    /// Shapes of the model's outputs, in order.
    fn output_shapes(&self) -> Vec<Vec<usize>>;

    /// Runs the model on `inputs` (one per model input, in order) and returns every output in
    /// the model's order.
    fn run(&self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, EngineError>;
}

/// An engine that replays recorded outputs instead of running a model: drives the pipelines
/// in tests and benchmarks without an inference runtime (for example with outputs recorded
/// from a real model), and keeps the inputs it was last given for inspection.
#[derive(Debug)]
pub struct RecordedEngine {
    input_shapes: Vec<Vec<usize>>,
    outputs: Vec<Tensor>,
    last_inputs: std::sync::Mutex<Vec<Tensor>>,
}

impl RecordedEngine {
    /// A model with inputs of `input_shapes` that answers every run with `outputs`.
    pub fn new(input_shapes: Vec<Vec<usize>>, outputs: Vec<Tensor>) -> Self {
        Self {
            input_shapes,
            outputs,
            last_inputs: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The inputs of the last run (empty before the first).
    pub fn last_inputs(&self) -> Vec<Tensor> {
        self.last_inputs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Engine for RecordedEngine {
    fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.input_shapes.clone()
    }

    fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.outputs.iter().map(|t| t.shape.clone()).collect()
    }

    fn run(&self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, EngineError> {
        if inputs.len() != self.input_shapes.len() {
            return Err(EngineError::new(format!(
                "the model takes {} inputs, got {}",
                self.input_shapes.len(),
                inputs.len()
            )));
        }
        for (input, shape) in inputs.iter().zip(&self.input_shapes) {
            let fits = input.shape.len() == shape.len()
                && input
                    .shape
                    .iter()
                    .zip(shape)
                    .all(|(&got, &want)| got == want || want == 0);
            if !fits || input.data.len() != input.shape.iter().product::<usize>() {
                return Err(EngineError::new(format!(
                    "input of shape {:?} ({} values) where the model takes {shape:?}",
                    input.shape,
                    input.data.len()
                )));
            }
        }
        *self
            .last_inputs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = inputs
            .iter()
            .map(|v| Tensor {
                shape: v.shape.to_vec(),
                data: v.data.to_vec(),
            })
            .collect();
        Ok(self.outputs.clone())
    }
}
