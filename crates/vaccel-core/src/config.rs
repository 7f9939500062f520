//! The runtime configuration and how it is read from `VACCEL_*` environment variables.
//!
//! Everything reads the environment through a lookup closure (`Fn(&str) -> Option<String>`), so
//! tests feed a map instead of mutating the process environment (which is `unsafe` in edition
//! 2024 and racy across test threads).
//!
//! ```
//! use vaccel_core::config::Config;
//! use vaccel_core::types::LogLevel;
//!
//! let config = Config::from_lookup(|name| match name {
//!     "VACCEL_PLUGINS" => Some("noop".to_owned()),
//!     "VACCEL_LOG_LEVEL" => Some("4".to_owned()),
//!     _ => None,
//! })?;
//! assert_eq!(config.plugins.as_deref(), Some("noop"));
//! assert_eq!(config.log_level, Some(LogLevel::Debug));
//! # Ok::<(), vaccel_core::error::Error>(())
//! ```

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::types::LogLevel;

/// `:`-separated plugin names or paths to load at bootstrap.
pub const ENV_PLUGINS: &str = "VACCEL_PLUGINS";
/// Deprecated alias of [`ENV_PLUGINS`].
pub const ENV_PLUGINS_ALIAS: &str = "VACCEL_BACKENDS";
/// Log level: 0 (off) or 1-4 (error, warn, info, debug).
pub const ENV_LOG_LEVEL: &str = "VACCEL_LOG_LEVEL";
/// Deprecated alias of [`ENV_LOG_LEVEL`].
pub const ENV_LOG_LEVEL_ALIAS: &str = "VACCEL_DEBUG_LEVEL";
/// File the log is appended to (unset: stdout).
pub const ENV_LOG_FILE: &str = "VACCEL_LOG_FILE";
/// Whether profiling regions record samples.
pub const ENV_PROFILING_ENABLED: &str = "VACCEL_PROFILING_ENABLED";
/// Whether plugins built against another vAccel major version are accepted.
pub const ENV_VERSION_IGNORE: &str = "VACCEL_VERSION_IGNORE";
/// Deprecated alias of [`ENV_VERSION_IGNORE`].
pub const ENV_VERSION_IGNORE_ALIAS: &str = "VACCEL_IGNORE_VERSION";
/// `"0"` stops the library constructor from bootstrapping the runtime.
pub const ENV_BOOTSTRAP_ENABLED: &str = "VACCEL_BOOTSTRAP_ENABLED";
/// `"0"` stops the library destructor from cleaning up the runtime.
pub const ENV_CLEANUP_ENABLED: &str = "VACCEL_CLEANUP_ENABLED";

/// What [`parse_log_level`] accepts.
const LOG_LEVEL_EXPECTED: &str = "expected 0 (off) or 1-4 (error, warn, info, debug)";
/// What [`parse_bool`] accepts.
const BOOL_EXPECTED: &str =
    "expected 0/1, true/false, yes/no, on/off (any case) or a decimal integer (non-zero is true)";

/// The runtime configuration (upstream `struct vaccel_config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `:`-separated plugin names or paths to load at bootstrap; `None` loads none
    /// (`VACCEL_PLUGINS`, alias `VACCEL_BACKENDS`).
    pub plugins: Option<String>,
    /// Most verbose level logged; `None` turns logging off
    /// (`VACCEL_LOG_LEVEL`, alias `VACCEL_DEBUG_LEVEL`; default error).
    pub log_level: Option<LogLevel>,
    /// File the log is appended to; `None` logs to stdout (`VACCEL_LOG_FILE`).
    pub log_file: Option<PathBuf>,
    /// Whether profiling regions record samples (`VACCEL_PROFILING_ENABLED`; default false).
    pub profiling_enabled: bool,
    /// Whether plugins built for another vAccel major version are accepted
    /// (`VACCEL_VERSION_IGNORE`, alias `VACCEL_IGNORE_VERSION`; default false).
    pub version_ignore: bool,
}

