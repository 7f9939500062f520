//! One ONNX model on tract, as a [`vaccel_vision::Engine`]: float32 tensors in and out.
//!
//! Models are untrusted bytes: the format is sniffed before the protobuf decoder runs, models
//! are always parsed from memory (so tract never resolves external-data files relative to
//! anything), input sizes are bounded, and every call into tract runs under
//! [`std::panic::catch_unwind`] so that a model tract mishandles becomes an error, not a panic
//! in the caller.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue, TVec,
    Tensor as TractTensor, TypedRunnableModel,
};
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;
use vaccel_vision::{Engine, EngineError, Tensor, TensorView};

use crate::error::{BoxError, OnnxError, chain};

/// Largest input tensor accepted, in elements (256 MiB of float32): a model declaring a larger
/// input is refused at load rather than aborting the process on allocation at run time.
pub const MAX_INPUT_ELEMENTS: usize = 1 << 26;

/// How many leading bytes [`sniff`] needs.
pub const SNIFF_LEN: usize = 16;

/// A cheap check that `head` (the first [`SNIFF_LEN`] bytes or more of a file) can be an ONNX
/// model: it must open with a protobuf key of one of `ModelProto`'s fields with that field's
/// wire type (and, for `ir_version`, a plausible version). TFLite flatbuffers, zip archives
/// (PyTorch), text and most other formats fail here without being decoded.
pub fn sniff(head: &[u8]) -> bool {
    // TFLite flatbuffers carry their identifier at offset 4.
    if head.get(4..8) == Some(b"TFL3".as_slice()) {
        return false;
    }
    let Some((key, used)) = varint(head) else {
        return false;
    };
    match (key >> 3, key & 7) {
        // ir_version: upstream ONNX is at 10-11; leave room for later versions.
        (1, 0) => head
            .get(used..)
            .and_then(varint)
            .is_some_and(|(v, _)| (1..=64).contains(&v)),
        // model_version
        (5, 0) => true,
        // producer_name, producer_version, domain, doc_string, graph, opset_import,
        // metadata_props, training_info, functions, configuration
        (2 | 3 | 4 | 6 | 7 | 8 | 14 | 20 | 25 | 26, 2) => true,
        _ => false,
    }
}

/// A protobuf base-128 varint at the start of `buf`: its value and length.
fn varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Decodes `bytes` as an ONNX `ModelProto` with a graph. Fails with [`OnnxError::NotOnnx`] for
/// anything else, which is what "the bytes are not ONNX" means to the plugin.
pub fn decode(bytes: &[u8]) -> Result<ModelProto, OnnxError> {
    if !sniff(bytes) {
        return Err(OnnxError::NotOnnx {
            reason: "the bytes do not start like an ONNX protobuf".into(),
            source: None,
        });
    }
    let proto = guarded("decoding the model", || {
        tract_onnx::onnx()
            .proto_model_for_read(&mut &*bytes)
            .map_err(|e| OnnxError::NotOnnx {
                reason: "protobuf decoding failed".into(),
                source: Some(e.into()),
            })
    })?;
    match &proto.graph {
        Some(g) if !g.node.is_empty() || !g.output.is_empty() => Ok(proto),
        _ => Err(OnnxError::NotOnnx {
            reason: "the protobuf has no graph".into(),
            source: None,
        }),
    }
}

/// Runs `f`, turning a panic inside it into [`OnnxError::Panic`].
fn guarded<T>(
    stage: &'static str,
    f: impl FnOnce() -> Result<T, OnnxError>,
) -> Result<T, OnnxError> {
    // Nothing `f` touches outlives a failed call: the model being built or the run's state is
    // dropped with the panic, and the shared plan is immutable while it runs.
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        log::warn!("onnx: tract panicked while {stage}: {message}");
        Err(OnnxError::Panic { stage, message })
    })
}

