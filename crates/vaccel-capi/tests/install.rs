//! The documented install command: `scripts/install.sh --prefix DIR` into a temporary
//! prefix, then a C program built with `cc classify.c $(pkg-config --cflags --libs vaccel)`
//! and run against the installed library (the acceptance check of the C API).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use common::*;

#[test]
fn install_then_build_classify_with_pkg_config() {
    let work = tempfile::tempdir().unwrap();
    let prefix = work.path().join("prefix");
    // A target directory laid out as `cargo build` leaves it, over this build's artifacts
    // (`cargo test` keeps them in `deps/`).
    let stage = work.path().join("target");
    let release = stage.join("release");
    std::fs::create_dir_all(&release).unwrap();
    for lib in PLUGIN_LIBS.iter().chain(&["libvaccel.so", "libvaccel.a"]) {
        std::os::unix::fs::symlink(artifact(lib), release.join(lib)).unwrap();
    }
    // With the upstream names the plugin libraries' build scripts link beside them.
    for lib in PLUGIN_LIBS {
        let upstream = lib.replace('_', "-");
        std::os::unix::fs::symlink(lib, release.join(upstream)).unwrap();
    }
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("scripts/install.sh"))
        .arg("--prefix")
        .arg(&prefix)
        .arg("--no-build")
        .arg("--target-dir")
        .arg(&stage);
    check(&mut cmd);
    for file in [
        "lib/libvaccel.so",
        "lib/libvaccel.a",
        "lib/pkgconfig/vaccel.pc",
        "include/vaccel.h",
        "include/vaccel/session.h",
        "include/vaccel/ops/tf.h",
        "lib/libvaccel-noop.so",
        "lib/libvaccel-exec.so",
        "lib/libvaccel-mbench.so",
        "lib/libvaccel-rpc.so",
        "lib/libvaccel-blas.so",
        "lib/libvaccel-tflite.so",
        "lib/libvaccel-onnx.so",
        "lib/libvaccel-tf.so",
        "lib/libvaccel-torch.so",
    ] {
        assert!(prefix.join(file).exists(), "{file} not installed");
    }

    // `pkg-config --cflags --libs vaccel`, then the exact build command of the docs.
    let pc_path = prefix.join("lib/pkgconfig");
    let mut cmd = Command::new("pkg-config");
    cmd.args(["--cflags", "--libs", "vaccel"])
        .env("PKG_CONFIG_PATH", &pc_path);
    let out = check(&mut cmd);
    let flags = String::from_utf8(out.stdout).unwrap();
    assert!(flags.contains("-lvaccel"), "{flags}");
    let exe = work.path().join("classify");
    let src = c_source("classify.c");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "cc {} -o {} $(pkg-config --cflags --libs vaccel)",
            src.display(),
            exe.display()
        ))
        .env("PKG_CONFIG_PATH", &pc_path);
    check(&mut cmd);

    let image = workspace_root().join("examples/data/example.jpg");
    let mut cmd = program(&exe, work.path());
    cmd.arg(&image)
        .arg("1")
        .env("LD_LIBRARY_PATH", prefix.join("lib"))
        .env("VACCEL_PLUGINS", "libvaccel-noop.so");
    let out = check(&mut cmd);
    assert_lines_in_order(
        &cmd,
        &out,
        &[
            "Initialized session with id: 1",
            "classification tags: This is a dummy classification tag!",
            "classification imagename: This is a dummy imgname!",
        ],
    );
}