impl Default for Config {
    /// Upstream's defaults: no plugin, errors only, stdout, no profiling, version checked.
    fn default() -> Self {
        Config {
            plugins: None,
            log_level: Some(LogLevel::Error),
            log_file: None,
            profiling_enabled: false,
            version_ignore: false,
        }
    }
}

impl Config {
    /// Reads the configuration from the process environment (see [`Config::from_lookup`]).
    ///
    /// Values that are not valid UTF-8 are converted lossily.
    pub fn from_env() -> Result<Config> {
        Config::from_lookup(env_lookup)
    }

    /// Reads the configuration through `lookup`, which maps a variable name to its value.
    ///
    /// Unset variables keep their defaults; an empty `VACCEL_PLUGINS` or `VACCEL_LOG_FILE` counts
    /// as unset. Deprecated aliases are honoured (with a warning on stderr) only when the new name
    /// is unset.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when a level or boolean is malformed.
    /// Upstream parses numbers with `strtoul` and silently turns text such as `abc` or `true`
    /// into 0; reporting the mistake instead is a deliberate difference.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let lookup: &dyn Fn(&str) -> Option<String> = &lookup;
        let defaults = Config::default();

        let plugins = lookup_with_alias(lookup, ENV_PLUGINS, Some(ENV_PLUGINS_ALIAS))
            .filter(|value| !value.is_empty());

        let log_level = match lookup_named(lookup, ENV_LOG_LEVEL, Some(ENV_LOG_LEVEL_ALIAS)) {
            Some((key, value)) => parse_log_level(key, &value)?,
            None => defaults.log_level,
        };

        let log_file = lookup(ENV_LOG_FILE)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from);

        let profiling_enabled = match lookup(ENV_PROFILING_ENABLED) {
            Some(value) => parse_bool(ENV_PROFILING_ENABLED, &value)?,
            None => defaults.profiling_enabled,
        };

        let version_ignore =
            match lookup_named(lookup, ENV_VERSION_IGNORE, Some(ENV_VERSION_IGNORE_ALIAS)) {
                Some((key, value)) => parse_bool(key, &value)?,
                None => defaults.version_ignore,
            };

        Ok(Config {
            plugins,
            log_level,
            log_file,
            profiling_enabled,
            version_ignore,
        })
    }

    /// Sets the plugins to load (`:`-separated names or paths).
    #[must_use]
    pub fn with_plugins(mut self, plugins: impl Into<String>) -> Self {
        self.plugins = Some(plugins.into());
        self
    }

    /// Sets the log level; `None` turns logging off.
    #[must_use]
    pub fn with_log_level(mut self, level: Option<LogLevel>) -> Self {
        self.log_level = level;
        self
    }

    /// Sets the file the log is appended to.
    #[must_use]
    pub fn with_log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.log_file = Some(path.into());
        self
    }

    /// Enables or disables profiling.
    #[must_use]
    pub fn with_profiling(mut self, enabled: bool) -> Self {
        self.profiling_enabled = enabled;
        self
    }

    /// Accepts (or not) plugins built for another vAccel major version.
    #[must_use]
    pub fn with_version_ignore(mut self, ignore: bool) -> Self {
        self.version_ignore = ignore;
        self
    }

    /// Logs the configuration at debug level, line by line as upstream's
    /// `vaccel_config_print_debug` does.
    pub fn print_debug(&self) {
        // Skips the formatting entirely when debug logging is off.
        if log::log_enabled!(log::Level::Debug) {
            for line in self.debug_lines() {
                log::debug!("{line}");
            }
        }
    }

    /// The lines [`Config::print_debug`] logs; unset strings show as `(null)` like upstream's
    /// `printf("%s", NULL)`.
    fn debug_lines(&self) -> [String; 6] {
        let level = self
            .log_level
            .map_or_else(|| "off".to_owned(), LogLevel::name);
        let log_file = self
            .log_file
            .as_ref()
            .map_or_else(|| "(null)".to_owned(), |path| path.display().to_string());
        [
            "Config:".to_owned(),
            format!(
                "  plugins = {}",
                self.plugins.as_deref().unwrap_or("(null)")
            ),
            format!("  log_level = {level}"),
            format!("  log_file = {log_file}"),
            format!("  profiling_enabled = {}", self.profiling_enabled),
            format!("  version_ignore = {}", self.version_ignore),
        ]
    }
}

