//! The vAccel logger: a [`log::Log`] writing upstream's (slog's) line format.
//!
//! ```text
//! 2024.05.17-14:03:27.41 - \x1b[32m<info>\x1b[0m vAccel 0.1.0
//! ```
//!
//! [`init`] installs it process-wide (or reconfigures it); a [`Logger`] can also be built on its
//! own, which is how it is tested without touching the global logger.
//!
//! ```no_run
//! use vaccel_core::config::Config;
//! use vaccel_core::types::LogLevel;
//!
//! vaccel_core::logging::init(&Config::default().with_log_level(Some(LogLevel::Info)))?;
//! log::info!("vAccel is up");
//! # Ok::<(), vaccel_core::error::Error>(())
//! ```

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{
    DateTime, Datelike as _, FixedOffset, Local, Offset as _, TimeZone, Timelike as _, Utc,
};
use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::types::LogLevel;

/// Longest message written, in bytes (slog's limit); longer ones are cut at a char boundary.
pub const MAX_MESSAGE_LEN: usize = 8196;

/// The process-wide logger [`init`] installs. It starts disabled so that installing it before
/// it is configured cannot emit anything.
static LOGGER: Logger = Logger::disabled();

/// Serialises [`init`] so that concurrent calls cannot mix one's level with another's
/// destination.
static INIT: Mutex<()> = Mutex::new(());

/// Installs the vAccel logger process-wide on the first call and reconfigures it (level and
/// destination) on later ones.
///
/// The level comes from `config.log_level` (`None` turns logging off) and is also set as
/// [`log::max_level`], so disabled log calls cost a single comparison. The destination is
/// `config.log_file`: unset or `/dev/stdout` is stdout, `/dev/stderr` is stderr, anything else
/// is a file appended to (created if missing). With logging off the file is not opened.
///
/// Differences from upstream, all deliberate: a second call re-applies the log settings
/// (upstream's re-bootstrap keeps the old ones); `/dev/stderr` really goes to stderr (upstream
/// keeps writing to stdout); and the log file is exactly the path given (upstream writes
/// `./<name>-YYYY-MM-DD.log` relative to the working directory, even for absolute paths).
///
/// If the application already installed a logger of its own, that logger is left alone (it
/// decides what is shown) and this returns `Ok`.
///
/// # Errors
///
/// [`Error::Io`] naming the path when the log file cannot be opened; the logger then keeps its
/// previous settings.
pub fn init(config: &Config) -> Result<()> {
    let _serialised = INIT.lock().unwrap_or_else(PoisonError::into_inner);

    if !ours_installed() && log::set_logger(&LOGGER).is_err() {
        log::debug!("An application logger is installed; vAccel's log settings are not applied");
        return Ok(());
    }
    LOGGER.reconfigure(config)?;
    log::set_max_level(LOGGER.level());
    Ok(())
}

/// Whether the global logger is [`LOGGER`] (compared by address: `log` offers no other way).
fn ours_installed() -> bool {
    std::ptr::addr_eq(log::logger() as *const dyn Log, &raw const LOGGER)
}

/// The `log` filter for a vAccel level; `None` is off.
pub fn level_filter(level: Option<LogLevel>) -> LevelFilter {
    match level {
        None => LevelFilter::Off,
        Some(LogLevel::Error) => LevelFilter::Error,
        Some(LogLevel::Warn) => LevelFilter::Warn,
        Some(LogLevel::Info) => LevelFilter::Info,
        Some(LogLevel::Debug) => LevelFilter::Debug,
    }
}

/// Formats one log line as upstream does:
/// `YYYY.MM.DD-HH:MM:SS.CC - \x1b[<color>m<tag>\x1b[0m <message>\n`, with `CC` the
/// centiseconds of `now`. Only the tag is coloured. `message` is cut to [`MAX_MESSAGE_LEN`]
/// bytes (at a char boundary).
pub fn format_line<Tz: TimeZone>(level: Level, message: &str, now: DateTime<Tz>) -> String {
    let (color, tag) = match level {
        Level::Error => (31, "error"),
        Level::Warn => (33, "warn"),
        Level::Info => (32, "info"),
        Level::Debug => (34, "debug"),
        Level::Trace => (36, "trace"),
    };
    // A leap second reports 1000-1999 ms; keep the field two digits wide.
    let centis = (now.timestamp_subsec_millis() / 10).min(99);
    let message = truncate(message, MAX_MESSAGE_LEN);
    let mut line = String::with_capacity(40 + message.len());
    // Writing to a String cannot fail.
    let _ = writeln!(
        line,
        "{:04}.{:02}.{:02}-{:02}:{:02}:{:02}.{centis:02} - \x1b[{color}m<{tag}>\x1b[0m {message}",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
    );
    line
}

