//! The plugin's errors and their mapping to [`vaccel_core::Error`].

pub(crate) use vaccel_core::error::chain;
use vaccel_core::{Error, ErrorCode, TorchDataType};

use crate::NAME;

/// How to get a build that runs models, appended to the "built without libtorch" message.
pub(crate) const ENABLE_HINT: &str = "rebuild with `--features libtorch` against a PyTorch \
     2.13.0 install (`pip install torch==2.13.0`, then build with LIBTORCH_USE_PYTORCH=1 and \
     that Python's venv active; see plugins/torch/README.md)";

/// Every failure of the plugin.
#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    /// The crate was built without the `libtorch` feature, so it cannot run anything.
    #[error("built without the libtorch feature: {ENABLE_HINT}")]
    NotBuilt,
    /// The model resource has no file or buffer to load.
    #[error("model resource {0} has no file")]
    NoModelFile(vaccel_core::Id),
    /// The model's bytes are not a TorchScript archive (a zip file) at all.
    #[error("{origin} is not a TorchScript archive (no zip header)")]
    NotTorchScript {
        /// Resource and file name, e.g. `resource 3 (cnn.pt)`.
        origin: String,
    },
    /// libtorch refused to load the model (not TorchScript, saved by an incompatible PyTorch,
    /// corrupt archive...).
    #[cfg(feature = "libtorch")]
    #[error("cannot load {origin}: {}", crate::engine::brief(source))]
    Load {
        /// Resource and file name.
        origin: String,
        /// libtorch's error.
        #[source]
        source: tch::TchError,
    },
    /// An input tensor's dimensions are negative or their product overflows.
    #[error("input {index}: invalid dimensions {dims:?}")]
    InputDims {
        /// Input position.
        index: usize,
        /// Dimensions given.
        dims: Vec<i64>,
    },
    /// An input tensor's byte size is not `product(dims) * element size`.
    #[error(
        "input {index}: dims {dims:?} of {data_type:?} need {expected} bytes, the tensor holds {found}"
    )]
    InputSize {
        /// Input position.
        index: usize,
        /// Dimensions given.
        dims: Vec<i64>,
        /// Element type given.
        data_type: TorchDataType,
        /// Bytes the dims and type need.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The model's forward method failed (wrong input count, shapes or types for the model,
    /// or an error inside the model).
    #[cfg(feature = "libtorch")]
    #[error("{origin}: forward failed: {}", crate::engine::brief(source))]
    Forward {
        /// Resource and file name.
        origin: String,
        /// libtorch's error.
        #[source]
        source: tch::TchError,
    },
    /// A libtorch tensor operation failed outside `forward` (conversions, sgemm).
    #[cfg(feature = "libtorch")]
    #[error("{what}: {}", crate::engine::brief(source))]
    Tensor {
        /// What was being done.
        what: &'static str,
        /// libtorch's error.
        #[source]
        source: tch::TchError,
    },
    /// More outputs were asked for than the model returned.
    #[error("the model returned {available} output tensors, {requested} were requested")]
    OutputCount {
        /// Tensors the model returned (tuples and lists flattened).
        available: usize,
        /// Outputs asked for.
        requested: usize,
    },
    /// The model returned something that is not a tensor (or a tuple or list of them), or a
    /// tensor whose element type vAccel cannot carry.
    #[error("output {index}: {what} cannot be returned as a vAccel torch tensor")]
    UnsupportedOutput {
        /// Output position (after flattening).
        index: usize,
        /// What it is.
        what: String,
    },
    /// `torch_sgemm` operands that are not FLOAT or not `m x k`, `k x n`, `m x n`.
    #[error("torch_sgemm: {0}")]
    SgemmOperand(String),
    /// libtorch or its binding panicked; the call was abandoned.
    #[error("libtorch panicked during {what}: {message}")]
    Panic {
        /// What was being done.
        what: &'static str,
        /// The panic's message.
        message: String,
    },
}

impl TorchError {
    /// The vAccel code reported for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            TorchError::NotBuilt => ErrorCode::ENOTSUP,
            TorchError::NoModelFile(_)
            | TorchError::NotTorchScript { .. }
            | TorchError::InputDims { .. }
            | TorchError::InputSize { .. }
            | TorchError::OutputCount { .. }
            | TorchError::SgemmOperand(_) => ErrorCode::EINVAL,
            #[cfg(feature = "libtorch")]
            TorchError::Load { .. } => ErrorCode::EINVAL,
            TorchError::UnsupportedOutput { .. } => ErrorCode::ENOTSUP,
            #[cfg(feature = "libtorch")]
            TorchError::Forward { .. } | TorchError::Tensor { .. } => ErrorCode::EBACKEND,
            TorchError::Panic { .. } => ErrorCode::EBACKEND,
        }
    }
}

impl From<TorchError> for Error {
    fn from(e: TorchError) -> Error {
        let code = e.code();
        // libtorch's own messages carry the whole C++ backtrace; `Display` keeps their first
        // lines, which is why the chain is not walked for them.
        let text = match &e {
            #[cfg(feature = "libtorch")]
            TorchError::Load { .. } | TorchError::Forward { .. } | TorchError::Tensor { .. } => {
                e.to_string()
            }
            _ => chain(&e),
        };
        match e {
            TorchError::NotBuilt => Error::declined(NAME, text),
            _ if code == ErrorCode::EINVAL => Error::invalid(format!("torch: {text}")),
            _ if code == ErrorCode::ENOTSUP => Error::unsupported(format!("torch: {text}")),
            _ => Error::backend(NAME, code, text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_built_is_a_decline_that_says_how_to_enable() {
        let e = Error::from(TorchError::NotBuilt);
        assert!(matches!(e, Error::Declined { .. }), "{e:?}");
        assert_eq!(e.code(), ErrorCode::ENOTSUP);
        let text = e.to_string();
        assert!(text.contains("--features libtorch"), "{text}");
        assert!(text.contains("LIBTORCH_USE_PYTORCH=1"), "{text}");
    }

    #[test]
    fn caller_mistakes_are_einval() {
        let e = Error::from(TorchError::InputSize {
            index: 1,
            dims: vec![2, 3],
            data_type: TorchDataType::Float,
            expected: 24,
            found: 20,
        });
        assert_eq!(e.code(), ErrorCode::EINVAL);
        assert!(e.to_string().contains("need 24 bytes"), "{e}");
        let e = Error::from(TorchError::OutputCount {
            available: 1,
            requested: 2,
        });
        assert_eq!(e.code(), ErrorCode::EINVAL);
        let e = Error::from(TorchError::UnsupportedOutput {
            index: 0,
            what: "a string".into(),
        });
        assert_eq!(e.code(), ErrorCode::ENOTSUP);
        let e = Error::from(TorchError::Panic {
            what: "forward",
            message: "boom".into(),
        });
        assert_eq!(e.code(), ErrorCode::EBACKEND);
    }
}
