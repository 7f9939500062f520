//! Harness of the end-to-end tests: runs the real example binaries in a controlled environment
//! and reports the whole run (command, environment, status, stdout, stderr) when a check fails.

// Each test crate includes this module and uses only part of it; a panic here is a failed test.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The two spellings of the noop plugin upstream's scripts use: the bundled name and the
/// library file name.
pub const NOOP_PLUGINS: [&str; 2] = ["noop", "libvaccel-noop.so"];

/// How long one example may run before the test kills it and fails.
const TIMEOUT: Duration = Duration::from_secs(120);

/// `VACCEL_EINVAL`.
pub const EINVAL: i32 = 22;
/// `VACCEL_ENOENT`.
pub const ENOENT: i32 = 2;

/// Every example binary.
pub const PROGRAMS: [&str; 23] = [
    "noop",
    "classify",
    "classify_generic",
    "detect",
    "detect_generic",
    "segment",
    "segment_generic",
    "pose",
    "pose_generic",
    "depth",
    "depth_generic",
    "sgemm",
    "sgemm_generic",
    "minmax",
    "minmax_generic",
    "exec",
    "exec_generic",
    "exec_with_resource",
    "exec_serialized",
    "mbench",
    "tf_inference",
    "tflite_inference",
    "torch_inference",
];

/// The path of an example binary that Cargo built for these tests.
pub fn bin(program: &str) -> &'static str {
    match program {
        "noop" => env!("CARGO_BIN_EXE_noop"),
        "classify" => env!("CARGO_BIN_EXE_classify"),
        "classify_generic" => env!("CARGO_BIN_EXE_classify_generic"),
        "detect" => env!("CARGO_BIN_EXE_detect"),
        "detect_generic" => env!("CARGO_BIN_EXE_detect_generic"),
        "segment" => env!("CARGO_BIN_EXE_segment"),
        "segment_generic" => env!("CARGO_BIN_EXE_segment_generic"),
        "pose" => env!("CARGO_BIN_EXE_pose"),
        "pose_generic" => env!("CARGO_BIN_EXE_pose_generic"),
        "depth" => env!("CARGO_BIN_EXE_depth"),
        "depth_generic" => env!("CARGO_BIN_EXE_depth_generic"),
        "sgemm" => env!("CARGO_BIN_EXE_sgemm"),
        "sgemm_generic" => env!("CARGO_BIN_EXE_sgemm_generic"),
        "minmax" => env!("CARGO_BIN_EXE_minmax"),
        "minmax_generic" => env!("CARGO_BIN_EXE_minmax_generic"),
        "exec" => env!("CARGO_BIN_EXE_exec"),
        "exec_generic" => env!("CARGO_BIN_EXE_exec_generic"),
        "exec_with_resource" => env!("CARGO_BIN_EXE_exec_with_resource"),
        "exec_serialized" => env!("CARGO_BIN_EXE_exec_serialized"),
        "mbench" => env!("CARGO_BIN_EXE_mbench"),
        "tf_inference" => env!("CARGO_BIN_EXE_tf_inference"),
        "tflite_inference" => env!("CARGO_BIN_EXE_tflite_inference"),
        "torch_inference" => env!("CARGO_BIN_EXE_torch_inference"),
        other => panic!("no example binary named {other}"),
    }
}

