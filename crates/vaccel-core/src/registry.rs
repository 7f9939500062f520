//! The plugin registry: resolves `VACCEL_PLUGINS` entries, keeps load order, selects a
//! plugin for a session hint (§3).

use std::path::Path;
use std::sync::Arc;

use crate::VACCEL_VERSION;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::plugin::Plugin;
use crate::types::PluginType;

/// A plugin compiled into the program, created on demand by name.
#[derive(Clone, Copy)]
pub struct BundledPlugin {
    /// Its name (`noop`); also selects it as `libvaccel-<name>.so`.
    pub name: &'static str,
    /// Creates an instance for a runtime.
    pub create: fn(&Config) -> Result<Arc<dyn Plugin>>,
}

impl std::fmt::Debug for BundledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundledPlugin")
            .field("name", &self.name)
            .finish()
    }
}

/// A name in `VACCEL_PLUGINS` that stands for several plugins (e.g. `cpu`: every CPU backend).
#[derive(Debug, Clone, Copy)]
pub struct PluginGroup {
    /// The group's name.
    pub name: &'static str,
    /// What it stands for, in priority order (bundled names or library names; a library name
    /// `libvaccel-<name>.so` is the bundled plugin `<name>` where the program bundles it).
    pub members: &'static [&'static str],
}

/// Loads plugin shared libraries at run time (the C API crate provides one).
pub trait PluginLoader: Send + Sync {
    /// Loads the library named or found at `spec` and returns its plugin.
    fn load(&self, spec: &str, config: &Config) -> Result<Arc<dyn Plugin>>;

    /// [`PluginLoader::load`] for a member of a group, which may well not be installed: a
    /// library that cannot be found is returned as `PluginNotFound` without being logged as an
    /// error (the group logs the skip).
    fn load_optional(&self, spec: &str, config: &Config) -> Result<Arc<dyn Plugin>> {
        self.load(spec, config)
    }
}

/// Where a `VACCEL_PLUGINS` entry resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// A bundled plugin.
    Bundled(&'a str),
    /// A library to load.
    Library,
}

/// Resolves one `VACCEL_PLUGINS` entry: a bundled name (`noop`), a library file name
/// (`libvaccel-noop.so`) or a path. A library whose file does not exist but whose name is
/// `libvaccel-<bundled>.so` resolves to the bundled plugin; an existing file is loaded.
pub fn resolve<'a>(entry: &str, bundled: &'a [BundledPlugin]) -> Result<Resolution<'a>> {
    if let Some(b) = bundled.iter().find(|b| b.name == entry) {
        return Ok(Resolution::Bundled(b.name));
    }
    let is_path = entry.contains('/');
    if is_path && Path::new(entry).exists() {
        return Ok(Resolution::Library);
    }
    let file_name = Path::new(entry)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or(entry);
    let bundled_match = file_name
        .strip_prefix("libvaccel-")
        .and_then(|rest| rest.strip_suffix(".so"))
        .and_then(|name| bundled.iter().find(|b| b.name == name));
    match bundled_match {
        Some(b) => Ok(Resolution::Bundled(b.name)),
        None if !is_path && file_name.contains(".so") => Ok(Resolution::Library),
        None => {
            let names: Vec<&str> = bundled.iter().map(|b| b.name).collect();
            Err(Error::PluginNotFound {
                name: entry.to_owned(),
                reason: if is_path {
                    "no such file".to_owned()
                } else {
                    format!(
                        "no bundled plugin of that name (bundled: {}) and not a library file name",
                        names.join(", ")
                    )
                },
            })
        }
    }
}

/// Parses `major.minor.patch[suffix]` (a leading `v` allowed), as upstream's `"%d.%d.%d%ms"`.
fn parse_version(version: &str) -> Option<(u64, u64, u64, &str)> {
    let v = version.strip_prefix('v').unwrap_or(version);
    let mut parts = v.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let rest = parts.next()?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let patch = rest.get(..digits)?.parse().ok()?;
    Some((major, minor, patch, rest.get(digits..).unwrap_or("")))
}

