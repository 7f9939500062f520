//! Load-time rewrites of the few patterns tract 0.23 runs far slower than their arithmetic
//! needs, measured per node on the MediaPipe models (see `benches/models.rs`):
//!
//! - a stride-2 depthwise convolution: on x86_64 tract's vectorised depthwise kernel takes
//!   stride 1 only, so every stride-2 one ran a scalar gather loop (a quarter to a half of the
//!   depthwise time of both models, for a quarter of its multiply-adds);
//! - a 2x2, stride-2, unpadded max pool (BlazeFace's shortcut branch), which ran through the
//!   generic pooling walker;
//! - a binary op whose smaller operand repeats along a short trailing axis (`[1, H, W, 16]` by
//!   `[1, 1, 1, 16]`, the selfie segmenter's squeeze-and-excitation scale in NHWC): under 32
//!   repeated elements tract keeps its generic broadcasting loop, 6 ns an element.
//!
//! Each is replaced, on the decluttered model and before tract's code generation, by an op of
//! this module written for that one shape, in plain (safe, auto-vectorised) Rust. Anything that
//! does not match exactly is left to tract.

// Shapes are checked when a node is rewritten and again when it runs (`ensure!`); the kernels
// index planes and rows those checks size, and a panic in them still becomes an error under the
// engine's `catch_unwind`.
#![allow(clippy::indexing_slicing)]

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Applies every rewrite this module knows to `model`, in place.
pub fn rewrite(model: &mut TypedModel) -> TractResult<()> {
    for id in model.eval_order()? {
        let node = &model.nodes[id];
        let patch = if let Some(conv) = node.op_as::<Conv>() {
            stride2_depthwise(model, node, conv)?
        } else if let Some(pool) = node.op_as::<MaxPool>() {
            max_pool_2x2(model, node, pool)?
        } else if let Some(bin) = node.op_as::<TypedBinOp>() {
            trailing_broadcast(model, node, bin)?
        } else {
            None
        };
        if let Some(patch) = patch {
            patch.apply(model)?;
        }
    }
    Ok(())
}

/// Planes (every axis before the spatial ones), height and width of a rank-4 NCHW or rank-3
/// CHW f32 fact with concrete dimensions.
fn planes_hw(fact: &TypedFact, format: DataFormat) -> Option<(usize, usize, usize)> {
    if fact.datum_type != f32::datum_type() {
        return None;
    }
    let shape = fact.shape.as_concrete()?;
    match (format, shape) {
        (DataFormat::NCHW, &[n, c, h, w]) => Some((n * c, h, w)),
        (DataFormat::CHW, &[c, h, w]) => Some((c, h, w)),
        _ => None,
    }
}

fn stride2_depthwise(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
) -> TractResult<Option<TypedModelPatch>> {
    let spec = &conv.pool_spec;
    let input = model.outlet_fact(node.inputs[0])?;
    let Some((planes, h, w)) = planes_hw(input, spec.data_format) else {
        return Ok(None);
    };
    let channels = spec.input_channels;
    let kernel = model.outlet_fact(node.inputs[1])?;
    let bias = model.outlet_fact(node.inputs[2])?;
    let depthwise = conv.q_params.is_none()
        && node.inputs.len() == 3
        && channels == conv.group
        && spec.output_channels == channels
        && channels > 0
        && planes % channels == 0
        && spec.kernel_shape.len() == 2
        && *spec.strides() == [2, 2]
        && spec.dilations().iter().all(|&d| d == 1)
        && conv.kernel_fmt == KernelFormat::OIHW
        && kernel.datum_type == f32::datum_type()
        && bias.datum_type == f32::datum_type()
        && kernel.shape.as_concrete()
            == Some(&[channels, 1, spec.kernel_shape[0], spec.kernel_shape[1]][..])
        && matches!(bias.shape.volume().to_usize(), Ok(n) if n == 1 || n == channels);
    if !depthwise {
        return Ok(None);
    }
    let padding = spec.computed_padding(&[h, w]);
    let op = Stride2Depthwise {
        channels,
        kh: spec.kernel_shape[0],
        kw: spec.kernel_shape[1],
        pad: [
            padding[0].pad_before,
            padding[0].pad_after,
            padding[1].pad_before,
            padding[1].pad_after,
        ],
    };
    let out = model.outlet_fact(node.id.into())?;
    if op.output_facts(&[input, kernel, bias])?[0].shape != out.shape {
        return Ok(None);
    }
    Ok(Some(TypedModelPatch::replace_single_op(
        model,
        node,
        &node.inputs,
        op,
    )?))
}

