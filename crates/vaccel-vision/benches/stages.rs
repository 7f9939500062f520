//! Where the time of an image op goes: each stage of the pipeline that every image op runs
//! around its model (decode, resize, model-input conversion, result PNG encode and write),
//! timed alone on the fixture pictures, beside a copy of the decoded picture measured in the
//! same run as the baseline (the cost of touching its bytes once).
//!
//! Each row is the median of [`RUNS`] runs after [`WARMUP`]; the last column is that median
//! over the baseline's. The model run itself is not here: the backends' own benches time it
//! (`plugins/{tflite,onnx}/benches/models.rs`), and `model-bench` the whole op.
//!
//! `cargo bench -p vaccel-vision --bench stages`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use vaccel_vision::codec;
use vaccel_vision::preprocess::{InputSpec, Layout, Preprocess, to_tensor};
use vaccel_vision::resample::{Filter, resize};

const WARMUP: usize = 20;
const RUNS: usize = 200;

/// Median milliseconds of `f`.
fn median_ms(mut f: impl FnMut()) -> f64 {
    for _ in 0..WARMUP {
        f();
    }
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[RUNS / 2]
}

fn main() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images");
    let out = tempfile::tempdir().expect("temporary directory");
    println!("| picture | stage | median ms | x baseline |");
    println!("|---|---|---:|---:|");
    for name in ["astronaut.jpg", "coffee.jpg"] {
        let bytes = std::fs::read(fixtures.join(name)).expect("fixture picture");
        let image = codec::decode(&bytes).expect("decodable fixture");
        let label = format!("{name} ({}x{})", image.width(), image.height());
        let baseline = median_ms(|| {
            black_box(black_box(image.as_raw()).to_vec());
        });
        let mut rows: Vec<(String, f64)> =
            vec![("copy of the decoded picture (baseline)".into(), baseline)];
        rows.push((
            "JPEG decode".into(),
            median_ms(|| {
                black_box(codec::decode(black_box(&bytes)).unwrap());
            }),
        ));
        for (filter, what) in [
            (
                Filter::Bilinear,
                "resize to 128x128, antialiased bilinear (Pillow)",
            ),
            (
                Filter::Bicubic,
                "resize to 128x128, antialiased bicubic (Pillow)",
            ),
            (
                Filter::PointBilinear,
                "resize to 128x128, point bilinear (OpenCV)",
            ),
        ] {
            rows.push((
                what.into(),
                median_ms(|| {
                    black_box(resize(black_box(&image), 128, 128, filter));
                }),
            ));
        }
        let spec = InputSpec {
            width: 128,
            height: 128,
            layout: Layout::Nhwc,
        };
        let pre = Preprocess::letterbox(spec, (-1.0, 1.0));
        rows.push((
            "model input: letterbox to 128x128 f32 NHWC".into(),
            median_ms(|| {
                black_box(to_tensor(black_box(&image), &pre));
            }),
        ));
        let mut png = Vec::new();
        rows.push((
            "result PNG encode (reused buffer)".into(),
            median_ms(|| {
                codec::encode_png_into(black_box(&image), &mut png).unwrap();
            }),
        ));
        rows.push((
            "result PNG encode + atomic write".into(),
            median_ms(|| {
                codec::write_png(out.path(), "result.png", black_box(&image)).unwrap();
            }),
        ));
        for (stage, ms) in rows {
            println!("| {label} | {stage} | {ms:.3} | {:.1} |", ms / baseline);
        }
    }
}
