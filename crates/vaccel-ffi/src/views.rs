//! C views of Rust sessions and resources: the `struct vaccel_session` / `struct
//! vaccel_resource` that C code (applications and plugins) sees for a Rust object.
//!
//! A view is either the caller's own struct (the C API attaches it when the object is created)
//! or a *shadow* the library allocates when a C plugin needs a view of a Rust object created
//! elsewhere. Views are found in both directions: by the address of the Rust object (what
//! plugin adapters have) and by the address of the C struct (what C API functions receive).
//! Lookups by address never dereference the C pointer, so an unknown or stale pointer is an
//! `EINVAL`, not a crash.
//!
//! Everything the library allocates for a view (path arrays, blob structs, blob bytes) is
//! memory *lent* to C: allocated by Rust, reachable only through raw pointers while lent, and
//! freed when the view's allocation set is dropped. A plugin call holds an `Arc` of the set it
//! was given, so a concurrent refresh never frees memory a plugin is reading.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{CString, c_char};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};

use bytes::Bytes;
use vaccel_abi::{
    PATH_MAX, VACCEL_RESOURCE_MAX, pthread_mutex_t, vaccel_blob, vaccel_list_entry, vaccel_plugin,
    vaccel_plugin_info, vaccel_resource, vaccel_session,
};
use vaccel_core::blob::Blob;
use vaccel_core::plugin::Plugin;
use vaccel_core::{BlobType, Resource, ResourceType, Session};

use crate::ffi::{Res, invalid};

/// Memory lent to C: a `Box` turned into a raw pointer, freed when this is dropped.
struct Lent<T: ?Sized>(NonNull<T>);

impl<T: ?Sized> Lent<T> {
    fn new(value: Box<T>) -> Self {
        Lent(NonNull::from(Box::leak(value)))
    }

    fn ptr(&self) -> *mut T {
        self.0.as_ptr()
    }
}

