//! How the exec plugin opens and closes libraries, and how that is read from the environment
//! (`VACCEL_EXEC_*`, upstream §4.1).

use std::ffi::c_int;

use libloading::os::unix::{RTLD_LAZY, RTLD_NOW};
use vaccel_core::config::{env_lookup, lookup_with_alias};

/// `lazy` or `now` (any case): how symbols of opened libraries are bound.
pub const ENV_DLOPEN_MODE: &str = "VACCEL_EXEC_DLOPEN_MODE";
/// `0`/`false`/`1`/`true` (any case): whether libraries are closed after use.
pub const ENV_DLCLOSE_ENABLED: &str = "VACCEL_EXEC_DLCLOSE_ENABLED";
/// Deprecated alias of [`ENV_DLCLOSE_ENABLED`].
pub const ENV_DLCLOSE_ENABLED_ALIAS: &str = "VACCEL_EXEC_DLCLOSE";

/// How `dlopen` binds a library's symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DlopenMode {
    /// `RTLD_NOW`: every undefined symbol is resolved at open, so a missing one fails the open
    /// instead of aborting the process at the first call (upstream's default).
    #[default]
    Now,
    /// `RTLD_LAZY`: function symbols are resolved at their first call.
    Lazy,
}

impl DlopenMode {
    /// Parses `lazy` or `now`, ignoring case (upstream's `strcasecmp`; no trimming).
    pub fn parse(value: &str) -> Option<DlopenMode> {
        if value.eq_ignore_ascii_case("now") {
            Some(DlopenMode::Now)
        } else if value.eq_ignore_ascii_case("lazy") {
            Some(DlopenMode::Lazy)
        } else {
            None
        }
    }

    /// The value as written in the environment: `now` or `lazy`.
    pub const fn name(self) -> &'static str {
        match self {
            DlopenMode::Now => "now",
            DlopenMode::Lazy => "lazy",
        }
    }

    /// The `dlopen` flag name, as the fallback warnings print it.
    pub const fn flag_name(self) -> &'static str {
        match self {
            DlopenMode::Now => "RTLD_NOW",
            DlopenMode::Lazy => "RTLD_LAZY",
        }
    }

    /// The other mode: what a failed resource library open is retried with.
    pub const fn other(self) -> DlopenMode {
        match self {
            DlopenMode::Now => DlopenMode::Lazy,
            DlopenMode::Lazy => DlopenMode::Now,
        }
    }

    /// The `dlopen` flag.
    pub(crate) const fn flag(self) -> c_int {
        match self {
            DlopenMode::Now => RTLD_NOW,
            DlopenMode::Lazy => RTLD_LAZY,
        }
    }
}

/// The exec plugin's settings.
///
/// ```
/// use vaccel_plugin_exec::{DlopenMode, ExecOptions};
///
/// let options = ExecOptions::from_lookup(|name| match name {
///     "VACCEL_EXEC_DLOPEN_MODE" => Some("LAZY".to_owned()),
///     "VACCEL_EXEC_DLCLOSE_ENABLED" => Some("1".to_owned()),
///     _ => None,
/// });
/// assert_eq!(options.dlopen_mode, DlopenMode::Lazy);
/// assert_eq!(options.dlclose_enabled, Some(true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecOptions {
    /// How libraries are opened (`VACCEL_EXEC_DLOPEN_MODE`; default [`DlopenMode::Now`]).
    pub dlopen_mode: DlopenMode,
    /// Whether libraries are closed after use (`VACCEL_EXEC_DLCLOSE_ENABLED`, alias
    /// `VACCEL_EXEC_DLCLOSE`). `None` keeps upstream's defaults, which differ by place: `exec`
    /// keeps its library open ([`ExecOptions::dlclose_after_exec`] is false) while a resource's
    /// libraries are closed when it is unregistered ([`ExecOptions::dlclose_on_unregister`] is
    /// true).
    pub dlclose_enabled: Option<bool>,
}

impl ExecOptions {
    /// Reads the options from the process environment (see [`ExecOptions::from_lookup`]).
    pub fn from_env() -> ExecOptions {
        ExecOptions::from_lookup(env_lookup)
    }

    /// Reads the options through `lookup` (variable name to value).
    ///
    /// Invalid values never fail: as upstream, they log the warning
    /// `Invalid value '<value>' for <VAR>. Using default: <default>` and the default applies.
    /// The deprecated alias is honoured only when the new name is unset, with the warning
    /// [`lookup_with_alias`] prints.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ExecOptions {
        let (options, warnings) = ExecOptions::parse(&lookup);
        for warning in warnings {
            log::warn!("[exec] {warning}");
        }
        options
    }

    /// The options and the warnings about invalid values (kept apart so tests can read them).
    fn parse(lookup: &dyn Fn(&str) -> Option<String>) -> (ExecOptions, Vec<String>) {
        let mut warnings = Vec::new();
        let default = ExecOptions::default();

        let dlopen_mode = match lookup(ENV_DLOPEN_MODE) {
            None => default.dlopen_mode,
            Some(value) => DlopenMode::parse(&value).unwrap_or_else(|| {
                warnings.push(invalid(&value, ENV_DLOPEN_MODE, default.dlopen_mode.name()));
                default.dlopen_mode
            }),
        };

        let dlclose_enabled =
            match lookup_with_alias(lookup, ENV_DLCLOSE_ENABLED, Some(ENV_DLCLOSE_ENABLED_ALIAS)) {
                None => default.dlclose_enabled,
                Some(value) => parse_dlclose(&value).or_else(|| {
                    // The default depends on where it applies, so the warning names both.
                    warnings.push(invalid(
                        &value,
                        ENV_DLCLOSE_ENABLED,
                        "false for exec, true for resource unregister",
                    ));
                    default.dlclose_enabled
                }),
            };

        (
            ExecOptions {
                dlopen_mode,
                dlclose_enabled,
            },
            warnings,
        )
    }

    /// Whether `exec` closes its library after the call (default false).
    pub fn dlclose_after_exec(&self) -> bool {
        self.dlclose_enabled.unwrap_or(false)
    }

    /// Whether a resource's libraries are closed once no session holds it (default true).
    pub fn dlclose_on_unregister(&self) -> bool {
        self.dlclose_enabled.unwrap_or(true)
    }
}

