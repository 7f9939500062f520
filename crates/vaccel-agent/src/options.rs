//! `--vaccel-config k=v,...`: the runtime configuration given on the command line (spec §8.10).

use std::path::PathBuf;

use vaccel::config::{self, Config};
use vaccel::{LogLevel, Result};

/// The keys given with `--vaccel-config`; `None` where a key was omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaccelConfigArg {
    /// `plugins=<names or paths, ':'-separated>`.
    pub plugins: Option<String>,
    /// `log_level=<0-4>` (0 turns runtime logging off).
    pub log_level: Option<Option<LogLevel>>,
    /// `log_file=<path>`: where runtime and plugin lines go.
    pub log_file: Option<PathBuf>,
    /// `profiling_enabled=<true|false>`.
    pub profiling_enabled: Option<bool>,
    /// `version_ignore=<true|false>`.
    pub version_ignore: Option<bool>,
}

fn parse_bool(key: &str, value: &str) -> std::result::Result<bool, String> {
    value
        .parse()
        .map_err(|_| format!("Invalid value `{value}` for `{key}`: expected true or false"))
}

/// Parses `key=value` pairs separated by `,` (a value may contain `=`). Errors as upstream:
/// "Missing value" for a pair without `=`, "Unknown key `k`" for anything else.
pub fn parse_vaccel_config(text: &str) -> std::result::Result<VaccelConfigArg, String> {
    let mut out = VaccelConfigArg::default();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or("Missing value")?;
        match key {
            "plugins" => out.plugins = Some(value.to_owned()),
            "log_level" => {
                let level = config::parse_log_level(key, value).map_err(|e| e.to_string())?;
                out.log_level = Some(level);
            }
            "log_file" => out.log_file = Some(PathBuf::from(value)),
            "profiling_enabled" => out.profiling_enabled = Some(parse_bool(key, value)?),
            "version_ignore" => out.version_ignore = Some(parse_bool(key, value)?),
            _ => return Err(format!("Unknown key `{key}`")),
        }
    }
    Ok(out)
}

impl VaccelConfigArg {
    /// The runtime configuration: the keys given, upstream's defaults for the others, except
    /// an omitted `log_level`, which keeps `env_level` (upstream silences logging instead).
    pub fn into_config(self, env_level: Option<LogLevel>) -> Config {
        Config {
            plugins: self.plugins,
            log_level: self.log_level.unwrap_or(env_level),
            log_file: self.log_file,
            profiling_enabled: self.profiling_enabled.unwrap_or(false),
            version_ignore: self.version_ignore.unwrap_or(false),
        }
    }
}

/// The runtime log level of the environment (`VACCEL_LOG_LEVEL`, alias
/// `VACCEL_DEBUG_LEVEL`), or the default (errors).
pub fn env_log_level(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<LogLevel>> {
    let lookup: &dyn Fn(&str) -> Option<String> = &lookup;
    match config::lookup_with_alias(
        lookup,
        config::ENV_LOG_LEVEL,
        Some(config::ENV_LOG_LEVEL_ALIAS),
    ) {
        Some(value) => config::parse_log_level(config::ENV_LOG_LEVEL, &value),
        None => Ok(Config::default().log_level),
    }
}

/// The agent's runtime configuration: from `--vaccel-config` when given, else from the
/// environment (`VACCEL_*`).
pub fn runtime_config(
    arg: Option<VaccelConfigArg>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config> {
    match arg {
        Some(arg) => Ok(arg.into_config(env_log_level(lookup)?)),
        None => Config::from_lookup(lookup),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses() {
        let c = parse_vaccel_config(
            "plugins=noop:exec,log_level=4,log_file=/tmp/a=b.log,profiling_enabled=true,version_ignore=false",
        )
        .unwrap();
        assert_eq!(
            c,
            VaccelConfigArg {
                plugins: Some("noop:exec".into()),
                log_level: Some(Some(LogLevel::Debug)),
                log_file: Some("/tmp/a=b.log".into()),
                profiling_enabled: Some(true),
                version_ignore: Some(false),
            }
        );
        assert_eq!(
            parse_vaccel_config("log_level=0").unwrap().log_level,
            Some(None)
        );
    }

    #[test]
    fn errors_match_upstream() {
        assert_eq!(parse_vaccel_config("plugins").unwrap_err(), "Missing value");
        assert_eq!(
            parse_vaccel_config("plugins=noop,colour=red").unwrap_err(),
            "Unknown key `colour`"
        );
        assert!(parse_vaccel_config("profiling_enabled=1").is_err());
        assert!(parse_vaccel_config("log_level=9").is_err());
    }

    #[test]
    fn omitted_log_level_keeps_the_environment() {
        let env = |k: &str| (k == "VACCEL_LOG_LEVEL").then(|| "3".to_owned());
        let arg = parse_vaccel_config("plugins=noop").unwrap();
        let c = runtime_config(Some(arg), env).unwrap();
        assert_eq!(c.log_level, Some(LogLevel::Info));
        assert_eq!(c.plugins.as_deref(), Some("noop"));
        let c = runtime_config(Some(VaccelConfigArg::default()), |_| None).unwrap();
        assert_eq!(c.log_level, Config::default().log_level);
        let c = runtime_config(parse_vaccel_config("log_level=0").ok(), env).unwrap();
        assert_eq!(c.log_level, None);
        // Without --vaccel-config, the whole environment is read.
        let env = |k: &str| (k == "VACCEL_PLUGINS").then(|| "exec".to_owned());
        assert_eq!(
            runtime_config(None, env).unwrap().plugins.as_deref(),
            Some("exec")
        );
    }
}
