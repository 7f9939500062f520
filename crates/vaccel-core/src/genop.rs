//! The generic operation: one entry point taking argument arrays (§2.3).
//!
//! `read[0]` is a `UINT8` holding the [`OpType`]; the remaining read arguments and the write
//! arguments follow the op's layout below, are unpacked, and the typed operation runs (with its
//! usual checks and profiling region). Indices are *after* removing the op type.
//!
//! | op | read | write |
//! |---|---|---|
//! | NOOP (0) | none | none |
//! | EXEC (1) | STRING library, STRING symbol, args... | args... |
//! | EXEC_WITH_RESOURCE (2) | INT64 resource id, STRING symbol, args... | args... |
//! | IMAGE_CLASSIFY (3) | BUFFER image | UCHAR_ARRAY imgname, UCHAR_ARRAY text |
//! | IMAGE_DETECT..DEPTH (4-7) | BUFFER image | UCHAR_ARRAY imgname |
//! | BLAS_SGEMM (17) | INT64 m, n, k, FLOAT32 alpha, FLOAT32_ARRAY a, INT64 lda, FLOAT32_ARRAY b, INT64 ldb, FLOAT32 beta, INT64 ldc | FLOAT32_ARRAY c |
//! | FPGA_ARRAYCOPY (18) | int32[] a (any type) | int32[] out |
//! | FPGA_MMULT (19) | float[] a, float[] b | float[] c |
//! | FPGA_PARALLEL (20) | float[] a, float[] b | float[] add, float[] mult |
//! | FPGA_VECTORADD (21) | float[] a, float[] b | float[] c |
//! | MINMAX (22) | double[] in, int n, int low, int high (any types) | double[] out, double min, double max |
//! | OPENCV (23) | passed through | passed through |
//!
//! Beyond upstream (which rejects NOOP and answers ENOTSUP for the model ops), the model
//! operations have layouts too. A *tensor* is three read arguments: `INT64_ARRAY dims`,
//! `UINT32 data type` (the framework's numeric value) and the bytes as `BUFFER` (or `RAW` when
//! empty). An *output tensor* is two write arguments: an `INT64_ARRAY` header of at least
//! `3 + dims` elements, filled with `[data type, nr_dims, byte size, dims...]`, and a
//! `BUFFER`/`RAW` receiving the bytes. The header is written first, so when the data buffer
//! is too small the call fails with `ERANGE` and the header says the size needed. A *status* is
//! `UINT8 code` plus a `UCHAR_ARRAY`/`CHAR_ARRAY` for the NUL-terminated (truncated) message.
//!
//! | op | read | write |
//! |---|---|---|
//! | TF_MODEL_LOAD / UNLOAD (8, 9) | INT64 model id | optional status (2) |
//! | TF_MODEL_RUN (10) | INT64 model id, RAW run options (empty = none), UINT32 nr_inputs, nr_inputs x (STRING node name, INT32 node id, tensor), then (STRING name, INT32 id) per output node | an output tensor per output node, optional status (2) |
//! | TFLITE_MODEL_LOAD / UNLOAD (11, 12) | INT64 model id | none |
//! | TFLITE_MODEL_RUN (13) | INT64 model id, tensor per input | an output tensor per output, optional UINT8 status |
//! | TORCH_MODEL_LOAD (14) | INT64 model id | none |
//! | TORCH_MODEL_RUN (15) | INT64 model id, RAW run options, tensor per input | an output tensor per output |
//! | TORCH_SGEMM (16) | tensor a, tensor b, tensor c, INT32 m, n, k | optional output tensor |
//!
//! Model ids are resource ids of the runtime executing the op (as for EXEC_WITH_RESOURCE);
//! the model must be registered with the session.

use std::borrow::Cow;

use crate::arg::{Arg, Scalar};
use crate::error::{ArgError, Error, ErrorCode, Result};
use crate::plugin::SgemmArgs;
use crate::session::Session;
use crate::tensor::{DataType, Tensor, TfNode, TfStatus};
use crate::types::{ArgType, OpType};

