//! The plugins built as libraries (`libvaccel-noop.so`, `libvaccel-exec.so`,
//! `libvaccel-mbench.so`, `libvaccel-rpc.so`, and the CPU backends `libvaccel-blas.so`,
//! `libvaccel-tflite.so`, `libvaccel-onnx.so`, `libvaccel-tf.so`, `libvaccel-torch.so`, made
//! with the plugin SDK) sit in the profile directory under their upstream names and load
//! through `VACCEL_PLUGINS`. The small ones behave exactly like their twins bundled in
//! `libvaccel.so`: the same program prints the same output and the same log lines (timestamps
//! and run directories aside). `libvaccel.so` bundles no CPU backend: each loads by file name
//! (found beside `libvaccel.so`, its RUNPATH `$ORIGIN`) and by path with the same output, and
//! `cpu` loads those that are installed. The rpc library against an agent is in `rpc.rs`.
//!
//! The CPU backends' model runs need their runtimes (`scripts/runtimes.sh`): when the
//! library loaded by name reports one missing (`VACCEL_ENOTSUP`), the test says so and passes,
//! unless `VACCEL_REQUIRE_BACKENDS` is set (CI), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// stdout without timestamps, with run directories and the plugin spec (the only
/// legitimate differences) masked.
fn normalized(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            // `YYYY.MM.DD-HH:MM:SS.CC - ` prefixes log lines.
            let line = match line.get(..25) {
                Some(prefix) if prefix.ends_with(" - ") && prefix.starts_with("20") => &line[25..],
                _ => line,
            };
            let masked: Vec<&str> = line
                .split(' ')
                .map(|w| if w.contains("/vaccel/") { "<dir>" } else { w })
                .collect();
            masked.join(" ")
        })
        .filter(|l| !l.contains("plugins = ") && !l.contains("Loaded plugin "))
        .collect()
}

/// One plugin two ways: `builtin` is what `VACCEL_PLUGINS` names first (a bundled plugin, or
/// a CPU backend's library by file name), `library` the library by path.
struct Twin {
    builtin: String,
    library: PathBuf,
}

fn twins() -> [Twin; 3] {
    [
        Twin {
            builtin: "noop".into(),
            library: artifact("libvaccel_noop.so"),
        },
        Twin {
            builtin: "exec".into(),
            library: artifact("libvaccel_exec.so"),
        },
        Twin {
            builtin: "mbench".into(),
            library: artifact("libvaccel_mbench.so"),
        },
    ]
}

/// Runs `exe args` with the built-in plugin and with its library; both must succeed and print
/// the same (normalized) output. Returns the library run's stdout.
fn same_output(
    work: &Path,
    twin: &Twin,
    exe: &Path,
    args: &[&std::ffi::OsStr],
    envs: &[(&str, &str)],
) -> String {
    let mut outputs = Vec::new();
    for plugin in [
        std::ffi::OsStr::new(&twin.builtin),
        twin.library.as_os_str(),
    ] {
        let mut cmd = program(exe, work);
        cmd.args(args).env("VACCEL_PLUGINS", plugin);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = check(&mut cmd);
        outputs.push((normalized(&out.stdout), context(&cmd, &out)));
    }
    assert_eq!(
        outputs[0].0, outputs[1].0,
        "built-in and library outputs differ\n=== built-in ===\n{}\n=== library ===\n{}",
        outputs[0].1, outputs[1].1
    );
    outputs[1].1.clone()
}

#[test]
fn noop_library_matches_the_built_in_noop() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("classify");
    build_program(&[c_source("classify.c")], &exe);
    let image = workspace_root().join("examples/data/example.jpg");
    let model = workspace_root().join("examples/data/imagenet.txt");
    let twin = &twins()[0];
    let out = same_output(
        work.path(),
        twin,
        &exe,
        &[image.as_os_str(), "2".as_ref(), model.as_os_str()],
        &[("VACCEL_LOG_LEVEL", "4")],
    );
    for line in [
        "classification tags: This is a dummy classification tag!",
        "[noop] Calling Image classification for session 1",
        "[noop] model: ",
    ] {
        assert!(out.contains(line), "missing {line:?}\n{out}");
    }
}

#[test]
fn exec_library_matches_the_built_in_exec() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("exec_app");
    build_program(&[c_source("exec_app.c")], &exe);
    let mytestlib = artifact("libmytestlib.so");
    let twin = &twins()[1];
    let out = same_output(
        work.path(),
        twin,
        &exe,
        &[mytestlib.as_os_str(), "exec".as_ref()],
        &[("VACCEL_LOG_LEVEL", "4")],
    );
    for line in [
        "exec: 0 output: 20",
        "exec_with_resource: 0 output: 20",
        "genop exec: 0 output: 20",
        "I got input: 10",
        "[exec] session:1 Calling exec_with_resource",
    ] {
        assert!(out.contains(line), "missing {line:?}\n{out}");
    }
}

