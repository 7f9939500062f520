//! The cost of a plugin *library*: ns per `noop` call through a loaded library against the
//! same plugin compiled into the runtime, in one run.
//!
//! Three runtimes, one session each: the bundled `noop` plugin (the baseline), the same
//! plugin as `libvaccel-noop.so` built with the SDK (host → C views → the library's exported
//! function → its attached session → the plugin), and an upstream-style C plugin whose noop
//! returns at once (host → C views → the C function). The library is built first with the
//! bench's profile; the C plugin is compiled here with the system compiler. Run with
//! `cargo bench -p vaccel --bench plugin_library` (pin with `taskset -c 0`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

mod support;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use vaccel::{Config, Session};

const ROUNDS: usize = 9;

fn measure(iters: u64, f: impl FnMut()) -> f64 {
    support::measure(ROUNDS, iters, f)
}

/// `target/<profile>`, from this bench's own path (`target/<profile>/deps/<bench>-<hash>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds `libvaccel_noop.so` with this bench's profile and target directory.
fn noop_library() -> PathBuf {
    let dir = profile_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args([
            "rustc",
            "--offline",
            "-p",
            "vaccel-plugin-noop-lib",
            "--lib",
        ])
        .args(["--crate-type", "cdylib"])
        .env("CARGO_TARGET_DIR", dir.parent().unwrap());
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => {}
    }
    assert!(
        cmd.status().unwrap().success(),
        "building the noop library failed"
    );
    dir.join("libvaccel_noop.so")
}

/// A minimal upstream-style C plugin: one noop op that returns at once.
fn c_plugin(dir: &Path) -> PathBuf {
    let src = dir.join("cnoop.c");
    std::fs::write(
        &src,
        r#"#include <vaccel.h>
static int cnoop(struct vaccel_session *sess) { (void)sess; return VACCEL_OK; }
static struct vaccel_op ops[] = { VACCEL_OP_INIT(ops[0], VACCEL_OP_NOOP, cnoop) };
static int init(void) { return vaccel_plugin_register_ops(ops, 1); }
static int fini(void) { return VACCEL_OK; }
VACCEL_PLUGIN(.name = "cnoop", .version = "1.0.0", .vaccel_version = VACCEL_VERSION,
              .type = VACCEL_PLUGIN_DEBUG, .init = init, .fini = fini)
"#,
    )
    .unwrap();
    let lib = dir.join("libcnoop.so");
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/../vaccel-capi/include");
    let status = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&lib)
        .args(["-I", include])
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success(), "compiling the C plugin failed");
    lib
}

fn main() {
    let base = tempfile::tempdir().unwrap();
    let noop_lib = noop_library();
    let c_lib = c_plugin(base.path());
    let per_call = |plugins: &str| {
        let rt = vaccel::builder()
            .rundir_base(base.path())
            .skip_logging()
            .config(Config::default().with_plugins(plugins).with_log_level(None))
            .build()
            .unwrap();
        let sess = Session::new(&rt, 0).unwrap();
        measure(2_000_000, || black_box(sess.noop()).unwrap())
    };
    // Interleaved rounds so that drift of the machine hits all three alike.
    let mut bundled = Vec::new();
    let mut sdk = Vec::new();
    let mut c = Vec::new();
    for _ in 0..3 {
        bundled.push(per_call("noop"));
        sdk.push(per_call(noop_lib.to_str().unwrap()));
        c.push(per_call(c_lib.to_str().unwrap()));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (b, s, cc) = (median(&mut bundled), median(&mut sdk), median(&mut c));
    println!("| noop through | ns/call | baseline: bundled noop (ns/call) | extra (ns) | ratio |");
    println!("|---|---|---|---|---|");
    println!("| bundled `noop` plugin | {b:.1} | {b:.1} | 0.0 | 1.00x |");
    for (name, v) in [
        ("`libvaccel-noop.so` (SDK library)", s),
        ("upstream-style C plugin library", cc),
    ] {
        println!(
            "| {name} | {v:.1} | {b:.1} | {:.1} | {:.2}x |",
            v - b,
            v / b
        );
    }
}
