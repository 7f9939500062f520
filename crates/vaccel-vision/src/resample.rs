//! Antialiased resizing of 8-bit RGB images with the arithmetic of Pillow's `Image.resize`
//! (the reference preprocessing of the fixtures and of many model cards): a separable
//! convolution whose filter widens with the downscale factor, 22-bit fixed-point weights,
//! the horizontal pass first with an 8-bit intermediate, then the vertical pass.

use crate::rgb::RgbImage;

/// The resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Triangle filter, support 1 (Pillow `BILINEAR`).
    Bilinear,
    /// Keys cubic with a = -0.5, support 2 (Pillow `BICUBIC`).
    Bicubic,
    /// Bilinear interpolation at each output pixel centre, without antialiasing (OpenCV's
    /// `INTER_LINEAR`, MediaPipe's `ImageToTensorCalculator`): 4 source pixels an output
    /// pixel whatever the scale, so much faster than the others on large downscales, at the
    /// price of aliasing.
    PointBilinear,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear | Filter::PointBilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear | Filter::PointBilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point weights of one axis: output sample `i` is the sum of `weights[i * ksize..][..n]`
/// times the source samples `first..first + n`, where `(first, n) = spans[i]`.
#[derive(Debug)]
struct Weights {
    ksize: usize,
    spans: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

impl Weights {
    fn new(in_size: usize, out_size: usize, filter: Filter) -> Self {
        let scale = in_size as f64 / out_size.max(1) as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut spans = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut float = vec![0f64; ksize];
        let one = f64::from(1u32 << PRECISION_BITS);
        for (i, row) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (i as f64 + 0.5) * scale;
            // `as` truncates towards zero, like the C cast it mirrors.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let n = end.saturating_sub(first).min(ksize);
            let mut total = 0.0;
            for (x, w) in float.iter_mut().enumerate().take(n) {
                *w = filter.weight((x as f64 + first as f64 - center + 0.5) / filterscale);
                total += *w;
            }
            for (slot, &w) in row.iter_mut().zip(&float).take(n) {
                let w = if total != 0.0 { w / total } else { w };
                // Rounded half away from zero to 22 bits, as Pillow does for 8-bit images.
                *slot = if w < 0.0 {
                    (w * one - 0.5) as i32
                } else {
                    (w * one + 0.5) as i32
                };
            }
            spans.push((first, n));
        }
        Self {
            ksize,
            spans,
            weights,
        }
    }

    fn of(&self, i: usize) -> (usize, &[i32]) {
        let (first, n) = self.spans.get(i).copied().unwrap_or((0, 0));
        let start = i * self.ksize;
        (
            first,
            self.weights.get(start..start + n).unwrap_or_default(),
        )
    }
}

/// Accumulators start at one half, so that the final shift rounds.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Two 8-bit samples in one i64: `lo + hi * 2^32`. Multiplying by a weight `k` and summing
/// gives `sum_lo + sum_hi * 2^32` where each sum is what one row alone would give; since
/// `|sum| < 255 * 1.3 * 2^22 < 2^31`, [`split`] recovers both exactly, and the products
/// (`< 2^8 * 2^32 * 2^23`) never overflow (the sums may wrap; the arithmetic is modular and
/// the true total fits).
fn join(lo: u8, hi: u8) -> i64 {
    i64::from(lo) | (i64::from(hi) << 32)
}

fn join_sums(lo: i32, hi: i32) -> i64 {
    i64::from(lo).wrapping_add(i64::from(hi) << 32)
}

