//! Untrusted image bytes in (PNG, JPEG), result PNGs out.

use std::cell::RefCell;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::codecs::jpeg::JpegDecoder;
use image::codecs::png::{CompressionType, FilterType, PngDecoder, PngEncoder};
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, Limits};

use crate::error::VisionError;
use crate::rgb::RgbImage;

/// Largest accepted width or height.
pub const MAX_SIDE: u32 = 8192;

/// Largest accepted area (64 Mpx).
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Decodes a PNG or JPEG into 8-bit RGB: alpha is dropped, grayscale expanded, 16-bit samples
/// reduced. The size is checked from the header before any pixel is decoded.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, VisionError> {
    let format = image::guess_format(bytes).map_err(|_| VisionError::UnknownImageFormat)?;
    let image = match format {
        ImageFormat::Png => {
            let decoder = PngDecoder::new(Cursor::new(bytes)).map_err(VisionError::Decode)?;
            decode_with(decoder)?
        }
        ImageFormat::Jpeg => {
            let decoder = JpegDecoder::new(Cursor::new(bytes)).map_err(VisionError::Decode)?;
            decode_with(decoder)?
        }
        _ => return Err(VisionError::UnknownImageFormat),
    };
    let rgb = image.into_rgb8();
    let (width, height) = rgb.dimensions();
    RgbImage::from_raw(width, height, rgb.into_raw())
}

fn decode_with(mut decoder: impl ImageDecoder) -> Result<DynamicImage, VisionError> {
    let (width, height) = decoder.dimensions();
    check_size(width, height)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // Worst case is 16-bit RGBA, 8 bytes a pixel.
    limits.max_alloc = Some(MAX_PIXELS * 8);
    decoder.set_limits(limits).map_err(VisionError::Decode)?;
    DynamicImage::from_decoder(decoder).map_err(VisionError::Decode)
}

/// Refuses empty images and images over [`MAX_SIDE`] / [`MAX_PIXELS`].
pub fn check_size(width: u32, height: u32) -> Result<(), VisionError> {
    let area = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE || area > MAX_PIXELS {
        return Err(VisionError::ImageSize {
            width,
            height,
            max_side: MAX_SIDE,
            max_pixels: MAX_PIXELS,
        });
    }
    Ok(())
}

/// Encodes `image` as an RGB PNG with fast compression (result images are written on every
/// call; size matters less than latency).
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>, VisionError> {
    let mut out = Vec::new();
    encode_png_into(image, &mut out)?;
    Ok(out)
}

/// [`encode_png`] into `out` (cleared first), reusing its memory.
///
/// fdeflate's fast mode with the `Up` filter on every row: on photos it is about a quarter
/// faster than choosing a filter per row (`Adaptive`), for files under a tenth larger.
/// Room for the image's raw size is reserved up front, so `out` is not regrown (and
/// copied) while compressing, which used to cost about a quarter of the encoding time.
pub fn encode_png_into(image: &RgbImage, out: &mut Vec<u8>) -> Result<(), VisionError> {
    out.clear();
    // Raw samples, one filter byte a row, and the headers: what a stored (incompressible)
    // image takes; compressed ones fit.
    out.reserve(image.as_raw().len() + image.height() as usize + 1024);
    PngEncoder::new_with_quality(&mut *out, CompressionType::Fast, FilterType::Up)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(VisionError::Encode)
}

/// Largest encoding buffer a thread keeps between calls (a 4K frame fits).
const KEEP_BUFFER: usize = 32 << 20;

