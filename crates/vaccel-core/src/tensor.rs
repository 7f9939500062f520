//! Tensors, nodes and statuses of the TensorFlow, TensorFlow Lite and Torch operations.

use std::borrow::Cow;
use std::fmt;

use crate::error::{Error, Result};
use crate::types::vaccel_enum;

vaccel_enum! {
    /// TensorFlow element types (`enum vaccel_tf_data_type`).
    TfDataType: u32, "VACCEL_TF" {
        /// f32.
        Float = 1 => "FLOAT",
        /// f64.
        Double = 2 => "DOUBLE",
        /// i32.
        Int32 = 3 => "INT32",
        /// u8.
        Uint8 = 4 => "UINT8",
        /// i16.
        Int16 = 5 => "INT16",
        /// i8.
        Int8 = 6 => "INT8",
        /// TF string.
        String = 7 => "STRING",
        /// Complex of two f32 (alias `COMPLEX`).
        Complex64 = 8 => "COMPLEX64",
        /// i64.
        Int64 = 9 => "INT64",
        /// bool.
        Bool = 10 => "BOOL",
        /// Quantized i8.
        Qint8 = 11 => "QINT8",
        /// Quantized u8.
        Quint8 = 12 => "QUINT8",
        /// Quantized i32.
        Qint32 = 13 => "QINT32",
        /// bfloat16.
        Bfloat16 = 14 => "BFLOAT16",
        /// Quantized i16.
        Qint16 = 15 => "QINT16",
        /// Quantized u16.
        Quint16 = 16 => "QUINT16",
        /// u16.
        Uint16 = 17 => "UINT16",
        /// Complex of two f64.
        Complex128 = 18 => "COMPLEX128",
        /// f16.
        Half = 19 => "HALF",
        /// Resource handle.
        Resource = 20 => "RESOURCE",
        /// Variant.
        Variant = 21 => "VARIANT",
        /// u32.
        Uint32 = 22 => "UINT32",
        /// u64.
        Uint64 = 23 => "UINT64",
    }
}

vaccel_enum! {
    /// TensorFlow Lite element types (`enum vaccel_tflite_data_type`). On the wire the numeric
    /// value is sent, not the (shifted) proto name.
    TfLiteDataType: u32, "VACCEL_TFLITE" {
        /// No type.
        NoType = 0 => "NOTYPE",
        /// f32.
        Float32 = 1 => "FLOAT32",
        /// i32.
        Int32 = 2 => "INT32",
        /// u8.
        Uint8 = 3 => "UINT8",
        /// i64.
        Int64 = 4 => "INT64",
        /// String.
        String = 5 => "STRING",
        /// bool.
        Bool = 6 => "BOOL",
        /// i16.
        Int16 = 7 => "INT16",
        /// Complex of two f32.
        Complex64 = 8 => "COMPLEX64",
        /// i8.
        Int8 = 9 => "INT8",
        /// f16.
        Float16 = 10 => "FLOAT16",
        /// f64.
        Float64 = 11 => "FLOAT64",
        /// Complex of two f64.
        Complex128 = 12 => "COMPLEX128",
        /// u64.
        Uint64 = 13 => "UINT64",
        /// Resource.
        Resource = 14 => "RESOURCE",
        /// Variant.
        Variant = 15 => "VARIANT",
        /// u32.
        Uint32 = 16 => "UINT32",
        /// u16.
        Uint16 = 17 => "UINT16",
        /// 4-bit int.
        Int4 = 18 => "INT4",
    }
}

vaccel_enum! {
    /// Torch element types (`enum vaccel_torch_data_type`).
    TorchDataType: u32, "VACCEL_TORCH" {
        /// u8.
        Byte = 1 => "BYTE",
        /// i8.
        Char = 2 => "CHAR",
        /// i16.
        Short = 3 => "SHORT",
        /// i32.
        Int = 4 => "INT",
        /// i64.
        Long = 5 => "LONG",
        /// f16.
        Half = 6 => "HALF",
        /// f32.
        Float = 7 => "FLOAT",
    }
}

/// An element type of one framework.
pub trait DataType: Copy + fmt::Debug + Eq + Send + Sync + 'static {
    /// The numeric value.
    fn to_value(self) -> u32;
    /// The type with this numeric value.
    fn try_from_value(value: u32) -> Option<Self>;
}

macro_rules! data_type {
    ($($t:ty),+) => {$(
        impl DataType for $t {
            fn to_value(self) -> u32 { self.value() }
            fn try_from_value(value: u32) -> Option<Self> { Self::from_value(value) }
        }
    )+};
}
data_type!(TfDataType, TfLiteDataType, TorchDataType);

