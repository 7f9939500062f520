//! SSD box decoding and weighted non-maximum suppression, as MediaPipe's
//! `TensorsToDetectionsCalculator` and `NonMaxSuppressionCalculator` (algorithm `WEIGHTED`,
//! intersection over union) do them.

use crate::anchors::Anchor;
use crate::error::VisionError;

/// The `TensorsToDetectionsCalculatorOptions` and NMS options that matter for MediaPipe's
/// single-class detectors.
#[derive(Debug, Clone, PartialEq)]
pub struct SsdOptions {
    /// Values per box in the regressor tensor (4 box values + 2 per keypoint, maybe more).
    pub num_coords: usize,
    /// Index of the first box value.
    pub box_offset: usize,
    /// Index of the first keypoint value.
    pub keypoint_offset: usize,
    /// Keypoints per box (2 values each: x, y).
    pub num_keypoints: usize,
    /// Box values are `x, y, w, h` (MediaPipe's `reverse_output_order: true`) rather than
    /// `y, x, h, w`.
    pub xywh: bool,
    /// Divisor of the x centre and keypoint x offsets.
    pub x_scale: f32,
    /// Divisor of the y centre and keypoint y offsets.
    pub y_scale: f32,
    /// Divisor of the width.
    pub w_scale: f32,
    /// Divisor of the height.
    pub h_scale: f32,
    /// Raw scores are clamped to `[-c, c]` before the sigmoid (0: no clamp).
    pub score_clipping: f32,
    /// Raw scores are logits (apply a sigmoid).
    pub sigmoid_score: bool,
    /// Boxes scoring below this are dropped.
    pub min_score: f32,
    /// Boxes overlapping a better one by more than this IoU are merged into it.
    pub iou_threshold: f32,
    /// At most this many results.
    pub max_detections: usize,
}

impl SsdOptions {
    /// `face_detection_short_range.tflite`: 6 keypoints (eyes, nose tip, mouth, ear
    /// tragions), scales 128, score 0.5, IoU 0.3.
    pub fn face_short_range() -> Self {
        Self {
            num_coords: 16,
            box_offset: 0,
            keypoint_offset: 4,
            num_keypoints: 6,
            xywh: true,
            x_scale: 128.0,
            y_scale: 128.0,
            w_scale: 128.0,
            h_scale: 128.0,
            score_clipping: 100.0,
            sigmoid_score: true,
            min_score: 0.5,
            iou_threshold: 0.3,
            max_detections: 100,
        }
    }

    /// `pose_detection.tflite`: 4 keypoints (hip centre, full-body size/rotation point,
    /// shoulder centre, upper-body size/rotation point), scales 224, score 0.5, IoU 0.3.
    pub fn pose_detection() -> Self {
        Self {
            num_coords: 12,
            num_keypoints: 4,
            x_scale: 224.0,
            y_scale: 224.0,
            w_scale: 224.0,
            h_scale: 224.0,
            ..Self::face_short_range()
        }
    }
}

/// A decoded box in fractions of the model input.
#[derive(Debug, Clone, PartialEq)]
pub struct SsdBox {
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// Left edge.
    pub xmin: f32,
    /// Top edge.
    pub ymin: f32,
    /// Right edge.
    pub xmax: f32,
    /// Bottom edge.
    pub ymax: f32,
    /// Keypoints `(x, y)`.
    pub keypoints: Vec<(f32, f32)>,
}

impl SsdBox {
    fn area(&self) -> f32 {
        (self.xmax - self.xmin).max(0.0) * (self.ymax - self.ymin).max(0.0)
    }
}

