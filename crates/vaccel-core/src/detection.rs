//! Structured results of `vaccel_image_detection`, for callers that want more than the name
//! of the result image.
//!
//! Detections travel between runtimes as text, one line per object:
//! `<label> <score> <x0> <y0> <x1> <y1>\n`, coordinates in pixels of the input image
//! (`x0,y0` top-left, `x1,y1` bottom-right), the whole NUL-terminated. Labels never contain
//! whitespace (any is replaced by `_`).

use crate::error::{Error, Result};

/// One object found in an image, in input-image pixel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// What was found (`face`, `person`, a class name).
    pub label: String,
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// Left edge.
    pub x0: f32,
    /// Top edge.
    pub y0: f32,
    /// Right edge.
    pub x1: f32,
    /// Bottom edge.
    pub y1: f32,
}

impl Detection {
    /// Width of the box (0 for an inverted box).
    pub fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    /// Height of the box (0 for an inverted box).
    pub fn height(&self) -> f32 {
        (self.y1 - self.y0).max(0.0)
    }

    /// Centre of the box.
    pub fn center(&self) -> (f32, f32) {
        ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)
    }

    /// The line the example programs print after upstream's: `detection: <label> <score> <x0>
    /// <y0> <x1> <y1>` (score with 3 decimals, pixels with 1).
    pub fn display_line(&self) -> String {
        format!(
            "detection: {} {:.3} {:.1} {:.1} {:.1} {:.1}",
            self.label, self.score, self.x0, self.y0, self.x1, self.y1
        )
    }
}

fn clean_label(label: &str) -> String {
    if label.is_empty() {
        return "object".to_owned();
    }
    label
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == '\0' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Writes `detections` into `out` in the wire text form, NUL-terminated. `ERANGE`-class error
/// when `out` is too small for all of them (nothing partial is reported as complete).
pub fn encode(detections: &[Detection], out: &mut [u8]) -> Result<()> {
    let mut text = String::new();
    for d in detections {
        text.push_str(&format!(
            "{} {} {} {} {} {}\n",
            clean_label(&d.label),
            d.score,
            d.x0,
            d.y0,
            d.x1,
            d.y1
        ));
    }
    let bytes = text.as_bytes();
    let Some(dst) = out.get_mut(..bytes.len() + 1) else {
        return Err(Error::invalid(format!(
            "detections need {} bytes, the output buffer has {}",
            bytes.len() + 1,
            out.len()
        )));
    };
    let (body, nul) = dst.split_at_mut(bytes.len());
    body.copy_from_slice(bytes);
    nul.fill(0);
    Ok(())
}

/// Parses the wire text form (up to the first NUL). Malformed lines are errors.
pub fn decode(buf: &[u8]) -> Result<Vec<Detection>> {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let text = std::str::from_utf8(buf.get(..end).unwrap_or_default())
        .map_err(|_| Error::invalid("detections are not UTF-8"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let bad = || Error::invalid(format!("malformed detection line {line:?}"));
            let mut it = line.split_whitespace();
            let label = it.next().ok_or_else(bad)?.to_owned();
            let mut num =
                || -> Result<f32> { it.next().ok_or_else(bad)?.parse().map_err(|_| bad()) };
            let d = Detection {
                label,
                score: num()?,
                x0: num()?,
                y0: num()?,
                x1: num()?,
                y1: num()?,
            };
            if it.next().is_some() {
                return Err(bad());
            }
            Ok(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ds = vec![
            Detection {
                label: "face".into(),
                score: 0.93,
                x0: 10.5,
                y0: 20.0,
                x1: 110.25,
                y1: 130.0,
            },
            Detection {
                label: "golden retriever".into(),
                score: 0.5,
                x0: 0.0,
                y0: 0.0,
                x1: 1.0,
                y1: 1.0,
            },
        ];
        let mut buf = [0xffu8; 256];
        encode(&ds, &mut buf).unwrap();
        let back = decode(&buf).unwrap();
        assert_eq!(back[0], ds[0]);
        assert_eq!(back[1].label, "golden_retriever");
        assert!(encode(&ds, &mut [0u8; 10]).is_err());
        assert!(decode(b"face 1 2 3\n\0").is_err());
        assert!(decode(b"face x 2 3 4 5\n\0").is_err());
        assert!(decode(b"face 1 2 3 4 5 6\n\0").is_err());
        assert_eq!(decode(b"\0garbage").unwrap(), vec![]);
        assert_eq!(
            ds[0].display_line(),
            "detection: face 0.930 10.5 20.0 110.2 130.0"
        );
    }
}
