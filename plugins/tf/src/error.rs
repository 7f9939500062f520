//! The plugin's errors and their mapping to the runtime's [`vaccel_core::Error`].

use std::io;
use std::path::PathBuf;
use vaccel_core::error::chain;

use vaccel_core::{ErrorCode, Id};

/// TensorFlow's status codes (`TF_Code`, the values of `error_codes.proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TfCode(pub i32);

impl TfCode {
    /// `TF_OK`.
    pub const OK: TfCode = TfCode(0);
    /// `TF_INVALID_ARGUMENT`.
    pub const INVALID_ARGUMENT: TfCode = TfCode(3);
    /// `TF_NOT_FOUND`.
    pub const NOT_FOUND: TfCode = TfCode(5);

    /// The name TensorFlow prints for the code (`INVALID_ARGUMENT`).
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "OK",
            1 => "CANCELLED",
            2 => "UNKNOWN",
            3 => "INVALID_ARGUMENT",
            4 => "DEADLINE_EXCEEDED",
            5 => "NOT_FOUND",
            6 => "ALREADY_EXISTS",
            7 => "PERMISSION_DENIED",
            8 => "RESOURCE_EXHAUSTED",
            9 => "FAILED_PRECONDITION",
            10 => "ABORTED",
            11 => "OUT_OF_RANGE",
            12 => "UNIMPLEMENTED",
            13 => "INTERNAL",
            14 => "UNAVAILABLE",
            15 => "DATA_LOSS",
            16 => "UNAUTHENTICATED",
            _ => "UNRECOGNIZED",
        }
    }

    /// The vAccel code a failure with this TF code is reported with: the errno of the same
    /// meaning where there is one, `EBACKEND` for failures inside TensorFlow.
    pub fn vaccel_code(self) -> ErrorCode {
        match self.0 {
            3 => ErrorCode::EINVAL,
            5 => ErrorCode::ENOENT,
            6 => ErrorCode::EEXIST,
            7 | 16 => ErrorCode::EACCES,
            8 => ErrorCode::ENOMEM,
            11 => ErrorCode::ERANGE,
            12 => ErrorCode::ENOTSUP,
            _ => ErrorCode::EBACKEND,
        }
    }
}

/// What can go wrong finding TensorFlow, loading a model or running it.
#[derive(Debug, thiserror::Error)]
pub enum TfError {
    /// No TensorFlow C library could be opened (see the crate docs for where it is looked
    /// for); `tried` lists each place and why it failed.
    #[error(
        "the TensorFlow C library was not found ({tried}); install it with \
         `pip install tensorflow-cpu` (or point VACCEL_PYTHON at a python that has it), or set \
         VACCEL_TF_LIB to libtensorflow_cc.so.2 (pip wheel) or libtensorflow.so.2 (libtensorflow \
         tarball)"
    )]
    LibraryNotFound {
        /// Every attempt, `; `-separated.
        tried: String,
    },
    /// A library was opened but lacks a C API function (not a TensorFlow C library, or one
    /// too old).
    #[error("{path} is not a usable TensorFlow C library")]
    MissingSymbol {
        /// The library.
        path: PathBuf,
        /// The loader's error naming the symbol.
        #[source]
        source: libloading::Error,
    },
    /// TensorFlow reported a failure (`TF_Status` not OK) from the call named in `context`.
    #[error("{context} failed with TF status {} {}: {message}", .code.0, .code.name())]
    Tf {
        /// The C API call (`TF_SessionRun`...).
        context: &'static str,
        /// TensorFlow's code.
        code: TfCode,
        /// TensorFlow's message.
        message: String,
    },
    /// A C API call returned no object and no status (allocation failure).
    #[error("{0} returned NULL")]
    Null(&'static str),
    /// `tf_model_run` or `tf_model_unload` on a model this session has not loaded.
    #[error("model {resource} is not loaded in session {session}; call tf_model_load first")]
    NotLoaded {
        /// The session.
        session: Id,
        /// The model resource.
        resource: Id,
    },
    /// A model resource that holds no file TensorFlow can read.
    #[error("resource {resource}: {reason}")]
    BadModel {
        /// The model resource.
        resource: Id,
        /// What is wrong with it.
        reason: String,
    },
    /// A node names no operation of the model's graph.
    #[error("{role} node '{name}': no operation of that name in the graph")]
    NodeNotFound {
        /// `input` or `output`.
        role: &'static str,
        /// The operation name asked for.
        name: String,
    },
    /// A node's output index is not one of its operation's outputs.
    #[error("{role} node '{name}:{id}': operation has {count} output(s)")]
    NodeIndex {
        /// `input` or `output`.
        role: &'static str,
        /// The operation name.
        name: String,
        /// The index asked for.
        id: i32,
        /// How many outputs the operation has.
        count: i32,
    },
    /// A node name that cannot be passed to C (it contains a NUL byte).
    #[error("{role} node name {name:?} contains a NUL byte")]
    NodeName {
        /// `input` or `output`.
        role: &'static str,
        /// The name.
        name: String,
    },
    /// An input tensor of an element type the plugin cannot pass (strings, resources,
    /// variants), or an output of such a type.
    #[error("{what}: element type {dtype} is not supported")]
    UnsupportedType {
        /// Which tensor.
        what: String,
        /// The type (vAccel name, or the raw TF number).
        dtype: String,
    },
    /// An input tensor's type differs from the type of the graph node it feeds.
    #[error("input {index} ('{node}'): tensor is {found} but the node produces {expected}")]
    TypeMismatch {
        /// Position of the input.
        index: usize,
        /// The node, `name:id`.
        node: String,
        /// The node's type.
        expected: String,
        /// The tensor's type.
        found: String,
    },
    /// An input tensor whose byte size is not its element count times its element size.
    #[error("input {index}: {dtype} tensor of dims {dims:?} needs {expected} bytes, got {found}")]
    SizeMismatch {
        /// Position of the input.
        index: usize,
        /// Its type.
        dtype: String,
        /// Its dimensions.
        dims: Vec<i64>,
        /// Bytes its dims and type need (`None`: the product overflows).
        expected: Describe,
        /// Bytes given.
        found: usize,
    },
    /// A `BOOL` input holding a byte other than 0 or 1 (TensorFlow reads bools as C++ `bool`).
    #[error("input {index}: BOOL tensor holds byte {value} at offset {offset} (must be 0 or 1)")]
    BadBool {
        /// Position of the input.
        index: usize,
        /// Offset of the first bad byte.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// A run given a node of another model's graph (a bug in the plugin, never the caller's
    /// input: nodes are looked up in the model they run on).
    #[error("a node of another model's graph was passed to a run")]
    ForeignNode,
    /// A count or rank that does not fit the C API's `int`.
    #[error("{0} does not fit in a C int")]
    TooMany(&'static str),
    /// TensorFlow returned an output whose size disagrees with its type and shape.
    #[error("output {index}: TensorFlow returned {found} bytes for {expected} expected")]
    BadOutput {
        /// Position of the output.
        index: usize,
        /// Bytes its type and shape need.
        expected: u64,
        /// Bytes returned.
        found: usize,
    },
    /// A file operation on a model failed (staging a SavedModel, reading a graph).
    #[error("{context}: {source}")]
    Io {
        /// What was done, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// A byte count that may have overflowed, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Describe(pub Option<u64>);

impl std::fmt::Display for Describe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("more than 2^64"),
        }
    }
}

impl TfError {
    /// The vAccel code reported for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            TfError::LibraryNotFound { .. } | TfError::MissingSymbol { .. } => ErrorCode::ENOTSUP,
            TfError::Tf { code, .. } => code.vaccel_code(),
            TfError::Null(_) => ErrorCode::ENOMEM,
            TfError::NotLoaded { .. }
            | TfError::BadModel { .. }
            | TfError::NodeNotFound { .. }
            | TfError::NodeIndex { .. }
            | TfError::NodeName { .. }
            | TfError::TypeMismatch { .. }
            | TfError::SizeMismatch { .. }
            | TfError::BadBool { .. }
            | TfError::TooMany(_) => ErrorCode::EINVAL,
            TfError::UnsupportedType { .. } => ErrorCode::ENOTSUP,
            TfError::BadOutput { .. } | TfError::ForeignNode => ErrorCode::EBACKEND,
            TfError::Io { source, .. } => source
                .raw_os_error()
                .map_or(ErrorCode::EIO, ErrorCode::from_errno),
        }
    }
}

