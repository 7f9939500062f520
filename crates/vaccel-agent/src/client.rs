//! Clients and what they own (docs/wire.md, "Clients and ownership").
//!
//! A client is one process on a Unix socket (same `SO_PEERCRED` pid and uid), one guest on
//! vsock (same CID), one connection on TCP. Each has its own maps of sessions and resources,
//! locked per client (never across clients); another client's ids are looked up in the wrong
//! maps and so answer `NOT_FOUND` exactly as nonexistent ids do. When the client's last
//! connection closes, everything it owned is released.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use vaccel::prof::Region;
use vaccel::{Id, Resource, Session};
use vaccel_rpc::proto::grpc;
use vaccel_rpc::proto::vaccel::profiling as pp;
use vaccel_rpc::server::ConnectionInfo;
use vaccel_rpc::status;
use vaccel_rpc::transport::Peer;

use crate::logging::OneLine;
use crate::quota::{Hold, Usage};
use crate::{COMPONENT, T_CLIENT, T_RESOURCE, T_SESSION, invalid_id};

/// Who a connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    /// A local process (Unix socket).
    Process {
        /// Its pid.
        pid: i32,
        /// Its uid: a pid reused by another user is another client.
        uid: u32,
    },
    /// A VM guest (vsock).
    Guest {
        /// Its context id.
        cid: u32,
    },
    /// A lone connection (TCP, or a peer whose identity is unknown).
    Connection(u64),
}

impl ClientKey {
    pub(crate) fn of(conn: &ConnectionInfo) -> ClientKey {
        match conn.peer {
            // pid 0: a peer in a pid namespace we cannot see into; do not lump those together.
            Some(Peer::Unix { pid, uid, .. }) if pid > 0 => ClientKey::Process { pid, uid },
            Some(Peer::Vsock { cid }) => ClientKey::Guest { cid },
            _ => ClientKey::Connection(conn.id),
        }
    }
}

/// The regions an agent session records when profiling is on (upstream's names).
pub(crate) const GENOP_READ_ARGS: usize = 0;
pub(crate) const GENOP_WRITE_ARGS: usize = 1;
pub(crate) const GENOP_SESS_GENOP: usize = 2;
pub(crate) const GENOP_RESP_WRITE_ARGS: usize = 3;
const REGION_NAMES: [&str; 4] = [
    "genop > read_args",
    "genop > write_args",
    "genop > sess.genop",
    "genop > resp_write_args",
];

/// A session's profiling regions, returned by `GetProfiler`.
#[derive(Debug)]
pub(crate) struct Profiler {
    regions: [Region; 4],
}

impl Profiler {
    fn new() -> Profiler {
        Profiler {
            regions: REGION_NAMES.map(Region::new),
        }
    }

    /// The region at `index` (one of the `GENOP_*` constants).
    pub(crate) fn region(&self, index: usize) -> Option<&Region> {
        self.regions.get(index)
    }

    /// The profiler as sent on the wire (regions that have samples).
    pub(crate) fn to_proto(&self) -> pp::Profiler {
        let regions = self
            .regions
            .iter()
            .filter(|r| r.nr_entries() > 0)
            .map(|r| {
                let samples = r
                    .samples()
                    .into_iter()
                    .map(|s| pp::Sample {
                        start: s.start,
                        time: s.time,
                    })
                    .collect();
                (r.name().to_owned(), pp::Region { samples })
            })
            .collect();
        pp::Profiler {
            component_name: COMPONENT.to_owned(),
            regions,
        }
    }
}

/// A session the agent holds for a client.
#[derive(Debug)]
pub(crate) struct AgentSession {
    pub(crate) sess: Arc<Session>,
    /// Present when profiling is enabled.
    pub(crate) prof: Option<Profiler>,
    /// The text of its per-call genop log line (`session:N Genop`), made once.
    pub(crate) genop_line: OneLine,
    /// Its place in the client's session quota, given back with the session.
    _hold: Hold,
}

impl AgentSession {
    /// Times `f` in region `index` when profiling is on.
    pub(crate) fn timed<T>(&self, index: usize, f: impl FnOnce() -> T) -> T {
        let _timed = self
            .prof
            .as_ref()
            .and_then(|p| p.region(index))
            .map(Region::enter);
        f()
    }
}