/// Looks `name` up in the process environment (values that are not UTF-8 are converted
/// lossily): the lookup [`Config::from_env`], [`bootstrap_enabled`] and [`cleanup_enabled`] use
/// in production.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

/// Whether the library constructor should bootstrap the runtime: only a `VACCEL_BOOTSTRAP_ENABLED`
/// of exactly `"0"` disables it (upstream's rule; `false` or `" 0"` do not).
pub fn bootstrap_enabled(lookup: impl Fn(&str) -> Option<String>) -> bool {
    lookup(ENV_BOOTSTRAP_ENABLED).as_deref() != Some("0")
}

/// Whether the library destructor should clean the runtime up: only a `VACCEL_CLEANUP_ENABLED`
/// of exactly `"0"` disables it (upstream's rule).
pub fn cleanup_enabled(lookup: impl Fn(&str) -> Option<String>) -> bool {
    lookup(ENV_CLEANUP_ENABLED).as_deref() != Some("0")
}

/// Reads `name`, falling back to the deprecated `alias` only when `name` is unset.
///
/// Using the alias prints `Warning: <OLD> is deprecated. Use <NEW> instead.` to stderr, as
/// upstream does; this happens while the configuration is read, before logging exists.
pub fn lookup_with_alias(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    alias: Option<&str>,
) -> Option<String> {
    lookup_named(lookup, name, alias).map(|(_, value)| value)
}

/// [`lookup_with_alias`], also returning which of the two names held the value so that parse
/// errors name the variable the user actually set.
fn lookup_named<'a>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &'a str,
    alias: Option<&'a str>,
) -> Option<(&'a str, String)> {
    if let Some(value) = lookup(name) {
        return Some((name, value));
    }
    let alias = alias?;
    let value = lookup(alias)?;
    eprintln!("Warning: {alias} is deprecated. Use {name} instead.");
    Some((alias, value))
}

/// Parses a boolean environment value.
///
/// Accepts, ignoring surrounding whitespace and case, `0`/`1`, `true`/`false`, `yes`/`no`,
/// `on`/`off`, or any decimal integer, where non-zero is true as with upstream's `strtoul != 0`.
///
/// # Errors
///
/// [`Error::Config`] naming `key` and `value` for anything else. Upstream silently reads such
/// text as 0 (so `VACCEL_PROFILING_ENABLED=enabled` quietly meant false); reporting it is a
/// deliberate difference.
pub fn parse_bool(key: &str, value: &str) -> Result<bool> {
    let trimmed = value.trim();
    let words = [
        ("true", true),
        ("false", false),
        ("yes", true),
        ("no", false),
        ("on", true),
        ("off", false),
    ];
    if let Some((_, parsed)) = words
        .iter()
        .find(|(word, _)| trimmed.eq_ignore_ascii_case(word))
    {
        return Ok(*parsed);
    }
    // Checked digit by digit rather than parsed so that integers of any length are accepted.
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(digits.bytes().any(|b| b != b'0'));
    }
    Err(config_error(key, value, BOOL_EXPECTED))
}

/// Parses a log level: a decimal `0` (off, returned as `None`) to `4` (debug), ignoring
/// surrounding whitespace.
///
/// # Errors
///
/// [`Error::Config`] naming `key` and `value` for anything else (`abc`, an empty string, `5`,
/// `-1`). Upstream reads non-numeric text as 0 (logging silently off) and out-of-range numbers as
/// "nothing enabled"; reporting them is a deliberate difference.
pub fn parse_log_level(key: &str, value: &str) -> Result<Option<LogLevel>> {
    let number: u8 = value
        .trim()
        .parse()
        .map_err(|_| config_error(key, value, LOG_LEVEL_EXPECTED))?;
    if number == 0 {
        return Ok(None);
    }
    LogLevel::from_value(number)
        .map(Some)
        .ok_or_else(|| config_error(key, value, LOG_LEVEL_EXPECTED))
}