/// A file of `examples/data/`, as a string for the command line.
pub fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The `examples/data/` directory (a stand-in TensorFlow SavedModel directory: the noop plugin
/// does not read the model).
pub fn data_dir() -> String {
    data("")
}

/// Arguments with which `program` runs successfully under the noop plugin, for the checks that
/// apply to every program.
pub fn valid_args(program: &str) -> Vec<String> {
    let lib = || mytestlib().to_string_lossy().into_owned();
    match program {
        "noop" | "sgemm" | "sgemm_generic" => vec![],
        "minmax" | "minmax_generic" => {
            vec![
                "2048".into(),
                data("input_2048.csv"),
                "5".into(),
                "100".into(),
            ]
        }
        "exec" | "exec_generic" | "exec_with_resource" | "exec_serialized" => vec![lib()],
        "mbench" => vec!["1".into(), data("example.jpg")],
        "tf_inference" | "tflite_inference" | "torch_inference" => {
            vec![data("example.jpg"), data_dir(), data("imagenet.txt")]
        }
        image => {
            assert!(PROGRAMS.contains(&image), "unknown program {image}");
            vec![data("example.jpg")]
        }
    }
}

/// `libmytestlib.so`, the library the exec examples call, next to the example binaries.
///
/// `cargo test` builds `mytestlib` only as a dependency of the examples: its cdylib lands in
/// `target/<profile>/deps/` and is not copied up to `target/<profile>/`, where `cargo build`
/// puts it. So the first call runs `cargo build` of `mytestlib` with the profile, target and
/// target directory of the running binaries (a no-op, apart from that copy, when the tests were
/// just built).
pub fn mytestlib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("mytestlib/Cargo.toml");
        // Only the cdylib: an rlib built here would sit unhashed beside the one the examples
        // link, and the doctests compiled after this run would see two `mytestlib` crates.
        cargo_build(
            &manifest,
            &["rustc", "--lib", "--crate-type", "cdylib"],
            "libmytestlib.so",
        )
    })
}

/// The `vaccel-rpc-agent` binary of the workspace, built like [`mytestlib`] (it belongs to
/// another package, so Cargo gives this test no `CARGO_BIN_EXE_` path for it).
pub fn agent_binary() -> &'static Path {
    static AGENT: OnceLock<PathBuf> = OnceLock::new();
    AGENT.get_or_init(|| {
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/vaccel-agent/Cargo.toml");
        cargo_build(
            &manifest,
            &["build", "--bin", "vaccel-rpc-agent"],
            "vaccel-rpc-agent",
        )
    })
}

/// Runs `cargo <what>` (a `build` or `rustc` command) for another package of the workspace with the profile, target and
/// target directory of the running test binaries, and returns `artifact` in the profile directory.
fn cargo_build(manifest: &Path, what: &[&str], artifact: &str) -> PathBuf {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_exec"))
        .parent()
        .expect("binaries live in a directory");
    let profile_dir = bin_dir
        .file_name()
        .and_then(OsStr::to_str)
        .expect("profile directory name");
    // `<target-dir>/<profile>` or, when cross-compiling, `<target-dir>/<triple>/<profile>`;
    // Cargo marks the target directory with CACHEDIR.TAG.
    let parent = bin_dir.parent().expect("profile directory has a parent");
    let (target_dir, triple) = if parent.join("CACHEDIR.TAG").exists() {
        (parent, None)
    } else {
        let grandparent = parent.parent().expect("triple directory has a parent");
        (grandparent, parent.file_name())
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(what)
        .arg("--offline")
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", target_dir);
    match profile_dir {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        custom => {
            cmd.args(["--profile", custom]);
        }
    }
    if let Some(triple) = triple {
        cmd.arg("--target").arg(triple);
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    let built = bin_dir.join(artifact);
    assert!(
        output.status.success() && built.is_file(),
        "building {artifact} failed\ncommand: {cmd:?}\nstatus: {}\nstderr:\n{}\nexpected: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        built.display()
    );
    built
}

/// One finished run of an example.
pub struct Run {
    /// The command line, with the environment that was set, ready to paste into a shell.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command: {}\nstatus: {}\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// The stdout lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The stdout lines that are not log lines (`YYYY.MM.DD-HH:MM:SS.CC - \x1b[..m<level>...`).
    pub fn program_lines(&self) -> Vec<&str> {
        self.stdout.lines().filter(|l| !is_log_line(l)).collect()
    }

    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Fails unless the program exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "the program failed\n{self}");
        self.assert_no_panic()
    }

    /// Fails unless the program exited 0 and printed exactly `expected` to stdout.
    pub fn assert_stdout(&self, expected: &[&str]) -> &Self {
        self.assert_success();
        assert_eq!(self.lines(), expected, "unexpected stdout\n{self}");
        self
    }

    /// Fails unless the program exited with `code`.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "expected exit code {code}\n{self}");
        self.assert_no_panic()
    }

    /// Fails unless stderr contains `text`.
    pub fn assert_stderr_contains(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr does not contain {text:?}\n{self}"
        );
        self
    }

    /// Fails if the program panicked or printed a backtrace.
    pub fn assert_no_panic(&self) -> &Self {
        for word in ["panicked", "backtrace", "RUST_BACKTRACE"] {
            assert!(
                !self.stderr.contains(word) && !self.stdout.contains(word),
                "the output mentions {word:?}\n{self}"
            );
        }
        self
    }
}

