//! The documented install command: `scripts/install.sh --prefix DIR` into a temporary
//! prefix, then C programs built with `cc app.c $(pkg-config --cflags --libs vaccel)` and run
//! against the installed library (the acceptance check of the C API): laid out as upstream
//! installs it (versioned libraries with their SONAME links, `slog.h`, the example data in
//! `share/vaccel`), so that what was built against upstream finds what it asks for.
//!
//! Lean artifacts: everything installed is stripped, its debug info split into
//! `.debug/<file>.debug` on request (`--debug-symbols`), and the install stays within its
//! budget. What is checked where, and why: the tests install this build's libraries (the
//! profile the tests run in) and check that every ELF file is stripped, the debug files and
//! debuglinks, and `du -sh` of that install (≤ 300 MB). The 5 MB bound on `libvaccel.so` holds
//! for a release build, so the test builds the release `libvaccel.so` (its package only: the
//! core, the C API and the small plugins, a few minutes from nothing) and strips it. A full
//! release install (the agent with every CPU backend, each plugin library, the example
//! programs) is checked against its 300 MB by `scripts/images.sh`, which CI runs on the
//! release build it makes the images from (a release build of everything would double this
//! suite's time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `VACCEL_VERSION` of `vaccel.h`, the version of the installed files.
fn vaccel_version() -> String {
    let header = std::fs::read_to_string(include_dir().join("vaccel.h")).unwrap();
    header
        .lines()
        .find_map(|l| l.strip_prefix("#define VACCEL_VERSION \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("VACCEL_VERSION in vaccel.h")
        .to_owned()
}

/// `scripts/install.sh --prefix <work>/prefix --no-build` over this build's artifacts.
fn install(work: &Path) -> PathBuf {
    install_with(work, "prefix", &[])
}

/// `scripts/install.sh --prefix <work>/<name> --no-build <extra>` over this build's artifacts.
fn install_with(work: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let prefix = work.join(name);
    // A target directory laid out as `cargo build` leaves it, over this build's artifacts
    // (`cargo test` keeps them in `deps/`).
    let stage = work.join(format!("{name}-target"));
    let release = stage.join("release");
    std::fs::create_dir_all(&release).unwrap();
    for lib in PLUGIN_LIBS.iter().chain(&["libvaccel.so", "libvaccel.a"]) {
        std::os::unix::fs::symlink(artifact(lib), release.join(lib)).unwrap();
    }
    // With the names the libraries' build scripts link beside them.
    for lib in PLUGIN_LIBS {
        let upstream = lib.replace('_', "-");
        std::os::unix::fs::symlink(lib, release.join(format!("{upstream}.0"))).unwrap();
        std::os::unix::fs::symlink(lib, release.join(upstream)).unwrap();
    }
    std::os::unix::fs::symlink("libvaccel.so", release.join("libvaccel.so.0")).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("scripts/install.sh"))
        .arg("--prefix")
        .arg(&prefix)
        .arg("--no-build")
        .arg("--target-dir")
        .arg(&stage)
        .args(extra);
    check(&mut cmd);
    prefix
}

/// The section headers of an ELF file or of each member of an archive (`readelf -S -W`).
fn sections(file: &Path) -> String {
    stdout_of(&check(Command::new("readelf").args(["-S", "-W"]).arg(file)))
}

/// Whether section headers list DWARF sections. `.debug_gdb_scripts` is no debug info: it is
/// loaded with the program (it names rustc's pretty printers), and stripping keeps it.
fn has_debug_info(headers: &str) -> bool {
    headers
        .lines()
        .any(|l| l.contains(" .debug_") && !l.contains(" .debug_gdb_scripts "))
}

/// The regular files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            files.extend(files_under(&path));
        } else if meta.is_file() {
            files.push(path);
        }
    }
    files
}

/// Whether `file` is an ELF object or an archive (what install.sh strips).
fn is_binary(file: &Path) -> bool {
    let bytes = std::fs::read(file).unwrap();
    bytes.starts_with(b"\x7fELF") || bytes.starts_with(b"!<arch>\n")
}