/// An [`Error::Config`] for `value` of `key`.
fn config_error(key: &str, value: &str, reason: &'static str) -> Error {
    Error::Config {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests may panic
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A lookup over fixed `(name, value)` pairs.
    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config> {
        Config::from_lookup(env(pairs))
    }

    /// The key and value of an `Error::Config`.
    fn config_err(err: Error) -> (String, String) {
        match err {
            Error::Config { key, value, .. } => (key, value),
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_upstream() {
        let c = config(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.plugins, None);
        assert_eq!(c.log_level, Some(LogLevel::Error));
        assert_eq!(c.log_file, None);
        assert!(!c.profiling_enabled);
        assert!(!c.version_ignore);
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("VACCEL_PLUGINS", "noop:/opt/libexec.so"),
            ("VACCEL_LOG_LEVEL", "3"),
            ("VACCEL_LOG_FILE", "/tmp/vaccel.log"),
            ("VACCEL_PROFILING_ENABLED", "1"),
            ("VACCEL_VERSION_IGNORE", "1"),
        ])
        .unwrap();
        assert_eq!(
            c,
            Config::default()
                .with_plugins("noop:/opt/libexec.so")
                .with_log_level(Some(LogLevel::Info))
                .with_log_file("/tmp/vaccel.log")
                .with_profiling(true)
                .with_version_ignore(true)
        );
    }

    #[test]
    fn aliases_are_used_when_the_new_name_is_unset() {
        let c = config(&[
            ("VACCEL_BACKENDS", "exec"),
            ("VACCEL_DEBUG_LEVEL", "4"),
            ("VACCEL_IGNORE_VERSION", "1"),
        ])
        .unwrap();
        assert_eq!(c.plugins.as_deref(), Some("exec"));
        assert_eq!(c.log_level, Some(LogLevel::Debug));
        assert!(c.version_ignore);
    }

    #[test]
    fn new_names_win_over_aliases() {
        let c = config(&[
            ("VACCEL_PLUGINS", "noop"),
            ("VACCEL_BACKENDS", "exec"),
            ("VACCEL_LOG_LEVEL", "2"),
            ("VACCEL_DEBUG_LEVEL", "4"),
            ("VACCEL_VERSION_IGNORE", "0"),
            ("VACCEL_IGNORE_VERSION", "1"),
        ])
        .unwrap();
        assert_eq!(c.plugins.as_deref(), Some("noop"));
        assert_eq!(c.log_level, Some(LogLevel::Warn));
        assert!(!c.version_ignore);
    }

    #[test]
    fn lookup_with_alias_prefers_the_new_name() {
        let lookup = env(&[("NEW", "a"), ("OLD", "b"), ("ONLY_OLD", "c")]);
        assert_eq!(
            lookup_with_alias(&lookup, "NEW", Some("OLD")).as_deref(),
            Some("a")
        );
        assert_eq!(
            lookup_with_alias(&lookup, "MISSING", Some("ONLY_OLD")).as_deref(),
            Some("c")
        );
        assert_eq!(lookup_with_alias(&lookup, "MISSING", None), None);
        assert_eq!(lookup_with_alias(&lookup, "MISSING", Some("GONE")), None);
    }

    #[test]
    fn empty_plugins_and_log_file_count_as_unset() {
        let c = config(&[("VACCEL_PLUGINS", ""), ("VACCEL_LOG_FILE", "")]).unwrap();
        assert_eq!(c.plugins, None);
        assert_eq!(c.log_file, None);
    }

    #[test]
    fn log_level_zero_turns_logging_off() {
        assert_eq!(
            config(&[("VACCEL_LOG_LEVEL", "0")]).unwrap().log_level,
            None
        );
        assert_eq!(parse_log_level("K", " 1 ").unwrap(), Some(LogLevel::Error));
        assert_eq!(parse_log_level("K", "2").unwrap(), Some(LogLevel::Warn));
        assert_eq!(parse_log_level("K", "3").unwrap(), Some(LogLevel::Info));
        assert_eq!(parse_log_level("K", "4").unwrap(), Some(LogLevel::Debug));
    }

    #[test]
    fn malformed_log_levels_are_reported() {
        for bad in ["abc", "", " ", "5", "-1", "256", "1.5", "debug"] {
            let err = parse_log_level("VACCEL_LOG_LEVEL", bad).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("expected 0 (off) or 1-4"), "{text}");
            assert_eq!(
                config_err(err),
                ("VACCEL_LOG_LEVEL".to_owned(), bad.to_owned())
            );
        }
    }

    #[test]
    fn errors_name_the_variable_actually_set() {
        let err = config(&[("VACCEL_DEBUG_LEVEL", "x")]).unwrap_err();
        assert_eq!(
            config_err(err),
            ("VACCEL_DEBUG_LEVEL".to_owned(), "x".to_owned())
        );
        let err = config(&[("VACCEL_PROFILING_ENABLED", "maybe")]).unwrap_err();
        assert_eq!(
            config_err(err),
            ("VACCEL_PROFILING_ENABLED".to_owned(), "maybe".to_owned())
        );
        let err = config(&[("VACCEL_IGNORE_VERSION", "sure")]).unwrap_err();
        assert_eq!(
            config_err(err),
            ("VACCEL_IGNORE_VERSION".to_owned(), "sure".to_owned())
        );
    }

    #[test]
    fn bool_forms() {
        for yes in [
            "1", "true", "TRUE", "True", "yes", "YES", "on", "On", " 1 ", "2", "-1", "+7",
        ] {
            assert!(parse_bool("K", yes).unwrap(), "{yes}");
        }
        for no in [
            "0", "false", "FALSE", "no", "No", "off", "OFF", "00", "-0", " 0",
        ] {
            assert!(!parse_bool("K", no).unwrap(), "{no}");
        }
        // Longer than any integer type: still a decimal integer.
        assert!(parse_bool("K", "100000000000000000000000000000").unwrap());
        for bad in ["", " ", "enabled", "y", "n", "1.0", "0x1", "+", "tru"] {
            let err = parse_bool("K", bad).unwrap_err();
            assert!(err.to_string().contains("true/false"), "{err}");
            assert_eq!(config_err(err), ("K".to_owned(), bad.to_owned()));
        }
    }

    #[test]
    fn bootstrap_and_cleanup_are_disabled_only_by_exactly_zero() {
        assert!(bootstrap_enabled(env(&[])));
        assert!(cleanup_enabled(env(&[])));
        assert!(!bootstrap_enabled(env(&[(
            "VACCEL_BOOTSTRAP_ENABLED",
            "0"
        )])));
        assert!(!cleanup_enabled(env(&[("VACCEL_CLEANUP_ENABLED", "0")])));
        for other in ["1", "", "false", " 0", "00"] {
            assert!(bootstrap_enabled(env(&[(
                "VACCEL_BOOTSTRAP_ENABLED",
                other
            )])));
            assert!(cleanup_enabled(env(&[("VACCEL_CLEANUP_ENABLED", other)])));
        }
    }

    #[test]
    fn config_errors_map_to_einval() {
        let err = parse_bool("K", "x").unwrap_err();
        assert_eq!(err.code(), crate::error::ErrorCode::EINVAL);
    }

    #[test]
    fn debug_dump_matches_upstream_lines() {
        assert_eq!(
            Config::default().with_log_level(None).debug_lines(),
            [
                "Config:",
                "  plugins = (null)",
                "  log_level = off",
                "  log_file = (null)",
                "  profiling_enabled = false",
                "  version_ignore = false",
            ]
        );
        let c = Config::default()
            .with_plugins("noop")
            .with_log_level(Some(LogLevel::Debug))
            .with_log_file("/tmp/x.log")
            .with_profiling(true)
            .with_version_ignore(true);
        assert_eq!(
            c.debug_lines(),
            [
                "Config:",
                "  plugins = noop",
                "  log_level = debug",
                "  log_file = /tmp/x.log",
                "  profiling_enabled = true",
                "  version_ignore = true",
            ]
        );
        c.print_debug();
    }
}
