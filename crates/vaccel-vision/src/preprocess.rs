//! Image → model input tensor: resize (stretched or letterboxed) with Pillow's antialiased
//! filters, value range, layout; and the mapping from model-input coordinates back to image
//! pixels.

use crate::engine::Tensor;
use crate::resample::{Filter, resize, taps};
use crate::rgb::RgbImage;

/// Largest model input side this crate will build a tensor for.
pub const MAX_INPUT_SIDE: usize = 4096;

/// Where the channels are in an image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[1, H, W, C]` (TFLite, Keras, MediaPipe).
    Nhwc,
    /// `[1, C, H, W]` (PyTorch exports).
    Nchw,
}

/// An image input of a model: its size and layout (always 3 channels, RGB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSpec {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Channel position.
    pub layout: Layout,
}

impl InputSpec {
    /// Reads an RGB image input from a tensor shape: `[1, H, W, 3]` or `[1, 3, H, W]` (a batch
    /// of 0 stands for a dynamic batch). `None` for anything else, or sides over
    /// [`MAX_INPUT_SIDE`].
    pub fn from_shape(shape: &[usize]) -> Option<Self> {
        let &[n, a, b, c] = shape else {
            return None;
        };
        if n > 1 {
            return None;
        }
        let (height, width, layout) = match (a, c) {
            (_, 3) => (a, b, Layout::Nhwc),
            (3, _) => (b, c, Layout::Nchw),
            _ => return None,
        };
        let ok = |s: usize| (1..=MAX_INPUT_SIDE).contains(&s);
        (ok(width) && ok(height)).then_some(Self {
            width,
            height,
            layout,
        })
    }

    /// The tensor shape to feed (batch 1).
    pub fn shape(&self) -> Vec<usize> {
        match self.layout {
            Layout::Nhwc => vec![1, self.height, self.width, 3],
            Layout::Nchw => vec![1, 3, self.height, self.width],
        }
    }
}

/// How the image is fitted into the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Scaled on each axis independently to fill the input (aspect ratio not kept).
    Stretch,
    /// Scaled by one factor to fit inside the input, centred, the rest padded.
    Letterbox,
}

/// Everything that turns an image into a model's input tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocess {
    /// The model input.
    pub input: InputSpec,
    /// How the image is fitted.
    pub fit: Fit,
    /// Tensor values for pixel values 0 and 255 (linear in between): `(-1, 1)`, `(0, 1)`,
    /// `(0, 255)`.
    pub range: (f32, f32),
    /// Tensor value of letterbox padding (MediaPipe pads with black: `range.0`).
    pub pad: f32,
    /// The resize filter.
    pub filter: Filter,
}

impl Preprocess {
    /// Letterboxed, padded with black, bilinear.
    pub fn letterbox(input: InputSpec, range: (f32, f32)) -> Self {
        Self {
            input,
            fit: Fit::Letterbox,
            range,
            pad: range.0,
            filter: Filter::Bilinear,
        }
    }

    /// Stretched to the input size, bilinear.
    pub fn stretch(input: InputSpec, range: (f32, f32)) -> Self {
        Self {
            fit: Fit::Stretch,
            ..Self::letterbox(input, range)
        }
    }

    /// The same with another resize filter.
    pub fn with_filter(self, filter: Filter) -> Self {
        Self { filter, ..self }
    }
}

/// The placement of the image inside the model input: model-input pixel
/// `x_model = x_image * scale_x + offset_x` (continuous coordinates, pixel edges at integers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Image width in pixels.
    pub image_width: u32,
    /// Image height in pixels.
    pub image_height: u32,
    /// Model input width in pixels.
    pub input_width: usize,
    /// Model input height in pixels.
    pub input_height: usize,
    /// Horizontal scale, image → model input.
    pub scale_x: f32,
    /// Vertical scale, image → model input.
    pub scale_y: f32,
    /// Left padding in model-input pixels.
    pub offset_x: f32,
    /// Top padding in model-input pixels.
    pub offset_y: f32,
}

