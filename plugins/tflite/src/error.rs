//! The plugin's errors and their mapping to [`vaccel_core::Error`].

use std::fmt;
use std::path::PathBuf;
pub(crate) use vaccel_core::error::chain;

use vaccel_core::{Error, ErrorCode};

use crate::PLUGIN_NAME;

/// What to do when the runtime is missing, appended to every "not found" message.
pub(crate) const INSTALL_HINT: &str = "install it with `python3 -m pip install \
     ai-edge-litert==2.3.0` or set VACCEL_LITERT_LIB to the path of libLiteRt.so";

/// A `LiteRtStatus` code, displayed with its upstream name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiteRtStatus(pub i32);

impl LiteRtStatus {
    /// Upstream's enumerator name (`litert_common.h`), if the code is known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "kLiteRtStatusOk",
            1 => "kLiteRtStatusErrorInvalidArgument",
            2 => "kLiteRtStatusErrorMemoryAllocationFailure",
            3 => "kLiteRtStatusErrorRuntimeFailure",
            4 => "kLiteRtStatusErrorMissingInputTensor",
            5 => "kLiteRtStatusErrorUnsupported",
            6 => "kLiteRtStatusErrorNotFound",
            7 => "kLiteRtStatusErrorTimeoutExpired",
            8 => "kLiteRtStatusErrorWrongVersion",
            9 => "kLiteRtStatusErrorUnknown",
            10 => "kLiteRtStatusErrorAlreadyExists",
            100 => "kLiteRtStatusCancelled",
            500 => "kLiteRtStatusErrorFileIO",
            501 => "kLiteRtStatusErrorInvalidFlatbuffer",
            502 => "kLiteRtStatusErrorDynamicLoading",
            503 => "kLiteRtStatusErrorSerialization",
            504 => "kLiteRtStatusErrorCompilation",
            1000 => "kLiteRtStatusErrorIndexOOB",
            1001 => "kLiteRtStatusErrorInvalidIrType",
            1002 => "kLiteRtStatusErrorInvalidGraphInvariant",
            1003 => "kLiteRtStatusErrorGraphModification",
            _ => return None,
        })
    }
}

impl fmt::Display for LiteRtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "status {}", self.0),
        }
    }
}