#[test]
fn mbench_library_matches_the_built_in_mbench() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("exec_app");
    build_program(&[c_source("exec_app.c")], &exe);
    let twin = &twins()[2];
    // Timings differ from run to run: compare without the [prof] lines, then check them.
    for plugin in [
        std::ffi::OsStr::new(&twin.builtin),
        twin.library.as_os_str(),
    ] {
        let mut cmd = program(&exe, work.path());
        cmd.arg(&exe)
            .arg("mbench")
            .env("VACCEL_PLUGINS", plugin)
            .env("VACCEL_PROFILING_ENABLED", "1")
            .env("VACCEL_LOG_LEVEL", "3");
        let out = check(&mut cmd);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("mbench: 0"), "{}", context(&cmd, &out));
        assert!(
            stdout.contains("[prof] vaccel_mbench_plugin: total_time: "),
            "{}",
            context(&cmd, &out)
        );
    }
}

#[test]
fn plugin_libraries_export_upstream_descriptors() {
    // The symbols upstream's loader looks up, plus the vaccel-rs binding.
    for lib in PLUGIN_LIBS {
        let library = artifact(lib);
        let out = check(
            std::process::Command::new("nm")
                .args(["-D", "--defined-only"])
                .arg(&library),
        );
        let symbols = String::from_utf8_lossy(&out.stdout);
        for sym in ["vaccel_plugin", "vaccel_rs_plugin_bind"] {
            assert!(
                symbols.lines().any(|l| l.ends_with(&format!(" {sym}"))),
                "{} does not export {sym}",
                library.display()
            );
        }
    }
}

/// A CPU backend's library by file name (`libvaccel-<name>.so`, which `libvaccel.so` finds
/// beside itself) and by path.
fn cpu_twin(name: &'static str) -> Twin {
    Twin {
        builtin: format!("libvaccel-{name}.so"),
        library: artifact(&format!("libvaccel_{name}.so")),
    }
}

/// [`same_output`] for a CPU backend with `VACCEL_LOG_LEVEL=4` (the plugins log what they
/// found), or `None` when the library reports its runtime missing and backends are not
/// required.
fn cpu_same_output(
    work: &Path,
    twin: &Twin,
    exe: &Path,
    args: &[&std::ffi::OsStr],
) -> Option<String> {
    let mut cmd = program(exe, work);
    cmd.args(args).env("VACCEL_PLUGINS", &twin.builtin);
    let out = output(&mut cmd);
    if out.status.code() == Some(95) {
        assert!(
            std::env::var_os("VACCEL_REQUIRE_BACKENDS").is_none(),
            "the {} runtime is required (VACCEL_REQUIRE_BACKENDS) but missing\n{}",
            twin.builtin,
            context(&cmd, &out)
        );
        eprintln!(
            "SKIP: the {} runtime is missing (./scripts/runtimes.sh installs it)\n{}",
            twin.builtin,
            context(&cmd, &out)
        );
        return None;
    }
    Some(same_output(
        work,
        twin,
        exe,
        args,
        &[("VACCEL_LOG_LEVEL", "4")],
    ))
}

fn cpu_ops_program(work: &Path) -> PathBuf {
    let exe = work.join("cpu_ops");
    build_program(&[c_source("cpu_ops.c")], &exe);
    exe
}

#[test]
fn blas_library_by_name_matches_it_by_path() {
    let work = tempfile::tempdir().unwrap();
    let exe = cpu_ops_program(work.path());
    // Wide enough for the plugin's banded, multi-threaded path; exact in float32.
    let args = ["sgemm", "300", "200", "257"].map(std::ffi::OsStr::new);
    let out = cpu_same_output(work.path(), &cpu_twin("blas"), &exe, &args).unwrap();
    for line in [
        "sgemm 300x200x257: max relative error 0\n",
        "[blas] sgemm m=300 n=200 k=257 lda=257 ldb=200 ldc=200",
    ] {
        assert!(out.contains(line), "missing {line:?}\n{out}");
    }
}

#[test]
fn tflite_library_detects_and_classifies_by_name_and_by_path() {
    let work = tempfile::tempdir().unwrap();
    let twin = cpu_twin("tflite");
    // Face detection on the bundled default model.
    let exe = cpu_ops_program(work.path());
    let image = workspace_root().join("fixtures/images/astronaut.jpg");
    let args = ["detect".as_ref(), image.as_os_str()];
    let Some(out) = cpu_same_output(work.path(), &twin, &exe, &args) else {
        return;
    };
    for line in [
        "object detection: 1 detection: face ",
        "detection imagename: detection.png\n",
    ] {
        assert!(out.contains(line), "missing {line:?}\n{out}");
    }
    // Classification with a registered model: upstream's classify program.
    let exe = work.path().join("classify");
    build_program(&[c_source("classify.c")], &exe);
    let image = workspace_root().join("fixtures/images/chelsea.jpg");
    let model = workspace_root().join("fixtures/models/dog_breeds");
    let args = [image.as_os_str(), "1".as_ref(), model.as_os_str()];
    let out = cpu_same_output(work.path(), &twin, &exe, &args).unwrap();
    let tags = out
        .lines()
        .find_map(|l| l.strip_prefix("classification tags: "))
        .unwrap_or_else(|| panic!("no classification line\n{out}"));
    assert!(tags.ends_with("% Chihuahua"), "{tags:?}\n{out}");
}