/// Reads the read arguments in order, with errors that say which one is wrong.
struct Reader<'s, 'a> {
    args: &'s [Arg<'a>],
    pos: usize,
    op: OpType,
}

impl<'s, 'a> Reader<'s, 'a> {
    fn next(&mut self) -> Result<&'s Arg<'a>> {
        let arg = self.args.get(self.pos).ok_or_else(|| {
            Error::invalid(format!(
                "{}: missing read argument {}",
                self.op.name(),
                self.pos + 1
            ))
        })?;
        self.pos += 1;
        Ok(arg)
    }

    // Error indices count the op-type argument, so they match the caller's array.
    fn wrap<T>(&self, r: Result<T, ArgError>) -> Result<T> {
        r.map_err(|e| Error::arg(self.pos, e))
    }

    fn scalar<T: Scalar>(&mut self) -> Result<T> {
        let arg = self.next()?;
        self.wrap(arg.get())
    }

    fn untyped<T: Scalar>(&mut self) -> Result<T> {
        let arg = self.next()?;
        self.wrap(arg.get_untyped())
    }

    fn string(&mut self) -> Result<&'s str> {
        let arg = self.next()?;
        self.wrap(arg.get_str())
    }

    fn array<T: Scalar>(&mut self) -> Result<Cow<'s, [T]>> {
        let arg = self.next()?;
        self.wrap(arg.get_array())
    }

    fn untyped_array<T: Scalar>(&mut self) -> Result<Cow<'s, [T]>> {
        let arg = self.next()?;
        self.wrap(arg.get_untyped_array())
    }

    fn bytes(&mut self, allowed: &[ArgType]) -> Result<&'s [u8]> {
        let arg = self.next()?;
        if !allowed.contains(&arg.ty()) {
            return Err(Error::arg(
                self.pos,
                ArgError::WrongType {
                    expected: allowed.first().copied().unwrap_or(ArgType::Buffer),
                    found: arg.ty(),
                },
            ));
        }
        Ok(arg.bytes())
    }

    fn tensor<D: DataType>(&mut self) -> Result<Tensor<'s, D>> {
        let dims = self.array::<i64>()?.into_owned();
        let raw_type = self.scalar::<u32>()?;
        let data_type = D::try_from_value(raw_type).ok_or_else(|| {
            Error::invalid(format!(
                "{}: unknown tensor data type {raw_type}",
                self.op.name()
            ))
        })?;
        let data = self.bytes(&[ArgType::Buffer, ArgType::Raw])?;
        Tensor::new(dims, data_type, data)
    }

    fn remaining(&self) -> &'s [Arg<'a>] {
        self.args.get(self.pos..).unwrap_or_default()
    }

    fn expect_count(&self, expected: usize) -> Result<()> {
        if self.args.len() != expected {
            log::error!(
                "Wrong number of read arguments for {}: {} (expected {expected})",
                self.op.name(),
                self.args.len()
            );
            return Err(Error::invalid(format!(
                "wrong number of read arguments for {}: {} (expected {expected})",
                self.op.name(),
                self.args.len()
            )));
        }
        Ok(())
    }
}