impl<T: ?Sized> Drop for Lent<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak` in `new` and is freed only here, once.
        // C code had it only while the owning view lived; views are dropped when their
        // object is released (or when no plugin call holds them any more).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// A C string lent to C (`char *`), freed when dropped.
struct LentStr(NonNull<c_char>);

impl LentStr {
    fn new(text: &str) -> Self {
        // Interior NULs cannot be represented; the C string ends at the first one.
        let text = text.split('\0').next().unwrap_or_default();
        let owned = CString::new(text).unwrap_or_default();
        // SAFETY: `CString::into_raw` never returns null.
        LentStr(unsafe { NonNull::new_unchecked(owned.into_raw()) })
    }

    fn ptr(&self) -> *mut c_char {
        self.0.as_ptr()
    }
}

impl Drop for LentStr {
    fn drop(&mut self) {
        // SAFETY: from `CString::into_raw` in `new`, reclaimed only here, once. C code must not
        // have changed the string's length (it is documented read-only).
        drop(unsafe { CString::from_raw(self.0.as_ptr()) });
    }
}

/// A private, writable mapping of a file (what upstream gives `blob->data`).
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn of(path: &Path) -> Option<Mapping> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).ok()?;
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh private mapping of an open file descriptor; the kernel picks the
        // address. The result is checked against MAP_FAILED. MAP_PRIVATE means writes through
        // it never reach the file and nothing else can change what we read except a
        // truncation of the file by another process (then reads past the end fault, as with
        // upstream's mapping).
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Mapping {
            ptr: NonNull::new(p.cast::<u8>())?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made in `of` and unmapped only here.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Where a blob view's bytes live.
enum BlobData {
    None,
    Heap(Lent<[u8]>),
    Mapped(Mapping),
}

impl BlobData {
    fn ptr_len(&self) -> (*mut u8, usize) {
        match self {
            BlobData::None => (ptr::null_mut(), 0),
            BlobData::Heap(lent) => (lent.ptr().cast::<u8>(), lent.ptr().len()),
            BlobData::Mapped(map) => (map.ptr.as_ptr(), map.len),
        }
    }
}

/// One `struct vaccel_blob` lent to C.
struct BlobView {
    // Field order is drop order: the struct goes before what it points at.
    c: Lent<vaccel_blob>,
    _name: LentStr,
    _path: Option<LentStr>,
    _data: BlobData,
}

impl BlobView {
    fn new(blob: &Blob, read_file: bool) -> BlobView {
        let name = LentStr::new(blob.name());
        let path = blob.path().map(|p| LentStr::new(&p.to_string_lossy()));
        let data = match (blob.kind(), blob.path()) {
            (BlobType::Buffer, _) | (_, None) => match blob.data() {
                Some(bytes) => BlobData::Heap(Lent::new(Box::<[u8]>::from(&bytes[..]))),
                None => BlobData::None,
            },
            (BlobType::Mapped, Some(path)) => match Mapping::of(path) {
                Some(map) => BlobData::Mapped(map),
                None => blob.data().map_or(BlobData::None, |bytes| {
                    BlobData::Heap(Lent::new(Box::<[u8]>::from(&bytes[..])))
                }),
            },
            (BlobType::File, Some(path)) if read_file => {
                Mapping::of(path).map_or(BlobData::None, BlobData::Mapped)
            }
            (BlobType::File, Some(_)) => BlobData::None,
        };
        let (data_ptr, size) = data.ptr_len();
        let c = Lent::new(Box::new(vaccel_blob {
            r#type: blob.kind().value(),
            name: name.ptr(),
            path: path.as_ref().map_or(ptr::null_mut(), LentStr::ptr),
            path_owned: blob.owns_file(),
            data: data_ptr,
            data_owned: !matches!(data, BlobData::None),
            size,
        }));
        BlobView {
            c,
            _name: name,
            _path: path,
            _data: data,
        }
    }
}

/// Everything the library allocated for one resource view.
pub struct ResAlloc {
    // Arrays first: they point at the strings and blobs below.
    path_ptrs: Lent<[*mut c_char]>,
    blob_ptrs: Lent<[*mut vaccel_blob]>,
    _paths: Vec<LentStr>,
    rundir: Option<LentStr>,
    rundir_src: Option<PathBuf>,
    blobs: Vec<BlobView>,
    source: Vec<Arc<Blob>>,
    read_files: bool,
}

// SAFETY: the raw pointers point into memory owned by this value and are only dereferenced
// by C code holding the view, or by `Drop`; moving the owner between threads is sound.
unsafe impl Send for ResAlloc {}
// SAFETY: shared access from Rust never dereferences the pointers (C code may, concurrently,
// as upstream allows for its own structs).
unsafe impl Sync for ResAlloc {}

impl std::fmt::Debug for ResAlloc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResAlloc")
            .field("blobs", &self.blobs.len())
            .field("rundir", &self.rundir_src)
            .finish()
    }
}

impl ResAlloc {
    fn build(res: &Resource, read_files: bool) -> ResAlloc {
        let source = res.blobs();
        let paths: Vec<LentStr> = res.paths().iter().map(|p| LentStr::new(p)).collect();
        let path_ptrs: Box<[*mut c_char]> = paths.iter().map(LentStr::ptr).collect();
        let blobs: Vec<BlobView> = source
            .iter()
            .map(|b| BlobView::new(b, read_files))
            .collect();
        let blob_ptrs: Box<[*mut vaccel_blob]> = blobs.iter().map(|b| b.c.ptr()).collect();
        let rundir_src = res.rundir();
        ResAlloc {
            path_ptrs: Lent::new(path_ptrs),
            blob_ptrs: Lent::new(blob_ptrs),
            _paths: paths,
            rundir: rundir_src
                .as_ref()
                .map(|d| LentStr::new(&d.to_string_lossy())),
            rundir_src,
            blobs,
            source,
            read_files,
        }
    }

    fn is_current(&self, res: &Resource, read_files: bool) -> bool {
        let blobs = res.blobs();
        (self.read_files || !read_files)
            && self.rundir_src == res.rundir()
            && blobs.len() == self.source.len()
            && blobs
                .iter()
                .zip(&self.source)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }

    fn array_ptr<T>(lent: &Lent<[T]>) -> *mut T {
        if lent.ptr().is_empty() {
            ptr::null_mut()
        } else {
            lent.ptr().cast::<T>()
        }
    }
}

/// A raw pointer to a view that may travel between threads inside the registry.
#[derive(Clone, Copy, PartialEq, Eq)]
struct CPtr<T>(*mut T);
// SAFETY: the registry only stores and compares these addresses; dereferences happen in the
// functions below under the documented contracts.
unsafe impl<T> Send for CPtr<T> {}

struct SessView {
    c: CPtr<vaccel_session>,
    /// Allocated by the library (a shadow), freed when forgotten.
    shadow: bool,
    rust: Weak<Session>,
}

struct ResView {
    c: CPtr<vaccel_resource>,
    shadow: bool,
    rust: Weak<Resource>,
    alloc: Option<Arc<ResAlloc>>,
}

#[derive(Default)]
struct Views {
    sessions: HashMap<usize, SessView>,
    sess_by_c: HashMap<usize, usize>,
    resources: HashMap<usize, ResView>,
    res_by_c: HashMap<usize, usize>,
}

static VIEWS: LazyLock<Mutex<Views>> = LazyLock::new(Mutex::default);

fn views() -> MutexGuard<'static, Views> {
    VIEWS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn addr<T: ?Sized>(p: *const T) -> usize {
    p.cast::<()>() as usize
}

thread_local! {
    /// The caller's struct while `vaccel_session_init` creates its Rust session, so that a C
    /// plugin's `session_init` hook already sees the caller's struct.
    static PENDING_SESSION: Cell<*mut vaccel_session> = const { Cell::new(ptr::null_mut()) };
}

/// Marks `c` as the view of the session being created on this thread until the returned
/// guard drops.
pub fn pending_session(c: *mut vaccel_session) -> impl Drop {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PENDING_SESSION.with(|p| p.set(ptr::null_mut()));
        }
    }
    PENDING_SESSION.with(|p| p.set(c));
    Reset
}

/// Bumped whenever a session view is removed or replaced, so that no per-thread cache of view
/// addresses outlives its view.
static SESSION_EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The session view this thread last handed to a plugin: (address of the session, its
    /// generation then, [`SESSION_EPOCH`] then, the view).
    static LAST_SESSION: Cell<(usize, u64, u64, *mut vaccel_session)> =
        const { Cell::new((0, 0, 0, ptr::null_mut())) };
}

/// Bumped whenever a resource view is removed or replaced (see [`SESSION_EPOCH`]).
static RESOURCE_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The resource view a thread last handed to a plugin.
struct LastResource {
    /// Address of the resource.
    key: usize,
    /// Its generation then.
    generation: u64,
    /// [`RESOURCE_EPOCH`] then.
    epoch: u64,
    /// Whether the allocations map `FILE` blobs' bytes too.
    read_files: bool,
    c: *mut vaccel_resource,
    alloc: Weak<ResAlloc>,
}

thread_local! {
    static LAST_RESOURCE: std::cell::RefCell<Option<LastResource>> =
        const { std::cell::RefCell::new(None) };
}

/// Synthesised `struct vaccel_plugin` descriptors of Rust plugins, for `sess->plugin`.
struct Synthetic {
    plugin: vaccel_plugin,
    info: vaccel_plugin_info,
    _strings: [CString; 3],
}

// SAFETY: the pointers inside point into the same boxed value, which is never freed or
// mutated after creation.
unsafe impl Send for Synthetic {}

/// Synthesised descriptors by plugin name and version.
type SyntheticMap = HashMap<(String, String), Box<Synthetic>>;

static SYNTHETIC: LazyLock<Mutex<SyntheticMap>> = LazyLock::new(Mutex::default);

/// The C descriptor of a session's plugin: the library's own for C plugins, a synthesised
/// read-only one (name, version, type; no ops) for Rust plugins. Kept for the whole process.
fn plugin_descriptor(plugin: &Arc<dyn Plugin>) -> *mut vaccel_plugin {
    if let Some(desc) = crate::loader::descriptor_of(plugin) {
        return desc;
    }
    let info = plugin.info();
    let key = (info.name.clone(), info.version.clone());
    let mut map = SYNTHETIC.lock().unwrap_or_else(PoisonError::into_inner);
    let entry = map.entry(key).or_insert_with(|| {
        let c = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        let strings = [c(&info.name), c(&info.version), c(&info.vaccel_version)];
        let mut synthetic = Box::new(Synthetic {
            plugin: vaccel_plugin {
                dl_handle: ptr::null_mut(),
                entry: vaccel_list_entry {
                    next: ptr::null_mut(),
                    prev: ptr::null_mut(),
                },
                ops: [ptr::null_mut(); vaccel_abi::VACCEL_OP_MAX as usize],
                info: ptr::null_mut(),
            },
            info: vaccel_plugin_info {
                name: strings[0].as_ptr(),
                version: strings[1].as_ptr(),
                vaccel_version: strings[2].as_ptr(),
                is_virtio: info.remote,
                r#type: info.plugin_type.bits(),
                ..vaccel_plugin_info::EMPTY
            },
            _strings: strings,
        });
        synthetic.plugin.info = &raw mut synthetic.info;
        let entry = &raw mut synthetic.plugin.entry;
        synthetic.plugin.entry = vaccel_list_entry {
            next: entry,
            prev: entry,
        };
        synthetic
    });
    &raw mut entry.plugin
}

/// An empty list head at `head`.
///
/// # Safety
///
/// `head` points at writable memory for a list entry.
unsafe fn init_list(head: *mut vaccel_list_entry) {
    // SAFETY: caller guarantee; the entry points at itself (`LIST_ENTRY_INIT`).
    unsafe {
        head.write(vaccel_list_entry {
            next: head,
            prev: head,
        })
    };
}

/// Fills a session struct from `sess`. `fresh` (re)initialises every field, including the
/// ones plugins own (`priv`); otherwise only the library's fields are refreshed.
///
/// # Safety
///
/// `c` points at writable memory for a `struct vaccel_session` (fresh: possibly
/// uninitialised), not accessed by anything else during the call.
unsafe fn fill_session(c: *mut vaccel_session, sess: &Session, fresh: bool) {
    let plugin = plugin_descriptor(&sess.plugin());
    let mut counts = [0usize; VACCEL_RESOURCE_MAX as usize];
    for res in sess.resources() {
        if let Some(n) = counts.get_mut(res.kind().value() as usize) {
            *n += 1;
        }
    }
    // SAFETY: `c` is valid for writes (caller guarantee). Fresh structs are written whole
    // (`write` does not read or drop the old bytes); otherwise individual plain-data fields
    // are assigned through the raw pointer.
    unsafe {
        if fresh {
            c.write(vaccel_session {
                id: 0,
                remote_id: 0,
                hint: 0,
                is_virtio: false,
                rundir: [0; PATH_MAX],
                entry: vaccel_list_entry {
                    next: ptr::null_mut(),
                    prev: ptr::null_mut(),
                },
                resources: [vaccel_list_entry {
                    next: ptr::null_mut(),
                    prev: ptr::null_mut(),
                }; VACCEL_RESOURCE_MAX as usize],
                resource_counts: [0; VACCEL_RESOURCE_MAX as usize],
                resources_lock: pthread_mutex_t::INIT,
                plugin: ptr::null_mut(),
                r#priv: ptr::null_mut(),
            });
            // Upstream links the session into its global list; ours is on no list.
            init_list(&raw mut (*c).entry);
            for i in 0..VACCEL_RESOURCE_MAX as usize {
                init_list((&raw mut (*c).resources).cast::<vaccel_list_entry>().add(i));
            }
            // The run directory never changes: written once.
            let rundir = &mut (*c).rundir;
            let dir = sess.rundir().to_string_lossy();
            for (dst, src) in rundir.iter_mut().zip(dir.bytes().take(PATH_MAX - 1)) {
                *dst = src as c_char;
            }
        }
        // `priv` belongs to the session's plugin: a new binding starts without the old one's.
        if !fresh && (*c).plugin != plugin {
            (*c).r#priv = ptr::null_mut();
        }
        (*c).id = sess.id();
        (*c).remote_id = sess.remote_id();
        (*c).hint = sess.hint();
        (*c).is_virtio = sess.is_remote();
        (*c).resource_counts = counts;
        (*c).plugin = plugin;
    }
}

/// Fills a resource struct from `res` and the allocations made for it.
///
/// # Safety
///
/// As [`fill_session`], for a `struct vaccel_resource`.
unsafe fn fill_resource(c: *mut vaccel_resource, res: &Resource, alloc: &ResAlloc, fresh: bool) {
    // SAFETY: as in `fill_session`.
    unsafe {
        if fresh {
            c.write(vaccel_resource {
                id: 0,
                remote_id: 0,
                r#type: 0,
                path_type: 0,
                paths: ptr::null_mut(),
                nr_paths: 0,
                rundir: ptr::null_mut(),
                blobs: ptr::null_mut(),
                nr_blobs: 0,
                entry: vaccel_list_entry {
                    next: ptr::null_mut(),
                    prev: ptr::null_mut(),
                },
                sessions: vaccel_list_entry {
                    next: ptr::null_mut(),
                    prev: ptr::null_mut(),
                },
                sessions_lock: pthread_mutex_t::INIT,
                refcount: std::sync::atomic::AtomicU32::new(0),
                plugin_priv: ptr::null_mut(),
            });
            init_list(&raw mut (*c).entry);
            init_list(&raw mut (*c).sessions);
        }
        (*c).id = res.id();
        (*c).remote_id = res.remote_id();
        // A caller's out-of-range `type` stays for the ops to refuse (`read_back_resource`).
        if fresh || ResourceType::from_value((*c).r#type).is_some() {
            (*c).r#type = res.kind().value();
        }
        (*c).path_type = res.path_type().value();
        (*c).paths = ResAlloc::array_ptr(&alloc.path_ptrs);
        (*c).nr_paths = alloc.path_ptrs.ptr().len();
        (*c).rundir = alloc.rundir.as_ref().map_or(ptr::null_mut(), LentStr::ptr);
        (*c).blobs = ResAlloc::array_ptr(&alloc.blob_ptrs);
        (*c).nr_blobs = alloc.blob_ptrs.ptr().len();
        let refcount = u32::try_from(res.refcount()).unwrap_or(u32::MAX);
        (*c).refcount
            .store(refcount, std::sync::atomic::Ordering::Release);
    }
}

/// Records the caller's struct `c` as the view of a session it just created, and fills it.
///
/// # Safety
///
/// `c` points at writable memory for a `struct vaccel_session` that stays valid until the
/// session is released (the C API contract of `vaccel_session_init`).
pub unsafe fn attach_session(c: *mut vaccel_session, sess: &Arc<Session>) {
    let mut v = views();
    SESSION_EPOCH.fetch_add(1, Ordering::AcqRel);
    let key = addr(Arc::as_ptr(sess));
    // The struct may already have been adopted by a plugin hook during creation.
    let fresh = !matches!(v.sessions.get(&key), Some(view) if view.c.0 == c);
    // SAFETY: caller guarantee; nothing else accesses the struct while the lock is held.
    unsafe { fill_session(c, sess, fresh) };
    v.sess_by_c.insert(addr(c), key);
    v.sessions.insert(
        key,
        SessView {
            c: CPtr(c),
            shadow: false,
            rust: Arc::downgrade(sess),
        },
    );
}

/// The Rust session of a C struct, or `EINVAL` if `c` is not a live session. The struct's
/// public fields that upstream reads are read back first ([`read_back_session`]).
pub fn session_from_c(c: *const vaccel_session) -> Res<Arc<Session>> {
    let v = views();
    let (view, sess) = v
        .sess_by_c
        .get(&addr(c))
        .and_then(|key| v.sessions.get(key))
        .and_then(|view| Some((view.c.0, view.rust.upgrade()?)))
        .ok_or_else(|| invalid("not an initialized session (NULL, released or unknown)"))?;
    // SAFETY: `view` (the address `c` names) is the struct of a live view: the caller's,
    // valid until the session is released, or a shadow. The registry lock serialises the
    // library's own writes to it.
    unsafe { read_back_session(view, &sess) };
    Ok(sess)
}

/// Carries a caller's writes to the public fields of a session struct over to the Rust
/// session (issue #13: public fields are the truth), at every C API call and op that names
/// the session.
///
/// * `hint` is read back: upstream only ever writes it (init, update) and leaves whatever
///   the caller writes in place, so ours keeps the caller's value too (the library no longer
///   overwrites it with an older one), and our per-op plugin fallback follows it.
/// * `id`, `remote_id`, `is_virtio`, `rundir`, `resources`, `resource_counts` and `plugin`
///   are the library's (a plugin writes `remote_id` in its hooks, read back by the loader)
///   and are refreshed from the Rust session. Upstream reads several of them (`id` at
///   release and in lookups, `is_virtio` at registration, `plugin` at every op), but a caller
///   that changes them breaks upstream's own bookkeeping (ids returned to the pool twice,
///   hooks of a remote session skipped, a plugin that never saw `session_init`): a plain bug
///   no caller can rely on.
/// * `priv` belongs to the session's plugin and is never touched here.
///
/// # Safety
///
/// `c` is the struct of a live session view, not written by the library concurrently.
unsafe fn read_back_session(c: *const vaccel_session, sess: &Session) {
    // SAFETY: caller guarantee; a plain read of one field (the caller may have written it).
    let hint = unsafe { ptr::addr_of!((*c).hint).read() };
    if hint != sess.hint() {
        sess.set_hint(hint);
    }
}

/// The C struct of a session, if it has a view.
pub fn session_c(sess: &Session) -> Option<*mut vaccel_session> {
    views()
        .sessions
        .get(&addr(ptr::from_ref(sess)))
        .map(|view| view.c.0)
}

/// The C struct to hand a plugin for `sess`: its view refreshed, the struct being created on
/// this thread, or a new shadow.
///
/// Views are matched by the session's address. That is sound because every view is removed
/// when its session goes: the C API's at `vaccel_session_release`, shadows in the plugin
/// adapter's `session_release` hook (or when `session_init` fails).
pub fn session_for_plugin(sess: &Session) -> Res<*mut vaccel_session> {
    let key = addr(ptr::from_ref(sess));
    let generation = sess.generation();
    let epoch = SESSION_EPOCH.load(Ordering::Acquire);
    // The fast path: this thread handed the same, unchanged session's view out last, and no
    // view has gone since, so it is still live and current (no lock, nothing written).
    if let Some(c) = LAST_SESSION.with(|last| {
        let (k, g, e, c) = last.get();
        (k == key && g == generation && e == epoch).then_some(c)
    }) {
        return Ok(c);
    }
    let mut v = views();
    if let Some(view) = v.sessions.get_mut(&key) {
        if view.rust.strong_count() == 0 {
            // Created while `Session::new` ran (no `Arc` was tracked yet): pick it up now.
            view.rust = find_session_weak(sess);
        }
        let c = view.c.0;
        // SAFETY: a live view: either the caller's struct (valid until released, by the C
        // API contract) or our shadow.
        unsafe { fill_session(c, sess, false) };
        LAST_SESSION.with(|last| last.set((key, generation, epoch, c)));
        return Ok(c);
    }
    let pending = PENDING_SESSION.with(Cell::get);
    let (c, shadow) = if pending.is_null() {
        let shadow: Box<std::mem::MaybeUninit<vaccel_session>> = Box::new_uninit();
        (Box::into_raw(shadow).cast::<vaccel_session>(), true)
    } else {
        (pending, false)
    };
    // SAFETY: `c` is either the struct the C API is initialising (writable caller memory) or a
    // fresh allocation of the right size; `fresh` writes every field first.
    unsafe { fill_session(c, sess, true) };
    let rust = find_session_weak(sess);
    v.sessions.insert(
        key,
        SessView {
            c: CPtr(c),
            shadow,
            rust,
        },
    );
    v.sess_by_c.insert(addr(c), key);
    Ok(c)
}

/// A `Weak` to `sess` if the runtime tracks it already, else an empty one (sessions being
/// created are tracked only once `Session::new` is done).
fn find_session_weak(sess: &Session) -> Weak<Session> {
    match sess.runtime().session_by_id(sess.id()) {
        Ok(arc) if ptr::eq(Arc::as_ptr(&arc), sess) => Arc::downgrade(&arc),
        _ => Weak::new(),
    }
}

fn drop_session_view(v: &mut Views, view: SessView) {
    SESSION_EPOCH.fetch_add(1, Ordering::AcqRel);
    v.sess_by_c.remove(&addr(view.c.0));
    if view.shadow {
        // SAFETY: shadows are allocated by `session_for_plugin` with `Box` and freed only
        // here, when their view is removed.
        drop(unsafe { Box::from_raw(view.c.0) });
    }
}

/// Removes a session's view (at release), freeing it if it is a shadow.
pub fn forget_session(sess: &Session) {
    let mut v = views();
    if let Some(view) = v.sessions.remove(&addr(ptr::from_ref(sess))) {
        drop_session_view(&mut v, view);
    }
}

/// Removes the view whose C struct is `c` (cleanup of a failed `vaccel_session_init`).
pub fn forget_session_c(c: *const vaccel_session) {
    let mut v = views();
    if let Some(key) = v.sess_by_c.get(&addr(c)).copied()
        && let Some(view) = v.sessions.remove(&key)
    {
        drop_session_view(&mut v, view);
    }
}

/// Records the caller's struct `c` as the view of a resource it just created, and fills it.
///
/// # Safety
///
/// `c` points at writable memory for a `struct vaccel_resource` that stays valid until the
/// resource is released.
pub unsafe fn attach_resource(c: *mut vaccel_resource, res: &Arc<Resource>) {
    let alloc = Arc::new(ResAlloc::build(res, false));
    let mut v = views();
    RESOURCE_EPOCH.fetch_add(1, Ordering::AcqRel);
    // SAFETY: caller guarantee; the lock serialises library writes to the struct.
    unsafe { fill_resource(c, res, &alloc, true) };
    let key = addr(Arc::as_ptr(res));
    v.res_by_c.insert(addr(c), key);
    if let Some(old) = v.resources.insert(
        key,
        ResView {
            c: CPtr(c),
            shadow: false,
            rust: Arc::downgrade(res),
            alloc: Some(alloc),
        },
    ) {
        drop_resource_view(&mut v, old);
    }
}

/// The Rust resource of a C struct, or `EINVAL` if `c` is not a live resource. The struct's
/// public fields that upstream reads are read back first ([`read_back_resource`]).
pub fn resource_from_c(c: *const vaccel_resource) -> Res<Arc<Resource>> {
    resource_and_type(c).map(|(res, _)| res)
}

/// [`resource_from_c`] for an op that checks the resource's type: a `type` field that names
/// no resource type is `EINVAL` (upstream's type check refuses it as "not the expected
/// type"), where `resource_from_c` leaves the resource its last valid type.
pub fn resource_for_op(c: *const vaccel_resource) -> Res<Arc<Resource>> {
    let (res, ty) = resource_and_type(c)?;
    if ResourceType::from_value(ty).is_none() {
        log::error!("Invalid resource type: {ty}");
        return Err(invalid(format!("invalid resource type {ty}")));
    }
    Ok(res)
}

/// The Rust resource of a live view and the `type` value its struct holds.
fn resource_and_type(c: *const vaccel_resource) -> Res<(Arc<Resource>, u32)> {
    let v = views();
    let (view, res) = v
        .res_by_c
        .get(&addr(c))
        .and_then(|key| v.resources.get(key))
        .and_then(|view| Some((view.c.0, view.rust.upgrade()?)))
        .ok_or_else(|| invalid("not an initialized resource (NULL, released or unknown)"))?;
    // SAFETY: `view` (the address `c` names) is the struct of a live view: the caller's,
    // valid until the resource is released, or a shadow. The registry lock serialises the
    // library's own writes to it.
    let ty = unsafe { read_back_resource(view, &res) };
    Ok((res, ty))
}

/// Carries a caller's writes to the public fields of a resource struct over to the Rust
/// resource (issue #13: public fields are the truth), at every C API call and op that names
/// the resource, and returns the `type` value read.
///
/// * `type` is read back: upstream reads `res->type` at each use (the ops' type checks, the
///   per-type list a registration goes to), so a caller that sets `res.type =
///   VACCEL_RESOURCE_MODEL` after init gets a model from then on. A value that names no type
///   is not taken (ops refuse it, see [`resource_for_op`]). Ours keeps one type per
///   resource, so the typed lookups (`vaccel_resource_get_by_type`, a session's per-type
///   lists and counts) follow the type last read back, where upstream leaves the resource in
///   the global list of its creation type and the session list of its type at registration:
///   lists that disagree with the field they index by, a plain bug no caller can rely on.
/// * `id`, `remote_id`, `path_type`, `paths`/`nr_paths`, `rundir`, `blobs`/`nr_blobs` and
///   `refcount` are the library's and refreshed from the Rust resource (a plugin writes
///   `remote_id` and the bytes behind `blobs` in its hooks, read back by the loader and
///   [`sync_back`]). Upstream frees `paths`, `blobs` and `rundir` itself at release and
///   returns `id` to its pool, so a caller that replaces them corrupts upstream's heap or
///   pool: a plain bug no caller can rely on. The bytes behind a `BUFFER` blob's `data` are a
///   copy made at init (upstream's `mem_only` resources reference the caller's buffer), so a
///   caller's later writes to its own buffer are not seen.
/// * `plugin_priv` belongs to the plugins and is never touched here.
///
/// # Safety
///
/// `c` is the struct of a live resource view, not written by the library concurrently.
unsafe fn read_back_resource(c: *const vaccel_resource, res: &Resource) -> u32 {
    // SAFETY: caller guarantee; a plain read of one field (the caller may have written it).
    let ty = unsafe { ptr::addr_of!((*c).r#type).read() };
    if let Some(kind) = ResourceType::from_value(ty) {
        res.set_kind(kind);
    }
    ty
}

/// The C struct of a resource, if it has a view.
pub fn resource_c(res: &Resource) -> Option<*mut vaccel_resource> {
    views()
        .resources
        .get(&addr(ptr::from_ref(res)))
        .map(|view| view.c.0)
}

/// A resource view handed to a plugin: the struct, and the allocations it points at, kept
/// alive for the duration of the call.
pub struct ResGuard {
    pub ptr: *mut vaccel_resource,
    alloc: Arc<ResAlloc>,
}

impl std::fmt::Debug for ResGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResGuard").field("ptr", &self.ptr).finish()
    }
}

