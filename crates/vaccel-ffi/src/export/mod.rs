//! The plugin export that `vaccel_plugin_sdk::export_plugin!` expands to: the exported
//! descriptor (`vaccel_plugin`, its info and ops), the library constructor that fills it, the
//! host binding and the descriptor's hooks. Its op functions are [`crate::ops`]'s, over the
//! sessions and resources [`attached`] to the host's.

mod attached;
mod ops;

use std::cell::UnsafeCell;
use std::ffi::{CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::{Arc, OnceLock};

use vaccel_abi::{
    VACCEL_OP_MAX, vaccel_list_entry, vaccel_op, vaccel_plugin, vaccel_plugin_info,
    vaccel_resource, vaccel_rs_host, vaccel_session,
};
use vaccel_core::plugin::Plugin;
use vaccel_core::{BundledPlugin, Config, OpType, Result};

use crate::log_bridge::c_level as host_level;

/// Something that creates the plugin a library exports: a [`BundledPlugin`] descriptor, or a
/// closure `|config: &Config| -> Result<Arc<dyn Plugin>>`. The configuration is read from the
/// environment when the library is loaded.
pub trait Factory {
    /// Creates the plugin.
    fn create(&self, config: &Config) -> Result<Arc<dyn Plugin>>;
}

impl Factory for BundledPlugin {
    fn create(&self, config: &Config) -> Result<Arc<dyn Plugin>> {
        (self.create)(config)
    }
}

impl<F> Factory for F
where
    F: Fn(&Config) -> Result<Arc<dyn Plugin>>,
{
    fn create(&self, config: &Config) -> Result<Arc<dyn Plugin>> {
        self(config)
    }
}

/// Runs a hook or op body: `VACCEL_OK`, the error's code, or `VACCEL_EBACKEND` on a panic
/// (which never crosses into the host).
fn guard(body: impl FnOnce() -> Result<()>) -> c_int {
    crate::ffi::guard("plugin library", body)
}

/// A static the C side reads and (for the descriptor) writes.
struct Shared<T>(UnsafeCell<T>);

// SAFETY: the statics are written only by the library constructor, which the dynamic loader
// runs once before any other code of the library can run or the host can see the symbols;
// afterwards the library only reads them (the host may write `dl_handle`, a field we never
// read).
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    const fn new(value: T) -> Self {
        Shared(UnsafeCell::new(value))
    }

    const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// The descriptor's list entry, linked to itself as upstream's `VACCEL_PLUGIN` leaves it
/// (`LIST_ENTRY_INIT`): upstream's loader treats an entry that is not as a plugin already
/// registered and refuses the library. (Ours never reads the entry.)
const SELF_LINKED_ENTRY: *mut vaccel_list_entry = DESCRIPTOR
    .get()
    .cast::<u8>()
    .wrapping_add(std::mem::offset_of!(vaccel_plugin, entry))
    .cast::<vaccel_list_entry>();

static DESCRIPTOR: Shared<vaccel_plugin> = Shared::new(vaccel_plugin {
    dl_handle: ptr::null_mut(),
    entry: vaccel_list_entry {
        next: SELF_LINKED_ENTRY,
        prev: SELF_LINKED_ENTRY,
    },
    ops: [ptr::null_mut(); VACCEL_OP_MAX as usize],
    info: ptr::null_mut(),
});

static INFO: Shared<vaccel_plugin_info> = Shared::new(vaccel_plugin_info::EMPTY);

static OPS: Shared<[vaccel_op; VACCEL_OP_MAX as usize]> = Shared::new(
    [const {
        vaccel_op {
            r#type: 0,
            func: ptr::null_mut(),
            owner: ptr::null_mut(),
        }
    }; VACCEL_OP_MAX as usize],
);

/// The exported `const struct vaccel_plugin *`.
#[repr(transparent)]
#[derive(Debug)]
pub struct DescriptorPtr(*const vaccel_plugin);

// SAFETY: a constant pointer to a static; see `Shared`.
unsafe impl Sync for DescriptorPtr {}

impl DescriptorPtr {
    /// The pointer to this library's descriptor.
    pub const fn new() -> Self {
        DescriptorPtr(DESCRIPTOR.get())
    }
}

impl Default for DescriptorPtr {
    fn default() -> Self {
        DescriptorPtr::new()
    }
}

/// The plugin of this library and the strings its descriptor points at.
pub(crate) struct State {
    pub(crate) plugin: Arc<dyn Plugin>,
    pub(crate) config: Config,
    _strings: [CString; 3],
}

static STATE: OnceLock<State> = OnceLock::new();

/// The plugin, once constructed.
pub(crate) fn state() -> Option<&'static State> {
    STATE.get()
}

/// The host's services, once bound.
static HOST: OnceLock<vaccel_rs_host> = OnceLock::new();