/// `du -sk` of `dir`, in KiB.
fn disk_usage_kib(dir: &Path) -> u64 {
    let out = check(Command::new("du").arg("-sk").arg(dir));
    stdout_of(&out)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("du -sk {}: {}", dir.display(), stdout_of(&out)))
}

#[test]
fn install_strips_everything_and_splits_debug_info_on_request() {
    let work = tempfile::tempdir().unwrap();
    let prefix = install(work.path());
    let installed: Vec<PathBuf> = files_under(&prefix)
        .into_iter()
        .filter(|f| is_binary(f))
        .collect();
    assert!(installed.len() >= 11, "{installed:?}");
    for file in &installed {
        let headers = sections(file);
        assert!(
            !has_debug_info(&headers),
            "{} keeps debug info\n{headers}",
            file.display()
        );
        if file.extension().is_none_or(|e| e != "a") {
            assert!(
                !headers.contains(" .symtab "),
                "{} keeps its symbol table\n{headers}",
                file.display()
            );
        }
    }
    assert!(
        !prefix.join("lib/.debug").exists(),
        "debug info installed without --debug-symbols"
    );
    let kib = disk_usage_kib(&prefix);
    assert!(
        kib <= 300 * 1024,
        "the install takes {kib} KiB, over 300 MB"
    );

    // On request, each library's debug info beside it, named by its debuglink.
    let prefix = install_with(work.path(), "with-debug", &["--debug-symbols"]);
    let version = vaccel_version();
    let lib = prefix.join("lib");
    for stem in std::iter::once("libvaccel".to_owned()).chain(
        PLUGIN_LIBS
            .iter()
            .map(|l| l.trim_end_matches(".so").replace('_', "-")),
    ) {
        let name = format!("{stem}.so.{version}");
        let link = check(
            Command::new("readelf")
                .arg("--string-dump=.gnu_debuglink")
                .arg(lib.join(&name)),
        );
        assert!(
            stdout_of(&link).contains(&format!("{name}.debug")),
            "{name}: no debuglink to {name}.debug\n{}",
            stdout_of(&link)
        );
        let debug = lib.join(".debug").join(format!("{name}.debug"));
        assert!(
            sections(&debug).contains(" .debug_line "),
            "{} holds no line tables",
            debug.display()
        );
        assert!(!has_debug_info(&sections(&lib.join(&name))), "{name}");
    }
}

/// `libvaccel.so` is the core, the C API and the small plugins: at most 5 MB stripped in a
/// release build (upstream's is about 170 KB; the CPU backends are plugin libraries).
#[test]
fn release_libvaccel_so_is_at_most_5_mb_stripped() {
    let library = release_libvaccel();
    let work = tempfile::tempdir().unwrap();
    let stripped = work.path().join("libvaccel.so");
    check(
        Command::new("objcopy")
            .arg("--strip-unneeded")
            .arg(&library)
            .arg(&stripped),
    );
    let size = std::fs::metadata(&stripped).unwrap().len();
    assert!(
        size <= 5 * 1024 * 1024,
        "{} is {size} bytes stripped, over 5 MB",
        library.display()
    );
    // No CPU backend inside: their plugins' names are nowhere in it.
    let strings = std::fs::read(&stripped).unwrap();
    for backend in ["tract-core", "tract-onnx", "faer-"] {
        assert!(
            !strings
                .windows(backend.len())
                .any(|w| w == backend.as_bytes()),
            "libvaccel.so mentions {backend}"
        );
    }
}

/// The SONAME of an ELF library (`readelf -d`).
fn soname(library: &Path) -> String {
    let out = check(Command::new("readelf").arg("-d").arg(library));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| l.split('[').nth(1))
        .and_then(|l| l.split(']').next())
        .unwrap_or_else(|| panic!("{} has no SONAME\n{text}", library.display()))
        .to_owned()
}

