//! TorchScript models on libtorch's CPU backend, through `tch`.
//!
//! Every libtorch call uses tch's fallible (`f_`) variant, and each public entry point runs
//! inside [`guarded`], so neither a libtorch exception nor a panic in the binding escapes as a
//! panic: both become a [`TorchError`].

use std::borrow::Cow;
use std::fmt;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use tch::{CModule, Device, IValue, Kind, TchError, Tensor};
use vaccel_core::{Blob, TorchDataType, TorchTensor};

use crate::error::TorchError;
use crate::tensor::{check_input, element_count, element_size, looks_like_torchscript};

/// Longest libtorch message kept in an error (its messages can hold whole C++ backtraces).
const MAX_MESSAGE: usize = 600;

/// A TorchScript module loaded on the CPU in eval mode.
///
/// `CModule` is `Send + Sync` and libtorch's interpreter runs `forward` concurrently on one
/// module, so runs are not serialised.
pub struct Model {
    module: CModule,
    origin: String,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The useful part of a libtorch error: the last `...Error: ` line of an interpreter
/// traceback (what actually went wrong), else the first line, without the C++ backtrace
/// that follows `Exception raised from`, cut to a readable length.
pub(crate) fn brief(e: &TchError) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Exception raised from"))
        .filter(|l| !l.is_empty())
        .collect();
    let is_error_line = |l: &&&str| {
        l.split_once(": ").is_some_and(|(head, _)| {
            head.ends_with("Error") && head.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        })
    };
    let line = lines
        .iter()
        .rev()
        .find(is_error_line)
        .or(lines.first())
        .copied()
        .unwrap_or("(no message)");
    if line.len() <= MAX_MESSAGE {
        return line.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", line.get(..end).unwrap_or_default())
}

/// Runs `f`, turning a panic (tch's infallible helpers panic on libtorch errors) into
/// [`TorchError::Panic`].
fn guarded<T>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, TorchError>,
) -> Result<T, TorchError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        Err(TorchError::Panic {
            what,
            message: message.lines().next().unwrap_or_default().to_owned(),
        })
    })
}

/// The first bytes of a blob, without reading a whole file.
pub(crate) fn head(blob: &Blob) -> Vec<u8> {
    const LEN: usize = 4;
    if let Some(data) = blob.data() {
        return data.iter().take(LEN).copied().collect();
    }
    let mut head = Vec::with_capacity(LEN);
    if let Some(path) = blob.path() {
        // An unreadable file fails the sniff; libtorch is not asked to open it either.
        if let Ok(f) = std::fs::File::open(path) {
            let _ = f.take(LEN as u64).read_to_end(&mut head);
        }
    }
    head
}

impl Model {
    /// Loads the TorchScript module in `blob` (its bytes when it has them in memory, else its
    /// file) onto the CPU and puts it in eval mode. `origin` names it in errors and logs.
    pub fn load(blob: &Blob, origin: String) -> Result<Model, TorchError> {
        if !looks_like_torchscript(&head(blob)) {
            return Err(TorchError::NotTorchScript { origin });
        }
        guarded("load", || {
            let loaded = match (blob.data(), blob.path()) {
                (Some(data), _) => {
                    CModule::load_data_on_device(&mut Cursor::new(&data[..]), Device::Cpu)
                }
                (None, Some(path)) => CModule::load_on_device(path, Device::Cpu),
                (None, None) => {
                    return Err(TorchError::NotTorchScript {
                        origin: origin.clone(),
                    });
                }
            };
            let mut module = match loaded {
                Ok(module) => module,
                Err(source) => return Err(TorchError::Load { origin, source }),
            };
            if let Err(source) = module.f_set_eval() {
                return Err(TorchError::Load { origin, source });
            }
            Ok(Model { module, origin })
        })
    }

    /// Where the model came from, e.g. `resource 3 (cnn.pt)`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Runs `forward` on `inputs` (without autograd) and returns the first `nr_outputs`
    /// tensors of its result, tuples and lists flattened in order.
    pub fn run(
        &self,
        inputs: &[TorchTensor<'_>],
        nr_outputs: usize,
    ) -> Result<Vec<TorchTensor<'static>>, TorchError> {
        guarded("forward", || {
            let args = inputs
                .iter()
                .enumerate()
                .map(|(i, t)| to_tch(i, t).map(IValue::Tensor))
                .collect::<Result<Vec<_>, _>>()?;
            let result = tch::no_grad(|| self.module.forward_is(&args)).map_err(|source| {
                TorchError::Forward {
                    origin: self.origin.clone(),
                    source,
                }
            })?;
            let mut leaves = Vec::new();
            flatten(result, &mut leaves);
            if leaves.len() < nr_outputs {
                return Err(TorchError::OutputCount {
                    available: leaves.len(),
                    requested: nr_outputs,
                });
            }
            leaves
                .into_iter()
                .take(nr_outputs)
                .enumerate()
                .map(|(index, leaf)| match leaf {
                    Leaf::Tensor(t) => from_tch(index, &t),
                    Leaf::Other(what) => Err(TorchError::UnsupportedOutput {
                        index,
                        what: what.to_owned(),
                    }),
                })
                .collect()
        })
    }
}