#[test]
fn onnx_library_detects_by_name_and_by_path() {
    let work = tempfile::tempdir().unwrap();
    let exe = cpu_ops_program(work.path());
    let image = workspace_root().join("fixtures/images/astronaut.jpg");
    let model = workspace_root().join("fixtures/models/face_detection_short_range.onnx");
    let args = ["detect".as_ref(), image.as_os_str(), model.as_os_str()];
    // Without onnxruntime the tract engine serves the call: never a skip.
    let out = cpu_same_output(work.path(), &cpu_twin("onnx"), &exe, &args).unwrap();
    for line in [
        "object detection: 1 detection: face ",
        "detection imagename: detection.png\n",
    ] {
        assert!(out.contains(line), "missing {line:?}\n{out}");
    }
}

#[test]
fn tf_and_torch_libraries_load_and_decline_what_they_do_not_implement() {
    // Their model ops have no upstream C program here; loading the library, registering the
    // plugin and answering an image op with VACCEL_ENOTSUP, by name and by path, shows the
    // library is whole.
    let work = tempfile::tempdir().unwrap();
    let exe = cpu_ops_program(work.path());
    let image = workspace_root().join("fixtures/images/astronaut.jpg");
    for name in ["tf", "torch"] {
        let twin = cpu_twin(name);
        let mut codes = Vec::new();
        for plugin in [
            std::ffi::OsStr::new(&twin.builtin),
            twin.library.as_os_str(),
        ] {
            let mut cmd = program(&exe, work.path());
            cmd.arg("detect")
                .arg(&image)
                .env("VACCEL_PLUGINS", plugin)
                .env("VACCEL_LOG_LEVEL", "4");
            let out = output(&mut cmd);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let registered = format!("Registered plugin {name} ");
            assert!(stdout.contains(&registered), "{}", context(&cmd, &out));
            codes.push(out.status.code());
        }
        assert_eq!(codes, [Some(95), Some(95)], "{name}: by name, by path");
    }
}

/// `cpu` in a C program on `libvaccel.so`: the CPU backends' libraries load by name from
/// beside it, in priority order; with only some installed (a directory holding a copy of
/// `libvaccel.so` and two backends, first on `LD_LIBRARY_PATH`), those load and each missing
/// one is a warning naming it; with none, `cpu` fails naming every library it looked for.
#[test]
fn cpu_loads_the_backend_libraries_that_are_installed() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("classify");
    build_program(&[c_source("classify.c")], &exe);
    for name in ["blas", "tflite", "onnx", "tf", "torch"] {
        artifact(&format!("libvaccel_{name}.so"));
    }
    let image = workspace_root().join("examples/data/example.jpg");
    let run = |lib_dir: Option<&Path>| {
        let mut cmd = program(&exe, work.path());
        cmd.arg(&image)
            .arg("1")
            .env("VACCEL_PLUGINS", "noop:cpu")
            .env("VACCEL_LOG_LEVEL", "4");
        if let Some(dir) = lib_dir {
            cmd.env("LD_LIBRARY_PATH", dir);
        }
        let out = output(&mut cmd);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            context(&cmd, &out),
            out,
        )
    };

    let (stdout, ctx, out) = run(None);
    assert!(out.status.success(), "{ctx}");
    let registered: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split("Registered plugin ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert_eq!(
        registered,
        ["noop", "blas", "tflite", "onnx", "tf", "torch"],
        "{ctx}"
    );

    // Some installed: a private directory found before the profile directory.
    let partial = work.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::copy(libvaccel(), partial.join("libvaccel.so.0")).unwrap();
    for name in ["blas", "onnx"] {
        std::fs::copy(
            artifact(&format!("libvaccel_{name}.so")),
            partial.join(format!("libvaccel-{name}.so")),
        )
        .unwrap();
    }
    let (stdout, ctx, out) = run(Some(&partial));
    assert!(out.status.success(), "{ctx}");
    for line in [
        "Registered plugin blas ",
        "Registered plugin onnx ",
        "Plugin group cpu: libvaccel-tflite.so is not available, skipping it: ",
        "Plugin group cpu: libvaccel-tf.so is not available, skipping it: ",
        "Plugin group cpu: libvaccel-torch.so is not available, skipping it: ",
        "Plugin group cpu: 2 of 5 plugins loaded",
        "classification tags: This is a dummy classification tag!",
    ] {
        assert!(stdout.contains(line), "missing {line:?}\n{ctx}");
    }
    assert!(!stdout.contains("Registered plugin tflite "), "{ctx}");
    // A missing member is no error: only the group's warning says so.
    assert!(!stdout.contains("<error>"), "{ctx}");

    // None installed: the group fails, as an unknown plugin does.
    for name in ["blas", "onnx"] {
        std::fs::remove_file(partial.join(format!("libvaccel-{name}.so"))).unwrap();
    }
    let (stdout, ctx, out) = run(Some(&partial));
    assert!(!out.status.success(), "{ctx}");
    assert!(
        stdout.contains("could not load plugin 'cpu': none of the group's plugins")
            && stdout.contains("libvaccel-blas.so: ")
            && stdout.contains("libvaccel-torch.so: "),
        "{ctx}"
    );
}