/// Builds `source` against the installed headers and library, with `flags` before the
/// `pkg-config` ones.
fn build_installed(prefix: &Path, source: &Path, exe: &Path, flags: &str) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "cc {flags} {} -o {} $(pkg-config --cflags --libs vaccel)",
            source.display(),
            exe.display()
        ))
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"));
    check(&mut cmd);
}

#[test]
fn install_then_build_classify_with_pkg_config() {
    let work = tempfile::tempdir().unwrap();
    let prefix = install(work.path());
    for file in [
        "lib/libvaccel.a",
        "lib/pkgconfig/vaccel.pc",
        "include/vaccel.h",
        "include/slog.h",
        "include/vaccel/session.h",
        "include/vaccel/ops/tf.h",
    ] {
        assert!(prefix.join(file).exists(), "{file} not installed");
    }

    // Each library as upstream installs it: lib<name>.so.<version> with the SONAME
    // lib<name>.so.<major>, and the links lib<name>.so.<major> and lib<name>.so.
    let version = vaccel_version();
    let major = version.split('.').next().unwrap();
    let lib = prefix.join("lib");
    let stems = std::iter::once("libvaccel".to_owned()).chain(
        PLUGIN_LIBS
            .iter()
            .map(|l| l.trim_end_matches(".so").replace('_', "-")),
    );
    for stem in stems {
        let real = lib.join(format!("{stem}.so.{version}"));
        let meta = std::fs::symlink_metadata(&real)
            .unwrap_or_else(|e| panic!("{} not installed: {e}", real.display()));
        assert!(meta.is_file(), "{} is not a file", real.display());
        assert_eq!(soname(&real), format!("{stem}.so.{major}"));
        for (link, to) in [
            (format!("{stem}.so.{major}"), format!("{stem}.so.{version}")),
            (format!("{stem}.so"), format!("{stem}.so.{major}")),
        ] {
            let target = std::fs::read_link(lib.join(&link))
                .unwrap_or_else(|e| panic!("{link}: not a symbolic link: {e}"));
            assert_eq!(target, Path::new(&to), "{link}");
        }
    }
    // The C API beyond the headers' functions, for programs built against upstream's.
    let out = check(
        Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(lib.join("libvaccel.so")),
    );
    let symbols = stdout_of(&out);
    for sym in ["slog_print", "fs_file_read"] {
        assert!(
            symbols.lines().any(|l| l.ends_with(&format!(" T {sym}"))),
            "libvaccel.so does not export {sym}"
        );
    }

    // Upstream's example data where upstream installs it, byte for byte our copies.
    let data = workspace_root().join("examples/data");
    for (installed, ours) in [
        ("images/example.jpg", "example.jpg"),
        ("labels/imagenet.txt", "imagenet.txt"),
        ("input/input_2048.csv", "input_2048.csv"),
        ("models/tf/frozen_graph.pb", "models/tf/frozen_graph.pb"),
        ("models/tf/lstm2.tflite", "models/tf/lstm2.tflite"),
        (
            "models/tf/lstm2/saved_model.pb",
            "models/tf/lstm2/saved_model.pb",
        ),
        (
            "models/tf/lstm2/variables/variables.index",
            "models/tf/lstm2/variables/variables.index",
        ),
        ("models/torch/cnn_trace.pt", "models/torch/cnn_trace.pt"),
    ] {
        let path = prefix.join("share/vaccel").join(installed);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{} missing: {e}", path.display()));
        assert_eq!(
            bytes,
            std::fs::read(data.join(ours)).unwrap(),
            "{installed}"
        );
    }
    let note = std::fs::read_to_string(prefix.join("share/vaccel/README.md")).unwrap();
    assert!(note.contains("Apache-2.0"), "{note}");

    // `pkg-config --cflags --libs vaccel`, then the exact build command of the docs.
    let mut cmd = Command::new("pkg-config");
    cmd.args(["--cflags", "--libs", "vaccel"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"));
    let out = check(&mut cmd);
    let flags = String::from_utf8(out.stdout).unwrap();
    assert!(flags.contains("-lvaccel"), "{flags}");
    let exe = work.path().join("classify");
    build_installed(&prefix, &c_source("classify.c"), &exe, "");
    // It asks the loader for the SONAME, as programs built against upstream do.
    let out = check(Command::new("readelf").arg("-d").arg(&exe));
    assert!(
        stdout_of(&out).contains("Shared library: [libvaccel.so.0]"),
        "{}",
        stdout_of(&out)
    );

    // As upstream's docs run it, on the installed image.
    let image = prefix.join("share/vaccel/images/example.jpg");
    let mut cmd = program(&exe, work.path());
    cmd.arg(&image)
        .arg("1")
        .env("LD_LIBRARY_PATH", &lib)
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

/// Whether `line` is `YYYY.MM.DD-HH:MM:SS.CC - \x1b[<color>m<tag>\x1b[0m <message>`
/// (upstream's slog line, spec §4.3).
fn is_log_line(line: &str, color: &str, tag: &str, message: &str) -> bool {
    let Some((stamp, rest)) = line.split_once(" - ") else {
        return false;
    };
    let shape = "dddd.dd.dd-dd:dd:dd.dd";
    stamp.len() == shape.len()
        && stamp
            .chars()
            .zip(shape.chars())
            .all(|(c, s)| if s == 'd' { c.is_ascii_digit() } else { c == s })
        && rest == format!("\x1b[{color}m<{tag}>\x1b[0m {message}")
}

#[test]
fn log_macros_and_fs_file_read_of_programs_built_like_upstreams() {
    let work = tempfile::tempdir().unwrap();
    let prefix = install(work.path());
    // Upstream's build: C11 with its feature macros, every warning an error.
    let exe = work.path().join("upstream_log");
    build_installed(
        &prefix,
        &c_source("upstream_log.c"),
        &exe,
        "-std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DNDEBUG -O2 -Wall -Wextra -Werror",
    );
    let out = check(
        Command::new("nm")
            .args(["-D", "--undefined-only"])
            .arg(&exe),
    );
    for sym in ["slog_print", "fs_file_read"] {
        assert!(
            stdout_of(&out)
                .lines()
                .any(|l| l.ends_with(&format!(" {sym}"))),
            "the program does not import {sym}: {}",
            stdout_of(&out)
        );
    }
    let input = prefix.join("share/vaccel/input/input_2048.csv");
    let size = std::fs::metadata(&input).unwrap().len();
    let expected = [
        ("31", "error", "an error line: 1"),
        ("33", "warn", "a warning line: two"),
        ("32", "info", "an info line: 3"),
        ("34", "debug", "a debug line: 4.5"),
    ];
    for (level, printed) in [("4", 4), ("2", 2), ("0", 0)] {
        let mut cmd = program(&exe, work.path());
        cmd.arg(&input)
            .env("LD_LIBRARY_PATH", prefix.join("lib"))
            .env("VACCEL_LOG_LEVEL", level);
        let out = check(&mut cmd);
        let stdout = stdout_of(&out);
        let mut lines = stdout.lines();
        for (color, tag, message) in &expected[..printed] {
            assert!(
                lines.any(|l| is_log_line(l, color, tag, message)),
                "VACCEL_LOG_LEVEL={level}: no <{tag}> line {message:?} (in order)\n{}",
                context(&cmd, &out)
            );
        }
        for (_, _, message) in &expected[printed..] {
            assert!(
                !stdout.contains(message),
                "VACCEL_LOG_LEVEL={level}: {message:?} printed\n{}",
                context(&cmd, &out)
            );
        }
        // Upstream never enables trace and fatal.
        assert!(
            !stdout.contains("a trace line") && !stdout.contains("a fatal line"),
            "{}",
            context(&cmd, &out)
        );
        assert!(
            stdout.contains(&format!("read {size} bytes")),
            "{}",
            context(&cmd, &out)
        );
    }
}
