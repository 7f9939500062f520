//! The agent's logger: upstream's env_logger format
//! (`[2025-04-11T20:05:14Z INFO  vaccel_rpc_agent] vAccel RPC agent started`), with the agent's
//! own lines filtered by `RUST_LOG` (default `info`) and the runtime's and plugins' lines by the
//! vAccel log level (`VACCEL_LOG_LEVEL` / `log_level`), optionally into the vAccel log file.

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};
use vaccel::LogLevel;

/// Whether a log target belongs to the vAccel runtime or a plugin (not to the agent or its
/// RPC layer).
pub fn is_runtime_target(target: &str) -> bool {
    // Crate names hold no ':': the first one starts the path separator (a char search, cheaper
    // than splitting at "::" on every record).
    let crate_name = target.split(':').next().unwrap_or(target);
    crate_name == "vaccel" || crate_name == "vaccel_core" || crate_name.starts_with("vaccel_plugin")
}

/// A line buffer larger than this (a long message) is not kept for the thread's next line.
const MAX_KEPT_LINE: usize = 16 << 10;

/// Width continuation lines of a multi-line message are indented by (env_logger's default).
const INDENT: usize = 4;

/// env_logger's default format as this build has it (no `color` or `kv` feature):
/// `[2025-04-11T20:05:14Z INFO  target] message`, continuation lines indented by four spaces,
/// written with the timestamp's text kept per second and the line assembled in a buffer
/// kept per thread. The same bytes for a fraction of the work: the agent's per-call info line
/// cost a quarter of a small call's instructions through env_logger's formatter (issue #17).
fn format(buf: &mut env_logger::fmt::Formatter, record: &Record<'_>) -> io::Result<()> {
    thread_local! {
        static LINE: RefCell<(Option<u64>, String, Vec<u8>)> =
            const { RefCell::new((None, String::new(), Vec::new())) };
    }
    let Ok(since_epoch) = SystemTime::now().duration_since(UNIX_EPOCH) else {
        // Before 1970: whatever env_logger prints for it.
        return writeln!(
            buf,
            "[{} {:<5} {}] {}",
            buf.timestamp_seconds(),
            record.level(),
            record.target(),
            record.args()
        );
    };
    let secs = since_epoch.as_secs();
    LINE.with(|cell| {
        let Ok(mut cell) = cell.try_borrow_mut() else {
            // Logging while formatting a log line on this thread: no cache.
            let mut stamp = String::new();
            push_timestamp(&mut stamp, secs);
            let mut line = Vec::new();
            write_line(&mut line, &stamp, record)?;
            return buf.write_all(&line);
        };
        let (cached, stamp, line) = &mut *cell;
        if *cached != Some(secs) {
            stamp.clear();
            push_timestamp(stamp, secs);
            *cached = Some(secs);
        }
        line.clear();
        write_line(line, stamp, record)?;
        let written = buf.write_all(line);
        if line.capacity() > MAX_KEPT_LINE {
            *line = Vec::new();
        }
        written
    })
}

fn write_line(line: &mut Vec<u8>, stamp: &str, record: &Record<'_>) -> io::Result<()> {
    line.push(b'[');
    line.extend_from_slice(stamp.as_bytes());
    let level = record.level().as_str();
    line.push(b' ');
    line.extend_from_slice(level.as_bytes());
    line.resize(line.len() + 5usize.saturating_sub(level.len()), b' ');
    if !record.target().is_empty() {
        line.push(b' ');
        line.extend_from_slice(record.target().as_bytes());
    }
    line.extend_from_slice(b"] ");
    let start = line.len();
    match record.args().as_str() {
        Some(text) => line.extend_from_slice(text.as_bytes()),
        None => write!(line, "{}", record.args())?,
    }
    if line.get(start..).is_some_and(|m| m.contains(&b'\n')) {
        let message = line.split_off(start);
        for (i, part) in message.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                line.push(b'\n');
                line.resize(line.len() + INDENT, b' ');
            }
            line.extend_from_slice(part);
        }
    }
    line.push(b'\n');
    Ok(())
}