/// The SONAME of an ELF library (`readelf -d`).
fn soname(library: &Path) -> Option<String> {
    let out = check(std::process::Command::new("readelf").arg("-d").arg(library));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| l.split('[').nth(1))
        .and_then(|l| l.split(']').next())
        .map(str::to_owned)
}

#[test]
fn libraries_carry_upstream_sonames_which_link_to_them_in_the_profile_directory() {
    // The major of VACCEL_VERSION, which `scripts/install.sh` names the installed links after.
    let header = std::fs::read_to_string(include_dir().join("vaccel.h")).unwrap();
    let major = header
        .lines()
        .find_map(|l| l.strip_prefix("#define VACCEL_VERSION \""))
        .and_then(|v| v.split('.').next())
        .expect("VACCEL_VERSION in vaccel.h")
        .to_owned();
    let libraries = std::iter::once(("libvaccel.so", "libvaccel".to_owned())).chain(
        PLUGIN_LIBS
            .iter()
            .map(|l| (*l, l.trim_end_matches(".so").replace('_', "-"))),
    );
    for (built, upstream) in libraries {
        let library = artifact(built);
        let expected = format!("{upstream}.so.{major}");
        assert_eq!(
            soname(&library).as_deref(),
            Some(expected.as_str()),
            "{}",
            library.display()
        );
        let link = artifact_dir().join(&expected);
        assert_eq!(
            std::fs::read_link(&link)
                .unwrap_or_else(|e| panic!("{}: not a symbolic link: {e}", link.display())),
            Path::new(built),
            "{} must point at {built}, relatively",
            link.display()
        );
    }

    // A program linked with -lvaccel asks for libvaccel.so.0 and finds it there (its rpath).
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("classify");
    build_program(&[c_source("classify.c")], &exe);
    let out = check(std::process::Command::new("readelf").arg("-d").arg(&exe));
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(
        dynamic.contains(&format!("Shared library: [libvaccel.so.{major}]")),
        "{dynamic}"
    );
    let mut cmd = program(&exe, work.path());
    cmd.arg(workspace_root().join("examples/data/example.jpg"))
        .arg("1")
        .env("VACCEL_PLUGINS", "noop");
    let out = check(&mut cmd);
    assert_lines_in_order(&cmd, &out, &["Initialized session with id: 1"]);
}

#[test]
fn upstream_file_names_link_to_the_built_libraries() {
    // The build scripts link `libvaccel-<name>.so` to cargo's `libvaccel_<name>.so`.
    for lib in PLUGIN_LIBS {
        let built = artifact(lib);
        let upstream = artifact_dir().join(lib.replace('_', "-"));
        let target = std::fs::read_link(&upstream)
            .unwrap_or_else(|e| panic!("{}: not a symbolic link: {e}", upstream.display()));
        assert_eq!(
            target,
            Path::new(lib),
            "{} must point at {lib}, relatively",
            upstream.display()
        );
        assert_eq!(
            upstream.canonicalize().unwrap(),
            built.canonicalize().unwrap()
        );
    }

    // Loaded by its full path, as upstream's own tests load it (spec §11).
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("classify");
    build_program(&[c_source("classify.c")], &exe);
    let noop = artifact_dir().join("libvaccel-noop.so");
    let mut cmd = program(&exe, work.path());
    cmd.arg(workspace_root().join("examples/data/example.jpg"))
        .arg("1")
        .env("VACCEL_PLUGINS", &noop)
        .env("VACCEL_LOG_LEVEL", "4");
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
    // From the file, not resolved to the bundled twin.
    let loaded = format!("Loaded plugin noop from {}", noop.display());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&loaded),
        "missing {loaded:?}\n{}",
        context(&cmd, &out)
    );
}