/// Whether `desc` is this library's descriptor (what a host's session view names as the
/// session's plugin when the session is bound to this library).
pub(crate) fn is_our_descriptor(desc: *const vaccel_plugin) -> bool {
    std::ptr::eq(desc, DESCRIPTOR.get())
}

/// Whether the host is a vaccel-rs runtime that called `vaccel_rs_plugin_bind`.
pub(crate) fn host() -> Option<&'static vaccel_rs_host> {
    HOST.get()
}

fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

/// The library constructor: creates the plugin and fills the descriptor. A failure leaves the
/// descriptor without info (the loader then refuses the library) and is reported on stderr.
pub fn construct(factory: &dyn Factory) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // The host's environment; malformed values fall back to the defaults here and are
        // reported by the host itself.
        let config = Config::from_env().unwrap_or_default();
        let plugin = factory.create(&config)?;
        fill(plugin, config);
        Ok::<(), vaccel_core::Error>(())
    }));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("vaccel plugin library: could not create the plugin: {e}"),
        Err(_) => eprintln!("vaccel plugin library: the plugin panicked while being created"),
    }
}

fn fill(plugin: Arc<dyn Plugin>, config: Config) {
    let info = plugin.info().clone();
    let strings = [
        c_string(&info.name),
        c_string(&info.version),
        c_string(&info.vaccel_version),
    ];
    let names: [*const c_char; 3] = [
        strings[0].as_ptr(),
        strings[1].as_ptr(),
        strings[2].as_ptr(),
    ];
    let implemented = plugin.ops();
    if STATE
        .set(State {
            plugin,
            config,
            _strings: strings,
        })
        .is_err()
    {
        return;
    }
    let desc = DESCRIPTOR.get();
    // SAFETY: the constructor runs once, before anything else can read the statics (see
    // `Shared`); the string pointers point into `STATE`, which lives for the process.
    unsafe {
        INFO.get().write(vaccel_plugin_info {
            name: names[0],
            version: names[1],
            vaccel_version: names[2],
            init: Some(plugin_init),
            fini: Some(plugin_fini),
            is_virtio: info.remote,
            r#type: info.plugin_type.bits(),
            session_init: Some(session_init),
            session_release: Some(session_release),
            session_update: Some(session_update),
            resource_register: Some(resource_register),
            resource_unregister: Some(resource_unregister),
            resource_sync: Some(resource_sync),
        });
        let ops = OPS.get().cast::<vaccel_op>();
        for op in implemented.iter() {
            let index = usize::from(op.value());
            let slot = ops.add(index);
            slot.write(vaccel_op {
                r#type: u32::from(op.value()),
                func: ops::function(op),
                owner: desc,
            });
            (&raw mut (*desc).ops)
                .cast::<*mut vaccel_op>()
                .add(index)
                .write(slot);
        }
        (*desc).info = INFO.get();
    }
}

/// Whether `op` is a valid index of the ops table (compile-time sanity).
const _: () = assert!(OpType::MAX as u32 == VACCEL_OP_MAX);

/// Forwards the library's log records to the host's logger.
struct Forward;

/// Records of the mirror runtime's own bookkeeping (creating mirrors, registering them), which
/// the host logs for the real objects already.
fn is_bookkeeping(target: &str) -> bool {
    [
        "vaccel_core::runtime",
        "vaccel_core::session",
        "vaccel_core::resource",
        "vaccel_core::registry",
        "vaccel_core::config",
        "vaccel_core::logging",
        "vaccel_core::id_pool",
        // The host logs the routing of the call that reached the library.
        "vaccel_core::ops",
    ]
    .iter()
    .any(|prefix| target.starts_with(prefix))
}

impl log::Log for Forward {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        match host().and_then(|h| h.log_enabled) {
            // SAFETY: the host's function, valid for the process (bind's contract).
            Some(f) => unsafe { f(host_level(metadata.level())) },
            None => false,
        }
    }

    fn log(&self, record: &log::Record<'_>) {
        if is_bookkeeping(record.target()) || !self.enabled(record.metadata()) {
            return;
        }
        let Some(write) = host().and_then(|h| h.log_write) else {
            return;
        };
        let message = c_string(&record.args().to_string());
        // SAFETY: the host's function (bind's contract); the message is NUL-terminated and
        // lives for the call.
        unsafe { write(host_level(record.level()), message.as_ptr()) };
    }

    fn flush(&self) {}
}

static FORWARD: Forward = Forward;