fn load_err(e: impl Into<BoxError>) -> OnnxError {
    OnnxError::Load(e.into())
}

/// Checks `inputs` against the shapes a model takes (count, shape, number of values): the
/// same rule, and the same messages, for both engines.
pub(crate) fn check_inputs<'a>(
    inputs: &[TensorView<'_>],
    shapes: impl ExactSizeIterator<Item = &'a [usize]>,
) -> Result<(), OnnxError> {
    if inputs.len() != shapes.len() {
        return Err(OnnxError::InputMismatch(format!(
            "the model takes {} inputs, {} given",
            shapes.len(),
            inputs.len()
        )));
    }
    for (index, (view, shape)) in inputs.iter().zip(shapes).enumerate() {
        if view.shape != shape {
            return Err(OnnxError::InputMismatch(format!(
                "input {index} has shape {:?}, the model takes {shape:?}",
                view.shape
            )));
        }
        let expected: usize = shape.iter().product();
        if view.data.len() != expected {
            return Err(OnnxError::InputMismatch(format!(
                "input {index} holds {} values, its shape {shape:?} needs {expected}",
                view.data.len()
            )));
        }
    }
    Ok(())
}

/// What one model input takes: its concrete shape and tract's element type.
#[derive(Debug, Clone)]
struct InputSpec {
    shape: Vec<usize>,
    datum: DatumType,
}

/// An ONNX model parsed, typed, optimised and made runnable by tract, with concrete input
/// shapes (an unknown batch dimension is fixed to 1).
///
/// ```no_run
/// use vaccel_plugin_onnx::TractEngine;
/// use vaccel_vision::{Engine, TensorView};
///
/// let bytes = std::fs::read("model.onnx").unwrap();
/// let engine = TractEngine::from_bytes(&bytes)?;
/// let shape = engine.input_shapes().remove(0);
/// let input = vec![0.0f32; shape.iter().product()];
/// let outputs = engine.run(&[TensorView { shape: &shape, data: &input }]);
/// # Ok::<(), vaccel_plugin_onnx::OnnxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TractEngine {
    plan: std::sync::Arc<TypedRunnableModel>,
    inputs: Vec<InputSpec>,
    outputs: Vec<Vec<usize>>,
}