/// The longest prefix of `text` of at most `max` bytes that ends at a char boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Where log lines go.
#[derive(Debug)]
enum Sink {
    Stdout,
    Stderr,
    /// A file opened for appending.
    File {
        /// As configured, for diagnostics.
        path: PathBuf,
        file: File,
    },
}

impl Sink {
    /// The sink for `log_file` (see [`init`] for the rules).
    fn open(log_file: Option<&Path>) -> Result<Sink> {
        let Some(path) = log_file else {
            return Ok(Sink::Stdout);
        };
        if path == Path::new("/dev/stdout") {
            return Ok(Sink::Stdout);
        }
        if path == Path::new("/dev/stderr") {
            return Ok(Sink::Stderr);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(format!("open log file {}", path.display()), e))?;
        Ok(Sink::File {
            path: path.to_owned(),
            file,
        })
    }

    /// Writes one whole line with a single `write_all`, so that with `O_APPEND` even several
    /// processes sharing the file do not split each other's lines.
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            // Rust's stdout is line-buffered: the trailing newline flushes it.
            Sink::Stdout => io::stdout().lock().write_all(line),
            Sink::Stderr => {
                let mut stderr = io::stderr().lock();
                stderr.write_all(line)?;
                stderr.flush()
            }
            Sink::File { file, .. } => {
                file.write_all(line)?;
                file.flush()
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().flush(),
            Sink::Stderr => io::stderr().flush(),
            Sink::File { file, .. } => file.flush(),
        }
    }
}

/// A logger writing upstream's line format to stdout, stderr or a file.
///
/// Each line is written whole under a lock, so lines from several threads never interleave.
#[derive(Debug)]
pub struct Logger {
    /// The [`LevelFilter`] (as `usize`) above which records are dropped; atomic so that
    /// [`Log::enabled`] takes no lock.
    level: AtomicUsize,
    /// Local time's offset from UTC in seconds, taken when (re)configured. Reading the local
    /// zone on every line would go through chrono's thread-local cache, which is already gone
    /// when a library's destructor logs at process exit (and then panics).
    utc_offset: AtomicI32,
    sink: Mutex<Sink>,
}

impl Logger {
    /// A logger configured from `config` (level and destination), not installed anywhere.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path when the log file cannot be opened.
    pub fn new(config: &Config) -> Result<Logger> {
        let logger = Logger::disabled();
        logger.reconfigure(config)?;
        Ok(logger)
    }

    /// A logger that logs nothing, to stdout once enabled.
    const fn disabled() -> Logger {
        Logger {
            level: AtomicUsize::new(LevelFilter::Off as usize),
            utc_offset: AtomicI32::new(0),
            sink: Mutex::new(Sink::Stdout),
        }
    }

    /// Applies `config`'s level and destination. The file is opened before anything changes, so
    /// on error the logger keeps its previous settings; with logging off it is not opened at all.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path when the log file cannot be opened.
    pub fn reconfigure(&self, config: &Config) -> Result<()> {
        let level = level_filter(config.log_level);
        let sink = if level == LevelFilter::Off {
            Sink::Stdout
        } else {
            Sink::open(config.log_file.as_deref())?
        };
        let mut current = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        // Lines already written to the old destination must not be lost with it.
        let _ = current.flush();
        *current = sink;
        self.utc_offset
            .store(Local::now().offset().local_minus_utc(), Ordering::Relaxed);
        self.level.store(level as usize, Ordering::Relaxed);
        Ok(())
    }

    /// The most verbose level this logger writes.
    pub fn level(&self) -> LevelFilter {
        match self.level.load(Ordering::Relaxed) {
            1 => LevelFilter::Error,
            2 => LevelFilter::Warn,
            3 => LevelFilter::Info,
            4 => LevelFilter::Debug,
            5 => LevelFilter::Trace,
            _ => LevelFilter::Off,
        }
    }

