//! Enumerations shared with upstream vAccel: same names, same numeric values.

use std::fmt;

/// An object id (`vaccel_id_t`). Valid ids are > 0; 0 means "unset".
pub type Id = i64;

/// Defines a C-like enum with its upstream numeric values, the `VACCEL_<PREFIX>_<NAME>` string,
/// the base string and the lowercase name, and a checked conversion from the number.
macro_rules! vaccel_enum {
    (
        $(#[$meta:meta])*
        $name:ident : $repr:ty, $prefix:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $base:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr($repr)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value ),+
        }

        impl $name {
            /// Every value, in numeric order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];
            /// Upstream's `<PREFIX>_MAX`: one past the largest value.
            pub const MAX: $repr = {
                let mut max = 0;
                $( if $value + 1 > max { max = $value + 1; } )+
                max
            };

            /// The numeric value.
            pub const fn value(self) -> $repr {
                self as $repr
            }

            /// The value with this number, if there is one.
            pub const fn from_value(value: $repr) -> Option<Self> {
                match value {
                    $( $value => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// Upstream's full name, e.g. `VACCEL_OP_EXEC`.
            pub const fn full_name(self) -> &'static str {
                match self {
                    $( $name::$variant => concat!($prefix, "_", $base), )+
                }
            }

            /// Upstream's base name, e.g. `EXEC`.
            pub const fn base_name(self) -> &'static str {
                match self {
                    $( $name::$variant => $base, )+
                }
            }

            /// Lowercase base name as upstream logs it, e.g. `image_classify`.
            pub fn name(self) -> String {
                self.base_name().to_ascii_lowercase()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.full_name())
            }
        }

        impl TryFrom<$repr> for $name {
            type Error = $repr;
            fn try_from(value: $repr) -> Result<Self, $repr> {
                Self::from_value(value).ok_or(value)
            }
        }
    };
}
pub(crate) use vaccel_enum;

vaccel_enum! {
    /// Operation types (`vaccel_op_type_t`).
    OpType: u8, "VACCEL_OP" {
        /// Does nothing; measures dispatch.
        Noop = 0 => "NOOP",
        /// Call a function of a shared library.
        Exec = 1 => "EXEC",
        /// Call a function of a library resource.
        ExecWithResource = 2 => "EXEC_WITH_RESOURCE",
        /// Image classification.
        ImageClassify = 3 => "IMAGE_CLASSIFY",
        /// Object detection.
        ImageDetect = 4 => "IMAGE_DETECT",
        /// Image segmentation.
        ImageSegment = 5 => "IMAGE_SEGMENT",
        /// Pose estimation.
        ImagePose = 6 => "IMAGE_POSE",
        /// Depth estimation.
        ImageDepth = 7 => "IMAGE_DEPTH",
        /// Load a TensorFlow model.
        TfModelLoad = 8 => "TF_MODEL_LOAD",
        /// Unload a TensorFlow model.
        TfModelUnload = 9 => "TF_MODEL_UNLOAD",
        /// Run a TensorFlow model.
        TfModelRun = 10 => "TF_MODEL_RUN",
        /// Load a TensorFlow Lite model.
        TfliteModelLoad = 11 => "TFLITE_MODEL_LOAD",
        /// Unload a TensorFlow Lite model.
        TfliteModelUnload = 12 => "TFLITE_MODEL_UNLOAD",
        /// Run a TensorFlow Lite model.
        TfliteModelRun = 13 => "TFLITE_MODEL_RUN",
        /// Load a TorchScript model.
        TorchModelLoad = 14 => "TORCH_MODEL_LOAD",
        /// Run a TorchScript model.
        TorchModelRun = 15 => "TORCH_MODEL_RUN",
        /// SGEMM on torch tensors (deprecated upstream).
        TorchSgemm = 16 => "TORCH_SGEMM",
        /// BLAS single-precision matrix multiply.
        BlasSgemm = 17 => "BLAS_SGEMM",
        /// FPGA array copy (deprecated upstream).
        FpgaArraycopy = 18 => "FPGA_ARRAYCOPY",
        /// FPGA matrix multiply (deprecated upstream).
        FpgaMmult = 19 => "FPGA_MMULT",
        /// FPGA parallel add/mult (deprecated upstream).
        FpgaParallel = 20 => "FPGA_PARALLEL",
        /// FPGA vector add (deprecated upstream).
        FpgaVectoradd = 21 => "FPGA_VECTORADD",
        /// Min/max over a double array (deprecated upstream).
        Minmax = 22 => "MINMAX",
        /// OpenCV pass-through.
        Opencv = 23 => "OPENCV",
    }
}

