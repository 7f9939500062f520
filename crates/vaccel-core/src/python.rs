//! Asking a Python interpreter where an installed package lives: how the CPU backends find
//! runtime libraries shipped in wheels (`ai-edge-litert`, `tensorflow-cpu`) without a fixed
//! path.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The variable naming the interpreter to ask.
pub const ENV_PYTHON: &str = "VACCEL_PYTHON";

/// Most bytes of answer read: the scripts print paths.
const MAX_ANSWER: u64 = 64 * 1024;

/// `$VACCEL_PYTHON` when set and non-empty, else `python3`.
pub fn interpreter() -> OsString {
    std::env::var_os(ENV_PYTHON)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from("python3"))
}

/// Runs `python -c script` (stdin closed, stderr discarded) and returns its stdout, killing
/// it when it has not finished within `timeout`. The error says what went wrong, for a
/// "tried: ..." message.
pub fn run(python: &OsStr, script: &str, timeout: Duration) -> Result<String, String> {
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it ({e})"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                // Best effort: the child is ours and overdue.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", timeout.as_secs()));
            }
            Err(e) => return Err(format!("wait failed ({e})")),
        }
    };
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        stdout
            .take(MAX_ANSWER)
            .read_to_string(&mut out)
            .map_err(|e| format!("unreadable answer ({e})"))?;
    }
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interpreters_and_failures_are_errors() {
        let t = Duration::from_secs(5);
        assert!(
            run(OsStr::new("/nonexistent/python"), "", t)
                .unwrap_err()
                .contains("cannot run")
        );
        // `sh -c` takes a script the same way.
        assert_eq!(run(OsStr::new("sh"), "echo /a/b", t).unwrap(), "/a/b\n");
        assert!(
            run(OsStr::new("sh"), "exit 3", t)
                .unwrap_err()
                .contains("exited")
        );
        assert!(
            run(OsStr::new("sh"), "sleep 5", Duration::from_millis(100))
                .unwrap_err()
                .contains("no answer")
        );
    }
}
