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
