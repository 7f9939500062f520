//! The operations: generic ones packed into `Genop` requests with the layouts of
//! `vaccel_core::genop`, model ones through their dedicated RPCs.

use bytes::Bytes;
use vaccel_core::arg::Arg;
use vaccel_core::tensor::{DataType, Tensor, TfLiteRunOutput, TfRunOutput};
use vaccel_core::{
    ArgError, ArgType, Error, ErrorCode, Id, OpType, Resource, Result, Session, SgemmArgs,
    TfLiteDataType, TfLiteTensor, TfNode, TfStatus, TfTensor, TorchDataType, TorchTensor,
};
use vaccel_rpc::client::{Client, GenopArg};
use vaccel_rpc::proto::vaccel as pv;

use crate::{RpcPlugin, rpc_debug};

/// What the agent sent does not fit what the op returns: `EBACKEND`, as upstream.
fn backend(message: String) -> Error {
    Error::backend("rpc", ErrorCode::EBACKEND, message)
}

fn arg<T>(index: usize, r: std::result::Result<T, ArgError>) -> Result<T> {
    r.map_err(|e| Error::arg(index, e))
}

fn wire<'a>(args: &'a [Arg<'_>]) -> impl Iterator<Item = GenopArg<'a>> {
    args.iter().map(GenopArg::from_arg)
}

impl RpcPlugin {
    fn start(&self, sess: &Session, op: OpType) -> Result<std::sync::Arc<Client>> {
        rpc_debug!("session:{} Executing op {}", sess.id(), op.name());
        self.client_for(sess)
    }

    /// `op` goes through `Genop` only to an agent that runs it there (upstream's refuses it,
    /// and upstream's plugin does not offer it): otherwise `ENOTSUP`, as upstream's plugin.
    fn extended_genop(&self, sess: &Session, op: OpType) -> Result<()> {
        if self.client_for(sess)?.genop_runs(op.value()) {
            return Ok(());
        }
        log::warn!(
            "[rpc] {}: the agent does not run this op (an upstream agent, or one that does not \
             advertise it)",
            op.name()
        );
        Err(vaccel_core::plugin::not_implemented(self, op))
    }

    /// Runs `op` on the agent through `Genop`: `read` after the op-type argument, `write`
    /// sent with its current bytes (as upstream) and overwritten with what comes back.
    fn forward(
        &self,
        sess: &Session,
        op: OpType,
        read: &[GenopArg<'_>],
        write: &mut [Arg<'_>],
    ) -> Result<()> {
        let client = self.start(sess, op)?;
        let op_byte = [op.value()];
        let mut all = Vec::with_capacity(read.len() + 1);
        all.push(GenopArg::new(ArgType::Uint8, &op_byte));
        all.extend_from_slice(read);
        let out = {
            let w: Vec<GenopArg<'_>> = wire(write).collect();
            client.genop(sess.remote_id(), &all, &w)?
        };
        if out.len() != write.len() {
            return Err(backend(format!(
                "{}: the agent returned {} write arguments for {}",
                op.name(),
                out.len(),
                write.len()
            )));
        }
        for (i, (dst, src)) in write.iter_mut().zip(&out).enumerate() {
            let bytes = arg(i, dst.bytes_mut())?;
            let capacity = bytes.len();
            let slot = bytes.get_mut(..src.buf.len()).ok_or_else(|| {
                backend(format!(
                    "{}: the agent returned {} bytes for write argument {i}, which holds {capacity}",
                    op.name(),
                    src.buf.len()
                ))
            })?;
            slot.copy_from_slice(&src.buf);
        }
        Ok(())
    }
}

pub(crate) fn noop(p: &RpcPlugin, sess: &Session) -> Result<()> {
    p.extended_genop(sess, OpType::Noop)?;
    p.forward(sess, OpType::Noop, &[], &mut [])
}

pub(crate) fn exec(
    p: &RpcPlugin,
    sess: &Session,
    library: &str,
    symbol: &str,
    read: &[Arg<'_>],
    write: &mut [Arg<'_>],
) -> Result<()> {
    // The library path is resolved on the agent's host, as upstream.
    let head = [arg(0, Arg::string(library))?, arg(1, Arg::string(symbol))?];
    let all: Vec<GenopArg<'_>> = wire(&head).chain(wire(read)).collect();
    p.forward(sess, OpType::Exec, &all, write)
}

pub(crate) fn exec_with_resource(
    p: &RpcPlugin,
    sess: &Session,
    res: &Resource,
    symbol: &str,
    read: &[Arg<'_>],
    write: &mut [Arg<'_>],
) -> Result<()> {
    let client = p.client_for(sess)?;
    let head = [
        Arg::scalar(p.remote_resource_id(res, &client)),
        arg(1, Arg::string(symbol))?,
    ];
    let all: Vec<GenopArg<'_>> = wire(&head).chain(wire(read)).collect();
    p.forward(sess, OpType::ExecWithResource, &all, write)
}

/// An output text buffer; an empty one travels as one byte (the wire refuses empty arrays)
/// and gets nothing back.
fn text_out<'a>(buf: &'a mut [u8], spare: &'a mut [u8; 1], index: usize) -> Result<Arg<'a>> {
    let buf = if buf.is_empty() { &mut spare[..] } else { buf };
    arg(index, Arg::new_mut(ArgType::UcharArray, buf))
}

pub(crate) fn image_classify(
    p: &RpcPlugin,
    sess: &Session,
    image: &[u8],
    out_text: &mut [u8],
    out_imgname: &mut [u8],
) -> Result<()> {
    let (mut spare_name, mut spare_text) = ([0u8; 1], [0u8; 1]);
    // The caller's sizes travel as they are (upstream's plugin used a fixed 1024).
    let mut write = [
        text_out(out_imgname, &mut spare_name, 0)?,
        text_out(out_text, &mut spare_text, 1)?,
    ];
    let read = [GenopArg::new(ArgType::Buffer, image)];
    p.forward(sess, OpType::ImageClassify, &read, &mut write)
}

pub(crate) fn image_op(
    p: &RpcPlugin,
    sess: &Session,
    op: OpType,
    image: &[u8],
    out_imgname: &mut [u8],
) -> Result<()> {
    let mut spare = [0u8; 1];
    let mut write = [text_out(out_imgname, &mut spare, 0)?];
    let read = [GenopArg::new(ArgType::Buffer, image)];
    p.forward(sess, op, &read, &mut write)
}

/// Room for the detections text (about 60 bytes per object).
const DETECTIONS_CAPACITY: usize = 16 * 1024;

/// Detection with structured results: an agent that advertises `detection_records` fills a
/// second output with the detections (`vaccel_core::detection`). Others get upstream's one
/// output, and the result has no detections.
pub(crate) fn image_detect_objects(
    p: &RpcPlugin,
    sess: &Session,
    image: &[u8],
    out_imgname: &mut [u8],
) -> Result<Vec<vaccel_core::Detection>> {
    if !p.client_for(sess)?.detection_records() {
        image_op(p, sess, OpType::ImageDetect, image, out_imgname)?;
        return Ok(Vec::new());
    }
    let mut spare = [0u8; 1];
    let mut found = vec![0u8; DETECTIONS_CAPACITY];
    {
        let mut write = [
            text_out(out_imgname, &mut spare, 0)?,
            arg(1, Arg::new_mut(ArgType::UcharArray, &mut found))?,
        ];
        let read = [GenopArg::new(ArgType::Buffer, image)];
        p.forward(sess, OpType::ImageDetect, &read, &mut write)?;
    }
    vaccel_core::detection::decode(&found)
}

pub(crate) fn sgemm(
    p: &RpcPlugin,
    sess: &Session,
    args: &SgemmArgs<'_>,
    c: &mut [f32],
) -> Result<()> {
    let read = [
        Arg::scalar(args.m),
        Arg::scalar(args.n),
        Arg::scalar(args.k),
        Arg::scalar(args.alpha),
        arg(5, Arg::array(args.a))?,
        Arg::scalar(args.lda),
        arg(7, Arg::array(args.b))?,
        Arg::scalar(args.ldb),
        Arg::scalar(args.beta),
        Arg::scalar(args.ldc),
    ];
    let read: Vec<GenopArg<'_>> = wire(&read).collect();
    let mut write = [arg(0, Arg::out_array(c))?];
    p.forward(sess, OpType::BlasSgemm, &read, &mut write)
}

pub(crate) fn fpga_arraycopy(
    p: &RpcPlugin,
    sess: &Session,
    a: &[i32],
    out: &mut [i32],
) -> Result<()> {
    let read = [arg(1, Arg::array(a))?];
    let read: Vec<GenopArg<'_>> = wire(&read).collect();
    let mut write = [arg(0, Arg::out_array(out))?];
    p.forward(sess, OpType::FpgaArraycopy, &read, &mut write)
}

/// FPGA_MMULT and FPGA_VECTORADD: `a`, `b` in, `c` out.
pub(crate) fn fpga_two_in(
    p: &RpcPlugin,
    sess: &Session,
    op: OpType,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) -> Result<()> {
    let read = [arg(1, Arg::array(a))?, arg(2, Arg::array(b))?];
    let read: Vec<GenopArg<'_>> = wire(&read).collect();
    let mut write = [arg(0, Arg::out_array(c))?];
    p.forward(sess, op, &read, &mut write)
}

pub(crate) fn fpga_parallel(
    p: &RpcPlugin,
    sess: &Session,
    a: &[f32],
    b: &[f32],
    add_out: &mut [f32],
    mult_out: &mut [f32],
) -> Result<()> {
    let read = [arg(1, Arg::array(a))?, arg(2, Arg::array(b))?];
    let read: Vec<GenopArg<'_>> = wire(&read).collect();
    let mut write = [
        arg(0, Arg::out_array(add_out))?,
        arg(1, Arg::out_array(mult_out))?,
    ];
    p.forward(sess, OpType::FpgaParallel, &read, &mut write)
}

pub(crate) fn minmax(
    p: &RpcPlugin,
    sess: &Session,
    indata: &[f64],
    low_threshold: i32,
    high_threshold: i32,
    outdata: &mut [f64],
) -> Result<(f64, f64)> {
    let ndata = i32::try_from(indata.len())
        .map_err(|_| Error::invalid("minmax: more values than an int counts"))?;
    let read = [
        arg(1, Arg::array(indata))?,
        Arg::scalar(ndata),
        Arg::scalar(low_threshold),
        Arg::scalar(high_threshold),
    ];
    let read: Vec<GenopArg<'_>> = wire(&read).collect();
    let (mut min, mut max) = (0f64, 0f64);
    {
        let mut write = [
            arg(0, Arg::out_array(outdata))?,
            Arg::out_scalar(&mut min),
            Arg::out_scalar(&mut max),
        ];
        p.forward(sess, OpType::Minmax, &read, &mut write)?;
    }
    Ok((min, max))
}

pub(crate) fn opencv(
    p: &RpcPlugin,
    sess: &Session,
    read: &[Arg<'_>],
    write: &mut [Arg<'_>],
) -> Result<()> {
    let read: Vec<GenopArg<'_>> = wire(read).collect();
    p.forward(sess, OpType::Opencv, &read, write)
}

/// The three read arguments of a tensor: `INT64_ARRAY` dims, `UINT32` type, bytes.
fn tensor_args<'a, D: DataType>(t: &'a Tensor<'_, D>, index: usize) -> Result<[Arg<'a>; 3]> {
    let data = if t.data.is_empty() {
        Arg::raw(&[])
    } else {
        arg(index + 2, Arg::buffer(&t.data))?
    };
    Ok([
        arg(index, Arg::array(&t.dims))?,
        Arg::scalar(t.data_type.to_value()),
        data,
    ])
}

pub(crate) fn torch_sgemm(
    p: &RpcPlugin,
    sess: &Session,
    tensors: [&TorchTensor<'_>; 3],
    m: i32,
    n: i32,
    k: i32,
) -> Result<Option<TorchTensor<'static>>> {
    p.extended_genop(sess, OpType::TorchSgemm)?;
    let [a, b, c] = tensors;
    let ta = tensor_args(a, 1)?;
    let tb = tensor_args(b, 4)?;
    let tc = tensor_args(c, 7)?;
    let dims = [Arg::scalar(m), Arg::scalar(n), Arg::scalar(k)];
    let read: Vec<GenopArg<'_>> = wire(&ta)
        .chain(wire(&tb))
        .chain(wire(&tc))
        .chain(wire(&dims))
        .collect();
    // The result has C's shape; size the output generously: a header of 3 + dims words and
    // room for C or an m x n float matrix, whichever is larger.
    let mn = usize::try_from(m)
        .ok()
        .zip(usize::try_from(n).ok())
        .and_then(|(m, n)| m.checked_mul(n)?.checked_mul(4))
        .unwrap_or(0);
    let mut header = vec![0i64; 3 + c.dims.len().max(8)];
    let mut data = vec![0u8; c.data.len().max(mn)];
    {
        let data_arg = if data.is_empty() {
            Arg::raw_mut(&mut data)
        } else {
            arg(1, Arg::new_mut(ArgType::Buffer, &mut data))?
        };
        let mut write = [arg(0, Arg::out_array(&mut header))?, data_arg];
        p.forward(sess, OpType::TorchSgemm, &read, &mut write)?;
    }
    // A plugin that returns nothing leaves the header zero.
    let [ty, nr_dims, size, rest @ ..] = header.as_slice() else {
        return Ok(None);
    };
    if *ty == 0 {
        return Ok(None);
    }
    let bad = || backend("torch_sgemm: the agent returned a malformed tensor header".to_owned());
    let nr_dims = usize::try_from(*nr_dims).map_err(|_| bad())?;
    let size = usize::try_from(*size).map_err(|_| bad())?;
    let dims = rest.get(..nr_dims).ok_or_else(bad)?.to_vec();
    let bytes = data.get(..size).ok_or_else(bad)?.to_vec();
    let ty = u32::try_from(*ty)
        .ok()
        .and_then(TorchDataType::from_value)
        .ok_or_else(bad)?;
    Tensor::new(dims, ty, bytes)
        .map(Some)
        .map_err(|e| backend(format!("torch_sgemm: {e}")))
}

/// A tensor from the wire: `EBACKEND` if its type or dims make no sense.
fn tensor_from_wire<D: DataType>(
    op: OpType,
    dims: Vec<i64>,
    ty: i32,
    data: Bytes,
) -> Result<Tensor<'static, D>> {
    let data_type = u32::try_from(ty)
        .ok()
        .and_then(D::try_from_value)
        .ok_or_else(|| backend(format!("{}: unknown tensor data type {ty}", op.name())))?;
    Tensor::new(dims, data_type, data.to_vec()).map_err(|e| backend(format!("{}: {e}", op.name())))
}

fn tf_status(status: Option<pv::Status>) -> TfStatus {
    status.map_or_else(TfStatus::default, |s| {
        TfStatus::new(u8::try_from(s.code).unwrap_or(u8::MAX), s.message)
    })
}

/// The session's and the model's ids on the agent.
fn ids(
    p: &RpcPlugin,
    sess: &Session,
    model: &Resource,
    client: &std::sync::Arc<Client>,
) -> (Id, Id) {
    (sess.remote_id(), p.remote_resource_id(model, client))
}

pub(crate) fn tf_model_load(p: &RpcPlugin, sess: &Session, model: &Resource) -> Result<TfStatus> {
    let client = p.start(sess, OpType::TfModelLoad)?;
    let (s, m) = ids(p, sess, model, &client);
    Ok(tf_status(client.tf_model_load(s, m)?.status))
}

pub(crate) fn tf_model_unload(p: &RpcPlugin, sess: &Session, model: &Resource) -> Result<TfStatus> {
    let client = p.start(sess, OpType::TfModelUnload)?;
    let (s, m) = ids(p, sess, model, &client);
    Ok(tf_status(client.tf_model_unload(s, m)?.status))
}

fn tf_node(n: &TfNode) -> pv::tf::Node {
    pv::tf::Node {
        name: n.name.clone(),
        id: n.id,
    }
}

pub(crate) fn tf_model_run(
    p: &RpcPlugin,
    sess: &Session,
    model: &Resource,
    run_options: Option<&[u8]>,
    in_nodes: &[TfNode],
    in_tensors: &[TfTensor<'_>],
    out_nodes: &[TfNode],
) -> Result<TfRunOutput> {
    let client = p.start(sess, OpType::TfModelRun)?;
    let (session_id, model_id) = ids(p, sess, model, &client);
    let req = pv::tf::ModelRunRequest {
        session_id,
        model_id,
        run_options: run_options.map(Bytes::copy_from_slice),
        in_nodes: in_nodes.iter().map(tf_node).collect(),
        out_nodes: out_nodes.iter().map(tf_node).collect(),
        in_tensors: in_tensors
            .iter()
            .map(|t| pv::tf::Tensor {
                data: Bytes::copy_from_slice(&t.data),
                dims: t.dims.clone(),
                r#type: t.data_type.value() as i32,
            })
            .collect(),
    };
    let resp = client.tf_model_run(&req)?;
    let outputs = resp
        .out_tensors
        .into_iter()
        .map(|t| tensor_from_wire(OpType::TfModelRun, t.dims, t.r#type, t.data))
        .collect::<Result<Vec<_>>>()?;
    Ok(TfRunOutput {
        outputs,
        status: tf_status(resp.status),
    })
}

pub(crate) fn tflite_model_load(p: &RpcPlugin, sess: &Session, model: &Resource) -> Result<()> {
    let client = p.start(sess, OpType::TfliteModelLoad)?;
    let (s, m) = ids(p, sess, model, &client);
    client.tflite_model_load(s, m)
}

pub(crate) fn tflite_model_unload(p: &RpcPlugin, sess: &Session, model: &Resource) -> Result<()> {
    let client = p.start(sess, OpType::TfliteModelUnload)?;
    let (s, m) = ids(p, sess, model, &client);
    client.tflite_model_unload(s, m)
}

pub(crate) fn tflite_model_run(
    p: &RpcPlugin,
    sess: &Session,
    model: &Resource,
    inputs: &[TfLiteTensor<'_>],
    nr_outputs: usize,
) -> Result<TfLiteRunOutput> {
    let client = p.start(sess, OpType::TfliteModelRun)?;
    let (session_id, model_id) = ids(p, sess, model, &client);
    let mut in_tensors = Vec::with_capacity(inputs.len());
    for t in inputs {
        let dims = t
            .dims
            .iter()
            .map(|&d| i32::try_from(d))
            .collect::<std::result::Result<Vec<i32>, _>>()
            .map_err(|_| Error::invalid("tflite_model_run: a dimension does not fit in int32"))?;
        in_tensors.push(pv::tflite::Tensor {
            data: Bytes::copy_from_slice(&t.data),
            dims,
            // vAccel's numeric value, not upstream's shifted proto name (spec §8.6).
            r#type: t.data_type.value() as i32,
        });
    }
    let req = pv::tflite::ModelRunRequest {
        session_id,
        model_id,
        in_tensors,
        nr_out_tensors: nr_outputs as u64,
    };
    let resp = client.tflite_model_run(&req)?;
    let outputs = resp
        .out_tensors
        .into_iter()
        .map(|t| {
            let dims = t.dims.into_iter().map(i64::from).collect();
            tensor_from_wire::<TfLiteDataType>(OpType::TfliteModelRun, dims, t.r#type, t.data)
        })
        .collect::<Result<Vec<_>>>()?;
    let status = resp
        .status
        .map_or(0, |s| u8::try_from(s.code).unwrap_or(u8::MAX));
    Ok(TfLiteRunOutput { outputs, status })
}

pub(crate) fn torch_model_load(p: &RpcPlugin, sess: &Session, model: &Resource) -> Result<()> {
    let client = p.start(sess, OpType::TorchModelLoad)?;
    let (s, m) = ids(p, sess, model, &client);
    client.torch_model_load(s, m)
}

pub(crate) fn torch_model_run(
    p: &RpcPlugin,
    sess: &Session,
    model: &Resource,
    run_options: Option<&[u8]>,
    inputs: &[TorchTensor<'_>],
    nr_outputs: usize,
) -> Result<Vec<TorchTensor<'static>>> {
    let client = p.start(sess, OpType::TorchModelRun)?;
    let (session_id, model_id) = ids(p, sess, model, &client);
    let req = pv::torch::ModelRunRequest {
        session_id,
        model_id,
        run_options: run_options.map(Bytes::copy_from_slice),
        in_tensors: inputs
            .iter()
            .map(|t| pv::torch::Tensor {
                data: Bytes::copy_from_slice(&t.data),
                dims: t.dims.clone(),
                r#type: t.data_type.value() as i32,
            })
            .collect(),
        nr_out_tensors: nr_outputs as u64,
    };
    let resp = client.torch_model_run(&req)?;
    resp.out_tensors
        .into_iter()
        .map(|t| tensor_from_wire::<TorchDataType>(OpType::TorchModelRun, t.dims, t.r#type, t.data))
        .collect()
}
