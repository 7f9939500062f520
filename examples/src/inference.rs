//! `tf_inference`, `tflite_inference` and `torch_inference`:
//! `<program> <image_file> <model_path> <labels_file> [iterations]`.
//!
//! The image is decoded, resized (nearest neighbour) to 224x224 and normalised with the
//! ImageNet mean and standard deviation, laid out HWC (`{1, 224, 224, 3}`, TensorFlow and
//! TensorFlow Lite) or CHW (`{1, 3, 224, 224}`, Torch). The model is a `MODEL` resource
//! registered with the session; each iteration runs it and prints the output tensor's type,
//! rank and size, then `Prediction: <label>`: the label (line of the labels file) at the
//! largest of the first 1000 output values. An image that does not decode is replaced, after a
//! warning, by pseudo-random values, and no prediction is printed.

use std::ffi::OsString;

use vaccel::tensor::{DataType, Tensor};
use vaccel::{
    Error, Resource, ResourceType, Runtime, Session, TfDataType, TfLiteDataType, TfLiteTensor,
    TfNode, TfTensor, TorchDataType, TorchTensor,
};

use crate::{Cli, Failure};

/// Width and height of the input image.
pub const SIDE: usize = 224;
/// Colour channels of the input image.
pub const CHANNELS: usize = 3;
/// ImageNet per-channel mean (RGB) of values in `[0, 1]`.
pub const MEAN: [f32; CHANNELS] = [0.485, 0.456, 0.406];
/// ImageNet per-channel standard deviation (RGB).
pub const STD: [f32; CHANNELS] = [0.229, 0.224, 0.225];
/// How many output values the prediction looks at (the ImageNet classes).
pub const NR_CLASSES: usize = 1000;
/// The TensorFlow model's input node.
pub const TF_IN_NODE: &str = "serving_default_data";
/// The TensorFlow model's output node.
pub const TF_OUT_NODE: &str = "PartitionedCall";

/// Largest decoded image accepted, in bytes, so a hostile JPEG header cannot make the decoder
/// allocate without bound (a 16384x16384 RGB image is 768 MiB).
const MAX_DECODED_BYTES: usize = 768 << 20;

/// Usage line shared by the three programs.
const USAGE: &str = "<image_file> <model_path> <labels_file> [iterations]";

/// Element order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Height, width, channel (TensorFlow).
    Hwc,
    /// Channel, height, width (Torch).
    Chw,
}

/// Decodes a JPEG and turns it into the model input: `SIDE * SIDE * CHANNELS` floats in
/// `layout`, resized by nearest neighbour and normalised with [`MEAN`] and [`STD`]. Grey images
/// are replicated over the three channels.
///
/// # Errors
///
/// A message when the bytes are not a JPEG this decoder supports (RGB or greyscale).
pub fn preprocess(jpeg: &[u8], layout: Layout) -> Result<Vec<f32>, String> {
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    decoder.set_max_decoding_buffer_size(MAX_DECODED_BYTES);
    let pixels = decoder.decode().map_err(|e| e.to_string())?;
    let info = decoder
        .info()
        .ok_or("the decoder returned no image information")?;
    let (width, height) = (usize::from(info.width), usize::from(info.height));
    let bytes_per_pixel = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => 3,
        jpeg_decoder::PixelFormat::L8 => 1,
        other => return Err(format!("unsupported pixel format {other:?}")),
    };
    if width == 0 || height == 0 || pixels.len() < width * height * bytes_per_pixel {
        return Err(format!(
            "{width}x{height} image with {} bytes of pixels",
            pixels.len()
        ));
    }
    let mut input = vec![0f32; SIDE * SIDE * CHANNELS];
    for y in 0..SIDE {
        let src_y = y * height / SIDE;
        for x in 0..SIDE {
            let src_x = x * width / SIDE;
            let pixel = (src_y * width + src_x) * bytes_per_pixel;
            for (c, (mean, std)) in MEAN.iter().zip(STD).enumerate() {
                let channel = if bytes_per_pixel == 1 { 0 } else { c };
                let value = f32::from(pixels.get(pixel + channel).copied().unwrap_or(0));
                let index = match layout {
                    Layout::Hwc => (y * SIDE + x) * CHANNELS + c,
                    Layout::Chw => (c * SIDE + y) * SIDE + x,
                };
                if let Some(slot) = input.get_mut(index) {
                    *slot = (value / 255.0 - mean) / std;
                }
            }
        }
    }
    Ok(input)
}

/// `len` pseudo-random whole numbers in 1..=100 (a fixed-seed xorshift: runs are repeatable).
pub fn random_input(len: usize) -> Vec<f32> {
    let mut state: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // At most 100: exact in f32.
            (state % 100 + 1) as f32
        })
        .collect()
}

/// The floats of a tensor's bytes (native endian); a trailing partial value is ignored.
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .filter_map(|chunk| chunk.try_into().ok().map(f32::from_ne_bytes))
        .collect()
}

