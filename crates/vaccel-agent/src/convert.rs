//! Wire messages to runtime types and back.

use std::borrow::Cow;

use bytes::Bytes;
use prost::encoding::encoded_len_varint;
use smallvec::SmallVec;
use vaccel::tensor::DataType;
use vaccel::tensor::Tensor;
use vaccel::{Arg, Error, Id, OpType, TfNode};
use vaccel_rpc::message::{self, GenopArgView, INLINE_ARGS, put_varint_field, varint_field_len};
use vaccel_rpc::proto::grpc;
use vaccel_rpc::proto::vaccel::genop as pg;
use vaccel_rpc::shm::RegionMut;
use vaccel_rpc::status;

/// An argument whose `size` disagrees with its bytes (upstream: "Conversion failed").
fn conversion_failed(which: &str, index: usize, arg: &GenopArgView<'_>) -> grpc::Status {
    status::invalid_argument(format!(
        "Conversion failed: {which} argument {index} has size {} but {} bytes",
        arg.size,
        arg.buf.len()
    ))
}

fn check_size(which: &str, index: usize, arg: &GenopArgView<'_>) -> Result<(), grpc::Status> {
    if u64::from(arg.size) == arg.buf.len() as u64 {
        Ok(())
    } else {
        Err(conversion_failed(which, index, arg))
    }
}

fn arg_type(arg: &GenopArgView<'_>) -> u32 {
    // A negative enum value is as unknown as 99: `Arg::from_parts` refuses it.
    u32::try_from(arg.arg_type).unwrap_or(u32::MAX)
}

/// Points the read arguments a client placed in its argument buffers
/// (`CallContext::shared_args`: `(index, bytes)`) at those bytes. Such an argument comes
/// without bytes of its own and with `size` saying how many it has: a `size` other than the
/// region's length, bytes besides the region, or an index past the arguments is
/// `INVALID_ARGUMENT`.
pub(crate) fn use_shared_args<'a>(
    read: &mut [GenopArgView<'a>],
    shared: &'a [(usize, Bytes)],
) -> Result<(), grpc::Status> {
    for (index, bytes) in shared {
        let Some(arg) = read.get_mut(*index) else {
            return Err(status::invalid_argument(format!(
                "{}: argument {index} does not exist ({} read arguments)",
                vaccel_rpc::server::META_SHARED_ARGS,
                read.len()
            )));
        };
        check_in_region("read", *index, arg, bytes.len())?;
        arg.buf = bytes;
    }
    Ok(())
}

/// A genop's arguments, held without allocating for the usual counts.
pub(crate) type Args<'a> = SmallVec<[Arg<'a>; INLINE_ARGS]>;

/// Read arguments borrowing the request's bytes (no copy), added to `out`.
pub(crate) fn read_args<'a>(
    args: &[GenopArgView<'a>],
    out: &mut Args<'a>,
) -> Result<(), grpc::Status> {
    out.reserve(args.len());
    for (i, a) in args.iter().enumerate() {
        check_size("read", i, a)?;
        let arg = Arg::from_parts(arg_type(a), a.custom_type_id, a.buf)
            .map_err(|e| status::error_status(&Error::arg(i, e)))?;
        out.push(arg);
    }
    Ok(())
}

/// The fields of a response write argument after its bytes (`size`, `arg_type`,
/// `custom_type_id`; `parts` and `part_no` are 0, so absent), as prost encodes them.
fn encode_arg_tail(a: &GenopArgView<'_>, size: usize, out: &mut Vec<u8>) {
    let [size, arg_type, custom] = tail_values(a, size);
    put_varint_field(2, size, out);
    put_varint_field(3, arg_type, out);
    put_varint_field(4, custom, out);
}

/// The varint values after a response write argument's bytes: `size` (of its bytes, or of
/// its argument buffer), `arg_type` (an `int32`, sign-extended as prost encodes it) and
/// `custom_type_id`.
fn tail_values(a: &GenopArgView<'_>, size: usize) -> [u64; 3] {
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    [
        u64::from(size),
        i64::from(a.arg_type) as u64,
        u64::from(a.custom_type_id),
    ]
}

fn arg_tail_len(a: &GenopArgView<'_>, size: usize) -> usize {
    tail_values(a, size).into_iter().map(varint_field_len).sum()
}

/// Write arguments in the client's argument buffers (`SharedArgs::write`), sorted by index.
pub(crate) type SharedWrites = [(usize, RegionMut)];

/// The length of write argument `i`'s argument buffer, if it has one; checked: such an
/// argument carries no bytes and says the buffer's length in `size`.
fn shared_len(
    shared: &SharedWrites,
    i: usize,
    a: &GenopArgView<'_>,
) -> Result<Option<usize>, grpc::Status> {
    if shared.is_empty() {
        return Ok(None);
    }
    let Some((_, region)) = shared.iter().find(|(j, _)| *j == i) else {
        return Ok(None);
    };
    check_in_region("write", i, a, region.len())?;
    Ok(Some(region.len()))
}