/// A depthwise convolution with stride 2 on both spatial axes, no dilation, OIHW kernel
/// `[C, 1, KH, KW]`, bias of `C` values or one, on NCHW or CHW f32 data.
///
/// Each input plane is split once into its four even/odd row/column phases, zero padding
/// included; every tap then reads one phase with unit stride, so the inner loop is a
/// contiguous multiply-add over an output row. Same arithmetic as tract's: the bias, then one
/// multiply and one add per tap in kernel order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stride2Depthwise {
    channels: usize,
    kh: usize,
    kw: usize,
    /// Top, bottom, left, right.
    pad: [usize; 4],
}

impl Stride2Depthwise {
    fn padded(&self, h: usize, w: usize) -> (usize, usize) {
        (h + self.pad[0] + self.pad[1], w + self.pad[2] + self.pad[3])
    }

    fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (ph, pw) = self.padded(h, w);
        let oh = ph.checked_sub(self.kh)? / 2 + 1;
        let ow = pw.checked_sub(self.kw)? / 2 + 1;
        Some((oh, ow))
    }
}

impl Op for Stride2Depthwise {
    fn name(&self) -> StaticName {
        "Stride2Depthwise".into()
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "kernel {}x{} pad {:?}",
            self.kh, self.kw, self.pad
        )])
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for Stride2Depthwise {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(self.eval(&EvalContext::out_of_plan(), inputs)?))
    }

    fn eval(&self, _ctx: &EvalContext<'_>, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let [input, kernel, bias] = &*inputs else {
            bail!("Stride2Depthwise takes three inputs");
        };
        let shape = input.shape();
        let rank = shape.len();
        ensure!(rank >= 3);
        let (h, w) = (shape[rank - 2], shape[rank - 1]);
        let (oh, ow) = self
            .output_hw(h, w)
            .context("Stride2Depthwise: kernel larger than the padded input")?;
        let (ph, pw) = self.padded(h, w);
        // Phase (py, px) holds padded[2i + py][2j + px]: `phase_h[py]` rows of `phase_w[px]`.
        let phase_h = [ph.div_ceil(2), ph / 2];
        let phase_w = [pw.div_ceil(2), pw / 2];
        let x = floats(input)?;
        let k = floats(kernel)?;
        let b = floats(bias)?;
        let taps = self.kh * self.kw;
        let planes = x.len() / (h * w).max(1);
        let mut out_shape: TVec<usize> = shape.into();
        out_shape[rank - 2] = oh;
        out_shape[rank - 1] = ow;
        let mut out = vec![0f32; planes * oh * ow];
        let mut phases: [Vec<f32>; 4] = Default::default();
        for (p, phase) in phases.iter_mut().enumerate() {
            *phase = vec![0f32; phase_h[p / 2] * phase_w[p % 2]];
        }
        for (plane, (src, dst)) in x
            .chunks_exact(h * w)
            .zip(out.chunks_exact_mut(oh * ow))
            .enumerate()
        {
            let c = plane % self.channels;
            // Scatter the plane into its phases; padding cells stay zero across planes.
            for (y, row) in src.chunks_exact(w).enumerate() {
                let py = y + self.pad[0];
                // Input columns `first, first + 2, ...` land in one phase, from its column
                // `(first + left pad) / 2` on.
                for first in 0..2.min(w) {
                    let px = first + self.pad[2];
                    let start = (py / 2) * phase_w[px % 2] + px / 2;
                    let dst = &mut phases[(py % 2) * 2 + px % 2][start..];
                    for (d, &v) in dst.iter_mut().zip(row.iter().skip(first).step_by(2)) {
                        *d = v;
                    }
                }
            }
            let kc = &k[c * taps..(c + 1) * taps];
            let bc = if b.len() == 1 { b[0] } else { b[c] };
            for (oy, orow) in dst.chunks_exact_mut(ow).enumerate() {
                orow.fill(bc);
                for dy in 0..self.kh {
                    for dx in 0..self.kw {
                        let tap = kc[dy * self.kw + dx];
                        let pwid = phase_w[dx % 2];
                        let start = (oy + dy / 2) * pwid + dx / 2;
                        let src = &phases[(dy % 2) * 2 + dx % 2][start..start + ow];
                        for (o, &s) in orow.iter_mut().zip(src) {
                            *o += tap * s;
                        }
                    }
                }
            }
        }
        Ok(tvec!(Tensor::from_shape(&out_shape, &out)?.into_tvalue()))
    }
}