/// The most verbose level the host writes now: the library's own filter, so that records the
/// host would drop are not even formatted (and each disabled `debug!` costs no call into the
/// host). A host that turns its logging up later is seen when it next loads the library.
fn host_max_level() -> log::LevelFilter {
    let Some(enabled) = host().and_then(|h| h.log_enabled) else {
        return log::LevelFilter::Off;
    };
    [
        (log::Level::Trace, log::LevelFilter::Trace),
        (log::Level::Debug, log::LevelFilter::Debug),
        (log::Level::Info, log::LevelFilter::Info),
        (log::Level::Warn, log::LevelFilter::Warn),
        (log::Level::Error, log::LevelFilter::Error),
    ]
    .into_iter()
    // SAFETY: the host's function, valid for the process (bind's contract).
    .find(|(level, _)| unsafe { enabled(host_level(*level)) })
    .map_or(log::LevelFilter::Off, |(_, filter)| filter)
}

/// `vaccel_rs_plugin_bind`: keeps the host's services and routes logging to its logger.
///
/// # Safety
///
/// `host` is null or points at a `struct vaccel_rs_host` whose functions stay valid for the
/// process.
pub unsafe fn bind(host: *const vaccel_rs_host) -> c_int {
    guard(|| {
        if host.is_null() {
            return Err(vaccel_core::Error::invalid("host table is NULL"));
        }
        // SAFETY: a valid table (caller guarantee). Its version says which fields it has: a
        // version-1 host's table ends after `log_enabled`, so later fields are read only from
        // newer tables.
        let table = unsafe {
            let version = (*host).abi_version;
            vaccel_rs_host {
                abi_version: version,
                log_write: (*host).log_write,
                log_enabled: (*host).log_enabled,
                resource_retain: if version >= 2 {
                    (*host).resource_retain
                } else {
                    None
                },
                resource_blob: if version >= 2 {
                    (*host).resource_blob
                } else {
                    None
                },
                resource_release: if version >= 2 {
                    (*host).resource_release
                } else {
                    None
                },
            }
        };
        let _ = HOST.set(table);
        // The first bind installs the forwarder; every bind (a library stays loaded across
        // runtimes) takes the host's level as it is now.
        let _ = log::set_logger(&FORWARD);
        log::set_max_level(host_max_level());
        Ok(())
    })
}

extern "C" fn plugin_init() -> c_int {
    guard(|| attached::start().map(drop))
}

extern "C" fn plugin_fini() -> c_int {
    guard(|| {
        attached::stop();
        Ok(())
    })
}

unsafe extern "C" fn session_init(sess: *mut vaccel_session, flags: u32) -> c_int {
    // SAFETY: the host passes a valid session view (hook contract).
    guard(|| unsafe { attached::init_session(sess, flags) })
}

unsafe extern "C" fn session_release(sess: *mut vaccel_session) -> c_int {
    guard(|| {
        // SAFETY: the host passes a valid session view (hook contract).
        unsafe { attached::release_session(sess) };
        Ok(())
    })
}

unsafe extern "C" fn session_update(sess: *mut vaccel_session, flags: u32) -> c_int {
    guard(|| {
        // SAFETY: the host passes a valid session view (hook contract).
        let session = unsafe { attached::session(sess) }?;
        let plugin = &state().ok_or_else(attached::not_constructed)?.plugin;
        plugin.session_update(&session, flags)
    })
}

unsafe extern "C" fn resource_register(
    res: *mut vaccel_resource,
    sess: *mut vaccel_session,
) -> c_int {
    // SAFETY: the host passes valid views (hook contract).
    guard(|| unsafe { attached::register(res, sess) })
}

unsafe extern "C" fn resource_unregister(
    res: *mut vaccel_resource,
    sess: *mut vaccel_session,
) -> c_int {
    // SAFETY: the host passes valid views (hook contract).
    guard(|| unsafe { attached::unregister(res, sess) })
}

unsafe extern "C" fn resource_sync(res: *mut vaccel_resource, sess: *mut vaccel_session) -> c_int {
    // SAFETY: the host passes valid views (hook contract).
    guard(|| unsafe { attached::sync(res, sess) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_records_are_filtered_plugin_records_are_not() {
        assert!(is_bookkeeping("vaccel_core::session"));
        assert!(is_bookkeeping("vaccel_core::runtime"));
        assert!(!is_bookkeeping("vaccel_core::blob"));
        assert!(!is_bookkeeping("vaccel_core::prof"));
        assert!(!is_bookkeeping("vaccel_plugin_noop"));
    }

    #[test]
    fn descriptor_entry_is_linked_to_itself_as_upstream_plugins_are() {
        let desc = DescriptorPtr::new().0;
        // SAFETY: reading the static descriptor of this (test) binary.
        let (entry, next, prev) = unsafe {
            (
                &raw const (*desc).entry,
                (*desc).entry.next,
                (*desc).entry.prev,
            )
        };
        assert!(std::ptr::eq(next, entry));
        assert!(std::ptr::eq(prev, entry));
    }

    #[test]
    fn descriptor_is_empty_until_constructed() {
        let desc = DescriptorPtr::new();
        // SAFETY: reading the static descriptor of this (test) binary, never constructed.
        assert!(unsafe { (*desc.0).info.is_null() });
        assert!(state().is_none());
    }
}
