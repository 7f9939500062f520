//! What a plugin serving the image ops with this crate needs around [`crate::run`]: the task of
//! an op, one mapping of failures to runtime errors, and writing results into the callers'
//! buffers. A plugin implements `Plugin::image_classify`, `image_op` and
//! `image_detect_objects` by calling the functions here with a closure that runs a task.

use vaccel_core::arg::write_c_string;
use vaccel_core::plugin::Plugin;
use vaccel_core::{Detection, Error, ErrorCode, OpType, Result};

use crate::{Output, Task, VisionError};

/// The task of an image op (`None` for other ops).
pub fn task_of(op: OpType) -> Option<Task> {
    Some(match op {
        OpType::ImageClassify => Task::Classify,
        OpType::ImageDetect => Task::Detect,
        OpType::ImageSegment => Task::Segment,
        OpType::ImagePose => Task::Pose,
        OpType::ImageDepth => Task::Depth,
        _ => return None,
    })
}

/// The runtime error for a failure of `plugin` (`context` names the model): a model that
/// cannot do the task declines (another plugin may have one that can); a bad image or input
/// is the caller's invalid argument; a result image that cannot be written keeps its OS
/// error; the rest are backend failures.
pub fn to_core(e: VisionError, plugin: &str, context: &str) -> Error {
    let message = format!("{plugin}: {context}: {}", vaccel_core::error::chain(&e));
    match e {
        VisionError::Unsupported { .. } => Error::declined(plugin, message),
        VisionError::Write { path, source } => {
            Error::io(format!("{plugin}: write {}", path.display()), source)
        }
        VisionError::ModelInput(_) => Error::invalid(message),
        e if e.is_bad_image() => Error::invalid(message),
        _ => Error::backend(plugin, ErrorCode::EBACKEND, message),
    }
}

/// `image_classify`: the text into both outputs, as upstream's plugins do.
pub fn classify(
    run: impl FnOnce(Task) -> Result<Output>,
    out_text: &mut [u8],
    out_imgname: &mut [u8],
) -> Result<()> {
    let out = run(Task::Classify)?;
    write_c_string(out_text, &out.text);
    write_c_string(out_imgname, &out.image_name);
    Ok(())
}

/// `image_op` (detect, segment, pose, depth): the result image's name into `out_imgname`.
/// Classification goes through [`classify`]; other ops are not implemented by `plugin`.
pub fn image_op(
    plugin: &dyn Plugin,
    op: OpType,
    run: impl FnOnce(Task) -> Result<Output>,
    out_imgname: &mut [u8],
) -> Result<()> {
    let Some(task) = task_of(op).filter(|&t| t != Task::Classify) else {
        return Err(vaccel_core::plugin::not_implemented(plugin, op));
    };
    let out = run(task)?;
    write_c_string(out_imgname, &out.image_name);
    Ok(())
}

/// `image_detect_objects`: the result image's name into `out_imgname`, the objects returned.
pub fn detect_objects(
    run: impl FnOnce(Task) -> Result<Output>,
    out_imgname: &mut [u8],
) -> Result<Vec<Detection>> {
    let out = run(Task::Detect)?;
    write_c_string(out_imgname, &out.image_name);
    Ok(out.detections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_map_to_tasks_and_errors_to_codes() {
        assert_eq!(task_of(OpType::ImagePose), Some(Task::Pose));
        assert_eq!(task_of(OpType::BlasSgemm), None);
        let e = to_core(VisionError::UnknownImageFormat, "p", "m");
        assert_eq!(e.code(), ErrorCode::EINVAL);
        assert!(e.to_string().contains("p: m: "), "{e}");
        let e = to_core(VisionError::ModelOutput("x".into()), "p", "m");
        assert_eq!(e.code(), ErrorCode::EBACKEND);
    }
}
