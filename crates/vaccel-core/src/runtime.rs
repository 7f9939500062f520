//! The runtime: configuration, plugins, id pools, run directory and live objects.
//!
//! There is no hidden global: a program (or a test) creates as many runtimes as it wants,
//! each with its own plugins and directory. Sessions and resources keep their runtime alive.
//!
//! ```
//! # fn main() -> vaccel_core::Result<()> {
//! use vaccel_core::{Config, Runtime};
//! let rt = Runtime::builder().config(Config::default()).build()?;
//! assert!(rt.rundir().is_dir());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::VACCEL_VERSION;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::id_pool::IdPool;
use crate::plugin::{Plugin, PluginInfo};
use crate::prof::OpRegions;
use crate::registry::{BundledPlugin, PluginGroup, PluginLoader, Registry};
use crate::resource::Resource;
use crate::session::Session;
use crate::types::{Id, ResourceType};

/// Upstream's session id pool size.
pub const MAX_SESSIONS: usize = 1024;
/// Upstream's resource id pool size.
pub const MAX_RESOURCES: usize = 2048;

/// A vAccel runtime. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    rundir: tempfile::TempDir,
    pub(crate) session_ids: IdPool,
    pub(crate) resource_ids: IdPool,
    sessions: Mutex<HashMap<Id, Weak<Session>>>,
    resources: Mutex<HashMap<Id, Weak<Resource>>>,
    pub(crate) regions: OpRegions,
}