/// The version check of §3: a different major version refuses the plugin, other differences
/// only warn. Skipped with `version_ignore`.
pub fn check_version(name: &str, plugin_version: &str, ignore: bool) -> Result<()> {
    if ignore {
        return Ok(());
    }
    let reject = |reason: String| Error::PluginRejected {
        name: name.to_owned(),
        reason,
    };
    if plugin_version.is_empty() {
        return Err(reject(
            "it does not say which vAccel version it was built for".into(),
        ));
    }
    let theirs = parse_version(plugin_version)
        .ok_or_else(|| reject(format!("unparsable vAccel version '{plugin_version}'")))?;
    let ours = parse_version(VACCEL_VERSION)
        .ok_or_else(|| reject(format!("unparsable runtime version '{VACCEL_VERSION}'")))?;
    if theirs.0 != ours.0 {
        log::error!(
            "Plugin is incompatible with current vAccel version (built w/ {plugin_version}, used w/ {VACCEL_VERSION})"
        );
        return Err(reject(format!(
            "built for vAccel {plugin_version}, incompatible with {VACCEL_VERSION} (set VACCEL_VERSION_IGNORE=1 to load it anyway)"
        )));
    }
    if theirs != ours {
        log::warn!(
            "Plugin may be incompatible with current vAccel version (built w/ {plugin_version}, used w/ {VACCEL_VERSION})"
        );
    }
    Ok(())
}