/// The index of the largest of the first [`NR_CLASSES`] values (the first one on ties; NaNs
/// never win), or `None` if there is no comparable value.
pub fn top_class(values: &[f32]) -> Option<usize> {
    values
        .iter()
        .take(NR_CLASSES)
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .fold(None, |best: Option<(usize, f32)>, (i, &v)| match best {
            Some((_, top)) if top >= v => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
}

/// The label the output predicts, or a placeholder naming the class when the labels file has
/// fewer lines.
pub fn prediction(labels: &[String], output: &[f32]) -> Option<String> {
    let class = top_class(output)?;
    Some(
        labels
            .get(class)
            .cloned()
            .unwrap_or_else(|| format!("<class {class} has no label>")),
    )
}

fn to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Everything the three programs prepare before running the model.
struct Prepared {
    /// Input values in the framework's layout.
    input: Vec<f32>,
    /// Whether `input` is the image (so a prediction means something).
    decoded: bool,
    labels: Vec<String>,
}

fn prepare(image_path: &str, labels_path: &str, layout: Layout) -> Result<Prepared, Failure> {
    let image = crate::read_file(image_path, "image file")?;
    let labels = crate::read_file(labels_path, "labels file")?;
    let labels = String::from_utf8_lossy(&labels)
        .lines()
        .map(str::to_owned)
        .collect();
    let (input, decoded) = match preprocess(&image, layout) {
        Ok(input) => (input, true),
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "Warning: could not decode image; will generate random input\n({e})"
            );
            (random_input(SIDE * SIDE * CHANNELS), false)
        }
    };
    Ok(Prepared {
        input,
        decoded,
        labels,
    })
}

/// Creates the model resource and the session, prints both ids, and registers the model.
fn open(
    rt: &Runtime,
    model_path: &str,
) -> Result<(std::sync::Arc<Resource>, std::sync::Arc<Session>), Failure> {
    let model = Resource::new(rt, model_path, ResourceType::Model)
        .map_err(|e| Failure::step("Could not create model resource", e))?;
    say!("Initialized model resource {}", model.id());
    let sess = Session::new(rt, 0).map_err(|e| Failure::step("Could not initialize session", e))?;
    say!("Initialized vAccel session {}", sess.id());
    sess.register(&model)
        .map_err(|e| Failure::step("Could not register model resource", e))?;
    Ok((model, sess))
}

/// Prints the output tensor line and, for a decoded image, the prediction.
fn report<D: DataType>(output: Option<&Tensor<'_, D>>, prepared: &Prepared) -> Result<(), Failure> {
    let output =
        output.ok_or_else(|| Failure::Op(Error::invalid("the model returned no output tensor")))?;
    say!(
        "Output tensor => type:{} nr_dims:{} size:{}B",
        output.data_type.to_value(),
        output.dims.len(),
        output.data.len()
    );
    if prepared.decoded
        && let Some(label) = prediction(&prepared.labels, &floats(&output.data))
    {
        say!("Prediction: {label}");
    }
    Ok(())
}

/// The command line of the three programs.
struct Args<'a> {
    image: &'a str,
    model: &'a str,
    labels: &'a str,
    iterations: u64,
}

fn args(cli: &Cli) -> Result<Args<'_>, Failure> {
    Ok(Args {
        image: cli.required(0)?,
        model: cli.required(1)?,
        labels: cli.required(2)?,
        iterations: cli.iterations(3)?,
    })
}

/// `tf_inference`: `tf_model_load`, `tf_model_run` per iteration (input node
/// `serving_default_data`:0, output node `PartitionedCall`:0, FLOAT `{1, 224, 224, 3}`), and
/// `tf_model_unload` at the end, even after a failed run, printing each status.
pub fn tf_inference(raw: Vec<OsString>) -> Result<(), Failure> {
    let cli = Cli::parse("tf_inference", USAGE, raw, 3, 1)?;
    let args = args(&cli)?;
    let prepared = prepare(args.image, args.labels, Layout::Hwc)?;
    crate::with_runtime(cli.program(), |rt, region| {
        let (model, sess) = open(rt, args.model)?;
        let input = TfTensor::new(
            vec![1, SIDE as i64, SIDE as i64, CHANNELS as i64],
            TfDataType::Float,
            to_bytes(&prepared.input),
        )
        .map_err(|e| Failure::step("Could not create input tensor", e))?;
        let status = {
            let _timed = region.enter();
            sess.tf_model_load(&model)
        }
        .map_err(Failure::Op)?;
        say!(
            "Session load status => code:{} message:{}",
            status.code,
            status.message
        );

        let in_nodes = [TfNode::new(TF_IN_NODE, 0)];
        let out_nodes = [TfNode::new(TF_OUT_NODE, 0)];
        let run = || -> Result<(), Failure> {
            for _ in 0..args.iterations {
                let out = {
                    let _timed = region.enter();
                    sess.tf_model_run(
                        &model,
                        None,
                        &in_nodes,
                        std::slice::from_ref(&input),
                        &out_nodes,
                    )
                }
                .map_err(Failure::Op)?;
                say!(
                    "Session run status => code:{} message:{}",
                    out.status.code,
                    out.status.message
                );
                say!("Success!");
                report(out.outputs.first(), &prepared)?;
            }
            Ok(())
        };
        let ran = run();

        let unloaded = {
            let _timed = region.enter();
            sess.tf_model_unload(&model)
        }
        .map_err(Failure::Op);
        if let Ok(status) = &unloaded {
            say!(
                "Session delete status => code:{} message:{}",
                status.code,
                status.message
            );
        }
        ran.and(unloaded.map(drop))
    })
}