impl ResGuard {
    /// The C blob structs, in resource order.
    pub fn blobs(&self) -> impl Iterator<Item = *mut vaccel_blob> + '_ {
        self.alloc.blobs.iter().map(|b| b.c.ptr())
    }
}

/// Refreshes a resource's view (creating a shadow if it has none) and returns it.
/// `read_files` maps the bytes of `FILE` blobs too (remote sessions ship them).
///
/// Views are matched by the resource's address. The C API removes its views at release;
/// shadows of resources that have gone are swept here, so an address reused by a new
/// resource never finds an old shadow.
pub fn resource_for_plugin(res: &Resource, read_files: bool) -> Res<ResGuard> {
    let key = addr(ptr::from_ref(res));
    let generation = res.generation();
    let epoch = RESOURCE_EPOCH.load(Ordering::Acquire);
    // The fast path, as for sessions: this thread handed out this unchanged resource's view
    // last and no view has gone since (no lock, nothing written).
    let cached = LAST_RESOURCE.with(|last| match &*last.borrow() {
        Some(l) if l.key == key && l.generation == generation && l.epoch == epoch => (l.read_files
            || !read_files)
            .then(|| l.alloc.upgrade())
            .flatten()
            .map(|alloc| ResGuard { ptr: l.c, alloc }),
        _ => None,
    });
    if let Some(guard) = cached {
        return Ok(guard);
    }
    let guard = refresh_resource_view(res, read_files)?;
    LAST_RESOURCE.with(|last| {
        *last.borrow_mut() = Some(LastResource {
            key,
            generation,
            epoch,
            read_files: guard.alloc.read_files,
            c: guard.ptr,
            alloc: Arc::downgrade(&guard.alloc),
        });
    });
    Ok(guard)
}