/// Every failure of the plugin and of its LiteRT binding.
#[derive(Debug, thiserror::Error)]
pub enum TfliteError {
    /// No LiteRT library was found by any discovery step (see the crate docs).
    #[error("LiteRT runtime (libLiteRt.so) not found ({tried}); {INSTALL_HINT}")]
    NotFound {
        /// What each discovery step found, `; `-separated.
        tried: String,
    },
    /// The LiteRT library is unavailable: the discovery error, shared by every later call.
    #[error(transparent)]
    Unavailable(&'static TfliteError),
    /// A model file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// A candidate library could not be loaded by the dynamic loader.
    #[error("cannot load {}: {source}", path.display())]
    Load {
        /// The path or file name given to the loader.
        path: PathBuf,
        /// The loader's error.
        #[source]
        source: libloading::Error,
    },
    /// The library lacks a function of the LiteRT 2.3 C API (another version, or not LiteRT).
    #[error("{} lacks {symbol} (not the LiteRT 2.3 C API; {INSTALL_HINT}): {source}", path.display())]
    MissingSymbol {
        /// The library.
        path: PathBuf,
        /// The missing symbol.
        symbol: &'static str,
        /// The loader's error.
        #[source]
        source: libloading::Error,
    },
    /// A LiteRT call returned an error status.
    #[error("{call} failed: {status}")]
    Call {
        /// The C function.
        call: &'static str,
        /// What it returned.
        status: LiteRtStatus,
    },
    /// A LiteRT call reported success but returned a null object.
    #[error("{0} returned no object")]
    Null(&'static str),
    /// The bytes are not a TFLite flatbuffer (no `TFL3` identifier at offset 4).
    #[error("not a TFLite model (no TFL3 file identifier)")]
    NotTflite,
    /// The model has no signature (LiteRT adds a default one, so this means a broken model).
    #[error("the model has no signature")]
    NoSignature,
    /// The signature's inputs or outputs are not those of its subgraph.
    #[error("signature lists {signature} tensors but its subgraph {subgraph}")]
    SignatureMismatch {
        /// Count in the signature.
        signature: usize,
        /// Count in the subgraph.
        subgraph: usize,
    },
    /// A tensor's rank is beyond `LITERT_TENSOR_MAX_RANK`.
    #[error("tensor '{tensor}' has rank {rank}, more than LiteRT's 8")]
    BadRank {
        /// Tensor name.
        tensor: String,
        /// Rank reported.
        rank: usize,
    },
    /// A model tensor has a dynamic (or absurdly large) shape; only static shapes are run.
    #[error(
        "tensor '{tensor}' has a dynamic or oversized shape {dims:?} (only static shapes are supported)"
    )]
    DynamicShape {
        /// Tensor name.
        tensor: String,
        /// Dimensions as the model declares them.
        dims: Vec<i32>,
    },
    /// A model tensor has an element type without a fixed size (string, int4...).
    #[error("tensor '{tensor}' has unsupported element type {element_type}")]
    UnsupportedType {
        /// Tensor name.
        tensor: String,
        /// `LiteRtElementType` / `TfLiteType` value.
        element_type: i32,
    },
    /// A buffer LiteRT allocated is smaller than its tensor.
    #[error("buffer of tensor '{tensor}' holds {got} bytes, the tensor needs {needed}")]
    BufferTooSmall {
        /// Tensor name.
        tensor: String,
        /// Bytes the tensor needs.
        needed: usize,
        /// Bytes the buffer holds.
        got: usize,
    },
    /// The model is too large to copy.
    #[error("model of {0} bytes is too large")]
    TooLarge(usize),
    /// A run was given the wrong number of input tensors.
    #[error("the model takes {expected} input tensors, got {found}")]
    InputCount {
        /// Inputs of the model.
        expected: usize,
        /// Inputs given.
        found: usize,
    },
    /// An input tensor's element type is not the model's.
    #[error("input {index}: the model takes element type {expected}, got {found}")]
    InputType {
        /// Input position.
        index: usize,
        /// The model's type (vAccel / TFLite numbering).
        expected: u32,
        /// The type given.
        found: u32,
    },
    /// An input tensor's byte size is not the model's.
    #[error("input {index}: the model takes {expected} bytes, got {found}")]
    InputSize {
        /// Input position.
        index: usize,
        /// Bytes the model's tensor holds.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// More outputs were asked for than the model has.
    #[error("the model has {available} output tensors, {requested} were requested")]
    OutputCount {
        /// Outputs of the model.
        available: usize,
        /// Outputs asked for.
        requested: usize,
    },
}

impl TfliteError {
    /// Whether the error means "this plugin cannot serve the call" (runtime missing, model in
    /// another format), so that the runtime tries the next plugin.
    pub fn is_decline(&self) -> bool {
        if let TfliteError::Unavailable(inner) = self {
            return inner.is_decline();
        }
        matches!(
            self,
            TfliteError::NotFound { .. }
                | TfliteError::Load { .. }
                | TfliteError::MissingSymbol { .. }
                | TfliteError::NotTflite
        )
    }
}

impl From<&TfliteError> for Error {
    fn from(e: &TfliteError) -> Error {
        let mut text = format!("tflite: {}", chain(e));
        if e.is_decline() && !matches!(e, TfliteError::NotTflite) && !text.contains(INSTALL_HINT) {
            text.push_str("; ");
            text.push_str(INSTALL_HINT);
        }
        match e {
            _ if e.is_decline() => Error::declined(PLUGIN_NAME, text),
            TfliteError::InputCount { .. }
            | TfliteError::InputType { .. }
            | TfliteError::InputSize { .. }
            | TfliteError::OutputCount { .. } => Error::invalid(text),
            TfliteError::DynamicShape { .. }
            | TfliteError::UnsupportedType { .. }
            | TfliteError::BadRank { .. } => Error::unsupported(text),
            TfliteError::TooLarge(_) => Error::backend(PLUGIN_NAME, ErrorCode::ENOMEM, text),
            _ => Error::backend(PLUGIN_NAME, ErrorCode::EBACKEND, text),
        }
    }
}

impl From<TfliteError> for Error {
    fn from(e: TfliteError) -> Error {
        Error::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names() {
        assert_eq!(
            LiteRtStatus(501).to_string(),
            "kLiteRtStatusErrorInvalidFlatbuffer (501)"
        );
        assert_eq!(LiteRtStatus(77).to_string(), "status 77");
    }

    #[test]
    fn mapping_to_vaccel_codes() {
        let e: Error = TfliteError::NotFound { tried: "x".into() }.into();
        assert!(matches!(e, Error::Declined { .. }));
        assert!(e.to_string().contains("pip install ai-edge-litert==2.3.0"));
        let e: Error = TfliteError::InputSize {
            index: 0,
            expected: 4,
            found: 3,
        }
        .into();
        assert_eq!(e.code(), ErrorCode::EINVAL);
        let e: Error = TfliteError::Call {
            call: "LiteRtRunCompiledModel",
            status: LiteRtStatus(3),
        }
        .into();
        assert_eq!(e.code(), ErrorCode::EBACKEND);
        assert!(matches!(
            Error::from(TfliteError::NotTflite),
            Error::Declined { .. }
        ));
    }
}
