//! Scalar types and enumeration values of upstream's headers (spec §1.2, §1.3, §1.7).
//!
//! C enums are plain integers here (`u32` for the `*_t` enums, `i32` for error codes): values
//! come from C callers and plugins, and an out-of-range discriminant in a Rust enum would be
//! undefined behaviour. The typed Rust enums live in `vaccel-core`; tests in the C API crate
//! check that both lists agree.

/// `vaccel_id_t` (`vaccel/id.h`): object ids; valid ids are > 0, 0 means "unset".
pub type vaccel_id_t = i64;

/// `PATH_MAX` on Linux: the size of `struct vaccel_session`'s `rundir` array.
pub const PATH_MAX: usize = 4096;

/// `VACCEL_ENUM_STR_MAX` (`vaccel/utils/enum.h`): buffer size for enum names.
pub const VACCEL_ENUM_STR_MAX: usize = 128;

/// `vaccel_op_type_t` (`vaccel/op.h`).
pub type vaccel_op_type_t = u32;
/// No-op (dispatch cost).
pub const VACCEL_OP_NOOP: vaccel_op_type_t = 0;
/// Call a function of a shared library.
pub const VACCEL_OP_EXEC: vaccel_op_type_t = 1;
/// Call a function of a library resource.
pub const VACCEL_OP_EXEC_WITH_RESOURCE: vaccel_op_type_t = 2;
/// Image classification.
pub const VACCEL_OP_IMAGE_CLASSIFY: vaccel_op_type_t = 3;
/// Object detection.
pub const VACCEL_OP_IMAGE_DETECT: vaccel_op_type_t = 4;
/// Image segmentation.
pub const VACCEL_OP_IMAGE_SEGMENT: vaccel_op_type_t = 5;
/// Pose estimation.
pub const VACCEL_OP_IMAGE_POSE: vaccel_op_type_t = 6;
/// Depth estimation.
pub const VACCEL_OP_IMAGE_DEPTH: vaccel_op_type_t = 7;
/// Load a TensorFlow model.
pub const VACCEL_OP_TF_MODEL_LOAD: vaccel_op_type_t = 8;
/// Unload a TensorFlow model.
pub const VACCEL_OP_TF_MODEL_UNLOAD: vaccel_op_type_t = 9;
/// Run a TensorFlow model.
pub const VACCEL_OP_TF_MODEL_RUN: vaccel_op_type_t = 10;
/// Load a TensorFlow Lite model.
pub const VACCEL_OP_TFLITE_MODEL_LOAD: vaccel_op_type_t = 11;
/// Unload a TensorFlow Lite model.
pub const VACCEL_OP_TFLITE_MODEL_UNLOAD: vaccel_op_type_t = 12;
/// Run a TensorFlow Lite model.
pub const VACCEL_OP_TFLITE_MODEL_RUN: vaccel_op_type_t = 13;
/// Load a TorchScript model.
pub const VACCEL_OP_TORCH_MODEL_LOAD: vaccel_op_type_t = 14;
/// Run a TorchScript model.
pub const VACCEL_OP_TORCH_MODEL_RUN: vaccel_op_type_t = 15;
/// SGEMM on torch tensors (deprecated upstream).
pub const VACCEL_OP_TORCH_SGEMM: vaccel_op_type_t = 16;
/// BLAS single-precision matrix multiply.
pub const VACCEL_OP_BLAS_SGEMM: vaccel_op_type_t = 17;
/// FPGA array copy (deprecated upstream).
pub const VACCEL_OP_FPGA_ARRAYCOPY: vaccel_op_type_t = 18;
/// FPGA matrix multiply (deprecated upstream).
pub const VACCEL_OP_FPGA_MMULT: vaccel_op_type_t = 19;
/// FPGA parallel add/mult (deprecated upstream).
pub const VACCEL_OP_FPGA_PARALLEL: vaccel_op_type_t = 20;
/// FPGA vector add (deprecated upstream).
pub const VACCEL_OP_FPGA_VECTORADD: vaccel_op_type_t = 21;
/// Min/max over doubles (deprecated upstream).
pub const VACCEL_OP_MINMAX: vaccel_op_type_t = 22;
/// OpenCV pass-through.
pub const VACCEL_OP_OPENCV: vaccel_op_type_t = 23;
/// One past the last operation; the size of `struct vaccel_plugin`'s `ops` array.
pub const VACCEL_OP_MAX: vaccel_op_type_t = 24;

