//! The one error type of the runtime and its mapping to vAccel's errno-style codes.

use std::borrow::Cow;
use std::fmt;
use std::io;

use crate::types::{ArgType, Id, OpType, ResourceType};

/// vAccel's numeric error codes (`vaccel/error.h`): Linux errno values.
///
/// `VACCEL_OK` (0) is not an error and has no variant; see [`VACCEL_OK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
#[allow(missing_docs)] // the names are the documentation: upstream's codes
pub enum ErrorCode {
    EPERM = 1,
    ENOENT = 2,
    EIO = 5,
    ENOEXEC = 8,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    ENOTDIR = 20,
    EINVAL = 22,
    ENOSPC = 28,
    EROFS = 30,
    EMLINK = 31,
    ERANGE = 34,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    ELOOP = 40,
    /// `VACCEL_EBACKEND` (= `EPROTO`): the backend failed.
    EBACKEND = 71,
    ELIBBAD = 80,
    EUSERS = 87,
    ENOTSUP = 95,
    /// `VACCEL_ESESS` (= `ECONNRESET`): session subsystem unavailable.
    ESESS = 104,
    EINPROGRESS = 115,
    EREMOTEIO = 121,
}

/// The success code of the C API and the wire.
pub const VACCEL_OK: i32 = 0;

impl ErrorCode {
    /// Every code, in numeric order (for tests that check lists agree).
    pub const ALL: [ErrorCode; 28] = [
        Self::EPERM,
        Self::ENOENT,
        Self::EIO,
        Self::ENOEXEC,
        Self::EBADF,
        Self::EAGAIN,
        Self::ENOMEM,
        Self::EACCES,
        Self::EFAULT,
        Self::EBUSY,
        Self::EEXIST,
        Self::ENODEV,
        Self::ENOTDIR,
        Self::EINVAL,
        Self::ENOSPC,
        Self::EROFS,
        Self::EMLINK,
        Self::ERANGE,
        Self::ENAMETOOLONG,
        Self::ENOSYS,
        Self::ELOOP,
        Self::EBACKEND,
        Self::ELIBBAD,
        Self::EUSERS,
        Self::ENOTSUP,
        Self::ESESS,
        Self::EINPROGRESS,
        Self::EREMOTEIO,
    ];

