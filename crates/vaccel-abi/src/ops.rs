//! Helper types of the TensorFlow, TensorFlow Lite and Torch operations (`vaccel/ops/tf.h`,
//! `vaccel/ops/tflite.h`, `vaccel/ops/torch.h`).

use std::ffi::{c_char, c_int, c_void};

/// `enum vaccel_tf_data_type` (values as TensorFlow's `TF_DataType`; 1..=23).
pub type vaccel_tf_data_type = u32;
/// `VACCEL_TF_FLOAT`.
pub const VACCEL_TF_FLOAT: vaccel_tf_data_type = 1;
/// `VACCEL_TF_UINT64`, the largest value.
pub const VACCEL_TF_UINT64: vaccel_tf_data_type = 23;
/// `enum vaccel_tflite_data_type` (values as TFLite's `TfLiteType`; 0..=18).
pub type vaccel_tflite_data_type = u32;
/// `VACCEL_TFLITE_FLOAT32`.
pub const VACCEL_TFLITE_FLOAT32: vaccel_tflite_data_type = 1;
/// `enum vaccel_torch_data_type` (1..=7).
pub type vaccel_torch_data_type = u32;
/// `VACCEL_TORCH_FLOAT`.
pub const VACCEL_TORCH_FLOAT: vaccel_torch_data_type = 7;

/// `struct vaccel_tf_buffer`: run options and other opaque bytes.
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_tf_buffer {
    /// The bytes (`malloc`ed when the buffer owns them).
    pub data: *mut c_void,
    /// Number of bytes.
    pub size: usize,
}

/// `struct vaccel_tf_node`: a graph node (operation name and output index).
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_tf_node {
    /// Operation name (`strdup`ed by `vaccel_tf_node_init`).
    pub name: *mut c_char,
    /// Output index.
    pub id: c_int,
}

/// `struct vaccel_tf_tensor`.
///
/// ```c
/// struct vaccel_tf_tensor { void *data; size_t size; bool owned; int nr_dims; int64_t *dims;
///                           enum vaccel_tf_data_type data_type; };
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_tf_tensor {
    /// The bytes.
    pub data: *mut c_void,
    /// Number of bytes.
    pub size: usize,
    /// Whether `data` is freed with the tensor.
    pub owned: bool,
    /// Number of dimensions.
    pub nr_dims: c_int,
    /// The dimensions (`nr_dims` entries, owned by the tensor).
    pub dims: *mut i64,
    /// Element type.
    pub data_type: vaccel_tf_data_type,
}

/// `struct vaccel_tf_status`: what a TensorFlow operation reports besides its return code.
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_tf_status {
    /// Status code (0 = OK).
    pub code: u8,
    /// Message (`strdup`ed).
    pub message: *mut c_char,
}

/// `struct vaccel_tflite_tensor`: as the TF tensor, with `int32_t` dims.
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_tflite_tensor {
    /// The bytes.
    pub data: *mut c_void,
    /// Number of bytes.
    pub size: usize,
    /// Whether `data` is freed with the tensor.
    pub owned: bool,
    /// Number of dimensions.
    pub nr_dims: c_int,
    /// The dimensions.
    pub dims: *mut i32,
    /// Element type.
    pub data_type: vaccel_tflite_data_type,
}

/// `struct vaccel_torch_buffer`: run options.
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_torch_buffer {
    /// The bytes.
    pub data: *mut c_char,
    /// Number of bytes.
    pub size: usize,
}

/// `struct vaccel_torch_tensor`: as the TF tensor, with an `int64_t` dimension count.
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_torch_tensor {
    /// The bytes.
    pub data: *mut c_void,
    /// Number of bytes.
    pub size: usize,
    /// Whether `data` is freed with the tensor.
    pub owned: bool,
    /// Number of dimensions.
    pub nr_dims: i64,
    /// The dimensions.
    pub dims: *mut i64,
    /// Element type.
    pub data_type: vaccel_torch_data_type,
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn tf_layouts() {
        assert_eq!(size_of::<vaccel_tf_buffer>(), 16);
        assert_eq!(offset_of!(vaccel_tf_buffer, data), 0);
        assert_eq!(offset_of!(vaccel_tf_buffer, size), 8);
        assert_eq!(size_of::<vaccel_tf_node>(), 16);
        assert_eq!(offset_of!(vaccel_tf_node, name), 0);
        assert_eq!(offset_of!(vaccel_tf_node, id), 8);
        assert_eq!(size_of::<vaccel_tf_tensor>(), 40);
        assert_eq!(offset_of!(vaccel_tf_tensor, data), 0);
        assert_eq!(offset_of!(vaccel_tf_tensor, size), 8);
        assert_eq!(offset_of!(vaccel_tf_tensor, owned), 16);
        assert_eq!(offset_of!(vaccel_tf_tensor, nr_dims), 20);
        assert_eq!(offset_of!(vaccel_tf_tensor, dims), 24);
        assert_eq!(offset_of!(vaccel_tf_tensor, data_type), 32);
        assert_eq!(size_of::<vaccel_tf_status>(), 16);
        assert_eq!(offset_of!(vaccel_tf_status, code), 0);
        assert_eq!(offset_of!(vaccel_tf_status, message), 8);
    }

    #[test]
    fn tflite_layout() {
        assert_eq!(size_of::<vaccel_tflite_tensor>(), 40);
        assert_eq!(offset_of!(vaccel_tflite_tensor, owned), 16);
        assert_eq!(offset_of!(vaccel_tflite_tensor, nr_dims), 20);
        assert_eq!(offset_of!(vaccel_tflite_tensor, dims), 24);
        assert_eq!(offset_of!(vaccel_tflite_tensor, data_type), 32);
    }

    #[test]
    fn torch_layouts() {
        assert_eq!(size_of::<vaccel_torch_buffer>(), 16);
        assert_eq!(offset_of!(vaccel_torch_buffer, size), 8);
        assert_eq!(size_of::<vaccel_torch_tensor>(), 48);
        assert_eq!(offset_of!(vaccel_torch_tensor, owned), 16);
        assert_eq!(offset_of!(vaccel_torch_tensor, nr_dims), 24);
        assert_eq!(offset_of!(vaccel_torch_tensor, dims), 32);
        assert_eq!(offset_of!(vaccel_torch_tensor, data_type), 40);
    }
}
