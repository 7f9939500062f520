//! The agent's logger: upstream's env_logger format
//! (`[2025-04-11T20:05:14Z INFO  vaccel_rpc_agent] vAccel RPC agent started`), with the agent's
//! own lines filtered by `RUST_LOG` (default `info`) and the runtime's and plugins' lines by the
//! vAccel log level (`VACCEL_LOG_LEVEL` / `log_level`), optionally into the vAccel log file.

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};
use vaccel::LogLevel;

/// Whether a log target belongs to the vAccel runtime or a plugin (not to the agent or its
/// RPC layer).
pub fn is_runtime_target(target: &str) -> bool {
    // The crate name ends at the first ':' (checked on bytes: this runs for every record).
    let Some(rest) = target.strip_prefix("vaccel") else {
        return false;
    };
    let rest = rest.as_bytes();
    let ends_crate = |tail: &[u8]| tail.first().is_none_or(|&b| b == b':');
    ends_crate(rest)
        || rest.strip_prefix(b"_core").is_some_and(ends_crate)
        || rest.starts_with(b"_plugin")
}

/// A line buffer larger than this (a long message) is not kept for the thread's next line.
const MAX_KEPT_LINE: usize = 16 << 10;

/// Width continuation lines of a multi-line message are indented by (env_logger's default).
const INDENT: usize = 4;

/// env_logger's default format as this build has it (no `color` or `kv` feature):
/// `[2025-04-11T20:05:14Z INFO  target] message`, continuation lines indented by four spaces,
/// assembled in a buffer kept per thread with the line's head kept per second, level and
/// target, and handed to `sink`. The same bytes for a fraction of the work: the agent's
/// per-call info line cost a quarter of a small call's instructions through env_logger's
/// formatter (issue #17).
fn emit(sink: &Sink, record: &Record<'_>) {
    let message = |line: &mut Vec<u8>| {
        match record.args().as_str() {
            Some(text) => line.extend_from_slice(text.as_bytes()),
            // Writing into a Vec cannot fail.
            None => {
                let _ = line.write_fmt(*record.args());
            }
        }
        true
    };
    emit_with(sink, record.level(), record.target(), message);
}

/// A thread's line buffer: `line[..prefix]` is the head of its last line
/// (`[<timestamp> <LEVEL> <target>] `), for the second, level and target in `key`.
struct LineCache {
    /// The timestamp's text for the second `stamp_secs`.
    stamp_secs: Option<u64>,
    stamp: String,
    key: Option<(u64, Level)>,
    target: String,
    prefix: usize,
    line: Vec<u8>,
}

/// Now as seconds since the epoch (the lines' timestamps are to the second) and as
/// nanoseconds (the order of lines from different threads), or the epoch itself for a clock
/// before 1970.
fn now() -> (u64, u64) {
    use nix::time::{ClockId, clock_gettime};
    match clock_gettime(ClockId::CLOCK_REALTIME) {
        Ok(t) => {
            let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(t.tv_nsec()).unwrap_or(0);
            (
                secs,
                secs.saturating_mul(1_000_000_000).saturating_add(nanos),
            )
        }
        Err(_) => (0, 0),
    }
}

/// [`emit`] of a line whose message `message` writes (it says whether that may hold line
/// breaks).
fn emit_with(sink: &Sink, level: Level, target: &str, message: impl FnOnce(&mut Vec<u8>) -> bool) {
    thread_local! {
        static LINE: RefCell<LineCache> = const {
            RefCell::new(LineCache {
                stamp_secs: None,
                stamp: String::new(),
                key: None,
                target: String::new(),
                prefix: 0,
                line: Vec::new(),
            })
        };
    }
    let (secs, at) = now();
    let urgent = level <= Level::Warn;
    LINE.with(|cell| {
        let Ok(mut cell) = cell.try_borrow_mut() else {
            // Logging while formatting a log line on this thread: no cache.
            let mut stamp = String::new();
            push_timestamp(&mut stamp, secs);
            let mut line = Vec::new();
            let prefix = write_prefix(&mut line, &stamp, level, target);
            finish_line(&mut line, prefix, message);
            sink.put(&line, at, urgent);
            return;
        };
        let cache = &mut *cell;
        if cache.key == Some((secs, level)) && cache.target == target {
            cache.line.truncate(cache.prefix);
        } else {
            if cache.stamp_secs != Some(secs) {
                cache.stamp.clear();
                push_timestamp(&mut cache.stamp, secs);
                cache.stamp_secs = Some(secs);
            }
            cache.line.clear();
            cache.prefix = write_prefix(&mut cache.line, &cache.stamp, level, target);
            cache.key = Some((secs, level));
            target.clone_into(&mut cache.target);
        }
        finish_line(&mut cache.line, cache.prefix, message);
        sink.put(&cache.line, at, urgent);
        if cache.line.capacity() > MAX_KEPT_LINE {
            cache.line = Vec::new();
            cache.key = None;
        }
    });
}