/// `tflite_inference`: `tflite_model_load`, `tflite_model_run` per iteration (FLOAT32
/// `{1, 224, 224, 3}`, one output), `tflite_model_unload` at the end.
pub fn tflite_inference(raw: Vec<OsString>) -> Result<(), Failure> {
    let cli = Cli::parse("tflite_inference", USAGE, raw, 3, 1)?;
    let args = args(&cli)?;
    let prepared = prepare(args.image, args.labels, Layout::Hwc)?;
    crate::with_runtime(cli.program(), |rt, region| {
        let (model, sess) = open(rt, args.model)?;
        let input = TfLiteTensor::new(
            vec![1, SIDE as i64, SIDE as i64, CHANNELS as i64],
            TfLiteDataType::Float32,
            to_bytes(&prepared.input),
        )
        .map_err(|e| Failure::step("Could not create input tensor", e))?;
        {
            let _timed = region.enter();
            sess.tflite_model_load(&model)
        }
        .map_err(Failure::Op)?;

        let run = || -> Result<(), Failure> {
            for _ in 0..args.iterations {
                let out = {
                    let _timed = region.enter();
                    sess.tflite_model_run(&model, std::slice::from_ref(&input), 1)
                }
                .map_err(Failure::Op)?;
                say!("Session run status: {}", out.status);
                say!("Success!");
                report(out.outputs.first(), &prepared)?;
            }
            Ok(())
        };
        let ran = run();

        let unloaded = {
            let _timed = region.enter();
            sess.tflite_model_unload(&model)
        }
        .map_err(Failure::Op);
        ran.and(unloaded)
    })
}

/// `torch_inference`: `torch_model_load`, then `torch_model_run` per iteration (FLOAT
/// `{1, 3, 224, 224}`, one output).
pub fn torch_inference(raw: Vec<OsString>) -> Result<(), Failure> {
    let cli = Cli::parse("torch_inference", USAGE, raw, 3, 1)?;
    let args = args(&cli)?;
    let prepared = prepare(args.image, args.labels, Layout::Chw)?;
    crate::with_runtime(cli.program(), |rt, region| {
        let (model, sess) = open(rt, args.model)?;
        let input = TorchTensor::new(
            vec![1, CHANNELS as i64, SIDE as i64, SIDE as i64],
            TorchDataType::Float,
            to_bytes(&prepared.input),
        )
        .map_err(|e| Failure::step("Could not create input tensor", e))?;
        {
            let _timed = region.enter();
            sess.torch_model_load(&model)
        }
        .map_err(Failure::Op)?;

        for _ in 0..args.iterations {
            let out = {
                let _timed = region.enter();
                sess.torch_model_run(&model, None, std::slice::from_ref(&input), 1)
            }
            .map_err(Failure::Op)?;
            say!("Success!");
            say!("Result Tensor :");
            report(out.first(), &prepared)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_class_takes_the_first_maximum_of_the_first_classes() {
        assert_eq!(top_class(&[]), None);
        assert_eq!(top_class(&[f32::NAN]), None);
        assert_eq!(top_class(&[1.0, 3.0, 3.0, 2.0]), Some(1));
        assert_eq!(top_class(&[f32::NAN, -1.0, f32::NAN]), Some(1));
        let mut values = vec![0.0; NR_CLASSES + 1];
        values[NR_CLASSES] = 1.0;
        values[7] = 0.5;
        assert_eq!(top_class(&values), Some(7), "values past 1000 are ignored");
    }

    #[test]
    fn prediction_names_missing_labels() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(prediction(&labels, &[0.0, 1.0]), Some("b".to_owned()));
        assert_eq!(
            prediction(&labels, &[0.0, 0.0, 1.0]),
            Some("<class 2 has no label>".to_owned())
        );
    }

    #[test]
    fn random_input_is_in_range_and_repeatable() {
        let values = random_input(10_000);
        assert!(values.iter().all(|&v| (1.0..=100.0).contains(&v)));
        assert_eq!(values, random_input(10_000));
        assert!(values.iter().any(|&v| v != values[0]));
    }

    #[test]
    fn preprocess_rejects_what_is_not_a_jpeg() {
        assert!(preprocess(b"not a jpeg", Layout::Hwc).is_err());
        assert!(preprocess(&[], Layout::Chw).is_err());
    }

    #[test]
    fn floats_round_trip() {
        let values = [1.5f32, -2.0, 0.0];
        let mut bytes = to_bytes(&values);
        bytes.push(0xff);
        assert_eq!(floats(&bytes), values);
    }
}
