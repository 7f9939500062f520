//! Resources: libraries, data and models that sessions use (§5).
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use vaccel_core::{Resource, ResourceType, Runtime, Session};
//! let rt = Runtime::builder().build()?;
//! let model = Resource::new(&rt, "/models/mobilenet.tflite", ResourceType::Model)?;
//! let sess = Session::new(&rt, 0)?;
//! sess.register(&model)?;
//! # Ok(()) }
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;

use crate::blob::{Blob, sanitize_name};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::session::Session;
use crate::types::{BlobType, Id, PathType, ResourceType};

/// Longest path accepted (`PATH_MAX`).
const PATH_MAX: usize = 4096;

/// A resource: its files or buffers and the sessions it is registered with.
///
/// Always handled as `Arc<Resource>`. A session keeps every resource registered with it alive;
/// [`Resource::release`] unregisters it from every session and deletes the files the runtime
/// made for it. Dropping the last reference releases it too.
pub struct Resource {
    id: Id,
    /// The [`ResourceType`] value; changes only through [`Resource::set_kind`].
    kind: AtomicU32,
    path_type: PathType,
    paths: Vec<String>,
    rt: Runtime,
    remote_id: AtomicI64,
    state: Mutex<State>,
    /// Attached to a host's resource ([`Resource::attach`]): the id is the host's, never
    /// returned to this runtime's pool.
    attached: bool,
    /// Bumped whenever something a C view of the resource shows changes (see
    /// [`Resource::generation`]).
    generation: AtomicU64,
}

struct State {
    blobs: Vec<Arc<Blob>>,
    blobs_loaded: bool,
    rundir: Option<PathBuf>,
    /// Whether this resource made `rundir` (and removes it); a host's directory is the host's.
    rundir_owned: bool,
    sessions: Vec<(Id, Weak<Session>)>,
    released: bool,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("id", &self.id)
            .field("type", &self.kind())
            .field("path_type", &self.path_type)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// Classifies a path string (§5.1).
pub fn parse_path(path: &str) -> Result<(PathType, String)> {
    if path.len() > PATH_MAX {
        return Err(Error::NameTooLong(path.chars().take(64).collect()));
    }
    if let Some((scheme, rest)) = path.split_once("://") {
        return match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => Ok((PathType::RemoteFile, path.to_owned())),
            "ftp" => Err(Error::unsupported(format!(
                "ftp URLs are not supported ({path}); use http(s) or a local path"
            ))),
            "file" => local_path(rest),
            _ => Err(Error::invalid(format!("Unsupported URI prefix for {path}"))),
        };
    }
    local_path(path)
}

fn local_path(path: &str) -> Result<(PathType, String)> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok((PathType::LocalDir, path.to_owned())),
        Ok(m) if m.is_file() => Ok((PathType::LocalFile, path.to_owned())),
        Ok(_) => Err(Error::invalid(format!(
            "Invalid path {path}: not a file or directory"
        ))),
        Err(e) => Err(Error::invalid(format!("Invalid path {path}: {e}"))),
    }
}

impl Resource {
    fn create(
        rt: &Runtime,
        kind: ResourceType,
        path_type: PathType,
        paths: Vec<String>,
    ) -> Result<Arc<Resource>> {
        let id = rt.inner().resource_ids.get()?;
        Ok(Resource::build(rt, id, kind, path_type, paths, false))
    }

    fn build(
        rt: &Runtime,
        id: Id,
        kind: ResourceType,
        path_type: PathType,
        paths: Vec<String>,
        attached: bool,
    ) -> Arc<Resource> {
        let res = Arc::new(Resource {
            id,
            kind: AtomicU32::new(kind.value()),
            path_type,
            paths,
            rt: rt.clone(),
            remote_id: AtomicI64::new(0),
            state: Mutex::new(State {
                blobs: Vec::new(),
                blobs_loaded: false,
                rundir: None,
                rundir_owned: false,
                sessions: Vec::new(),
                released: false,
            }),
            attached,
            generation: AtomicU64::new(crate::types::next_generation()),
        });
        rt.inner().track_resource(&res);
        log::debug!("Initialized resource {id}");
        res
    }