/// How long an info (or debug, trace) line may wait before it is written, gathered with the
/// lines that follow it into one write.
const BATCH_DELAY: Duration = Duration::from_millis(20);

/// A thread's lines waiting past this many bytes are written at once by that thread.
const MAX_PENDING: usize = 64 << 10;

/// Where lines go. A warning or error is written at once, after every line before it; other
/// lines are gathered for up to `BATCH_DELAY` and written together by a thread of their own,
/// so that a call's info line costs a copy, not a `write` (at 100k calls a second, one
/// `write` per call was a fifth of a small call's time; issue #17). Each logging thread keeps
/// its lines in a lane of its own, so that threads serving different connections on different
/// CPUs do not take turns on one lock and one buffer for every call; the writer merges the
/// lanes by the time each line was logged. `flush_with` (the agent flushes before it exits)
/// writes what waits.
struct Sink {
    /// Tells the threads' lanes apart from other sinks' (tests start several).
    id: u64,
    /// Held while writing, so that lines leave in the order they were logged.
    out: Mutex<Box<dyn Write + Send>>,
    /// The lanes of the threads that logged through this sink; a lane whose thread ended is
    /// dropped once written.
    lanes: Mutex<Vec<Arc<Mutex<Lane>>>>,
    /// Some lane holds lines the batch writer was told of (it clears this before it takes
    /// them): a thread adding a line wakes it only when this is not set.
    told: AtomicBool,
    signal: Mutex<()>,
    wake: Condvar,
    /// The merge's buffers, kept between batches.
    spare: Mutex<Merge>,
}

/// A thread's waiting lines, with when each was logged (the merge's order).
#[derive(Default)]
struct Lane {
    bytes: Vec<u8>,
    /// `(nanoseconds since the epoch, end of the line in bytes)` for each line.
    ends: Vec<(u64, usize)>,
}

#[derive(Default)]
struct Merge {
    /// The lanes' contents as taken.
    taken: Vec<Lane>,
    /// `(time, lane, start, end)` of every line taken.
    order: Vec<(u64, usize, usize, usize)>,
    batch: Vec<u8>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

static SINK_IDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's lane in each sink it logged through, by sink id.
    static LANES: RefCell<Vec<(u64, Arc<Mutex<Lane>>)>> = const { RefCell::new(Vec::new()) };
}