/// Whether a stdout line comes from the vAccel logger.
pub fn is_log_line(line: &str) -> bool {
    // `2024.05.17-14:03:27.41 - \x1b[` is 26 bytes; the digits are ASCII.
    line.len() > 26
        && line.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && line.get(22..26) == Some(" - \x1b")
}

/// Variables locating the CPU backends' runtime libraries, passed through to programs.
pub const RUNTIME_VARS: [&str; 3] = ["VACCEL_LITERT_LIB", "VACCEL_TF_LIB", "VACCEL_PYTHON"];

/// Runs `program` with `args` in an environment without any `VACCEL_*` variable except `env`
/// (and [`RUNTIME_VARS`]).
pub fn run<S: AsRef<OsStr>>(program: &str, args: &[S], env: &[(&str, &str)]) -> Run {
    let path = bin(program);
    let mut cmd = Command::new(path);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        // Where the CPU backends' runtimes are stays as the developer set it.
        if key_str.starts_with("VACCEL_") && !RUNTIME_VARS.contains(&key_str.as_ref()) {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());

    let mut command: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    command.push(path.to_owned());
    command.extend(
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned()),
    );
    let command = command.join(" ");

    let mut child = KillOnDrop(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("could not start {command}: {e}")),
    );
    let stdout = drain(child.0.stdout.take());
    let stderr = drain(child.0.stderr.take());
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for the example") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            panic!(
                "{command} did not finish within {TIMEOUT:?}\n--- stdout ---\n{}--- stderr ---\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        command,
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Reads a pipe to its end on a thread, so that a chatty child never blocks on a full pipe.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Kills the child if the test panics before it exits.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `Initialized session with id: 1`, the first line of every program but the inference ones.
pub const SESSION_LINE: &str = "Initialized session with id: 1";

/// `lines` repeated `times` times, after `first`.
pub fn repeated<'a>(first: &[&'a str], lines: &[&'a str], times: usize) -> Vec<&'a str> {
    let mut all = first.to_vec();
    for _ in 0..times {
        all.extend_from_slice(lines);
    }
    all
}

/// A running agent; killed, with its log kept for failure messages, on drop.
pub struct Agent {
    child: Child,
    pub address: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    pub fn start(transport: &str, plugins: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let address = match transport {
            "unix" => format!("unix://{}/agent.sock", dir.path().display()),
            _ => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                format!("tcp://127.0.0.1:{port}")
            }
        };
        let log = dir.path().join("agent.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(agent_binary())
            .args([
                "-a",
                &address,
                "--vaccel-config",
                &format!("plugins={plugins}"),
            ])
            .env_remove("VACCEL_PLUGINS")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let agent = Agent {
            child,
            address,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !agent.log_text().contains("Listening on") {
            assert!(
                Instant::now() < deadline,
                "agent did not start\n{}",
                agent.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    /// The log once it contains every needle (the agent may log just after answering), or as
    /// it is after a few seconds.
    pub fn log_with(&self, needles: &[&str]) -> String {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log_text();
            if needles.iter().all(|n| log.contains(n)) || Instant::now() > end {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn env(&self) -> [(&str, &str); 2] {
        [
            ("VACCEL_PLUGINS", "rpc"),
            ("VACCEL_RPC_ADDRESS", self.address.as_str()),
        ]
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