impl TypedOp for Stride2Depthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = inputs[0]
            .shape
            .as_concrete()
            .context("Stride2Depthwise needs a concrete input shape")?;
        let rank = shape.len();
        ensure!(rank >= 3);
        let (oh, ow) = self
            .output_hw(shape[rank - 2], shape[rank - 1])
            .context("Stride2Depthwise: kernel larger than the padded input")?;
        let mut out: TVec<usize> = shape.into();
        out[rank - 2] = oh;
        out[rank - 1] = ow;
        Ok(tvec!(f32::fact(&*out)))
    }

    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }
}

fn max_pool_2x2(
    model: &TypedModel,
    node: &TypedNode,
    pool: &MaxPool,
) -> TractResult<Option<TypedModelPatch>> {
    let spec = &pool.pool_spec;
    let input = model.outlet_fact(node.inputs[0])?;
    let Some((_, h, w)) = planes_hw(input, spec.data_format) else {
        return Ok(None);
    };
    let padding = spec.computed_padding(&[h, w]);
    let matches = pool.with_index_outputs.is_none()
        && *spec.kernel_shape == [2, 2]
        && *spec.strides() == [2, 2]
        && spec.dilations().iter().all(|&d| d == 1)
        && padding
            .iter()
            .all(|p| p.pad_before == 0 && p.pad_after == 0)
        && h % 2 == 0
        && w % 2 == 0;
    if !matches {
        return Ok(None);
    }
    Ok(Some(TypedModelPatch::replace_single_op(
        model,
        node,
        &node.inputs,
        MaxPool2x2,
    )?))
}

/// A 2x2, stride-2 max pool over the last two axes of an f32 tensor with even height and
/// width, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MaxPool2x2;

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "MaxPool2x2".into()
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for MaxPool2x2 {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(self.eval(&EvalContext::out_of_plan(), inputs)?))
    }

    fn eval(&self, _ctx: &EvalContext<'_>, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let [input] = &*inputs else {
            bail!("MaxPool2x2 takes one input");
        };
        let shape = input.shape();
        let rank = shape.len();
        ensure!(rank >= 2);
        let (h, w) = (shape[rank - 2], shape[rank - 1]);
        ensure!(h % 2 == 0 && w % 2 == 0 && w > 0);
        let x = floats(input)?;
        let mut out = vec![0f32; x.len() / 4];
        for (pair, orow) in x.chunks_exact(2 * w).zip(out.chunks_exact_mut(w / 2)) {
            let (r0, r1) = pair.split_at(w);
            for ((o, a), b) in orow
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                *o = a[0].max(a[1]).max(b[0].max(b[1]));
            }
        }
        let mut out_shape: TVec<usize> = shape.into();
        out_shape[rank - 2] = h / 2;
        out_shape[rank - 1] = w / 2;
        Ok(tvec!(Tensor::from_shape(&out_shape, &out)?.into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        let rank = shape.len();
        ensure!(rank >= 2);
        shape[rank - 2] = shape[rank - 2].clone() / 2;
        shape[rank - 1] = shape[rank - 1].clone() / 2;
        Ok(tvec!(f32::fact(&*shape)))
    }

    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }
}