/// An argument in an argument buffer of `len` bytes carries no bytes of its own and says `len`
/// in `size`.
fn check_in_region(
    which: &str,
    index: usize,
    a: &GenopArgView<'_>,
    len: usize,
) -> Result<(), grpc::Status> {
    if a.buf.is_empty() && u64::from(a.size) == len as u64 {
        return Ok(());
    }
    Err(status::invalid_argument(format!(
        "{}: {which} argument {index} says {} bytes and carries {}, for a region of {len}",
        vaccel_rpc::server::META_SHARED_ARGS,
        a.size,
        a.buf.len(),
    )))
}

/// Checks that every write argument named in `shared` exists, and sorts them by index.
pub(crate) fn check_shared_writes(
    write: &[GenopArgView<'_>],
    shared: &mut SharedWrites,
) -> Result<(), grpc::Status> {
    if shared.is_empty() {
        return Ok(());
    }
    if let Some((i, _)) = shared.iter().find(|(i, _)| *i >= write.len()) {
        return Err(status::invalid_argument(format!(
            "{}: write argument {i} does not exist ({} write arguments)",
            vaccel_rpc::server::META_SHARED_ARGS,
            write.len()
        )));
    }
    shared.sort_unstable_by_key(|(i, _)| *i);
    Ok(())
}

/// Where each write argument's bytes start in a response [`encode_write_args`] wrote.
pub(crate) type Starts = SmallVec<[usize; INLINE_ARGS]>;

/// The length of a response write argument's `buf` key and length (absent for an empty
/// buffer, as prost encodes it).
fn buf_key_len(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 + encoded_len_varint(n as u64)
    }
}