impl Placement {
    /// Where an `image_width x image_height` image lands in an `input_width x input_height`
    /// model input with `fit`. A letterboxed image covers a whole number of input pixels,
    /// centred (an odd padding puts the extra pixel right or below).
    pub fn new(
        image_width: u32,
        image_height: u32,
        input_width: usize,
        input_height: usize,
        fit: Fit,
    ) -> Self {
        let (w, h) = (image_width.max(1), image_height.max(1));
        let (content_w, content_h) = content_size(w, h, input_width, input_height, fit);
        Self {
            image_width,
            image_height,
            input_width,
            input_height,
            scale_x: content_w as f32 / w as f32,
            scale_y: content_h as f32 / h as f32,
            offset_x: ((input_width - content_w) / 2) as f32,
            offset_y: ((input_height - content_h) / 2) as f32,
        }
    }

    /// The image's size in model-input pixels.
    pub fn content_size(&self) -> (usize, usize) {
        content_size(
            self.image_width.max(1),
            self.image_height.max(1),
            self.input_width,
            self.input_height,
            Fit::Letterbox,
        )
    }

    /// Maps a point given as a fraction of the model input (decoders' normalised
    /// coordinates) to image pixels.
    pub fn to_image(&self, nx: f32, ny: f32) -> (f32, f32) {
        (
            (nx * self.input_width as f32 - self.offset_x) / self.scale_x,
            (ny * self.input_height as f32 - self.offset_y) / self.scale_y,
        )
    }

    /// Maps a length along x given as a fraction of the model input width to image pixels.
    pub fn width_to_image(&self, nw: f32) -> f32 {
        nw * self.input_width as f32 / self.scale_x
    }

    /// Maps a length along y given as a fraction of the model input height to image pixels.
    pub fn height_to_image(&self, nh: f32) -> f32 {
        nh * self.input_height as f32 / self.scale_y
    }
}

fn content_size(w: u32, h: u32, input_w: usize, input_h: usize, fit: Fit) -> (usize, usize) {
    match fit {
        Fit::Stretch => (input_w, input_h),
        Fit::Letterbox => {
            let s = (input_w as f64 / f64::from(w)).min(input_h as f64 / f64::from(h));
            let side =
                |v: u32, max: usize| ((f64::from(v) * s).round() as usize).clamp(1, max.max(1));
            (side(w, input_w), side(h, input_h))
        }
    }
}

/// Builds the input tensor for `image` and says where the image landed in it.
pub fn to_tensor(image: &RgbImage, pre: &Preprocess) -> (Tensor, Placement) {
    let spec = pre.input;
    let (w, h) = (spec.width, spec.height);
    let place = Placement::new(image.width(), image.height(), w, h, pre.fit);
    let (cw, ch) = match pre.fit {
        Fit::Stretch => (w, h),
        Fit::Letterbox => place.content_size(),
    };
    let (ox, oy) = (place.offset_x as usize, place.offset_y as usize);
    let content = resize(image, cw as u32, ch as u32, pre.filter);
    let (lo, hi) = pre.range;
    // Per-byte lookup: `lo + v * (hi - lo) / 255` computed once, in the order the references
    // use (`v / 127.5 - 1`, `v / 255`).
    let span = hi - lo;
    let lut: Vec<f32> = (0..=255u8)
        .map(|v| lo + f32::from(v) / (255.0 / span))
        .collect();
    let value = |v: u8| lut.get(usize::from(v)).copied().unwrap_or(lo);
    let mut data = vec![pre.pad; w * h * 3];
    let plane = w * h;
    for (y, row) in content.as_raw().chunks_exact(cw * 3).enumerate() {
        let y = y + oy;
        match spec.layout {
            Layout::Nhwc => {
                let start = (y * w + ox) * 3;
                if let Some(dst) = data.get_mut(start..start + cw * 3) {
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = value(v);
                    }
                }
            }
            Layout::Nchw => {
                for (x, px) in row.chunks_exact(3).enumerate() {
                    for (c, &v) in px.iter().enumerate() {
                        if let Some(d) = data.get_mut(c * plane + y * w + x + ox) {
                            *d = value(v);
                        }
                    }
                }
            }
        }
    }
    (
        Tensor {
            shape: spec.shape(),
            data,
        },
        place,
    )
}

