//! The plugin's errors and their mapping to the runtime's [`vaccel_core::Error`].

use std::error::Error as StdError;
pub use vaccel_core::error::chain;

use vaccel_core::ErrorCode;

/// A boxed error from tract (its `anyhow` errors, converted so the chain stays typed).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What can go wrong loading or running an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not an ONNX `ModelProto` with a graph: another format (TFLite, a PyTorch
    /// archive, text), truncated or corrupt protobuf.
    #[error("not an ONNX model: {reason}")]
    NotOnnx {
        /// What the sniff or the protobuf decoder found.
        reason: String,
        /// The decoder's error, when it got that far.
        #[source]
        source: Option<BoxError>,
    },
    /// tract could not translate, type or optimise a decoded model (an operator it does not
    /// implement, an inconsistent graph, tensors that disagree with their declared shapes).
    #[error("cannot load the ONNX model")]
    Load(#[source] BoxError),
    /// A model input whose rank, or a dimension other than the batch, is not fixed by the
    /// model: the plugin cannot tell what tensor to feed it.
    #[error("model input {input} has {what}")]
    UnshapedInput {
        /// Position of the input.
        input: usize,
        /// What is unknown about it.
        what: String,
    },
    /// The tensors given to [`crate::TractEngine`] do not match the model's inputs (count, shape
    /// or length).
    #[error("bad model input: {0}")]
    InputMismatch(String),
    /// tract failed while running the model.
    #[error("inference failed")]
    Run(#[source] BoxError),
    /// A model output cannot be read as float32 (e.g. a string tensor).
    #[error("model output {index} cannot be converted to float32")]
    Output {
        /// Position of the output.
        index: usize,
        /// tract's conversion error.
        #[source]
        source: BoxError,
    },
    /// onnxruntime could not load the model (an operator or opset it lacks, an invalid graph,
    /// inputs or outputs that are not float32 tensors).
    #[error("onnxruntime cannot load the model: {0}")]
    OrtLoad(String),
    /// onnxruntime failed while running the model or reading its outputs.
    #[error("onnxruntime failed: {0}")]
    OrtRun(String),
    /// `VACCEL_ONNX_ENGINE=onnxruntime` and the library cannot be loaded.
    #[error("the onnxruntime engine was asked for but is unavailable: {0}")]
    Unavailable(String),
    /// tract panicked (a model it mishandles): caught so that it never unwinds into the runtime.
    #[error("tract panicked while {stage}: {message}")]
    Panic {
        /// What the plugin was doing (`loading the model`, `running the model`).
        stage: &'static str,
        /// The panic message.
        message: String,
    },
}

impl OnnxError {
    /// The vAccel code reported for this error: `EINVAL` for models and inputs the caller
    /// supplied, `EBACKEND` for failures of the inference itself.
    pub fn code(&self) -> ErrorCode {
        match self {
            OnnxError::NotOnnx { .. }
            | OnnxError::Load(_)
            | OnnxError::UnshapedInput { .. }
            | OnnxError::InputMismatch(_)
            | OnnxError::OrtLoad(_) => ErrorCode::EINVAL,
            OnnxError::Run(_)
            | OnnxError::Output { .. }
            | OnnxError::Panic { .. }
            | OnnxError::OrtRun(_)
            | OnnxError::Unavailable(_) => ErrorCode::EBACKEND,
        }
    }
}

impl From<OnnxError> for vaccel_core::Error {
    fn from(e: OnnxError) -> Self {
        let code = e.code();
        let message = chain(&e);
        if code == ErrorCode::EINVAL {
            vaccel_core::Error::invalid(format!("onnx: {message}"))
        } else {
            vaccel_core::Error::backend("onnx", code, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_chained_messages() {
        let inner: BoxError = "unexpected end of buffer".into();
        let e = OnnxError::NotOnnx {
            reason: "protobuf decoding failed".into(),
            source: Some(inner),
        };
        assert_eq!(e.code(), ErrorCode::EINVAL);
        let core: vaccel_core::Error = e.into();
        assert_eq!(core.code(), ErrorCode::EINVAL);
        let text = core.to_string();
        assert!(
            text.contains("protobuf decoding failed: unexpected end of buffer"),
            "{text}"
        );

        let e = OnnxError::Panic {
            stage: "running the model",
            message: "index out of bounds".into(),
        };
        let core: vaccel_core::Error = e.into();
        assert_eq!(core.code(), ErrorCode::EBACKEND);
        assert!(core.to_string().contains("index out of bounds"));
    }
}
