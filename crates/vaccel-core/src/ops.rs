//! The operations, as methods of [`Session`] (§1.15, §2.1).
//!
//! Every op checks what it can about its operands, finds nothing else to decide (the plugin
//! was bound at session creation), checks the plugin implements the op (`ENOTSUP`
//! otherwise), and calls it inside the op's profiling region.

use std::sync::Arc;

use crate::ErrorCode;
use crate::arg::Arg;
use crate::error::{Error, Result};
use crate::plugin::{Plugin, SgemmArgs};
use crate::resource::Resource;
use crate::session::Session;
use crate::tensor::{
    TfLiteRunOutput, TfLiteTensor, TfNode, TfRunOutput, TfStatus, TfTensor, TorchTensor,
};
use crate::types::{OpType, ResourceType};

fn need(ok: bool, what: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(what))
    }
}

/// Whether a plugin's failure hands the call to the next plugin: it declined, or it answered
/// `ENOTSUP` with its code, which is how a plugin library's decline reaches the runtime (the
/// CPU backends loaded by `cpu` from `libvaccel-<name>.so`). The first decline is what the
/// caller gets when no plugin serves the call, so its code is unchanged.
fn declines(e: &Error) -> bool {
    matches!(
        e,
        Error::Declined { .. }
            | Error::Backend {
                code: ErrorCode::ENOTSUP,
                ..
            }
    )
}

impl Session {
    #[inline]
    fn dispatch<T>(&self, op: OpType, mut call: impl FnMut(&dyn Plugin) -> Result<T>) -> Result<T> {
        log::debug!(
            "session:{} Looking for func implementing op {}",
            self.id(),
            op.name()
        );
        let region = self.runtime().inner().regions.region(op);
        let mut held = None;
        let bound = self.bound_plugin(&mut held);
        let mut declined = None;
        let mut entered = None;
        // Nearly every call: the bound plugin implements the op, and is called without
        // building the list of candidates (see [`Session::route`], which puts it first).
        if bound.ops().contains(op) {
            entered = Some(region.enter());
            log::debug!(
                "Returning func for op {} from plugin {}",
                op.name(),
                bound.info().name
            );
            match call(&**bound) {
                Err(e) if declines(&e) => {
                    log::debug!("session:{} {e}; trying the next plugin", self.id());
                    declined = Some(e);
                }
                other => return other,
            }
        }
        let others: Vec<_> = self
            .route(op)
            .into_iter()
            .filter(|p| !Arc::ptr_eq(p, bound))
            .collect();
        if others.is_empty() && declined.is_none() {
            log::error!(
                "Could not return func, plugin {} does not implement {}",
                bound.info().name,
                op.name()
            );
            return Err(Error::OpNotImplemented {
                plugin: bound.info().name.clone(),
                op,
            });
        }
        let _region = entered.unwrap_or_else(|| region.enter());
        for plugin in &others {
            self.join(plugin)?;
            log::debug!(
                "Returning func for op {} from plugin {}",
                op.name(),
                plugin.info().name
            );
            match call(&**plugin) {
                Err(e) if declines(&e) => {
                    log::debug!("session:{} {e}; trying the next plugin", self.id());
                    declined.get_or_insert(e);
                }
                other => return other,
            }
        }
        Err(declined.unwrap_or_else(|| Error::declined("(none)", "no plugin could serve the call")))
    }

    /// Type check first, then registration (upstream order, §2.1).
    fn check_resource(&self, res: &Resource, expected: ResourceType) -> Result<()> {
        if res.kind() != expected {
            log::error!("Invalid resource type: expected {expected}");
            return Err(Error::WrongResourceType {
                expected,
                found: res.kind(),
            });
        }
        res.check_usable()?;
        if !self.has_resource(res) {
            log::error!(
                "Resource {} is not registered to session {}",
                res.id(),
                self.id()
            );
            return Err(Error::NotRegistered {
                resource: res.id(),
                session: self.id(),
            });
        }
        Ok(())
    }

    /// `vaccel_noop`.
    pub fn noop(&self) -> Result<()> {
        self.dispatch(OpType::Noop, |p| p.noop(self))
    }