    /// The numeric value (an errno).
    pub const fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code with this numeric value, if it is one of vAccel's.
    pub fn from_i32(value: i32) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_i32() == value)
    }

    /// Upstream's macro name, e.g. `VACCEL_EINVAL`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::EPERM => "VACCEL_EPERM",
            Self::ENOENT => "VACCEL_ENOENT",
            Self::EIO => "VACCEL_EIO",
            Self::ENOEXEC => "VACCEL_ENOEXEC",
            Self::EBADF => "VACCEL_EBADF",
            Self::EAGAIN => "VACCEL_EAGAIN",
            Self::ENOMEM => "VACCEL_ENOMEM",
            Self::EACCES => "VACCEL_EACCES",
            Self::EFAULT => "VACCEL_EFAULT",
            Self::EBUSY => "VACCEL_EBUSY",
            Self::EEXIST => "VACCEL_EEXIST",
            Self::ENODEV => "VACCEL_ENODEV",
            Self::ENOTDIR => "VACCEL_ENOTDIR",
            Self::EINVAL => "VACCEL_EINVAL",
            Self::ENOSPC => "VACCEL_ENOSPC",
            Self::EROFS => "VACCEL_EROFS",
            Self::EMLINK => "VACCEL_EMLINK",
            Self::ERANGE => "VACCEL_ERANGE",
            Self::ENAMETOOLONG => "VACCEL_ENAMETOOLONG",
            Self::ENOSYS => "VACCEL_ENOSYS",
            Self::ELOOP => "VACCEL_ELOOP",
            Self::EBACKEND => "VACCEL_EBACKEND",
            Self::ELIBBAD => "VACCEL_ELIBBAD",
            Self::EUSERS => "VACCEL_EUSERS",
            Self::ENOTSUP => "VACCEL_ENOTSUP",
            Self::ESESS => "VACCEL_ESESS",
            Self::EINPROGRESS => "VACCEL_EINPROGRESS",
            Self::EREMOTEIO => "VACCEL_EREMOTEIO",
        }
    }

    /// Maps an OS errno (from an `io::Error`) to a vAccel code; unknown ones become `EIO`.
    pub fn from_errno(errno: i32) -> Self {
        // EOPNOTSUPP == ENOTSUP on Linux; EPROTO == EBACKEND; ECONNRESET == ESESS.
        Self::from_i32(errno).unwrap_or(Self::EIO)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an argument was rejected by the validation rules of upstream's `vaccel/arg.h`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// The argument's type is not the one this position requires.
    #[error("expected type {expected}, found {found}")]
    WrongType {
        /// Type required here.
        expected: ArgType,
        /// Type the argument carries.
        found: ArgType,
    },
    /// A scalar's size is not exactly the size of its type.
    #[error("size {found} is not the {expected} bytes of the type")]
    WrongSize {
        /// Size the type requires.
        expected: usize,
        /// Size the argument has.
        found: usize,
    },
    /// An array's size is zero or not a multiple of its element size.
    #[error("size {size} is not a non-zero multiple of the element size {elem}")]
    BadArraySize {
        /// Element size of the array type.
        elem: usize,
        /// Size the argument has.
        size: usize,
    },
    /// A bool holds a byte other than 0 or 1.
    #[error("bool value {0} is neither 0 nor 1")]
    BadBool(u8),
    /// A string is empty or not NUL-terminated.
    #[error("string is empty or not NUL-terminated")]
    NotNulTerminated,
    /// A string is not valid UTF-8 where text is required.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A buffer argument is empty.
    #[error("buffer is empty")]
    EmptyBuffer,
    /// A custom argument's id is not the one expected.
    #[error("custom type id {found} is not the expected {expected}")]
    WrongCustomId {
        /// Custom id required.
        expected: u32,
        /// Custom id carried.
        found: u32,
    },
    /// A custom validator or deserializer refused the bytes.
    #[error("rejected by the custom validator")]
    CustomRejected,
    /// A numeric arg type outside upstream's table.
    #[error("unknown argument type {0}")]
    UnknownType(u32),
    /// The argument refers to read-only memory but is used as an output.
    #[error("argument is read-only")]
    ReadOnly,
    /// An output argument is too small for the value written into it.
    #[error("output needs {needed} bytes but holds {capacity}")]
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        capacity: usize,
    },
}