    /// A resource standing for one a host created: how a plugin library built with the SDK
    /// sees its host's resource. It has the host's `id`, paths and run directory (which stays
    /// the host's: never removed here), and the given blobs (files by the host's paths,
    /// buffers that may borrow the host's memory).
    pub fn attach(
        rt: &Runtime,
        id: Id,
        kind: ResourceType,
        path_type: PathType,
        paths: Vec<String>,
        blobs: Vec<Blob>,
        rundir: Option<PathBuf>,
    ) -> Result<Arc<Resource>> {
        let res = Resource::build(rt, id, kind, path_type, paths, true);
        res.with_state(|s| {
            s.blobs = blobs.into_iter().map(Arc::new).collect();
            s.blobs_loaded = true;
            s.rundir = rundir;
        });
        Ok(res)
    }

    /// A resource from one path: a local file, a local directory (`file://` allowed) or an
    /// http(s) URL downloaded at first registration with a local session.
    pub fn new(rt: &Runtime, path: &str, kind: ResourceType) -> Result<Arc<Resource>> {
        Resource::from_paths(rt, &[path], kind)
    }

    /// A resource from several paths of the same kind (files or URLs; a directory only alone).
    pub fn from_paths<S: AsRef<str>>(
        rt: &Runtime,
        paths: &[S],
        kind: ResourceType,
    ) -> Result<Arc<Resource>> {
        if paths.is_empty() {
            return Err(Error::invalid("a resource needs at least one path"));
        }
        let mut parsed = Vec::with_capacity(paths.len());
        for p in paths {
            parsed.push(parse_path(p.as_ref())?);
        }
        let path_type = parsed.first().map_or(PathType::LocalFile, |(t, _)| *t);
        if parsed.iter().any(|(t, _)| *t != path_type) {
            return Err(Error::invalid(
                "Resource paths cannot be of different types",
            ));
        }
        if path_type == PathType::LocalDir && parsed.len() > 1 {
            return Err(Error::unsupported(
                "Resources with multiple directory paths are not supported",
            ));
        }
        Resource::create(
            rt,
            kind,
            path_type,
            parsed.into_iter().map(|(_, p)| p).collect(),
        )
    }

    /// A resource from bytes. With `mem_only` the bytes stay in memory (shared, not copied);
    /// otherwise they are also written to `<rundir>/resource.<id>/<filename>` (a random name
    /// when `filename` is `None`), for plugins that need a file (e.g. a library to dlopen).
    pub fn from_buf(
        rt: &Runtime,
        data: impl Into<Bytes>,
        kind: ResourceType,
        filename: Option<&str>,
        mem_only: bool,
    ) -> Result<Arc<Resource>> {
        let data = data.into();
        if data.is_empty() {
            return Err(Error::invalid("resource buffer is empty"));
        }
        if let Some(name) = filename {
            sanitize_name(name)?;
        }
        let res = Resource::create(rt, kind, PathType::LocalFile, Vec::new())?;
        let blob = if mem_only {
            Blob::from_buf(data, filename.unwrap_or("file"))?
        } else {
            let dir = res.ensure_rundir()?;
            Blob::persist(data, &dir, filename.unwrap_or("file"), filename.is_none())?
        };
        res.with_state(|s| {
            s.blobs.push(Arc::new(blob));
            s.blobs_loaded = true;
        });
        Ok(res)
    }

