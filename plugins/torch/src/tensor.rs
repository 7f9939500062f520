//! Checks on vAccel torch tensors that need no libtorch: element sizes and byte counts.
//!
//! libtorch copies `product(dims) * element size` bytes from the pointer it is given without
//! knowing the buffer's length, so every input goes through [`check_input`] first.

use vaccel_core::{TorchDataType, TorchTensor};

use crate::error::TorchError;

/// Size in bytes of one element of `data_type`.
pub fn element_size(data_type: TorchDataType) -> usize {
    match data_type {
        TorchDataType::Byte | TorchDataType::Char => 1,
        TorchDataType::Short | TorchDataType::Half => 2,
        TorchDataType::Int | TorchDataType::Float => 4,
        TorchDataType::Long => 8,
    }
}

/// Number of elements of `dims`: `None` when a dimension is negative or the product
/// overflows `usize`.
pub fn element_count(dims: &[i64]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
}

/// Checks that input `index` holds exactly the bytes its dims and element type say, and
/// returns that byte count.
pub fn check_input(index: usize, t: &TorchTensor<'_>) -> Result<usize, TorchError> {
    let expected = element_count(&t.dims)
        .and_then(|n| n.checked_mul(element_size(t.data_type)))
        .ok_or_else(|| TorchError::InputDims {
            index,
            dims: t.dims.clone(),
        })?;
    if t.data.len() != expected {
        return Err(TorchError::InputSize {
            index,
            dims: t.dims.clone(),
            data_type: t.data_type,
            expected,
            found: t.data.len(),
        });
    }
    Ok(expected)
}

/// Whether `head` starts like a zip archive, the container of every TorchScript file
/// (`torch.jit.save`). Cheaper and clearer than letting libtorch fail on a random file.
pub fn looks_like_torchscript(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04")
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn tensor(dims: Vec<i64>, data_type: TorchDataType, len: usize) -> TorchTensor<'static> {
        TorchTensor {
            dims,
            data_type,
            data: Cow::Owned(vec![0; len]),
        }
    }

    #[test]
    fn element_sizes_match_torch() {
        assert_eq!(element_size(TorchDataType::Byte), 1);
        assert_eq!(element_size(TorchDataType::Char), 1);
        assert_eq!(element_size(TorchDataType::Short), 2);
        assert_eq!(element_size(TorchDataType::Half), 2);
        assert_eq!(element_size(TorchDataType::Int), 4);
        assert_eq!(element_size(TorchDataType::Float), 4);
        assert_eq!(element_size(TorchDataType::Long), 8);
    }

    #[test]
    fn inputs_must_hold_exactly_their_bytes() {
        assert_eq!(
            check_input(0, &tensor(vec![2, 3], TorchDataType::Float, 24)).unwrap(),
            24
        );
        assert_eq!(
            check_input(0, &tensor(vec![4], TorchDataType::Long, 32)).unwrap(),
            32
        );
        assert_eq!(
            check_input(0, &tensor(vec![0, 5], TorchDataType::Half, 0)).unwrap(),
            0
        );
        assert!(matches!(
            check_input(2, &tensor(vec![2, 3], TorchDataType::Float, 23)),
            Err(TorchError::InputSize {
                index: 2,
                expected: 24,
                found: 23,
                ..
            })
        ));
        assert!(matches!(
            check_input(0, &tensor(vec![2, 3], TorchDataType::Float, 25)),
            Err(TorchError::InputSize { .. })
        ));
    }

    #[test]
    fn bad_dims_are_refused_before_any_arithmetic_wraps() {
        // The fields are public, so `TorchTensor::new`'s checks may have been bypassed.
        assert!(matches!(
            check_input(1, &tensor(vec![-1, 4], TorchDataType::Float, 0)),
            Err(TorchError::InputDims { index: 1, .. })
        ));
        assert!(matches!(
            check_input(0, &tensor(vec![i64::MAX, 4], TorchDataType::Float, 0)),
            Err(TorchError::InputDims { .. })
        ));
        // Fits as an element count, overflows once multiplied by the element size.
        let half = i64::try_from(usize::MAX / 2).unwrap_or(i64::MAX);
        assert!(matches!(
            check_input(0, &tensor(vec![half], TorchDataType::Long, 0)),
            Err(TorchError::InputDims { .. })
        ));
        assert_eq!(element_count(&[]), Some(1));
    }

    #[test]
    fn torchscript_sniffing() {
        assert!(looks_like_torchscript(b"PK\x03\x04rest of the archive"));
        assert!(!looks_like_torchscript(b"\x08\x01\x12ONNX"));
        assert!(!looks_like_torchscript(b"PK"));
        assert!(!looks_like_torchscript(b""));
    }
}