/// `secs` after the epoch as RFC 3339 in UTC, to the second (`2025-04-11T20:05:14Z`), as
/// env_logger prints its timestamps (the fraction truncated).
fn push_timestamp(out: &mut String, secs: u64) {
    use std::fmt::Write as _;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rest = secs % 86_400;
    // Days to a civil date (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    );
}

struct AgentLogger {
    agent: env_logger::Logger,
    runtime: env_logger::Logger,
}

impl Log for AgentLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if is_runtime_target(metadata.target()) {
            self.runtime.enabled(metadata)
        } else {
            self.agent.enabled(metadata)
        }
    }

    fn log(&self, record: &Record<'_>) {
        if is_runtime_target(record.target()) {
            self.runtime.log(record);
        } else {
            self.agent.log(record);
        }
    }

    fn flush(&self) {
        self.agent.flush();
        self.runtime.flush();
    }
}

/// Installs the logger. `vaccel_level` filters the runtime's lines (`None`: none), which go to
/// `log_file` when given, else to stderr with the agent's.
pub fn init(vaccel_level: Option<LogLevel>, log_file: Option<&Path>) -> io::Result<()> {
    let agent = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(format)
        .build();
    let mut runtime = env_logger::Builder::new();
    runtime.format(format);
    runtime.filter_level(vaccel::logging::level_filter(vaccel_level));
    if let Some(path) = log_file {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("log file {}: {e}", path.display())))?;
        runtime.target(env_logger::Target::Pipe(Box::new(file)));
    }
    let runtime = runtime.build();
    let max = agent.filter().max(runtime.filter());
    log::set_boxed_logger(Box::new(AgentLogger { agent, runtime }))
        .map_err(|e| io::Error::other(e.to_string()))?;
    log::set_max_level(max.max(LevelFilter::Error));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logs `record` through env_logger's own default format and ours, into buffers.
    fn both(record: &Record<'_>) -> (String, String) {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let lines: Vec<String> = [false, true]
            .into_iter()
            .map(|ours| {
                let sink = Sink::default();
                let mut b = env_logger::Builder::new();
                b.filter_level(LevelFilter::Trace)
                    .target(env_logger::Target::Pipe(Box::new(sink.clone())));
                if ours {
                    b.format(format);
                }
                b.build().log(record);
                String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
            })
            .collect();
        (lines[0].clone(), lines[1].clone())
    }

    #[test]
    fn lines_are_env_loggers_default_format() {
        let multi = "first\nsecond\n\nlast";
        let cases: [(log::Level, &str, std::fmt::Arguments<'_>); 5] = [
            (
                log::Level::Info,
                "vaccel_rpc_agent::ops::genop",
                format_args!("session:{} Genop", 7),
            ),
            (log::Level::Warn, "vaccel_rpc_agent", format_args!("plain")),
            (log::Level::Error, "", format_args!("no target")),
            (log::Level::Debug, "vaccel_core", format_args!("{multi}")),
            (log::Level::Trace, "x", format_args!("")),
        ];
        for (level, target, args) in cases {
            let record = Record::builder()
                .level(level)
                .target(target)
                .args(args)
                .build();
            // The two may straddle a second: retry until they do not.
            let (theirs, ours) = (0..5)
                .map(|_| both(&record))
                .find(|(a, b)| a == b)
                .unwrap_or_else(|| both(&record));
            assert!(ours.ends_with('\n') && ours.len() > 25, "{ours:?}");
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_seconds() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_399, "2000-02-28T23:59:59Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_744_401_914, "2025-04-11T20:05:14Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            let mut s = String::new();
            push_timestamp(&mut s, secs);
            assert_eq!(s, text);
        }
    }

    #[test]
    fn runtime_targets() {
        for t in [
            "vaccel_core::session",
            "vaccel_core",
            "vaccel_plugin_noop",
            "vaccel_plugin_rpc::client",
            "vaccel",
        ] {
            assert!(is_runtime_target(t), "{t}");
        }
        for t in [
            "vaccel_rpc_agent",
            "vaccel_rpc_agent::session",
            "vaccel_rpc::server",
            "vaccel_rpc::transport",
            "vaccel_agent",
        ] {
            assert!(!is_runtime_target(t), "{t}");
        }
    }
}