/// Every failure of the runtime, its plugins and its callers' input.
///
/// [`Error::code`] is the single mapping to vAccel codes, used by the C API and the RPC
/// status mapping alike.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller-supplied value is invalid (null, zero, inconsistent lengths...).
    #[error("invalid argument: {0}")]
    InvalidArgument(Cow<'static, str>),
    /// An argument at `index` fails its type or size rules.
    #[error("argument {index}: {source}")]
    Arg {
        /// Position of the argument in its array.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: ArgError,
    },
    /// An arg-array position beyond its count.
    #[error("argument position {position} out of range (count {count})")]
    OutOfRange {
        /// Position requested.
        position: usize,
        /// Number of arguments.
        count: usize,
    },
    /// A fixed-capacity (wrapped) arg array cannot grow.
    #[error("argument array is full (capacity {capacity})")]
    ArrayFull {
        /// Its fixed capacity.
        capacity: usize,
    },
    /// The session's plugin does not implement the operation.
    #[error("plugin {plugin} does not implement {op}")]
    OpNotImplemented {
        /// Plugin bound to the session.
        plugin: String,
        /// The operation asked for.
        op: OpType,
    },
    /// A feature or combination the runtime does not support.
    #[error("not supported: {0}")]
    NotSupported(Cow<'static, str>),
    /// A plugin implementing the operation cannot serve this call (a model format it does not
    /// read, its runtime library missing): the session tries the next local plugin that
    /// implements the operation, and reports this only when none can.
    #[error("plugin {plugin} cannot serve this call: {reason}")]
    Declined {
        /// The plugin that declined.
        plugin: String,
        /// Why.
        reason: Cow<'static, str>,
    },
    /// No loaded plugin can serve a session with this hint.
    #[error("could not select a plugin for hint {hint:#x}: {reason}")]
    NoPlugin {
        /// The session's flags.
        hint: u32,
        /// Why none matched.
        reason: &'static str,
    },
    /// A plugin named in the configuration could not be found or loaded.
    #[error("could not load plugin '{name}': {reason}")]
    PluginNotFound {
        /// Name or path as given.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A library loaded as a plugin does not export a vAccel plugin.
    #[error("'{name}' is not a vAccel plugin: {reason}")]
    NotAPlugin {
        /// Name or path as given.
        name: String,
        /// What is missing.
        reason: String,
    },
    /// A plugin's descriptor is unusable (missing name/version, incompatible major version...).
    #[error("plugin {name} refused: {reason}")]
    PluginRejected {
        /// Plugin name (or path when the name is missing).
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A plugin with the same name is already registered in this runtime.
    #[error("plugin {0} is already registered")]
    PluginExists(String),
    /// An op used a resource that is not registered with the session.
    #[error("resource {resource} is not registered to session {session}")]
    NotRegistered {
        /// The resource.
        resource: Id,
        /// The session.
        session: Id,
    },
    /// An op was given a resource of the wrong type.
    #[error("invalid resource type: expected {expected}, found {found}")]
    WrongResourceType {
        /// Type the op requires.
        expected: ResourceType,
        /// Type of the resource given.
        found: ResourceType,
    },
    /// A resource was used after [`crate::Resource::release`].
    #[error("resource {0} has been released")]
    Released(Id),
    /// Lookup of an id or object that does not exist.
    #[error("not found: {0}")]
    NotFound(Cow<'static, str>),
    /// An id pool has no free id left.
    #[error("no free {0} ids left")]
    IdsExhausted(&'static str),
    /// A file or directory already exists where one is to be created.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A path is longer than the system allows.
    #[error("path too long: {0}")]
    NameTooLong(String),
    /// A file-system or OS operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path involved.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Downloading a remote resource failed.
    #[error("could not download {url}: {source}")]
    Download {
        /// The URL.
        url: String,
        /// The transport or HTTP error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An environment variable or configuration value is malformed.
    #[error("invalid value '{value}' for {key}: {reason}")]
    Config {
        /// Variable or key name.
        key: String,
        /// The value found.
        value: String,
        /// What a valid value looks like.
        reason: &'static str,
    },
    /// A plugin (or a remote runtime) failed with an explicit vAccel code.
    #[error("{origin}: {message} ({code})")]
    Backend {
        /// Plugin name, or where the error came from.
        origin: String,
        /// The vAccel code to report.
        code: ErrorCode,
        /// What happened.
        message: String,
    },
}

impl Error {
    /// The vAccel code reported for this error (C API return value, RPC `ffi_error`).
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_)
            | Error::Arg { .. }
            | Error::WrongResourceType { .. }
            | Error::Released(_)
            | Error::Config { .. }
            | Error::PluginRejected { .. } => ErrorCode::EINVAL,
            Error::OutOfRange { .. } | Error::ArrayFull { .. } => ErrorCode::ERANGE,
            Error::OpNotImplemented { .. }
            | Error::NotSupported(_)
            | Error::Declined { .. }
            | Error::NoPlugin { .. } => ErrorCode::ENOTSUP,
            Error::PluginNotFound { .. } | Error::NotFound(_) => ErrorCode::ENOENT,
            Error::NotAPlugin { .. } => ErrorCode::ELIBBAD,
            Error::PluginExists(_) | Error::AlreadyExists(_) => ErrorCode::EEXIST,
            Error::NotRegistered { .. } => ErrorCode::EPERM,
            Error::IdsExhausted(_) => ErrorCode::EUSERS,
            Error::NameTooLong(_) => ErrorCode::ENAMETOOLONG,
            Error::Io { source, .. } => source
                .raw_os_error()
                .map_or(ErrorCode::EIO, ErrorCode::from_errno),
            Error::Download { .. } => ErrorCode::EREMOTEIO,
            Error::Backend { code, .. } => *code,
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidArgument(reason.into())
    }

    /// Shorthand for [`Error::NotSupported`].
    pub fn unsupported(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::NotSupported(reason.into())
    }

    /// The plugin named `plugin` cannot serve this call; the next capable plugin is tried.
    pub fn declined(plugin: impl Into<String>, reason: impl Into<Cow<'static, str>>) -> Self {
        Error::Declined {
            plugin: plugin.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl Into<Cow<'static, str>>) -> Self {
        Error::NotFound(what.into())
    }

    /// A failure with an explicit code, reported by `origin` (a plugin name, "remote"...).
    pub fn backend(origin: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Backend {
            origin: origin.into(),
            code,
            message: message.into(),
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An argument error at `index`.
    pub fn arg(index: usize, source: ArgError) -> Self {
        Error::Arg { index, source }
    }
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `err` and every `source()` under it, `: `-separated, skipping a cause whose text is already
/// there (wrappers often repeat it): how a backend's error chain becomes one runtime message.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(s) = cur {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cur = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_upstream_values() {
        let expected = [
            ("VACCEL_EINVAL", 22),
            ("VACCEL_ENOMEM", 12),
            ("VACCEL_ENOTSUP", 95),
            ("VACCEL_EINPROGRESS", 115),
            ("VACCEL_EBUSY", 16),
            ("VACCEL_EEXIST", 17),
            ("VACCEL_ENOENT", 2),
            ("VACCEL_ELIBBAD", 80),
            ("VACCEL_ENODEV", 19),
            ("VACCEL_EIO", 5),
            ("VACCEL_ESESS", 104),
            ("VACCEL_EBACKEND", 71),
            ("VACCEL_ENOEXEC", 8),
            ("VACCEL_ENAMETOOLONG", 36),
            ("VACCEL_EUSERS", 87),
            ("VACCEL_EPERM", 1),
            ("VACCEL_ELOOP", 40),
            ("VACCEL_EMLINK", 31),
            ("VACCEL_ENOSPC", 28),
            ("VACCEL_ENOTDIR", 20),
            ("VACCEL_EROFS", 30),
            ("VACCEL_EACCES", 13),
            ("VACCEL_EBADF", 9),
            ("VACCEL_EREMOTEIO", 121),
            ("VACCEL_EFAULT", 14),
            ("VACCEL_ERANGE", 34),
            ("VACCEL_EAGAIN", 11),
            ("VACCEL_ENOSYS", 38),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (name, value) in expected {
            let code = ErrorCode::from_i32(value).unwrap();
            assert_eq!(code.name(), name);
            assert_eq!(code.as_i32(), value);
        }
        assert!(ErrorCode::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn io_errors_keep_their_errno() {
        let e = Error::io("open x", io::Error::from_raw_os_error(2));
        assert_eq!(e.code(), ErrorCode::ENOENT);
        let e = Error::io("odd", io::Error::other("no errno"));
        assert_eq!(e.code(), ErrorCode::EIO);
        assert_eq!(ErrorCode::from_errno(9999), ErrorCode::EIO);
    }

    #[test]
    fn backend_errors_carry_any_code() {
        for code in ErrorCode::ALL {
            assert_eq!(Error::backend("remote", code, "x").code(), code);
        }
    }
}
