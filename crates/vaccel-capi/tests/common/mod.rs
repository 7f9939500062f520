//! Shared helpers of the C API tests: find `libvaccel.so` and the headers, compile C programs
//! with the system compiler, run them with a controlled environment, and report failures with
//! the full command, status and output (rule T2).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The directory holding the artifacts of this build (`target/<profile>`): `libvaccel.so`,
/// `libvaccel.a` and the plugin libraries.
pub fn artifact_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Builds the C libraries the tests use, once per test binary: `cargo test` builds a
/// cdylib-only package's library neither for its own tests nor into the profile directory, so
/// this runs `cargo build` of those packages with the profile and target directory of the
/// running tests (a no-op when they are up to date).
fn ensure_built() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        // `libvaccel.so`/`.a`, then each cdylib alone: `cargo rustc --crate-type cdylib` makes
        // no rlib, which would otherwise sit unhashed in `deps/` beside the ones other test
        // crates link (and break their doctests with two candidates for one crate).
        cargo(&["build", "-p", "vaccel-capi-lib"]);
        for package in [
            "mytestlib",
            "vaccel-plugin-noop-lib",
            "vaccel-plugin-exec-lib",
            "vaccel-plugin-mbench-lib",
            "vaccel-plugin-rpc-lib",
            "vaccel-plugin-blas-lib",
            "vaccel-plugin-tflite-lib",
            "vaccel-plugin-onnx-lib",
            "vaccel-plugin-tf-lib",
            "vaccel-plugin-torch-lib",
        ] {
            cargo(&["rustc", "-p", package, "--lib", "--crate-type", "cdylib"]);
        }
    });
}

/// The agent binary `vaccel-rpc-agent` of this build (built on first use).
pub fn agent_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| cargo(&["build", "-p", "vaccel-agent", "--bin", "vaccel-rpc-agent"]));
    let agent = artifact_dir().join("vaccel-rpc-agent");
    assert!(
        agent.is_file(),
        "{} is missing after building it",
        agent.display()
    );
    agent
}

/// Runs `cargo <args>` in the workspace with the profile and target directory of the
/// running tests, panicking with the full context on failure.
fn cargo(args: &[&str]) {
    let dir = artifact_dir();
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile dir name");
    let target_dir = dir.parent().expect("target dir");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root())
        .args(args)
        .arg("--offline")
        .env("CARGO_TARGET_DIR", target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building the test artifacts failed\n{}",
        describe(&cmd, &out)
    );
}

/// A library artifact of this build, in the profile directory (built on first use).
pub fn artifact(file: &str) -> PathBuf {
    ensure_built();
    let dir = artifact_dir();
    let built = dir.join(file);
    assert!(
        built.exists(),
        "{file} is missing from {} after building it",
        dir.display()
    );
    built
}

/// The bundled plugins built as libraries (cargo's names; installed as `libvaccel-<name>.so`).
pub const PLUGIN_LIBS: [&str; 9] = [
    "libvaccel_noop.so",
    "libvaccel_exec.so",
    "libvaccel_mbench.so",
    "libvaccel_rpc.so",
    "libvaccel_blas.so",
    "libvaccel_tflite.so",
    "libvaccel_onnx.so",
    "libvaccel_tf.so",
    "libvaccel_torch.so",
];

/// `libvaccel.so` of a release build in the tests' target directory (built on first use: its
/// package alone, which is what a workspace build makes of it too, see vaccel-capi's
/// dependencies).
pub fn release_libvaccel() -> PathBuf {
    let dir = artifact_dir();
    let target_dir = dir.parent().expect("target dir");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--release", "-p", "vaccel-capi-lib", "--offline"])
        .env("CARGO_TARGET_DIR", target_dir);
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building the release libvaccel.so failed\n{}",
        describe(&cmd, &out)
    );
    let library = target_dir.join("release/libvaccel.so");
    assert!(library.is_file(), "{} is missing", library.display());
    library
}

/// `libvaccel.so` of this build.
pub fn libvaccel() -> PathBuf {
    artifact("libvaccel.so")
}

/// The public headers.
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// A C source of the tests.
pub fn c_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {cmd:?}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, panicking with the full context if it cannot start.
pub fn output(cmd: &mut Command) -> Output {
    match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!("could not run {cmd:?}: {e}"),
    }
}

/// Runs `cmd` and expects success.
pub fn check(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(out.status.success(), "{}", describe(cmd, &out));
    out
}