/// The slow path of [`resource_for_plugin`]: under the registry's lock.
fn refresh_resource_view(res: &Resource, read_files: bool) -> Res<ResGuard> {
    let key = addr(ptr::from_ref(res));
    let mut v = views();
    let dead: Vec<usize> = v
        .resources
        .iter()
        .filter(|(k, view)| **k != key && view.shadow && view.rust.strong_count() == 0)
        .map(|(k, _)| *k)
        .collect();
    for k in dead {
        if let Some(old) = v.resources.remove(&k) {
            drop_resource_view(&mut v, old);
        }
    }
    if !v.resources.contains_key(&key) {
        let shadow: Box<std::mem::MaybeUninit<vaccel_resource>> = Box::new_uninit();
        let c = Box::into_raw(shadow).cast::<vaccel_resource>();
        let rust = match res.runtime().resource_by_id(res.id()) {
            Ok(arc) if ptr::eq(Arc::as_ptr(&arc), res) => Arc::downgrade(&arc),
            _ => Weak::new(),
        };
        let alloc = Arc::new(ResAlloc::build(res, read_files));
        // SAFETY: a fresh allocation of the right size, fully written by `fresh`.
        unsafe { fill_resource(c, res, &alloc, true) };
        v.res_by_c.insert(addr(c), key);
        v.resources.insert(
            key,
            ResView {
                c: CPtr(c),
                shadow: true,
                rust,
                alloc: Some(Arc::clone(&alloc)),
            },
        );
        return Ok(ResGuard { ptr: c, alloc });
    }
    let view = v
        .resources
        .get_mut(&key)
        .ok_or_else(|| invalid("resource view vanished"))?;
    let alloc = match &view.alloc {
        Some(alloc) if alloc.is_current(res, read_files) => Arc::clone(alloc),
        _ => {
            let alloc = Arc::new(ResAlloc::build(res, read_files));
            view.alloc = Some(Arc::clone(&alloc));
            alloc
        }
    };
    let c = view.c.0;
    // SAFETY: a live view (the caller's struct, valid until released, or our shadow); the
    // registry lock serialises the library's writes.
    unsafe { fill_resource(c, res, &alloc, false) };
    Ok(ResGuard { ptr: c, alloc })
}