    /// A resource from blobs. `FILE` and `BUFFER` blobs are adopted as they are; `MAPPED`
    /// blobs (files another resource owns) are copied into this resource's directory.
    pub fn from_blobs(rt: &Runtime, blobs: Vec<Blob>, kind: ResourceType) -> Result<Arc<Resource>> {
        if blobs.is_empty() {
            return Err(Error::invalid("a resource needs at least one blob"));
        }
        let res = Resource::create(rt, kind, PathType::LocalFile, Vec::new())?;
        let mut adopted = Vec::with_capacity(blobs.len());
        for blob in blobs {
            let blob = if blob.kind() == BlobType::Mapped {
                let dir = res.ensure_rundir()?;
                Blob::persist(blob.read()?, &dir, blob.name(), false)?
            } else {
                blob
            };
            adopted.push(Arc::new(blob));
        }
        res.with_state(|s| {
            s.blobs = adopted;
            s.blobs_loaded = true;
        });
        Ok(res)
    }

    /// A resource whose blobs are written into its own directory under their (sanitized,
    /// possibly nested) names: how a runtime receives a resource shipped from elsewhere.
    /// `as_directory` marks a directory tree, so [`Resource::directory`] returns its root.
    pub fn from_named_buffers(
        rt: &Runtime,
        files: Vec<(String, Bytes)>,
        kind: ResourceType,
        as_directory: bool,
    ) -> Result<Arc<Resource>> {
        if files.is_empty() {
            return Err(Error::invalid("a resource needs at least one blob"));
        }
        let path_type = if as_directory {
            PathType::LocalDir
        } else {
            PathType::LocalFile
        };
        let res = Resource::create(rt, kind, path_type, Vec::new())?;
        let dir = res.ensure_rundir()?;
        let mut blobs = Vec::with_capacity(files.len());
        for (name, data) in files {
            blobs.push(Arc::new(Blob::persist(data, &dir, &name, false)?));
        }
        res.with_state(|s| {
            s.blobs = blobs;
            s.blobs_loaded = true;
        });
        Ok(res)
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed();
        out
    }