vaccel_enum! {
    /// Argument types (`vaccel_arg_type_t`).
    ArgType: u32, "VACCEL_ARG" {
        /// Untyped bytes, not validated.
        Raw = 0 => "RAW",
        /// `int8_t`.
        Int8 = 1 => "INT8",
        /// `int8_t[]`.
        Int8Array = 2 => "INT8_ARRAY",
        /// `int16_t`.
        Int16 = 3 => "INT16",
        /// `int16_t[]`.
        Int16Array = 4 => "INT16_ARRAY",
        /// `int32_t`.
        Int32 = 5 => "INT32",
        /// `int32_t[]`.
        Int32Array = 6 => "INT32_ARRAY",
        /// `int64_t`.
        Int64 = 7 => "INT64",
        /// `int64_t[]`.
        Int64Array = 8 => "INT64_ARRAY",
        /// `uint8_t`.
        Uint8 = 9 => "UINT8",
        /// `uint8_t[]`.
        Uint8Array = 10 => "UINT8_ARRAY",
        /// `uint16_t`.
        Uint16 = 11 => "UINT16",
        /// `uint16_t[]`.
        Uint16Array = 12 => "UINT16_ARRAY",
        /// `uint32_t`.
        Uint32 = 13 => "UINT32",
        /// `uint32_t[]`.
        Uint32Array = 14 => "UINT32_ARRAY",
        /// `uint64_t`.
        Uint64 = 15 => "UINT64",
        /// `uint64_t[]`.
        Uint64Array = 16 => "UINT64_ARRAY",
        /// `float`.
        Float32 = 17 => "FLOAT32",
        /// `float[]`.
        Float32Array = 18 => "FLOAT32_ARRAY",
        /// `double`.
        Float64 = 19 => "FLOAT64",
        /// `double[]`.
        Float64Array = 20 => "FLOAT64_ARRAY",
        /// `bool` (0 or 1).
        Bool = 21 => "BOOL",
        /// `bool[]`.
        BoolArray = 22 => "BOOL_ARRAY",
        /// `char`.
        Char = 23 => "CHAR",
        /// `char[]`.
        CharArray = 24 => "CHAR_ARRAY",
        /// `unsigned char`.
        Uchar = 25 => "UCHAR",
        /// `unsigned char[]`.
        UcharArray = 26 => "UCHAR_ARRAY",
        /// NUL-terminated string.
        String = 27 => "STRING",
        /// Non-empty byte buffer.
        Buffer = 28 => "BUFFER",
        /// Application-defined type with a custom id.
        Custom = 29 => "CUSTOM",
    }
}

impl ArgType {
    /// Element size for scalar and array types; `None` for RAW, STRING, BUFFER, CUSTOM.
    pub const fn elem_size(self) -> Option<usize> {
        use ArgType::*;
        match self {
            Int8 | Int8Array | Uint8 | Uint8Array | Bool | BoolArray | Char | CharArray | Uchar
            | UcharArray => Some(1),
            Int16 | Int16Array | Uint16 | Uint16Array => Some(2),
            Int32 | Int32Array | Uint32 | Uint32Array | Float32 | Float32Array => Some(4),
            Int64 | Int64Array | Uint64 | Uint64Array | Float64 | Float64Array => Some(8),
            Raw | String | Buffer | Custom => None,
        }
    }

    /// Whether this is one of the `*_ARRAY` types.
    pub const fn is_array(self) -> bool {
        use ArgType::*;
        matches!(
            self,
            Int8Array
                | Int16Array
                | Int32Array
                | Int64Array
                | Uint8Array
                | Uint16Array
                | Uint32Array
                | Uint64Array
                | Float32Array
                | Float64Array
                | BoolArray
                | CharArray
                | UcharArray
        )
    }
}

vaccel_enum! {
    /// Resource types (`vaccel_resource_type_t`).
    ResourceType: u32, "VACCEL_RESOURCE" {
        /// A shared library.
        Lib = 0 => "LIB",
        /// Data files.
        Data = 1 => "DATA",
        /// A model.
        Model = 2 => "MODEL",
    }
}

vaccel_enum! {
    /// Blob types (`vaccel_blob_type_t`).
    BlobType: u32, "VACCEL_BLOB" {
        /// A file on disk, read on demand.
        File = 0 => "FILE",
        /// Bytes in memory.
        Buffer = 1 => "BUFFER",
        /// A file the runtime owns, with its bytes loaded.
        Mapped = 2 => "MAPPED",
    }
}

vaccel_enum! {
    /// How a resource's paths are to be read (`vaccel_path_type_t`).
    PathType: u32, "VACCEL_PATH" {
        /// Local regular file(s).
        LocalFile = 0 => "LOCAL_FILE",
        /// A local directory.
        LocalDir = 1 => "LOCAL_DIR",
        /// URL(s) to download.
        RemoteFile = 2 => "REMOTE_FILE",
    }
}

