//! The noop debug plugin: implements every vAccel operation by logging its arguments and
//! returning fixed dummy outputs, so applications, bindings and the RPC path can be exercised
//! without any accelerator (upstream `plugins/noop`).
//!
//! Every message is a debug line prefixed `[noop] `, worded as upstream's so logs compare.
//!
//! ```
//! # fn main() -> vaccel_core::Result<()> {
//! use std::sync::Arc;
//! use vaccel_core::{Runtime, Session};
//! use vaccel_plugin_noop::NoopPlugin;
//!
//! let rt = Runtime::builder()
//!     .skip_logging()
//!     .plugin(Arc::new(NoopPlugin::new()))
//!     .build()?;
//! let sess = Session::new(&rt, 0)?;
//! let mut imgname = [0u8; 64];
//! sess.image_detect(b"not really a jpeg", &mut imgname)?;
//! assert!(imgname.starts_with(b"This is a dummy imgname!\0"));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::path::Path;
use std::sync::Arc;

use vaccel_core::arg::{Arg, write_c_string};
use vaccel_core::plugin::{Plugin, PluginInfo, SgemmArgs};
use vaccel_core::tensor::{
    DataType, Tensor, TfLiteRunOutput, TfLiteTensor, TfNode, TfRunOutput, TfStatus, TfTensor,
    TorchTensor,
};
use vaccel_core::{
    BlobType, BundledPlugin, Error, OpSet, OpType, PluginType, Resource, ResourceType, Result,
    Session, VACCEL_VERSION,
};

/// The status message every TensorFlow operation of this plugin reports.
pub const TF_STATUS_MESSAGE: &str = "Operation handled by noop plugin";
/// The text image classification writes into `out_text`.
pub const DUMMY_CLASSIFICATION_TAG: &str = "This is a dummy classification tag!";
/// The text every image operation writes into `out_imgname`.
pub const DUMMY_IMGNAME: &str = "This is a dummy imgname!";
/// The value `fpga_mmult` fills its output with.
pub const DUMMY_MMULT_VALUE: f32 = 9.1;
/// The `(min, max)` that `minmax` reports.
pub const DUMMY_MINMAX: (f64, f64) = (-1.0, 10000.0);

/// `log::debug!` with upstream's `[noop] ` prefix. The message goes through `format_args!`
/// (not `concat!`) so format strings can capture variables inline.
macro_rules! noop_debug {
    ($($arg:tt)+) => {
        log::debug!("[noop] {}", format_args!($($arg)+))
    };
}

/// `log::error!` with upstream's `[noop] ` prefix.
macro_rules! noop_error {
    ($($arg:tt)+) => {
        log::error!("[noop] {}", format_args!($($arg)+))
    };
}

/// The noop plugin: name `noop`, type `DEBUG`, every operation.
#[derive(Debug, Clone)]
pub struct NoopPlugin {
    info: PluginInfo,
}

impl Default for NoopPlugin {
    fn default() -> Self {
        NoopPlugin::new()
    }
}

impl NoopPlugin {
    /// The plugin, versioned as the runtime it is built with (as upstream's noop).
    pub fn new() -> Self {
        NoopPlugin {
            info: PluginInfo::new("noop", VACCEL_VERSION, PluginType::DEBUG),
        }
    }
}

/// The descriptor the `vaccel` facade registers, so `VACCEL_PLUGINS=noop` (or
/// `libvaccel-noop.so`) selects this plugin.
pub fn bundled() -> BundledPlugin {
    BundledPlugin {
        name: "noop",
        create: |_| Ok(Arc::new(NoopPlugin::new())),
    }
}

/// A path as upstream prints a possibly-NULL `char *` with `%s`.
fn path_or_null(path: Option<&Path>) -> String {
    path.map_or_else(|| "(null)".to_owned(), |p| p.display().to_string())
}

/// The path of a resource's first blob, or `(null)` (buffer blobs have no file).
fn first_blob_path(res: &Resource) -> String {
    path_or_null(res.blobs().first().and_then(|b| b.path()))
}