/// The plugins of one runtime, in load (= priority) order.
#[derive(Default)]
pub struct Registry {
    plugins: Vec<Arc<dyn Plugin>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.plugins.iter().map(|p| &p.info().name))
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a plugin after checking its descriptor and version. A second plugin with the
    /// same name is refused (`EEXIST`).
    pub fn register(&mut self, plugin: Arc<dyn Plugin>, version_ignore: bool) -> Result<()> {
        let info = plugin.info();
        if info.name.is_empty() {
            return Err(Error::PluginRejected {
                name: "(unnamed)".into(),
                reason: "Plugin needs to have a name".into(),
            });
        }
        if info.version.is_empty() {
            return Err(Error::PluginRejected {
                name: info.name.clone(),
                reason: "Plugin needs to have a version".into(),
            });
        }
        check_version(&info.name, &info.vaccel_version, version_ignore)?;
        if self.plugins.iter().any(|p| p.info().name == info.name) {
            return Err(Error::PluginExists(info.name.clone()));
        }
        log::info!("Registered plugin {} {}", info.name, info.version);
        if info.remote {
            log::debug!("{} is a VirtIO module", info.name);
        }
        for op in plugin.ops().iter() {
            log::debug!("Registered op {} from plugin {}", op.name(), info.name);
        }
        self.plugins.push(plugin);
        Ok(())
    }

    /// Loads every entry of a `:`-separated list, in order, stopping at the first failure
    /// (plugins loaded before it stay loaded, as upstream). Empty entries are skipped; an
    /// entry naming an already registered plugin is skipped with a warning.
    pub fn load_list(
        &mut self,
        list: &str,
        bundled: &[BundledPlugin],
        loader: Option<&dyn PluginLoader>,
        config: &Config,
    ) -> Result<()> {
        self.load_list_with_groups(list, &[], bundled, loader, config)
    }

    /// [`Registry::load_list`] where an entry may name a group (e.g. `cpu`). A group loads
    /// what is installed of it: a member that cannot be found (its library is not installed,
    /// or a library it needs is missing) is skipped with a warning naming it and why; a member
    /// that is found but broken (not a plugin, refused) fails the list like any entry. A group
    /// none of whose members could be found fails with `ENOENT`, listing each member's reason.
    pub fn load_list_with_groups(
        &mut self,
        list: &str,
        groups: &[PluginGroup],
        bundled: &[BundledPlugin],
        loader: Option<&dyn PluginLoader>,
        config: &Config,
    ) -> Result<()> {
        for entry in list.split(':').map(str::trim).filter(|e| !e.is_empty()) {
            let Some(group) = groups.iter().find(|g| g.name == entry) else {
                self.load_entry(entry, false, bundled, loader, config)?;
                continue;
            };
            log::debug!("Plugin group {} = {}", group.name, group.members.join(":"));
            let mut missing = Vec::new();
            for member in group.members {
                match self.load_entry(member, true, bundled, loader, config) {
                    Ok(()) => {}
                    Err(Error::PluginNotFound { reason, .. }) => {
                        log::warn!(
                            "Plugin group {}: {member} is not available, skipping it: {reason}",
                            group.name
                        );
                        missing.push(format!("{member}: {reason}"));
                    }
                    Err(e) => return Err(e),
                }
            }
            if missing.len() == group.members.len() {
                return Err(Error::PluginNotFound {
                    name: group.name.to_owned(),
                    reason: format!(
                        "none of the group's plugins could be loaded ({})",
                        missing.join("; ")
                    ),
                });
            }
            if !missing.is_empty() {
                log::info!(
                    "Plugin group {}: {} of {} plugins loaded",
                    group.name,
                    group.members.len() - missing.len(),
                    group.members.len()
                );
            }
        }
        Ok(())
    }

    /// Loads and registers one entry (skipped with a warning when its bundled plugin is
    /// already registered); `optional` for a group's member.
    fn load_entry(
        &mut self,
        entry: &str,
        optional: bool,
        bundled: &[BundledPlugin],
        loader: Option<&dyn PluginLoader>,
        config: &Config,
    ) -> Result<()> {
        let plugin = match resolve(entry, bundled)? {
            Resolution::Bundled(name) => {
                if self.plugins.iter().any(|p| p.info().name == name) {
                    log::warn!("Plugin {name} is already loaded; ignoring '{entry}'");
                    return Ok(());
                }
                let b = bundled.iter().find(|b| b.name == name).ok_or_else(|| {
                    Error::PluginNotFound {
                        name: entry.to_owned(),
                        reason: "bundled plugin vanished".into(),
                    }
                })?;
                (b.create)(config)?
            }
            Resolution::Library => match loader {
                Some(loader) if optional => loader.load_optional(entry, config)?,
                Some(loader) => loader.load(entry, config)?,
                None => {
                    return Err(Error::PluginNotFound {
                        name: entry.to_owned(),
                        reason: "loading plugin libraries is not available in this program".into(),
                    });
                }
            },
        };
        log::debug!("Loaded plugin {} from {entry}", plugin.info().name);
        self.register(plugin, config.version_ignore)
    }

    /// The plugins in load order.
    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    /// Selects the plugin for a session hint (§3 `plugin_find`): the REMOTE flag picks the
    /// first remote plugin; other type bits pick the first plugin sharing one; otherwise the
    /// first local plugin, or the only plugin if exactly one is loaded.
    pub fn find(&self, hint: u32) -> Result<&Arc<dyn Plugin>> {
        if self.plugins.is_empty() {
            return Err(Error::NoPlugin {
                hint,
                reason: "no plugins registered (set VACCEL_PLUGINS)",
            });
        }
        let remote = PluginType::REMOTE.bits();
        if hint & remote != 0 {
            return self
                .plugins
                .iter()
                .find(|p| p.info().remote)
                .ok_or(Error::NoPlugin {
                    hint,
                    reason: "no remote (VirtIO) plugin registered",
                });
        }
        let prio = hint & !remote;
        if prio != 0
            && let Some(p) = self
                .plugins
                .iter()
                .find(|p| p.info().plugin_type.bits() & prio != 0)
        {
            return Ok(p);
        }
        if let [only] = self.plugins.as_slice() {
            return Ok(only);
        }
        self.plugins
            .iter()
            .find(|p| !p.info().remote)
            .ok_or(Error::NoPlugin {
                hint,
                reason: "no local plugin registered",
            })
    }

    /// Unregisters every plugin in load order, calling `fini` (failures only warn).
    pub fn clear(&mut self) {
        for plugin in self.plugins.drain(..) {
            if let Err(e) = plugin.fini() {
                log::warn!("Failed to remove plugin {}: {e}", plugin.info().name);
            }
            log::debug!("Unregistered plugin {}", plugin.info().name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::plugin::PluginInfo;
    use crate::types::OpSet;

    struct P(PluginInfo);
    impl Plugin for P {
        fn info(&self) -> &PluginInfo {
            &self.0
        }
        fn ops(&self) -> OpSet {
            OpSet::EMPTY
        }
    }

    fn plugin(name: &str, ty: PluginType, remote: bool) -> Arc<dyn Plugin> {
        let mut info = PluginInfo::new(name, "1.0", ty);
        info.remote = remote;
        Arc::new(P(info))
    }

    fn bundled() -> Vec<BundledPlugin> {
        vec![BundledPlugin {
            name: "noop",
            create: |_| Ok(plugin("noop", PluginType::DEBUG, false)),
        }]
    }

    #[test]
    fn resolution_rules() {
        let b = bundled();
        assert_eq!(resolve("noop", &b).unwrap(), Resolution::Bundled("noop"));
        assert_eq!(
            resolve("libvaccel-noop.so", &b).unwrap(),
            Resolution::Bundled("noop")
        );
        assert_eq!(
            resolve("/nonexistent/dir/libvaccel-noop.so", &b).unwrap(),
            Resolution::Bundled("noop")
        );
        assert_eq!(
            resolve("libvaccel-foo.so", &b).unwrap(),
            Resolution::Library
        );
        let e = resolve("doesnotexist", &b).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ENOENT);
        assert!(e.to_string().contains("doesnotexist"));
        assert_eq!(
            resolve("/nonexistent/libfoo.so", &b).unwrap_err().code(),
            ErrorCode::ENOENT
        );
    }

    #[test]
    fn load_list_order_and_errors() {
        let b = bundled();
        let cfg = Config::default();
        let mut r = Registry::new();
        r.load_list("::noop:libvaccel-noop.so:", &b, None, &cfg)
            .unwrap();
        assert_eq!(r.plugins().len(), 1);
        let e = r
            .load_list("libvaccel-other.so", &b, None, &cfg)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ENOENT);
        assert!(
            r.register(plugin("noop", PluginType::CPU, false), false)
                .is_err()
        );
    }

    #[test]
    fn selection_rules() {
        let mut r = Registry::new();
        assert!(r.find(0).is_err());
        r.register(plugin("remote", PluginType::REMOTE, true), false)
            .unwrap();
        // The only plugin serves everything, even a remote one.
        assert_eq!(r.find(0).unwrap().info().name, "remote");
        r.register(plugin("cpu", PluginType::CPU, false), false)
            .unwrap();
        r.register(plugin("gpu", PluginType::GPU, false), false)
            .unwrap();
        assert_eq!(r.find(0).unwrap().info().name, "cpu");
        assert_eq!(r.find(PluginType::GPU.bits()).unwrap().info().name, "gpu");
        assert_eq!(
            r.find(PluginType::REMOTE.bits()).unwrap().info().name,
            "remote"
        );
        assert_eq!(r.find(PluginType::FPGA.bits()).unwrap().info().name, "cpu");
        let mut only_remote = Registry::new();
        only_remote
            .register(plugin("a", PluginType::CPU, false), false)
            .unwrap();
        assert!(only_remote.find(PluginType::REMOTE.bits()).is_err());
    }

    #[test]
    fn groups_expand_in_place() {
        let bundled = vec![
            BundledPlugin {
                name: "noop",
                create: |_| Ok(plugin("noop", PluginType::DEBUG, false)),
            },
            BundledPlugin {
                name: "blas",
                create: |_| Ok(plugin("blas", PluginType::CPU, false)),
            },
            BundledPlugin {
                name: "onnx",
                create: |_| Ok(plugin("onnx", PluginType::CPU, false)),
            },
        ];
        let groups = [PluginGroup {
            name: "cpu",
            members: &["blas", "onnx"],
        }];
        let loaded = |list: &str| {
            let mut r = Registry::new();
            r.load_list_with_groups(list, &groups, &bundled, None, &Config::default())
                .map(|()| {
                    r.plugins()
                        .iter()
                        .map(|p| p.info().name.clone())
                        .collect::<Vec<_>>()
                })
        };
        assert_eq!(loaded("noop:cpu").unwrap(), ["noop", "blas", "onnx"]);
        assert_eq!(loaded("cpu").unwrap(), ["blas", "onnx"]);
        // Only a whole entry names a group.
        assert!(loaded("cpus:noop").is_err());
        assert!(loaded("").unwrap().is_empty());
    }

    #[test]
    fn a_group_loads_what_is_installed_and_fails_when_nothing_is() {
        let b = bundled();
        let cfg = Config::default();
        let groups = [
            PluginGroup {
                name: "cpu",
                members: &["libvaccel-noop.so", "libvaccel-absent.so"],
            },
            PluginGroup {
                name: "none",
                members: &["libvaccel-absent.so", "libvaccel-gone.so"],
            },
        ];
        let mut r = Registry::new();
        // No loader: the absent library cannot be found, the bundled twin can.
        r.load_list_with_groups("cpu", &groups, &b, None, &cfg)
            .unwrap();
        let names: Vec<&str> = r.plugins().iter().map(|p| p.info().name.as_str()).collect();
        assert_eq!(names, ["noop"]);
        let e = r
            .load_list_with_groups("none", &groups, &b, None, &cfg)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ENOENT);
        let text = e.to_string();
        assert!(
            text.contains("'none'")
                && text.contains("libvaccel-absent.so")
                && text.contains("libvaccel-gone.so"),
            "{text}"
        );
        // A plain entry still fails on its own.
        assert!(
            r.load_list_with_groups("libvaccel-absent.so", &groups, &b, None, &cfg)
                .is_err()
        );
    }

    #[test]
    fn version_rules() {
        assert!(check_version("p", VACCEL_VERSION, false).is_ok());
        assert!(check_version("p", "v0.7.1-93-ebc23b1f", false).is_ok());
        assert!(check_version("p", "0.1.0", false).is_ok());
        assert!(check_version("p", "1.0.0", false).is_err());
        assert!(check_version("p", "1.0.0", true).is_ok());
        assert!(check_version("p", "1.0", false).is_err());
        assert!(check_version("p", "", false).is_err());
        assert_eq!(parse_version("v0.7.1-93-g"), Some((0, 7, 1, "-93-g")));
    }
}