impl std::fmt::Debug for RuntimeInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("rundir", &self.rundir.path())
            .field("plugins", &self.registry)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Runtime`].
#[derive(Default)]
pub struct RuntimeBuilder {
    config: Option<Config>,
    bundled: Vec<BundledPlugin>,
    groups: Vec<PluginGroup>,
    plugins: Vec<Arc<dyn Plugin>>,
    loader: Option<Arc<dyn PluginLoader>>,
    rundir_base: Option<PathBuf>,
    skip_logging: bool,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("config", &self.config)
            .field("bundled", &self.bundled)
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// The configuration (default: [`Config::default`], i.e. no plugins).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Plugins that `VACCEL_PLUGINS` entries may name.
    pub fn bundled(mut self, bundled: impl IntoIterator<Item = BundledPlugin>) -> Self {
        self.bundled.extend(bundled);
        self
    }

    /// Names that stand for several plugins in `VACCEL_PLUGINS` (e.g. `cpu`); a group loads
    /// those of its members that are available (see [`Registry::load_list_with_groups`]).
    pub fn groups(mut self, groups: impl IntoIterator<Item = PluginGroup>) -> Self {
        self.groups.extend(groups);
        self
    }

    /// A plugin instance to register after the configured ones.
    pub fn plugin(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Loads `VACCEL_PLUGINS` entries that are shared libraries.
    pub fn loader(mut self, loader: Arc<dyn PluginLoader>) -> Self {
        self.loader = Some(loader);
        self
    }

    /// Where the runtime's directory is created (default: `/run/user/<uid>/vaccel`, falling
    /// back to `$XDG_RUNTIME_DIR/vaccel` and then the temp dir when not writable).
    pub fn rundir_base(mut self, base: impl Into<PathBuf>) -> Self {
        self.rundir_base = Some(base.into());
        self
    }

    /// Leaves the process's logger alone (by default the runtime installs the vAccel logger
    /// configured by `log_level`/`log_file`, unless the program installed its own).
    pub fn skip_logging(mut self) -> Self {
        self.skip_logging = true;
        self
    }

    /// Creates the runtime: logging, run directory, plugins.
    pub fn build(self) -> Result<Runtime> {
        let config = self.config.unwrap_or_default();
        if !self.skip_logging {
            crate::logging::init(&config)?;
        }
        log::debug!("Initializing vAccel");
        log::info!(
            "vAccel {VACCEL_VERSION} (vaccel-rs {})",
            env!("CARGO_PKG_VERSION")
        );
        config.print_debug();
        let rundir = create_rundir(self.rundir_base.as_deref())?;
        log::debug!("Created top-level rundir: {}", rundir.path().display());
        let mut registry = Registry::new();
        if let Some(list) = &config.plugins {
            registry.load_list_with_groups(
                list,
                &self.groups,
                &self.bundled,
                self.loader.as_deref(),
                &config,
            )?;
        }
        for plugin in self.plugins {
            registry.register(plugin, config.version_ignore)?;
        }
        let regions = OpRegions::with_enabled(config.profiling_enabled);
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                config,
                registry,
                rundir,
                session_ids: IdPool::new("session", MAX_SESSIONS),
                resource_ids: IdPool::new("resource", MAX_RESOURCES),
                sessions: Mutex::new(HashMap::new()),
                resources: Mutex::new(HashMap::new()),
                regions,
            }),
        })
    }
}

fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn create_rundir(base: Option<&Path>) -> Result<tempfile::TempDir> {
    let make = |base: &Path| -> std::io::Result<tempfile::TempDir> {
        create_dir_private(base)?;
        tempfile::Builder::new()
            .prefix("")
            .rand_bytes(6)
            .tempdir_in(base)
    };
    if let Some(base) = base {
        return make(base)
            .map_err(|e| Error::io(format!("create rundir in {}", base.display()), e));
    }
    let uid = current_uid().unwrap_or(0);
    let mut candidates = vec![PathBuf::from(format!("/run/user/{uid}/vaccel"))];
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR") {
        candidates.push(PathBuf::from(xdg).join("vaccel"));
    }
    candidates.push(std::env::temp_dir().join(format!("vaccel-{uid}")));
    let mut last = None;
    for base in &candidates {
        match make(base) {
            Ok(dir) => return Ok(dir),
            Err(e) => last = Some((base, e)),
        }
    }
    match last {
        Some((base, e)) => Err(Error::io(format!("create rundir in {}", base.display()), e)),
        None => Err(Error::invalid("no rundir candidate")),
    }
}

impl Runtime {
    /// A builder.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    pub(crate) fn inner(&self) -> &RuntimeInner {
        &self.inner
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The runtime's top-level directory (`/run/user/<uid>/vaccel/XXXXXX`), removed with
    /// everything in it when the runtime ends.
    pub fn rundir(&self) -> &Path {
        self.inner.rundir.path()
    }

    /// The registered plugins, in priority order.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.inner
            .registry
            .plugins()
            .iter()
            .map(|p| p.info().clone())
            .collect()
    }

    /// The registered plugins themselves, in priority order.
    pub fn plugin_handles(&self) -> Vec<Arc<dyn Plugin>> {
        self.inner.registry.plugins().to_vec()
    }

    /// A live session by id.
    pub fn session_by_id(&self, id: Id) -> Result<Arc<Session>> {
        let map = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(&id)
            .and_then(Weak::upgrade)
            .ok_or_else(|| Error::not_found(format!("session {id}")))
    }

    /// A live resource by id (`vaccel_resource_get_by_id`).
    pub fn resource_by_id(&self, id: Id) -> Result<Arc<Resource>> {
        if id <= 0 {
            return Err(Error::invalid(format!("invalid resource id {id}")));
        }
        let map = self
            .inner
            .resources
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(&id)
            .and_then(Weak::upgrade)
            .ok_or_else(|| Error::not_found(format!("resource {id}")))
    }

    /// Every live resource of a type, oldest id first.
    pub fn resources_by_type(&self, kind: ResourceType) -> Vec<Arc<Resource>> {
        let map = self
            .inner
            .resources
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut found: Vec<_> = map
            .values()
            .filter_map(Weak::upgrade)
            .filter(|r| r.kind() == kind)
            .collect();
        found.sort_by_key(|r| r.id());
        found
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.inner.session_ids.in_use()
    }

    /// Number of live resources.
    pub fn resource_count(&self) -> usize {
        self.inner.resource_ids.in_use()
    }

    /// Raises the id pools to `sessions` and `resources` ids (never lowers them; upstream's
    /// sizes are [`MAX_SESSIONS`] and [`MAX_RESOURCES`]). For a server of many clients, whose
    /// own per-client limits should bind before the pools do.
    pub fn grow_id_pools(&self, sessions: usize, resources: usize) {
        self.inner.session_ids.grow(sessions);
        self.inner.resource_ids.grow(resources);
    }

    /// The sizes of the id pools: (sessions, resources).
    pub fn id_pool_sizes(&self) -> (usize, usize) {
        (
            self.inner.session_ids.capacity(),
            self.inner.resource_ids.capacity(),
        )
    }

    /// The built-in profiling regions of the operations.
    pub fn op_regions(&self) -> &OpRegions {
        &self.inner.regions
    }
}

impl RuntimeInner {
    pub(crate) fn track_session(&self, sess: &Arc<Session>) {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(sess.id(), Arc::downgrade(sess));
    }

    pub(crate) fn untrack_session(&self, id: Id) {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&id);
    }

    pub(crate) fn track_resource(&self, res: &Arc<Resource>) {
        let mut map = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(res.id(), Arc::downgrade(res));
    }

    pub(crate) fn untrack_resource(&self, id: Id) {
        let mut map = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&id);
    }
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        log::debug!("Cleaning up vAccel");
        self.regions.print_all();
        log::debug!("Cleaning up plugins");
        self.registry.clear();
        // The TempDir removes the whole tree (upstream's rmdir leaks non-empty dirs).
    }
}
