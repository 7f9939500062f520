//! The mbench plugin: an `exec` that busy-waits for a requested number of milliseconds, to
//! measure the overhead vAccel adds around an operation of known duration (upstream
//! `plugins/mbench`).
//!
//! The call is `exec("mbench", "mbench", [time_ms, payload, ...], [])`: `read[0]` holds the time
//! as decimal text, `read[1]` is a payload (upstream's example sends a file) that only has to
//! be there.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use vaccel_core::{Arg, Runtime, Session};
//! use vaccel_plugin_mbench::MbenchPlugin;
//!
//! let rt = Runtime::builder()
//!     .skip_logging()
//!     .plugin(Arc::new(MbenchPlugin::new(false)))
//!     .build()?;
//! let sess = Session::new(&rt, 0)?;
//! let read = [Arg::string("2")?, Arg::buffer(b"payload")?];
//! sess.exec("mbench", "mbench", &read, &mut [])?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use vaccel_core::plugin::{Plugin, PluginInfo};
use vaccel_core::prof::Region;
use vaccel_core::{
    Arg, ArgType, BundledPlugin, Error, OpSet, OpType, PluginType, Result, Session, VACCEL_VERSION,
};

/// The name both `library` and `symbol` must carry.
pub const MBENCH_NAME: &str = "mbench";
/// The longest wait accepted, in milliseconds (five minutes, upstream's `MAX_TIME`).
pub const MAX_TIME_MS: u64 = 300_000;
/// The name of the plugin's profiling region.
pub const REGION_NAME: &str = "vaccel_mbench_plugin";

/// `log::debug!` with the `[mbench] ` prefix every plugin message carries.
macro_rules! mbench_debug {
    ($($arg:tt)+) => {
        log::debug!("[mbench] {}", format_args!($($arg)+))
    };
}

/// The mbench plugin: name `mbench`, type `SOFTWARE | GENERIC | CPU`, only `EXEC`.
#[derive(Debug)]
pub struct MbenchPlugin {
    info: PluginInfo,
    region: Region,
}

impl MbenchPlugin {
    /// The plugin; its profiling region records calls only when `profiling_enabled`
    /// (the runtime's `VACCEL_PROFILING_ENABLED`).
    pub fn new(profiling_enabled: bool) -> Self {
        MbenchPlugin {
            info: PluginInfo::new(
                MBENCH_NAME,
                VACCEL_VERSION,
                PluginType::SOFTWARE | PluginType::GENERIC | PluginType::CPU,
            ),
            region: Region::with_enabled(REGION_NAME, profiling_enabled),
        }
    }

    /// The `vaccel_mbench_plugin` region: one sample per completed wait.
    pub fn region(&self) -> &Region {
        &self.region
    }
}

/// The descriptor the `vaccel` facade registers, so `VACCEL_PLUGINS=mbench` selects this
/// plugin; profiling follows the runtime's configuration.
pub fn bundled() -> BundledPlugin {
    BundledPlugin {
        name: MBENCH_NAME,
        create: |config| Ok(Arc::new(MbenchPlugin::new(config.profiling_enabled))),
    }
}

/// Reads the wait time from `read[0]`: a `STRING`, or `RAW`/`BUFFER` bytes holding decimal
/// text with an optional trailing NUL (what upstream's `atoi` accepts in practice). Unlike
/// `atoi`, trailing garbage is refused rather than silently ignored.
pub fn parse_time_ms(arg: &Arg<'_>) -> Result<u64> {
    let bytes = match arg.ty() {
        ArgType::String | ArgType::Raw | ArgType::Buffer => arg.bytes(),
        other => {
            return Err(Error::invalid(format!(
                "mbench: the time argument must be a STRING, RAW or BUFFER of decimal text, not {other}"
            )));
        }
    };
    let text = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    let text = std::str::from_utf8(text)
        .map_err(|_| Error::invalid("mbench: the time argument is not text"))?;
    let time_ms: u64 = text.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "mbench: the time argument {text:?} is not a decimal number of milliseconds"
        ))
    })?;
    if !(1..=MAX_TIME_MS).contains(&time_ms) {
        return Err(Error::invalid(format!(
            "mbench: time {time_ms} ms is outside 1..={MAX_TIME_MS} ms"
        )));
    }
    Ok(time_ms)
}