/// Intersection over union of two boxes (0 when either is empty).
pub fn iou(a: &SsdBox, b: &SsdBox) -> f32 {
    let w = a.xmax.min(b.xmax) - a.xmin.max(b.xmin);
    let h = a.ymax.min(b.ymax) - a.ymin.max(b.ymin);
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let union = a.area() + b.area() - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Decodes every box scoring at least `min_score` from the regressors (`anchors.len() *
/// num_coords` values) and raw scores (`anchors.len()` values), in anchor order. Boxes with
/// non-finite or non-positive sizes are dropped.
pub fn decode(
    regressors: &[f32],
    scores: &[f32],
    anchors: &[Anchor],
    opts: &SsdOptions,
) -> Result<Vec<SsdBox>, VisionError> {
    let needed = opts.box_offset + 4;
    let kp_end = opts.keypoint_offset + 2 * opts.num_keypoints;
    if opts.num_coords < needed.max(kp_end) {
        return Err(VisionError::ModelOutput(format!(
            "{} coordinates per box cannot hold a box and {} keypoints",
            opts.num_coords, opts.num_keypoints
        )));
    }
    if regressors.len() != anchors.len() * opts.num_coords || scores.len() != anchors.len() {
        return Err(VisionError::ModelOutput(format!(
            "{} anchors need {} box values and {} scores, got {} and {}",
            anchors.len(),
            anchors.len() * opts.num_coords,
            anchors.len(),
            regressors.len(),
            scores.len()
        )));
    }
    let mut out = Vec::new();
    let rows = regressors.chunks_exact(opts.num_coords);
    for ((raw, &raw_score), anchor) in rows.zip(scores).zip(anchors) {
        let mut s = raw_score;
        if opts.score_clipping > 0.0 {
            s = s.clamp(-opts.score_clipping, opts.score_clipping);
        }
        let score = if opts.sigmoid_score { sigmoid(s) } else { s };
        // NaN scores are dropped too.
        if score.is_nan() || score < opts.min_score {
            continue;
        }
        let v = |i: usize| raw.get(i).copied().unwrap_or(f32::NAN);
        let b = opts.box_offset;
        let (cx, cy, w, h) = if opts.xywh {
            (v(b), v(b + 1), v(b + 2), v(b + 3))
        } else {
            (v(b + 1), v(b), v(b + 3), v(b + 2))
        };
        let cx = cx / opts.x_scale * anchor.w + anchor.x;
        let cy = cy / opts.y_scale * anchor.h + anchor.y;
        let w = w / opts.w_scale * anchor.w;
        let h = h / opts.h_scale * anchor.h;
        if !(cx.is_finite()
            && cy.is_finite()
            && w > 0.0
            && h > 0.0
            && w.is_finite()
            && h.is_finite())
        {
            continue;
        }
        let keypoints = (0..opts.num_keypoints)
            .map(|k| {
                let i = opts.keypoint_offset + 2 * k;
                let (kx, ky) = if opts.xywh {
                    (v(i), v(i + 1))
                } else {
                    (v(i + 1), v(i))
                };
                (
                    kx / opts.x_scale * anchor.w + anchor.x,
                    ky / opts.y_scale * anchor.h + anchor.y,
                )
            })
            .collect();
        out.push(SsdBox {
            score,
            xmin: cx - w / 2.0,
            ymin: cy - h / 2.0,
            xmax: cx + w / 2.0,
            ymax: cy + h / 2.0,
            keypoints,
        });
    }
    Ok(out)
}

/// Weighted non-maximum suppression: the best remaining box absorbs every remaining box that
/// overlaps it by more than `iou_threshold` (itself included); the merged box and keypoints are
/// the score-weighted means, its score the best box's. At most `max` results, best first.
pub fn weighted_nms(mut boxes: Vec<SsdBox>, iou_threshold: f32, max: usize) -> Vec<SsdBox> {
    // Stable sort: among equal scores the earlier anchor leads, as in MediaPipe.
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    let mut remaining = boxes;
    while out.len() < max {
        let Some(best) = remaining.first().cloned() else {
            break;
        };
        let mut candidates = Vec::new();
        let mut rest = Vec::new();
        for (i, b) in remaining.into_iter().enumerate() {
            // The best box always merges with itself, even if degenerate.
            if i == 0 || iou(&b, &best) > iou_threshold {
                candidates.push(b);
            } else {
                rest.push(b);
            }
        }
        remaining = rest;
        out.push(merge(&best, &candidates));
    }
    out
}

fn merge(best: &SsdBox, candidates: &[SsdBox]) -> SsdBox {
    let total: f32 = candidates.iter().map(|c| c.score).sum();
    if candidates.len() < 2 || total <= 0.0 {
        return best.clone();
    }
    let mean =
        |f: &dyn Fn(&SsdBox) -> f32| candidates.iter().map(|c| f(c) * c.score).sum::<f32>() / total;
    let keypoints = (0..best.keypoints.len())
        .map(|k| {
            let kx = |c: &SsdBox| c.keypoints.get(k).map_or(0.0, |p| p.0);
            let ky = |c: &SsdBox| c.keypoints.get(k).map_or(0.0, |p| p.1);
            (mean(&kx), mean(&ky))
        })
        .collect();
    SsdBox {
        score: best.score,
        xmin: mean(&|c| c.xmin),
        ymin: mean(&|c| c.ymin),
        xmax: mean(&|c| c.xmax),
        ymax: mean(&|c| c.ymax),
        keypoints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchors::{AnchorOptions, generate};

    fn bx(score: f32, xmin: f32, ymin: f32, xmax: f32, ymax: f32) -> SsdBox {
        SsdBox {
            score,
            xmin,
            ymin,
            xmax,
            ymax,
            keypoints: vec![(xmin, ymin)],
        }
    }

    #[test]
    fn iou_basics() {
        let a = bx(1.0, 0.0, 0.0, 1.0, 1.0);
        let b = bx(1.0, 0.5, 0.0, 1.5, 1.0);
        assert!((iou(&a, &b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&a, &bx(1.0, 2.0, 2.0, 3.0, 3.0)), 0.0);
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &bx(1.0, 0.5, 0.5, 0.5, 0.9)), 0.0);
    }

    #[test]
    fn weighted_nms_merges_overlaps_by_score() {
        let boxes = vec![
            bx(0.6, 0.1, 0.0, 1.1, 1.0),
            bx(0.9, 0.0, 0.0, 1.0, 1.0),
            bx(0.8, 5.0, 5.0, 6.0, 6.0),
            bx(0.3, 0.2, 0.0, 1.2, 1.0),
        ];
        let out = weighted_nms(boxes, 0.3, 10);
        assert_eq!(out.len(), 2);
        let m = &out[0];
        assert_eq!(m.score, 0.9);
        let total = 0.9 + 0.6 + 0.3;
        let xmin = (0.9 * 0.0 + 0.6 * 0.1 + 0.3 * 0.2) / total;
        assert!((m.xmin - xmin).abs() < 1e-6);
        assert!((m.xmax - (xmin + 1.0)).abs() < 1e-6);
        assert!((m.keypoints[0].0 - xmin).abs() < 1e-6);
        assert_eq!(out[1], bx(0.8, 5.0, 5.0, 6.0, 6.0));
        // Below the IoU threshold nothing merges; max caps the count.
        let apart = vec![bx(0.9, 0.0, 0.0, 1.0, 1.0), bx(0.8, 0.8, 0.0, 1.8, 1.0)];
        assert_eq!(weighted_nms(apart.clone(), 0.3, 10).len(), 2);
        assert_eq!(weighted_nms(apart, 0.3, 1).len(), 1);
        assert!(weighted_nms(vec![], 0.3, 10).is_empty());
    }

    #[test]
    fn decode_synthetic_face() {
        let anchors = generate(&AnchorOptions::face_short_range());
        let opts = SsdOptions::face_short_range();
        let mut reg = vec![0.0f32; 896 * 16];
        let mut scores = vec![-10.0f32; 896];
        // Anchor 600 (8x8 grid): (600 - 512) / 6 = cell 14 → x 6, y 1.
        let i = 600;
        let a = anchors[i];
        assert_eq!((a.x, a.y), (6.5 / 8.0, 1.5 / 8.0));
        scores[i] = 3.0;
        reg[i * 16..i * 16 + 4].copy_from_slice(&[12.8, -6.4, 32.0, 25.6]);
        reg[i * 16 + 4] = 1.28; // first keypoint x
        reg[i * 16 + 5] = 0.0;
        scores[5] = f32::NAN;
        scores[6] = 1e9; // clipped, box stays 0 wide: dropped
        let out = decode(&reg, &scores, &anchors, &opts).unwrap();
        assert_eq!(out.len(), 1);
        let b = &out[0];
        assert!((b.score - 1.0 / (1.0 + (-3.0f32).exp())).abs() < 1e-6);
        let (cx, cy) = (a.x + 0.1, a.y - 0.05);
        assert!((b.xmin - (cx - 0.125)).abs() < 1e-6);
        assert!((b.xmax - (cx + 0.125)).abs() < 1e-6);
        assert!((b.ymin - (cy - 0.1)).abs() < 1e-6);
        assert!((b.ymax - (cy + 0.1)).abs() < 1e-6);
        assert_eq!(b.keypoints.len(), 6);
        assert!((b.keypoints[0].0 - (a.x + 0.01)).abs() < 1e-6);
        assert_eq!(b.keypoints[1], (a.x, a.y));
        assert!(decode(&reg[1..], &scores, &anchors, &opts).is_err());
        assert!(decode(&reg, &scores[1..], &anchors, &opts).is_err());
    }
}
