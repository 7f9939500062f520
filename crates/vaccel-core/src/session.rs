//! Sessions: a client's context, bound to one plugin at creation (§6).
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use vaccel_core::{Runtime, Session};
//! let rt = Runtime::builder().build()?;
//! let sess = Session::new(&rt, 0)?;
//! sess.noop()?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use crate::error::{Error, Result};
use crate::plugin::Plugin;
use crate::resource::Resource;
use crate::runtime::Runtime;
use crate::types::{Id, PluginType, ResourceType};

/// A session. Always handled as `Arc<Session>`; it is `Send + Sync`, so one session can serve
/// several threads. Dropping the last reference releases it: its resources are unregistered
/// (not released), its directory removed and its plugin told.
pub struct Session {
    id: Id,
    hint: AtomicU32,
    remote: bool,
    remote_id: AtomicI64,
    plugin: RwLock<Arc<Binding>>,
    rundir: PathBuf,
    rt: Runtime,
    resources: Mutex<Vec<Arc<Resource>>>,
    plugin_initialized: AtomicBool,
    /// Other local plugins the session has routed operations to (see [`Session::route`]),
    /// each told of the session and its resources like the bound plugin.
    joined: Mutex<Vec<Arc<dyn Plugin>>>,
    /// Attached to a host's session ([`Session::attach`]): the id and the directory are the
    /// host's, never returned to this runtime's pool nor removed.
    attached: bool,
    /// Bumped whenever something a C view of the session shows changes (see
    /// [`Session::generation`]).
    generation: AtomicU64,
    /// The plugin of an attached session, which never changes (the host binds and rebinds):
    /// ops borrow it without the lock and reference count of `plugin`.
    fixed: Option<Arc<dyn Plugin>>,
}