thread_local! {
    /// The encoding buffer of [`write_png`], kept between calls: result images are written
    /// on every call, and a fresh buffer a call means page faults on every call wherever
    /// the allocator hands large blocks back to the kernel (glibc's defaults do).
    static PNG_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes `image` as PNG to `dir/name`, atomically: readers see the old file or the new one,
/// never a partial one. The file gets the process's default permissions (umask). Returns the
/// final path.
pub fn write_png(dir: &Path, name: &str, image: &RgbImage) -> Result<PathBuf, VisionError> {
    PNG_BUFFER.with(|cell| {
        // Re-entrance cannot happen (nothing below calls back here), but a fresh buffer is
        // the safe answer if it ever did.
        let mut fresh = Vec::new();
        let mut kept = cell.try_borrow_mut();
        let buf = match kept.as_mut() {
            Ok(kept) => &mut **kept,
            Err(_) => &mut fresh,
        };
        let written = encode_png_into(image, buf).and_then(|()| write_atomic(dir, name, buf));
        if buf.capacity() > KEEP_BUFFER {
            *buf = Vec::new();
        }
        written
    })
}

/// Writes `bytes` to `dir/name` through a unique temporary file in `dir` and a rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, VisionError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(name);
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(source) = written {
        // Best effort: the temporary may not exist (open failed) or may already be renamed.
        let _ = std::fs::remove_file(&tmp);
        return Err(VisionError::Write { path, source });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        let mut px = Vec::new();
        for y in 0..h {
            for x in 0..w {
                px.extend_from_slice(&[x as u8, y as u8, (x ^ y) as u8]);
            }
        }
        RgbImage::from_raw(w, h, px).unwrap()
    }

    #[test]
    fn png_round_trip() {
        let img = gradient(37, 21);
        let png = encode_png(&img).unwrap();
        assert_eq!(decode(&png).unwrap(), img);
    }

    #[test]
    fn encoding_into_a_used_buffer_replaces_its_contents() {
        let mut buf = b"left over from an earlier image".to_vec();
        let small = gradient(3, 2);
        encode_png_into(&small, &mut buf).unwrap();
        assert_eq!(buf, encode_png(&small).unwrap());
        assert_eq!(decode(&buf).unwrap(), small);
        let big = gradient(64, 48);
        encode_png_into(&big, &mut buf).unwrap();
        assert_eq!(decode(&buf).unwrap(), big);
        encode_png_into(&small, &mut buf).unwrap();
        assert_eq!(decode(&buf).unwrap(), small);
    }

    #[test]
    fn alpha_and_gray_become_rgb() {
        let mut buf = Vec::new();
        PngEncoder::new(&mut buf)
            .write_image(
                &[10, 20, 30, 0, 40, 50, 60, 255],
                2,
                1,
                image::ExtendedColorType::Rgba8,
            )
            .unwrap();
        assert_eq!(decode(&buf).unwrap().as_raw(), &[10, 20, 30, 40, 50, 60]);

        let mut buf = Vec::new();
        PngEncoder::new(&mut buf)
            .write_image(&[7, 200], 1, 2, image::ExtendedColorType::L8)
            .unwrap();
        assert_eq!(decode(&buf).unwrap().as_raw(), &[7, 7, 7, 200, 200, 200]);
    }

    #[test]
    fn jpeg_decodes() {
        let img = gradient(16, 16);
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 95)
            .write_image(img.as_raw(), 16, 16, image::ExtendedColorType::Rgb8)
            .unwrap();
        let back = decode(&buf).unwrap();
        assert_eq!((back.width(), back.height()), (16, 16));
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(matches!(
            decode(b"hello"),
            Err(VisionError::UnknownImageFormat)
        ));
        assert!(matches!(decode(&[]), Err(VisionError::UnknownImageFormat)));
        let png = encode_png(&gradient(64, 64)).unwrap();
        for cut in [8, 20, 40, png.len() / 2, png.len() - 13] {
            assert!(decode(&png[..cut]).is_err(), "cut at {cut}");
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .write_image(
                gradient(32, 32).as_raw(),
                32,
                32,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        for cut in [3, 50, jpeg.len() / 2] {
            assert!(decode(&jpeg[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// Corrupted images give errors or pictures, never panics (a cheap stand-in for a fuzz
    /// target: random byte flips over a PNG and a JPEG).
    #[test]
    fn corrupted_images_never_panic() {
        let img = gradient(24, 16);
        let png = encode_png(&img).unwrap();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .write_image(img.as_raw(), 24, 16, image::ExtendedColorType::Rgb8)
            .unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for original in [png, jpeg] {
            for _ in 0..400 {
                let mut bytes = original.clone();
                for _ in 0..1 + next() % 4 {
                    let i = (next() % bytes.len() as u64) as usize;
                    bytes[i] = next() as u8;
                }
                if let Ok(img) = decode(&bytes) {
                    assert_eq!(
                        img.as_raw().len(),
                        img.width() as usize * img.height() as usize * 3
                    );
                }
            }
        }
    }

    /// A PNG whose header claims 100000 x 100000 pixels: refused before decoding.
    #[test]
    fn oversized_header_is_refused() {
        let mut png = encode_png(&gradient(4, 4)).unwrap();
        // IHDR data starts at byte 16: width, height (big-endian), then the CRC at 29..33.
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        match decode(&png) {
            Err(VisionError::ImageSize { width, height, .. }) => {
                assert_eq!((width, height), (100_000, 100_000));
            }
            other => panic!("expected ImageSize, got {other:?}"),
        }
        // A JPEG whose frame header (SOF0: FF C0, length, precision, height, width) claims
        // 60000 x 9000 pixels.
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .write_image(
                gradient(8, 8).as_raw(),
                8,
                8,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        jpeg[sof + 5..sof + 7].copy_from_slice(&9000u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
        assert!(matches!(
            decode(&jpeg),
            Err(VisionError::ImageSize {
                width: 60000,
                height: 9000,
                ..
            })
        ));
        assert!(check_size(8192, 8192).is_ok());
        assert!(check_size(8193, 1).is_err());
        assert!(check_size(0, 10).is_err());
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn write_png_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_png(dir.path(), "out.png", &gradient(3, 3)).unwrap();
        let b = write_png(dir.path(), "out.png", &gradient(5, 5)).unwrap();
        assert_eq!(a, b);
        let back = decode(&std::fs::read(&b).unwrap()).unwrap();
        assert_eq!(back.width(), 5);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.png")]);
        assert!(write_png(&dir.path().join("missing"), "x.png", &gradient(1, 1)).is_err());
    }
}