/// Refreshes a resource's view after the runtime changed it (registration loaded its blobs,
/// a sync replaced them), if it has one.
pub fn refresh_resource(res: &Resource) {
    if resource_c(res).is_some() {
        let _ = resource_for_plugin(res, false);
    }
}

fn drop_resource_view(v: &mut Views, view: ResView) {
    RESOURCE_EPOCH.fetch_add(1, Ordering::AcqRel);
    v.res_by_c.remove(&addr(view.c.0));
    if view.shadow {
        // SAFETY: shadows are allocated by `resource_for_plugin` with `Box` and freed only
        // here, when their view is removed.
        drop(unsafe { Box::from_raw(view.c.0) });
    }
    // `view.alloc` is freed once no plugin call holds it.
}

/// Removes a resource's view (at release), freeing it if it is a shadow.
pub fn forget_resource(res: &Resource) {
    let mut v = views();
    if let Some(view) = v.resources.remove(&addr(ptr::from_ref(res))) {
        drop_resource_view(&mut v, view);
    }
}

/// Copies the bytes of a buffer resource's blob views back into the resource, after a
/// plugin's `resource_sync` hook wrote into `blob->data` (how upstream's remote plugin syncs).
pub fn sync_back(res: &Resource, guard: &ResGuard) -> Res<()> {
    let blobs = res.blobs();
    if blobs.iter().any(|b| b.kind() != BlobType::Buffer) {
        return Ok(());
    }
    let mut data = Vec::with_capacity(blobs.len());
    for c in guard.blobs() {
        // SAFETY: `c` is one of the blob structs of `guard`'s allocation set, alive while the
        // guard is; the plugin's hook has returned, so nothing writes it now. `data`/`size`
        // are read as the plugin left them.
        let (p, size) = unsafe { ((*c).data, (*c).size) };
        // SAFETY: `p` points at `size` readable bytes: our own buffer, or one the plugin
        // installed in its place (its contract).
        let bytes = unsafe { crate::ffi::bytes(p.cast(), size, "blob data") }?;
        data.push(Bytes::copy_from_slice(bytes));
    }
    res.set_blob_data(data)?;
    refresh_resource(res);
    Ok(())
}

