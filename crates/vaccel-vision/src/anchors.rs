//! SSD anchors as MediaPipe's `SsdAnchorsCalculator` generates them.

/// One anchor: centre and size as fractions of the model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    /// Centre x.
    pub x: f32,
    /// Centre y.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// The `SsdAnchorsCalculatorOptions` that matter for MediaPipe's detectors.
#[derive(Debug, Clone, PartialEq)]
pub struct AnchorOptions {
    /// Model input width in pixels.
    pub input_width: usize,
    /// Model input height in pixels.
    pub input_height: usize,
    /// Smallest anchor scale.
    pub min_scale: f32,
    /// Largest anchor scale.
    pub max_scale: f32,
    /// Anchor centre offset within a cell (0.5: the cell centre).
    pub offset_x: f32,
    /// Anchor centre offset within a cell (0.5: the cell centre).
    pub offset_y: f32,
    /// Stride of each layer; consecutive layers with equal strides share one grid.
    pub strides: Vec<usize>,
    /// Aspect ratios of each layer's anchors.
    pub aspect_ratios: Vec<f32>,
    /// Adds one anchor per layer of this aspect ratio at the scale between this layer's and
    /// the next (0: none).
    pub interpolated_scale_aspect_ratio: f32,
    /// All anchors 1 x 1 (the box regressors carry the size).
    pub fixed_anchor_size: bool,
}

impl AnchorOptions {
    /// `face_detection_short_range.tflite` (BlazeFace, 128x128): 896 anchors.
    pub fn face_short_range() -> Self {
        Self {
            input_width: 128,
            input_height: 128,
            min_scale: 0.1484375,
            max_scale: 0.75,
            offset_x: 0.5,
            offset_y: 0.5,
            strides: vec![8, 16, 16, 16],
            aspect_ratios: vec![1.0],
            interpolated_scale_aspect_ratio: 1.0,
            fixed_anchor_size: true,
        }
    }

    /// `pose_detection.tflite` (BlazePose detector, 224x224): 2254 anchors.
    pub fn pose_detection() -> Self {
        Self {
            input_width: 224,
            input_height: 224,
            min_scale: 0.1484375,
            max_scale: 0.75,
            offset_x: 0.5,
            offset_y: 0.5,
            strides: vec![8, 16, 32, 32, 32],
            aspect_ratios: vec![1.0],
            interpolated_scale_aspect_ratio: 1.0,
            fixed_anchor_size: true,
        }
    }

    /// How many anchors [`generate`] yields, without generating them.
    pub fn count(&self) -> usize {
        let per_layer =
            self.aspect_ratios.len() + usize::from(self.interpolated_scale_aspect_ratio > 0.0);
        let mut total = 0;
        let mut layer = 0;
        while let Some(&stride) = self.strides.get(layer) {
            let same = self
                .strides
                .iter()
                .skip(layer)
                .take_while(|&&s| s == stride)
                .count();
            let (fw, fh) = self.grid(stride);
            total += fw * fh * per_layer * same;
            layer += same;
        }
        total
    }

    fn grid(&self, stride: usize) -> (usize, usize) {
        let stride = stride.max(1);
        (
            self.input_width.div_ceil(stride),
            self.input_height.div_ceil(stride),
        )
    }

    fn scale(&self, layer: usize) -> f32 {
        let n = self.strides.len();
        if n <= 1 {
            (self.min_scale + self.max_scale) / 2.0
        } else {
            self.min_scale + (self.max_scale - self.min_scale) * layer as f32 / (n - 1) as f32
        }
    }
}