    /// A number that changes whenever the blobs, the run directory, the remote id, the
    /// sessions it is registered with or its release change: what C views of the resource
    /// (`struct vaccel_resource`) show besides constants. The C boundary refreshes a view only
    /// when it changed. No other resource or state of one ever had the same number in this
    /// process.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation
            .store(crate::types::next_generation(), Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id (1-based, unique among live resources of the runtime).
    pub fn id(&self) -> Id {
        self.id
    }

    /// The resource type.
    pub fn kind(&self) -> ResourceType {
        // Only valid values are ever stored (`build`, `set_kind`).
        ResourceType::from_value(self.kind.load(Ordering::Acquire)).unwrap_or(ResourceType::Data)
    }

    /// Changes the resource type: what a C caller does by writing `res->type`, which
    /// upstream reads at every use (the C boundary carries the write over). Registrations
    /// stay; typed lookups and the ops' type checks see the new type from now on.
    pub fn set_kind(&self, kind: ResourceType) {
        if self.kind.swap(kind.value(), Ordering::AcqRel) != kind.value() {
            log::debug!("Resource {} is now of type {kind}", self.id);
            self.changed();
        }
    }

    /// How the paths are read.
    pub fn path_type(&self) -> PathType {
        self.path_type
    }

    /// The paths or URLs it was created from (empty for buffers and blobs).
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The id of this resource on the remote side (remote plugins), 0 if none.
    pub fn remote_id(&self) -> Id {
        self.remote_id.load(Ordering::Acquire)
    }

    /// Sets the remote id (remote plugins).
    pub fn set_remote_id(&self, id: Id) {
        self.remote_id.store(id, Ordering::Release);
        self.changed();
    }

    /// The runtime the resource belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// The blobs loaded so far (files are turned into blobs at first registration).
    pub fn blobs(&self) -> Vec<Arc<Blob>> {
        self.lock().blobs.clone()
    }

    /// Number of sessions the resource is registered with (`vaccel_resource_refcount`).
    pub fn refcount(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether [`Resource::release`] has run.
    pub fn is_released(&self) -> bool {
        self.lock().released
    }

    /// The resource's own directory, if it has one yet.
    pub fn rundir(&self) -> Option<PathBuf> {
        self.lock().rundir.clone()
    }

    /// The root directory of a directory resource (`vaccel_resource_directory`).
    pub fn directory(&self) -> Result<PathBuf> {
        if self.path_type != PathType::LocalDir {
            return Err(Error::unsupported(format!(
                "resource {} is not a directory resource",
                self.id
            )));
        }
        if let Some(p) = self.paths.first() {
            return Ok(PathBuf::from(p));
        }
        self.rundir()
            .ok_or_else(|| Error::not_found(format!("resource {} has no directory", self.id)))
    }

    fn ensure_rundir(&self) -> Result<PathBuf> {
        let mut state = self.lock();
        // Under the lock: a C view refreshed after this waits for the change to be done.
        self.changed();
        if let Some(dir) = &state.rundir {
            return Ok(dir.clone());
        }
        let dir = self.rt.rundir().join(format!("resource.{}", self.id));
        fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        log::debug!("New rundir for resource {}: {}", self.id, dir.display());
        state.rundir = Some(dir.clone());
        state.rundir_owned = true;
        Ok(dir)
    }

    /// Makes the blobs a registration needs (§5.4 step 1). Local files and directories become
    /// `FILE` blobs (a directory's files named by their path relative to it); URLs are
    /// downloaded for local sessions and left to the remote side otherwise.
    pub(crate) fn load_blobs(&self, remote_session: bool) -> Result<()> {
        if self.lock().blobs_loaded {
            return Ok(());
        }
        let blobs = match self.path_type {
            PathType::LocalFile => self
                .paths
                .iter()
                .map(|p| Blob::from_path(p).map(Arc::new))
                .collect::<Result<Vec<_>>>()?,
            PathType::LocalDir => {
                let root = self.paths.first().map(PathBuf::from).unwrap_or_default();
                let mut files = Vec::new();
                walk_dir(&root, &root, &mut files, 0)?;
                files.sort_by(|a, b| a.1.cmp(&b.1));
                files
                    .into_iter()
                    .map(|(path, name)| Blob::from_path_named(path, name).map(Arc::new))
                    .collect::<Result<Vec<_>>>()?
            }
            PathType::RemoteFile if remote_session => return Ok(()),
            PathType::RemoteFile => {
                let dir = self.ensure_rundir()?;
                let mut blobs = Vec::with_capacity(self.paths.len());
                for url in &self.paths {
                    blobs.push(Arc::new(download(url, &dir)?));
                }
                blobs
            }
        };
        let mut state = self.lock();
        // Under the lock: a C view refreshed after this waits for the change to be done.
        self.changed();
        if !state.blobs_loaded {
            state.blobs = blobs;
            state.blobs_loaded = true;
        }
        Ok(())
    }

    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.lock().released {
            return Err(Error::Released(self.id));
        }
        Ok(())
    }

    pub(crate) fn link_session(&self, sess: &Arc<Session>) {
        self.with_state(|s| s.sessions.push((sess.id(), Arc::downgrade(sess))));
    }

    pub(crate) fn unlink_session(&self, sess_id: Id) {
        self.with_state(|s| s.sessions.retain(|(id, _)| *id != sess_id));
    }

    /// Replaces the bytes of buffer blobs after a remote sync.
    pub fn set_blob_data(&self, data: Vec<Bytes>) -> Result<()> {
        let mut state = self.lock();
        // Under the lock: a C view refreshed after this waits for the change to be done.
        self.changed();
        if data.len() != state.blobs.len() {
            return Err(Error::invalid(format!(
                "resource {} has {} blobs, got {}",
                self.id,
                state.blobs.len(),
                data.len()
            )));
        }
        for (slot, bytes) in state.blobs.iter_mut().zip(data) {
            if slot.kind() != BlobType::Buffer {
                return Err(Error::invalid("Cannot synchronize non-buffer resources"));
            }
            // Readers holding the old blob keep their bytes; the slot gets the new ones.
            *slot = Arc::new(Blob::from_buf(bytes, slot.name().to_owned())?);
        }
        Ok(())
    }

    /// Unregisters the resource from every session, deletes the files the runtime made for
    /// it (its whole directory) and returns its id. Later use fails with `EINVAL`.
    pub fn release(&self) -> Result<()> {
        let sessions = {
            let mut state = self.lock();
            self.changed();
            // Under the lock: a C view refreshed after this waits for the change to be done.
            self.changed();
            if state.released {
                return Err(Error::Released(self.id));
            }
            std::mem::take(&mut state.sessions)
        };
        for (_, weak) in sessions {
            if let Some(sess) = weak.upgrade()
                && let Err(e) = sess.unlink_and_notify(self)
            {
                log::warn!(
                    "session:{} Failed to unregister resource {}: {e}",
                    sess.id(),
                    self.id
                );
            }
        }
        self.cleanup();
        Ok(())
    }

    fn cleanup(&self) {
        let (blobs, rundir) = {
            let mut state = self.lock();
            self.changed();
            // Under the lock: a C view refreshed after this waits for the change to be done.
            self.changed();
            if state.released {
                return;
            }
            state.released = true;
            let rundir = state.rundir.take().filter(|_| state.rundir_owned);
            (std::mem::take(&mut state.blobs), rundir)
        };
        drop(blobs);
        if let Some(dir) = rundir
            && let Err(e) = fs::remove_dir_all(&dir)
        {
            log::warn!("Could not remove rundir {}: {e}", dir.display());
        }
        self.rt.inner().untrack_resource(self.id);
        if !self.attached
            && let Err(e) = self.rt.inner().resource_ids.put(self.id)
        {
            log::warn!("Could not return resource ID {}: {e}", self.id);
        }
        log::debug!("Released resource {}", self.id);
    }
}

impl Drop for Resource {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Collects the regular files under `dir` with their `/`-separated path relative to `root`.
fn walk_dir(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>, depth: usize) -> Result<()> {
    // Symlink loops cannot recurse forever: symlinked directories are not followed and the
    // depth is bounded.
    if depth > 64 {
        return Err(Error::invalid(format!(
            "{} is nested too deeply",
            dir.display()
        )));
    }
    let entries = fs::read_dir(dir).map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
        let path = entry.path();
        let ft = entry
            .file_type()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        if ft.is_dir() {
            walk_dir(root, &path, out, depth + 1)?;
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            let rel = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((path, rel));
        }
    }
    Ok(())
}

/// Downloads `url` into `dir/<basename>` (redirects followed, HTTP errors fail, a partial
/// file is removed).
#[cfg(feature = "download")]
fn download(url: &str, dir: &Path) -> Result<Blob> {
    let name = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && sanitize_name(n).is_ok())
        .unwrap_or("file")
        .to_owned();
    let target = dir.join(&name);
    if target.exists() {
        return Err(Error::AlreadyExists(target.display().to_string()));
    }
    log::debug!("Downloading {url}");
    let dl_err = |e: Box<dyn std::error::Error + Send + Sync>| Error::Download {
        url: url.to_owned(),
        source: e,
    };
    let response = ureq::get(url).call().map_err(|e| dl_err(Box::new(e)))?;
    let mut reader = response.into_body().into_reader();
    let mut file = fs::File::create_new(&target)
        .map_err(|e| Error::io(format!("create {}", target.display()), e))?;
    if let Err(e) = std::io::copy(&mut reader, &mut file) {
        drop(file);
        let _ = fs::remove_file(&target);
        return Err(dl_err(Box::new(e)));
    }
    log::debug!("Download completed successfully");
    Ok(Blob::owned_file(target, name))
}

/// Without the `download` feature (a thin client) a local session cannot fetch URLs.
#[cfg(not(feature = "download"))]
fn download(url: &str, _dir: &Path) -> Result<Blob> {
    Err(Error::Download {
        url: url.to_owned(),
        source: Box::new(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this vAccel was built without downloads (the `download` feature)",
        )),
    })
}