/// Encodes `vaccel.genop.Response{write_args}` into `out` before the op runs, each write
/// argument carrying the bytes the client sent (some ops read them), with its size, type and
/// custom id, and notes in `starts` where each argument's bytes begin. [`write_args_in`] then
/// lends the op those bytes where they lie in `out`, so what the op writes is the answer: no
/// buffer per argument, no copy after the op, no response encoded afterwards. The bytes are
/// those prost encodes for the same message. An argument in an argument buffer (`shared`)
/// goes back without bytes (the op writes them where the client reads them), with its
/// `size`.
pub(crate) fn encode_write_args(
    args: &[GenopArgView<'_>],
    shared: &SharedWrites,
    out: &mut Vec<u8>,
    starts: &mut Starts,
) -> Result<(), grpc::Status> {
    // First each argument's message length (kept in `starts` until the second pass).
    starts.clear();
    let mut total = 0usize;
    for (i, a) in args.iter().enumerate() {
        let size = match shared_len(shared, i, a)? {
            Some(len) => len,
            None => {
                check_size("write", i, a)?;
                a.buf.len()
            }
        };
        let n = a.buf.len();
        let body = buf_key_len(n) + n + arg_tail_len(a, size);
        starts.push(body);
        total += 1 + encoded_len_varint(body as u64) + body;
    }
    // The client sent these bytes, so this is at most the request's size again; still, an
    // allocation that fails is the call's error, not an abort.
    out.try_reserve(total).map_err(|_| {
        status::status(
            status::code::RESOURCE_EXHAUSTED,
            format!("no memory for a genop response of {total} bytes"),
            vaccel::ErrorCode::ENOMEM,
        )
    })?;
    for (a, at) in args.iter().zip(starts.iter_mut()) {
        let n = a.buf.len();
        // Field 1 (`write_args`, length-delimited), then the argument's field 1 (`buf`).
        out.push(0x0a);
        message::put_varint(out, *at as u64);
        if n != 0 {
            out.push(0x0a);
            message::put_varint(out, n as u64);
        }
        *at = out.len();
        out.extend_from_slice(a.buf);
        // The size the first pass found (the buffer's for an argument in one).
        let size = if n == 0 { a.size as usize } else { n };
        encode_arg_tail(a, size, out);
    }
    Ok(())
}

/// Writable arguments (typed as `meta`) over their bytes in a response that
/// [`encode_write_args`] wrote into `out` (their places in `starts`), or over their argument
/// buffers (`shared`, sorted by index), added to `args`.
pub(crate) fn write_args_in<'a>(
    meta: &[GenopArgView<'_>],
    out: &'a mut [u8],
    starts: &[usize],
    shared: &'a mut SharedWrites,
    args: &mut Args<'a>,
) -> Result<(), grpc::Status> {
    let layout = || {
        status::status(
            status::code::INTERNAL,
            "the genop response does not fit its arguments",
            vaccel::ErrorCode::EBACKEND,
        )
    };
    if starts.len() != meta.len() {
        return Err(layout());
    }
    let mut rest = out;
    let mut offset = 0usize;
    let any_shared = !shared.is_empty();
    let mut shared = shared.iter_mut().peekable();
    args.reserve(meta.len());
    for (i, (a, &start)) in meta.iter().zip(starts).enumerate() {
        if any_shared && let Some((_, region)) = shared.next_if(|(j, _)| *j == i) {
            args.push(
                Arg::from_parts_mut(arg_type(a), a.custom_type_id, region.bytes_mut())
                    .map_err(|e| status::error_status(&Error::arg(i, e)))?,
            );
            continue;
        }
        let skip = start.checked_sub(offset).ok_or_else(layout)?;
        let (_, tail) = rest.split_at_mut_checked(skip).ok_or_else(layout)?;
        let (buf, tail) = tail.split_at_mut_checked(a.buf.len()).ok_or_else(layout)?;
        rest = tail;
        offset = start + a.buf.len();
        args.push(
            Arg::from_parts_mut(arg_type(a), a.custom_type_id, buf)
                .map_err(|e| status::error_status(&Error::arg(i, e)))?,
        );
    }
    Ok(())
}

/// The resource a genop refers to by id (`EXEC_WITH_RESOURCE` and the model ops carry an
/// `INT64` resource id right after the op type), so the agent can check the client owns it.
pub(crate) fn genop_resource_id(read: &[GenopArgView<'_>]) -> Option<Id> {
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
    let bytes: [u8; 8] = id.buf.try_into().ok()?;
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

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn arg(buf: Vec<u8>, arg_type: i32, custom_type_id: u32) -> pg::Arg {
        pg::Arg {
            size: u32::try_from(buf.len()).unwrap(),
            buf: Bytes::from(buf),
            arg_type,
            custom_type_id,
            // Parts never come back.
            parts: 3,
            part_no: 1,
        }
    }

    /// The response built in place is the one prost encodes, byte for byte, and the op's
    /// writes land in it.
    #[test]
    fn write_args_in_place_encode_as_prost_does() {
        let cases = vec![
            vec![],
            vec![arg(vec![1; 512], 26, 0), arg(vec![2; 512], 26, 0)],
            vec![arg(vec![], 0, 0), arg(vec![7], 9, 0)],
            vec![
                arg(vec![3; 200], -1, 300),
                arg(vec![4; 20_000], 29, 1 << 30),
            ],
            vec![arg(vec![5; 127], 28, 1), arg(vec![6; 128], 28, 127)],
            // Lengths at the two-byte varint's end (16 383) and past it.
            vec![
                arg(vec![8; 16_370], 28, 128),
                arg(vec![9; 16_384], 28, 16_383),
            ],
        ];
        for meta in cases {
            let mut out = vec![0xee; 3];
            out.clear();
            let views: Vec<_> = meta.iter().map(GenopArgView::of).collect();
            let mut starts = Starts::new();
            encode_write_args(&views, &[], &mut out, &mut starts).unwrap();
            let expected = pg::Response {
                write_args: meta
                    .iter()
                    .map(|a| pg::Arg {
                        parts: 0,
                        part_no: 0,
                        ..a.clone()
                    })
                    .collect(),
            };
            assert_eq!(out, expected.encode_to_vec(), "{meta:?}");
            let mut args = Args::new();
            match write_args_in(&views, &mut out, &starts, &mut [], &mut args) {
                Ok(()) => {}
                // A negative type is refused when the op's arguments are made.
                Err(_) => {
                    assert!(meta.iter().any(|a| a.arg_type < 0));
                    continue;
                }
            };
            for (i, a) in args.iter_mut().enumerate() {
                for b in a.bytes_mut().unwrap() {
                    *b = 0x40 + i as u8;
                }
            }
            drop(args);
            let back = pg::Response::decode(&out[..]).unwrap();
            for (i, (a, m)) in back.write_args.iter().zip(&meta).enumerate() {
                assert_eq!(a.buf.len(), m.buf.len());
                assert!(a.buf.iter().all(|&b| b == 0x40 + i as u8));
                assert_eq!(
                    (a.arg_type, a.custom_type_id),
                    (m.arg_type, m.custom_type_id)
                );
            }
        }
    }

    #[test]
    fn write_args_whose_size_disagrees_are_refused() {
        let mut bad = arg(vec![1; 4], 26, 0);
        bad.size = 5;
        let mut starts = Starts::new();
        assert!(
            encode_write_args(&[GenopArgView::of(&bad)], &[], &mut Vec::new(), &mut starts)
                .is_err()
        );
    }
}