/// Upstream's `exec_gen_dummy_output`: when there is exactly one write argument of the size
/// of the first read argument and that size is a whole number of `int`s, the output is the
/// input. The comparison is on sizes only, so any argument types qualify.
fn exec_dummy_output(read: &[Arg<'_>], write: &mut [Arg<'_>]) -> Result<()> {
    let ([input, ..], [output]) = (read, write) else {
        // Upstream reads `read[0]` even when there is none; no input means nothing to copy.
        return Ok(());
    };
    let size = output.len();
    if size != input.len() || size % std::mem::size_of::<i32>() != 0 || size == 0 {
        return Ok(());
    }
    noop_debug!("will return dummy output = input");
    // Upstream writes through the pointer whatever it is; a read-only output here is the
    // caller's mistake and is reported rather than ignored.
    let out = output.bytes_mut().map_err(|e| Error::arg(0, e))?;
    out.copy_from_slice(input.bytes());
    Ok(())
}

/// Logs a model resource's first blob for image ops (`model: <path>`), as upstream looks up
/// the session's first MODEL resource even though it never uses it.
fn log_image_model(sess: &Session) {
    // The look-up only feeds the line: none when the line is off.
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let model = sess.first_resource_of(ResourceType::Model);
    let path = model.map_or_else(|| "(null)".to_owned(), |m| first_blob_path(&m));
    noop_debug!("model: {path}");
}

/// The human-readable op name upstream uses in its image-op messages.
fn image_op_title(op: OpType) -> &'static str {
    match op {
        OpType::ImageDetect => "Image detection",
        OpType::ImageSegment => "Image segmentation",
        OpType::ImagePose => "Image pose",
        OpType::ImageDepth => "Image depth",
        _ => "Image classification",
    }
}

/// Logs one input tensor as upstream's model runs do (sizes and addresses, never bytes).
fn log_tensor<D: DataType>(t: &Tensor<'_, D>, size_suffix: &str) {
    noop_debug!("\t#dims: {} -> {{", t.dims.len());
    for d in &t.dims {
        noop_debug!("\t\t{d}");
    }
    noop_debug!("\t}}");
    noop_debug!("\tData type: {}", t.data_type.to_value());
    noop_debug!(
        "\tData -> {:p}, {}{size_suffix}",
        t.data.as_ptr(),
        t.data.len()
    );
}

/// Output `i` mirrors input `i`: same dims, type and bytes, owned.
///
/// Upstream copies `in[i]` for every `i < nr_outputs` without checking `nr_inputs`, reading
/// past the input array when there are more outputs than inputs; that is refused here.
fn mirror<D: DataType>(
    op: OpType,
    inputs: &[Tensor<'_, D>],
    nr_outputs: usize,
) -> Result<Vec<Tensor<'static, D>>> {
    if nr_outputs > inputs.len() {
        noop_error!(
            "{}: {nr_outputs} outputs requested but only {} inputs to mirror",
            op.name(),
            inputs.len()
        );
        return Err(Error::invalid(format!(
            "noop {}: {nr_outputs} outputs requested but only {} inputs to mirror",
            op.name(),
            inputs.len()
        )));
    }
    Ok(inputs
        .iter()
        .take(nr_outputs)
        .map(|t| t.clone().into_owned())
        .collect())
}

fn tf_status() -> TfStatus {
    TfStatus::new(0, TF_STATUS_MESSAGE)
}