/// Compiles C sources into an executable linked with `libvaccel.so` (rpath set).
pub fn build_program(sources: &[PathBuf], out: &Path) {
    let lib_dir = libvaccel().parent().unwrap().to_path_buf();
    let mut cmd = Command::new("cc");
    cmd.args(["-Wall", "-Wextra", "-Werror", "-std=gnu11", "-o"])
        .arg(out)
        .arg("-I")
        .arg(include_dir())
        .args(sources)
        .arg("-L")
        .arg(&lib_dir)
        .arg("-lvaccel")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()));
    check(&mut cmd);
}

/// Compiles C sources into a shared library (a plugin); `defines` are `-D` flags.
pub fn build_plugin(source: &Path, out: &Path, defines: &[&str]) {
    let mut cmd = Command::new("cc");
    cmd.args(["-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o"])
        .arg(out)
        .arg("-I")
        .arg(include_dir())
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg(source);
    check(&mut cmd);
}

/// A command for a test program with a clean vAccel environment: every `VACCEL_*` variable of
/// the test's own environment is removed, the log level is errors only, and the run
/// directory base is private to the test.
pub fn program(exe: &Path, rundir: &Path) -> Command {
    let mut cmd = Command::new(exe);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("VACCEL_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("XDG_RUNTIME_DIR", rundir);
    cmd
}

/// Asserts that `out` succeeded and its stdout contains every line of `expected`, in order.
pub fn assert_lines_in_order(cmd: &Command, out: &Output, expected: &[&str]) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    for want in expected {
        assert!(
            lines.any(|l| l == *want),
            "missing line {want:?} (in order)\n{}",
            describe(cmd, out)
        );
    }
}

/// The full context of a run, for assertion messages.
pub fn context(cmd: &Command, out: &Output) -> String {
    describe(cmd, out)
}

/// The agent binary of this build on a unix socket in its own temporary directory with the
/// given plugins (`--vaccel-config plugins=`), a clean vAccel environment and debug logging;
/// killed on drop, printing its log when the test is failing (rule T6: the one launcher).
pub struct Agent {
    child: Child,
    /// Its `unix://` address.
    pub address: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    pub fn command(plugins: impl AsRef<OsStr>) -> (Command, tempfile::TempDir, String, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("unix://{}/agent.sock", dir.path().display());
        let log = dir.path().join("agent.log");
        let mut cmd = program(&agent_binary(), dir.path());
        cmd.arg("-a")
            .arg(&address)
            .arg("--vaccel-config")
            .arg({
                let mut config = OsString::from("plugins=");
                config.push(plugins);
                config
            })
            // Debug: the registry names the file each plugin came from.
            .env("VACCEL_LOG_LEVEL", "4")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        (cmd, dir, address, log)
    }

    pub fn start(plugins: impl AsRef<OsStr>) -> Agent {
        let (mut cmd, dir, address, log) = Agent::command(plugins);
        let out = std::fs::File::create(&log).unwrap();
        cmd.stdout(out.try_clone().unwrap()).stderr(out);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
        let agent = Agent {
            child,
            address,
            log,
            _dir: dir,
        };
        agent.wait_for_log("Listening on");
        agent
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        self.wait_for_log_count(needle, 1);
    }

    /// Waits until the log holds `count` lines containing `needle` (the agent logs a
    /// session's end when it has released it, which may follow the client's exit).
    pub fn wait_for_log_count(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log_text().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "the agent did not log {needle:?} {count} time(s) within 20 s\n--- agent log ---\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client command: `exe` with the rpc plugin pointed at this agent.
    pub fn client(&self, exe: &Path, work: &Path) -> Command {
        let mut cmd = program(exe, work);
        cmd.env("VACCEL_PLUGINS", "rpc")
            .env("VACCEL_RPC_ADDRESS", &self.address);
        cmd
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- agent log ({}) ---\n{}", self.address, self.log_text());
        }
    }
}

/// Runs a C test program of `tests/c` (`CHECK` lines of `check.h`): it must exit 0, report
/// `, 0 failures` and have run at least `at_least` checks.
pub fn assert_checks_pass(cmd: &mut Command, at_least: usize) {
    let out = output(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(", 0 failures"),
        "{}",
        context(cmd, &out)
    );
    let checks = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(
        checks >= at_least,
        "only {checks} checks ran\n{}",
        context(cmd, &out)
    );
}
