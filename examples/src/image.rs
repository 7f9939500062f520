//! `classify`, `detect`, `segment`, `pose`, `depth` and their `_generic` versions:
//! `<program> <image_file> [iterations] [model_path]`.
//!
//! Each iteration runs the image operation on the file's bytes and prints what it returned
//! (with the noop plugin: `classification tags: This is a dummy classification tag!` and
//! `classification imagename: This is a dummy imgname!`). With `model_path`, a `MODEL`
//! resource is created from it and registered with the session first, for plugins that
//! classify with a model of the caller's choice.

use std::ffi::OsString;

use vaccel::arg::read_c_string;
use vaccel::{Arg, ArgType, Error, OpType, Resource, ResourceType, Session};

use crate::{Api, Cli, Failure};

/// Size of the output buffers, as upstream's examples allocate them.
pub const OUT_LEN: usize = 512;

/// Size of the detections output of `detect_generic` (about 60 bytes per object).
pub const DETECTIONS_LEN: usize = 16 * 1024;

/// Usage line shared by every image program.
const USAGE: &str = "<image_file> [iterations] [model_path]";

/// Which image operation a program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageOp {
    /// `vaccel_image_classification`: a tag and an image name.
    Classify,
    /// `vaccel_image_detection`.
    Detect,
    /// `vaccel_image_segmentation`.
    Segment,
    /// `vaccel_image_pose`.
    Pose,
    /// `vaccel_image_depth`.
    Depth,
}

impl ImageOp {
    /// The operation number.
    pub fn op_type(self) -> OpType {
        match self {
            ImageOp::Classify => OpType::ImageClassify,
            ImageOp::Detect => OpType::ImageDetect,
            ImageOp::Segment => OpType::ImageSegment,
            ImageOp::Pose => OpType::ImagePose,
            ImageOp::Depth => OpType::ImageDepth,
        }
    }

    /// The word upstream prints before `imagename:`.
    pub fn label(self) -> &'static str {
        match self {
            ImageOp::Classify => "classification",
            ImageOp::Detect => "detection",
            ImageOp::Segment => "segmentation",
            ImageOp::Pose => "pose estimation",
            ImageOp::Depth => "depth estimation",
        }
    }

    /// The program name for this operation called through `api`.
    pub fn program(self, api: Api) -> &'static str {
        match (self, api) {
            (ImageOp::Classify, Api::Direct) => "classify",
            (ImageOp::Classify, Api::Generic) => "classify_generic",
            (ImageOp::Detect, Api::Direct) => "detect",
            (ImageOp::Detect, Api::Generic) => "detect_generic",
            (ImageOp::Segment, Api::Direct) => "segment",
            (ImageOp::Segment, Api::Generic) => "segment_generic",
            (ImageOp::Pose, Api::Direct) => "pose",
            (ImageOp::Pose, Api::Generic) => "pose_generic",
            (ImageOp::Depth, Api::Direct) => "depth",
            (ImageOp::Depth, Api::Generic) => "depth_generic",
        }
    }
}

/// What one operation returned, as text.
struct Outputs {
    imgname: String,
    /// Classification only.
    text: Option<String>,
    /// Detection only: what was found (our addition, printed after upstream's line).
    detections: Vec<vaccel::Detection>,
}

/// Runs the program for `op` through `api` with the process arguments `raw`.
pub fn run(op: ImageOp, api: Api, raw: Vec<OsString>) -> Result<(), Failure> {
    let program = op.program(api);
    let cli = Cli::parse(program, USAGE, raw, 1, 2)?;
    let image_path = cli.required(0)?;
    let iterations = cli.iterations(1)?;
    let model_path = cli.get(2);

    crate::with_runtime(program, |rt, region| {
        let sess = crate::new_session(rt, 0)?;
        // Kept alive until the session is done with it.
        let _model = match model_path {
            Some(path) => {
                let model = Resource::new(rt, path, ResourceType::Model)
                    .map_err(|e| Failure::step("Could not create model resource", e))?;
                sess.register(&model)
                    .map_err(|e| Failure::step("Could not register model resource", e))?;
                Some(model)
            }
            None => None,
        };
        let image = crate::read_file(image_path, "image file")?;

        for _ in 0..iterations {
            let outputs = {
                let _timed = region.enter();
                match api {
                    Api::Direct => direct(&sess, op, &image),
                    Api::Generic => generic(&sess, op, &image),
                }
            }
            .map_err(Failure::Op)?;
            if let Some(text) = &outputs.text {
                say!("{} tags: {text}", op.label());
            }
            say!("{} imagename: {}", op.label(), outputs.imgname);
            for d in &outputs.detections {
                say!("{}", d.display_line());
            }
        }
        Ok(())
    })
}

fn direct(sess: &Session, op: ImageOp, image: &[u8]) -> Result<Outputs, Error> {
    let mut imgname = [0u8; OUT_LEN];
    let mut text = None;
    let mut detections = Vec::new();
    match op {
        ImageOp::Classify => {
            let mut tags = [0u8; OUT_LEN];
            sess.image_classify(image, &mut tags, &mut imgname)?;
            text = Some(read_c_string(&tags).into_owned());
        }
        ImageOp::Detect => detections = sess.image_detect_objects(image, &mut imgname)?,
        ImageOp::Segment => sess.image_segment(image, &mut imgname)?,
        ImageOp::Pose => sess.image_pose(image, &mut imgname)?,
        ImageOp::Depth => sess.image_depth(image, &mut imgname)?,
    }
    Ok(Outputs {
        imgname: read_c_string(&imgname).into_owned(),
        text,
        detections,
    })
}

/// Read `[UINT8 op, BUFFER image]`; write `[UCHAR_ARRAY imgname]`, plus `[UCHAR_ARRAY text]`
/// for classification (§2.3).
fn generic(sess: &Session, op: ImageOp, image: &[u8]) -> Result<Outputs, Error> {
    let read = [
        Arg::scalar(op.op_type().value()),
        Arg::buffer(image).map_err(|e| Error::arg(1, e))?,
    ];
    let out = |index| Arg::zeroed(ArgType::UcharArray, OUT_LEN).map_err(|e| Error::arg(index, e));
    let mut write = vec![out(0)?];
    match op {
        ImageOp::Classify => write.push(out(1)?),
        // Our extension of the detection layout: a second output receives the detections.
        ImageOp::Detect => write
            .push(Arg::zeroed(ArgType::UcharArray, DETECTIONS_LEN).map_err(|e| Error::arg(1, e))?),
        _ => {}
    }
    sess.genop(&read, &mut write)?;
    let detections = match (op, write.get(1)) {
        (ImageOp::Detect, Some(found)) => vaccel::detection::decode(found.bytes())?,
        _ => Vec::new(),
    };
    let mut texts = write
        .iter()
        .map(|arg| read_c_string(arg.bytes()).into_owned());
    Ok(Outputs {
        imgname: texts.next().unwrap_or_default(),
        text: if op == ImageOp::Classify {
            texts.next()
        } else {
            None
        },
        detections,
    })
}