/// Spins until `time` has passed. A busy wait, not a sleep: the point is to keep a CPU
/// occupied for a known time, as an accelerated function would.
fn busy_wait(time: Duration) {
    let start = Instant::now();
    while start.elapsed() < time {
        std::hint::spin_loop();
    }
}

impl Plugin for MbenchPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        OpSet::of(&[OpType::Exec])
    }

    fn fini(&self) -> Result<()> {
        self.region.print();
        Ok(())
    }

    /// Busy-waits for `read[0]` milliseconds.
    ///
    /// Both `library` and `symbol` must be `mbench`. Upstream accepts the call when *either*
    /// is (a quirk that lets any symbol of a library called `mbench` through); requiring both
    /// keeps a misdirected exec from silently turning into a wait.
    fn exec(
        &self,
        sess: &Session,
        library: &str,
        symbol: &str,
        read: &[Arg<'_>],
        _write: &mut [Arg<'_>],
    ) -> Result<()> {
        mbench_debug!("Calling mbench for session {}", sess.id());
        if library != MBENCH_NAME || symbol != MBENCH_NAME {
            return Err(Error::invalid(format!(
                "mbench: library and symbol must both be \"{MBENCH_NAME}\" (got {library:?}, {symbol:?})"
            )));
        }
        let [time_arg, _payload, ..] = read else {
            return Err(Error::invalid(format!(
                "mbench: needs at least 2 read arguments (time, payload), got {}",
                read.len()
            )));
        };
        let time_ms = parse_time_ms(time_arg)?;
        {
            let _timed = self.region.enter();
            busy_wait(Duration::from_millis(time_ms));
        }
        mbench_debug!("{time_ms} ms elapsed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor() {
        let p = MbenchPlugin::new(false);
        assert_eq!(p.info().name, "mbench");
        assert_eq!(p.info().plugin_type.bits(), 0x89);
        assert_eq!(p.info().vaccel_version, VACCEL_VERSION);
        assert_eq!(p.ops(), OpSet::of(&[OpType::Exec]));
        assert!(!p.region().is_enabled());
        assert!(MbenchPlugin::new(true).region().is_enabled());
        assert_eq!(p.region().name(), REGION_NAME);
    }

    #[test]
    fn time_parsing() {
        let ok = |arg: Arg<'_>| parse_time_ms(&arg).unwrap();
        assert_eq!(ok(Arg::string("5").unwrap()), 5);
        assert_eq!(ok(Arg::raw(b"42\0")), 42);
        assert_eq!(ok(Arg::raw(b"42")), 42);
        assert_eq!(ok(Arg::buffer(b"300000").unwrap()), 300_000);
        assert_eq!(ok(Arg::string(" 7 ").unwrap()), 7);
        for bad in [
            Arg::string("0").unwrap(),
            Arg::string("300001").unwrap(),
            Arg::string("-3").unwrap(),
            Arg::string("10ms").unwrap(),
            Arg::string("").unwrap(),
            Arg::raw(b""),
            Arg::raw(b"5\0\0"),
            Arg::raw(&[0xff, 0xfe]),
            Arg::string("99999999999999999999999").unwrap(),
            Arg::scalar(5i32),
        ] {
            let err = parse_time_ms(&bad).unwrap_err();
            assert_eq!(err.code(), vaccel_core::ErrorCode::EINVAL, "{bad:?}");
        }
    }

    #[test]
    fn busy_wait_waits() {
        let start = Instant::now();
        busy_wait(Duration::from_millis(2));
        assert!(start.elapsed() >= Duration::from_millis(2));
    }
}