fn trailing_broadcast(
    model: &TypedModel,
    node: &TypedNode,
    bin: &TypedBinOp,
) -> TractResult<Option<TypedModelPatch>> {
    let op = match bin.0.name() {
        "Mul" => TrailingOp::Mul,
        "Add" => TrailingOp::Add,
        _ => return Ok(None),
    };
    if bin.1.is_some() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let out = model.outlet_fact(node.id.into())?;
    let Some(out_shape) = out.shape.as_concrete() else {
        return Ok(None);
    };
    for (big, small) in [(0, 1), (1, 0)] {
        let a = model.outlet_fact(node.inputs[big])?;
        let b = model.outlet_fact(node.inputs[small])?;
        let (Some(a_shape), Some(b_shape)) = (a.shape.as_concrete(), b.shape.as_concrete()) else {
            return Ok(None);
        };
        if a.datum_type != f32::datum_type()
            || b.datum_type != f32::datum_type()
            || out.datum_type != f32::datum_type()
            || a_shape != out_shape
            || b_shape.len() > a_shape.len()
        {
            continue;
        }
        // `b` without its leading ones must be a suffix of `a`'s shape.
        let lead = b_shape.iter().take_while(|&&d| d == 1).count();
        let tail = &b_shape[lead..];
        let period: usize = tail.iter().product();
        // One value is tract's by-scalar case; 32 or more its unicast case: both fast already.
        if tail.is_empty() || period <= 1 || period >= 32 || !a_shape.ends_with(tail) {
            continue;
        }
        let inputs = [node.inputs[big], node.inputs[small]];
        return Ok(Some(TypedModelPatch::replace_single_op(
            model,
            node,
            &inputs,
            TrailingBroadcast { op },
        )?));
    }
    Ok(None)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrailingOp {
    Add,
    Mul,
}

/// `out[i] = a[i] op b[i % b.len()]`: a commutative binary op whose second operand repeats
/// along the trailing axes of the first, f32.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TrailingBroadcast {
    op: TrailingOp,
}

impl Op for TrailingBroadcast {
    fn name(&self) -> StaticName {
        format!("Trailing{:?}", self.op).into()
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for TrailingBroadcast {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(self.eval(&EvalContext::out_of_plan(), inputs)?))
    }

    fn eval(&self, _ctx: &EvalContext<'_>, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let [a, b] = &*inputs else {
            bail!("TrailingBroadcast takes two inputs");
        };
        let period = b.len();
        ensure!(period > 0 && a.len() % period == 0);
        let bs = floats(b)?;
        let mut out = floats(a)?.to_vec();
        for chunk in out.chunks_exact_mut(period) {
            match self.op {
                TrailingOp::Add => chunk.iter_mut().zip(bs).for_each(|(x, y)| *x += y),
                TrailingOp::Mul => chunk.iter_mut().zip(bs).for_each(|(x, y)| *x *= y),
            }
        }
        Ok(tvec!(Tensor::from_shape(a.shape(), &out)?.into_tvalue()))
    }
}

impl TypedOp for TrailingBroadcast {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }

    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }
}

fn floats(t: &Tensor) -> TractResult<&[f32]> {
    t.try_as_plain_ram()?.as_slice::<f32>()
}