/// A reference to the allocations behind a resource view (its blob structs and bytes), for a
/// plugin library that borrows the bytes; null when `c` is not a live resource view. Give it
/// back with [`release_resource`].
pub fn retain_resource(c: *const vaccel_resource) -> *const std::ffi::c_void {
    let v = views();
    v.res_by_c
        .get(&addr(c))
        .and_then(|key| v.resources.get(key))
        .and_then(|view| view.alloc.as_ref())
        .map_or(ptr::null(), |alloc| Arc::into_raw(Arc::clone(alloc)).cast())
}

/// The bytes of blob `index` of a retained resource (null and 0 for a blob without bytes).
///
/// # Safety
///
/// `token` comes from [`retain_resource`] and has not been released.
pub unsafe fn retained_blob(
    token: *const std::ffi::c_void,
    index: usize,
) -> Option<(*const u8, usize)> {
    // SAFETY: caller guarantee: `token` is a live `Arc<ResAlloc>` turned into a pointer.
    let alloc = unsafe { &*token.cast::<ResAlloc>() };
    alloc.blobs.get(index).map(|b| {
        let (p, n) = b._data.ptr_len();
        (p.cast_const(), n)
    })
}

/// Gives back a reference taken by [`retain_resource`].
///
/// # Safety
///
/// `token` comes from [`retain_resource`] and is released once.
pub unsafe fn release_resource(token: *const std::ffi::c_void) {
    // SAFETY: caller guarantee: the pointer of one `Arc::into_raw`, reclaimed once.
    drop(unsafe { Arc::from_raw(token.cast::<ResAlloc>()) });
}

