//! Sessions, resources, blobs, lists and the configuration (`vaccel/session.h`,
//! `vaccel/resource.h`, `vaccel/blob.h`, `vaccel/list.h`, `vaccel/config.h`).

use std::ffi::{c_char, c_uint, c_void};
use std::sync::atomic::AtomicU32;

use crate::consts::{
    PATH_MAX, VACCEL_RESOURCE_MAX, vaccel_blob_type_t, vaccel_id_t, vaccel_log_level_t,
    vaccel_path_type_t, vaccel_resource_type_t,
};
use crate::plugin::vaccel_plugin;

/// Size of glibc's `pthread_mutex_t` on this target.
const MUTEX_SIZE: usize = size_of::<libc::pthread_mutex_t>();

/// Storage laid out as the C library's `pthread_mutex_t` (glibc defines it as a union of a byte
/// array and a `long`, which is what this mirrors). The runtime never locks it: upstream's
/// structs embed one, so ours do too, to keep every later field at upstream's offset. All
/// zeroes is `PTHREAD_MUTEX_INITIALIZER` on glibc.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct pthread_mutex_t {
    __align: [libc::c_long; 0],
    __size: [u8; MUTEX_SIZE],
}

impl pthread_mutex_t {
    /// An unlocked mutex (`PTHREAD_MUTEX_INITIALIZER`).
    pub const INIT: pthread_mutex_t = pthread_mutex_t {
        __align: [],
        __size: [0; MUTEX_SIZE],
    };
}

/// `struct vaccel_list_entry` (`vaccel/list.h`): a node of an intrusive doubly linked list.
/// An empty list is a head whose `next` and `prev` point at itself (`LIST_ENTRY_INIT`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vaccel_list_entry {
    /// The next entry (the head itself at the end).
    pub next: *mut vaccel_list_entry,
    /// The previous entry (the head itself at the start).
    pub prev: *mut vaccel_list_entry,
}

/// `vaccel_list_entry_t`.
pub type vaccel_list_entry_t = vaccel_list_entry;
/// `vaccel_list_t`: a list head.
pub type vaccel_list_t = vaccel_list_entry;

/// `struct vaccel_blob` (`vaccel/blob.h`): one file or buffer of a resource.
///
/// ```c
/// struct vaccel_blob { vaccel_blob_type_t type; char *name; char *path; bool path_owned;
///                      uint8_t *data; bool data_owned; size_t size; };
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_blob {
    /// `VACCEL_BLOB_FILE`, `_BUFFER` or `_MAPPED` (`_MAX` once released).
    pub r#type: vaccel_blob_type_t,
    /// The blob's name (a file name).
    pub name: *mut c_char,
    /// The backing file (`FILE` and `MAPPED` blobs), else null.
    pub path: *mut c_char,
    /// Whether the file is deleted when the blob is released.
    pub path_owned: bool,
    /// The bytes, if in memory.
    pub data: *mut u8,
    /// Whether `data` is freed (or unmapped) when the blob is released.
    pub data_owned: bool,
    /// Number of bytes at `data`.
    pub size: usize,
}

/// `struct vaccel_resource` (`vaccel/resource.h`).
///
/// ```c
/// struct vaccel_resource { vaccel_id_t id; vaccel_id_t remote_id; vaccel_resource_type_t type;
///     vaccel_path_type_t path_type; char **paths; size_t nr_paths; char *rundir;
///     struct vaccel_blob **blobs; size_t nr_blobs; vaccel_list_entry_t entry;
///     vaccel_list_t sessions; pthread_mutex_t sessions_lock; atomic_uint refcount;
///     void *plugin_priv; };
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_resource {
    /// The resource id (> 0 while initialised).
    pub id: vaccel_id_t,
    /// The id on the remote side, for resources registered with remote sessions.
    pub remote_id: vaccel_id_t,
    /// `VACCEL_RESOURCE_LIB`, `_DATA` or `_MODEL`.
    pub r#type: vaccel_resource_type_t,
    /// How `paths` are read.
    pub path_type: vaccel_path_type_t,
    /// The paths or URLs the resource was made from.
    pub paths: *mut *mut c_char,
    /// Number of `paths`.
    pub nr_paths: usize,
    /// The resource's own directory, if it has one.
    pub rundir: *mut c_char,
    /// The blobs (files or buffers) of the resource.
    pub blobs: *mut *mut vaccel_blob,
    /// Number of `blobs`.
    pub nr_blobs: usize,
    /// Entry in the global list of resources.
    pub entry: vaccel_list_entry_t,
    /// Sessions the resource is registered with.
    pub sessions: vaccel_list_t,
    /// Lock of `sessions`.
    pub sessions_lock: pthread_mutex_t,
    /// Number of sessions the resource is registered with.
    pub refcount: AtomicU32,
    /// Data a plugin attaches to the resource.
    pub plugin_priv: *mut c_void,
}