/// Differential tests: each rewrite, on many shapes, against tract's own optimised model.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tract_onnx::pb::attribute_proto::AttributeType;
    use tract_onnx::pb::{
        AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
        TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
    };
    use tract_onnx::prelude::{Framework, InferenceModelExt};
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};

    const FLOAT: i32 = 1;
    const SIZES: [usize; 7] = [1, 2, 3, 5, 7, 8, 17];

    /// xorshift64*, values in [-2, 2).
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }

        fn next(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
            (bits as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        }

        fn fill(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.next()).collect()
        }
    }

    fn tensor_type(dims: Option<&[usize]>) -> Option<TypeProto> {
        let dim = |&d: &usize| tensor_shape_proto::Dimension {
            denotation: String::new(),
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
        };
        Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: FLOAT,
                shape: dims.map(|dims| TensorShapeProto {
                    dim: dims.iter().map(dim).collect(),
                }),
            })),
        })
    }

    fn value(name: &str, dims: Option<&[usize]>) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: tensor_type(dims),
            doc_string: String::new(),
        }
    }

    fn init(name: &str, dims: &[usize], data: Vec<f32>) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            float_data: data,
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[usize]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints: v.iter().map(|&i| i as i64).collect(),
            ..Default::default()
        }
    }

    fn int(name: &str, i: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Int as i32,
            i,
            ..Default::default()
        }
    }

    fn string(name: &str, s: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::String as i32,
            s: s.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    /// A one-node ONNX model, typed and decluttered as the engine does before `rewrite`.
    fn onnx(
        node: NodeProto,
        initializer: Vec<TensorProto>,
        inputs: &[(&str, &[usize])],
    ) -> TractResult<TypedModel> {
        let proto = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(GraphProto {
                name: "g".into(),
                node: vec![node],
                initializer,
                input: inputs.iter().map(|(n, d)| value(n, Some(d))).collect(),
                output: vec![value("y", None)],
                ..Default::default()
            }),
            ..Default::default()
        };
        tract_onnx::onnx()
            .model_for_proto_model(&proto)?
            .into_typed()?
            .into_decluttered()
    }

    fn node(op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| (*s).into()).collect(),
            output: vec!["y".into()],
            attribute,
            ..Default::default()
        }
    }

    fn custom_ops(model: &TypedModel) -> usize {
        model
            .eval_order()
            .unwrap()
            .into_iter()
            .filter(|&id| {
                let n = &model.nodes[id];
                n.op_is::<Stride2Depthwise>()
                    || n.op_is::<MaxPool2x2>()
                    || n.op_is::<TrailingBroadcast>()
            })
            .count()
    }

    /// Runs `model` (decluttered) optimised by tract alone and rewritten then optimised, on the
    /// same seeded inputs; asserts the outputs agree and returns how many nodes were rewritten.
    fn differential(model: TypedModel, what: &str, seed: u64) -> usize {
        assert_eq!(custom_ops(&model), 0);
        let reference = model.clone().into_optimized().unwrap();
        let mut rewritten = model;
        rewrite(&mut rewritten).unwrap();
        let fired = custom_ops(&rewritten);
        let rewritten = rewritten.into_optimized().unwrap();
        assert_eq!(
            custom_ops(&rewritten),
            fired,
            "{what}: lost in optimisation"
        );
        let mut rng = Rng::new(seed);
        let inputs: TVec<TValue> = (0..reference.inputs.len())
            .map(|i| {
                let shape: TVec<usize> = reference
                    .input_fact(i)
                    .unwrap()
                    .shape
                    .as_concrete()
                    .unwrap()
                    .into();
                let n = shape.iter().product();
                Tensor::from_shape(&shape, &rng.fill(n))
                    .unwrap()
                    .into_tvalue()
            })
            .collect();
        let want = reference.into_runnable().unwrap().run(inputs.clone());
        let got = rewritten.into_runnable().unwrap().run(inputs).unwrap();
        let want = want.unwrap();
        assert_eq!(want.len(), got.len(), "{what}");
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w.shape(), g.shape(), "{what}");
            let (w, g) = (floats(w).unwrap(), floats(g).unwrap());
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                    "{what}: element {i}: tract {a}, rewritten {b}"
                );
            }
        }
        fired
    }

    /// How a test convolution or pool is padded.
    #[derive(Debug, Clone, Copy)]
    enum Pad {
        /// No attribute: zero explicit pads.
        Default,
        Valid,
        SameUpper,
        SameLower,
        /// Top, left, bottom, right (ONNX order).
        Explicit([usize; 4]),
    }

    const PADS: [Pad; 8] = [
        Pad::Default,
        Pad::Valid,
        Pad::SameUpper,
        Pad::SameLower,
        Pad::Explicit([1, 1, 1, 1]),
        Pad::Explicit([0, 1, 2, 0]),
        Pad::Explicit([2, 0, 1, 3]),
        Pad::Explicit([0, 0, 1, 0]),
    ];

    impl Pad {
        fn attributes(self) -> Vec<AttributeProto> {
            match self {
                Pad::Default => vec![],
                Pad::Valid => vec![string("auto_pad", "VALID")],
                Pad::SameUpper => vec![string("auto_pad", "SAME_UPPER")],
                Pad::SameLower => vec![string("auto_pad", "SAME_LOWER")],
                Pad::Explicit(p) => vec![ints("pads", &p)],
            }
        }

        /// Padded height and width, for explicit pads only.
        fn padded(self, h: usize, w: usize) -> (usize, usize) {
            match self {
                Pad::Explicit([t, l, b, r]) => (h + t + b, w + l + r),
                _ => (h, w),
            }
        }

        /// Zero padding on (H, W) that tract's declutter can see without computing it.
        fn zero_explicit(self) -> (bool, bool) {
            match self {
                Pad::Default | Pad::Valid => (true, true),
                Pad::SameUpper | Pad::SameLower => (false, false),
                Pad::Explicit([t, l, b, r]) => (t == 0 && b == 0, l == 0 && r == 0),
            }
        }
    }

    fn depthwise(
        n: usize,
        c: usize,
        (h, w): (usize, usize),
        (kh, kw): (usize, usize),
        pad: Pad,
        bias: bool,
        seed: u64,
    ) -> TractResult<TypedModel> {
        let mut rng = Rng::new(seed ^ 0xabcd);
        let mut attrs = vec![
            int("group", c as i64),
            ints("strides", &[2, 2]),
            ints("kernel_shape", &[kh, kw]),
        ];
        attrs.extend(pad.attributes());
        let mut initializer = vec![init("k", &[c, 1, kh, kw], rng.fill(c * kh * kw))];
        let mut inputs = vec!["x", "k"];
        if bias {
            initializer.push(init("b", &[c], rng.fill(c)));
            inputs.push("b");
        }
        onnx(
            node("Conv", &inputs, attrs),
            initializer,
            &[("x", &[n, c, h, w])],
        )
    }

    #[test]
    fn stride2_depthwise_matches_tract() {
        let kernels = [(1, 1), (2, 2), (3, 3), (5, 5), (3, 5), (1, 3)];
        let (mut fired, mut cases) = (0, 0);
        for (i, ((&h, &w), (&kernel, &pad))) in SIZES
            .iter()
            .flat_map(|h| SIZES.iter().map(move |w| (h, w)))
            .flat_map(|hw| {
                kernels
                    .iter()
                    .flat_map(move |k| PADS.iter().map(move |p| (hw, (k, p))))
            })
            .enumerate()
        {
            let (kh, kw) = kernel;
            // Sizes are `SAME` or large enough for the kernel: ONNX models can only be that.
            let (ph, pw) = pad.padded(h, w);
            let same = matches!(pad, Pad::SameUpper | Pad::SameLower);
            if !same && (ph < kh || pw < kw) {
                continue;
            }
            let c = [1, 3, 16][i % 3];
            let n = 1 + (i / 3) % 2;
            let bias = i % 5 != 0;
            let what = format!("n{n} c{c} {h}x{w} kernel {kh}x{kw} {pad:?} bias {bias}");
            let model = depthwise(n, c, (h, w), kernel, pad, bias, i as u64).unwrap();
            // tract turns a 1-wide kernel over an unpadded axis into a downsample and a
            // stride-1 convolution: nothing left to rewrite.
            let (zh, zw) = pad.zero_explicit();
            let expected = !((kh == 1 && zh) || (kw == 1 && zw));
            let got = differential(model, &what, i as u64);
            assert_eq!(got, usize::from(expected), "{what}");
            fired += got;
            cases += 1;
        }
        assert!(
            cases > 1500 && fired > 1000,
            "{cases} cases, {fired} rewritten"
        );
    }

    #[test]
    fn other_convolutions_are_left_to_tract() {
        let seed = 7;
        // Stride 1, stride (2, 1), dilation 2: not this rewrite's.
        for (strides, dilations) in [([1, 1], [1, 1]), ([2, 1], [1, 1]), ([2, 2], [2, 2])] {
            let attrs = vec![
                int("group", 3),
                ints("strides", &strides),
                ints("dilations", &dilations),
                ints("kernel_shape", &[3, 3]),
                ints("pads", &[1, 1, 1, 1]),
            ];
            let model = onnx(
                node("Conv", &["x", "k"], attrs),
                vec![init("k", &[3, 1, 3, 3], Rng::new(1).fill(27))],
                &[("x", &[1, 3, 9, 8])],
            )
            .unwrap();
            let what = format!("strides {strides:?} dilations {dilations:?}");
            assert_eq!(differential(model, &what, seed), 0, "{what}");
        }
        // Not depthwise: groups of two channels, and a full convolution.
        for (group, k_in) in [(2, 2), (1, 4)] {
            let attrs = vec![
                int("group", group),
                ints("strides", &[2, 2]),
                ints("kernel_shape", &[3, 3]),
                ints("pads", &[1, 1, 1, 1]),
            ];
            let model = onnx(
                node("Conv", &["x", "k"], attrs),
                vec![init("k", &[4, k_in, 3, 3], Rng::new(2).fill(4 * k_in * 9))],
                &[("x", &[1, 4, 9, 8])],
            )
            .unwrap();
            assert_eq!(differential(model, "grouped", seed), 0, "group {group}");
        }
        // A channel multiplier: two outputs per input channel.
        let attrs = vec![
            int("group", 3),
            ints("strides", &[2, 2]),
            ints("kernel_shape", &[3, 3]),
        ];
        let model = onnx(
            node("Conv", &["x", "k"], attrs),
            vec![init("k", &[6, 1, 3, 3], Rng::new(3).fill(54))],
            &[("x", &[1, 3, 9, 8])],
        )
        .unwrap();
        assert_eq!(differential(model, "multiplier", seed), 0);
    }

    /// CHW (no batch axis) models, built as tract models: ONNX has no such layout.
    #[test]
    fn chw_depthwise_and_pool_match_tract() {
        let mut i = 0u64;
        for &h in &SIZES {
            for &w in &SIZES {
                for (k, padding) in [
                    (3, PaddingSpec::SameUpper),
                    (5, PaddingSpec::SameLower),
                    (3, PaddingSpec::Explicit(tvec!(1, 0), tvec!(0, 2))),
                    (2, PaddingSpec::Valid),
                ] {
                    i += 1;
                    let c = [1, 3, 16][i as usize % 3];
                    let spec = PoolSpec {
                        data_format: DataFormat::CHW,
                        kernel_shape: tvec!(k, k),
                        padding: padding.clone(),
                        dilations: None,
                        strides: Some(tvec!(2, 2)),
                        input_channels: c,
                        output_channels: c,
                    };
                    let computed = spec.computed_padding(&[h, w]);
                    if computed.iter().any(|p| p.convoluted == 0) {
                        continue;
                    }
                    let mut model = TypedModel::default();
                    let x = model.add_source("x", f32::fact([c, h, w])).unwrap();
                    let mut rng = Rng::new(i);
                    let kernel = Tensor::from_shape(&[c, 1, k, k], &rng.fill(c * k * k)).unwrap();
                    let kernel = model.add_const("k", kernel).unwrap();
                    let bias = model.add_const("b", tensor1(&rng.fill(c))).unwrap();
                    let conv = Conv {
                        pool_spec: spec,
                        kernel_fmt: KernelFormat::OIHW,
                        group: c,
                        q_params: None,
                    };
                    let y = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap();
                    model.select_output_outlets(&y).unwrap();
                    let model = model.into_decluttered().unwrap();
                    let what = format!("CHW c{c} {h}x{w} kernel {k} {padding:?}");
                    assert_eq!(differential(model, &what, i), 1, "{what}");

                    let mut model = TypedModel::default();
                    let x = model.add_source("x", f32::fact([c, h, w])).unwrap();
                    let pool = MaxPool {
                        pool_spec: PoolSpec {
                            data_format: DataFormat::CHW,
                            kernel_shape: tvec!(2, 2),
                            padding: PaddingSpec::Valid,
                            dilations: None,
                            strides: Some(tvec!(2, 2)),
                            input_channels: c,
                            output_channels: c,
                        },
                        with_index_outputs: None,
                    };
                    if h < 2 || w < 2 {
                        continue;
                    }
                    let y = model.wire_node("pool", pool, &[x]).unwrap();
                    model.select_output_outlets(&y).unwrap();
                    let model = model.into_decluttered().unwrap();
                    let what = format!("CHW pool c{c} {h}x{w}");
                    let expected = usize::from(h % 2 == 0 && w % 2 == 0);
                    assert_eq!(differential(model, &what, i), expected, "{what}");
                }
            }
        }
    }

    #[test]
    fn max_pool_2x2_matches_tract() {
        let mut i = 0u64;
        for &h in &SIZES {
            for &w in &SIZES {
                for (kernel, strides, pad, ceil) in [
                    (2, 2, Pad::Default, false),
                    (2, 2, Pad::Valid, false),
                    (2, 2, Pad::Default, true),
                    (2, 2, Pad::SameUpper, false),
                    (2, 2, Pad::SameLower, false),
                    (2, 2, Pad::Explicit([1, 0, 1, 0]), false),
                    (2, 2, Pad::Explicit([0, 0, 0, 1]), false),
                    (2, 1, Pad::Default, false),
                    (3, 2, Pad::Default, false),
                ] {
                    i += 1;
                    let (ph, pw) = pad.padded(h, w);
                    if ph < kernel || pw < kernel {
                        continue;
                    }
                    let c = [1, 3, 16][i as usize % 3];
                    let n = 1 + (i as usize / 3) % 2;
                    let mut attrs = vec![
                        ints("kernel_shape", &[kernel, kernel]),
                        ints("strides", &[strides, strides]),
                    ];
                    attrs.extend(pad.attributes());
                    if ceil {
                        attrs.push(int("ceil_mode", 1));
                    }
                    let model = onnx(
                        node("MaxPool", &["x"], attrs),
                        vec![],
                        &[("x", &[n, c, h, w])],
                    )
                    .unwrap();
                    let what = format!(
                        "n{n} c{c} {h}x{w} kernel {kernel} stride {strides} {pad:?} ceil {ceil}"
                    );
                    let unpadded = match pad {
                        Pad::Explicit(p) => p == [0; 4],
                        _ => true,
                    };
                    let expected =
                        kernel == 2 && strides == 2 && unpadded && h % 2 == 0 && w % 2 == 0;
                    assert_eq!(
                        differential(model, &what, i),
                        usize::from(expected),
                        "{what}"
                    );
                }
            }
        }
    }

    /// `op(x, s)` (or `op(s, x)` when `swap`), `x` an input, `s` an input or a constant.
    fn binary(
        op: &str,
        big: &[usize],
        small: &[usize],
        swap: bool,
        constant: bool,
        seed: u64,
    ) -> TypedModel {
        let inputs = if swap { ["s", "x"] } else { ["x", "s"] };
        let n: usize = small.iter().product();
        let (initializer, sources): (_, Vec<(&str, &[usize])>) = if constant {
            let data = Rng::new(seed ^ 0x55).fill(n);
            (vec![init("s", small, data)], vec![("x", big)])
        } else {
            (vec![], vec![("x", big), ("s", small)])
        };
        onnx(node(op, &inputs, vec![]), initializer, &sources).unwrap()
    }

    /// The names of the binary ops `model` runs.
    fn bin_ops(model: &TypedModel) -> Vec<String> {
        model
            .eval_order()
            .unwrap()
            .into_iter()
            .filter_map(|id| model.nodes[id].op_as::<TypedBinOp>())
            .map(|b| b.0.name().to_string())
            .collect()
    }

    #[test]
    fn trailing_broadcasts_match_tract() {
        let mut cases: Vec<(Vec<usize>, Vec<usize>, bool)> = vec![];
        for p in [1, 2, 3, 16, 31, 32, 33] {
            let fires = p > 1 && p < 32;
            for (h, w) in [(1, 1), (3, 5), (8, 7), (17, 2)] {
                for n in [1, 2] {
                    cases.push((vec![n, h, w, p], vec![1, 1, 1, p], fires));
                    cases.push((vec![n, h, w, p], vec![p], fires));
                    cases.push((vec![n, h, w, p], vec![1, p], fires));
                    // Two trailing axes repeating: `[W, P]`, under 32 or not.
                    cases.push((vec![n, h, w, p], vec![w, p], w * p > 1 && w * p < 32));
                    // A per-batch scale is not a trailing repeat when the batch is 2, unless
                    // all that follows the batch is one value: then it repeats every 2 * P.
                    let per_batch = if n == 1 {
                        fires
                    } else {
                        h * w == 1 && 2 * p < 32
                    };
                    cases.push((vec![n, h, w, p], vec![n, 1, 1, p], per_batch));
                    // NCHW per-channel: `[C, 1, 1]` is not a suffix unless H, W are 1.
                    cases.push((vec![n, p, h, w], vec![p, 1, 1], h * w == 1 && fires));
                }
            }
        }
        // Broadcast on both sides: no operand has the output's shape.
        cases.push((vec![2, 1, 16], vec![1, 3, 16], false));
        cases.push((vec![4, 1], vec![1, 3], false));
        // Equal shapes, small: a period of the whole tensor.
        cases.push((vec![2, 3], vec![2, 3], true));
        cases.push((vec![1, 1], vec![1, 1], false));
        let mut seed = 0;
        for (big, small, fires) in &cases {
            for op in ["Mul", "Add", "Sub", "Div"] {
                for swap in [false, true] {
                    for constant in [false, true] {
                        seed += 1;
                        let what = format!("{op} {big:?} {small:?} swap {swap} const {constant}");
                        let model = binary(op, big, small, swap, constant, seed);
                        // tract declutters `a / b` into `a * recip(b)`: that `Mul` is fair
                        // game. `Sub` stays itself and is never rewritten.
                        let expected = *fires && matches!(op, "Mul" | "Add" | "Div");
                        let ops = bin_ops(&model);
                        match op {
                            "Div" => assert!(ops == ["Mul"], "{what}: {ops:?}"),
                            _ => assert!(ops == [op], "{what}: {ops:?}"),
                        }
                        let got = differential(model, &what, seed);
                        assert_eq!(got, usize::from(expected), "{what}");
                    }
                }
            }
        }
    }
}