impl From<TfError> for vaccel_core::Error {
    fn from(e: TfError) -> Self {
        match e {
            // The library is missing: another plugin may serve the call (§ Declined).
            TfError::LibraryNotFound { .. } | TfError::MissingSymbol { .. } => {
                vaccel_core::Error::declined(crate::NAME, chain(&e))
            }
            TfError::Io { context, source } => {
                vaccel_core::Error::io(format!("{}: {context}", crate::NAME), source)
            }
            other => {
                let code = other.code();
                let message = chain(&other);
                if code == ErrorCode::EINVAL && !matches!(other, TfError::Tf { .. }) {
                    vaccel_core::Error::invalid(format!("{}: {message}", crate::NAME))
                } else {
                    vaccel_core::Error::backend(crate::NAME, code, message)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_codes_map_to_vaccel_codes() {
        assert_eq!(TfCode::INVALID_ARGUMENT.vaccel_code(), ErrorCode::EINVAL);
        assert_eq!(TfCode::NOT_FOUND.vaccel_code(), ErrorCode::ENOENT);
        assert_eq!(TfCode(13).vaccel_code(), ErrorCode::EBACKEND);
        assert_eq!(TfCode(13).name(), "INTERNAL");
        assert_eq!(TfCode(99).name(), "UNRECOGNIZED");
        assert_eq!(TfCode::OK.name(), "OK");
    }

    #[test]
    fn tf_failures_keep_code_and_message() {
        let e = TfError::Tf {
            context: "TF_SessionRun",
            code: TfCode::INVALID_ARGUMENT,
            message: "You must feed a value for placeholder tensor 'x'".into(),
        };
        let core: vaccel_core::Error = e.into();
        assert_eq!(core.code(), ErrorCode::EINVAL);
        let text = core.to_string();
        assert!(
            text.contains("TF_SessionRun failed with TF status 3 INVALID_ARGUMENT"),
            "{text}"
        );
        assert!(text.contains("placeholder tensor 'x'"), "{text}");
    }

    #[test]
    fn missing_library_declines() {
        let e = TfError::LibraryNotFound {
            tried: "VACCEL_TF_LIB unset".into(),
        };
        let core: vaccel_core::Error = e.into();
        assert!(matches!(core, vaccel_core::Error::Declined { .. }));
        assert!(core.to_string().contains("pip install tensorflow-cpu"));
    }

    #[test]
    fn caller_mistakes_are_einval() {
        let e = TfError::SizeMismatch {
            index: 0,
            dtype: "FLOAT".into(),
            dims: vec![1, 2],
            expected: Describe(Some(8)),
            found: 7,
        };
        let core: vaccel_core::Error = e.into();
        assert_eq!(core.code(), ErrorCode::EINVAL);
        assert!(core.to_string().contains("needs 8 bytes, got 7"));
        let io = TfError::Io {
            context: "symlink x".into(),
            source: io::Error::from_raw_os_error(2),
        };
        assert_eq!(vaccel_core::Error::from(io).code(), ErrorCode::ENOENT);
    }
}
