//! Local dispatch cost: ns per call through the runtime, beside an in-run baseline.
//!
//! The baseline is the bare virtual call into the same plugin method (`Arc<dyn Plugin>`),
//! i.e. what the plugin itself costs; the runtime's share is the difference. Each figure is
//! the median of several timed rounds. Run with `cargo bench -p vaccel --bench dispatch`
//! (pin with `taskset -c 0` for steadier numbers).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::indexing_slicing)]

mod support;

use std::hint::black_box;

use vaccel::{Arg, ArgType, Config, OpType, Session};

const ROUNDS: usize = 7;

fn measure(iters: u64, f: impl FnMut()) -> f64 {
    support::measure(ROUNDS, iters, f)
}

fn main() {
    let base = tempfile::tempdir().unwrap();
    let bench = |profiling: bool| {
        let rt = vaccel::builder()
            .rundir_base(base.path())
            .skip_logging()
            .config(
                Config::default()
                    .with_plugins("noop")
                    .with_log_level(None)
                    .with_profiling(profiling),
            )
            .build()
            .unwrap();
        let sess = Session::new(&rt, 0).unwrap();
        let plugin = sess.plugin();
        let n = 2_000_000;

        let direct_noop = measure(n, || black_box(plugin.noop(black_box(&sess))).unwrap());
        let noop = measure(n, || black_box(sess.noop()).unwrap());

        let op = [Arg::scalar(OpType::Noop.value())];
        let genop_noop = measure(n, || {
            black_box(sess.genop(black_box(&op), &mut [])).unwrap()
        });

        let image = vec![7u8; 1024];
        let mut out = [0u8; 512];
        let direct_detect = measure(n / 4, || {
            black_box(plugin.image_op(&sess, OpType::ImageDetect, black_box(&image), &mut out))
                .unwrap()
        });
        let detect = measure(n / 4, || {
            black_box(sess.image_detect(black_box(&image), &mut out)).unwrap()
        });
        let read = [
            Arg::scalar(OpType::ImageDetect.value()),
            Arg::buffer(&image).unwrap(),
        ];
        let mut write = [Arg::zeroed(ArgType::UcharArray, 512).unwrap()];
        let genop_detect = measure(n / 4, || {
            black_box(sess.genop(black_box(&read), &mut write)).unwrap()
        });
        (
            direct_noop,
            noop,
            genop_noop,
            direct_detect,
            detect,
            genop_detect,
        )
    };

    println!(
        "| call | profiling | ns/op | baseline: direct plugin call (ns/op) | runtime overhead (ns) | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for profiling in [false, true] {
        let (dn, n, gn, dd, d, gd) = bench(profiling);
        let p = if profiling { "on" } else { "off" };
        for (name, v, b) in [
            ("noop", n, dn),
            ("genop NOOP", gn, dn),
            ("image_detect, 1 KiB image", d, dd),
            ("genop IMAGE_DETECT, 1 KiB image", gd, dd),
        ] {
            println!(
                "| {name} | {p} | {v:.1} | {b:.1} | {:.1} | {:.2}x |",
                v - b,
                v / b
            );
        }
    }
}