/// A tensor: dimensions, element type and bytes (borrowed or owned).
#[derive(Clone, PartialEq)]
pub struct Tensor<'a, D> {
    /// Dimensions.
    pub dims: Vec<i64>,
    /// Element type.
    pub data_type: D,
    /// The bytes.
    pub data: Cow<'a, [u8]>,
}

impl<D: fmt::Debug> fmt::Debug for Tensor<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("dims", &self.dims)
            .field("data_type", &self.data_type)
            .field("size", &self.data.len())
            .finish()
    }
}

impl<'a, D: DataType> Tensor<'a, D> {
    /// A tensor over borrowed bytes. At least one dimension is required (upstream rule) and
    /// dimensions must not be negative.
    pub fn new(dims: Vec<i64>, data_type: D, data: impl Into<Cow<'a, [u8]>>) -> Result<Self> {
        if dims.is_empty() {
            return Err(Error::invalid("a tensor needs at least one dimension"));
        }
        if dims.iter().any(|&d| d < 0) {
            return Err(Error::invalid("tensor dimensions must not be negative"));
        }
        Ok(Tensor {
            dims,
            data_type,
            data: data.into(),
        })
    }

    /// A copy owning its bytes.
    pub fn into_owned(self) -> Tensor<'static, D> {
        Tensor {
            dims: self.dims,
            data_type: self.data_type,
            data: Cow::Owned(self.data.into_owned()),
        }
    }

    /// A tensor borrowing this one's bytes.
    pub fn borrowed(&self) -> Tensor<'_, D> {
        Tensor {
            dims: self.dims.clone(),
            data_type: self.data_type,
            data: Cow::Borrowed(&self.data),
        }
    }

    /// Number of elements (product of dims), `None` on overflow.
    pub fn element_count(&self) -> Option<u64> {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
    }
}

/// A TensorFlow tensor.
pub type TfTensor<'a> = Tensor<'a, TfDataType>;
/// A TensorFlow Lite tensor (dims fit in `i32` on the C side).
pub type TfLiteTensor<'a> = Tensor<'a, TfLiteDataType>;
/// A Torch tensor.
pub type TorchTensor<'a> = Tensor<'a, TorchDataType>;

/// A graph node of a TensorFlow model: operation name and output index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TfNode {
    /// Operation name.
    pub name: String,
    /// Output index.
    pub id: i32,
}

impl TfNode {
    /// A node.
    pub fn new(name: impl Into<String>, id: i32) -> Self {
        TfNode {
            name: name.into(),
            id,
        }
    }
}

/// The status a TensorFlow operation reports besides its return code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TfStatus {
    /// Status code (0 = OK).
    pub code: u8,
    /// Message.
    pub message: String,
}

impl TfStatus {
    /// A status.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        TfStatus {
            code,
            message: message.into(),
        }
    }
}

/// The result of a TensorFlow run: output tensors and status.
#[derive(Debug, Clone, PartialEq)]
pub struct TfRunOutput {
    /// One tensor per output node.
    pub outputs: Vec<TfTensor<'static>>,
    /// Status.
    pub status: TfStatus,
}

/// The result of a TensorFlow Lite run: output tensors and the interpreter status byte.
#[derive(Debug, Clone, PartialEq)]
pub struct TfLiteRunOutput {
    /// Output tensors.
    pub outputs: Vec<TfLiteTensor<'static>>,
    /// Status (0 = OK).
    pub status: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_type_values() {
        assert_eq!(TfDataType::Float.value(), 1);
        assert_eq!(TfDataType::Uint64.value(), 23);
        assert_eq!(TfLiteDataType::Float32.value(), 1);
        assert_eq!(TfLiteDataType::Int4.value(), 18);
        assert_eq!(TorchDataType::Float.value(), 7);
        assert_eq!(TorchDataType::from_value(0), None);
    }

    #[test]
    fn tensor_rules() {
        assert!(TfTensor::new(vec![], TfDataType::Float, &[][..]).is_err());
        assert!(TfTensor::new(vec![-1], TfDataType::Float, &[][..]).is_err());
        let t = TfTensor::new(vec![1, 224, 224, 3], TfDataType::Float, vec![0u8; 4]).unwrap();
        assert_eq!(t.element_count(), Some(150528));
        let huge = TorchTensor::new(vec![i64::MAX, 4], TorchDataType::Float, vec![]).unwrap();
        assert_eq!(huge.element_count(), None);
    }
}