/// Inverse of [`join_sums`] for sums under 2^31 in magnitude.
fn split(v: i64) -> (i32, i32) {
    let lo = v as i32;
    let hi = (v.wrapping_sub(i64::from(lo)) >> 32) as i32;
    (lo, hi)
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `image` to `width x height` (each at least 1). [`Filter::Bilinear`] and
/// [`Filter::Bicubic`] give exactly what Pillow's `Image.resize` gives for RGB images (same
/// weights, same 22-bit fixed point, horizontal pass first into an 8-bit intermediate, then
/// the vertical pass); [`Filter::PointBilinear`] what OpenCV's `INTER_LINEAR` gives, up to
/// rounding.
pub fn resize(image: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (width, height) = (width.max(1), height.max(1));
    let (iw, ih) = (image.width() as usize, image.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    if iw == 0 || ih == 0 {
        return RgbImage::new(width, height);
    }
    if filter == Filter::PointBilinear {
        return resize_point(image, width, height);
    }
    let vertical = Weights::new(ih, oh, filter);

    // Horizontal pass, over the source rows the vertical pass reads.
    let (row0, row_end) = if oh == ih {
        (0, ih)
    } else {
        let first = vertical.spans.first().map_or(0, |s| s.0);
        let end = vertical.spans.last().map_or(ih, |s| s.0 + s.1);
        (first, end.max(first))
    };
    let stretched;
    let (src, src_row0): (&[u8], usize) = if ow == iw {
        (image.as_raw(), 0)
    } else {
        let horizontal = Weights::new(iw, ow, filter);
        let mut out = vec![0u8; ow * 3 * (row_end - row0)];
        // Two rows at a time: the samples of one column in rows y and y + 1 share every
        // weight, so each channel of the pair travels in one i64 (row y in the low 32 bits,
        // row y + 1 above) and one multiply serves both rows. See `join` and `split`.
        let mut pairs = vec![[0i64; 3]; iw];
        let blank = vec![0u8; iw * 3];
        for (y, dst) in (row0..row_end).step_by(2).zip(out.chunks_mut(ow * 3 * 2)) {
            let top = image.row(y as u32);
            let bottom = if y + 1 < row_end {
                image.row(y as u32 + 1)
            } else {
                &blank
            };
            for ((p, a), b) in pairs
                .iter_mut()
                .zip(top.chunks_exact(3))
                .zip(bottom.chunks_exact(3))
            {
                if let (&[ar, ag, ab], &[br, bg, bb]) = (a, b) {
                    *p = [join(ar, br), join(ag, bg), join(ab, bb)];
                }
            }
            // An odd last row leaves `second` empty.
            let (first_row, second_row) = dst.split_at_mut((ow * 3).min(dst.len()));
            for (x, px) in first_row.chunks_exact_mut(3).enumerate() {
                let (first, ks) = horizontal.of(x);
                let taps = pairs.get(first..first + ks.len()).unwrap_or_default();
                let mut acc = [join_sums(HALF, HALF); 3];
                for (p, &k) in taps.iter().zip(ks) {
                    let k = i64::from(k);
                    for (a, &v) in acc.iter_mut().zip(p) {
                        *a = a.wrapping_add(v.wrapping_mul(k));
                    }
                }
                for (c, (d, &a)) in px.iter_mut().zip(&acc).enumerate() {
                    let (lo, hi) = split(a);
                    *d = clip8(lo);
                    if let Some(d) = second_row.get_mut(x * 3 + c) {
                        *d = clip8(hi);
                    }
                }
            }
        }
        stretched = out;
        (&stretched, row0)
    };

    let stride = ow * 3;
    if oh == ih {
        let pixels = src.get(..stride * oh).unwrap_or_default().to_vec();
        return RgbImage::from_raw(width, height, pixels)
            .unwrap_or_else(|_| RgbImage::new(width, height));
    }
    // Vertical pass: whole rows at a time, which vectorises across the row.
    let mut pixels = vec![0u8; stride * oh];
    let mut acc = vec![0i32; stride];
    for (y, dst) in pixels.chunks_exact_mut(stride).enumerate() {
        let (first, ks) = vertical.of(y);
        acc.fill(HALF);
        for (t, &k) in ks.iter().enumerate() {
            let r = (first + t).saturating_sub(src_row0);
            let row = src.get(r * stride..(r + 1) * stride).unwrap_or_default();
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += i32::from(v) * k;
            }
        }
        for (d, &a) in dst.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    RgbImage::from_raw(width, height, pixels).unwrap_or_else(|_| RgbImage::new(width, height))
}

/// One output sample along an axis: blend of source samples `i0` and `i1`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tap {
    pub(crate) i0: usize,
    pub(crate) i1: usize,
    pub(crate) w1: f32,
}

/// Bilinear taps along one axis for `dst` samples from `src` samples, where destination
/// coordinate `d = s * scale + offset` (continuous, pixel edges at integers). Sample centres at
/// half-integers, like OpenCV's `INTER_LINEAR` and TensorFlow's `half_pixel_centers`; no
/// antialiasing (upsampling masks needs none). Only source samples in `[valid.0, valid.1)` are
/// read; edge samples repeat beyond.
pub(crate) fn taps(
    src: usize,
    dst: usize,
    scale: f32,
    offset: f32,
    valid: (usize, usize),
) -> Vec<Tap> {
    let first = valid.0.min(src.saturating_sub(1));
    let last = valid.1.min(src).saturating_sub(1).max(first);
    (0..dst)
        .map(|d| {
            let s = (d as f32 + 0.5 - offset) / scale - 0.5;
            let s = s.clamp(first as f32, last as f32);
            let i0 = (s.floor() as usize).clamp(first, last);
            let i1 = (i0 + 1).min(last);
            Tap {
                i0,
                i1,
                w1: s - i0 as f32,
            }
        })
        .collect()
}

fn resize_point(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (iw, ih) = (image.width() as usize, image.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    let xs = taps(iw, ow, ow as f32 / iw as f32, 0.0, (0, iw));
    let ys = taps(ih, oh, oh as f32 / ih as f32, 0.0, (0, ih));
    let mut pixels = vec![0u8; ow * oh * 3];
    let pixel = |row: &[u8], i: usize| -> [f32; 3] {
        match row.get(i * 3..i * 3 + 3) {
            Some(&[r, g, b]) => [f32::from(r), f32::from(g), f32::from(b)],
            _ => [0.0; 3],
        }
    };
    for (dst, ty) in pixels.chunks_exact_mut(ow * 3).zip(&ys) {
        let (r0, r1) = (image.row(ty.i0 as u32), image.row(ty.i1 as u32));
        let wy = ty.w1;
        for (px, tx) in dst.chunks_exact_mut(3).zip(&xs) {
            let (a0, b0) = (pixel(r0, tx.i0), pixel(r0, tx.i1));
            let (a1, b1) = (pixel(r1, tx.i0), pixel(r1, tx.i1));
            let wx = tx.w1;
            let corners = a0.iter().zip(b0).zip(a1.iter().zip(b1));
            for (d, ((&a0, b0), (&a1, b1))) in px.iter_mut().zip(corners) {
                let top = a0 + (b0 - a0) * wx;
                let bottom = a1 + (b1 - a1) * wx;
                // Not negative: `+ 0.5` and truncation round.
                *d = (top + (bottom - top) * wy + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
    RgbImage::from_raw(width, height, pixels).unwrap_or_else(|_| RgbImage::new(width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 7x5 test picture of the Pillow vectors below: `(x * 37 + y * 11) % 256`,
    /// `(x * x * 13 + y * 7) % 256`, `(x ^ y) * 29 % 256`.
    fn picture() -> RgbImage {
        let mut px = Vec::new();
        for y in 0..5u32 {
            for x in 0..7u32 {
                px.push(((x * 37 + y * 11) % 256) as u8);
                px.push(((x * x * 13 + y * 7) % 256) as u8);
                px.push(((x ^ y) * 29 % 256) as u8);
            }
        }
        RgbImage::from_raw(7, 5, px).unwrap()
    }

    // Expected bytes from Pillow 10.4.0: `Image.frombytes("RGB", (7, 5), picture)
    // .resize(size, filter).tobytes()`.
    const BILINEAR_3X2: [u8; 18] = [
        43, 24, 36, 122, 121, 81, 201, 157, 155, 65, 38, 85, 144, 135, 91, 194, 171, 125,
    ];
    const BICUBIC_3X2: [u8; 18] = [
        36, 16, 28, 120, 124, 80, 207, 160, 163, 62, 32, 87, 148, 140, 91, 196, 176, 123,
    ];
    const BILINEAR_11X9: [u8; 297] = [
        0, 0, 0, 17, 6, 13, 40, 17, 32, 64, 41, 50, 87, 76, 69, 111, 117, 87, 135, 175, 105, 158,
        170, 124, 182, 82, 142, 205, 147, 161, 222, 212, 174, 4, 2, 10, 21, 8, 14, 44, 19, 24, 68,
        43, 54, 91, 78, 71, 115, 119, 77, 139, 177, 108, 162, 172, 128, 186, 84, 134, 209, 149,
        162, 226, 214, 184, 10, 6, 26, 27, 12, 16, 50, 23, 11, 74, 47, 62, 97, 82, 75, 121, 123,
        61, 145, 181, 112, 168, 176, 136, 192, 88, 122, 215, 153, 163, 232, 218, 200, 16, 10, 42,
        33, 16, 40, 56, 27, 40, 80, 51, 46, 103, 86, 47, 127, 127, 45, 151, 185, 117, 174, 180,
        157, 198, 92, 155, 221, 157, 160, 238, 222, 164, 22, 14, 58, 39, 20, 71, 62, 31, 79, 86,
        55, 24, 109, 90, 11, 133, 131, 29, 157, 189, 121, 180, 184, 182, 204, 96, 200, 227, 161,
        156, 244, 226, 116, 28, 18, 74, 45, 24, 73, 68, 35, 66, 92, 59, 31, 115, 94, 15, 139, 135,
        13, 163, 193, 125, 186, 188, 189, 210, 100, 187, 233, 165, 157, 250, 230, 132, 34, 22, 90,
        51, 28, 80, 74, 39, 65, 98, 63, 51, 121, 98, 37, 145, 139, 23, 169, 197, 123, 192, 192,
        174, 216, 104, 160, 224, 169, 145, 228, 234, 135, 40, 26, 106, 57, 32, 111, 80, 43, 117,
        104, 67, 123, 127, 102, 129, 151, 143, 135, 175, 201, 92, 198, 196, 70, 222, 108, 76, 153,
        173, 83, 92, 238, 87, 44, 28, 116, 61, 34, 129, 84, 45, 148, 108, 69, 166, 131, 104, 185,
        155, 145, 203, 179, 203, 74, 202, 198, 8, 226, 110, 26, 110, 175, 45, 10, 240, 58,
    ];
    const BICUBIC_4X8: [u8; 96] = [
        14, 2, 12, 76, 62, 60, 144, 157, 114, 206, 149, 162, 19, 5, 11, 81, 65, 62, 149, 160, 113,
        211, 152, 164, 27, 10, 18, 89, 70, 58, 157, 165, 115, 219, 157, 167, 34, 15, 56, 96, 75,
        29, 164, 170, 134, 226, 162, 163, 40, 19, 74, 102, 79, 8, 170, 174, 146, 237, 166, 166, 47,
        24, 73, 109, 84, 12, 177, 179, 143, 243, 171, 168, 55, 29, 107, 117, 89, 119, 191, 184, 93,
        162, 176, 88, 60, 32, 132, 122, 92, 198, 201, 187, 56, 101, 179, 29,
    ];

    #[test]
    fn matches_pillow() {
        let img = picture();
        assert_eq!(resize(&img, 3, 2, Filter::Bilinear).as_raw(), &BILINEAR_3X2);
        assert_eq!(resize(&img, 3, 2, Filter::Bicubic).as_raw(), &BICUBIC_3X2);
        assert_eq!(
            resize(&img, 11, 9, Filter::Bilinear).as_raw(),
            &BILINEAR_11X9
        );
        assert_eq!(resize(&img, 4, 8, Filter::Bicubic).as_raw(), &BICUBIC_4X8);
        assert_eq!(resize(&img, 7, 5, Filter::Bicubic), img);
    }

    #[test]
    fn point_bilinear_samples_at_pixel_centres() {
        // 8 -> 2: output d samples source 4d + 1.5, the mean of pixels 4d + 1 and 4d + 2.
        let img =
            RgbImage::from_raw(8, 1, (0..8u8).flat_map(|x| [x * 10, 0, 255]).collect()).unwrap();
        let out = resize(&img, 2, 1, Filter::PointBilinear);
        assert_eq!(out.as_raw(), &[15, 0, 255, 55, 0, 255]);
        // 2 -> 4: centres at -0.25, 0.25, 0.75, 1.25 (edges clamp).
        let img = RgbImage::from_raw(2, 1, vec![0, 0, 0, 100, 100, 100]).unwrap();
        let out = resize(&img, 4, 1, Filter::PointBilinear);
        let r: Vec<u8> = out.as_raw().chunks(3).map(|p| p[0]).collect();
        assert_eq!(r, vec![0, 25, 75, 100]);
    }

    #[test]
    fn paired_sums_split_exactly() {
        for (lo, hi) in [
            (0, 0),
            (-5, 7),
            (i32::MAX, i32::MIN),
            (i32::MIN, -1),
            (123, i32::MAX),
        ] {
            assert_eq!(split(join_sums(lo, hi)), (lo, hi));
        }
        // A negative weight on the low row borrows from the high row; split undoes it.
        let k = -3_000_000i64;
        let v = join(200, 17).wrapping_mul(k);
        assert_eq!(split(v), ((200 * k) as i32, (17 * k) as i32));
    }

    /// A 64x48 noise picture (glibc-style LCG) resized to 23x17 (bilinear, bicubic) and
    /// 150x101 (bicubic) by Pillow 10.4.0, concatenated in `tests/data/pillow-10.4.0-resize.bin`:
    ///
    /// ```text
    /// x = 1; buf = bytearray()
    /// for _ in range(64 * 48 * 3):
    ///     x = (x * 1103515245 + 12345) % 2**31; buf.append((x >> 16) & 0xff)
    /// im = Image.frombytes("RGB", (64, 48), bytes(buf))
    /// out = b"".join(im.resize(s, f).tobytes() for s, f in
    ///     [((23, 17), Image.BILINEAR), ((23, 17), Image.BICUBIC), ((150, 101), Image.BICUBIC)])
    /// ```
    #[test]
    fn matches_pillow_on_noise() {
        let expected = include_bytes!("../tests/data/pillow-10.4.0-resize.bin");
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..64 * 48 * 3)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345) & 0x7fff_ffff;
                (x >> 16) as u8
            })
            .collect();
        let img = RgbImage::from_raw(64, 48, noise).unwrap();
        let mut got = resize(&img, 23, 17, Filter::Bilinear).into_raw();
        got.extend(resize(&img, 23, 17, Filter::Bicubic).into_raw());
        got.extend(resize(&img, 150, 101, Filter::Bicubic).into_raw());
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "differs from Pillow");
    }

    /// Rows are resampled in pairs; an odd row count leaves the last row without a partner.
    #[test]
    fn rows_resample_independently() {
        let img = picture();
        let out = resize(&img, 3, 5, Filter::Bicubic);
        let one_by_one = (0..5)
            .map(|y| {
                let row = RgbImage::from_raw(7, 1, img.row(y).to_vec()).unwrap();
                resize(&row, 3, 1, Filter::Bicubic).into_raw()
            })
            .collect::<Vec<_>>()
            .concat();
        assert_eq!(out.as_raw(), one_by_one.as_slice());
    }

    #[test]
    fn flat_colour_stays_flat() {
        let img = RgbImage::from_raw(9, 6, [10u8, 200, 77].repeat(54)).unwrap();
        for (w, h) in [(1, 1), (4, 3), (20, 13), (9, 2), (3, 6)] {
            for f in [Filter::Bilinear, Filter::Bicubic, Filter::PointBilinear] {
                let out = resize(&img, w, h, f);
                assert!(
                    out.as_raw().chunks(3).all(|p| p == [10, 200, 77]),
                    "{w}x{h} {f:?}"
                );
            }
        }
    }
}