/// `vaccel_resource_type_t` (`vaccel/resource.h`).
pub type vaccel_resource_type_t = u32;
/// A shared library.
pub const VACCEL_RESOURCE_LIB: vaccel_resource_type_t = 0;
/// Data files.
pub const VACCEL_RESOURCE_DATA: vaccel_resource_type_t = 1;
/// A model.
pub const VACCEL_RESOURCE_MODEL: vaccel_resource_type_t = 2;
/// One past the last resource type; the size of a session's per-type arrays.
pub const VACCEL_RESOURCE_MAX: vaccel_resource_type_t = 3;

/// `vaccel_blob_type_t` (`vaccel/blob.h`).
pub type vaccel_blob_type_t = u32;
/// A file on disk (`path` set, `data` loaded on demand).
pub const VACCEL_BLOB_FILE: vaccel_blob_type_t = 0;
/// Bytes in memory (`data` set, no `path`).
pub const VACCEL_BLOB_BUFFER: vaccel_blob_type_t = 1;
/// A file whose bytes are also mapped in memory (`path` and `data` set).
pub const VACCEL_BLOB_MAPPED: vaccel_blob_type_t = 2;
/// One past the last blob type; also what `vaccel_blob_release` leaves in `type`.
pub const VACCEL_BLOB_MAX: vaccel_blob_type_t = 3;

/// `vaccel_path_type_t` (`vaccel/utils/path.h`).
pub type vaccel_path_type_t = u32;
/// Local regular file(s).
pub const VACCEL_PATH_LOCAL_FILE: vaccel_path_type_t = 0;
/// A local directory.
pub const VACCEL_PATH_LOCAL_DIR: vaccel_path_type_t = 1;
/// URL(s) downloaded at registration.
pub const VACCEL_PATH_REMOTE_FILE: vaccel_path_type_t = 2;
/// One past the last path type.
pub const VACCEL_PATH_MAX: vaccel_path_type_t = 3;

/// `vaccel_log_level_t` (`vaccel/log.h`).
pub type vaccel_log_level_t = u32;
/// Errors only (the default).
pub const VACCEL_LOG_ERROR: vaccel_log_level_t = 1;
/// Errors and warnings.
pub const VACCEL_LOG_WARN: vaccel_log_level_t = 2;
/// Lifecycle information too.
pub const VACCEL_LOG_INFO: vaccel_log_level_t = 3;
/// Per-operation detail too.
pub const VACCEL_LOG_DEBUG: vaccel_log_level_t = 4;
/// One past the last level.
pub const VACCEL_LOG_MAX: vaccel_log_level_t = 5;

/// `vaccel_plugin_type_t` (`vaccel/plugin.h`): a bitmask; session flags are a hint of it.
pub type vaccel_plugin_type_t = u32;
/// Runs on the CPU.
pub const VACCEL_PLUGIN_CPU: vaccel_plugin_type_t = 0x0001;
/// Runs on a GPU.
pub const VACCEL_PLUGIN_GPU: vaccel_plugin_type_t = 0x0002;
/// Runs on an FPGA.
pub const VACCEL_PLUGIN_FPGA: vaccel_plugin_type_t = 0x0004;
/// Pure software.
pub const VACCEL_PLUGIN_SOFTWARE: vaccel_plugin_type_t = 0x0008;
/// TensorFlow backend.
pub const VACCEL_PLUGIN_TENSORFLOW: vaccel_plugin_type_t = 0x0010;
/// Torch backend.
pub const VACCEL_PLUGIN_TORCH: vaccel_plugin_type_t = 0x0020;
/// NVIDIA Jetson.
pub const VACCEL_PLUGIN_JETSON: vaccel_plugin_type_t = 0x0040;
/// Generic.
pub const VACCEL_PLUGIN_GENERIC: vaccel_plugin_type_t = 0x0080;
/// Debugging (noop).
pub const VACCEL_PLUGIN_DEBUG: vaccel_plugin_type_t = 0x0100;
/// Forwards to a remote runtime (upstream: VirtIO).
pub const VACCEL_PLUGIN_REMOTE: vaccel_plugin_type_t = 0x4000;
/// Every type.
pub const VACCEL_PLUGIN_ALL: vaccel_plugin_type_t = 0xffff;
/// Upstream's enum guard (`ALL + 1`).
pub const VACCEL_PLUGIN_MAX: vaccel_plugin_type_t = 0x10000;