/// Samples a single-channel `map_width x map_height` map (row-major) bilinearly at every pixel
/// of a `width x height` grid that the map covers through `place` (the map spans the model
/// input), calling `f(x, y, value)` row by row. Pixels whose sample falls in the letterbox
/// padding get the nearest edge value.
pub fn sample_map(
    map: &[f32],
    map_width: usize,
    map_height: usize,
    place: &Placement,
    mut f: impl FnMut(u32, u32, f32),
) {
    // Model-input coordinate of image coordinate u: u * scale + offset, and the map may have
    // another resolution than the model input.
    let sx = map_width as f32 / place.input_width.max(1) as f32;
    let sy = map_height as f32 / place.input_height.max(1) as f32;
    // taps() maps destination → source with d = s * scale + offset; here the destination is
    // the image and the source the map: image u = (map m / s - offset) / scale.
    // The map samples the image covers (letterbox padding excluded).
    let span = |offset: f32, scale: f32, size: u32, s: f32, n: usize| {
        let lo = (offset * s).round().max(0.0) as usize;
        let hi = ((offset + size as f32 * scale) * s).round().max(0.0) as usize;
        (lo.min(n), hi.min(n).max(lo + 1))
    };
    let xs = taps(
        map_width,
        place.image_width as usize,
        1.0 / (place.scale_x * sx),
        -place.offset_x / place.scale_x,
        span(
            place.offset_x,
            place.scale_x,
            place.image_width,
            sx,
            map_width,
        ),
    );
    let ys = taps(
        map_height,
        place.image_height as usize,
        1.0 / (place.scale_y * sy),
        -place.offset_y / place.scale_y,
        span(
            place.offset_y,
            place.scale_y,
            place.image_height,
            sy,
            map_height,
        ),
    );
    let at = |x: usize, y: usize| map.get(y * map_width + x).copied().unwrap_or(0.0);
    for (y, ty) in ys.iter().enumerate() {
        for (x, tx) in xs.iter().enumerate() {
            let top = at(tx.i0, ty.i0) + (at(tx.i1, ty.i0) - at(tx.i0, ty.i0)) * tx.w1;
            let bottom = at(tx.i0, ty.i1) + (at(tx.i1, ty.i1) - at(tx.i0, ty.i1)) * tx.w1;
            f(x as u32, y as u32, top + (bottom - top) * ty.w1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> RgbImage {
        let mut px = Vec::new();
        for y in 0..h {
            for x in 0..w {
                px.extend_from_slice(&f(x, y));
            }
        }
        RgbImage::from_raw(w, h, px).unwrap()
    }

    #[test]
    fn input_spec_from_shapes() {
        assert_eq!(
            InputSpec::from_shape(&[1, 128, 96, 3]),
            Some(InputSpec {
                width: 96,
                height: 128,
                layout: Layout::Nhwc
            })
        );
        assert_eq!(
            InputSpec::from_shape(&[0, 3, 224, 200]).map(|s| (s.width, s.layout)),
            Some((200, Layout::Nchw))
        );
        assert_eq!(InputSpec::from_shape(&[1, 128, 128, 1]), None);
        assert_eq!(InputSpec::from_shape(&[2, 128, 128, 3]), None);
        assert_eq!(InputSpec::from_shape(&[1, 100_000, 128, 3]), None);
        assert_eq!(InputSpec::from_shape(&[1, 128, 3]), None);
    }

    #[test]
    fn tensor_holds_the_pillow_resize() {
        let img = image(8, 4, |x, y| [x as u8 * 10, y as u8 * 50, 255]);
        let spec = InputSpec {
            width: 2,
            height: 1,
            layout: Layout::Nhwc,
        };
        let pre = Preprocess::stretch(spec, (0.0, 255.0)).with_filter(Filter::Bicubic);
        let (t, place) = to_tensor(&img, &pre);
        assert_eq!(t.shape, vec![1, 1, 2, 3]);
        let want: Vec<f32> = resize(&img, 2, 1, Filter::Bicubic)
            .as_raw()
            .iter()
            .map(|&v| f32::from(v))
            .collect();
        assert_eq!(t.data, want);
        assert_eq!(place.to_image(1.0, 1.0), (8.0, 4.0));
    }

    #[test]
    fn ranges_and_nchw() {
        let img = image(2, 2, |_, _| [0, 255, 51]);
        let spec = InputSpec {
            width: 2,
            height: 2,
            layout: Layout::Nchw,
        };
        let (t, _) = to_tensor(&img, &Preprocess::stretch(spec, (-1.0, 1.0)));
        assert_eq!(t.shape, vec![1, 3, 2, 2]);
        let expect = [-1.0, 1.0, 51.0 / 127.5 - 1.0];
        for (i, v) in t.data.iter().enumerate() {
            assert!((v - expect[i / 4]).abs() < 1e-6, "{i}: {v}");
        }
    }

    #[test]
    fn letterbox_pads_and_maps_back() {
        // 200x100 into 100x100: scale 0.5, 25 rows of padding above and below.
        let img = image(200, 100, |_, _| [255, 255, 255]);
        let spec = InputSpec {
            width: 100,
            height: 100,
            layout: Layout::Nhwc,
        };
        let (t, place) = to_tensor(&img, &Preprocess::letterbox(spec, (-1.0, 1.0)));
        assert_eq!(
            (place.scale_x, place.offset_x, place.offset_y),
            (0.5, 0.0, 25.0)
        );
        let px = |x: usize, y: usize| t.data[(y * 100 + x) * 3];
        assert_eq!(px(50, 24), -1.0);
        assert_eq!(px(50, 25), 1.0);
        assert_eq!(px(50, 74), 1.0);
        assert_eq!(px(50, 75), -1.0);
        // The centre of the input is the centre of the image; the top of the content is y=0.
        assert_eq!(place.to_image(0.5, 0.5), (100.0, 50.0));
        assert_eq!(place.to_image(0.0, 0.25), (0.0, 0.0));
        assert_eq!(place.to_image(1.0, 0.75), (200.0, 100.0));
        assert_eq!(place.width_to_image(0.5), 100.0);
        assert_eq!(place.height_to_image(0.5), 100.0);
    }

    #[test]
    fn letterbox_content_is_whole_pixels() {
        // 3x1 into 4x4: 4x1 content (rounded), one row of padding above, two below.
        let place = Placement::new(3, 1, 4, 4, Fit::Letterbox);
        assert_eq!(place.content_size(), (4, 1));
        assert_eq!((place.offset_x, place.offset_y), (0.0, 1.0));
        assert_eq!(place.to_image(0.5, 0.375), (1.5, 0.5));
        let img = image(3, 1, |_, _| [255, 255, 255]);
        let spec = InputSpec {
            width: 4,
            height: 4,
            layout: Layout::Nchw,
        };
        let (t, _) = to_tensor(&img, &Preprocess::letterbox(spec, (0.0, 1.0)));
        let column: Vec<f32> = (0..4).map(|y| t.data[16 + y * 4 + 2]).collect();
        assert_eq!(column, vec![0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn sample_map_follows_the_placement() {
        // A 4x4 map over a letterboxed 8x4 image (input 4x4: scale 0.5, 1 row of padding top
        // and bottom): map row 1 and 2 are the image; left half 0, right half 1.
        let place = Placement::new(8, 4, 4, 4, Fit::Letterbox);
        let map = [
            9.0, 9.0, 9.0, 9.0, //
            0.0, 0.0, 1.0, 1.0, //
            0.0, 0.0, 1.0, 1.0, //
            9.0, 9.0, 9.0, 9.0,
        ];
        let mut out = [f32::NAN; 32];
        sample_map(&map, 4, 4, &place, |x, y, v| out[(y * 8 + x) as usize] = v);
        // Image row 0 (centre 0.5) sits at model y 1.25 → map sample y 0.75, which would blend
        // in the padding row: the sample is clamped to the image's map rows instead.
        for y in 0..4 {
            let row = &out[y * 8..y * 8 + 8];
            assert_eq!(row[0], 0.0);
            assert_eq!(row[7], 1.0);
            assert!(row.iter().all(|v| (0.0..=1.0).contains(v)), "{row:?}");
        }
        // A map at twice the input resolution gives the same picture.
        let fine: Vec<f32> = (0..64)
            .map(|i| {
                let (x, y) = (i % 8, i / 8);
                if !(2..6).contains(&y) {
                    9.0
                } else if x < 4 {
                    0.0
                } else {
                    1.0
                }
            })
            .collect();
        let mut out2 = [f32::NAN; 32];
        sample_map(&fine, 8, 8, &place, |x, y, v| {
            out2[(y * 8 + x) as usize] = v
        });
        assert_eq!(out2[8], 0.0);
        assert_eq!(out2[15], 1.0);
        assert!(out2.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
