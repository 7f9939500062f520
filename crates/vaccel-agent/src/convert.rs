//! Wire messages to runtime types and back.

use std::borrow::Cow;

use bytes::Bytes;
use vaccel::tensor::DataType;
use vaccel::tensor::Tensor;
use vaccel::{Arg, Error, Id, OpType, TfNode};
use vaccel_rpc::proto::grpc;
use vaccel_rpc::proto::vaccel::genop as pg;
use vaccel_rpc::status;

/// An argument whose `size` disagrees with its bytes (upstream: "Conversion failed").
fn conversion_failed(which: &str, index: usize, arg: &pg::Arg) -> grpc::Status {
    status::invalid_argument(format!(
        "Conversion failed: {which} argument {index} has size {} but {} bytes",
        arg.size,
        arg.buf.len()
    ))
}

fn check_size(which: &str, index: usize, arg: &pg::Arg) -> Result<(), grpc::Status> {
    if u64::from(arg.size) == arg.buf.len() as u64 {
        Ok(())
    } else {
        Err(conversion_failed(which, index, arg))
    }
}

fn arg_type(arg: &pg::Arg) -> u32 {
    // A negative enum value is as unknown as 99: `Arg::from_parts` refuses it.
    u32::try_from(arg.arg_type).unwrap_or(u32::MAX)
}

/// Read arguments borrowing the request's bytes (no copy).
pub(crate) fn read_args(args: &[pg::Arg]) -> Result<Vec<Arg<'_>>, grpc::Status> {
    let mut out = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        check_size("read", i, a)?;
        let arg = Arg::from_parts(arg_type(a), a.custom_type_id, &a.buf)
            .map_err(|e| status::error_status(&Error::arg(i, e)))?;
        out.push(arg);
    }
    Ok(out)
}

/// The owned, writable buffers of the write arguments (their current contents copied: the
/// client sends them and some ops read them).
pub(crate) fn write_buffers(args: &[pg::Arg]) -> Result<Vec<Vec<u8>>, grpc::Status> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            check_size("write", i, a)?;
            Ok(a.buf.to_vec())
        })
        .collect()
}

/// Writable arguments over `bufs` (typed as `meta`).
pub(crate) fn write_args<'a>(
    meta: &[pg::Arg],
    bufs: &'a mut [Vec<u8>],
) -> Result<Vec<Arg<'a>>, grpc::Status> {
    meta.iter()
        .zip(bufs.iter_mut())
        .enumerate()
        .map(|(i, (a, buf))| {
            Arg::from_parts_mut(arg_type(a), a.custom_type_id, buf)
                .map_err(|e| status::error_status(&Error::arg(i, e)))
        })
        .collect()
}

/// Every write argument back, with its bytes, size, type and custom id.
pub(crate) fn response_args(meta: &[pg::Arg], bufs: Vec<Vec<u8>>) -> Vec<pg::Arg> {
    meta.iter()
        .zip(bufs)
        .map(|(a, buf)| pg::Arg {
            size: u32::try_from(buf.len()).unwrap_or(u32::MAX),
            buf: Bytes::from(buf),
            arg_type: a.arg_type,
            custom_type_id: a.custom_type_id,
            parts: 0,
            part_no: 0,
        })
        .collect()
}

/// The resource a genop refers to by id (`EXEC_WITH_RESOURCE` and the model ops carry an
/// `INT64` resource id right after the op type), so the agent can check the client owns it.
pub(crate) fn genop_resource_id(read: &[pg::Arg]) -> Option<Id> {
    let [op, id, ..] = read else {
        return None;
    };
    let op = OpType::from_value(*op.buf.first()?)?;
    let refers = matches!(
        op,
        OpType::ExecWithResource
            | OpType::TfModelLoad
            | OpType::TfModelUnload
            | OpType::TfModelRun
            | OpType::TfliteModelLoad
            | OpType::TfliteModelUnload
            | OpType::TfliteModelRun
            | OpType::TorchModelLoad
            | OpType::TorchModelRun
    );
    if !refers || id.arg_type != pg::ArgType::Int64 as i32 {
        return None;
    }
    let bytes: [u8; 8] = id.buf.as_ref().try_into().ok()?;
    Some(i64::from_ne_bytes(bytes))
}

/// Joins the parts of split arguments (upstream's `GenopStream`: an argument larger than one
/// message travels as `parts` pieces numbered `part_no` 1..=parts, each with the total `size`).
pub(crate) fn join_parts(args: Vec<pg::Arg>) -> Result<Vec<pg::Arg>, grpc::Status> {
    let mut out = Vec::with_capacity(args.len());
    // The first part (for type, custom id and total size), the bytes so far, the next part_no.
    let mut partial: Option<(pg::Arg, Vec<u8>, u32)> = None;
    for a in args {
        if a.parts <= 1 {
            if partial.is_some() {
                return Err(status::invalid_argument(
                    "a whole argument interrupts a split one",
                ));
            }
            out.push(a);
            continue;
        }
        let (first, mut buf, next) = match partial.take() {
            Some(p) => p,
            None => {
                // Grows as parts arrive: the announced size is not trusted for allocation.
                (a.clone(), Vec::new(), 1)
            }
        };
        if a.part_no != next || a.parts != first.parts {
            return Err(status::invalid_argument(format!(
                "split argument: got part {} of {}, expected part {next} of {}",
                a.part_no, a.parts, first.parts
            )));
        }
        buf.extend_from_slice(&a.buf);
        if a.part_no == a.parts {
            out.push(pg::Arg {
                buf: Bytes::from(buf),
                parts: 0,
                part_no: 0,
                ..first
            });
        } else {
            partial = Some((first, buf, next + 1));
        }
    }
    if partial.is_some() {
        return Err(status::invalid_argument("a split argument is incomplete"));
    }
    Ok(out)
}

/// A tensor over the request's bytes.
pub(crate) fn tensor<'a, D: DataType>(
    dims: Vec<i64>,
    data_type: i32,
    data: &'a Bytes,
) -> Result<Tensor<'a, D>, grpc::Status> {
    let ty = u32::try_from(data_type)
        .ok()
        .and_then(D::try_from_value)
        .ok_or_else(|| {
            status::error_status(&Error::invalid(format!(
                "unknown tensor data type {data_type}"
            )))
        })?;
    Tensor::new(dims, ty, Cow::Borrowed(&data[..])).map_err(|e| status::error_status(&e))
}

/// TensorFlow graph nodes.
pub(crate) fn nodes(nodes: &[vaccel_rpc::proto::vaccel::tf::Node]) -> Vec<TfNode> {
    nodes
        .iter()
        .map(|n| TfNode::new(n.name.clone(), n.id))
        .collect()
}

/// An output tensor's bytes, dims and numeric type.
pub(crate) fn out_parts<D: DataType>(t: Tensor<'static, D>) -> (Bytes, Vec<i64>, i32) {
    let ty = i32::try_from(t.data_type.to_value()).unwrap_or(0);
    let data = match t.data {
        Cow::Owned(v) => Bytes::from(v),
        Cow::Borrowed(b) => Bytes::from_static(b),
    };
    (data, t.dims, ty)
}