/// Upstream accepts exactly `0`, `1`, `false` and `true` here (any case), not the wider set of
/// [`vaccel_core::config::parse_bool`]: `yes` or ` 1` warn and keep the default as upstream does.
fn parse_dlclose(value: &str) -> Option<bool> {
    if value == "1" || value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value == "0" || value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn invalid(value: &str, var: &str, default: &str) -> String {
    format!("Invalid value '{value}' for {var}. Using default: {default}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn parse(pairs: &[(&str, &str)]) -> (ExecOptions, Vec<String>) {
        ExecOptions::parse(&env(pairs))
    }

    #[test]
    fn defaults_follow_upstream() {
        let (options, warnings) = parse(&[]);
        assert_eq!(options, ExecOptions::default());
        assert_eq!(options.dlopen_mode, DlopenMode::Now);
        assert_eq!(options.dlclose_enabled, None);
        assert!(!options.dlclose_after_exec());
        assert!(options.dlclose_on_unregister());
        assert!(warnings.is_empty());
    }

    #[test]
    fn dlopen_mode_is_case_insensitive() {
        for (value, mode) in [
            ("lazy", DlopenMode::Lazy),
            ("LAZY", DlopenMode::Lazy),
            ("Lazy", DlopenMode::Lazy),
            ("now", DlopenMode::Now),
            ("NoW", DlopenMode::Now),
        ] {
            let (options, warnings) = parse(&[(ENV_DLOPEN_MODE, value)]);
            assert_eq!(options.dlopen_mode, mode, "{value}");
            assert!(warnings.is_empty());
        }
    }

    #[test]
    fn invalid_dlopen_mode_warns_and_uses_now() {
        for value in ["", "eager", " lazy", "lazy "] {
            let (options, warnings) = parse(&[(ENV_DLOPEN_MODE, value)]);
            assert_eq!(options.dlopen_mode, DlopenMode::Now);
            assert_eq!(
                warnings,
                [format!(
                    "Invalid value '{value}' for VACCEL_EXEC_DLOPEN_MODE. Using default: now"
                )]
            );
        }
    }

    #[test]
    fn dlclose_accepts_upstream_spellings() {
        for (value, enabled) in [
            ("1", true),
            ("true", true),
            ("TRUE", true),
            ("True", true),
            ("0", false),
            ("false", false),
            ("FaLsE", false),
        ] {
            let (options, warnings) = parse(&[(ENV_DLCLOSE_ENABLED, value)]);
            assert_eq!(options.dlclose_enabled, Some(enabled), "{value}");
            assert_eq!(options.dlclose_after_exec(), enabled);
            assert_eq!(options.dlclose_on_unregister(), enabled);
            assert!(warnings.is_empty());
        }
    }

    #[test]
    fn invalid_dlclose_warns_and_keeps_the_defaults() {
        for value in ["yes", "2", "", " 1", "on"] {
            let (options, warnings) = parse(&[(ENV_DLCLOSE_ENABLED, value)]);
            assert_eq!(options.dlclose_enabled, None, "{value}");
            assert_eq!(
                warnings,
                [format!(
                    "Invalid value '{value}' for VACCEL_EXEC_DLCLOSE_ENABLED. Using default: \
                     false for exec, true for resource unregister"
                )]
            );
        }
    }

    #[test]
    fn deprecated_alias_applies_only_when_the_new_name_is_unset() {
        let (options, _) = parse(&[(ENV_DLCLOSE_ENABLED_ALIAS, "1")]);
        assert_eq!(options.dlclose_enabled, Some(true));
        let (options, _) = parse(&[
            (ENV_DLCLOSE_ENABLED_ALIAS, "1"),
            (ENV_DLCLOSE_ENABLED, "false"),
        ]);
        assert_eq!(options.dlclose_enabled, Some(false));
    }

    #[test]
    fn both_variables_together() {
        let options = ExecOptions::from_lookup(env(&[
            (ENV_DLOPEN_MODE, "lazy"),
            (ENV_DLCLOSE_ENABLED, "0"),
        ]));
        assert_eq!(
            options,
            ExecOptions {
                dlopen_mode: DlopenMode::Lazy,
                dlclose_enabled: Some(false),
            }
        );
    }

    #[test]
    fn modes_flip_and_name_themselves() {
        assert_eq!(DlopenMode::Now.other(), DlopenMode::Lazy);
        assert_eq!(DlopenMode::Lazy.other(), DlopenMode::Now);
        assert_eq!(DlopenMode::Now.flag(), RTLD_NOW);
        assert_eq!(DlopenMode::Lazy.flag(), RTLD_LAZY);
        assert_eq!(DlopenMode::Now.flag_name(), "RTLD_NOW");
        assert_eq!(DlopenMode::Lazy.flag_name(), "RTLD_LAZY");
    }
}