impl TractEngine {
    /// Decodes and loads a model from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OnnxError> {
        TractEngine::from_proto(&decode(bytes)?)
    }

    /// Loads a decoded model: translation to tract's graph, concrete input facts, type
    /// inference, optimisation and planning.
    pub fn from_proto(proto: &ModelProto) -> Result<Self, OnnxError> {
        guarded("loading the model", || TractEngine::load(proto))
    }

    fn load(proto: &ModelProto) -> Result<Self, OnnxError> {
        let mut model = tract_onnx::onnx()
            .model_for_proto_model(proto)
            .map_err(load_err)?;
        let mut inputs = Vec::with_capacity(model.inputs.len());
        for index in 0..model.inputs.len() {
            let fact = model.input_fact(index).map_err(load_err)?;
            let datum = fact.datum_type.concretize().unwrap_or(DatumType::F32);
            if fact.shape.is_open() {
                return Err(OnnxError::UnshapedInput {
                    input: index,
                    what: "no fixed rank".into(),
                });
            }
            let shape = fact
                .shape
                .dims()
                .enumerate()
                .map(|(axis, dim)| {
                    match dim.concretize().and_then(|d| d.to_usize().ok()) {
                        Some(n) => Ok(n),
                        // A symbolic or unknown batch: one image at a time.
                        None if axis == 0 => Ok(1),
                        None => Err(OnnxError::UnshapedInput {
                            input: index,
                            what: format!("an unknown dimension {axis}"),
                        }),
                    }
                })
                .collect::<Result<Vec<usize>, _>>()?;
            let elements = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n <= MAX_INPUT_ELEMENTS);
            if elements.is_none() {
                return Err(OnnxError::UnshapedInput {
                    input: index,
                    what: format!("shape {shape:?}, over {MAX_INPUT_ELEMENTS} elements"),
                });
            }
            model
                .set_input_fact(index, InferenceFact::dt_shape(datum, &*shape))
                .map_err(load_err)?;
            inputs.push(InputSpec { shape, datum });
        }
        let mut typed = model
            .into_typed()
            .and_then(|m| m.into_decluttered())
            .map_err(load_err)?;
        crate::rewrite::rewrite(&mut typed).map_err(load_err)?;
        let typed = typed.into_optimized().map_err(load_err)?;
        let outputs = (0..typed.outputs.len())
            .map(|i| {
                typed.output_fact(i).map(|f| {
                    // Data-dependent dimensions (a count of detections) are reported as 0.
                    f.shape.iter().map(|d| d.to_usize().unwrap_or(0)).collect()
                })
            })
            .collect::<Result<Vec<Vec<usize>>, _>>()
            .map_err(load_err)?;
        let plan = typed.into_runnable().map_err(load_err)?;
        Ok(TractEngine {
            plan,
            inputs,
            outputs,
        })
    }

    /// Runs the model, with the plugin's typed error.
    pub fn run_tensors(&self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, OnnxError> {
        check_inputs(inputs, self.inputs.iter().map(|s| s.shape.as_slice()))?;
        let mut values = TVec::new();
        for (view, spec) in inputs.iter().zip(&self.inputs) {
            let tensor = TractTensor::from_shape(&spec.shape, view.data)
                .map_err(|e| OnnxError::InputMismatch(chain(&*BoxError::from(e))))?;
            let tensor = if spec.datum == DatumType::F32 {
                tensor
            } else {
                tensor
                    .cast_to_dt(spec.datum)
                    .map_err(|e| OnnxError::InputMismatch(chain(&*BoxError::from(e))))?
                    .into_owned()
            };
            values.push(tensor.into_tvalue());
        }
        let outputs = guarded("running the model", || {
            self.plan.run(values).map_err(|e| OnnxError::Run(e.into()))
        })?;
        outputs
            .iter()
            .enumerate()
            .map(|(index, value)| {
                let out_err = |e: tract_onnx::prelude::TractError| OnnxError::Output {
                    index,
                    source: e.into(),
                };
                let t = value.cast_to::<f32>().map_err(out_err)?;
                let data = t
                    .try_as_plain_ram()
                    .and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec))
                    .map_err(out_err)?;
                Ok(Tensor {
                    shape: t.shape().to_vec(),
                    data,
                })
            })
            .collect()
    }
}

impl Engine for TractEngine {
    fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.inputs.iter().map(|s| s.shape.clone()).collect()
    }

    fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.outputs.clone()
    }

    fn run(&self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, EngineError> {
        self.run_tensors(inputs)
            .map_err(|e| EngineError::new(chain(&e)))
    }
}

