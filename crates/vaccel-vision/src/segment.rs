//! A per-pixel person mask: coverage and the result image.

use crate::engine::TensorView;
use crate::error::VisionError;
use crate::model::map_size;
use crate::preprocess::{Placement, sample_map};
use crate::rgb::RgbImage;

/// A one-channel probability map over the model input, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// Width in samples.
    pub width: usize,
    /// Height in samples.
    pub height: usize,
    /// `width * height` probabilities in `[0, 1]`.
    pub data: Vec<f32>,
}

impl Mask {
    /// Reads a `[1, H, W, 1]` / `[1, 1, H, W]` / `[1, H, W]` output. Values outside `[0, 1]`
    /// are taken for logits and passed through a sigmoid; NaN counts as 0.
    pub fn from_output(output: TensorView<'_>) -> Result<Self, VisionError> {
        let (height, width) = map_size(output.shape).ok_or_else(|| {
            VisionError::ModelOutput(format!("{:?} is not a one-channel map", output.shape))
        })?;
        if output.data.len() != width * height {
            return Err(VisionError::ModelOutput(format!(
                "a {width}x{height} map needs {} values, got {}",
                width * height,
                output.data.len()
            )));
        }
        let logits = output
            .data
            .iter()
            .any(|v| !(0.0..=1.0).contains(v) && !v.is_nan());
        let data = output
            .data
            .iter()
            .map(|&v| {
                let p = if logits { 1.0 / (1.0 + (-v).exp()) } else { v };
                if p.is_nan() { 0.0 } else { p }
            })
            .collect();
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Fraction of the mask's own samples over 0.5.
    pub fn coverage(&self) -> f32 {
        let on = self.data.iter().filter(|&&p| p > 0.5).count();
        on as f32 / self.data.len().max(1) as f32
    }
}

/// Colour the background is tinted towards.
const BACKGROUND_TINT: [f32; 3] = [20.0, 40.0, 90.0];

/// Renders the mask over `image` (which `place` put into the model input): the person is kept
/// as is, the background darkened to 30% and tinted blue, blended by the probability. Returns
/// the image and the fraction of image pixels whose upsampled probability exceeds 0.5.
pub fn render(image: &RgbImage, mask: &Mask, place: &Placement) -> (RgbImage, f32) {
    let mut out = image.clone();
    let width = image.width() as usize;
    let mut on = 0u64;
    let pixels = out.as_raw_mut();
    sample_map(&mask.data, mask.width, mask.height, place, |x, y, p| {
        let p = p.clamp(0.0, 1.0);
        if p > 0.5 {
            on += 1;
        }
        let i = (y as usize * width + x as usize) * 3;
        if let Some(px) = pixels.get_mut(i..i + 3) {
            for (v, tint) in px.iter_mut().zip(BACKGROUND_TINT) {
                let person = f32::from(*v);
                let background = person * 0.3 + tint * 0.5;
                // `+ 0.5` and truncation round (the value is not negative); `round()` is a libm call.
                *v = (background + (person - background) * p + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    });
    let total = (u64::from(image.width()) * u64::from(image.height())).max(1);
    (out, on as f32 / total as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::Fit;

    #[test]
    fn reads_maps_and_logits() {
        let data = [0.0, 0.2, 0.9, 1.0];
        let m = Mask::from_output(TensorView {
            shape: &[1, 2, 2, 1],
            data: &data,
        })
        .unwrap();
        assert_eq!((m.width, m.height), (2, 2));
        assert_eq!(m.coverage(), 0.5);
        let logits = [-5.0, 5.0, 0.0, f32::NAN];
        let m = Mask::from_output(TensorView {
            shape: &[1, 1, 2, 2],
            data: &logits,
        })
        .unwrap();
        assert!(m.data[0] < 0.01 && m.data[1] > 0.99 && m.data[2] == 0.5 && m.data[3] == 0.0);
        assert!(
            Mask::from_output(TensorView {
                shape: &[1, 2, 2, 1],
                data: &[0.0; 3]
            })
            .is_err()
        );
        assert!(
            Mask::from_output(TensorView {
                shape: &[1, 4, 2, 2],
                data: &[0.0; 16]
            })
            .is_err()
        );
    }

    #[test]
    fn render_keeps_the_person_and_dims_the_rest() {
        let image = RgbImage::from_raw(4, 2, vec![200; 24]).unwrap();
        // Stretch: a 2x2 mask over a 4x2 image, left column person.
        let mask = Mask {
            width: 2,
            height: 2,
            data: vec![1.0, 0.0, 1.0, 0.0],
        };
        let place = Placement::new(4, 2, 2, 2, Fit::Stretch);
        let (out, coverage) = render(&image, &mask, &place);
        assert_eq!(coverage, 0.5);
        assert_eq!(out.pixel(0, 0), Some([200, 200, 200]));
        assert_eq!(out.pixel(3, 1), Some([70, 80, 105]));
    }
}