vaccel_enum! {
    /// Log levels (`vaccel_log_level_t`).
    LogLevel: u8, "VACCEL_LOG" {
        /// Errors only (default).
        Error = 1 => "ERROR",
        /// Errors and warnings.
        Warn = 2 => "WARN",
        /// Lifecycle information too.
        Info = 3 => "INFO",
        /// Per-operation detail too.
        Debug = 4 => "DEBUG",
    }
}

bitflags::bitflags! {
    /// Plugin type bitmask (`vaccel_plugin_type_t`); a session's flags are a hint of this type.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PluginType: u32 {
        /// Runs on the CPU.
        const CPU = 0x0001;
        /// Runs on a GPU.
        const GPU = 0x0002;
        /// Runs on an FPGA.
        const FPGA = 0x0004;
        /// Pure software.
        const SOFTWARE = 0x0008;
        /// TensorFlow backend.
        const TENSORFLOW = 0x0010;
        /// Torch backend.
        const TORCH = 0x0020;
        /// NVIDIA Jetson.
        const JETSON = 0x0040;
        /// Generic.
        const GENERIC = 0x0080;
        /// Debugging (noop).
        const DEBUG = 0x0100;
        /// Forwards calls to a remote runtime (upstream: "virtio").
        const REMOTE = 0x4000;
        /// Every type.
        const ALL = 0xffff;
    }
}

/// A set of operations, one bit per [`OpType`]: checking membership is a single AND.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpSet(u32);

impl OpSet {
    /// No operation.
    pub const EMPTY: OpSet = OpSet(0);
    /// Every operation.
    pub const ALL: OpSet = OpSet((1 << OpType::MAX) - 1);

    /// A set of the given ops.
    pub const fn of(ops: &[OpType]) -> OpSet {
        let mut bits = 0u32;
        let mut rest = ops;
        while let [op, tail @ ..] = rest {
            bits |= 1 << *op as u32;
            rest = tail;
        }
        OpSet(bits)
    }

    /// Whether `op` is in the set.
    pub const fn contains(self, op: OpType) -> bool {
        self.0 & (1 << op as u32) != 0
    }

    /// The set with `op` added.
    pub const fn with(self, op: OpType) -> OpSet {
        OpSet(self.0 | (1 << op as u32))
    }

    /// The ops in the set, in numeric order.
    pub fn iter(self) -> impl Iterator<Item = OpType> {
        OpType::ALL
            .iter()
            .copied()
            .filter(move |op| self.contains(*op))
    }
}

/// A number never handed out before in this process: the generations of sessions and
/// resources (`Session::generation`, `Resource::generation`) come from here, so a generation
/// names one state of one object, even when a later object reuses the address of a freed one.
pub(crate) fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_types_match_upstream() {
        assert_eq!(OpType::MAX, 24);
        assert_eq!(OpType::ALL.len(), 24);
        for (i, op) in OpType::ALL.iter().enumerate() {
            assert_eq!(op.value() as usize, i);
        }
        assert_eq!(OpType::Exec.full_name(), "VACCEL_OP_EXEC");
        assert_eq!(OpType::ImageClassify.name(), "image_classify");
        assert_eq!(OpType::BlasSgemm.name(), "blas_sgemm");
        assert_eq!(OpType::Opencv.value(), 23);
        assert_eq!(OpType::try_from(24), Err(24));
    }

    #[test]
    fn arg_types_match_upstream() {
        assert_eq!(ArgType::MAX, 30);
        assert_eq!(ArgType::ALL.len(), 30);
        assert_eq!(ArgType::Float32Array.value(), 18);
        assert_eq!(ArgType::String.value(), 27);
        assert_eq!(ArgType::Custom.full_name(), "VACCEL_ARG_CUSTOM");
        assert_eq!(ArgType::Float64.elem_size(), Some(8));
        assert_eq!(ArgType::Buffer.elem_size(), None);
        assert!(ArgType::UcharArray.is_array());
        assert!(!ArgType::Uchar.is_array());
    }

    #[test]
    fn other_enums_match_upstream() {
        assert_eq!(ResourceType::Model.value(), 2);
        assert_eq!(ResourceType::MAX, 3);
        assert_eq!(BlobType::Mapped.value(), 2);
        assert_eq!(PathType::RemoteFile.value(), 2);
        assert_eq!(LogLevel::Debug.value(), 4);
        assert_eq!(LogLevel::MAX, 5);
        assert_eq!(PluginType::REMOTE.bits(), 0x4000);
        assert_eq!(
            (PluginType::SOFTWARE | PluginType::GENERIC | PluginType::CPU).bits(),
            0x89
        );
    }

    #[test]
    fn op_sets() {
        let s = OpSet::of(&[OpType::Noop, OpType::Opencv]);
        assert!(s.contains(OpType::Noop) && s.contains(OpType::Opencv));
        assert!(!s.contains(OpType::Exec));
        assert_eq!(OpSet::ALL.iter().count(), 24);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![OpType::Noop, OpType::Opencv]
        );
    }
}