impl Plugin for NoopPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        OpSet::ALL
    }

    fn noop(&self, sess: &Session) -> Result<()> {
        noop_debug!("Calling no-op for session {}", sess.id());
        Ok(())
    }

    fn exec(
        &self,
        sess: &Session,
        library: &str,
        symbol: &str,
        read: &[Arg<'_>],
        write: &mut [Arg<'_>],
    ) -> Result<()> {
        noop_debug!("Calling exec for session {}", sess.id());
        noop_debug!("Dumping arguments for exec:");
        noop_debug!("library: {library} symbol: {symbol}");
        noop_debug!("nr_read: {} nr_write: {}", read.len(), write.len());
        exec_dummy_output(read, write)
    }

    fn exec_with_resource(
        &self,
        sess: &Session,
        res: &Resource,
        symbol: &str,
        read: &[Arg<'_>],
        write: &mut [Arg<'_>],
    ) -> Result<()> {
        noop_debug!("Calling exec_with_resource for session {}", sess.id());
        noop_debug!("Dumping arguments for exec_with_resource:");
        let blobs = res.blobs();
        // Upstream refuses blobs without a path (EINVAL); noop never opens the library, so a
        // buffer-only resource is logged as `(null)` instead.
        let (library, deps) = match blobs.split_last() {
            Some((last, deps)) => (path_or_null(last.path()), deps),
            None => ("(null)".to_owned(), &[][..]),
        };
        for dep in deps {
            noop_debug!("dep library: {}", path_or_null(dep.path()));
        }
        noop_debug!("library: {library} symbol: {symbol}");
        noop_debug!("nr_read: {} nr_write: {}", read.len(), write.len());
        exec_dummy_output(read, write)
    }

    fn image_classify(
        &self,
        sess: &Session,
        image: &[u8],
        out_text: &mut [u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        let title = image_op_title(OpType::ImageClassify);
        noop_debug!("Calling {title} for session {}", sess.id());
        noop_debug!("Dumping arguments for {title}:");
        log_image_model(sess);
        noop_debug!("len_img: {}", image.len());
        noop_debug!("len_out_text: {}", out_text.len());
        if !out_imgname.is_empty() {
            noop_debug!("len_out_imgname: {}", out_imgname.len());
        }
        noop_debug!("will return a dummy result");
        write_c_string(out_text, DUMMY_CLASSIFICATION_TAG);
        noop_debug!("will return a dummy result");
        write_c_string(out_imgname, DUMMY_IMGNAME);
        Ok(())
    }

    fn image_op(
        &self,
        sess: &Session,
        op: OpType,
        image: &[u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        let title = image_op_title(op);
        noop_debug!("Calling {title} for session {}", sess.id());
        noop_debug!("Dumping arguments for {title}:");
        log_image_model(sess);
        noop_debug!("len_img: {}", image.len());
        if !out_imgname.is_empty() {
            noop_debug!("len_out_imgname: {}", out_imgname.len());
        }
        noop_debug!("will return a dummy result");
        write_c_string(out_imgname, DUMMY_IMGNAME);
        Ok(())
    }

    fn sgemm(&self, sess: &Session, args: &SgemmArgs<'_>, c: &mut [f32]) -> Result<()> {
        noop_debug!("Calling sgemm for session {}", sess.id());
        noop_debug!("Dumping arguments for sgemm:");
        noop_debug!("m: {} n: {} k: {}", args.m, args.n, args.k);
        noop_debug!("alpha: {:.6}", args.alpha);
        noop_debug!("A: {:p} lda: {}", args.a.as_ptr(), args.lda);
        noop_debug!("B: {:p} ldb: {}", args.b.as_ptr(), args.ldb);
        noop_debug!("beta: {:.6}", args.beta);
        noop_debug!("C: {:p} ldc: {}", c.as_ptr(), args.ldc);
        Ok(())
    }

    fn fpga_arraycopy(&self, sess: &Session, a: &[i32], out: &mut [i32]) -> Result<()> {
        noop_debug!("Calling fpga_arraycopy for session {}", sess.id());
        noop_debug!("Dumping arguments for fpga_arraycopy:");
        noop_debug!("len_a: {} ", a.len());
        for (o, v) in out.iter_mut().zip(a) {
            *o = *v;
        }
        Ok(())
    }

    fn fpga_mmult(&self, sess: &Session, a: &[f32], _b: &[f32], c: &mut [f32]) -> Result<()> {
        noop_debug!("Calling fpga_mmult for session {}", sess.id());
        noop_debug!("Dumping arguments for fpga_mmult:");
        noop_debug!("len_a: {}", a.len());
        for o in c.iter_mut().take(a.len()) {
            *o = DUMMY_MMULT_VALUE;
        }
        Ok(())
    }

    fn fpga_parallel(
        &self,
        sess: &Session,
        a: &[f32],
        b: &[f32],
        add_out: &mut [f32],
        mult_out: &mut [f32],
    ) -> Result<()> {
        noop_debug!("Calling fpga_parallel for session {}", sess.id());
        noop_debug!("Dumping arguments for fpga_parallel:");
        noop_debug!("len_a: {}", a.len());
        for (((add, mult), x), y) in add_out.iter_mut().zip(mult_out.iter_mut()).zip(a).zip(b) {
            *add = x + y;
            *mult = 1.0;
        }
        Ok(())
    }

    fn fpga_vadd(&self, sess: &Session, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
        noop_debug!("Calling fpga_vadd for session {}", sess.id());
        noop_debug!("Dumping arguments for fpga_vadd:");
        noop_debug!("len_a: {} len_b: {} ", a.len(), b.len());
        for ((o, x), y) in c.iter_mut().zip(a).zip(b) {
            *o = x + y;
        }
        Ok(())
    }

    fn minmax(
        &self,
        sess: &Session,
        indata: &[f64],
        low_threshold: i32,
        high_threshold: i32,
        outdata: &mut [f64],
    ) -> Result<(f64, f64)> {
        noop_debug!("Calling minmax for session {}", sess.id());
        noop_debug!("Dumping arguments for minmax: ndata:{}", indata.len());
        noop_debug!("low: {low_threshold} high: {high_threshold} ");
        noop_debug!("will return dummy min and max values");
        for (o, v) in outdata.iter_mut().zip(indata) {
            *o = *v;
        }
        Ok(DUMMY_MINMAX)
    }

    fn opencv(&self, sess: &Session, read: &[Arg<'_>], write: &mut [Arg<'_>]) -> Result<()> {
        noop_debug!("Calling opencv for session {}", sess.id());
        noop_debug!("Dumping arguments for opencv:");
        noop_debug!("nr_read: {} nr_write: {}", read.len(), write.len());
        match read.first().and_then(|a| a.bytes().first()) {
            Some(function) => noop_debug!("[OpenCV] function: {function}"),
            None => noop_debug!("[OpenCV] function: none"),
        }
        for (i, arg) in read.iter().enumerate().skip(1) {
            noop_debug!("opencv read[{i}] size: {}", arg.len());
        }
        for (i, arg) in write.iter_mut().enumerate() {
            let size = arg.len();
            noop_debug!("opencv write[{i}] size: {size}");
            // Upstream stores `size / sizeof(float)` as a `size_t` into every buffer blindly;
            // buffers that cannot hold it (or are read-only) are left alone instead.
            let header = (size / std::mem::size_of::<f32>()) as u64;
            match arg.bytes_mut() {
                Ok(bytes) => match bytes.get_mut(..std::mem::size_of::<u64>()) {
                    Some(dst) => dst.copy_from_slice(&header.to_ne_bytes()),
                    None => noop_debug!("opencv write[{i}] too small for a header; skipped"),
                },
                Err(_) => noop_debug!("opencv write[{i}] is read-only; skipped"),
            }
        }
        Ok(())
    }

    fn tf_model_load(&self, sess: &Session, _model: &Resource) -> Result<TfStatus> {
        noop_debug!("Calling tf_model_load for session {}", sess.id());
        Ok(tf_status())
    }

    fn tf_model_unload(&self, sess: &Session, _model: &Resource) -> Result<TfStatus> {
        noop_debug!("Calling tf_model_unload for session {}", sess.id());
        Ok(tf_status())
    }

    fn tf_model_run(
        &self,
        sess: &Session,
        _model: &Resource,
        run_options: Option<&[u8]>,
        in_nodes: &[TfNode],
        in_tensors: &[TfTensor<'_>],
        out_nodes: &[TfNode],
    ) -> Result<TfRunOutput> {
        noop_debug!("Calling tf_model_run for session {}", sess.id());
        if let Some(opts) = run_options {
            noop_debug!("Run options -> {:p}, {}", opts.as_ptr(), opts.len());
        }
        noop_debug!("Number of inputs: {}", in_tensors.len());
        for (i, (node, t)) in in_nodes.iter().zip(in_tensors).enumerate() {
            noop_debug!("\tNode {i}: {}:{}", node.name, node.id);
            log_tensor(t, "");
        }
        noop_debug!("Number of outputs: {}", out_nodes.len());
        for (i, node) in out_nodes.iter().enumerate() {
            noop_debug!("\tNode {i}: {}:{}", node.name, node.id);
        }
        let outputs = mirror(OpType::TfModelRun, in_tensors, out_nodes.len())?;
        Ok(TfRunOutput {
            outputs,
            status: tf_status(),
        })
    }

    fn tflite_model_load(&self, sess: &Session, _model: &Resource) -> Result<()> {
        noop_debug!("Calling tflite_model_load for session {}", sess.id());
        Ok(())
    }

    fn tflite_model_unload(&self, sess: &Session, _model: &Resource) -> Result<()> {
        noop_debug!("Calling tflite_model_unload for session {}", sess.id());
        Ok(())
    }

    fn tflite_model_run(
        &self,
        sess: &Session,
        _model: &Resource,
        inputs: &[TfLiteTensor<'_>],
        nr_outputs: usize,
    ) -> Result<TfLiteRunOutput> {
        noop_debug!("Calling tflite_model_run for session {}", sess.id());
        noop_debug!("Number of inputs: {}", inputs.len());
        for t in inputs {
            log_tensor(t, "");
        }
        noop_debug!("Number of outputs: {nr_outputs}");
        let outputs = mirror(OpType::TfliteModelRun, inputs, nr_outputs)?;
        Ok(TfLiteRunOutput { outputs, status: 0 })
    }

    fn torch_model_load(&self, sess: &Session, model: &Resource) -> Result<()> {
        noop_debug!("Calling torch_model_load for session {}", sess.id());
        let blobs = model.blobs();
        let Some(blob) = blobs.first() else {
            noop_error!("The model has no blobs.");
            return Err(Error::invalid(format!(
                "noop torch_model_load: model {} has no blobs",
                model.id()
            )));
        };
        match blob.kind() {
            BlobType::File => {
                noop_debug!("Loading model from file {}", path_or_null(blob.path()));
            }
            BlobType::Mapped => {
                noop_debug!(
                    "Mapped model, loading from file {}",
                    path_or_null(blob.path())
                );
            }
            BlobType::Buffer => {
                let len = blob.data().map_or(0, |d| d.len());
                noop_debug!("Loading model from buffer of length: {len}");
            }
        }
        Ok(())
    }

    fn torch_model_run(
        &self,
        sess: &Session,
        _model: &Resource,
        _run_options: Option<&[u8]>,
        inputs: &[TorchTensor<'_>],
        nr_outputs: usize,
    ) -> Result<Vec<TorchTensor<'static>>> {
        noop_debug!("Calling torch_model_run for session {}", sess.id());
        noop_debug!("Number of inputs: {}", inputs.len());
        for t in inputs {
            log_tensor(t, " B");
        }
        noop_debug!("Number of outputs: {nr_outputs}");
        mirror(OpType::TorchModelRun, inputs, nr_outputs)
    }

    fn torch_sgemm(
        &self,
        sess: &Session,
        _a: &TorchTensor<'_>,
        _b: &TorchTensor<'_>,
        _c: &TorchTensor<'_>,
        m: i32,
        n: i32,
        k: i32,
    ) -> Result<Option<TorchTensor<'static>>> {
        noop_debug!("Calling torch_sgemm for session {}", sess.id());
        noop_debug!("Dumping arguments for torch_sgemm:");
        noop_debug!("m: {m} n: {n} k: {k}");
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_matches_upstream() {
        let p = NoopPlugin::new();
        assert_eq!(p.info().name, "noop");
        assert_eq!(p.info().version, VACCEL_VERSION);
        assert_eq!(p.info().vaccel_version, VACCEL_VERSION);
        assert_eq!(p.info().plugin_type, PluginType::DEBUG);
        assert_eq!(p.info().plugin_type.bits(), 0x100);
        assert!(!p.info().remote);
        assert_eq!(p.ops(), OpSet::ALL);
        assert_eq!(bundled().name, "noop");
    }

    #[test]
    fn dummy_output_rule() {
        let input = Arg::scalar(7i32);
        let mut out = [0u8; 4];
        let mut write = [Arg::raw_mut(&mut out)];
        exec_dummy_output(std::slice::from_ref(&input), &mut write).unwrap();
        assert_eq!(out, 7i32.to_ne_bytes());

        // Different sizes, several outputs, sizes not multiple of 4, no input: untouched.
        let mut out = [0xaau8; 8];
        exec_dummy_output(std::slice::from_ref(&input), &mut [Arg::raw_mut(&mut out)]).unwrap();
        assert_eq!(out, [0xaa; 8]);
        let (mut o1, mut o2) = ([0u8; 4], [0u8; 4]);
        exec_dummy_output(
            std::slice::from_ref(&input),
            &mut [Arg::raw_mut(&mut o1), Arg::raw_mut(&mut o2)],
        )
        .unwrap();
        assert_eq!((o1, o2), ([0; 4], [0; 4]));
        let three = [1u8, 2, 3];
        let mut out = [0u8; 3];
        exec_dummy_output(&[Arg::raw(&three)], &mut [Arg::raw_mut(&mut out)]).unwrap();
        assert_eq!(out, [0; 3]);
        let mut out = [0u8; 4];
        exec_dummy_output(&[], &mut [Arg::raw_mut(&mut out)]).unwrap();
        assert_eq!(out, [0; 4]);

        // A read-only output that would be written is an argument error.
        let ro = [0u8; 4];
        let err =
            exec_dummy_output(std::slice::from_ref(&input), &mut [Arg::raw(&ro)]).unwrap_err();
        assert_eq!(err.code(), vaccel_core::ErrorCode::EINVAL);
    }
}