/// Generates the anchors in the order the model's outputs use: per group of equal-stride
/// layers, rows, then columns, then the anchors of each cell.
pub fn generate(options: &AnchorOptions) -> Vec<Anchor> {
    let mut anchors = Vec::with_capacity(options.count());
    let strides = &options.strides;
    let mut layer = 0;
    while let Some(&stride) = strides.get(layer) {
        // (width, height) of each anchor of a cell, over all layers sharing this stride.
        let mut sizes = Vec::new();
        let mut last = layer;
        while strides.get(last) == Some(&stride) {
            let scale = options.scale(last);
            for &ratio in &options.aspect_ratios {
                let r = ratio.max(f32::MIN_POSITIVE).sqrt();
                sizes.push((scale * r, scale / r));
            }
            if options.interpolated_scale_aspect_ratio > 0.0 {
                let next = if last + 1 == strides.len() {
                    1.0
                } else {
                    options.scale(last + 1)
                };
                let s = (scale * next).sqrt();
                let r = options.interpolated_scale_aspect_ratio.sqrt();
                sizes.push((s * r, s / r));
            }
            last += 1;
        }
        let (fw, fh) = options.grid(stride);
        for y in 0..fh {
            for x in 0..fw {
                for &(w, h) in &sizes {
                    let (w, h) = if options.fixed_anchor_size {
                        (1.0, 1.0)
                    } else {
                        (w, h)
                    };
                    anchors.push(Anchor {
                        x: (x as f32 + options.offset_x) / fw as f32,
                        y: (y as f32 + options.offset_y) / fh as f32,
                        w,
                        h,
                    });
                }
            }
        }
        layer = last;
    }
    anchors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_short_range_has_896() {
        let opts = AnchorOptions::face_short_range();
        let a = generate(&opts);
        assert_eq!(a.len(), 896);
        assert_eq!(opts.count(), 896);
        // 16x16 grid, 2 per cell, then 8x8 grid, 6 per cell.
        assert_eq!(
            a[0],
            Anchor {
                x: 0.5 / 16.0,
                y: 0.5 / 16.0,
                w: 1.0,
                h: 1.0
            }
        );
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2].x, 1.5 / 16.0);
        assert_eq!(a[32].y, 1.5 / 16.0);
        assert_eq!((a[512].x, a[512].y), (0.5 / 8.0, 0.5 / 8.0));
        assert_eq!(a[517], a[512]);
        assert_eq!(a[518].x, 1.5 / 8.0);
        assert_eq!((a[895].x, a[895].y), (7.5 / 8.0, 7.5 / 8.0));
    }

    #[test]
    fn pose_detection_has_2254() {
        let opts = AnchorOptions::pose_detection();
        let a = generate(&opts);
        assert_eq!(a.len(), 2254);
        assert_eq!(opts.count(), 2254);
        // 28x28x2, 14x14x2, 7x7x6.
        assert_eq!(a[1567].x, 27.5 / 28.0);
        assert_eq!(a[1568].x, 0.5 / 14.0);
        assert_eq!(a[1960].x, 0.5 / 7.0);
        assert_eq!((a[2253].x, a[2253].y), (6.5 / 7.0, 6.5 / 7.0));
    }

    #[test]
    fn variable_size_anchors_follow_the_scales() {
        let opts = AnchorOptions {
            fixed_anchor_size: false,
            strides: vec![8, 16],
            aspect_ratios: vec![1.0, 4.0],
            ..AnchorOptions::face_short_range()
        };
        let a = generate(&opts);
        assert_eq!(a.len(), 16 * 16 * 3 + 8 * 8 * 3);
        // Layer 0: scale 0.1484375; ratio 4: w = 2s, h = s/2; interpolated sqrt(s*0.75).
        let s = 0.1484375f32;
        assert!((a[0].w - s).abs() < 1e-6);
        assert!((a[1].w - 2.0 * s).abs() < 1e-6 && (a[1].h - s / 2.0).abs() < 1e-6);
        assert!((a[2].w - (s * 0.75).sqrt()).abs() < 1e-6);
        // Last layer: interpolated with 1.0.
        assert!((a[768 + 2].w - 0.75f32.sqrt()).abs() < 1e-6);
    }
}