/// `struct vaccel_session` (`vaccel/session.h`).
///
/// ```c
/// struct vaccel_session { vaccel_id_t id; vaccel_id_t remote_id; unsigned int hint;
///     bool is_virtio; char rundir[PATH_MAX]; vaccel_list_entry_t entry;
///     vaccel_list_t resources[VACCEL_RESOURCE_MAX];
///     size_t resource_counts[VACCEL_RESOURCE_MAX]; pthread_mutex_t resources_lock;
///     struct vaccel_plugin *plugin; void *priv; };
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_session {
    /// The session id (> 0 while initialised).
    pub id: vaccel_id_t,
    /// The id on the remote side (remote sessions).
    pub remote_id: vaccel_id_t,
    /// The plugin-type hint the session was created with.
    pub hint: c_uint,
    /// Whether the session forwards to a remote runtime.
    pub is_virtio: bool,
    /// The session's directory, NUL-terminated.
    pub rundir: [c_char; PATH_MAX],
    /// Entry in upstream's global list of sessions. The library keeps no such list (it is an
    /// empty, self-linked entry); the field holds every later one at upstream's offset.
    pub entry: vaccel_list_entry_t,
    /// Registered resources, one list per resource type.
    pub resources: [vaccel_list_t; VACCEL_RESOURCE_MAX as usize],
    /// Number of registered resources per type.
    pub resource_counts: [usize; VACCEL_RESOURCE_MAX as usize],
    /// Lock of `resources`.
    pub resources_lock: pthread_mutex_t,
    /// The plugin serving the session.
    pub plugin: *mut vaccel_plugin,
    /// Data a plugin attaches to the session (C field `priv`).
    pub r#priv: *mut c_void,
}

/// `struct vaccel_config` (`vaccel/config.h`).
///
/// ```c
/// struct vaccel_config { char *plugins; vaccel_log_level_t log_level; char *log_file;
///                        bool profiling_enabled; bool version_ignore; };
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_config {
    /// `:`-separated plugin names or paths, or null.
    pub plugins: *mut c_char,
    /// Log level (1-4; anything else turns logging off).
    pub log_level: vaccel_log_level_t,
    /// Log file, or null for stdout.
    pub log_file: *mut c_char,
    /// Whether profiling regions record samples.
    pub profiling_enabled: bool,
    /// Whether plugins built for another vAccel major version are accepted.
    pub version_ignore: bool,
}

#[cfg(all(test, target_pointer_width = "64", target_os = "linux"))]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn list_entry_layout() {
        assert_eq!(size_of::<vaccel_list_entry>(), 16);
        assert_eq!(offset_of!(vaccel_list_entry, next), 0);
        assert_eq!(offset_of!(vaccel_list_entry, prev), 8);
    }

    #[test]
    fn mutex_matches_libc() {
        assert_eq!(
            size_of::<pthread_mutex_t>(),
            size_of::<libc::pthread_mutex_t>()
        );
        assert_eq!(
            align_of::<pthread_mutex_t>(),
            align_of::<libc::pthread_mutex_t>()
        );
    }

    #[test]
    fn blob_layout() {
        assert_eq!(size_of::<vaccel_blob>(), 56);
        assert_eq!(offset_of!(vaccel_blob, r#type), 0);
        assert_eq!(offset_of!(vaccel_blob, name), 8);
        assert_eq!(offset_of!(vaccel_blob, path), 16);
        assert_eq!(offset_of!(vaccel_blob, path_owned), 24);
        assert_eq!(offset_of!(vaccel_blob, data), 32);
        assert_eq!(offset_of!(vaccel_blob, data_owned), 40);
        assert_eq!(offset_of!(vaccel_blob, size), 48);
    }

    #[test]
    fn resource_layout() {
        let m = size_of::<pthread_mutex_t>();
        assert_eq!(offset_of!(vaccel_resource, id), 0);
        assert_eq!(offset_of!(vaccel_resource, remote_id), 8);
        assert_eq!(offset_of!(vaccel_resource, r#type), 16);
        assert_eq!(offset_of!(vaccel_resource, path_type), 20);
        assert_eq!(offset_of!(vaccel_resource, paths), 24);
        assert_eq!(offset_of!(vaccel_resource, nr_paths), 32);
        assert_eq!(offset_of!(vaccel_resource, rundir), 40);
        assert_eq!(offset_of!(vaccel_resource, blobs), 48);
        assert_eq!(offset_of!(vaccel_resource, nr_blobs), 56);
        assert_eq!(offset_of!(vaccel_resource, entry), 64);
        assert_eq!(offset_of!(vaccel_resource, sessions), 80);
        assert_eq!(offset_of!(vaccel_resource, sessions_lock), 96);
        assert_eq!(offset_of!(vaccel_resource, refcount), 96 + m);
        assert_eq!(offset_of!(vaccel_resource, plugin_priv), 96 + m + 8);
        assert_eq!(size_of::<vaccel_resource>(), 96 + m + 16);
    }

    #[test]
    fn session_layout() {
        let m = size_of::<pthread_mutex_t>();
        assert_eq!(offset_of!(vaccel_session, id), 0);
        assert_eq!(offset_of!(vaccel_session, remote_id), 8);
        assert_eq!(offset_of!(vaccel_session, hint), 16);
        assert_eq!(offset_of!(vaccel_session, is_virtio), 20);
        assert_eq!(offset_of!(vaccel_session, rundir), 21);
        // 21 + 4096 = 4117, rounded up to the entry's 8-byte alignment.
        assert_eq!(offset_of!(vaccel_session, entry), 4120);
        assert_eq!(offset_of!(vaccel_session, resources), 4136);
        assert_eq!(offset_of!(vaccel_session, resource_counts), 4136 + 48);
        assert_eq!(offset_of!(vaccel_session, resources_lock), 4208);
        assert_eq!(offset_of!(vaccel_session, plugin), 4208 + m);
        assert_eq!(offset_of!(vaccel_session, r#priv), 4216 + m);
        assert_eq!(size_of::<vaccel_session>(), 4224 + m);
    }

    #[test]
    fn config_layout() {
        assert_eq!(size_of::<vaccel_config>(), 32);
        assert_eq!(offset_of!(vaccel_config, plugins), 0);
        assert_eq!(offset_of!(vaccel_config, log_level), 8);
        assert_eq!(offset_of!(vaccel_config, log_file), 16);
        assert_eq!(offset_of!(vaccel_config, profiling_enabled), 24);
        assert_eq!(offset_of!(vaccel_config, version_ignore), 25);
    }
}