fn expect_writes(op: OpType, write: &[Arg<'_>], allowed: &[usize]) -> Result<()> {
    if allowed.contains(&write.len()) {
        return Ok(());
    }
    log::error!(
        "Wrong number of write arguments for {}: {} (expected {allowed:?})",
        op.name(),
        write.len()
    );
    Err(Error::invalid(format!(
        "wrong number of write arguments for {}: {} (expected {allowed:?})",
        op.name(),
        write.len()
    )))
}

fn out_bytes<'w>(arg: &'w mut Arg<'_>, index: usize, allowed: &[ArgType]) -> Result<&'w mut [u8]> {
    if !allowed.contains(&arg.ty()) {
        return Err(Error::arg(
            index,
            ArgError::WrongType {
                expected: allowed.first().copied().unwrap_or(ArgType::Buffer),
                found: arg.ty(),
            },
        ));
    }
    arg.bytes_mut().map_err(|e| Error::arg(index, e))
}

const TEXT: &[ArgType] = &[ArgType::UcharArray, ArgType::CharArray];

/// Runs `f` over the write argument's bytes seen as `[T]`, in place when aligned.
fn with_out_slice<T: Scalar + bytemuck::Pod + Default, R>(
    arg: &mut Arg<'_>,
    index: usize,
    f: impl FnOnce(&mut [T]) -> Result<R>,
) -> Result<R> {
    let bytes = arg.bytes_mut().map_err(|e| Error::arg(index, e))?;
    let elem = std::mem::size_of::<T>();
    let usable = bytes.len() - bytes.len() % elem;
    let bytes = bytes.get_mut(..usable).unwrap_or_default();
    match bytemuck::try_cast_slice_mut::<u8, T>(bytes) {
        Ok(slice) => f(slice),
        Err(_) => {
            let mut tmp: Vec<T> = bytemuck::pod_collect_to_vec(bytes);
            let r = f(&mut tmp)?;
            bytes.copy_from_slice(bytemuck::cast_slice(&tmp));
            Ok(r)
        }
    }
}

fn write_tensor<D: DataType>(
    op: OpType,
    header: &mut Arg<'_>,
    data: &mut Arg<'_>,
    index: usize,
    t: &Tensor<'_, D>,
) -> Result<()> {
    let mut words = Vec::with_capacity(3 + t.dims.len());
    words.push(i64::from(t.data_type.to_value()));
    words.push(t.dims.len() as i64);
    words.push(t.data.len() as i64);
    words.extend_from_slice(&t.dims);
    let h = out_bytes(header, index, &[ArgType::Int64Array])?;
    let hb: &[u8] = bytemuck::cast_slice(&words);
    let capacity = h.len();
    h.get_mut(..hb.len())
        .ok_or_else(|| {
            Error::arg(
                index,
                ArgError::TooSmall {
                    needed: hb.len(),
                    capacity,
                },
            )
        })?
        .copy_from_slice(hb);
    let d = out_bytes(data, index + 1, &[ArgType::Buffer, ArgType::Raw])?;
    let capacity = d.len();
    match d.get_mut(..t.data.len()) {
        Some(dst) => {
            dst.copy_from_slice(&t.data);
            Ok(())
        }
        None => Err(Error::Backend {
            origin: op.name(),
            code: ErrorCode::ERANGE,
            message: format!(
                "output tensor needs {} bytes, write argument {} holds {capacity}",
                t.data.len(),
                index + 1
            ),
        }),
    }
}

fn write_tensors<D: DataType>(
    op: OpType,
    write: &mut [Arg<'_>],
    outputs: &[Tensor<'_, D>],
) -> Result<()> {
    for (i, (pair, t)) in write.chunks_exact_mut(2).zip(outputs).enumerate() {
        if let [header, data] = pair {
            write_tensor(op, header, data, 2 * i, t)?;
        }
    }
    Ok(())
}

fn write_status(write: &mut [Arg<'_>], index: usize, status: &TfStatus) -> Result<()> {
    if let [code, message] = write {
        code.set(status.code).map_err(|e| Error::arg(index, e))?;
        let bytes = out_bytes(message, index + 1, TEXT)?;
        crate::arg::write_c_string(bytes, &status.message);
    }
    Ok(())
}

/// Checks output-tensor pairs and a trailing status before the op runs, so a malformed write
/// argument is reported without the op having had its effect.
fn precheck_writes(write: &mut [Arg<'_>], tensors: usize, status: &[&[ArgType]]) -> Result<()> {
    for (i, arg) in write.iter_mut().enumerate() {
        let allowed: &[ArgType] = if i < 2 * tensors {
            if i % 2 == 0 {
                &[ArgType::Int64Array]
            } else {
                &[ArgType::Buffer, ArgType::Raw]
            }
        } else {
            status.get(i - 2 * tensors).copied().unwrap_or(&[])
        };
        out_bytes(arg, i, allowed)?;
    }
    Ok(())
}

const STATUS_CODE: &[ArgType] = &[ArgType::Uint8];

impl Session {
    /// `vaccel_genop`: see the module docs for the layouts.
    pub fn genop(&self, read: &[Arg<'_>], write: &mut [Arg<'_>]) -> Result<()> {
        let Some((first, rest)) = read.split_first() else {
            log::error!("Missing operation type");
            return Err(Error::invalid("genop: missing operation type"));
        };
        let raw = first.get::<u8>().map_err(|e| Error::arg(0, e))?;
        let op = OpType::from_value(raw).ok_or_else(|| {
            log::error!("Invalid operation type");
            Error::invalid(format!("genop: invalid operation type {raw}"))
        })?;
        let mut r = Reader {
            args: rest,
            pos: 0,
            op,
        };
        match op {
            OpType::Noop => {
                r.expect_count(0)?;
                expect_writes(op, write, &[0])?;
                self.noop()
            }
            OpType::Exec => {
                let library = r.string()?;
                let symbol = r.string()?;
                self.exec(library, symbol, r.remaining(), write)
            }
            OpType::ExecWithResource => {
                let id = r.scalar::<i64>()?;
                let symbol = r.string()?;
                let res = self.runtime().resource_by_id(id)?;
                self.exec_with_resource(&res, symbol, r.remaining(), write)
            }
            OpType::ImageClassify => {
                r.expect_count(1)?;
                let image = r.bytes(&[ArgType::Buffer])?;
                expect_writes(op, write, &[2])?;
                let [imgname, text] = write else {
                    return Err(Error::invalid(
                        "image classification needs 2 write arguments",
                    ));
                };
                let imgname = out_bytes(imgname, 0, &[ArgType::UcharArray])?;
                let text = out_bytes(text, 1, &[ArgType::UcharArray])?;
                self.image_classify(image, text, imgname)
            }
            OpType::ImageDetect | OpType::ImageSegment | OpType::ImagePose | OpType::ImageDepth => {
                r.expect_count(1)?;
                let image = r.bytes(&[ArgType::Buffer])?;
                if op == OpType::ImageDetect && write.len() == 2 {
                    // Our extension: a second output receives the detections as text
                    // (`crate::detection`); upstream callers pass one.
                    let [imgname, found] = write else {
                        return Err(Error::invalid(
                            "image detection needs 1 or 2 write arguments",
                        ));
                    };
                    let imgname = out_bytes(imgname, 0, &[ArgType::UcharArray])?;
                    let found = out_bytes(found, 1, &[ArgType::UcharArray, ArgType::Buffer])?;
                    let detections = self.image_detect_objects(image, imgname)?;
                    return crate::detection::encode(&detections, found);
                }
                expect_writes(op, write, &[1])?;
                let [imgname] = write else {
                    return Err(Error::invalid("image ops need 1 write argument"));
                };
                let imgname = out_bytes(imgname, 0, &[ArgType::UcharArray])?;
                match op {
                    OpType::ImageDetect => self.image_detect(image, imgname),
                    OpType::ImageSegment => self.image_segment(image, imgname),
                    OpType::ImagePose => self.image_pose(image, imgname),
                    _ => self.image_depth(image, imgname),
                }
            }
            OpType::BlasSgemm => {
                r.expect_count(10)?;
                let m = r.scalar::<i64>()?;
                let n = r.scalar::<i64>()?;
                let k = r.scalar::<i64>()?;
                let alpha = r.scalar::<f32>()?;
                let a = r.array::<f32>()?;
                let lda = r.scalar::<i64>()?;
                let b = r.array::<f32>()?;
                let ldb = r.scalar::<i64>()?;
                let beta = r.scalar::<f32>()?;
                let ldc = r.scalar::<i64>()?;
                expect_writes(op, write, &[1])?;
                let [c] = write else {
                    return Err(Error::invalid("sgemm needs 1 write argument"));
                };
                if c.ty() != ArgType::Float32Array {
                    return Err(Error::arg(
                        0,
                        ArgError::WrongType {
                            expected: ArgType::Float32Array,
                            found: c.ty(),
                        },
                    ));
                }
                let args = SgemmArgs {
                    m,
                    n,
                    k,
                    alpha,
                    a: &a,
                    lda,
                    b: &b,
                    ldb,
                    beta,
                    ldc,
                };
                with_out_slice(c, 0, |c: &mut [f32]| self.sgemm(&args, c))
            }
            OpType::FpgaArraycopy => {
                r.expect_count(1)?;
                let a = r.untyped_array::<i32>()?;
                expect_writes(op, write, &[1])?;
                let [out] = write else {
                    return Err(Error::invalid("fpga_arraycopy needs 1 write argument"));
                };
                with_out_slice(out, 0, |out: &mut [i32]| self.fpga_arraycopy(&a, out))
            }
            OpType::FpgaMmult | OpType::FpgaVectoradd => {
                r.expect_count(2)?;
                let a = r.untyped_array::<f32>()?;
                let b = r.untyped_array::<f32>()?;
                expect_writes(op, write, &[1])?;
                let [c] = write else {
                    return Err(Error::invalid("fpga op needs 1 write argument"));
                };
                with_out_slice(c, 0, |c: &mut [f32]| {
                    if op == OpType::FpgaMmult {
                        self.fpga_mmult(&a, &b, c)
                    } else {
                        self.fpga_vadd(&a, &b, c)
                    }
                })
            }
            OpType::FpgaParallel => {
                r.expect_count(2)?;
                let a = r.untyped_array::<f32>()?;
                let b = r.untyped_array::<f32>()?;
                expect_writes(op, write, &[2])?;
                let [add, mult] = write else {
                    return Err(Error::invalid("fpga_parallel needs 2 write arguments"));
                };
                with_out_slice(add, 0, |add: &mut [f32]| {
                    with_out_slice(mult, 1, |mult: &mut [f32]| {
                        self.fpga_parallel(&a, &b, add, mult)
                    })
                })
            }
            OpType::Minmax => {
                r.expect_count(4)?;
                let indata = r.untyped_array::<f64>()?;
                let ndata = r.untyped::<i32>()?;
                let low = r.untyped::<i32>()?;
                let high = r.untyped::<i32>()?;
                let n = usize::try_from(ndata)
                    .ok()
                    .filter(|&n| n <= indata.len())
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "minmax: ndata {ndata} does not fit the {} values given",
                            indata.len()
                        ))
                    })?;
                let indata = indata.get(..n).unwrap_or_default();
                expect_writes(op, write, &[3])?;
                let [out, min, max] = write else {
                    return Err(Error::invalid("minmax needs 3 write arguments"));
                };
                let (lo, hi) = with_out_slice(out, 0, |out: &mut [f64]| {
                    self.minmax(indata, low, high, out)
                })?;
                min.set_untyped(lo).map_err(|e| Error::arg(1, e))?;
                max.set_untyped(hi).map_err(|e| Error::arg(2, e))?;
                Ok(())
            }
            OpType::Opencv => self.opencv(rest, write),
            OpType::TfModelLoad | OpType::TfModelUnload => {
                r.expect_count(1)?;
                let model = self.runtime().resource_by_id(r.scalar::<i64>()?)?;
                expect_writes(op, write, &[0, 2])?;
                precheck_writes(write, 0, &[STATUS_CODE, TEXT])?;
                let status = if op == OpType::TfModelLoad {
                    self.tf_model_load(&model)?
                } else {
                    self.tf_model_unload(&model)?
                };
                write_status(write, 0, &status)
            }
            OpType::TfModelRun => {
                let model = self.runtime().resource_by_id(r.scalar::<i64>()?)?;
                let options = r.bytes(&[ArgType::Raw, ArgType::Buffer])?;
                let nr_inputs = r.scalar::<u32>()? as usize;
                let mut in_nodes = Vec::new();
                let mut in_tensors = Vec::new();
                for _ in 0..nr_inputs {
                    let name = r.string()?;
                    let id = r.scalar::<i32>()?;
                    in_nodes.push(TfNode::new(name, id));
                    in_tensors.push(r.tensor()?);
                }
                let mut out_nodes = Vec::new();
                while r.pos < r.args.len() {
                    let name = r.string()?;
                    let id = r.scalar::<i32>()?;
                    out_nodes.push(TfNode::new(name, id));
                }
                let n = out_nodes.len();
                expect_writes(op, write, &[2 * n, 2 * n + 2])?;
                precheck_writes(write, n, &[STATUS_CODE, TEXT])?;
                let options = (!options.is_empty()).then_some(options);
                let out = self.tf_model_run(&model, options, &in_nodes, &in_tensors, &out_nodes)?;
                let (tensors, status) = write.split_at_mut(2 * n);
                write_tensors(op, tensors, &out.outputs)?;
                write_status(status, 2 * n, &out.status)
            }
            OpType::TfliteModelLoad | OpType::TfliteModelUnload | OpType::TorchModelLoad => {
                r.expect_count(1)?;
                let model = self.runtime().resource_by_id(r.scalar::<i64>()?)?;
                expect_writes(op, write, &[0])?;
                match op {
                    OpType::TfliteModelLoad => self.tflite_model_load(&model),
                    OpType::TfliteModelUnload => self.tflite_model_unload(&model),
                    _ => self.torch_model_load(&model),
                }
            }
            OpType::TfliteModelRun => {
                let model = self.runtime().resource_by_id(r.scalar::<i64>()?)?;
                let mut inputs = Vec::new();
                while r.pos < r.args.len() {
                    inputs.push(r.tensor()?);
                }
                let n = write.len() / 2;
                precheck_writes(write, n, &[STATUS_CODE])?;
                let out = self.tflite_model_run(&model, &inputs, n)?;
                let (tensors, status) = write.split_at_mut(2 * n);
                write_tensors(op, tensors, &out.outputs)?;
                if let [code] = status {
                    code.set(out.status).map_err(|e| Error::arg(2 * n, e))?;
                }
                Ok(())
            }
            OpType::TorchModelRun => {
                let model = self.runtime().resource_by_id(r.scalar::<i64>()?)?;
                let options = r.bytes(&[ArgType::Raw, ArgType::Buffer])?;
                let mut inputs = Vec::new();
                while r.pos < r.args.len() {
                    inputs.push(r.tensor()?);
                }
                if !write.len().is_multiple_of(2) {
                    return Err(Error::invalid(
                        "torch_model_run: write arguments come in pairs (header, data)",
                    ));
                }
                let n = write.len() / 2;
                precheck_writes(write, n, &[])?;
                let options = (!options.is_empty()).then_some(options);
                let out = self.torch_model_run(&model, options, &inputs, n)?;
                write_tensors(op, write, &out)
            }
            OpType::TorchSgemm => {
                r.expect_count(12)?;
                let a = r.tensor()?;
                let b = r.tensor()?;
                let c = r.tensor()?;
                let m = r.scalar::<i32>()?;
                let n = r.scalar::<i32>()?;
                let k = r.scalar::<i32>()?;
                expect_writes(op, write, &[0, 2])?;
                precheck_writes(write, write.len() / 2, &[])?;
                let out = self.torch_sgemm(&a, &b, &c, m, n, k)?;
                match out {
                    Some(t) if !write.is_empty() => write_tensors(op, write, &[t]),
                    _ => Ok(()),
                }
            }
        }
    }
}