    /// `vaccel_exec`: calls `symbol` of `library` (resolved where the plugin runs).
    pub fn exec(
        &self,
        library: &str,
        symbol: &str,
        read: &[Arg<'_>],
        write: &mut [Arg<'_>],
    ) -> Result<()> {
        need(!library.is_empty(), "exec: library is empty")?;
        need(!symbol.is_empty(), "exec: symbol is empty")?;
        self.dispatch(OpType::Exec, |p| p.exec(self, library, symbol, read, write))
    }

    /// `vaccel_exec_with_resource`: `res` must be a `LIB` resource registered here.
    pub fn exec_with_resource(
        &self,
        res: &Resource,
        symbol: &str,
        read: &[Arg<'_>],
        write: &mut [Arg<'_>],
    ) -> Result<()> {
        need(!symbol.is_empty(), "exec_with_resource: symbol is empty")?;
        self.check_resource(res, ResourceType::Lib)?;
        self.dispatch(OpType::ExecWithResource, |p| {
            p.exec_with_resource(self, res, symbol, read, write)
        })
    }

    /// `vaccel_image_classification`: NUL-terminated text into both outputs.
    pub fn image_classify(
        &self,
        image: &[u8],
        out_text: &mut [u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        need(!image.is_empty(), "image classification: image is empty")?;
        self.dispatch(OpType::ImageClassify, |p| {
            p.image_classify(self, image, out_text, out_imgname)
        })
    }

    fn image_op(&self, op: OpType, image: &[u8], out_imgname: &mut [u8]) -> Result<()> {
        need(!image.is_empty(), "image op: image is empty")?;
        self.dispatch(op, |p| p.image_op(self, op, image, out_imgname))
    }

    /// `vaccel_image_detection`.
    pub fn image_detect(&self, image: &[u8], out_imgname: &mut [u8]) -> Result<()> {
        self.image_op(OpType::ImageDetect, image, out_imgname)
    }

    /// `vaccel_image_detection` with structured results: the result image name goes to
    /// `out_imgname` as with [`Session::image_detect`], and the objects found are returned
    /// (empty when the plugin only produces the image).
    pub fn image_detect_objects(
        &self,
        image: &[u8],
        out_imgname: &mut [u8],
    ) -> Result<Vec<crate::Detection>> {
        need(!image.is_empty(), "image detection: image is empty")?;
        self.dispatch(OpType::ImageDetect, |p| {
            p.image_detect_objects(self, image, out_imgname)
        })
    }

    /// `vaccel_image_segmentation`.
    pub fn image_segment(&self, image: &[u8], out_imgname: &mut [u8]) -> Result<()> {
        self.image_op(OpType::ImageSegment, image, out_imgname)
    }

    /// `vaccel_image_pose`.
    pub fn image_pose(&self, image: &[u8], out_imgname: &mut [u8]) -> Result<()> {
        self.image_op(OpType::ImagePose, image, out_imgname)
    }

    /// `vaccel_image_depth`.
    pub fn image_depth(&self, image: &[u8], out_imgname: &mut [u8]) -> Result<()> {
        self.image_op(OpType::ImageDepth, image, out_imgname)
    }

    /// `vaccel_sgemm`: `C = alpha * A x B + beta * C`, row-major, validated dimensions.
    pub fn sgemm(&self, args: &SgemmArgs<'_>, c: &mut [f32]) -> Result<()> {
        args.validate(c.len())?;
        self.dispatch(OpType::BlasSgemm, |p| p.sgemm(self, args, c))
    }

    /// `vaccel_fpga_arraycopy`.
    pub fn fpga_arraycopy(&self, a: &[i32], out: &mut [i32]) -> Result<()> {
        need(
            out.len() >= a.len(),
            "fpga_arraycopy: output shorter than input",
        )?;
        self.dispatch(OpType::FpgaArraycopy, |p| p.fpga_arraycopy(self, a, out))
    }

    /// `vaccel_fpga_mmult`.
    pub fn fpga_mmult(&self, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
        need(
            b.len() >= a.len() && c.len() >= a.len(),
            "fpga_mmult: b or c shorter than a",
        )?;
        self.dispatch(OpType::FpgaMmult, |p| p.fpga_mmult(self, a, b, c))
    }

    /// `vaccel_fpga_parallel`.
    pub fn fpga_parallel(
        &self,
        a: &[f32],
        b: &[f32],
        add_out: &mut [f32],
        mult_out: &mut [f32],
    ) -> Result<()> {
        let n = a.len();
        need(
            b.len() >= n && add_out.len() >= n && mult_out.len() >= n,
            "fpga_parallel: an operand is shorter than a",
        )?;
        self.dispatch(OpType::FpgaParallel, |p| {
            p.fpga_parallel(self, a, b, add_out, mult_out)
        })
    }

    /// `vaccel_fpga_vadd`.
    pub fn fpga_vadd(&self, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
        need(
            b.len() >= a.len() && c.len() >= a.len(),
            "fpga_vadd: b or c shorter than a",
        )?;
        self.dispatch(OpType::FpgaVectoradd, |p| p.fpga_vadd(self, a, b, c))
    }

    /// `vaccel_minmax`: returns `(min, max)`.
    pub fn minmax(
        &self,
        indata: &[f64],
        low_threshold: i32,
        high_threshold: i32,
        outdata: &mut [f64],
    ) -> Result<(f64, f64)> {
        need(!indata.is_empty(), "minmax: no data")?;
        need(
            outdata.len() >= indata.len(),
            "minmax: output shorter than input",
        )?;
        self.dispatch(OpType::Minmax, |p| {
            p.minmax(self, indata, low_threshold, high_threshold, outdata)
        })
    }

    /// `vaccel_opencv`: arguments passed through.
    pub fn opencv(&self, read: &[Arg<'_>], write: &mut [Arg<'_>]) -> Result<()> {
        self.dispatch(OpType::Opencv, |p| p.opencv(self, read, write))
    }

    /// `vaccel_tf_model_load`.
    pub fn tf_model_load(&self, model: &Resource) -> Result<TfStatus> {
        self.check_resource(model, ResourceType::Model)?;
        self.dispatch(OpType::TfModelLoad, |p| p.tf_model_load(self, model))
    }

    /// `vaccel_tf_model_unload`.
    pub fn tf_model_unload(&self, model: &Resource) -> Result<TfStatus> {
        self.check_resource(model, ResourceType::Model)?;
        self.dispatch(OpType::TfModelUnload, |p| p.tf_model_unload(self, model))
    }

    /// `vaccel_tf_model_run`: one output tensor per output node.
    pub fn tf_model_run(
        &self,
        model: &Resource,
        run_options: Option<&[u8]>,
        in_nodes: &[TfNode],
        in_tensors: &[TfTensor<'_>],
        out_nodes: &[TfNode],
    ) -> Result<TfRunOutput> {
        need(
            in_nodes.len() == in_tensors.len(),
            "tf_model_run: input nodes and tensors differ in number",
        )?;
        self.check_resource(model, ResourceType::Model)?;
        let out = self.dispatch(OpType::TfModelRun, |p| {
            p.tf_model_run(self, model, run_options, in_nodes, in_tensors, out_nodes)
        })?;
        self.check_outputs(out.outputs.len(), out_nodes.len())?;
        Ok(out)
    }

    /// `vaccel_tflite_model_load`.
    pub fn tflite_model_load(&self, model: &Resource) -> Result<()> {
        self.check_resource(model, ResourceType::Model)?;
        self.dispatch(OpType::TfliteModelLoad, |p| {
            p.tflite_model_load(self, model)
        })
    }

    /// `vaccel_tflite_model_unload`.
    pub fn tflite_model_unload(&self, model: &Resource) -> Result<()> {
        self.check_resource(model, ResourceType::Model)?;
        self.dispatch(OpType::TfliteModelUnload, |p| {
            p.tflite_model_unload(self, model)
        })
    }

    /// `vaccel_tflite_model_run`: `nr_outputs` output tensors and the interpreter status.
    pub fn tflite_model_run(
        &self,
        model: &Resource,
        inputs: &[TfLiteTensor<'_>],
        nr_outputs: usize,
    ) -> Result<TfLiteRunOutput> {
        need(
            inputs
                .iter()
                .all(|t| t.dims.iter().all(|&d| i32::try_from(d).is_ok())),
            "tflite_model_run: a dimension does not fit in int32",
        )?;
        self.check_resource(model, ResourceType::Model)?;
        let out = self.dispatch(OpType::TfliteModelRun, |p| {
            p.tflite_model_run(self, model, inputs, nr_outputs)
        })?;
        self.check_outputs(out.outputs.len(), nr_outputs)?;
        Ok(out)
    }

    /// `vaccel_torch_model_load`.
    pub fn torch_model_load(&self, model: &Resource) -> Result<()> {
        self.check_resource(model, ResourceType::Model)?;
        self.dispatch(OpType::TorchModelLoad, |p| p.torch_model_load(self, model))
    }

    /// `vaccel_torch_model_run`: `nr_outputs` output tensors.
    pub fn torch_model_run(
        &self,
        model: &Resource,
        run_options: Option<&[u8]>,
        inputs: &[TorchTensor<'_>],
        nr_outputs: usize,
    ) -> Result<Vec<TorchTensor<'static>>> {
        self.check_resource(model, ResourceType::Model)?;
        let out = self.dispatch(OpType::TorchModelRun, |p| {
            p.torch_model_run(self, model, run_options, inputs, nr_outputs)
        })?;
        self.check_outputs(out.len(), nr_outputs)?;
        Ok(out)
    }

    /// `vaccel_torch_sgemm` (deprecated upstream).
    pub fn torch_sgemm(
        &self,
        a: &TorchTensor<'_>,
        b: &TorchTensor<'_>,
        c: &TorchTensor<'_>,
        m: i32,
        n: i32,
        k: i32,
    ) -> Result<Option<TorchTensor<'static>>> {
        need(
            m >= 0 && n >= 0 && k >= 0,
            "torch_sgemm: negative dimension",
        )?;
        self.dispatch(OpType::TorchSgemm, |p| {
            p.torch_sgemm(self, a, b, c, m, n, k)
        })
    }

    /// A plugin that returns another number of outputs than asked is a backend bug; callers
    /// index outputs by position, so refuse it rather than pass it on.
    fn check_outputs(&self, got: usize, expected: usize) -> Result<()> {
        if got == expected {
            return Ok(());
        }
        Err(Error::backend(
            self.plugin().info().name.clone(),
            ErrorCode::EBACKEND,
            format!("returned {got} output tensors, {expected} expected"),
        ))
    }
}