/// One element of a flattened model result.
enum Leaf {
    Tensor(Tensor),
    Other(&'static str),
}

/// Flattens tensors, tuples and lists of them in order; anything else is kept as a
/// placeholder, an error only if the caller asks for it.
fn flatten(value: IValue, out: &mut Vec<Leaf>) {
    match value {
        IValue::Tensor(t) => out.push(Leaf::Tensor(t)),
        IValue::TensorList(ts) => out.extend(ts.into_iter().map(Leaf::Tensor)),
        IValue::Tuple(vs) | IValue::GenericList(vs) => {
            for v in vs {
                flatten(v, out);
            }
        }
        IValue::None => out.push(Leaf::Other("None")),
        IValue::Double(_) | IValue::Int(_) | IValue::Bool(_) => out.push(Leaf::Other("a scalar")),
        IValue::String(_) | IValue::StringList(_) => out.push(Leaf::Other("a string")),
        IValue::IntList(_) | IValue::DoubleList(_) | IValue::BoolList(_) => {
            out.push(Leaf::Other("a list of scalars"));
        }
        IValue::GenericDict(_) => out.push(Leaf::Other("a dict")),
        IValue::Object(_) => out.push(Leaf::Other("an object")),
        IValue::Device(_) => out.push(Leaf::Other("a device")),
        _ => out.push(Leaf::Other("a value of a kind tch does not know")),
    }
}

/// The libtorch element type of a vAccel one.
fn kind_of(data_type: TorchDataType) -> Kind {
    match data_type {
        TorchDataType::Byte => Kind::Uint8,
        TorchDataType::Char => Kind::Int8,
        TorchDataType::Short => Kind::Int16,
        TorchDataType::Int => Kind::Int,
        TorchDataType::Long => Kind::Int64,
        TorchDataType::Half => Kind::Half,
        TorchDataType::Float => Kind::Float,
    }
}

/// The vAccel type a libtorch output is returned as, and whether it must be converted first
/// (vAccel has no f64, bool or bf16: those come back as FLOAT, BYTE and FLOAT).
fn vaccel_type_of(kind: Kind) -> Option<(TorchDataType, Kind)> {
    Some(match kind {
        Kind::Uint8 => (TorchDataType::Byte, kind),
        Kind::Int8 => (TorchDataType::Char, kind),
        Kind::Int16 => (TorchDataType::Short, kind),
        Kind::Int => (TorchDataType::Int, kind),
        Kind::Int64 => (TorchDataType::Long, kind),
        Kind::Half => (TorchDataType::Half, kind),
        Kind::Float | Kind::Double | Kind::BFloat16 => (TorchDataType::Float, Kind::Float),
        Kind::Bool => (TorchDataType::Byte, Kind::Uint8),
        _ => return None,
    })
}

/// A libtorch tensor holding a copy of input `index` (checked against its dims first:
/// libtorch reads `product(dims) * element size` bytes whatever the buffer holds).
fn to_tch(index: usize, t: &TorchTensor<'_>) -> Result<Tensor, TorchError> {
    check_input(index, t)?;
    Tensor::f_from_data_size(&t.data, &t.dims, kind_of(t.data_type)).map_err(|source| {
        TorchError::Tensor {
            what: "converting an input tensor",
            source,
        }
    })
}

/// A vAccel tensor holding a copy of output `index`. A 0-dimensional (scalar) output gets
/// dims `[1]`: vAccel tensors have at least one dimension.
fn from_tch(index: usize, t: &Tensor) -> Result<TorchTensor<'static>, TorchError> {
    let tensor_err = |source| TorchError::Tensor {
        what: "converting an output tensor",
        source,
    };
    let kind = t.f_kind().map_err(tensor_err)?;
    let (data_type, want) = vaccel_type_of(kind).ok_or_else(|| TorchError::UnsupportedOutput {
        index,
        what: format!("a tensor of {kind:?}"),
    })?;
    let t = t
        .f_to_device(Device::Cpu)
        .and_then(|t| {
            if want == kind {
                Ok(t)
            } else {
                t.f_to_kind(want)
            }
        })
        .and_then(|t| t.f_contiguous())
        .map_err(tensor_err)?;
    let mut dims = t.size();
    if dims.is_empty() {
        dims.push(1);
    }
    let numel = element_count(&dims).ok_or_else(|| TorchError::UnsupportedOutput {
        index,
        what: format!("a tensor of shape {dims:?}"),
    })?;
    let len = numel.checked_mul(element_size(data_type)).ok_or_else(|| {
        TorchError::UnsupportedOutput {
            index,
            what: format!("a tensor of shape {dims:?}"),
        }
    })?;
    let mut data = vec![0u8; len];
    t.f_copy_data_u8(&mut data, numel).map_err(tensor_err)?;
    Ok(TorchTensor {
        dims,
        data_type,
        data: Cow::Owned(data),
    })
}