/// The plugin a session is bound to, in an allocation of the session's own: an op counts its
/// reference here, not on the plugin's `Arc`, which every session bound to the plugin shares
/// (a reference count that threads of several connections update on every call bounces its
/// cache line between CPUs: issue #17).
pub(crate) struct Binding(Arc<dyn Plugin>);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("hint", &self.hint())
            .field("remote", &self.remote)
            .field("plugin", &self.plugin_name())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Creates a session. `flags` is a [`PluginType`] bitmask hint selecting the plugin
    /// (§3); with [`PluginType::REMOTE`] the session forwards to a remote runtime.
    pub fn new(rt: &Runtime, flags: u32) -> Result<Arc<Session>> {
        let plugin = Arc::clone(rt.inner().registry.find(flags)?);
        Session::create(rt, plugin, flags, None)
    }

    /// A session standing for one a host created: how a plugin library built with the SDK
    /// sees its host's session. It has the host's `id` and run directory `rundir` (neither
    /// taken from nor returned to this runtime, and the directory is the host's to create and
    /// remove) and is bound to `plugin`, whose `session_init` runs as for [`Session::new`].
    pub fn attach(
        rt: &Runtime,
        plugin: Arc<dyn Plugin>,
        id: Id,
        flags: u32,
        rundir: PathBuf,
    ) -> Result<Arc<Session>> {
        Session::create(rt, plugin, flags, Some((id, rundir)))
    }

    fn create(
        rt: &Runtime,
        plugin: Arc<dyn Plugin>,
        flags: u32,
        attach: Option<(Id, PathBuf)>,
    ) -> Result<Arc<Session>> {
        let inner = rt.inner();
        let remote_flag = flags & PluginType::REMOTE.bits() != 0;
        let remote = remote_flag
            || (plugin.info().remote && (attach.is_some() || inner.registry.plugins().len() == 1));
        if remote && !plugin.info().remote {
            return Err(Error::unsupported(format!(
                "Cannot initialize remote session; plugin {} is not a remote plugin",
                plugin.info().name
            )));
        }
        let attached = attach.is_some();
        let (id, rundir) = match attach {
            Some(given) => given,
            None => {
                let id = inner.session_ids.get()?;
                (id, rt.rundir().join(format!("session.{id}")))
            }
        };
        let sess = Arc::new(Session {
            id,
            hint: AtomicU32::new(flags),
            remote,
            remote_id: AtomicI64::new(0),
            fixed: attached.then(|| Arc::clone(&plugin)),
            plugin: RwLock::new(Arc::new(Binding(plugin))),
            rundir,
            rt: rt.clone(),
            resources: Mutex::new(Vec::new()),
            plugin_initialized: AtomicBool::new(false),
            joined: Mutex::new(Vec::new()),
            attached,
            generation: AtomicU64::new(crate::types::next_generation()),
        });
        // From here on, dropping `sess` on an error path undoes everything (Drop).
        if !attached {
            std::fs::create_dir_all(&sess.rundir)
                .map_err(|e| Error::io(format!("create {}", sess.rundir.display()), e))?;
            log::debug!("New rundir for session {id}: {}", sess.rundir.display());
        }
        let plugin = sess.plugin();
        let remote_id = plugin.session_init(&sess, flags & !PluginType::REMOTE.bits())?;
        sess.plugin_initialized.store(true, Ordering::Release);
        if remote {
            if remote_id <= 0 {
                return Err(Error::backend(
                    plugin.info().name.clone(),
                    crate::ErrorCode::EBACKEND,
                    "Cannot initialize remote session; the plugin returned no remote id",
                ));
            }
            sess.remote_id.store(remote_id, Ordering::Release);
            sess.changed();
            log::debug!(
                "Initialized session {id} with plugin {} (remote id: {remote_id})",
                plugin.info().name
            );
        } else {
            log::debug!(
                "Initialized session {id} with plugin {}",
                plugin.info().name
            );
        }
        inner.track_session(&sess);
        Ok(sess)
    }

    /// A number that changes whenever the hint, the remote id, the bound plugin or the set of
    /// registered resources changes: what C views of the session (`struct vaccel_session`)
    /// show besides constants. The C boundary refreshes a view only when it changed. No other
    /// session or state of one ever had the same number in this process.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation
            .store(crate::types::next_generation(), Ordering::Release);
    }

    /// The id (1-based, unique among live sessions of the runtime).
    pub fn id(&self) -> Id {
        self.id
    }

    /// The hint flags.
    pub fn hint(&self) -> u32 {
        self.hint.load(Ordering::Relaxed)
    }

    /// Whether the session forwards to a remote runtime.
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The session's id on the remote side (remote sessions), 0 otherwise.
    pub fn remote_id(&self) -> Id {
        self.remote_id.load(Ordering::Acquire)
    }

    /// The plugin bound to the session.
    pub fn plugin(&self) -> Arc<dyn Plugin> {
        Arc::clone(&self.plugin_guard().0)
    }

    /// The plugin ops call: an attached session's fixed plugin (borrowed), or the bound one
    /// (its binding counted into `held`, a count of the session's own).
    pub(crate) fn bound_plugin<'a>(
        &'a self,
        held: &'a mut Option<Arc<Binding>>,
    ) -> &'a Arc<dyn Plugin> {
        match &self.fixed {
            Some(p) => p,
            None => &held.insert(Arc::clone(&self.plugin_guard())).0,
        }
    }

    fn plugin_guard(&self) -> RwLockReadGuard<'_, Arc<Binding>> {
        self.plugin.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds the session to `plugin`.
    fn bind(&self, plugin: &Arc<dyn Plugin>) {
        *self.plugin.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Binding(Arc::clone(plugin)));
    }

    fn plugin_name(&self) -> String {
        self.plugin_guard().0.info().name.clone()
    }

    /// The session's own directory (`<rundir>/session.<id>`), removed at release.
    pub fn rundir(&self) -> &Path {
        &self.rundir
    }

    /// The runtime the session belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    fn lock_resources(&self) -> MutexGuard<'_, Vec<Arc<Resource>>> {
        self.resources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a resource with the session (§5.4): loads its blobs (downloading URLs for
    /// local sessions, reading files for remote ones is the remote plugin's job), calls the
    /// plugin's hook, and links the two. Registering twice is a warning, not an error.
    pub fn register(self: &Arc<Self>, res: &Arc<Resource>) -> Result<()> {
        res.check_usable()?;
        if self.has_resource(res) {
            log::warn!(
                "session:{} Resource {} already registered",
                self.id,
                res.id()
            );
            return Ok(());
        }
        res.load_blobs(self.remote)?;
        let plugin = self.plugin();
        let remote_id = plugin.resource_register(res, self).inspect_err(|e| {
            log::error!(
                "session:{} Failed to register {}resource {}: {e}",
                self.id,
                if self.remote { "remote " } else { "" },
                res.id()
            );
        })?;
        if self.remote {
            if remote_id <= 0 && res.remote_id() <= 0 {
                return Err(Error::backend(
                    plugin.info().name.clone(),
                    crate::ErrorCode::EBACKEND,
                    format!(
                        "remote registration of resource {} returned no id",
                        res.id()
                    ),
                ));
            }
            if remote_id > 0 {
                res.set_remote_id(remote_id);
            }
        }
        {
            let mut list = self.lock_resources();
            if list.iter().any(|r| r.id() == res.id()) {
                // Lost a race with another thread registering the same pair: it linked first.
                return Ok(());
            }
            list.push(Arc::clone(res));
            self.changed();
        }
        res.link_session(self);
        for other in self.joined_plugins() {
            if let Err(e) = other.resource_register(res, self) {
                log::warn!(
                    "session:{} Plugin {} could not take resource {}: {e}",
                    self.id,
                    other.info().name,
                    res.id()
                );
            }
        }
        if self.remote {
            log::debug!(
                "session:{} Registered resource {} with remote (id: {})",
                self.id,
                res.id(),
                res.remote_id()
            );
        } else {
            log::debug!("session:{} Registered resource {}", self.id, res.id());
        }
        Ok(())
    }

    /// Unregisters a resource (`EINVAL` if it is not registered) and tells the plugin.
    pub fn unregister(&self, res: &Resource) -> Result<()> {
        let removed = {
            let mut list = self.lock_resources();
            let before = list.len();
            list.retain(|r| r.id() != res.id() || !std::ptr::eq(Arc::as_ptr(r), res));
            before != list.len()
        };
        self.changed();
        if !removed {
            return Err(Error::invalid(format!(
                "Resource {} not registered with session {}",
                res.id(),
                self.id
            )));
        }
        res.unlink_session(self.id);
        self.notify_unregister(res)
    }

    /// Called by [`Resource::release`]: drop the link from this side and tell the plugin.
    pub(crate) fn unlink_and_notify(&self, res: &Resource) -> Result<()> {
        self.lock_resources()
            .retain(|r| !std::ptr::eq(Arc::as_ptr(r), res));
        self.changed();
        self.notify_unregister(res)
    }

    fn notify_unregister(&self, res: &Resource) -> Result<()> {
        for other in self.joined_plugins() {
            if let Err(e) = other.resource_unregister(res, self) {
                log::warn!(
                    "session:{} Plugin {} could not drop resource {}: {e}",
                    self.id,
                    other.info().name,
                    res.id()
                );
            }
        }
        let result = self.plugin().resource_unregister(res, self);
        log::debug!("session:{} Unregistered resource {}", self.id, res.id());
        result
    }

    /// Refreshes a buffer resource from the plugin (`vaccel_resource_sync`).
    pub fn sync(&self, res: &Resource) -> Result<()> {
        if !self.has_resource(res) {
            return Err(Error::NotRegistered {
                resource: res.id(),
                session: self.id,
            });
        }
        if res
            .blobs()
            .first()
            .is_none_or(|b| b.kind() != crate::types::BlobType::Buffer)
        {
            return Err(Error::invalid("Cannot synchronize non-buffer resources"));
        }
        self.plugin().resource_sync(res, self)
    }

    /// Whether `res` is registered with the session.
    pub fn has_resource(&self, res: &Resource) -> bool {
        self.lock_resources()
            .iter()
            .any(|r| std::ptr::eq(Arc::as_ptr(r), res))
    }

    /// A registered resource by id.
    pub fn resource_by_id(&self, id: Id) -> Result<Arc<Resource>> {
        if id <= 0 {
            return Err(Error::invalid(format!("invalid resource id {id}")));
        }
        self.lock_resources()
            .iter()
            .find(|r| r.id() == id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("resource {id} in session {}", self.id)))
    }

    /// The first registered resource of a type.
    pub fn resource_by_type(&self, kind: ResourceType) -> Result<Arc<Resource>> {
        self.first_resource_of(kind)
            .ok_or_else(|| Error::not_found(format!("{kind} resource in session {}", self.id)))
    }

    /// The first registered resource of a type, if any (no error to build when there is none:
    /// for callers that only look).
    pub fn first_resource_of(&self, kind: ResourceType) -> Option<Arc<Resource>> {
        self.lock_resources()
            .iter()
            .find(|r| r.kind() == kind)
            .cloned()
    }

    /// Every registered resource of a type, in registration order.
    pub fn resources_by_type(&self, kind: ResourceType) -> Vec<Arc<Resource>> {
        self.lock_resources()
            .iter()
            .filter(|r| r.kind() == kind)
            .cloned()
            .collect()
    }

    /// Every registered resource, in registration order.
    pub fn resources(&self) -> Vec<Arc<Resource>> {
        self.lock_resources().clone()
    }

    fn joined_plugins(&self) -> Vec<Arc<dyn Plugin>> {
        self.joined
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The plugins that can run `op` for this session, in the order to try them: the bound
    /// plugin first when it implements `op`; then, for local sessions, every other loaded
    /// local plugin implementing it, in load order (restricted to plugins sharing a type bit
    /// with the session's hint when the hint names types). This is what lets one session use
    /// several CPU backends (`VACCEL_PLUGINS=cpu`): upstream binds each session to one plugin
    /// and fails ops that plugin lacks.
    pub(crate) fn route(&self, op: crate::types::OpType) -> Vec<Arc<dyn Plugin>> {
        let bound = self.plugin();
        let mut out = Vec::new();
        if bound.ops().contains(op) {
            out.push(Arc::clone(&bound));
        }
        if self.remote {
            return out;
        }
        let prio = self.hint() & !PluginType::REMOTE.bits();
        for p in self.rt.inner().registry.plugins() {
            let info = p.info();
            if info.remote
                || Arc::ptr_eq(p, &bound)
                || !p.ops().contains(op)
                || (prio != 0 && info.plugin_type.bits() & prio == 0)
            {
                continue;
            }
            out.push(Arc::clone(p));
        }
        out
    }

    /// Makes `plugin` (not the bound one) know this session: `session_init`, then
    /// `resource_register` for every registered resource. Done once per plugin.
    pub(crate) fn join(self: &Session, plugin: &Arc<dyn Plugin>) -> Result<()> {
        if Arc::ptr_eq(plugin, &self.plugin()) {
            return Ok(());
        }
        let mut joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
        if joined.iter().any(|p| Arc::ptr_eq(p, plugin)) {
            return Ok(());
        }
        plugin.session_init(self, self.hint() & !PluginType::REMOTE.bits())?;
        for res in self.resources() {
            if let Err(e) = plugin.resource_register(&res, self) {
                if let Err(e2) = plugin.session_release(self) {
                    log::warn!(
                        "session:{} {} release failed: {e2}",
                        self.id,
                        plugin.info().name
                    );
                }
                return Err(e);
            }
        }
        log::debug!(
            "session:{} Routing to plugin {} as well",
            self.id,
            plugin.info().name
        );
        joined.push(Arc::clone(plugin));
        Ok(())
    }

    /// Records new hint flags without re-selecting the plugin (what upstream's agent does for
    /// `UpdateSession`: the session keeps the plugin it was created with).
    pub fn set_hint(&self, flags: u32) {
        self.hint.store(flags, Ordering::Relaxed);
        self.changed();
    }

    /// The deprecated `vaccel_session_update`: remote sessions forward the new flags; local
    /// ones re-select their plugin, which is refused while resources are registered.
    pub fn update(&self, flags: u32) -> Result<()> {
        // A remote session stays with its transport, an attached one with the plugin its host
        // bound it to: the plugin is told, nothing rebinds.
        if self.remote || self.attached {
            let mut held = None;
            self.bound_plugin(&mut held).session_update(self, flags)?;
            self.hint.store(flags, Ordering::Relaxed);
            self.changed();
            return Ok(());
        }
        if !self.lock_resources().is_empty() {
            return Err(Error::unsupported(
                "Cannot update a session with registered resources",
            ));
        }
        let plugin = Arc::clone(self.rt.inner().registry.find(flags)?);
        if plugin.info().remote {
            return Err(Error::unsupported(
                "a local session cannot move to a remote plugin",
            ));
        }
        log::debug!("session:{} Selected plugin {}", self.id, plugin.info().name);
        // Plugins joined for routing are re-joined on demand under the new binding.
        for other in std::mem::take(&mut *self.joined.lock().unwrap_or_else(|e| e.into_inner())) {
            if let Err(e) = other.session_release(self) {
                log::warn!(
                    "session:{} {} release failed: {e}",
                    self.id,
                    other.info().name
                );
            }
        }
        // The old binding lets go of the session, then the new one takes it up (each while
        // bound), so plugins that keep per-session state (plugin libraries built with the
        // SDK) see the change. A new binding that refuses leaves the old one in place.
        let old = self.plugin();
        if Arc::ptr_eq(&old, &plugin) {
            self.hint.store(flags, Ordering::Relaxed);
            self.changed();
            return Ok(());
        }
        if let Err(e) = old.session_release(self) {
            log::warn!(
                "session:{} {} release failed: {e}",
                self.id,
                old.info().name
            );
        }
        self.bind(&plugin);
        self.changed();
        let local = flags & !PluginType::REMOTE.bits();
        if let Err(e) = plugin.session_init(self, local) {
            self.bind(&old);
            self.changed();
            if let Err(e2) = old.session_init(self, self.hint() & !PluginType::REMOTE.bits()) {
                log::warn!(
                    "session:{} {} could not take the session back: {e2}",
                    self.id,
                    old.info().name
                );
            }
            return Err(e);
        }
        self.hint.store(flags, Ordering::Relaxed);
        self.changed();
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let resources = std::mem::take(&mut *self.lock_resources());
        for kind in [ResourceType::Lib, ResourceType::Data, ResourceType::Model] {
            for res in resources.iter().filter(|r| r.kind() == kind) {
                res.unlink_session(self.id);
                if let Err(e) = self.notify_unregister(res) {
                    log::warn!(
                        "session:{} Could not unregister resource {}: {e}",
                        self.id,
                        res.id()
                    );
                }
            }
        }
        drop(resources);
        if !self.attached
            && let Err(e) = std::fs::remove_dir_all(&self.rundir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("Could not remove rundir {}: {e}", self.rundir.display());
        }
        for other in std::mem::take(&mut *self.joined.lock().unwrap_or_else(|e| e.into_inner())) {
            if let Err(e) = other.session_release(self) {
                log::warn!(
                    "session:{} Plugin {} could not release the session: {e}",
                    self.id,
                    other.info().name
                );
            }
        }
        if self.plugin_initialized.load(Ordering::Acquire)
            && let Err(e) = self.plugin().session_release(self)
        {
            log::warn!(
                "session:{} Could not release session in plugin: {e}",
                self.id
            );
        }
        self.rt.inner().untrack_session(self.id);
        if !self.attached
            && let Err(e) = self.rt.inner().session_ids.put(self.id)
        {
            log::warn!("Could not return session ID {}: {e}", self.id);
        }
        log::debug!("Released session {}", self.id);
    }
}