/// Success (`vaccel/error.h`).
pub const VACCEL_OK: i32 = 0;
/// `EPERM`.
pub const VACCEL_EPERM: i32 = 1;
/// `ENOENT`.
pub const VACCEL_ENOENT: i32 = 2;
/// `EIO`.
pub const VACCEL_EIO: i32 = 5;
/// `ENOEXEC`.
pub const VACCEL_ENOEXEC: i32 = 8;
/// `EBADF`.
pub const VACCEL_EBADF: i32 = 9;
/// `EAGAIN`.
pub const VACCEL_EAGAIN: i32 = 11;
/// `ENOMEM`.
pub const VACCEL_ENOMEM: i32 = 12;
/// `EACCES`.
pub const VACCEL_EACCES: i32 = 13;
/// `EFAULT`.
pub const VACCEL_EFAULT: i32 = 14;
/// `EBUSY`.
pub const VACCEL_EBUSY: i32 = 16;
/// `EEXIST`.
pub const VACCEL_EEXIST: i32 = 17;
/// `ENODEV`.
pub const VACCEL_ENODEV: i32 = 19;
/// `ENOTDIR`.
pub const VACCEL_ENOTDIR: i32 = 20;
/// `EINVAL`.
pub const VACCEL_EINVAL: i32 = 22;
/// `ENOSPC`.
pub const VACCEL_ENOSPC: i32 = 28;
/// `EROFS`.
pub const VACCEL_EROFS: i32 = 30;
/// `EMLINK`.
pub const VACCEL_EMLINK: i32 = 31;
/// `ERANGE`.
pub const VACCEL_ERANGE: i32 = 34;
/// `ENAMETOOLONG`.
pub const VACCEL_ENAMETOOLONG: i32 = 36;
/// `ENOSYS`.
pub const VACCEL_ENOSYS: i32 = 38;
/// `ELOOP`.
pub const VACCEL_ELOOP: i32 = 40;
/// `EPROTO`: the backend failed.
pub const VACCEL_EBACKEND: i32 = 71;
/// `ELIBBAD`.
pub const VACCEL_ELIBBAD: i32 = 80;
/// `EUSERS`.
pub const VACCEL_EUSERS: i32 = 87;
/// `ENOTSUP`.
pub const VACCEL_ENOTSUP: i32 = 95;
/// `ECONNRESET`: the session subsystem is unavailable.
pub const VACCEL_ESESS: i32 = 104;
/// `EINPROGRESS`.
pub const VACCEL_EINPROGRESS: i32 = 115;
/// `EREMOTEIO`.
pub const VACCEL_EREMOTEIO: i32 = 121;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_have_upstream_values() {
        assert_eq!(VACCEL_OP_OPENCV, 23);
        assert_eq!(VACCEL_OP_MAX, 24);
        assert_eq!(VACCEL_RESOURCE_MAX, 3);
        assert_eq!(VACCEL_BLOB_MAPPED, 2);
        assert_eq!(VACCEL_PATH_REMOTE_FILE, 2);
        assert_eq!(VACCEL_LOG_DEBUG, 4);
        assert_eq!(
            VACCEL_PLUGIN_SOFTWARE | VACCEL_PLUGIN_GENERIC | VACCEL_PLUGIN_CPU,
            0x89
        );
        assert_eq!(VACCEL_ESESS, 104);
        assert_eq!(VACCEL_EBACKEND, 71);
    }
}