/// A map keyed by the ids the agent hands out. The agent picks the keys (a client only looks
/// ids up), so no client can choose colliding ones and the hash need not resist that: one
/// multiplication instead of SipHash's 140-odd instructions on every call (issue #17).
type IdMap<V> = HashMap<Id, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of an id: one multiplication by an odd constant (distinct ids modulo
/// 2^n keep distinct low bits; the high bits are well mixed).
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `i64` keys; any byte input still hashes (FNV-1a).
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_i64(&mut self, id: i64) {
        self.0 = (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A resource the agent holds for a client, with what it counts against the client's quotas.
#[derive(Debug)]
struct Held {
    res: Arc<Resource>,
    _hold: Hold,
}

/// One client's objects.
#[derive(Debug)]
pub(crate) struct Client {
    label: String,
    sessions: RwLock<IdMap<Arc<AgentSession>>>,
    resources: RwLock<IdMap<Held>>,
    /// What it holds against its quotas.
    pub(crate) usage: Arc<Usage>,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// A request id: upstream refuses ids ≤ 0 before looking anything up.
pub(crate) fn check_id(raw: i64) -> Result<Id, grpc::Status> {
    if raw <= 0 {
        return Err(invalid_id(raw));
    }
    Ok(raw)
}

impl Client {
    pub(crate) fn new(label: String) -> Client {
        Client {
            label,
            sessions: RwLock::new(IdMap::default()),
            resources: RwLock::new(IdMap::default()),
            usage: Arc::new(Usage::default()),
        }
    }

    /// Whether the client holds sessions or resources (its idle connections stay open).
    pub(crate) fn holds_objects(&self) -> bool {
        !read(&self.sessions).is_empty() || !read(&self.resources).is_empty()
    }

    /// The session `raw` of this client, or `NOT_FOUND "Unknown session <id>"`.
    pub(crate) fn session(&self, raw: i64) -> Result<Arc<AgentSession>, grpc::Status> {
        let id = check_id(raw)?;
        read(&self.sessions)
            .get(&id)
            .cloned()
            .ok_or_else(|| status::not_found(format!("Unknown session {id}")))
    }

    /// The resource `raw` of this client, or `NOT_FOUND "<unknown> <id>"` (`Unknown resource`,
    /// `Unknown TensorFlow model`...).
    pub(crate) fn resource(&self, raw: i64, unknown: &str) -> Result<Arc<Resource>, grpc::Status> {
        let id = check_id(raw)?;
        self.resource_by_id(id)
            .ok_or_else(|| status::not_found(format!("{unknown} {id}")))
    }

    pub(crate) fn resource_by_id(&self, id: Id) -> Option<Arc<Resource>> {
        read(&self.resources).get(&id).map(|h| Arc::clone(&h.res))
    }

    /// Keeps `sess` for the client, with its place in the session quota.
    pub(crate) fn add_session(&self, sess: Arc<Session>, profiling: bool, hold: Hold) {
        let entry = AgentSession {
            prof: profiling.then(Profiler::new),
            genop_line: OneLine::new(format!("session:{} Genop", sess.id())),
            sess,
            _hold: hold,
        };
        write(&self.sessions).insert(entry.sess.id(), Arc::new(entry));
    }

    pub(crate) fn remove_session(&self, raw: i64) -> Result<Arc<AgentSession>, grpc::Status> {
        let id = check_id(raw)?;
        write(&self.sessions)
            .remove(&id)
            .ok_or_else(|| status::not_found(format!("Unknown session {id}")))
    }

    /// Keeps `res` for the client, with what it counts against the client's quotas (given
    /// back once it is released).
    pub(crate) fn add_resource(&self, res: Arc<Resource>, hold: Hold) {
        write(&self.resources).insert(res.id(), Held { res, _hold: hold });
    }

    /// Forgets and releases `res` if no session holds it any more.
    pub(crate) fn release_if_unused(&self, res: &Arc<Resource>) {
        let removed = {
            let mut map = write(&self.resources);
            if res.refcount() == 0 && map.get(&res.id()).is_some_and(|h| Arc::ptr_eq(&h.res, res)) {
                map.remove(&res.id())
            } else {
                None
            }
        };
        if let Some(held) = removed {
            let res = &held.res;
            log::info!(target: T_RESOURCE, "Destroying resource {}", res.id());
            if let Err(e) = res.release() {
                log::warn!(target: T_RESOURCE, "Could not release resource {}: {e}", res.id());
            }
        }
    }

    /// Releases everything the client owned (its last connection is gone).
    pub(crate) fn release_all(&self) {
        let sessions: Vec<_> = write(&self.sessions).drain().collect();
        let resources: Vec<_> = write(&self.resources).drain().collect();
        if sessions.is_empty() && resources.is_empty() {
            return;
        }
        log::info!(
            target: T_CLIENT,
            "Client {} disconnected: releasing {} session(s) and {} resource(s)",
            self.label,
            sessions.len(),
            resources.len()
        );
        for (id, sess) in sessions {
            drop(sess);
            log::info!(target: T_SESSION, "Destroyed session {id}");
        }
        for (id, held) in resources {
            log::info!(target: T_RESOURCE, "Destroying resource {id}");
            if let Err(e) = held.res.release() {
                log::warn!(target: T_RESOURCE, "Could not release resource {id}: {e}");
            }
        }
    }
}