/// Small ONNX models built in code, for tests.
#[cfg(test)]
pub(crate) mod test_models {
    use prost::Message;
    use tract_onnx::pb::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
        TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
    };

    const FLOAT: i32 = 1;
    const UINT8: i32 = 2;

    fn value(name: &str, elem_type: i32, dims: &[Option<i64>]) -> ValueInfoProto {
        let dim = |d: &Option<i64>| tensor_shape_proto::Dimension {
            denotation: String::new(),
            value: Some(match d {
                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
            }),
        };
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                denotation: String::new(),
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type,
                    shape: Some(TensorShapeProto {
                        dim: dims.iter().map(dim).collect(),
                    }),
                })),
            }),
            doc_string: String::new(),
        }
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| (*s).into()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn floats(name: &str, data: &[f32]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: vec![data.len() as i64],
            data_type: FLOAT,
            float_data: data.to_vec(),
            ..Default::default()
        }
    }

    fn model(graph: GraphProto) -> Vec<u8> {
        ModelProto {
            ir_version: 8,
            producer_name: "vaccel-plugin-onnx tests".into(),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// `y = x * [2, 3] + [0.5, -1]`, `x` of shape `[N, 2]` with a symbolic batch `N`.
    pub fn affine() -> Vec<u8> {
        model(GraphProto {
            name: "affine".into(),
            node: vec![
                node("Mul", &["x", "w"], "xw"),
                node("Add", &["xw", "b"], "y"),
            ],
            initializer: vec![floats("w", &[2.0, 3.0]), floats("b", &[0.5, -1.0])],
            input: vec![value("x", FLOAT, &[None, Some(2)])],
            output: vec![value("y", FLOAT, &[None, Some(2)])],
            ..Default::default()
        })
    }

    /// `y = float(x) * 2`, `x` a `[1, 3]` uint8 tensor.
    pub fn from_u8() -> Vec<u8> {
        let mut cast = node("Cast", &["x"], "xf");
        cast.attribute.push(tract_onnx::pb::AttributeProto {
            name: "to".into(),
            r#type: tract_onnx::pb::attribute_proto::AttributeType::Int as i32,
            i: i64::from(FLOAT),
            ..Default::default()
        });
        model(GraphProto {
            name: "from_u8".into(),
            node: vec![cast, node("Mul", &["xf", "two"], "y")],
            initializer: vec![floats("two", &[2.0])],
            input: vec![value("x", UINT8, &[Some(1), Some(3)])],
            output: vec![value("y", FLOAT, &[Some(1), Some(3)])],
            ..Default::default()
        })
    }

    /// A 3-class "classifier" of the mean colour: `softmax(8 * mean over H, W)` of a
    /// `[N, 16, 16, 3]` image, classes red, green, blue.
    pub fn mean_color() -> Vec<u8> {
        let mut mean = node("ReduceMean", &["x"], "m");
        mean.attribute.push(tract_onnx::pb::AttributeProto {
            name: "axes".into(),
            r#type: tract_onnx::pb::attribute_proto::AttributeType::Ints as i32,
            ints: vec![1, 2],
            ..Default::default()
        });
        mean.attribute.push(tract_onnx::pb::AttributeProto {
            name: "keepdims".into(),
            r#type: tract_onnx::pb::attribute_proto::AttributeType::Int as i32,
            i: 0,
            ..Default::default()
        });
        let mut softmax = node("Softmax", &["s"], "y");
        softmax.attribute.push(tract_onnx::pb::AttributeProto {
            name: "axis".into(),
            r#type: tract_onnx::pb::attribute_proto::AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        });
        model(GraphProto {
            name: "mean_color".into(),
            node: vec![mean, node("Mul", &["m", "eight"], "s"), softmax],
            initializer: vec![floats("eight", &[8.0])],
            input: vec![value("x", FLOAT, &[None, Some(16), Some(16), Some(3)])],
            output: vec![value("y", FLOAT, &[None, Some(3)])],
            ..Default::default()
        })
    }

    /// A well-formed ONNX file whose one node is an operator nobody implements.
    pub fn unknown_op() -> Vec<u8> {
        model(GraphProto {
            name: "unknown".into(),
            node: vec![node("NoSuchOperator", &["x"], "y")],
            input: vec![value("x", FLOAT, &[Some(1), Some(2)])],
            output: vec![value("y", FLOAT, &[Some(1), Some(2)])],
            ..Default::default()
        })
    }

    /// An input with an unknown dimension other than the batch.
    pub fn free_width() -> Vec<u8> {
        model(GraphProto {
            name: "free".into(),
            node: vec![node("Relu", &["x"], "y")],
            input: vec![value("x", FLOAT, &[Some(1), None])],
            output: vec![value("y", FLOAT, &[Some(1), None])],
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_accepts_onnx_and_refuses_other_formats() {
        assert!(sniff(&test_models::affine()));
        // ir_version 8, then the rest of a model.
        assert!(sniff(&[0x08, 0x08, 0x12, 0x00]));
        // TFLite: root offset, then "TFL3".
        assert!(!sniff(b"\x1c\x00\x00\x00TFL3\x00\x00\x00\x00"));
        // A PyTorch archive is a zip.
        assert!(!sniff(b"PK\x03\x04\x00\x00"));
        assert!(!sniff(b"hello world"));
        assert!(!sniff(b""));
        assert!(!sniff(&[0x08]));
        // ir_version 0 or absurd.
        assert!(!sniff(&[0x08, 0x00]));
        assert!(!sniff(&[0x08, 0xff, 0x01]));
        // An unterminated varint.
        assert!(!sniff(&[0xff; 16]));
    }

    #[test]
    fn decode_refuses_what_is_not_a_model() {
        for bytes in [
            b"garbage, not a model at all".to_vec(),
            vec![0x08, 0x08],                   // ir_version only: no graph
            vec![0x08, 0x08, 0x3a, 0x7f, 0x00], // graph field truncated
        ] {
            match decode(&bytes) {
                Err(OnnxError::NotOnnx { .. }) => {}
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
        let full = test_models::affine();
        assert!(decode(&full).is_ok());
        for cut in [full.len() / 2, full.len() - 1] {
            assert!(decode(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn symbolic_batch_becomes_one_and_the_model_runs() {
        let engine = TractEngine::from_bytes(&test_models::affine()).unwrap();
        assert_eq!(engine.input_shapes(), vec![vec![1, 2]]);
        assert_eq!(engine.output_shapes(), vec![vec![1, 2]]);
        let out = engine
            .run(&[TensorView {
                shape: &[1, 2],
                data: &[1.0, 2.0],
            }])
            .unwrap();
        assert_eq!(
            out,
            vec![Tensor {
                shape: vec![1, 2],
                data: vec![2.5, 5.0]
            }]
        );
    }

    #[test]
    fn non_float_inputs_are_cast() {
        let engine = TractEngine::from_bytes(&test_models::from_u8()).unwrap();
        let out = engine
            .run(&[TensorView {
                shape: &[1, 3],
                data: &[1.0, 2.0, 200.0],
            }])
            .unwrap();
        assert_eq!(out[0].data, vec![2.0, 4.0, 400.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let engine = TractEngine::from_bytes(&test_models::affine()).unwrap();
        let two = [1.0f32, 2.0];
        for (inputs, why) in [
            (vec![], "no input"),
            (
                vec![TensorView {
                    shape: &[2, 1],
                    data: &two,
                }],
                "wrong shape",
            ),
            (
                vec![TensorView {
                    shape: &[1, 2],
                    data: &two[..1],
                }],
                "short data",
            ),
        ] {
            match engine.run_tensors(&inputs) {
                Err(OnnxError::InputMismatch(_)) => {}
                other => panic!("{why}: {other:?}"),
            }
        }
    }

    #[test]
    fn unloadable_models_are_clear_errors() {
        let e = TractEngine::from_bytes(&test_models::unknown_op()).unwrap_err();
        assert!(matches!(e, OnnxError::Load(_)), "{e:?}");
        assert!(chain(&e).contains("NoSuchOperator"), "{}", chain(&e));
        let e = TractEngine::from_bytes(&test_models::free_width()).unwrap_err();
        assert!(
            matches!(e, OnnxError::UnshapedInput { input: 0, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn panics_become_errors() {
        let e = guarded("testing", || -> Result<(), OnnxError> {
            panic!("boom {}", 1)
        })
        .unwrap_err();
        match e {
            OnnxError::Panic { stage, message } => {
                assert_eq!(stage, "testing");
                assert_eq!(message, "boom 1");
            }
            other => panic!("{other:?}"),
        }
    }
}