/// Type of a resource by its numeric value, for the C API.
pub fn resource_type(value: u32) -> Res<ResourceType> {
    ResourceType::from_value(value).ok_or_else(|| invalid(format!("invalid resource type {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaccel_core::plugin::PluginInfo;
    use vaccel_core::{OpSet, PluginType, Runtime};

    struct Bare(PluginInfo);

    impl Plugin for Bare {
        fn info(&self) -> &PluginInfo {
            &self.0
        }
        fn ops(&self) -> OpSet {
            OpSet::EMPTY
        }
    }

    fn runtime() -> (Runtime, tempfile::TempDir) {
        let base = tempfile::tempdir().unwrap();
        let plugin = Bare(PluginInfo::new("bare", "1.0.0", PluginType::CPU));
        let rt = Runtime::builder()
            .rundir_base(base.path())
            .skip_logging()
            .plugin(Arc::new(plugin) as Arc<dyn Plugin>)
            .build()
            .unwrap();
        (rt, base)
    }

    #[test]
    fn a_callers_resource_type_is_read_back_and_an_invalid_one_refused_for_ops() {
        let (rt, base) = runtime();
        let f = base.path().join("m.bin");
        std::fs::write(&f, b"m").unwrap();
        let res = Resource::new(&rt, f.to_str().unwrap(), ResourceType::Data).unwrap();
        let c = Box::into_raw(Box::<std::mem::MaybeUninit<vaccel_resource>>::new_uninit())
            .cast::<vaccel_resource>();
        // SAFETY: a fresh allocation that outlives the view (forgotten below).
        unsafe { attach_resource(c, &res) };
        // SAFETY: `c` was filled by `attach_resource`; the caller's write.
        unsafe { (*c).r#type = ResourceType::Model.value() };
        assert_eq!(resource_from_c(c).unwrap().kind(), ResourceType::Model);
        // SAFETY: as above.
        unsafe { (*c).r#type = 77 };
        assert_eq!(
            resource_for_op(c).unwrap_err().code(),
            vaccel_core::ErrorCode::EINVAL
        );
        assert_eq!(resource_from_c(c).unwrap().kind(), ResourceType::Model);
        refresh_resource(&res);
        // SAFETY: as above.
        let ty = unsafe { (*c).r#type };
        assert_eq!(ty, 77, "the caller's value stays for ops to refuse");
        forget_resource(&res);
        // SAFETY: no view refers to it any more.
        drop(unsafe { Box::from_raw(c) });
    }

    #[test]
    fn a_callers_session_hint_is_read_back_and_kept() {
        let (rt, _base) = runtime();
        let sess = Session::new(&rt, 0).unwrap();
        let c = Box::into_raw(Box::<std::mem::MaybeUninit<vaccel_session>>::new_uninit())
            .cast::<vaccel_session>();
        // SAFETY: a fresh allocation that outlives the view (forgotten below).
        unsafe { attach_session(c, &sess) };
        let hint = PluginType::GPU.bits();
        // SAFETY: `c` was filled by `attach_session`; the caller's write.
        unsafe { (*c).hint = hint };
        assert_eq!(session_from_c(c).unwrap().hint(), hint);
        session_for_plugin(&sess).unwrap();
        // SAFETY: as above.
        let kept = unsafe { (*c).hint };
        assert_eq!(kept, hint);
        forget_session(&sess);
        // SAFETY: no view refers to it any more.
        drop(unsafe { Box::from_raw(c) });
    }
}
