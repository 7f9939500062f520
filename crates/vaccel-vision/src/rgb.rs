//! An 8-bit RGB image in memory, and the few drawing primitives result images need.

use crate::error::VisionError;

/// A packed 8-bit RGB image, rows top to bottom, 3 bytes per pixel.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl std::fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never dump pixel bytes into logs.
        f.debug_struct("RgbImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// An RGB colour.
pub type Rgb = [u8; 3];

impl RgbImage {
    /// Wraps `pixels` (`width * height * 3` bytes).
    pub fn from_raw(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self, VisionError> {
        let expected = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(3));
        if expected != Some(pixels.len()) {
            return Err(VisionError::PixelCount {
                width,
                height,
                expected: expected.unwrap_or(usize::MAX),
                actual: pixels.len(),
            });
        }
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// A black image (the caller keeps `width * height` reasonable).
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            pixels: vec![0; width as usize * height as usize * 3],
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The packed RGB bytes.
    pub fn as_raw(&self) -> &[u8] {
        &self.pixels
    }

    /// The packed RGB bytes, writable.
    pub fn as_raw_mut(&mut self) -> &mut [u8] {
        &mut self.pixels
    }

    /// Gives the packed RGB bytes back.
    pub fn into_raw(self) -> Vec<u8> {
        self.pixels
    }

    /// Row `y` as packed RGB bytes (empty past the bottom).
    pub fn row(&self, y: u32) -> &[u8] {
        let stride = self.width as usize * 3;
        let start = y as usize * stride;
        self.pixels.get(start..start + stride).unwrap_or_default()
    }

    /// The pixel at `(x, y)`, `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        match self.pixels.get(i..i + 3) {
            Some(&[r, g, b]) => Some([r, g, b]),
            _ => None,
        }
    }

    /// Sets the pixel at `(x, y)`; coordinates outside the image are ignored, so shapes may be
    /// drawn partly off-image.
    pub fn put(&mut self, x: i64, y: i64, color: Rgb) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        if let Some(px) = self.pixels.get_mut(i..i + 3) {
            px.copy_from_slice(&color);
        }
    }

    /// Fills the axis-aligned rectangle `[x0, x1) x [y0, y1)` (clipped).
    pub fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: Rgb) {
        let (x0, x1) = (x0.max(0), x1.min(i64::from(self.width)));
        let (y0, y1) = (y0.max(0), y1.min(i64::from(self.height)));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let stride = self.width as usize * 3;
        for y in y0..y1 {
            let start = y as usize * stride + x0 as usize * 3;
            let end = y as usize * stride + x1 as usize * 3;
            if let Some(row) = self.pixels.get_mut(start..end) {
                for px in row.chunks_exact_mut(3) {
                    px.copy_from_slice(&color);
                }
            }
        }
    }

    /// Draws the outline of the box with corners `(x0, y0)` and `(x1, y1)` (pixel units,
    /// inclusive), `thickness` pixels wide, inside the box.
    pub fn draw_box(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, thickness: u32, color: Rgb) {
        let (x0, y0) = (x0.round() as i64, y0.round() as i64);
        let (x1, y1) = (x1.round() as i64 + 1, y1.round() as i64 + 1);
        let t = i64::from(thickness.max(1));
        self.fill_rect(x0, y0, x1, y0 + t, color);
        self.fill_rect(x0, y1 - t, x1, y1, color);
        self.fill_rect(x0, y0, x0 + t, y1, color);
        self.fill_rect(x1 - t, y0, x1, y1, color);
    }

    /// Draws a filled disc of `radius` pixels centred on `(cx, cy)`.
    pub fn fill_disc(&mut self, cx: f32, cy: f32, radius: f32, color: Rgb) {
        if !(cx.is_finite() && cy.is_finite() && radius.is_finite()) {
            return;
        }
        let r = radius.max(0.5);
        let (x0, x1) = ((cx - r).floor() as i64, (cx + r).ceil() as i64);
        let (y0, y1) = ((cy - r).floor() as i64, (cy + r).ceil() as i64);
        let x0 = x0.max(0);
        let y0 = y0.max(0);
        let x1 = x1.min(i64::from(self.width));
        let y1 = y1.min(i64::from(self.height));
        for y in y0..y1 {
            for x in x0..x1 {
                let dx = x as f32 + 0.5 - cx;
                let dy = y as f32 + 0.5 - cy;
                if dx * dx + dy * dy <= r * r {
                    self.put(x, y, color);
                }
            }
        }
    }

    /// Draws the outline of the circle of `radius` around `(cx, cy)`, `thickness` pixels wide
    /// (only the part over the image costs time).
    pub fn draw_circle(&mut self, cx: f32, cy: f32, radius: f32, thickness: u32, color: Rgb) {
        if !(cx.is_finite() && cy.is_finite() && radius.is_finite()) || radius <= 0.0 {
            return;
        }
        // About one segment per 4 pixels of circumference, capped.
        let segments = ((radius * std::f32::consts::TAU / 4.0).ceil() as u32).clamp(8, 4096);
        let point = |i: u32| {
            let a = i as f32 / segments as f32 * std::f32::consts::TAU;
            (cx + radius * a.cos(), cy + radius * a.sin())
        };
        let (w, h) = (self.width as f32, self.height as f32);
        for i in 0..segments {
            let (xa, ya) = point(i);
            let (xb, yb) = point(i + 1);
            // A segment with both ends beyond the same edge cannot cross the image.
            let beyond = (xa < 0.0 && xb < 0.0)
                || (ya < 0.0 && yb < 0.0)
                || (xa > w && xb > w)
                || (ya > h && yb > h);
            if beyond {
                continue;
            }
            self.draw_line(xa, ya, xb, yb, thickness, color);
        }
    }

    /// Draws a line `thickness` pixels wide from `(xa, ya)` to `(xb, yb)`.
    pub fn draw_line(&mut self, xa: f32, ya: f32, xb: f32, yb: f32, thickness: u32, color: Rgb) {
        if ![xa, ya, xb, yb].iter().all(|v| v.is_finite()) {
            return;
        }
        // Clip the segment to the image plus the pen's reach (Liang-Barsky), so that far-off
        // endpoints cost nothing and keep the line's direction.
        let m = thickness as f32 + 1.0;
        let (x_min, x_max) = (-m, self.width as f32 + m);
        let (y_min, y_max) = (-m, self.height as f32 + m);
        let (dx, dy) = (xb - xa, yb - ya);
        let (mut t0, mut t1) = (0.0f32, 1.0f32);
        for (p, q) in [
            (-dx, xa - x_min),
            (dx, x_max - xa),
            (-dy, ya - y_min),
            (dy, y_max - ya),
        ] {
            if p == 0.0 {
                if q < 0.0 {
                    return;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        if t0 > t1 {
            return;
        }
        let (xa, ya, xb, yb) = (xa + t0 * dx, ya + t0 * dy, xa + t1 * dx, ya + t1 * dy);
        let steps = (xb - xa).abs().max((yb - ya).abs()).ceil().max(1.0) as u32;
        let half = thickness.max(1) as f32 / 2.0;
        for i in 0..=steps {
            let t = i as f32 / steps as f32;
            let x = xa + (xb - xa) * t;
            let y = ya + (yb - ya) * t;
            if half <= 0.5 {
                self.put(x.floor() as i64, y.floor() as i64, color);
            } else {
                self.fill_disc(x, y, half, color);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_raw_checks_length() {
        assert!(RgbImage::from_raw(2, 2, vec![0; 12]).is_ok());
        assert!(matches!(
            RgbImage::from_raw(2, 2, vec![0; 11]),
            Err(VisionError::PixelCount { expected: 12, .. })
        ));
    }

    #[test]
    fn drawing_clips_at_the_edges() {
        let mut img = RgbImage::new(10, 8);
        img.draw_box(-5.0, -5.0, 20.0, 20.0, 2, [255, 0, 0]);
        img.fill_disc(9.5, 7.5, 3.0, [0, 255, 0]);
        img.draw_line(-100.0, 4.0, 1e9, 4.0, 1, [0, 0, 255]);
        img.draw_line(f32::NAN, 0.0, 1.0, 1.0, 1, [0, 0, 255]);
        assert_eq!(img.pixel(9, 7), Some([0, 255, 0]));
        assert_eq!(img.pixel(0, 4), Some([0, 0, 255]));
        assert_eq!(img.pixel(10, 0), None);

        let mut img = RgbImage::new(10, 10);
        img.draw_box(2.0, 2.0, 7.0, 7.0, 1, [9, 9, 9]);
        assert_eq!(img.pixel(2, 2), Some([9, 9, 9]));
        assert_eq!(img.pixel(7, 7), Some([9, 9, 9]));
        assert_eq!(img.pixel(7, 4), Some([9, 9, 9]));
        assert_eq!(img.pixel(4, 4), Some([0, 0, 0]));
        assert_eq!(img.pixel(8, 8), Some([0, 0, 0]));

        let mut img = RgbImage::new(21, 21);
        img.draw_circle(10.0, 10.0, 8.0, 1, [5, 5, 5]);
        assert_eq!(img.pixel(18, 10), Some([5, 5, 5]));
        assert_eq!(img.pixel(10, 2), Some([5, 5, 5]));
        assert_eq!(img.pixel(10, 10), Some([0, 0, 0]));
        img.draw_circle(10.0, 10.0, 1e30, 3, [5, 5, 5]);
        img.draw_circle(10.0, 1e6, 1e6 - 5.0, 3, [7, 7, 7]);
        assert_eq!(img.pixel(10, 5), Some([7, 7, 7]));

        // A diagonal from far away keeps its direction after clipping.
        let mut img = RgbImage::new(10, 10);
        img.draw_line(-1e7, -1e7, 1e7, 1e7, 1, [1, 1, 1]);
        assert_eq!(img.pixel(3, 3), Some([1, 1, 1]));
        assert_eq!(img.pixel(3, 6), Some([0, 0, 0]));
        img.draw_line(-50.0, 20.0, 50.0, 20.0, 1, [1, 1, 1]);
    }
}