    /// The file this logger appends to, if it writes to one.
    pub fn log_file(&self) -> Option<PathBuf> {
        match &*self.sink.lock().unwrap_or_else(PoisonError::into_inner) {
            Sink::File { path, .. } => Some(path.clone()),
            Sink::Stdout | Sink::Stderr => None,
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Formatted outside the lock: only the write is serialised.
        let message = record.args().to_string();
        let offset = FixedOffset::east_opt(self.utc_offset.load(Ordering::Relaxed))
            .unwrap_or_else(|| Utc.fix());
        let line = format_line(record.level(), &message, Utc::now().with_timezone(&offset));
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        // A logger has nowhere to report its own write failures.
        let _ = sink.write_line(line.as_bytes());
    }

    fn flush(&self) {
        let _ = self
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests may panic
mod tests {
    use std::sync::Arc;

    use chrono::{NaiveDate, TimeZone as _};

    use super::*;

    /// 2024-03-05 06:07:08.129 local time (a date with no DST transition anywhere).
    fn fixed_now() -> DateTime<Local> {
        let naive = NaiveDate::from_ymd_opt(2024, 3, 5)
            .unwrap()
            .and_hms_milli_opt(6, 7, 8, 129)
            .unwrap();
        Local.from_local_datetime(&naive).single().unwrap()
    }

    fn log_to(logger: &Logger, level: Level, message: &str) {
        logger.log(
            &Record::builder()
                .level(level)
                .args(format_args!("{message}"))
                .build(),
        );
    }

    #[test]
    fn line_format_matches_upstream() {
        let now = fixed_now();
        let cases = [
            (Level::Error, "\x1b[31m<error>\x1b[0m"),
            (Level::Warn, "\x1b[33m<warn>\x1b[0m"),
            (Level::Info, "\x1b[32m<info>\x1b[0m"),
            (Level::Debug, "\x1b[34m<debug>\x1b[0m"),
            (Level::Trace, "\x1b[36m<trace>\x1b[0m"),
        ];
        for (level, tag) in cases {
            assert_eq!(
                format_line(level, "vAccel 0.1.0", now),
                format!("2024.03.05-06:07:08.12 - {tag} vAccel 0.1.0\n")
            );
        }
        assert_eq!(
            format_line(Level::Info, "", now),
            "2024.03.05-06:07:08.12 - \x1b[32m<info>\x1b[0m \n"
        );
    }

    #[test]
    fn long_messages_are_truncated_at_a_char_boundary() {
        let now = fixed_now();
        let prefix = "2024.03.05-06:07:08.12 - \x1b[32m<info>\x1b[0m ";

        let exact = "a".repeat(MAX_MESSAGE_LEN);
        assert_eq!(
            format_line(Level::Info, &exact, now),
            format!("{prefix}{exact}\n")
        );

        let long = "b".repeat(MAX_MESSAGE_LEN + 100);
        let line = format_line(Level::Info, &long, now);
        assert_eq!(line.len(), prefix.len() + MAX_MESSAGE_LEN + 1);

        // 'é' is two bytes: byte MAX_MESSAGE_LEN falls inside the last one that would fit.
        let mut multi = "c".repeat(MAX_MESSAGE_LEN - 1);
        multi.push_str("éé");
        let line = format_line(Level::Info, &multi, now);
        let message = line
            .strip_prefix(prefix)
            .unwrap()
            .strip_suffix('\n')
            .unwrap();
        assert_eq!(message, "c".repeat(MAX_MESSAGE_LEN - 1));

        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn level_filters_follow_the_vaccel_levels() {
        assert_eq!(level_filter(None), LevelFilter::Off);
        assert_eq!(level_filter(Some(LogLevel::Error)), LevelFilter::Error);
        assert_eq!(level_filter(Some(LogLevel::Warn)), LevelFilter::Warn);
        assert_eq!(level_filter(Some(LogLevel::Info)), LevelFilter::Info);
        assert_eq!(level_filter(Some(LogLevel::Debug)), LevelFilter::Debug);
        for filter in LevelFilter::iter() {
            let logger = Logger::disabled();
            logger.level.store(filter as usize, Ordering::Relaxed);
            assert_eq!(logger.level(), filter);
        }
    }

    #[test]
    fn logs_to_a_file_with_the_level_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vaccel.log");
        std::fs::write(&path, "existing\n").unwrap();
        let config = Config::default()
            .with_log_level(Some(LogLevel::Info))
            .with_log_file(&path);
        let logger = Logger::new(&config).unwrap();
        assert_eq!(logger.log_file(), Some(path.clone()));

        log_to(&logger, Level::Error, "an error");
        log_to(&logger, Level::Info, "some info");
        log_to(&logger, Level::Debug, "hidden debug");

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text:?}");
        assert_eq!(lines[0], "existing", "the file is appended to");
        assert!(
            lines[1].ends_with(" - \x1b[31m<error>\x1b[0m an error"),
            "{text:?}"
        );
        assert!(
            lines[2].ends_with(" - \x1b[32m<info>\x1b[0m some info"),
            "{text:?}"
        );
        // YYYY.MM.DD-HH:MM:SS.CC
        let stamp = lines[1].split(' ').next().unwrap();
        assert_eq!(stamp.len(), 22, "{stamp}");
        assert_eq!(&stamp[4..5], ".");
        assert_eq!(&stamp[10..11], "-");
        assert_eq!(&stamp[19..20], ".");
    }

    #[test]
    fn reconfigure_changes_level_and_destination() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.log");
        let second = dir.path().join("second.log");
        let logger = Logger::new(&Config::default().with_log_file(&first)).unwrap();
        assert_eq!(logger.level(), LevelFilter::Error);
        log_to(&logger, Level::Warn, "dropped");
        log_to(&logger, Level::Error, "one");

        let debug = Config::default()
            .with_log_level(Some(LogLevel::Debug))
            .with_log_file(&second);
        logger.reconfigure(&debug).unwrap();
        assert_eq!(logger.level(), LevelFilter::Debug);
        log_to(&logger, Level::Debug, "two");

        let first_text = std::fs::read_to_string(&first).unwrap();
        let second_text = std::fs::read_to_string(&second).unwrap();
        assert!(
            first_text.ends_with("<error>\x1b[0m one\n"),
            "{first_text:?}"
        );
        assert_eq!(first_text.lines().count(), 1);
        assert!(
            second_text.ends_with("<debug>\x1b[0m two\n"),
            "{second_text:?}"
        );
        assert_eq!(second_text.lines().count(), 1);

        // A failed reconfiguration keeps the previous settings.
        let bad = Config::default().with_log_file(dir.path().join("missing/dir/x.log"));
        assert!(logger.reconfigure(&bad).is_err());
        assert_eq!(logger.level(), LevelFilter::Debug);
        assert_eq!(logger.log_file(), Some(second));

        // Off: nothing logged, and no file opened.
        let never = dir.path().join("never.log");
        logger
            .reconfigure(&Config::default().with_log_level(None).with_log_file(&never))
            .unwrap();
        log_to(&logger, Level::Error, "dropped");
        assert_eq!(logger.level(), LevelFilter::Off);
        assert!(!never.exists());
    }

    #[test]
    fn stdout_and_stderr_paths_are_not_files() {
        let stdout = Config::default().with_log_file("/dev/stdout");
        assert_eq!(Logger::new(&stdout).unwrap().log_file(), None);
        let stderr = Config::default().with_log_file("/dev/stderr");
        let logger = Logger::new(&stderr).unwrap();
        assert!(matches!(*logger.sink.lock().unwrap(), Sink::Stderr));
        assert!(matches!(
            *Logger::new(&Config::default())
                .unwrap()
                .sink
                .lock()
                .unwrap(),
            Sink::Stdout
        ));
    }

    #[test]
    fn unopenable_file_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/vaccel.log");
        let err = Logger::new(&Config::default().with_log_file(&path)).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(err.code(), crate::error::ErrorCode::ENOENT);
    }

    #[test]
    fn lines_from_many_threads_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("threads.log");
        let config = Config::default()
            .with_log_level(Some(LogLevel::Info))
            .with_log_file(&path);
        let logger = Arc::new(Logger::new(&config).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let logger = Arc::clone(&logger);
                std::thread::spawn(move || {
                    let payload = t.to_string().repeat(500);
                    for _ in 0..200 {
                        log_to(&logger, Level::Info, &payload);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 8 * 200);
        for line in text.lines() {
            let message = line.split("\x1b[0m ").nth(1).unwrap();
            assert_eq!(message.len(), 500, "{line}");
            let first = message.chars().next().unwrap();
            assert!(message.chars().all(|c| c == first), "{line}");
        }
    }

    #[test]
    fn init_reports_an_unopenable_file() {
        // Only checks what stays true whatever other tests do with the global logger
        // concurrently: a failing init changes nothing and reports the path.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/vaccel.log");
        let result = init(&Config::default().with_log_file(&path));
        if ours_installed() {
            let err = result.unwrap_err();
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{err}"
            );
        } else {
            assert!(
                result.is_ok(),
                "another logger is installed: init must leave it"
            );
        }
    }
}