impl Sink {
    /// A sink writing to `out`, with its batch writer thread.
    fn start(out: Box<dyn Write + Send>, name: &str) -> io::Result<Arc<Sink>> {
        let sink = Arc::new(Sink {
            id: SINK_IDS.fetch_add(1, Ordering::Relaxed),
            out: Mutex::new(out),
            lanes: Mutex::new(Vec::new()),
            told: AtomicBool::new(false),
            signal: Mutex::new(()),
            wake: Condvar::new(),
            spare: Mutex::new(Merge::default()),
        });
        let writer = Arc::clone(&sink);
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || writer.write_batches())?;
        Ok(sink)
    }

    /// Adds `line`, logged at `at` (nanoseconds since the epoch).
    fn put(&self, line: &[u8], at: u64, urgent: bool) {
        if urgent {
            self.flush_with(line);
            return;
        }
        if self.add_to_lane(line, at) {
            self.flush_with(&[]);
        } else if !self.told.load(Ordering::Acquire) && !self.told.swap(true, Ordering::AcqRel) {
            // Under the writer's lock, so that the wake-up cannot fall between its test of
            // `told` and its wait.
            let _signal = lock(&self.signal);
            self.wake.notify_one();
        }
    }

    /// Adds `line` to this thread's lane (made on its first line); says whether the lane is
    /// full.
    fn add_to_lane(&self, line: &[u8], at: u64) -> bool {
        let add = |lane: &mut Lane| {
            lane.bytes.extend_from_slice(line);
            lane.ends.push((at, lane.bytes.len()));
            lane.bytes.len() >= MAX_PENDING
        };
        let added = LANES.try_with(|lanes| {
            let mut lanes = lanes.try_borrow_mut().ok()?;
            let lane = match lanes.iter().position(|(id, _)| *id == self.id) {
                Some(i) => &lanes.get(i)?.1,
                None => {
                    let lane = Arc::new(Mutex::new(Lane::default()));
                    lock(&self.lanes).push(Arc::clone(&lane));
                    lanes.push((self.id, lane));
                    &lanes.last()?.1
                }
            };
            Some(add(&mut lock(lane)))
        });
        match added {
            Ok(Some(full)) => full,
            // A thread ending (its lanes gone) or logging from inside a lane look-up: the
            // line is written now.
            _ => {
                self.flush_with(line);
                false
            }
        }
    }

    /// Writes the waiting lines, in the order they were logged, then `line`.
    fn flush_with(&self, line: &[u8]) {
        let mut out = lock(&self.out);
        let mut spare = lock(&self.spare);
        let merge = &mut *spare;
        self.take_lanes(merge);
        let Merge {
            taken,
            order,
            batch,
        } = merge;
        batch.clear();
        let mut busy = taken.iter().filter(|l| !l.bytes.is_empty());
        let (first, second) = (busy.next(), busy.next());
        let lines: &[u8] = match (first, second) {
            // One thread's lines and nothing after them: written as they lie.
            (Some(only), None) if line.is_empty() => &only.bytes,
            _ => {
                // Each lane is in order already: with two or more, a stable sort by time
                // keeps a thread's lines (and lines logged in the same nanosecond) as they
                // were.
                if second.is_some() {
                    order.sort_by_key(|&(at, ..)| at);
                }
                for &(_, lane, start, end) in order.iter() {
                    if let Some(bytes) = taken.get(lane).and_then(|l| l.bytes.get(start..end)) {
                        batch.extend_from_slice(bytes);
                    }
                }
                batch.extend_from_slice(line);
                batch
            }
        };
        // A log line that cannot be written has nowhere to be reported.
        let _ = out.write_all(lines);
        let _ = out.flush();
        if batch.capacity() > MAX_PENDING {
            *batch = Vec::new();
        }
        order.clear();
        for lane in taken
            .iter_mut()
            .filter(|l| l.bytes.capacity() > MAX_PENDING)
        {
            *lane = Lane::default();
        }
    }

    /// Moves every lane's lines into `merge.taken` (and their places into `merge.order`),
    /// leaving each lane the buffers taken from it last time; drops the lanes of threads
    /// that ended.
    fn take_lanes(&self, merge: &mut Merge) {
        let mut lanes = lock(&self.lanes);
        // What the last batch took was written: no slot may offer it again. One slot per
        // lane: the slots of threads that ended since go (with their buffers).
        merge.taken.truncate(lanes.len());
        for slot in &mut merge.taken {
            slot.bytes.clear();
            slot.ends.clear();
        }
        merge.taken.resize_with(lanes.len(), Lane::default);
        let mut i = 0;
        lanes.retain(|lane| {
            // Only this list holds the lane: its thread ended and adds nothing more.
            let ended = Arc::strong_count(lane) == 1;
            let Some(slot) = merge.taken.get_mut(i) else {
                return !ended;
            };
            let mut lane = lock(lane);
            std::mem::swap(&mut *lane, slot);
            let mut start = 0;
            for &(at, end) in &slot.ends {
                merge.order.push((at, i, start, end));
                start = end;
            }
            i += 1;
            !ended
        });
    }

    /// The batch writer: waits for a first line, lets the lines after it gather for
    /// `BATCH_DELAY`, writes them all.
    fn write_batches(&self) {
        loop {
            {
                let mut signal = lock(&self.signal);
                while !self.told.load(Ordering::Acquire) {
                    signal = self
                        .wake
                        .wait(signal)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
            std::thread::sleep(BATCH_DELAY);
            // Cleared before the lanes are taken: a line added after this wakes us again.
            self.told.store(false, Ordering::Release);
            self.flush_with(&[]);
        }
    }
}

/// Writes a line's head, `[<timestamp> <LEVEL> <target>] `, into the empty `line`; returns
/// its length.
fn write_prefix(line: &mut Vec<u8>, stamp: &str, level: Level, target: &str) -> usize {
    line.push(b'[');
    line.extend_from_slice(stamp.as_bytes());
    let level = level.as_str();
    line.push(b' ');
    line.extend_from_slice(level.as_bytes());
    line.resize(line.len() + 5usize.saturating_sub(level.len()), b' ');
    if !target.is_empty() {
        line.push(b' ');
        line.extend_from_slice(target.as_bytes());
    }
    line.extend_from_slice(b"] ");
    line.len()
}

/// Appends the message to a line's head of `start` bytes, continuation lines indented, and
/// the line's end.
fn finish_line(line: &mut Vec<u8>, start: usize, message: impl FnOnce(&mut Vec<u8>) -> bool) {
    let may_break = message(line);
    if may_break && line.get(start..).is_some_and(|m| m.contains(&b'\n')) {
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

/// Filters with env_logger's filters (`RUST_LOG` syntax), writes through `Sink`s.
struct AgentLogger {
    agent: env_logger::Logger,
    runtime: env_logger::Logger,
    stderr: Arc<Sink>,
    /// The runtime's lines' sink: the log file, or `stderr`.
    runtime_out: Arc<Sink>,
}

impl AgentLogger {
    /// Whether `record` passes the filters of its target's side (agent or runtime).
    fn accepts(&self, record: &Record<'_>) -> bool {
        if is_runtime_target(record.target()) {
            self.runtime.matches(record)
        } else {
            self.agent.matches(record)
        }
    }

    /// Where lines of `target` go.
    fn sink(&self, target: &str) -> &Sink {
        if is_runtime_target(target) {
            &self.runtime_out
        } else {
            &self.stderr
        }
    }
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
        if self.accepts(record) {
            emit(self.sink(record.target()), record);
        }
    }

    fn flush(&self) {
        self.stderr.flush_with(&[]);
        self.runtime_out.flush_with(&[]);
    }
}

/// The logger [`init`] installed, for [`info_line`].
static INSTALLED: OnceLock<&'static AgentLogger> = OnceLock::new();

/// A log message with no line break in it (one that had some has them as spaces), with the
/// filters' verdict on it once it was logged.
#[derive(Debug)]
pub(crate) struct OneLine {
    text: Box<str>,
    /// `(target address, target length, accepted)` for the first target it was logged under.
    verdict: OnceLock<(usize, usize, bool)>,
}

impl OneLine {
    pub(crate) fn new(text: String) -> OneLine {
        let text = if text.contains('\n') {
            text.replace('\n', " ").into_boxed_str()
        } else {
            text.into_boxed_str()
        };
        OneLine {
            text,
            verdict: OnceLock::new(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

/// Logs `message` at info level under `target`, as `log::info!(target: target, "{message}")`
/// does (the same filters, the same line), without `log`'s formatting machinery when the
/// agent's logger is the one installed: the per-call lines (`session:N Genop`) take this
/// path, their text prepared once per session (issue #17).
pub(crate) fn info_line(target: &str, message: &OneLine) {
    let text = message.as_str();
    if log::max_level() < Level::Info {
        return;
    }
    match INSTALLED.get() {
        Some(logger) => {
            // The filters are fixed once installed, and may look at the message: the
            // verdict is kept with the message, for the target it was first logged under
            // (a constant: the per-call lines' targets are).
            let key = (target.as_ptr() as usize, target.len());
            let verdict = |message: &str| {
                let args = format_args!("{message}");
                let record = Record::builder()
                    .level(Level::Info)
                    .target(target)
                    .args(args)
                    .build();
                logger.accepts(&record)
            };
            let accepted = match message
                .verdict
                .get_or_init(|| (key.0, key.1, verdict(text)))
            {
                &(ptr, len, accepted) if (ptr, len) == key => accepted,
                _ => verdict(text),
            };
            if accepted {
                emit_with(logger.sink(target), Level::Info, target, |line| {
                    line.extend_from_slice(text.as_bytes());
                    false
                });
            }
        }
        None => log::info!(target: target, "{text}"),
    }
}

/// Installs the logger. `vaccel_level` filters the runtime's lines (`None`: none), which go to
/// `log_file` when given, else to stderr with the agent's. Lines below warnings are written in
/// batches (see `Sink`): call `log::logger().flush()` before exiting.
pub fn init(vaccel_level: Option<LogLevel>, log_file: Option<&Path>) -> io::Result<()> {
    let agent =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let runtime = env_logger::Builder::new()
        .filter_level(vaccel::logging::level_filter(vaccel_level))
        .build();
    let stderr = Sink::start(Box::new(io::stderr()), "log-writer")?;
    let runtime_out = match log_file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("log file {}: {e}", path.display()))
                })?;
            Sink::start(Box::new(file), "log-file-writer")?
        }
        None => Arc::clone(&stderr),
    };
    let max = agent.filter().max(runtime.filter());
    // Installed once per process, for the rest of it: leaked, so that `info_line` can reach
    // it as the `log` crate does.
    let logger: &'static AgentLogger = Box::leak(Box::new(AgentLogger {
        agent,
        runtime,
        stderr,
        runtime_out,
    }));
    log::set_logger(logger).map_err(|e| io::Error::other(e.to_string()))?;
    let _ = INSTALLED.set(logger);
    log::set_max_level(max.max(LevelFilter::Error));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer into a buffer the test reads.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Logs `record` through env_logger's own default format and ours, into buffers.
    fn both(record: &Record<'_>) -> (String, String) {
        let theirs = Shared::default();
        env_logger::Builder::new()
            .filter_level(LevelFilter::Trace)
            .target(env_logger::Target::Pipe(Box::new(theirs.clone())))
            .build()
            .log(record);
        let ours = Shared::default();
        let sink = Sink::start(Box::new(ours.clone()), "test-log-writer").unwrap();
        emit(&sink, record);
        sink.flush_with(&[]);
        (theirs.text(), ours.text())
    }

    fn record<'a>(level: log::Level, args: std::fmt::Arguments<'a>) -> Record<'a> {
        Record::builder()
            .level(level)
            .target("vaccel_rpc_agent")
            .args(args)
            .build()
    }

    #[test]
    fn info_lines_wait_for_a_batch_and_a_warning_writes_them_first() {
        let out = Shared::default();
        let sink = Sink::start(Box::new(out.clone()), "test-log-writer").unwrap();
        emit(&sink, &record(log::Level::Info, format_args!("one")));
        emit(&sink, &record(log::Level::Debug, format_args!("two")));
        emit(&sink, &record(log::Level::Warn, format_args!("three")));
        // The warning is written at once, the lines before it first.
        let text = out.text();
        let order: Vec<usize> = ["] one", "] two", "] three"]
            .iter()
            .map(|m| text.find(m).unwrap_or_else(|| panic!("{m} in {text:?}")))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        // An info line alone is written by the batch writer soon after.
        emit(&sink, &record(log::Level::Info, format_args!("four")));
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while !out.text().contains("] four") {
            assert!(
                std::time::Instant::now() < end,
                "the batch was never written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(out.text().lines().count(), 4);
    }

    #[test]
    fn a_burst_of_lines_is_written_by_the_threads_that_log_it() {
        let out = Shared::default();
        let sink = Sink::start(Box::new(out.clone()), "test-log-writer").unwrap();
        let lines = MAX_PENDING / 40 + 10;
        for i in 0..lines {
            emit(&sink, &record(log::Level::Info, format_args!("line {i}")));
        }
        // Past MAX_PENDING bytes the logging thread wrote them itself (the batch writer
        // sleeps BATCH_DELAY first).
        let written = out.text().lines().count();
        assert!(written > 0 && written <= lines, "{written}");
        sink.flush_with(&[]);
        let text = out.text();
        assert_eq!(text.lines().count(), lines);
        assert!(
            text.lines()
                .enumerate()
                .all(|(i, l)| l.ends_with(&format!("] line {i}")))
        );
    }

    #[test]
    fn lines_of_several_threads_leave_in_the_order_they_were_logged() {
        let out = Shared::default();
        let sink = Sink::start(Box::new(out.clone()), "test-log-writer").unwrap();
        // Three threads take turns (each waits for the line before its own), so the lines'
        // order is known; each thread's lines sit in its own lane until the flush.
        let turn = Arc::new((Mutex::new(0usize), Condvar::new()));
        let lines = 30;
        let threads: Vec<_> = (0..3)
            .map(|t| {
                let (sink, turn) = (Arc::clone(&sink), Arc::clone(&turn));
                std::thread::spawn(move || {
                    for i in (t..lines).step_by(3) {
                        let (next, changed) = &*turn;
                        let mut next = changed
                            .wait_while(lock(next), |n| *n != i)
                            .unwrap_or_else(PoisonError::into_inner);
                        emit(&sink, &record(log::Level::Info, format_args!("line {i}")));
                        *next += 1;
                        changed.notify_all();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        sink.flush_with(&[]);
        let text = out.text();
        assert_eq!(text.lines().count(), lines, "{text}");
        for (i, l) in text.lines().enumerate() {
            assert!(l.ends_with(&format!("] line {i}")), "{text}");
        }
        // The threads ended: their lanes went with the lines.
        assert!(lock(&sink.lanes).is_empty());
        // And what they logged is not written again by later batches.
        emit(
            &sink,
            &record(log::Level::Info, format_args!("line {lines}")),
        );
        sink.flush_with(&[]);
        sink.flush_with(&[]);
        let text = out.text();
        assert_eq!(text.lines().count(), lines + 1, "{text}");
        assert!(text.ends_with(&format!("] line {lines}\n")), "{text}");
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
    fn one_lines_and_cached_heads_keep_env_loggers_format() {
        // Lines of alternating levels and targets on one thread: each head is rebuilt when
        // its level or target changes, and kept otherwise.
        let genop = OneLine::new("session:7 Genop".to_owned());
        let cases = [
            (Level::Info, "vaccel_rpc_agent::ops::genop"),
            (Level::Info, "vaccel_rpc_agent::ops::genop"),
            (Level::Warn, "vaccel_rpc_agent::ops::genop"),
            (Level::Info, "vaccel_rpc_agent"),
            (Level::Info, "vaccel_rpc_agent::ops::genop"),
        ];
        for (level, target) in cases {
            let record = Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("session:7 Genop"))
                .build();
            let fast = || {
                let ours = Shared::default();
                let sink = Sink::start(Box::new(ours.clone()), "test-log-writer").unwrap();
                emit_with(&sink, level, target, |line| {
                    line.extend_from_slice(genop.as_str().as_bytes());
                    false
                });
                sink.flush_with(&[]);
                ours.text()
            };
            let (theirs, ours) = (0..5)
                .map(|_| (both(&record).0, fast()))
                .find(|(a, b)| a == b)
                .unwrap_or_else(|| (both(&record).0, fast()));
            assert_eq!(ours, theirs);
        }
        assert_eq!(OneLine::new("a\nb".to_owned()).as_str(), "a b");
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
            "vaccel_plugins",
            "vaccel",
            "vaccel::logging",
        ] {
            assert!(is_runtime_target(t), "{t}");
        }
        for t in [
            "vaccel_rpc_agent",
            "vaccel_rpc_agent::session",
            "vaccel_rpc::server",
            "vaccel_rpc::transport",
            "vaccel_agent",
            "vaccel_core_extra",
            "vaccelx",
            "",
        ] {
            assert!(!is_runtime_target(t), "{t}");
        }
    }
}