/// `C + A x B` for FLOAT row-major `A` (`m x k`), `B` (`k x n`) and `C` (`m x n`), as an
/// `m x n` FLOAT tensor. The operands' element counts must match; their dims are not read.
pub fn sgemm(
    a: &TorchTensor<'_>,
    b: &TorchTensor<'_>,
    c: &TorchTensor<'_>,
    m: i32,
    n: i32,
    k: i32,
) -> Result<TorchTensor<'static>, TorchError> {
    let operand = |t: &TorchTensor<'_>, name: &str, rows: i32, cols: i32| {
        if t.data_type != TorchDataType::Float {
            return Err(TorchError::SgemmOperand(format!(
                "{name} is {:?}, only FLOAT is supported",
                t.data_type
            )));
        }
        let dims = [i64::from(rows), i64::from(cols)];
        let needed = element_count(&dims).and_then(|e| e.checked_mul(4));
        if needed != Some(t.data.len()) {
            return Err(TorchError::SgemmOperand(format!(
                "{name} holds {} bytes, {rows} x {cols} FLOAT needs {}",
                t.data.len(),
                needed.map_or_else(|| "more than memory".to_owned(), |n| n.to_string())
            )));
        }
        Tensor::f_from_data_size(&t.data, &dims, Kind::Float).map_err(|source| TorchError::Tensor {
            what: "torch_sgemm operand",
            source,
        })
    };
    guarded("torch_sgemm", || {
        let a = operand(a, "A", m, k)?;
        let b = operand(b, "B", k, n)?;
        let c = operand(c, "C", m, n)?;
        let out = tch::no_grad(|| c.f_addmm(&a, &b)).map_err(|source| TorchError::Tensor {
            what: "torch_sgemm",
            source,
        })?;
        from_tch(0, &out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_keeps_the_error_line_of_a_traceback() {
        let e = TchError::Torch(
            "The following operation failed in the TorchScript interpreter.\n\
             Traceback of TorchScript, serialized code (most recent call last):\n  \
             File \"code/__torch__.py\", line 10, in forward\n\
             RuntimeError: Given groups=1, expected input[1, 1, 8, 8] to have 3 channels\n"
                .into(),
        );
        assert_eq!(
            brief(&e),
            "RuntimeError: Given groups=1, expected input[1, 1, 8, 8] to have 3 channels"
        );
        let e = TchError::Torch(
            "PytorchStreamReader failed reading zip archive: failed finding central directory\n\
             Exception raised from valid at ../caffe2/serialize/inline_container.cc:1\n\
             frame #0: c10::Error::Error()\n"
                .into(),
        );
        assert_eq!(
            brief(&e),
            "Internal torch error: PytorchStreamReader failed reading zip archive: failed \
             finding central directory"
        );
        let long = TchError::Torch("é".repeat(MAX_MESSAGE));
        assert!(brief(&long).len() <= MAX_MESSAGE + 3);
    }

    #[test]
    fn every_vaccel_type_round_trips_through_its_kind() {
        for ty in [
            TorchDataType::Byte,
            TorchDataType::Char,
            TorchDataType::Short,
            TorchDataType::Int,
            TorchDataType::Long,
            TorchDataType::Half,
            TorchDataType::Float,
        ] {
            let kind = kind_of(ty);
            assert_eq!(vaccel_type_of(kind), Some((ty, kind)));
            assert_eq!(kind.elt_size_in_bytes(), element_size(ty));
        }
        assert_eq!(
            vaccel_type_of(Kind::Double),
            Some((TorchDataType::Float, Kind::Float))
        );
        assert_eq!(vaccel_type_of(Kind::ComplexFloat), None);
    }

    #[test]
    fn tensors_round_trip_with_their_bytes() {
        let values = [1.5f32, -2.0, 3.25, 0.0, 8.0, -0.5];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let t = TorchTensor::new(vec![2, 3], TorchDataType::Float, &bytes[..]).unwrap();
        let back = from_tch(0, &to_tch(0, &t).unwrap()).unwrap();
        assert_eq!(back, t);
        let scalar = from_tch(0, &Tensor::from(2.5f64)).unwrap();
        assert_eq!(scalar.dims, [1]);
        assert_eq!(scalar.data_type, TorchDataType::Float);
        assert_eq!(&*scalar.data, &2.5f32.to_ne_bytes());
    }
}
