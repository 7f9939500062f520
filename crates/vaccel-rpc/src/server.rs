//! The ttrpc server core: accepts connections on a [`Listener`], reads request frames, runs
//! each call on a [`Service`] and writes the response, with several calls in flight per
//! connection and no lock shared between connections on the call path.
//!
//! Threads, per connection: a small pool (grown lazily up to
//! [`ServerConfig::threads_per_connection`]) run as leader/follower. One thread at a time has
//! the reading duty: it reads frames until one completes a request, runs the request itself and
//! writes the response under the connection's write lock. It hands the duty to a follower
//! (waking or spawning one) at once when more input is already buffered, and otherwise only if
//! the request runs longer than [`ServerConfig::handoff_delay`] *and* more input has arrived
//! on the connection meanwhile (a watchdog thread checks). So a call costs no channel hop and
//! no thread wake-up beyond the reader's own, a client making one call at a time is served by
//! one thread however long its calls run (a hand-off per call moved every long call to another
//! thread and cost model runs 10-15% more through the agent: cold caches, re-faulted buffers),
//! a slow call never holds back the calls behind it for long, and a connection whose threads
//! are all busy stops being read (back-pressure) instead of queueing without bound. No lock
//! is shared between connections on the call path.
//!
//! Protocol details (see `docs/wire.md`): unknown services or methods are answered
//! `INVALID_ARGUMENT "/<service>/<method> does not exist"`; a frame over the size limit is
//! answered on its stream and its connection closed without reading the body; undecodable
//! envelopes are answered on their stream and the connection stays usable; unknown frame types
//! are ignored; `vaccel.rs.ext.Extensions/GetCapabilities`, chunked requests and responses and
//! client-streaming calls (upstream's async `GenopStream`) are built in.
//!
//! ```no_run
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use vaccel_rpc::proto::grpc;
//! use vaccel_rpc::server::{CallContext, Server, Service, method_not_found};
//! use vaccel_rpc::transport::Listener;
//!
//! struct Echo;
//! impl Service for Echo {
//!     fn call(&self, ctx: &CallContext<'_>, method: &str, payload: Bytes)
//!         -> Result<Vec<u8>, grpc::Status> {
//!         match method {
//!             "Echo" => Ok(payload.to_vec()),
//!             _ => Err(method_not_found(ctx.service(), method)),
//!         }
//!     }
//! }
//!
//! let listener = Listener::bind(&"unix:///tmp/echo.sock".parse()?)?;
//! let server = Server::builder().service("test.Echo", Arc::new(Echo)).build();
//! let handle = server.start(listener)?;
//! // ... until asked to stop:
//! handle.shutdown(std::time::Duration::from_secs(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use vaccel_core::ErrorCode;

use crate::frame::{self, FrameError, FrameReader, ReadError, flags, kind};
use crate::message::{self, MAX_METADATA};
use crate::proto::grpc;
use crate::proto::vaccel::rs::ext;
use crate::shm::{RegionMut, SharedMemory, ShmError};
use crate::status::{self, code};
use crate::transport::{Listener, Peer, PeerFilter, Stream};

/// Request metadata announcing a chunked request: the total payload bytes (extension 2).
pub const META_CHUNKED: &str = "vaccel-rs-chunked";
/// Request metadata: the client accepts chunked responses of at most this many bytes per frame.
pub const META_ACCEPT_CHUNKS: &str = "vaccel-rs-accept-chunks";
/// `RegisterResource` metadata: the blobs are one directory tree (extension 3).
pub const META_DIRECTORY: &str = "vaccel-rs-directory";
/// Request metadata: the method's message lies in the connection's shared memory, at
/// `<offset>:<length>` (extension 6); the request's own payload is empty.
pub const META_SHARED_MEMORY: &str = "vaccel-rs-shm";
/// The methods whose message may come in shared memory: their services read it during the
/// call and keep none of it (a kept slice would pin the mapping and see the client's later
/// writes).
pub const SHARED_MEMORY_METHODS: &[&str] = &["Genop"];
/// `Genop` metadata: arguments whose bytes lie in attached argument buffers (extension 6),
/// `<argument>=<region>:<offset>:<length>` separated by commas, `<argument>` a read argument's
/// index or `w` and a write argument's; those arguments carry no bytes of their own.
pub const META_SHARED_ARGS: &str = "vaccel-rs-shm-args";
/// How many memfds one connection may have attached at once: region 0 for whole messages and
/// argument buffers 1 to this less 1 (`Capabilities.shared_memory_regions`).
pub const SHARED_MEMORY_REGIONS: u32 = 16;
/// The most arguments one call may name in [`META_SHARED_ARGS`].
const MAX_SHARED_ARGS: usize = 64;
/// A sensible [`ServerConfig::max_shared_memory`] for servers that offer it (the agent's
/// default): 1 GiB per connection.
pub const DEFAULT_MAX_SHARED_MEMORY: u64 = 1 << 30;
/// Default largest message reassembled from chunks or stream messages: 4 GiB.
pub const DEFAULT_MAX_MESSAGE: u64 = 4 << 30;
/// Default cap of threads serving one connection.
pub const DEFAULT_THREADS_PER_CONNECTION: usize = 16;
/// Default [`ServerConfig::handoff_delay`].
pub const DEFAULT_HANDOFF_DELAY: Duration = Duration::from_micros(500);
/// Version of the extension protocol advertised by `GetCapabilities`.
pub const EXTENSIONS_VERSION: u32 = 1;

/// Default [`ServerConfig::max_open_streams`].
pub const DEFAULT_MAX_OPEN_STREAMS: usize = 16;
/// Default [`ServerConfig::max_stream_bytes`]: 4 GiB.
pub const DEFAULT_MAX_STREAM_BYTES: u64 = 4 << 30;
/// Default [`ServerConfig::read_timeout`].
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`ServerConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default [`ServerConfig::max_connections_per_client`].
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 32;
/// Default [`ServerConfig::max_genop_args`].
pub const DEFAULT_MAX_GENOP_ARGS: usize = 4096;
/// Default [`ServerConfig::max_message_fields`].
pub const DEFAULT_MAX_MESSAGE_FIELDS: usize = 65536;
/// The smallest chunk a client may ask for with [`META_ACCEPT_CHUNKS`]: smaller values are
/// raised to it, so an 8 MiB answer cannot be made 8 million frames.
pub const MIN_ACCEPT_CHUNKS: usize = 64 << 10;
/// Reassembly buffers grow as data arrives, first by this much.
const FIRST_REASSEMBLY: usize = 1 << 20;
/// How often a blocked `accept` looks at the stop flag when it cannot be woken otherwise
/// (vsock listeners ignore `shutdown`).
const ACCEPT_POLL: Duration = Duration::from_millis(200);

/// Limits and sizes of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest frame read or written (default 1 GiB, upstream's limit). Larger incoming frames
    /// close their connection; larger responses go out chunked when the client accepts it and
    /// are refused with `INVALID_ARGUMENT` otherwise.
    pub max_frame_size: usize,
    /// Largest message reassembled from a chunked request or a client stream (default 4 GiB).
    pub max_message_size: u64,
    /// Threads that may serve one connection at once (default 16, at least 1).
    pub threads_per_connection: usize,
    /// How long a request may run before another thread takes over reading its connection,
    /// if more input has arrived on it meanwhile (default 500 µs). Calls behind a longer one
    /// wait at most about twice this; zero hands the reading over at every request (one more
    /// thread wake-up per call).
    pub handoff_delay: Duration,
    /// Streams (chunked requests, client streams) one connection may have open at once
    /// (default 16); more are refused with `RESOURCE_EXHAUSTED` / `VACCEL_EBUSY`.
    pub max_open_streams: usize,
    /// Bytes the open streams of one connection may hold together, received and not yet
    /// handed to a call (default 4 GiB); a stream going over is refused with
    /// `RESOURCE_EXHAUSTED` / `VACCEL_ENOMEM`.
    pub max_stream_bytes: u64,
    /// How long a started frame or stream may go without a byte arriving, and a response
    /// without the client taking a byte of it (default 30 s); then the connection is closed.
    /// Zero: no limit.
    pub read_timeout: Duration,
    /// How long a connection may stay idle (no frame, no call running, no open stream) when
    /// its service keeps nothing for it ([`Service::keeps_connection`]) before it is closed
    /// (default 300 s). Zero: no limit.
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed at accept (default: derived from the
    /// descriptor limit, [`default_max_connections`]).
    pub max_connections: usize,
    /// Connections one client (a Unix peer's pid, a vsock CID, a TCP peer's IP address) may
    /// have open at once; more are closed at accept (default 32, zero: no cap).
    pub max_connections_per_client: usize,
    /// Arguments (read and write together) a `Genop` request, or all the messages of a
    /// `GenopStream`, may carry (default 4096), counted on the encoded message before it is
    /// decoded; more are refused with `RESOURCE_EXHAUSTED` / `VACCEL_ENOMEM`.
    pub max_genop_args: usize,
    /// Top-level fields any request message may carry (default 65536), counted the same way:
    /// what bounds the memory a decoded message takes against its size on the wire.
    pub max_message_fields: usize,
    /// The most bytes of shared memory one unix connection may attach, all its regions
    /// together (extension 6), held against the connection's
    /// [`Service::shared_memory_budget`] while attached. Zero (the default): not offered. TCP
    /// and vsock connections never get it.
    pub max_shared_memory: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_size: frame::DEFAULT_MAX_FRAME,
            max_message_size: DEFAULT_MAX_MESSAGE,
            threads_per_connection: DEFAULT_THREADS_PER_CONNECTION,
            handoff_delay: DEFAULT_HANDOFF_DELAY,
            max_open_streams: DEFAULT_MAX_OPEN_STREAMS,
            max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: default_max_connections(),
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            max_genop_args: DEFAULT_MAX_GENOP_ARGS,
            max_message_fields: DEFAULT_MAX_MESSAGE_FIELDS,
            max_shared_memory: 0,
        }
    }
}

/// The soft limit on open descriptors of this process (`/proc/self/limits`), if it can be
/// read and is not unlimited.
pub fn fd_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The default cap on connections: a connection holds three descriptors (and a thread), and
/// a quarter of the descriptor limit (at least 64) is left to the rest of the process
/// (plugins, model files, probes, the listener), so a flood of connections is refused at
/// accept instead of making `accept`, `open` and `socket` fail at random. 256 for the common
/// limit of 1024; 1024 when the limit cannot be read.
pub fn default_max_connections() -> usize {
    connections_for_fds(fd_soft_limit().unwrap_or(4096))
}

fn connections_for_fds(limit: u64) -> usize {
    let rest = (limit / 4).max(64);
    usize::try_from(limit.saturating_sub(rest) / 3)
        .unwrap_or(usize::MAX)
        .max(1)
}

/// One accepted connection, as services see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Unique (per server) connection number, from 1.
    pub id: u64,
    /// Who is on the other end, when the transport could tell.
    pub peer: Option<Peer>,
}

/// What a service keeps per connection (returned by [`Service::connection_opened`]).
pub type ConnectionData = Arc<dyn Any + Send + Sync>;

/// A byte budget wider than one connection that the bytes of open streams are held against
/// while they arrive (the agent: the client's byte quota and the agent's budget), handed to
/// the server by [`Service::request_budget`].
pub trait RequestBudget: Send + Sync {
    /// Takes `bytes`, or answers the status to refuse the stream with.
    fn take(&self, bytes: u64) -> Result<(), grpc::Status>;
    /// Gives back `bytes` taken before.
    fn give_back(&self, bytes: u64);
}

/// The bytes an open stream holds against its connection's [`RequestBudget`], given back
/// when the stream is complete, refused or dropped with its connection.
struct Charge {
    budget: Option<Arc<dyn RequestBudget>>,
    bytes: u64,
}

impl Charge {
    fn new(budget: Option<&Arc<dyn RequestBudget>>) -> Charge {
        Charge {
            budget: budget.cloned(),
            bytes: 0,
        }
    }

    /// Takes `more` bytes from `budget`, which becomes this charge's budget if it had none.
    fn add_to(
        &mut self,
        budget: Option<&Arc<dyn RequestBudget>>,
        more: u64,
    ) -> Result<(), grpc::Status> {
        if self.budget.is_none() {
            self.budget = budget.cloned();
        }
        self.add(more)
    }

    /// Takes `more` bytes from the budget.
    fn add(&mut self, more: u64) -> Result<(), grpc::Status> {
        if let Some(b) = &self.budget {
            b.take(more)?;
        }
        self.bytes += more;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(b) = &self.budget
            && self.bytes > 0
        {
            b.give_back(self.bytes);
        }
    }
}

/// Everything about a call besides its method and payload.
pub struct CallContext<'a> {
    connection: &'a ConnectionInfo,
    stream_id: u32,
    service: &'a str,
    metadata: &'a [(&'a str, &'a str)],
    data: Option<&'a (dyn Any + Send + Sync)>,
    /// The connection's shared memory, where it may attach some.
    shm: Option<&'a Mutex<Vec<(u32, Attached)>>>,
}

impl fmt::Debug for CallContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallContext")
            .field("connection", &self.connection)
            .field("stream_id", &self.stream_id)
            .field("service", &self.service)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl<'a> CallContext<'a> {
    /// The connection the call came on.
    pub fn connection(&self) -> &'a ConnectionInfo {
        self.connection
    }

    /// The call's stream id.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The service name as the client wrote it.
    pub fn service(&self) -> &'a str {
        self.service
    }

    /// The request's metadata, as (key, value) pairs.
    pub fn metadata(&self) -> &'a [(&'a str, &'a str)] {
        self.metadata
    }

    /// The first value of metadata `key`.
    pub fn metadata_value(&self, key: &str) -> Option<&'a str> {
        self.metadata
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, v)| v)
    }

    /// The arguments of a `Genop` whose bytes lie in the connection's argument buffers
    /// ([`META_SHARED_ARGS`], extension 6), each checked to lie within its attached region,
    /// and the written ones to overlap no other; empty when the call names none. The bytes
    /// are the client's memory, which it may write while they are used (see
    /// [`SharedMemory::region`]). `INVALID_ARGUMENT` for a malformed value, a region not
    /// attached, bytes outside it, overlapping a written argument's, or a connection without
    /// shared memory.
    pub fn shared_args(&self) -> Result<SharedArgs, grpc::Status> {
        match self.metadata_value(META_SHARED_ARGS) {
            None => Ok(SharedArgs::default()),
            Some(value) => shared_args(self.shm, value),
        }
    }

    /// What the service returned from [`Service::connection_opened`] for this connection, if
    /// it is a `T`.
    pub fn connection_data<T: Any>(&self) -> Option<&'a T> {
        self.data.and_then(|d| d.downcast_ref::<T>())
    }
}

/// A ttrpc service: one or more service names route to it.
pub trait Service: Send + Sync {
    /// Runs `method` with its encoded request message and returns the encoded response
    /// message, or the status to answer with. Called concurrently from many threads.
    fn call(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        payload: Bytes,
    ) -> Result<Vec<u8>, grpc::Status>;

    /// Like [`Service::call`], with the encoded response message appended to `out` instead of
    /// returned: `out` comes empty, with the capacity earlier calls on the thread left, so a
    /// service that encodes into it costs no allocation per call. The server calls this one;
    /// by default it runs [`Service::call`] and takes its `Vec` as it is.
    fn call_into(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        payload: Bytes,
        out: &mut Vec<u8>,
    ) -> Result<(), grpc::Status> {
        *out = self.call(ctx, method, payload)?;
        Ok(())
    }

    /// Runs a client-streaming `method` (e.g. upstream's `GenopStream`) with every message the
    /// client sent. By default no method streams.
    fn call_client_stream(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        messages: Vec<Bytes>,
    ) -> Result<Vec<u8>, grpc::Status> {
        let _ = messages;
        Err(method_not_found(ctx.service(), method))
    }

    /// A connection was accepted; what is returned is handed to every call on it
    /// ([`CallContext::connection_data`]) and back to [`Service::connection_closed`].
    fn connection_opened(&self, conn: &ConnectionInfo) -> Option<ConnectionData> {
        let _ = conn;
        None
    }

    /// Whether an idle connection stays open past [`ServerConfig::idle_timeout`] because the
    /// service keeps state for it (the agent: sessions of its client). `None` (the default):
    /// the service cannot tell, and connections that made a successful call stay open.
    fn keeps_connection(
        &self,
        conn: &ConnectionInfo,
        data: Option<&ConnectionData>,
    ) -> Option<bool> {
        let _ = (conn, data);
        None
    }

    /// The budget the bytes of the connection's open streams are held against (besides the
    /// connection's own `max_stream_bytes`). `None` (the default): none.
    fn request_budget(
        &self,
        conn: &ConnectionInfo,
        data: Option<&ConnectionData>,
    ) -> Option<Arc<dyn RequestBudget>> {
        let _ = (conn, data);
        None
    }

    /// The budget the shared memory a connection attaches (extension 6) is held against
    /// while attached. By default the [`Service::request_budget`].
    fn shared_memory_budget(
        &self,
        conn: &ConnectionInfo,
        data: Option<&ConnectionData>,
    ) -> Option<Arc<dyn RequestBudget>> {
        self.request_budget(conn, data)
    }

    /// A connection closed and every call it carried has finished.
    fn connection_closed(&self, conn: &ConnectionInfo, data: Option<ConnectionData>) {
        let _ = (conn, data);
    }
}

/// The answer to an unknown service or method, as upstream's sync server gives it.
pub fn method_not_found(service: &str, method: &str) -> grpc::Status {
    status::invalid_argument(format!("/{service}/{method} does not exist"))
}

/// Builds a [`Server`].
#[derive(Default)]
pub struct ServerBuilder {
    config: ServerConfig,
    routes: Vec<(String, Arc<dyn Service>)>,
    capabilities: ext::Capabilities,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field(
                "services",
                &self.routes.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

impl ServerBuilder {
    /// All limits at once.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// [`ServerConfig::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame_size = bytes;
        self
    }

    /// [`ServerConfig::max_message_size`].
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// [`ServerConfig::threads_per_connection`].
    pub fn threads_per_connection(mut self, threads: usize) -> Self {
        self.config.threads_per_connection = threads;
        self
    }

    /// [`ServerConfig::handoff_delay`].
    pub fn handoff_delay(mut self, delay: Duration) -> Self {
        self.config.handoff_delay = delay;
        self
    }

    /// Routes the service name `name` to `service` (one service may have several names).
    pub fn service(mut self, name: impl Into<String>, service: Arc<dyn Service>) -> Self {
        self.routes.push((name.into(), service));
        self
    }

    /// The extensions the routed services implement (directory resources, extra genop ops,
    /// detection records), advertised by `GetCapabilities`. The server fills in the rest
    /// (`version`, the size limits, `chunked`, and `shared_memory_max` on unix connections
    /// from [`ServerConfig::max_shared_memory`]), which are its own; by default the services
    /// advertise nothing, so clients talk to them as to upstream's agent.
    pub fn capabilities(mut self, capabilities: ext::Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// The server, ready to [`Server::start`].
    pub fn build(self) -> Server {
        let mut services: Vec<Arc<dyn Service>> = Vec::new();
        let mut routes: Vec<(String, usize)> = Vec::new();
        for (name, svc) in self.routes {
            let ptr = Arc::as_ptr(&svc).cast::<()>();
            let index = match services
                .iter()
                .position(|s| std::ptr::eq(Arc::as_ptr(s).cast::<()>(), ptr))
            {
                Some(i) => i,
                None => {
                    services.push(svc);
                    services.len() - 1
                }
            };
            // A name registered again routes to the later service.
            match routes.iter_mut().find(|(n, _)| *n == name) {
                Some(route) => route.1 = index,
                None => routes.push((name, index)),
            }
        }
        let mut config = self.config;
        config.threads_per_connection = config.threads_per_connection.max(1);
        let capabilities = ext::Capabilities {
            version: EXTENSIONS_VERSION,
            max_frame_size: config.max_frame_size as u64,
            max_message_size: config.max_message_size,
            chunked: true,
            shared_memory_max: 0,
            ..self.capabilities
        };
        let capabilities_unix = ext::Capabilities {
            shared_memory_max: config.max_shared_memory,
            shared_memory_regions: if config.max_shared_memory > 0 {
                SHARED_MEMORY_REGIONS
            } else {
                0
            },
            ..capabilities.clone()
        }
        .encode_to_vec();
        let capabilities = capabilities.encode_to_vec();
        Server {
            shared: Arc::new(Shared {
                config,
                capabilities,
                capabilities_unix,
                routes,
                services,
                stop: AtomicBool::new(false),
                next_id: AtomicU64::new(1),
                conns: Mutex::new(HashMap::new()),
                conns_changed: Condvar::new(),
                watchdog: Watchdog::default(),
                epoch: coarse_ms(),
                refused: AtomicU64::new(0),
                refusals: std::sync::OnceLock::new(),
            }),
        }
    }
}

/// A server: services and limits, not yet listening.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    config: ServerConfig,
    /// The encoded `GetCapabilities` answer.
    capabilities: Vec<u8>,
    /// The same, on unix connections (shared memory offered when configured).
    capabilities_unix: Vec<u8>,
    /// Service names and their index in `services`: a handful, so a scan (no hashing of the
    /// name on every call).
    routes: Vec<(String, usize)>,
    services: Vec<Arc<dyn Service>>,
    stop: AtomicBool,
    next_id: AtomicU64,
    /// Live connections: touched when one opens or closes, never on the call path.
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    conns_changed: Condvar,
    watchdog: Watchdog,
    /// What connections' activity times count from.
    /// [`coarse_ms`] when built.
    epoch: u64,
    /// Connections closed at accept by the caps.
    refused: AtomicU64,
    /// Where else refusals are counted (the agent's metrics).
    refusals: std::sync::OnceLock<PeerFilter>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// A builder.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The limits in force.
    pub fn config(&self) -> ServerConfig {
        self.shared.config
    }

    /// Counts the connections the caps refuse at accept in `filter`'s refusals too (where
    /// the agent's metrics read them), besides [`ServerHandle::connections_refused`].
    #[must_use]
    pub fn count_refusals_in(self, filter: PeerFilter) -> Server {
        let _ = self.shared.refusals.set(filter);
        self
    }

    /// Starts accepting on `listener` (on a thread of its own) and returns at once.
    pub fn start(self, listener: Listener) -> io::Result<ServerHandle> {
        // A blocked accept must notice a shutdown even where it cannot be woken (vsock).
        set_accept_timeout(&listener, ACCEPT_POLL)?;
        let local_tcp_addr = listener.local_tcp_addr();
        let watchdog = if self.shared.config.handoff_delay.is_zero() {
            None
        } else {
            let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
            rx.set_nonblocking(true)?;
            tx.set_nonblocking(true)?;
            let _ = self.shared.watchdog.wake.set((rx, tx));
            let shared = Arc::clone(&self.shared);
            let handle = thread::Builder::new()
                .name("vaccel-rpc-watchdog".into())
                .spawn(move || watchdog_loop(&shared))?;
            let _ = self.shared.watchdog.thread.set(handle.thread().clone());
            Some(handle)
        };
        let listener = Arc::new(listener);
        let accept = {
            let shared = Arc::clone(&self.shared);
            let listener = Arc::clone(&listener);
            thread::Builder::new()
                .name("vaccel-rpc-accept".into())
                .spawn(move || accept_loop(&shared, &listener))?
        };
        Ok(ServerHandle {
            shared: self.shared,
            listener: Some(listener),
            accept: Some(accept),
            watchdog,
            local_tcp_addr,
        })
    }
}

/// A running server. Dropping it shuts it down without waiting for calls in flight.
#[derive(Debug)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    listener: Option<Arc<Listener>>,
    accept: Option<JoinHandle<()>>,
    watchdog: Option<JoinHandle<()>>,
    local_tcp_addr: Option<SocketAddr>,
}

impl ServerHandle {
    /// The bound address of a TCP listener (to learn the port after binding port 0).
    pub fn local_tcp_addr(&self) -> Option<SocketAddr> {
        self.local_tcp_addr
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Connections closed at accept so far because of [`ServerConfig::max_connections`] or
    /// [`ServerConfig::max_connections_per_client`].
    pub fn connections_refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Stops accepting, stops reading new requests, lets the calls in flight finish and write
    /// their responses for up to `deadline`, then closes every connection. Returns whether
    /// everything finished in time. A Unix socket file is removed.
    pub fn shutdown(mut self, deadline: Duration) -> bool {
        self.stop(deadline)
    }

    fn stop(&mut self, deadline: Duration) -> bool {
        let Some(listener) = self.listener.take() else {
            return true;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes a blocked accept at once on TCP and Unix sockets; vsock polls the flag.
        let _ = nix::sys::socket::shutdown(listener.raw_fd(), nix::sys::socket::Shutdown::Both);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Removes the Unix socket file: nobody can connect any more.
        drop(listener);
        let conns: Vec<Arc<Conn>> = lock(&self.shared.conns).values().cloned().collect();
        for conn in &conns {
            conn.shutdown(Shutdown::Read);
        }
        drop(conns);
        let end = Instant::now() + deadline;
        let mut conns = lock(&self.shared.conns);
        while !conns.is_empty() {
            let now = Instant::now();
            if now >= end {
                break;
            }
            conns = self
                .shared
                .conns_changed
                .wait_timeout(conns, end - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let clean = conns.is_empty();
        drop(conns);
        if let Some(watchdog) = self.watchdog.take() {
            self.shared.watchdog.interrupt();
            watchdog.thread().unpark();
            let _ = watchdog.join();
        }
        let conns = lock(&self.shared.conns);
        if !clean {
            log::warn!(
                "{} connection(s) still busy after {deadline:?}; closing them",
                conns.len()
            );
            for conn in conns.values() {
                conn.shutdown(Shutdown::Both);
            }
        }
        clean
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

fn set_accept_timeout(listener: &Listener, timeout: Duration) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
    let tv = timeval(timeout);
    let r = match listener {
        Listener::Tcp(l) => setsockopt(l, ReceiveTimeout, &tv),
        Listener::Unix { listener, .. } => setsockopt(listener, ReceiveTimeout, &tv),
        Listener::Vsock(l) => setsockopt(l, ReceiveTimeout, &tv),
    };
    r.map_err(io::Error::from)
}

fn timeval(d: Duration) -> nix::sys::time::TimeVal {
    use nix::sys::time::TimeValLike;
    nix::sys::time::TimeVal::microseconds(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Sets a connection's socket timeouts (accepted TCP sockets inherit the listener's, which
/// this replaces). A read waits at most the read timeout (so a frame stalls after it), or
/// the idle timeout when there is none; the idle timeout is checked at each wake-up. A write
/// makes no progress for the read timeout at most.
fn set_timeouts(stream: &Stream, config: &ServerConfig) -> io::Result<()> {
    use nix::sys::socket::{
        setsockopt,
        sockopt::{ReceiveTimeout, SendTimeout},
    };
    let tick = if config.read_timeout.is_zero() {
        config.idle_timeout
    } else {
        config.read_timeout
    };
    setsockopt(stream, ReceiveTimeout, &timeval(tick)).map_err(io::Error::from)?;
    setsockopt(stream, SendTimeout, &timeval(config.read_timeout)).map_err(io::Error::from)
}

/// Which connections belong to one client for [`ServerConfig::max_connections_per_client`]:
/// a local process, a VM, a remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientId {
    Pid(i32),
    Cid(u32),
    Ip(std::net::IpAddr),
}

impl ClientId {
    fn of(peer: &Peer) -> ClientId {
        match peer {
            Peer::Unix { pid, .. } => ClientId::Pid(*pid),
            Peer::Vsock { cid } => ClientId::Cid(*cid),
            Peer::Tcp(addr) => ClientId::Ip(addr.ip()),
        }
    }
}

/// Whether a new connection from `peer` fits under the caps; why not otherwise.
fn admit(shared: &Shared, peer: Option<&Peer>) -> Result<(), String> {
    let config = &shared.config;
    let conns = lock(&shared.conns);
    if conns.len() >= config.max_connections {
        return Err(format!(
            "{} connections open, the most allowed (--max-connections)",
            conns.len()
        ));
    }
    let (Some(peer), cap) = (peer, config.max_connections_per_client) else {
        return Ok(());
    };
    let id = ClientId::of(peer);
    let mine = conns
        .values()
        .filter(|c| c.info.peer.as_ref().map(ClientId::of) == Some(id))
        .count();
    if cap > 0 && mine >= cap {
        return Err(format!(
            "{peer} has {mine} connections open, the most one client may \
             (--max-connections-per-client)"
        ));
    }
    Ok(())
}

fn accept_loop(shared: &Arc<Shared>, listener: &Listener) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok(stream) => {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let peer = stream.peer().ok();
                if let Err(why) = admit(shared, peer.as_ref()) {
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    if let Some(filter) = shared.refusals.get() {
                        filter.count_refusal();
                    }
                    log::warn!("Refused a connection: {why}");
                    // Dropping it closes it at once.
                    continue;
                }
                if let Err(e) = open_connection(shared, stream, peer) {
                    log::warn!("Could not set up a new connection: {e}");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                // E.g. out of descriptors: do not spin.
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A connection: the read side (only the thread with the reading duty touches it), the
/// write side, and its thread pool.
struct Conn {
    info: ConnectionInfo,
    read: Mutex<ReadSide>,
    write: Mutex<Stream>,
    /// A third handle to shut the socket down without taking either lock.
    control: Stream,
    pool: Mutex<Pool>,
    /// Followers wait here for the reading duty.
    pool_changed: Condvar,
    /// Per service (same index as `Shared::services`).
    data: Vec<Option<ConnectionData>>,
    /// A large request body given back after its call, for the next large frame (see
    /// `frame::reclaim`): no fresh pages to fault in for every large request.
    spare: Mutex<Option<Vec<u8>>>,
    /// Calls running.
    in_flight: AtomicU64,
    /// When a frame last arrived or an answer last went out ([`Shared::now`]).
    last_active: AtomicU64,
    /// A call of a service succeeded on it.
    served: AtomicBool,
    /// What its open streams are held against besides `max_stream_bytes`.
    budget: Option<Arc<dyn RequestBudget>>,
    /// Descriptors received with its bytes, when it may attach shared memory (a unix
    /// connection of a server offering it); `None` elsewhere.
    fds: Option<Arc<Mutex<FdQueue>>>,
    /// The shared memory attached (extension 6), by region.
    shm: Mutex<Vec<(u32, Attached)>>,
    /// What attached shared memory is held against.
    shm_budget: Option<Arc<dyn RequestBudget>>,
}

/// Shared memory a connection attached, and its charge against the budget (given back when
/// it is replaced or the connection closes; the mapping itself goes with the last call that
/// reads it).
struct Attached {
    map: Arc<SharedMemory>,
    _charge: Charge,
}

/// Descriptors received on a connection and not yet taken by an `AttachSharedMemory`. At most
/// one may wait: more are closed at once, and the next attach is refused.
#[derive(Default)]
struct FdQueue {
    fds: Vec<OwnedFd>,
    overflow: bool,
}

impl FdQueue {
    fn push(&mut self, mut got: Vec<OwnedFd>) {
        if got.is_empty() {
            return;
        }
        if self.fds.len() + got.len() > 1 {
            // Closes them all.
            self.fds.clear();
            self.overflow = true;
        } else {
            self.fds.append(&mut got);
        }
    }

    /// The one descriptor that came for an attach, or why there is none.
    fn take(&mut self) -> Result<OwnedFd, &'static str> {
        if std::mem::take(&mut self.overflow) {
            self.fds.clear();
            return Err("more than one descriptor was passed");
        }
        self.fds
            .pop()
            .ok_or("no descriptor came with the request (SCM_RIGHTS)")
    }
}

/// The read half of a connection: plain reads, or on connections that may attach shared
/// memory `recvmsg`, keeping the descriptors that arrive (closing them when more than one
/// waits).
struct ConnReader {
    stream: Stream,
    fds: Option<Arc<Mutex<FdQueue>>>,
    cmsg: Vec<u8>,
}

impl io::Read for ConnReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (&mut self.stream, &self.fds) {
            (Stream::Unix(s), Some(queue)) => {
                let mut got = Vec::new();
                let n = crate::shm::recv(s.as_fd(), buf, &mut got, &mut self.cmsg)?;
                if !got.is_empty() {
                    lock(queue).push(got);
                }
                Ok(n)
            }
            (stream, _) => stream.read(buf),
        }
    }
}

/// `CLOCK_MONOTONIC_COARSE` in milliseconds (0 if it cannot be read, which Linux does not do).
fn coarse_ms() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE).map_or(0, |t| {
        let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
        let ms = u64::try_from(t.tv_nsec()).unwrap_or(0) / 1_000_000;
        secs.saturating_mul(1000).saturating_add(ms)
    })
}

/// A reply buffer larger than this is not kept for the thread's next call.
const MAX_KEPT_REPLY: usize = 64 << 10;

impl Shared {
    /// Milliseconds since the server was built: connections' activity times, taken twice per
    /// call, from the coarse clock (a read of the kernel's tick, a few ms of resolution, which
    /// read and idle timeouts do not need finer).
    fn now(&self) -> u64 {
        coarse_ms().saturating_sub(self.epoch)
    }
}

/// A connection's threads. Exactly one thread has the reading duty at any time, or the duty
/// waits in `token` for a follower to pick it up.
struct Pool {
    /// Threads serving the connection.
    threads: usize,
    /// Followers waiting on `pool_changed`.
    idle: usize,
    /// The duty holder is running a request and will read again after it; since when. The
    /// watchdog hands the duty to a follower if that takes longer than the hand-off delay and
    /// the connection has input waiting.
    deferred: Option<Instant>,
    /// The duty, handed off and not yet picked up.
    token: bool,
    /// The connection is done: no more reading.
    closed: bool,
}

impl Conn {
    fn shutdown(&self, how: Shutdown) {
        let r = match &self.control {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
            Stream::Vsock(s) => s.shutdown(how),
        };
        if let Err(e) = r {
            log::trace!("connection {}: shutdown: {e}", self.info.id);
        }
    }
}

struct ReadSide {
    reader: FrameReader<ConnReader>,
    streams: HashMap<u32, Pending>,
    /// Bytes the open streams hold ([`ServerConfig::max_stream_bytes`]).
    stream_bytes: u64,
}

impl Pending {
    /// Bytes it holds.
    fn held(&self) -> u64 {
        match self {
            Pending::Chunked { buf, .. } => buf.len() as u64,
            Pending::Messages { bytes, .. } => *bytes,
            Pending::Discard => 0,
        }
    }
}

/// A stream being received.
enum Pending {
    /// A chunked request: `total` bytes announced, `buf` so far.
    Chunked {
        req: grpc::Request,
        total: u64,
        buf: Vec<u8>,
        charge: Charge,
    },
    /// A client stream: one message per DATA frame.
    Messages {
        req: grpc::Request,
        messages: Vec<Bytes>,
        bytes: u64,
        charge: Charge,
    },
    /// Refused (already answered): its remaining DATA frames are dropped.
    Discard,
}

/// A request ready to run.
enum Work {
    /// A unary REQUEST frame, envelope not yet decoded (that happens off the read side),
    /// its bytes held against the connection's budget until the call starts (from then on
    /// the service counts what it keeps: counting both would charge a resource twice).
    Unary {
        stream_id: u32,
        body: Bytes,
        _charge: Charge,
    },
    /// A chunked request, reassembled (`req.payload` holds the message). Boxed, as the
    /// stream's: a small call's `Work` is moved around whole, in registers.
    Assembled {
        stream_id: u32,
        req: Box<grpc::Request>,
    },
    /// A client stream, complete.
    Stream {
        stream_id: u32,
        req: Box<grpc::Request>,
        messages: Vec<Bytes>,
    },
}

fn open_connection(shared: &Arc<Shared>, stream: Stream, peer: Option<Peer>) -> io::Result<()> {
    set_timeouts(&stream, &shared.config)?;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let info = ConnectionInfo { id, peer };
    let read_half = stream.try_clone()?;
    let control = stream.try_clone()?;
    log::debug!(
        "Connection {id} opened ({})",
        peer.map_or_else(|| "unknown peer".to_owned(), |p| p.to_string())
    );
    let data: Vec<Option<ConnectionData>> = shared
        .services
        .iter()
        .map(|s| s.connection_opened(&info))
        .collect();
    let budget = shared
        .services
        .iter()
        .zip(&data)
        .find_map(|(s, d)| s.request_budget(&info, d.as_ref()));
    let offers_shm = matches!(stream, Stream::Unix(_)) && shared.config.max_shared_memory > 0;
    let fds = offers_shm.then(|| Arc::new(Mutex::new(FdQueue::default())));
    let shm_budget = if offers_shm {
        shared
            .services
            .iter()
            .zip(&data)
            .find_map(|(s, d)| s.shared_memory_budget(&info, d.as_ref()))
    } else {
        None
    };
    let conn = Arc::new(Conn {
        info,
        read: Mutex::new(ReadSide {
            reader: FrameReader::new(ConnReader {
                stream: read_half,
                fds: fds.clone(),
                cmsg: Vec::new(),
            }),
            streams: HashMap::new(),
            stream_bytes: 0,
        }),
        write: Mutex::new(stream),
        control,
        pool: Mutex::new(Pool {
            threads: 1,
            idle: 0,
            deferred: None,
            token: false,
            closed: false,
        }),
        pool_changed: Condvar::new(),
        data,
        spare: Mutex::new(None),
        in_flight: AtomicU64::new(0),
        last_active: AtomicU64::new(shared.now()),
        served: AtomicBool::new(false),
        budget,
        fds,
        shm: Mutex::new(Vec::new()),
        shm_budget,
    });
    lock(&shared.conns).insert(id, Arc::clone(&conn));
    let spawned = {
        let shared = Arc::clone(shared);
        let conn = Arc::clone(&conn);
        thread::Builder::new()
            .name(format!("vaccel-rpc-conn-{id}"))
            .spawn(move || serve_connection(&shared, &conn, true))
    };
    if let Err(e) = spawned {
        lock(&conn.pool).threads = 0;
        finish_connection(shared, &conn);
        return Err(e);
    }
    Ok(())
}

/// The body of every thread of a connection: with the reading duty, read until a request is
/// complete, run it, and read again; without it, wait for it.
///
/// The duty is handed to a follower at once when more input is already buffered (pipelined
/// requests); otherwise the reading thread keeps it while it runs the request, and the
/// watchdog hands it over only if the request runs longer than the hand-off delay. So a
/// client making one call at a time costs no thread wake-up besides its own (a futex wake-up
/// per call doubled the latency of a small call on a 2-vCPU VM), while a long call never
/// blocks the calls behind it for more than the delay.
fn serve_connection(shared: &Arc<Shared>, conn: &Arc<Conn>, mut duty: bool) {
    // The thread's reply buffer: a small answer is encoded into what earlier calls left.
    let mut reply = Vec::new();
    loop {
        if !duty {
            if !wait_for_duty(conn) {
                break;
            }
            duty = true;
        }
        let next = {
            let mut side = lock(&conn.read);
            next_work(shared, conn, &mut side).map(|w| (w, side.reader.buffered() > 0))
        };
        let Some((work, more_buffered)) = next else {
            close_pool(conn);
            break;
        };
        {
            let mut pool = lock(&conn.pool);
            if more_buffered || shared.config.handoff_delay.is_zero() {
                hand_off(shared, conn, &mut pool);
                duty = false;
            } else {
                pool.deferred = Some(Instant::now());
            }
        }
        if duty {
            shared.watchdog.arm();
        }
        // The deferral ends just before the answer goes out: once it is out, the client's next
        // request may arrive at any moment, and the watchdog must not take it for a call
        // waiting behind this one.
        let mut kept = duty;
        run(shared, conn, work, &mut reply, || {
            if duty {
                kept = lock(&conn.pool).deferred.take().is_some();
            }
        });
        if reply.capacity() > MAX_KEPT_REPLY {
            reply = Vec::new();
        } else {
            reply.clear();
        }
        if duty && !kept {
            // The watchdog gave the duty to another thread meanwhile.
            duty = false;
        }
    }
    let last = {
        let mut pool = lock(&conn.pool);
        pool.threads -= 1;
        pool.threads == 0
    };
    if last {
        finish_connection(shared, conn);
    }
}

/// Waits until this thread picks up the reading duty (`true`) or the connection is done.
fn wait_for_duty(conn: &Conn) -> bool {
    let mut pool = lock(&conn.pool);
    loop {
        if pool.closed {
            return false;
        }
        if pool.token {
            pool.token = false;
            return true;
        }
        pool.idle += 1;
        pool = conn
            .pool_changed
            .wait(pool)
            .unwrap_or_else(PoisonError::into_inner);
        pool.idle -= 1;
    }
}

fn close_pool(conn: &Conn) {
    let mut pool = lock(&conn.pool);
    pool.closed = true;
    pool.token = false;
    conn.pool_changed.notify_all();
}

/// Gives the reading duty to a waiting follower, or to a new thread when none waits and the
/// pool is not full. When it is full, the duty waits for the first thread to finish its
/// request (back-pressure: the connection is not read meanwhile).
fn hand_off(shared: &Arc<Shared>, conn: &Arc<Conn>, pool: &mut Pool) {
    pool.token = true;
    if pool.idle > 0 {
        conn.pool_changed.notify_one();
        return;
    }
    if pool.threads >= shared.config.threads_per_connection {
        return;
    }
    pool.threads += 1;
    let spawned = {
        let shared = Arc::clone(shared);
        let conn = Arc::clone(conn);
        thread::Builder::new()
            .name(format!("vaccel-rpc-conn-{}", conn.info.id))
            .spawn(move || serve_connection(&shared, &conn, false))
    };
    if let Err(e) = spawned {
        pool.threads -= 1;
        log::warn!(
            "connection {}: could not start another thread ({e}); requests run one at a time",
            conn.info.id
        );
    }
}

/// Hands the reading duty of a connection whose reading thread has been running one request
/// for longer than the hand-off delay to a follower, once more input has arrived on that
/// connection. Sleeps while no request is deferred; while some are, it wakes at their
/// deadlines, then waits in `poll(2)` on the sockets of those past their deadline, so a long
/// call from a client that makes one call at a time costs it about one wake-up, not one per
/// delay.
#[derive(Debug, Default)]
struct Watchdog {
    /// Some hand-off is deferred (or was at the last scan): the watchdog is not parked.
    armed: AtomicBool,
    /// The watchdog waits in `poll` for input only, with no deadline due: a new deferral
    /// must wake it through `wake`.
    waiting_for_input: AtomicBool,
    thread: std::sync::OnceLock<thread::Thread>,
    /// A socket pair (read end, write end) to interrupt the watchdog's `poll`.
    wake: std::sync::OnceLock<(
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    )>,
}

impl Watchdog {
    /// Called after deferring a hand-off: wakes the watchdog if it sleeps for good or waits
    /// for input only. Costs one atomic load while it runs to a deadline.
    fn arm(&self) {
        if !self.armed.load(Ordering::SeqCst) && !self.armed.swap(true, Ordering::SeqCst) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        } else if self.waiting_for_input.load(Ordering::SeqCst)
            && self.waiting_for_input.swap(false, Ordering::SeqCst)
        {
            self.interrupt();
        }
    }

    /// Makes a `poll` of the watchdog return (or the next one, if it is not in one).
    fn interrupt(&self) {
        if let Some((_, tx)) = self.wake.get() {
            // A full socket buffer already holds a wake-up: nothing is lost.
            let _ = io::Write::write(&mut &*tx, &[1]);
        }
    }

    /// Empties the wake-up socket.
    fn drain(&self) {
        if let Some((rx, _)) = self.wake.get() {
            let mut buf = [0u8; 64];
            while matches!(io::Read::read(&mut &*rx, &mut buf), Ok(n) if n > 0) {}
        }
    }
}

/// What one scan of the connections found.
#[derive(Default)]
struct Scan {
    /// Some connection has a deferred hand-off.
    any: bool,
    /// The earliest deadline not yet reached.
    next: Option<Instant>,
    /// Connections past their deadline with no input yet: the watchdog waits on them.
    idle: Vec<Arc<Conn>>,
}

fn watchdog_loop(shared: &Arc<Shared>) {
    let dog = &shared.watchdog;
    let delay = shared.config.handoff_delay;
    // Since when the scans have found nothing deferred.
    let mut quiet_since: Option<Instant> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        if !dog.armed.load(Ordering::SeqCst) {
            thread::park();
            continue;
        }
        let mut scan = watchdog_scan(shared, delay);
        if !scan.any {
            // While calls keep coming, stay awake, scanning once per delay, so that each
            // call's `arm` finds `armed` set and wakes nobody: parking after every empty scan
            // cost a futex wake-up and two context switches per small call (on another vCPU,
            // an inter-processor interrupt). A deferral that starts meanwhile is found by the
            // next scan before its deadline.
            let now = Instant::now();
            if now.saturating_duration_since(*quiet_since.get_or_insert(now)) < WATCHDOG_LINGER {
                if wait_for_input(dog, &[], delay) {
                    dog.drain();
                }
                continue;
            }
            quiet_since = None;
            dog.armed.store(false, Ordering::SeqCst);
            // A hand-off deferred between the scan and the store saw `armed` still set and
            // did not wake us: look once more.
            if watchdog_scan(shared, delay).any {
                dog.armed.store(true, Ordering::SeqCst);
            }
            continue;
        }
        quiet_since = None;
        if scan.next.is_none() {
            dog.waiting_for_input.store(true, Ordering::SeqCst);
            // A hand-off deferred before the store did not interrupt us: look once more.
            scan = watchdog_scan(shared, delay);
            if !scan.any || scan.next.is_some() {
                dog.waiting_for_input.store(false, Ordering::SeqCst);
                continue;
            }
        }
        let timeout = scan
            .next
            .map_or(IDLE_WAIT, |d| d.saturating_duration_since(Instant::now()));
        let woken = wait_for_input(dog, &scan.idle, timeout);
        dog.waiting_for_input.store(false, Ordering::SeqCst);
        if woken {
            dog.drain();
        }
    }
}

/// How long the watchdog keeps scanning once nothing is deferred before it parks (and the next
/// call's `arm` has to wake it).
const WATCHDOG_LINGER: Duration = Duration::from_millis(50);

/// Longest wait for input on the sockets of long calls before the watchdog scans again
/// (a safety net: input, a new deferral and shutdown all end the wait at once).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Waits until one of `conns` (or the wake-up socket) has input, or for `timeout`. Says
/// whether the wake-up socket may hold something to drain (it did, or the wait failed): a
/// wait that timed out, the usual end while calls keep coming, needs no drain.
fn wait_for_input(dog: &Watchdog, conns: &[Arc<Conn>], timeout: Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds: Vec<PollFd<'_>> = conns
        .iter()
        .map(|c| PollFd::new(c.control.as_fd(), PollFlags::POLLIN))
        .collect();
    let wake = dog.wake.get();
    if let Some((rx, _)) = wake {
        fds.push(PollFd::new(rx.as_fd(), PollFlags::POLLIN));
    }
    // Round up: a timeout rounded down to 0 ms would spin until the deadline.
    let ms = timeout.as_micros().div_ceil(1000);
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, timeout) {
        Ok(0) => false,
        Ok(_) => {
            wake.is_some()
                && fds
                    .last()
                    .and_then(PollFd::revents)
                    .is_none_or(|r| !r.is_empty())
        }
        Err(_) => {
            // EINTR or a descriptor gone bad: do not spin on it.
            thread::sleep(Duration::from_millis(1));
            true
        }
    }
}

/// One scan: hands off the duty of connections past their deadline with input waiting.
fn watchdog_scan(shared: &Arc<Shared>, delay: Duration) -> Scan {
    let conns: Vec<Arc<Conn>> = lock(&shared.conns).values().cloned().collect();
    let mut scan = Scan::default();
    for conn in conns {
        let mut pool = lock(&conn.pool);
        let Some(since) = pool.deferred else {
            continue;
        };
        if pool.closed {
            // Nothing more to read: its reading thread just finishes its call.
            continue;
        }
        scan.any = true;
        let deadline = since + delay;
        if Instant::now() < deadline {
            scan.next = Some(scan.next.map_or(deadline, |n| n.min(deadline)));
        } else if input_waiting(&conn.control) {
            pool.deferred = None;
            hand_off(shared, &conn, &mut pool);
        } else {
            drop(pool);
            scan.idle.push(conn);
        }
    }
    scan
}

/// Whether `stream` has something to read (data, end of stream or an error) without blocking.
/// The read side may be mid-frame with the rest not yet sent: that counts too, and the
/// follower then waits for it, as the duty holder would have after its call. When the check
/// itself fails, the answer is yes: a needless hand-off costs a thread wake-up, a missed one
/// would hold the calls behind a long one until it ends.
fn input_waiting(stream: &Stream) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
    // The count of descriptors with events: ours is ready (readable, hung up or in error).
    !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

/// The last thread of a closed connection: tell the services and forget it.
fn finish_connection(shared: &Shared, conn: &Conn) {
    conn.shutdown(Shutdown::Both);
    // Every call has finished: the mapping goes now, and its bytes back to the budget
    // (before the services hear of the close, so what they report is consistent).
    let attached = std::mem::take(&mut *lock(&conn.shm));
    for (region, attached) in attached {
        log::debug!(
            "connection {}: released {} bytes of shared memory (region {region})",
            conn.info.id,
            attached.map.len()
        );
    }
    for (svc, data) in shared.services.iter().zip(&conn.data) {
        let data = data.clone();
        if catch_unwind(AssertUnwindSafe(|| svc.connection_closed(&conn.info, data))).is_err() {
            log::error!("connection {}: close hook panicked", conn.info.id);
        }
    }
    lock(&shared.conns).remove(&conn.info.id);
    shared.conns_changed.notify_all();
    log::debug!("Connection {} closed", conn.info.id);
}

/// Reads frames until one completes a request. `None`: the connection is done (EOF, transport
/// error, malformed framing or an oversized frame).
fn next_work(shared: &Shared, conn: &Conn, side: &mut ReadSide) -> Option<Work> {
    loop {
        let mut spare = lock(&conn.spare).take();
        // A large body is held against the connection's budget as it arrives, until its call
        // starts; a refused one is read and dropped, and its stream answered. (The budget is
        // taken only for a large body: small calls pay nothing for it.)
        let mut charge = Charge::new(None);
        let mut refusal = None;
        let read =
            side.reader
                .next_frame_admitted(
                    shared.config.max_frame_size,
                    &mut spare,
                    &mut |n| match charge.add_to(conn.budget.as_ref(), n) {
                        Ok(()) => true,
                        Err(st) => {
                            refusal = Some(st);
                            false
                        }
                    },
                );
        if spare.is_some() {
            *lock(&conn.spare) = spare;
        }
        let frame = match read {
            Ok(frame) => frame,
            Err(ReadError::Refused { header, length }) => {
                drop(charge);
                log::debug!(
                    "connection {}: a frame of {length} bytes over the budget, dropped",
                    conn.info.id
                );
                let st = refusal.unwrap_or_else(|| out_of_memory(length as u64));
                send_status(conn, header.stream_id, &st);
                if let Some(pending) = side.streams.get_mut(&header.stream_id) {
                    side.stream_bytes = side.stream_bytes.saturating_sub(pending.held());
                    *pending = Pending::Discard;
                }
                continue;
            }
            Err(ReadError::Idle) => {
                if idle_too_long(shared, conn, side) {
                    return None;
                }
                continue;
            }
            Err(ReadError::Stalled { received }) => {
                log::warn!(
                    "connection {}: a frame stalled after {received} bytes for {:?} \
                     (--read-timeout); closing it",
                    conn.info.id,
                    shared.config.read_timeout
                );
                return None;
            }
            Err(ReadError::OutOfMemory { header, length }) => {
                log::warn!(
                    "connection {}: no memory for a frame of {length} bytes; closing it",
                    conn.info.id
                );
                send_status(conn, header.stream_id, &out_of_memory(length as u64));
                return None;
            }
            Err(ReadError::Frame(FrameError::Closed)) => return None,
            Err(ReadError::Frame(FrameError::TooLarge {
                header,
                length,
                max,
            })) => {
                log::warn!(
                    "connection {}: frame of {length} bytes over the limit of {max}; closing it",
                    conn.info.id
                );
                let st = status::invalid_argument(format!(
                    "message length {length} exceed maximum message size of {max}"
                ));
                send_status(conn, header.stream_id, &st);
                return None;
            }
            Err(e) => {
                log::debug!("connection {}: {e}", conn.info.id);
                return None;
            }
        };
        conn.last_active.store(shared.now(), Ordering::Relaxed);
        let h = frame.header;
        match h.kind {
            kind::REQUEST if h.flags & flags::REMOTE_OPEN != 0 => {
                if let Some(work) = open_stream(shared, conn, side, h, frame.body) {
                    return Some(work);
                }
            }
            kind::REQUEST => {
                return Some(Work::Unary {
                    stream_id: h.stream_id,
                    body: frame.body,
                    _charge: charge,
                });
            }
            kind::DATA => {
                // The stream's own charge takes these bytes over.
                drop(charge);
                if let Some(work) = stream_data(shared, conn, side, h, frame.body) {
                    return Some(work);
                }
            }
            other => {
                log::trace!(
                    "connection {}: ignoring frame type {other:#x} on stream {}",
                    conn.info.id,
                    h.stream_id
                );
            }
        }
    }
}

/// A read timed out between frames: whether the connection has been quiet too long and is
/// to be closed (a stream left open without data for the read timeout, or nothing at all for
/// the idle timeout on a connection nothing keeps open).
fn idle_too_long(shared: &Shared, conn: &Conn, side: &ReadSide) -> bool {
    let config = &shared.config;
    let quiet = Duration::from_millis(
        shared
            .now()
            .saturating_sub(conn.last_active.load(Ordering::Relaxed)),
    );
    if !side.streams.is_empty() {
        if !config.read_timeout.is_zero() && quiet >= config.read_timeout {
            log::warn!(
                "connection {}: open stream(s) without data for {quiet:?} (--read-timeout); \
                 closing it",
                conn.info.id
            );
            return true;
        }
        return false;
    }
    if config.idle_timeout.is_zero()
        || quiet < config.idle_timeout
        || conn.in_flight.load(Ordering::SeqCst) > 0
    {
        return false;
    }
    let kept = shared
        .services
        .iter()
        .zip(&conn.data)
        .filter_map(|(svc, data)| svc.keeps_connection(&conn.info, data.as_ref()))
        .reduce(|a, b| a || b)
        .unwrap_or_else(|| conn.served.load(Ordering::Relaxed));
    if kept {
        return false;
    }
    log::info!(
        "connection {}: idle for {quiet:?} with nothing open (--idle-timeout); closing it",
        conn.info.id
    );
    true
}

/// The answer to memory the server could not get, or a memory budget exceeded.
fn out_of_memory(bytes: u64) -> grpc::Status {
    status::status(
        code::RESOURCE_EXHAUSTED,
        format!("no memory for a message of {bytes} bytes"),
        ErrorCode::ENOMEM,
    )
}

/// Refuses envelopes that would cost far more decoded than their size: many metadata
/// entries.
fn check_envelope(body: &[u8]) -> Result<(), grpc::Status> {
    // Small envelopes (every call's) cannot hold more entries than accepted: not walked.
    if message::max_fields(body.len()) <= MAX_METADATA {
        return Ok(());
    }
    match message::count_fields(body, &[5]) {
        Ok(n) if n > MAX_METADATA => Err(status::invalid_argument(format!(
            "{n} metadata entries, more than the {MAX_METADATA} accepted"
        ))),
        // Malformed: the decoder says why.
        _ => Ok(()),
    }
}

/// Refuses a request whose messages would cost far more decoded than their size: more
/// top-level fields than [`ServerConfig::max_message_fields`], or (`Genop`, `GenopStream`)
/// more arguments than [`ServerConfig::max_genop_args`]. Counted on the encoded bytes.
fn check_fields(
    config: &ServerConfig,
    method: &str,
    messages: &[&[u8]],
) -> Result<(), grpc::Status> {
    // Small requests (nearly every call) cannot hold more fields than accepted: not walked.
    let bytes = messages
        .iter()
        .map(|m| m.len())
        .fold(0usize, usize::saturating_add);
    if message::max_fields(bytes) <= config.max_genop_args.min(config.max_message_fields) {
        return Ok(());
    }
    let genop = matches!(method, "Genop" | "GenopStream");
    let mut args = 0usize;
    let mut most = 0usize;
    let tags: &[u32] = if genop { &[2, 3] } else { &[] };
    for m in messages {
        // Malformed messages are left to the service's decoder, which says why.
        let (all, of_args) = message::count_fields_of(m, tags).unwrap_or((0, 0));
        most = most.max(all);
        args = args.saturating_add(of_args);
    }
    if args > config.max_genop_args {
        return Err(status::status(
            code::RESOURCE_EXHAUSTED,
            format!(
                "{args} genop arguments, more than the {} accepted (--max-genop-args)",
                config.max_genop_args
            ),
            ErrorCode::ENOMEM,
        ));
    }
    if most > config.max_message_fields {
        return Err(status::status(
            code::RESOURCE_EXHAUSTED,
            format!(
                "a message of {most} fields, more than the {} accepted",
                config.max_message_fields
            ),
            ErrorCode::ENOMEM,
        ));
    }
    Ok(())
}

/// A request envelope as a call sees it: borrowed from the frame or from a decoded
/// `grpc.Request`.
struct Request<'a> {
    service: &'a str,
    method: &'a str,
    payload: Bytes,
    metadata: Vec<(&'a str, &'a str)>,
}

impl<'a> Request<'a> {
    fn of(req: &'a grpc::Request) -> Request<'a> {
        Request {
            service: &req.service,
            method: &req.method,
            payload: req.payload.clone(),
            metadata: req
                .metadata
                .iter()
                .map(|kv| (kv.key.as_str(), kv.value.as_str()))
                .collect(),
        }
    }

    /// `view` borrows `body`.
    fn of_view(view: message::RequestView<'a>, body: &Bytes) -> Request<'a> {
        Request {
            service: view.service,
            method: view.method,
            payload: body.slice_ref(view.payload),
            metadata: view.metadata,
        }
    }

    fn metadata_value(&self, key: &str) -> Option<&'a str> {
        self.metadata
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, v)| v)
    }
}

fn metadata<'m>(req: &'m grpc::Request, key: &str) -> Option<&'m str> {
    req.metadata
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

/// A REQUEST opening a stream: a chunked request (metadata [`META_CHUNKED`]) or a client
/// stream.
fn open_stream(
    shared: &Shared,
    conn: &Conn,
    side: &mut ReadSide,
    h: frame::Header,
    body: Bytes,
) -> Option<Work> {
    if let Err(st) = check_envelope(&body) {
        send_status(conn, h.stream_id, &st);
        side.streams.insert(h.stream_id, Pending::Discard);
        return None;
    }
    let req = match message::decode_request(body) {
        Ok(req) => req,
        Err(e) => {
            send_status(conn, h.stream_id, &status::invalid_argument(e.to_string()));
            return None;
        }
    };
    if side.streams.contains_key(&h.stream_id) {
        let st = status::invalid_argument(format!("stream {} is already open", h.stream_id));
        send_status(conn, h.stream_id, &st);
        return None;
    }
    let open = side
        .streams
        .values()
        .filter(|p| !matches!(p, Pending::Discard))
        .count();
    if open >= shared.config.max_open_streams {
        let st = status::status(
            code::RESOURCE_EXHAUSTED,
            format!(
                "more than {} streams open on one connection",
                shared.config.max_open_streams
            ),
            ErrorCode::EBUSY,
        );
        send_status(conn, h.stream_id, &st);
        // Remembered to drop its DATA, unless too many refused streams pile up too.
        if side.streams.len() < shared.config.max_open_streams.saturating_mul(4) {
            side.streams.insert(h.stream_id, Pending::Discard);
        }
    } else if let Some(total) = metadata(&req, META_CHUNKED) {
        let max = shared.config.max_message_size;
        match total.trim().parse::<u64>() {
            Ok(total) if total <= max => {
                // Nothing reserved yet: the buffer grows with the data.
                side.streams.insert(
                    h.stream_id,
                    Pending::Chunked {
                        req,
                        total,
                        buf: Vec::new(),
                        charge: Charge::new(conn.budget.as_ref()),
                    },
                );
            }
            Ok(total) => {
                let st = status::invalid_argument(format!(
                    "message length {total} exceed maximum message size of {max}"
                ));
                send_status(conn, h.stream_id, &st);
                side.streams.insert(h.stream_id, Pending::Discard);
            }
            Err(_) => {
                let st = status::invalid_argument(format!(
                    "metadata {META_CHUNKED} is not a byte count: {total:?}"
                ));
                send_status(conn, h.stream_id, &st);
                side.streams.insert(h.stream_id, Pending::Discard);
            }
        }
    } else {
        side.streams.insert(
            h.stream_id,
            Pending::Messages {
                req,
                messages: Vec::new(),
                bytes: 0,
                charge: Charge::new(conn.budget.as_ref()),
            },
        );
    }
    if h.flags & flags::REMOTE_CLOSED != 0 {
        return close_stream(conn, side, h.stream_id);
    }
    None
}

/// A DATA frame: the next piece of an open stream (DATA for unknown streams is dropped).
fn stream_data(
    shared: &Shared,
    conn: &Conn,
    side: &mut ReadSide,
    h: frame::Header,
    body: Bytes,
) -> Option<Work> {
    let ReadSide {
        streams,
        stream_bytes,
        ..
    } = side;
    let Some(pending) = streams.get_mut(&h.stream_id) else {
        log::trace!(
            "connection {}: DATA for unknown stream {}",
            conn.info.id,
            h.stream_id
        );
        return None;
    };
    let len = body.len() as u64;
    let budget = shared.config.max_stream_bytes;
    let over_budget = !matches!(pending, Pending::Discard) && *stream_bytes + len > budget;
    let refused = match pending {
        Pending::Discard => None,
        _ if over_budget => Some(status::status(
            code::RESOURCE_EXHAUSTED,
            format!("the open streams of this connection would hold more than {budget} bytes"),
            ErrorCode::ENOMEM,
        )),
        Pending::Chunked {
            total, buf, charge, ..
        } => {
            if buf.len() as u64 + len > *total {
                Some(status::invalid_argument(format!(
                    "chunked message longer than the {total} bytes announced"
                )))
            } else if let Err(st) = charge.add(len) {
                Some(st)
            } else if grow(buf, body.len(), *total).is_err() {
                Some(out_of_memory(*total))
            } else {
                buf.extend_from_slice(&body);
                *stream_bytes += len;
                None
            }
        }
        Pending::Messages {
            messages,
            bytes,
            charge,
            ..
        } => {
            let max = shared.config.max_message_size;
            if *bytes + len > max {
                Some(status::invalid_argument(format!(
                    "message length {} exceed maximum message size of {max}",
                    *bytes + len
                )))
            } else {
                if h.flags & flags::NO_DATA != 0 {
                    None
                } else if let Err(st) = charge.add(len) {
                    Some(st)
                } else if messages.try_reserve(1).is_err() {
                    Some(out_of_memory(*bytes + len))
                } else {
                    *bytes += len;
                    *stream_bytes += len;
                    messages.push(body);
                    None
                }
            }
        }
    };
    if let Some(st) = refused {
        send_status(conn, h.stream_id, &st);
        *stream_bytes -= pending.held();
        *pending = Pending::Discard;
    }
    if h.flags & flags::REMOTE_CLOSED != 0 {
        return close_stream(conn, side, h.stream_id);
    }
    None
}

/// Makes room in a reassembly buffer for `more` bytes, growing it (fallibly) at most to
/// twice what it holds, or by [`FIRST_REASSEMBLY`], and never past the `total` announced.
fn grow(
    buf: &mut Vec<u8>,
    more: usize,
    total: u64,
) -> Result<(), std::collections::TryReserveError> {
    let need = buf.len().saturating_add(more);
    if need <= buf.capacity() {
        return Ok(());
    }
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    let target = buf
        .len()
        .saturating_mul(2)
        .max(FIRST_REASSEMBLY)
        .min(total)
        .max(need);
    buf.try_reserve_exact(target - buf.len())
}

/// The client closed its side of a stream: the request is complete (or was refused).
fn close_stream(conn: &Conn, side: &mut ReadSide, stream_id: u32) -> Option<Work> {
    let pending = side.streams.remove(&stream_id)?;
    side.stream_bytes = side.stream_bytes.saturating_sub(pending.held());
    match pending {
        Pending::Discard => None,
        Pending::Chunked {
            mut req,
            total,
            buf,
            ..
        } => {
            if buf.len() as u64 != total {
                let st = status::invalid_argument(format!(
                    "chunked message ended after {} of the {total} bytes announced",
                    buf.len()
                ));
                send_status(conn, stream_id, &st);
                return None;
            }
            req.payload = Bytes::from(buf);
            Some(Work::Assembled {
                stream_id,
                req: Box::new(req),
            })
        }
        Pending::Messages { req, messages, .. } => Some(Work::Stream {
            stream_id,
            req: Box::new(req),
            messages,
        }),
    }
}

/// Runs one request and writes its answer (on the thread that read it).
/// Runs one request and answers it; `before_answer` runs once, just before the answer is
/// written.
fn run(
    shared: &Shared,
    conn: &Conn,
    work: Work,
    reply: &mut Vec<u8>,
    before_answer: impl FnOnce(),
) {
    // A large request body goes back to the connection for its next large frame once every
    // slice of it is dropped (after the response is written).
    let mut keep = None;
    conn.in_flight.fetch_add(1, Ordering::SeqCst);
    run_counted(shared, conn, work, &mut keep, reply, before_answer);
    conn.last_active.store(shared.now(), Ordering::Relaxed);
    conn.in_flight.fetch_sub(1, Ordering::SeqCst);
}

fn run_counted(
    shared: &Shared,
    conn: &Conn,
    work: Work,
    keep: &mut Option<Bytes>,
    reply: &mut Vec<u8>,
    before_answer: impl FnOnce(),
) {
    // A unary request's envelope is read in place when it is plainly encoded (no copies of
    // its strings, at most `MAX_METADATA` entries); anything else has its metadata counted,
    // then is decoded by prost into `decoded`.
    let mut decoded = None;
    let (stream_id, body, owned, messages) = match work {
        Work::Unary {
            stream_id,
            body,
            _charge: charge,
        } => {
            // The call starts: from here the service counts what it keeps.
            drop(charge);
            *keep = Some(body.clone());
            (stream_id, body, None, None)
        }
        Work::Assembled { stream_id, req } => (stream_id, Bytes::new(), Some(req), None),
        Work::Stream {
            stream_id,
            req,
            messages,
        } => (stream_id, Bytes::new(), Some(req), Some(messages)),
    };
    let req = match &owned {
        Some(req) => Request::of(req),
        None => match message::decode_request_view(&body) {
            Some(view) => Request::of_view(view, &body),
            None => {
                if let Err(st) = check_envelope(&body) {
                    before_answer();
                    send_status(conn, stream_id, &st);
                    return;
                }
                match message::decode_request(body.clone()) {
                    Ok(req) => Request::of(decoded.insert(req)),
                    Err(e) => {
                        before_answer();
                        send_status(conn, stream_id, &status::invalid_argument(e.to_string()));
                        return;
                    }
                }
            }
        },
    };
    let mut req = req;
    if let Some(region) = req.metadata_value(META_SHARED_MEMORY) {
        match shared_memory_payload(conn, &req, region) {
            Ok(payload) => req.payload = payload,
            Err(st) => {
                before_answer();
                send_status(conn, stream_id, &st);
                return;
            }
        }
    }
    let accept_chunks = req
        .metadata_value(META_ACCEPT_CHUNKS)
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .map(|n| n.max(MIN_ACCEPT_CHUNKS).min(shared.config.max_frame_size));
    let result = catch_unwind(AssertUnwindSafe(|| {
        dispatch(shared, conn, stream_id, &req, messages, reply)
    }))
    .unwrap_or_else(|_| {
        log::error!("/{}/{}: the handler panicked", req.service, req.method);
        Err(status::status(
            code::INTERNAL,
            "the agent failed while running the request",
            ErrorCode::EBACKEND,
        ))
    });
    // The answer is encoded in its own buffer: the request's bytes can go back before it is
    // written, so a follower reading the client's next large request can already reuse them.
    drop(req);
    drop((body, owned, decoded));
    if let Some(body) = keep.take() {
        frame::reclaim(body, &mut lock(&conn.spare));
    }
    if result.is_ok() {
        conn.served.store(true, Ordering::Relaxed);
    }
    before_answer();
    respond(shared, conn, stream_id, result, reply, accept_chunks);
}

fn dispatch(
    shared: &Shared,
    conn: &Conn,
    stream_id: u32,
    req: &Request<'_>,
    messages: Option<Vec<Bytes>>,
    reply: &mut Vec<u8>,
) -> Result<(), grpc::Status> {
    let (service, method) = (req.service, req.method);
    let Some(index) = shared
        .routes
        .iter()
        .find_map(|(name, index)| (name == service).then_some(*index))
    else {
        if service == crate::SERVICE_EXT {
            *reply = extensions(shared, conn, method, &req.payload, messages.is_some())?;
            return Ok(());
        }
        return Err(method_not_found(service, method));
    };
    let Some(svc) = shared.services.get(index) else {
        return Err(method_not_found(service, method));
    };
    match &messages {
        None => check_fields(&shared.config, method, &[&req.payload])?,
        Some(ms) => {
            let parts: Vec<&[u8]> = ms.iter().map(|m| &m[..]).collect();
            check_fields(&shared.config, method, &parts)?;
        }
    }
    let ctx = CallContext {
        connection: &conn.info,
        stream_id,
        service,
        metadata: &req.metadata,
        data: conn.data.get(index).and_then(|d| d.as_deref()),
        shm: conn.fds.as_ref().map(|_| &conn.shm),
    };
    match messages {
        None => svc.call_into(&ctx, method, req.payload.clone(), reply),
        Some(messages) => {
            *reply = svc.call_client_stream(&ctx, method, messages)?;
            Ok(())
        }
    }
}

/// `vaccel.rs.ext.Extensions` (extensions 1 and 6).
fn extensions(
    shared: &Shared,
    conn: &Conn,
    method: &str,
    payload: &Bytes,
    streaming: bool,
) -> Result<Vec<u8>, grpc::Status> {
    match method {
        "GetCapabilities" if !streaming => Ok(if conn.fds.is_some() {
            shared.capabilities_unix.clone()
        } else {
            shared.capabilities.clone()
        }),
        "AttachSharedMemory" if !streaming && conn.fds.is_some() => {
            attach_shared_memory(shared, conn, payload)
        }
        "DetachSharedMemory" if !streaming && conn.fds.is_some() => {
            let req = ext::DetachSharedMemoryRequest::decode(payload.clone())
                .map_err(|e| status::invalid_argument(e.to_string()))?;
            let gone = {
                let mut regions = lock(&conn.shm);
                let at = regions.iter().position(|(r, _)| *r == req.region);
                at.map(|i| regions.swap_remove(i))
            };
            match gone {
                Some(_) => Ok(ext::DetachSharedMemoryResponse {}.encode_to_vec()),
                None => Err(status::status(
                    code::NOT_FOUND,
                    format!("no shared memory is attached as region {}", req.region),
                    ErrorCode::EINVAL,
                )),
            }
        }
        _ => Err(method_not_found(crate::SERVICE_EXT, method)),
    }
}

/// `AttachSharedMemory`: maps the one memfd that came with the request, after
/// [`SharedMemory::attach`]'s checks, holds its size against the budget and replaces what the
/// connection had attached.
fn attach_shared_memory(
    shared: &Shared,
    conn: &Conn,
    payload: &Bytes,
) -> Result<Vec<u8>, grpc::Status> {
    let refused = |why: String| {
        log::debug!("connection {}: shared memory refused: {why}", conn.info.id);
        status::status(
            code::INVALID_ARGUMENT,
            format!("shared memory refused: {why}"),
            ErrorCode::EINVAL,
        )
    };
    // Taken first, whatever happens next: a refused attach leaves no descriptor behind.
    let fd = match &conn.fds {
        Some(queue) => lock(queue).take().map_err(|why| refused(why.to_owned()))?,
        None => return Err(refused("not offered on this connection".to_owned())),
    };
    let req = ext::AttachSharedMemoryRequest::decode(payload.clone())
        .map_err(|e| status::invalid_argument(e.to_string()))?;
    let invalid = |e: ShmError| {
        log::debug!("connection {}: shared memory refused: {e}", conn.info.id);
        status::status(
            code::INVALID_ARGUMENT,
            format!("shared memory refused: {e}"),
            e.code(),
        )
    };
    if req.region >= SHARED_MEMORY_REGIONS {
        return Err(refused(format!(
            "region {} (regions are 0 to {})",
            req.region,
            SHARED_MEMORY_REGIONS - 1
        )));
    }
    let max = shared.config.max_shared_memory;
    let checked = SharedMemory::check(fd, req.size, max).map_err(invalid)?;
    // The old attachment of the region goes back before the new one is charged: a client
    // growing its memory needs room for the new size only. The new one is mapped only once
    // charged: a refused attach leaves the client's memfd as it was.
    let mut regions = lock(&conn.shm);
    if let Some(i) = regions.iter().position(|(r, _)| *r == req.region) {
        drop(regions.swap_remove(i));
    }
    // `max` bounds the connection's regions together.
    let others: u64 = regions.iter().map(|(_, a)| a.map.len() as u64).sum();
    if others.saturating_add(req.size) > max {
        return Err(status::status(
            code::RESOURCE_EXHAUSTED,
            format!(
                "shared memory refused: {} bytes more would hold {} on the connection, above \
                 its {max}",
                req.size,
                others.saturating_add(req.size)
            ),
            ErrorCode::ENOMEM,
        ));
    }
    let mut charge = Charge::new(conn.shm_budget.as_ref());
    charge.add(req.size)?;
    let map = checked.map().map_err(invalid)?;
    log::info!(
        "Attached {} bytes of shared memory as region {} (connection {})",
        req.size,
        req.region,
        conn.info.id
    );
    regions.push((
        req.region,
        Attached {
            map: Arc::new(map),
            _charge: charge,
        },
    ));
    Ok(ext::AttachSharedMemoryResponse {}.encode_to_vec())
}

/// The method message of a request naming a region of the connection's shared memory
/// ([`META_SHARED_MEMORY`] = `<offset>:<length>`): the region's bytes, where they lie.
fn shared_memory_payload(
    conn: &Conn,
    req: &Request<'_>,
    region: &str,
) -> Result<Bytes, grpc::Status> {
    let invalid = |why: String| status::invalid_argument(format!("{META_SHARED_MEMORY}: {why}"));
    if req.service == crate::SERVICE_EXT || !SHARED_MEMORY_METHODS.contains(&req.method) {
        return Err(invalid(format!(
            "method {} cannot take its message from shared memory",
            req.method
        )));
    }
    if !req.payload.is_empty() {
        return Err(invalid(
            "the request carries a payload besides the shared memory region".to_owned(),
        ));
    }
    let (offset, len) = region
        .split_once(':')
        .and_then(|(o, l)| Some((o.trim().parse::<u64>().ok()?, l.trim().parse::<u64>().ok()?)))
        .ok_or_else(|| invalid(format!("'{region}' is not <offset>:<length>")))?;
    let map = attached_region(&conn.shm, 0)
        .ok_or_else(|| invalid("no shared memory is attached".to_owned()))?;
    SharedMemory::region(&map, offset, len).map_err(|e| invalid(e.to_string()))
}

/// The mapping attached as `region`.
fn attached_region(shm: &Mutex<Vec<(u32, Attached)>>, region: u32) -> Option<Arc<SharedMemory>> {
    lock(shm)
        .iter()
        .find(|(r, _)| *r == region)
        .map(|(_, a)| Arc::clone(&a.map))
}

/// The arguments of a `Genop` that lie in argument buffers ([`CallContext::shared_args`]).
#[derive(Debug, Default)]
pub struct SharedArgs {
    /// `(read argument index, bytes)`, as named.
    pub read: Vec<(usize, Bytes)>,
    /// `(write argument index, bytes to write)`, as named.
    pub write: Vec<(usize, RegionMut)>,
}

/// One argument buffer a call names: written or read, the argument, where its bytes lie.
struct Named {
    written: bool,
    arg: usize,
    region: u32,
    offset: u64,
    len: u64,
}

impl Named {
    fn what(&self) -> &'static str {
        if self.written {
            "write argument"
        } else {
            "argument"
        }
    }

    /// Whether the two share bytes, one of them written: written bytes are lent exclusively.
    fn clashes(&self, other: &Named) -> bool {
        (self.written || other.written)
            && self.region == other.region
            && crate::shm::overlaps(self.offset, self.len, other.offset, other.len)
    }
}

/// The argument buffers a call names in [`META_SHARED_ARGS`], in order.
fn shared_args(
    shm: Option<&Mutex<Vec<(u32, Attached)>>>,
    value: &str,
) -> Result<SharedArgs, grpc::Status> {
    let invalid = |why: String| status::invalid_argument(format!("{META_SHARED_ARGS}: {why}"));
    let Some(shm) = shm else {
        return Err(invalid(
            "shared memory is not offered on this connection".to_owned(),
        ));
    };
    let mut named: Vec<Named> = Vec::new();
    let mut out = SharedArgs::default();
    for item in value.split(',') {
        if named.len() == MAX_SHARED_ARGS {
            return Err(invalid(format!("more than {MAX_SHARED_ARGS} arguments")));
        }
        let parsed = item.split_once('=').and_then(|(arg, place)| {
            let mut nums = place.splitn(3, ':').map(|n| n.trim().parse::<u64>().ok());
            let (region, offset, len) = (nums.next()??, nums.next()??, nums.next()??);
            let arg = arg.trim();
            let (written, index) = match arg.strip_prefix('w') {
                Some(index) => (true, index),
                None => (false, arg),
            };
            Some((written, index.parse::<usize>().ok()?, region, offset, len))
        });
        let Some((written, arg, region, offset, len)) = parsed else {
            return Err(invalid(format!(
                "'{item}' is not [w]<argument>=<region>:<offset>:<length>"
            )));
        };
        let attached = u32::try_from(region)
            .ok()
            .filter(|&r| r > 0)
            .and_then(|r| Some((r, attached_region(shm, r)?)));
        let Some((region, map)) = attached else {
            return Err(invalid(format!(
                "no argument buffer is attached as region {region}"
            )));
        };
        let bad = |e: ShmError| invalid(e.to_string());
        let this = Named {
            written,
            arg,
            region,
            offset,
            len,
        };
        if let Some(twice) = named.iter().find(|n| n.written == written && n.arg == arg) {
            return Err(invalid(format!("{} {arg} named twice", twice.what())));
        }
        if written {
            let bytes = SharedMemory::region_mut(&map, offset, len).map_err(bad)?;
            out.write.push((arg, bytes));
        } else {
            let bytes = SharedMemory::region(&map, offset, len).map_err(bad)?;
            out.read.push((arg, bytes));
        }
        if let Some(other) = named.iter().find(|n| n.clashes(&this)) {
            return Err(invalid(format!(
                "{} {arg} shares bytes with {} {} in region {region}, and one of them is written",
                this.what(),
                other.what(),
                other.arg
            )));
        }
        named.push(this);
    }
    Ok(out)
}

/// Writes the answer: one RESPONSE frame, or DATA chunks when the client accepts them and the
/// response is larger than its chunk size.
fn respond(
    shared: &Shared,
    conn: &Conn,
    stream_id: u32,
    result: Result<(), grpc::Status>,
    msg: &[u8],
    accept_chunks: Option<usize>,
) {
    let failed;
    let (head, body) = match result {
        // grpc.Response{status: {} (always present, as upstream), payload: msg}, encoded
        // around the message without copying it.
        Ok(()) => (message::ResponseHead::ok(msg.len()), msg),
        Err(st) => {
            failed = message::encode_response_err(&st);
            (message::ResponseHead::default(), &failed[..])
        }
    };
    let head = head.as_bytes();
    let total = head.len() + body.len();
    if let Some(chunk) = accept_chunks.filter(|&c| total > c) {
        write_chunked(conn, stream_id, &[head, body], chunk);
        return;
    }
    let max = shared.config.max_frame_size;
    if total > max || u32::try_from(total).is_err() {
        let st = status::invalid_argument(format!(
            "message length {total} exceed maximum message size of {max}"
        ));
        send_status(conn, stream_id, &st);
        return;
    }
    write(conn, stream_id, kind::RESPONSE, 0, &[head, body]);
}

/// Sends `parts` (one encoded `grpc.Response`) as DATA frames of at most `chunk` bytes, the last
/// flagged `REMOTE_CLOSED`. The write lock is taken per frame so other responses interleave.
fn write_chunked(conn: &Conn, stream_id: u32, parts: &[&[u8]; 2], chunk: usize) {
    let [a, b] = *parts;
    let total = a.len() + b.len();
    let mut offset = 0;
    while offset < total {
        let end = (offset + chunk).min(total);
        let first = a
            .get(offset.min(a.len())..end.min(a.len()))
            .unwrap_or_default();
        let second = b
            .get(offset.saturating_sub(a.len())..end.saturating_sub(a.len()))
            .unwrap_or_default();
        let flags = if end == total {
            flags::REMOTE_CLOSED
        } else {
            0
        };
        if !write(conn, stream_id, kind::DATA, flags, &[first, second]) {
            return;
        }
        offset = end;
    }
}

fn send_status(conn: &Conn, stream_id: u32, st: &grpc::Status) {
    let body = message::encode_response_err(st);
    write(conn, stream_id, kind::RESPONSE, 0, &[&body]);
}

/// Writes one frame under the write lock; a failed write closes the connection.
fn write(conn: &Conn, stream_id: u32, kind: u8, flags: u8, parts: &[&[u8]]) -> bool {
    let result = {
        let mut w = lock(&conn.write);
        frame::write_frame(&mut *w, stream_id, kind, flags, parts)
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            log::debug!(
                "connection {}: write failed ({e}); closing it",
                conn.info.id
            );
            conn.shutdown(Shutdown::Both);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::addr::Address;
    use crate::frame::Header;

    /// `Echo` returns its payload; `Sleep` sleeps for payload[0] * 10 ms first; `Panic` panics;
    /// `Big` returns payload[0] MiB; streams concatenate their messages.
    struct Echo {
        opened: AtomicUsize,
        closed: AtomicUsize,
    }

    impl Service for Echo {
        fn call(
            &self,
            ctx: &CallContext<'_>,
            method: &str,
            payload: Bytes,
        ) -> Result<Vec<u8>, grpc::Status> {
            assert_eq!(ctx.connection_data::<u64>(), Some(&ctx.connection().id));
            match method {
                "Echo" => Ok(payload.to_vec()),
                "Sleep" => {
                    let n = payload.first().copied().unwrap_or(0);
                    thread::sleep(Duration::from_millis(10 * u64::from(n)));
                    Ok(payload.to_vec())
                }
                "Big" => Ok(vec![7; usize::from(payload[0]) << 20]),
                "Thread" => {
                    // Sleeps `payload[0]` ms, answers which thread ran the call.
                    let n = payload.first().copied().unwrap_or(0);
                    thread::sleep(Duration::from_millis(u64::from(n)));
                    Ok(format!("{:?}", thread::current().id()).into_bytes())
                }
                "Panic" => panic!("boom"),
                _ => Err(method_not_found(ctx.service(), method)),
            }
        }

        fn call_client_stream(
            &self,
            _ctx: &CallContext<'_>,
            _method: &str,
            messages: Vec<Bytes>,
        ) -> Result<Vec<u8>, grpc::Status> {
            Ok(messages.concat())
        }

        fn connection_opened(&self, conn: &ConnectionInfo) -> Option<ConnectionData> {
            self.opened.fetch_add(1, Ordering::SeqCst);
            Some(Arc::new(conn.id))
        }

        fn connection_closed(&self, _conn: &ConnectionInfo, data: Option<ConnectionData>) {
            assert!(data.is_some());
            self.closed.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        addr: Address,
        echo: Arc<Echo>,
        handle: Option<ServerHandle>,
    }

    fn start(max_frame: usize) -> Fixture {
        start_with(max_frame, ext::Capabilities::default())
    }

    /// A server with `config`.
    fn start_config(config: ServerConfig) -> Fixture {
        start_full(config, ext::Capabilities::default())
    }

    /// [`start`], the services advertising `capabilities`.
    fn start_with(max_frame: usize, capabilities: ext::Capabilities) -> Fixture {
        let config = ServerConfig {
            max_frame_size: max_frame,
            ..ServerConfig::default()
        };
        start_full(config, capabilities)
    }

    fn start_full(config: ServerConfig, capabilities: ext::Capabilities) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let addr = Address::Unix(dir.path().join("s.sock"));
        let echo = Arc::new(Echo {
            opened: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
        });
        let handle = Server::builder()
            .config(config)
            .service("t.Echo", echo.clone())
            .service("t.Alias", echo.clone())
            .capabilities(capabilities)
            .build()
            .start(Listener::bind(&addr).unwrap())
            .unwrap();
        Fixture {
            _dir: dir,
            addr,
            echo,
            handle: Some(handle),
        }
    }

    struct Client {
        w: Stream,
        r: FrameReader<Stream>,
    }

    impl Client {
        fn new(addr: &Address) -> Client {
            let s = Stream::connect(addr).unwrap();
            if let Stream::Unix(u) = &s {
                // A broken server fails the test instead of hanging it.
                u.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            }
            Client {
                w: s.try_clone().unwrap(),
                r: FrameReader::new(s),
            }
        }
        fn send(
            &mut self,
            id: u32,
            service: &str,
            method: &str,
            payload: &[u8],
            meta: &[(&str, &str)],
        ) {
            let mut body = Vec::new();
            let req = grpc::Request {
                service: service.into(),
                method: method.into(),
                payload: Bytes::copy_from_slice(payload),
                timeout_nano: 0,
                metadata: meta
                    .iter()
                    .map(|(k, v)| grpc::KeyValue {
                        key: (*k).into(),
                        value: (*v).into(),
                    })
                    .collect(),
            };
            req.encode(&mut body).unwrap();
            frame::write_frame(&mut self.w, id, kind::REQUEST, 0, &[&body]).unwrap();
        }
        fn recv(&mut self) -> (Header, grpc::Response) {
            let f = self.r.read_frame(usize::MAX).unwrap();
            (f.header, message::decode_response(f.body).unwrap())
        }
    }

    #[test]
    fn unary_calls_unknown_names_and_panics() {
        let fx = start(1 << 20);
        let mut c = Client::new(&fx.addr);
        c.send(1, "t.Echo", "Echo", b"hello", &[]);
        let (h, r) = c.recv();
        assert_eq!((h.stream_id, h.kind, h.flags), (1, kind::RESPONSE, 0));
        assert_eq!(r.status.unwrap().code, 0);
        assert_eq!(&r.payload[..], b"hello");
        c.send(3, "t.Alias", "Nope", b"", &[]);
        let (_, r) = c.recv();
        let st = r.status.unwrap();
        assert_eq!(
            (st.code, st.message.as_str()),
            (code::INVALID_ARGUMENT, "/t.Alias/Nope does not exist")
        );
        c.send(5, "t.Other", "Echo", b"", &[]);
        assert_eq!(
            c.recv().1.status.unwrap().message,
            "/t.Other/Echo does not exist"
        );
        c.send(7, "t.Echo", "Panic", b"", &[]);
        assert_eq!(c.recv().1.status.unwrap().code, code::INTERNAL);
        // Still usable after a panic.
        c.send(9, "t.Echo", "Echo", b"x", &[]);
        assert_eq!(&c.recv().1.payload[..], b"x");
        // An aliased service is one service: opened once per connection.
        assert_eq!(fx.echo.opened.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn pipelined_requests_complete_out_of_order() {
        let fx = start(1 << 20);
        let mut c = Client::new(&fx.addr);
        c.send(1, "t.Echo", "Sleep", &[20], &[]);
        c.send(3, "t.Echo", "Sleep", &[0], &[]);
        c.send(5, "t.Echo", "Echo", b"e", &[]);
        let order: Vec<u32> = (0..3).map(|_| c.recv().0.stream_id).collect();
        assert_eq!(order.last(), Some(&1), "{order:?}");
    }

    #[test]
    fn a_call_arriving_during_a_long_one_is_answered_first() {
        // Not pipelined (not in the same read): the watchdog must hand the reading over.
        let fx = start(1 << 20);
        let mut c = Client::new(&fx.addr);
        c.send(1, "t.Echo", "Sleep", &[30], &[]);
        thread::sleep(Duration::from_millis(50));
        c.send(3, "t.Echo", "Echo", b"quick", &[]);
        assert_eq!(c.recv().0.stream_id, 3);
        assert_eq!(c.recv().0.stream_id, 1);
    }

    #[test]
    fn reading_duty_survives_watchdog_handoffs() {
        // Regression: a thread that picked the duty up from the watchdog lost it on its next
        // deferred request, and the connection stopped being read.
        let fx = start(1 << 20);
        let mut c = Client::new(&fx.addr);
        for i in 0..6 {
            // A call arriving during a long one: a hand-off each round.
            c.send(4 * i + 1, "t.Echo", "Sleep", &[3], &[]);
            thread::sleep(Duration::from_millis(5));
            c.send(4 * i + 3, "t.Echo", "Echo", b"x", &[]);
            assert_eq!(c.recv().0.stream_id, 4 * i + 3);
            assert_eq!(c.recv().0.stream_id, 4 * i + 1);
        }
        c.send(99, "t.Echo", "Echo", b"x", &[]);
        assert_eq!(c.recv().0.stream_id, 99);
    }

    #[test]
    fn one_call_at_a_time_stays_on_one_thread() {
        // Calls much longer than the hand-off delay, with nothing behind them: no hand-off,
        // so every call runs on the connection's first thread (warm caches and allocator).
        let fx = start(1 << 20);
        let mut c = Client::new(&fx.addr);
        let threads: Vec<Vec<u8>> = (0..5)
            .map(|i| {
                c.send(2 * i + 1, "t.Echo", "Thread", &[4], &[]);
                let (h, r) = c.recv();
                assert_eq!(h.stream_id, 2 * i + 1);
                r.payload.to_vec()
            })
            .collect();
        assert!(threads.iter().all(|t| t == &threads[0]), "{threads:?}");
    }

    #[test]
    fn immediate_handoff_mode_works_too() {
        let dir = tempfile::tempdir().unwrap();
        let addr = Address::Unix(dir.path().join("s.sock"));
        let echo = Arc::new(Echo {
            opened: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
        });
        let _handle = Server::builder()
            .handoff_delay(Duration::ZERO)
            .threads_per_connection(2)
            .service("t.Echo", echo)
            .build()
            .start(Listener::bind(&addr).unwrap())
            .unwrap();
        let mut c = Client::new(&addr);
        c.send(1, "t.Echo", "Sleep", &[10], &[]);
        c.send(3, "t.Echo", "Sleep", &[1], &[]);
        c.send(5, "t.Echo", "Echo", b"e", &[]);
        let ids: Vec<u32> = (0..3).map(|_| c.recv().0.stream_id).collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[0], 3, "{ids:?}");
    }

    #[test]
    fn oversized_frames_close_only_their_connection() {
        let fx = start(1024);
        let mut bad = Client::new(&fx.addr);
        let h = Header {
            length: 2 << 30,
            stream_id: 1,
            kind: kind::REQUEST,
            flags: 0,
        };
        bad.w.write_all(&h.encode()).unwrap();
        let (rh, r) = bad.recv();
        assert_eq!(rh.stream_id, 1);
        let st = r.status.unwrap();
        assert_eq!(st.code, code::INVALID_ARGUMENT);
        assert_eq!(
            st.message,
            "message length 2147483648 exceed maximum message size of 1024"
        );
        assert!(matches!(
            bad.r.read_frame(usize::MAX),
            Err(FrameError::Closed)
        ));
        let mut good = Client::new(&fx.addr);
        good.send(1, "t.Echo", "Echo", b"ok", &[]);
        assert_eq!(&good.recv().1.payload[..], b"ok");
        // A response over the frame limit is refused unless the client takes chunks.
        good.send(3, "t.Echo", "Big", &[1], &[]);
        assert_eq!(good.recv().1.status.unwrap().code, code::INVALID_ARGUMENT);
    }

    #[test]
    fn malformed_envelopes_and_unknown_frames() {
        let fx = start(1 << 20);
        let mut c = Client::new(&fx.addr);
        frame::write_frame(&mut c.w, 1, kind::REQUEST, 0, &[&[0xff, 0xff, 0xff]]).unwrap();
        let (h, r) = c.recv();
        assert_eq!(h.stream_id, 1);
        assert_eq!(r.status.unwrap().code, code::INVALID_ARGUMENT);
        frame::write_frame(&mut c.w, 3, 0x7f, 0, &[b"junk"]).unwrap();
        frame::write_frame(&mut c.w, 99, kind::DATA, 0, &[b"junk"]).unwrap();
        frame::write_frame(&mut c.w, 5, kind::REQUEST, 0, &[]).unwrap();
        let (h, r) = c.recv();
        assert_eq!(h.stream_id, 5);
        assert_eq!(r.status.unwrap().message, "// does not exist");
    }

    /// Closes stream `id` with an empty DATA frame.
    fn end_stream(c: &mut Client, id: u32) {
        let fl = flags::REMOTE_CLOSED | flags::NO_DATA;
        frame::write_frame(&mut c.w, id, kind::DATA, fl, &[]).unwrap();
    }

    fn open(c: &mut Client, id: u32, method: &str, meta: &[(&str, &str)], fl: u8) {
        let req = grpc::Request {
            service: "t.Echo".into(),
            method: method.into(),
            metadata: meta
                .iter()
                .map(|(k, v)| grpc::KeyValue {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            ..Default::default()
        };
        frame::write_frame(&mut c.w, id, kind::REQUEST, fl, &[&req.encode_to_vec()]).unwrap();
    }

    #[test]
    fn chunked_requests_and_responses() {
        let fx = start(4096);
        let mut c = Client::new(&fx.addr);
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        open(
            &mut c,
            1,
            "Echo",
            &[(META_CHUNKED, "10000"), (META_ACCEPT_CHUNKS, "3000")],
            flags::REMOTE_OPEN,
        );
        for (i, piece) in payload.chunks(4000).enumerate() {
            let last = i == 2;
            let fl = if last { flags::REMOTE_CLOSED } else { 0 };
            frame::write_frame(&mut c.w, 1, kind::DATA, fl, &[piece]).unwrap();
        }
        let mut whole = Vec::new();
        loop {
            let f = c.r.read_frame(usize::MAX).unwrap();
            assert_eq!((f.header.stream_id, f.header.kind), (1, kind::DATA));
            // 3000 is raised to MIN_ACCEPT_CHUNKS, then lowered to the frame limit.
            assert!(f.body.len() <= 4096);
            whole.extend_from_slice(&f.body);
            if f.header.flags & flags::REMOTE_CLOSED != 0 {
                break;
            }
        }
        let r = message::decode_response(Bytes::from(whole)).unwrap();
        assert_eq!(r.status.unwrap().code, 0);
        assert_eq!(&r.payload[..], &payload[..]);

        // Announced too much: refused at once, its DATA dropped, connection still fine.
        open(
            &mut c,
            3,
            "Echo",
            &[(META_CHUNKED, "99999999999")],
            flags::REMOTE_OPEN,
        );
        assert_eq!(c.recv().1.status.unwrap().code, code::INVALID_ARGUMENT);
        frame::write_frame(&mut c.w, 3, kind::DATA, flags::REMOTE_CLOSED, &[b"x"]).unwrap();
        // Ended short.
        open(
            &mut c,
            5,
            "Echo",
            &[(META_CHUNKED, "10")],
            flags::REMOTE_OPEN,
        );
        frame::write_frame(&mut c.w, 5, kind::DATA, flags::REMOTE_CLOSED, &[b"abc"]).unwrap();
        let (h, r) = c.recv();
        assert_eq!(h.stream_id, 5);
        assert_eq!(r.status.unwrap().code, code::INVALID_ARGUMENT);
        // A client stream (upstream's GenopStream shape).
        open(
            &mut c,
            7,
            "Stream",
            &[],
            flags::REMOTE_OPEN | flags::NO_DATA,
        );
        frame::write_frame(&mut c.w, 7, kind::DATA, 0, &[b"ab"]).unwrap();
        frame::write_frame(&mut c.w, 7, kind::DATA, 0, &[b"cd"]).unwrap();
        end_stream(&mut c, 7);
        let (h, r) = c.recv();
        assert_eq!((h.stream_id, h.kind), (7, kind::RESPONSE));
        assert_eq!(&r.payload[..], b"abcd");
    }

    #[test]
    fn capabilities_are_built_in_and_add_what_the_services_implement() {
        let services = ext::Capabilities {
            directory_resources: true,
            genop_ops: vec![0, 16],
            detection_records: true,
            ..Default::default()
        };
        // A server advertises only its own extensions unless told more.
        for told in [ext::Capabilities::default(), services] {
            let fx = start_with(
                4096,
                ext::Capabilities {
                    // The server's own fields are the server's, whatever the services say.
                    version: 99,
                    chunked: false,
                    ..told.clone()
                },
            );
            let mut c = Client::new(&fx.addr);
            c.send(1, crate::SERVICE_EXT, "GetCapabilities", b"", &[]);
            let caps = ext::Capabilities::decode(c.recv().1.payload).unwrap();
            assert_eq!(
                caps,
                ext::Capabilities {
                    version: EXTENSIONS_VERSION,
                    max_frame_size: 4096,
                    max_message_size: DEFAULT_MAX_MESSAGE,
                    chunked: true,
                    ..told
                }
            );
        }
    }

    #[test]
    fn shutdown_lets_calls_finish_and_closes_everything() {
        let mut fx = start(4096);
        let mut c = Client::new(&fx.addr);
        c.send(1, "t.Echo", "Sleep", &[10], &[]);
        // Let the request be read before shutting down.
        thread::sleep(Duration::from_millis(30));
        let handle = fx.handle.take().unwrap();
        assert!(handle.shutdown(Duration::from_secs(5)));
        let (h, r) = c.recv();
        assert_eq!((h.stream_id, r.status.unwrap().code), (1, 0));
        assert!(matches!(
            c.r.read_frame(usize::MAX),
            Err(FrameError::Closed)
        ));
        assert_eq!(fx.echo.closed.load(Ordering::SeqCst), 1);
        let Address::Unix(path) = &fx.addr else {
            unreachable!()
        };
        assert!(!path.exists(), "socket file removed");
    }

    /// Whether the server closed `c` (EOF or reset before any further frame).
    fn closed(c: &mut Client) -> bool {
        matches!(
            c.r.read_frame(usize::MAX),
            Err(FrameError::Closed | FrameError::Io(_))
        )
    }

    /// `st` is a `RESOURCE_EXHAUSTED` refusal carrying `vaccel`.
    fn exhausted(st: &grpc::Status, vaccel: ErrorCode) {
        assert_eq!(st.code, code::RESOURCE_EXHAUSTED, "{st:?}");
        assert_eq!(status::status_to_error(st).code(), vaccel, "{st:?}");
    }

    fn served(addr: &Address) {
        let mut good = Client::new(addr);
        good.send(1, "t.Echo", "Echo", b"ok", &[]);
        assert_eq!(&good.recv().1.payload[..], b"ok");
    }

    #[test]
    fn open_streams_are_capped_per_connection() {
        let fx = start_config(ServerConfig {
            max_open_streams: 3,
            ..ServerConfig::default()
        });
        let mut c = Client::new(&fx.addr);
        for id in [1, 3, 5] {
            open(
                &mut c,
                id,
                "Echo",
                &[(META_CHUNKED, "1000000000")],
                flags::REMOTE_OPEN,
            );
        }
        open(
            &mut c,
            7,
            "Echo",
            &[(META_CHUNKED, "10")],
            flags::REMOTE_OPEN,
        );
        let (h, r) = c.recv();
        assert_eq!(h.stream_id, 7);
        exhausted(&r.status.unwrap(), vaccel_core::ErrorCode::EBUSY);
        served(&fx.addr);
        // Closing one makes room again.
        frame::write_frame(&mut c.w, 1, kind::DATA, flags::REMOTE_CLOSED, &[b"x"]).unwrap();
        assert_eq!(c.recv().0.stream_id, 1);
        let meta = [(META_CHUNKED, "2")];
        open(&mut c, 9, "Echo", &meta, flags::REMOTE_OPEN);
        frame::write_frame(&mut c.w, 9, kind::DATA, flags::REMOTE_CLOSED, &[b"hi"]).unwrap();
        let (h, r) = c.recv();
        assert_eq!((h.stream_id, &r.payload[..]), (9, &b"hi"[..]));
    }

    #[test]
    fn bytes_in_open_streams_are_capped_per_connection() {
        let fx = start_config(ServerConfig {
            max_stream_bytes: 10_000,
            ..ServerConfig::default()
        });
        let mut c = Client::new(&fx.addr);
        open(
            &mut c,
            1,
            "Echo",
            &[(META_CHUNKED, "8000")],
            flags::REMOTE_OPEN,
        );
        open(
            &mut c,
            3,
            "Stream",
            &[],
            flags::REMOTE_OPEN | flags::NO_DATA,
        );
        frame::write_frame(&mut c.w, 1, kind::DATA, 0, &[&[1; 6000]]).unwrap();
        frame::write_frame(&mut c.w, 3, kind::DATA, 0, &[&[2; 3000]]).unwrap();
        // 6000 + 3000 + 2000 > 10000: the stream that goes over is refused.
        frame::write_frame(&mut c.w, 1, kind::DATA, flags::REMOTE_CLOSED, &[&[1; 2000]]).unwrap();
        let (h, r) = c.recv();
        assert_eq!(h.stream_id, 1);
        exhausted(&r.status.unwrap(), vaccel_core::ErrorCode::ENOMEM);
        // Its bytes are released: the other stream completes.
        frame::write_frame(&mut c.w, 3, kind::DATA, 0, &[&[2; 6000]]).unwrap();
        end_stream(&mut c, 3);
        let (h, r) = c.recv();
        assert_eq!((h.stream_id, r.payload.len()), (3, 9000));
    }

    #[test]
    fn genop_arguments_and_fields_are_counted_before_decoding() {
        use crate::proto::vaccel::genop;
        let fx = start_config(ServerConfig {
            max_genop_args: 10,
            max_message_fields: 100,
            ..ServerConfig::default()
        });
        let mut c = Client::new(&fx.addr);
        let req = |n: usize| {
            genop::Request {
                session_id: 1,
                read_args: vec![genop::Arg::default(); n / 2],
                write_args: vec![genop::Arg::default(); n - n / 2],
            }
            .encode_to_vec()
        };
        c.send(1, "t.Echo", "Genop", &req(11), &[]);
        let st = c.recv().1.status.unwrap();
        exhausted(&st, vaccel_core::ErrorCode::ENOMEM);
        assert!(st.message.contains("11 genop arguments"), "{}", st.message);
        // Within the cap: the service gets it (and does not know the method).
        c.send(3, "t.Echo", "Genop", &req(10), &[]);
        assert_eq!(c.recv().1.status.unwrap().code, code::INVALID_ARGUMENT);
        // Across the messages of a stream.
        open(
            &mut c,
            5,
            "GenopStream",
            &[],
            flags::REMOTE_OPEN | flags::NO_DATA,
        );
        frame::write_frame(&mut c.w, 5, kind::DATA, 0, &[&req(6)]).unwrap();
        frame::write_frame(&mut c.w, 5, kind::DATA, flags::REMOTE_CLOSED, &[&req(6)]).unwrap();
        assert_eq!(c.recv().1.status.unwrap().code, code::RESOURCE_EXHAUSTED);
        // Any method: top-level fields.
        c.send(7, "t.Echo", "Echo", &[0x08, 0x01].repeat(101), &[]);
        assert_eq!(c.recv().1.status.unwrap().code, code::RESOURCE_EXHAUSTED);
        c.send(9, "t.Echo", "Echo", &[0x08, 0x01].repeat(100), &[]);
        assert_eq!(c.recv().1.payload.len(), 200);
        // Envelopes with many metadata entries.
        let meta: Vec<(&str, &str)> = vec![("", ""); MAX_METADATA + 1];
        c.send(11, "t.Echo", "Echo", b"x", &meta);
        assert_eq!(c.recv().1.status.unwrap().code, code::INVALID_ARGUMENT);
        c.send(13, "t.Echo", "Echo", b"x", &meta[1..]);
        assert_eq!(c.recv().1.payload, b"x".to_vec());
        served(&fx.addr);
    }

    #[test]
    fn accept_chunks_are_raised_to_the_minimum() {
        let fx = start(4 << 20);
        let mut c = Client::new(&fx.addr);
        // 1 MiB answer, one byte per chunk asked: 64 KiB chunks instead.
        c.send(1, "t.Echo", "Big", &[1], &[(META_ACCEPT_CHUNKS, "1")]);
        let mut frames = 0;
        loop {
            let f = c.r.read_frame(usize::MAX).unwrap();
            assert!(f.body.len() <= MIN_ACCEPT_CHUNKS);
            frames += 1;
            if f.header.flags & flags::REMOTE_CLOSED != 0 {
                break;
            }
        }
        assert_eq!(frames, 17);
    }

    fn quick_timeouts() -> ServerConfig {
        ServerConfig {
            read_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn stalled_frames_and_streams_are_closed() {
        let fx = start_config(quick_timeouts());
        // Half a header.
        let mut half = Client::new(&fx.addr);
        half.w.write_all(&[0, 0, 0]).unwrap();
        // A header announcing more than it sends.
        let mut short = Client::new(&fx.addr);
        let h = Header {
            length: 1 << 20,
            stream_id: 1,
            kind: kind::REQUEST,
            flags: 0,
        };
        short.w.write_all(&h.encode()).unwrap();
        short.w.write_all(&[0; 100]).unwrap();
        // A stream opened and left without data.
        let mut stream = Client::new(&fx.addr);
        open(
            &mut stream,
            1,
            "Echo",
            &[(META_CHUNKED, "10")],
            flags::REMOTE_OPEN,
        );
        served(&fx.addr);
        assert!(closed(&mut half));
        assert!(closed(&mut short));
        assert!(closed(&mut stream));
        served(&fx.addr);
    }

    #[test]
    fn idle_connections_are_closed_unless_they_were_served() {
        let fx = start_config(quick_timeouts());
        let mut idle = Client::new(&fx.addr);
        let mut used = Client::new(&fx.addr);
        used.send(1, "t.Echo", "Echo", b"x", &[]);
        assert_eq!(&used.recv().1.payload[..], b"x");
        assert!(closed(&mut idle));
        // As idle as the other one, and kept.
        used.send(3, "t.Echo", "Echo", b"y", &[]);
        assert_eq!(&used.recv().1.payload[..], b"y");
    }

    #[test]
    fn connections_are_capped_per_client_and_in_all() {
        let fx = start_config(ServerConfig {
            max_connections: 3,
            max_connections_per_client: 2,
            ..ServerConfig::default()
        });
        // One process: one client.
        let mut a = Client::new(&fx.addr);
        let mut b = Client::new(&fx.addr);
        let mut c = Client::new(&fx.addr);
        assert!(closed(&mut c));
        for (cl, id) in [(&mut a, 1), (&mut b, 3)] {
            cl.send(id, "t.Echo", "Echo", b"x", &[]);
            assert_eq!(cl.recv().0.stream_id, id);
        }
        let handle = fx.handle.as_ref().unwrap();
        assert_eq!(handle.connections_refused(), 1);
        // Room again once one closes.
        drop(a);
        let deadline = Instant::now() + Duration::from_secs(30);
        while handle.connection_count() > 1 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        served(&fx.addr);
    }

    #[test]
    fn connections_over_the_total_cap_are_refused() {
        let fx = start_config(ServerConfig {
            max_connections: 1,
            ..ServerConfig::default()
        });
        let mut a = Client::new(&fx.addr);
        a.send(1, "t.Echo", "Echo", b"x", &[]);
        assert_eq!(a.recv().0.stream_id, 1);
        let mut b = Client::new(&fx.addr);
        assert!(closed(&mut b));
        assert_eq!(fx.handle.as_ref().unwrap().connections_refused(), 1);
        // The first one is unaffected.
        a.send(3, "t.Echo", "Echo", b"y", &[]);
        assert_eq!(a.recv().0.stream_id, 3);
    }

    #[test]
    fn the_default_connection_cap_leaves_descriptors_free() {
        assert_eq!(connections_for_fds(1024), 256);
        assert_eq!(connections_for_fds(100), 12);
        assert_eq!(connections_for_fds(0), 1);
        assert!(default_max_connections() >= 1);
    }

    #[test]
    fn at_most_one_descriptor_waits_for_an_attach() {
        let fd = || OwnedFd::from(std::os::unix::net::UnixStream::pair().unwrap().0);
        let mut q = FdQueue::default();
        assert!(q.take().unwrap_err().contains("no descriptor"));
        q.push(vec![fd()]);
        assert!(q.take().is_ok());
        q.push(vec![fd()]);
        q.push(vec![fd()]);
        assert!(q.fds.is_empty(), "closed at once");
        assert!(q.take().unwrap_err().contains("more than one"));
        q.push(vec![fd(), fd()]);
        assert!(q.take().is_err());
        q.push(vec![fd()]);
        assert!(q.take().is_ok(), "usable again after a refusal");
    }

    #[test]
    fn genop_messages_come_from_the_attached_memory_on_unix_only() {
        use crate::shm::{SharedMemory, send_with_fd};
        /// Answers every method with its payload.
        struct Mirror;
        impl Service for Mirror {
            fn call(
                &self,
                _ctx: &CallContext<'_>,
                _method: &str,
                payload: Bytes,
            ) -> Result<Vec<u8>, grpc::Status> {
                Ok(payload.to_vec())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let addr = Address::Unix(dir.path().join("m.sock"));
        let _handle = Server::builder()
            .config(ServerConfig {
                max_shared_memory: 1 << 20,
                ..ServerConfig::default()
            })
            .service("t.Echo", Arc::new(Mirror))
            .build()
            .start(Listener::bind(&addr).unwrap())
            .unwrap();
        let mut c = Client::new(&addr);
        c.send(1, crate::SERVICE_EXT, "GetCapabilities", &[], &[]);
        let caps = ext::Capabilities::decode(c.recv().1.payload).unwrap();
        assert_eq!(caps.shared_memory_max, 1 << 20);
        let (mut map, fd) = SharedMemory::create(64 << 10).unwrap();
        let body = message::encode_request(
            crate::SERVICE_EXT,
            "AttachSharedMemory",
            &ext::AttachSharedMemoryRequest {
                size: 64 << 10,
                region: 0,
            },
            &[],
        );
        let head = Header {
            length: body.len() as u32,
            stream_id: 3,
            kind: kind::REQUEST,
            flags: 0,
        }
        .encode();
        let Stream::Unix(socket) = &c.w else {
            panic!("unix")
        };
        send_with_fd(socket.as_fd(), &[&head, &body], fd.as_fd()).unwrap();
        assert_eq!(c.recv().1.status.unwrap().code, code::OK);
        map.write_parts(&[b"from shared memory"]).unwrap();
        c.send(5, "t.Echo", "Genop", &[], &[(META_SHARED_MEMORY, "5:13")]);
        let (h, r) = c.recv();
        assert_eq!((h.stream_id, &r.payload[..]), (5, &b"shared memory"[..]));
        // Reused: new bytes, same attachment.
        map.write_parts(&[b"again"]).unwrap();
        c.send(7, "t.Echo", "Genop", &[], &[(META_SHARED_MEMORY, "0:5")]);
        assert_eq!(&c.recv().1.payload[..], b"again");
        for (id, method, region, why) in [
            (9, "Echo", "0:5", "cannot take"),
            (11, "Genop", "65530:7", "outside"),
            (13, "Genop", "x", "is not"),
        ] {
            c.send(id, "t.Echo", method, &[], &[(META_SHARED_MEMORY, region)]);
            let st = c.recv().1.status.unwrap();
            assert_eq!(st.code, code::INVALID_ARGUMENT, "{st:?}");
            assert!(st.message.contains(why), "{st:?}");
        }
        drop(c);

        // A server without it: not offered, not attachable.
        let fx = start(1 << 20);
        let mut c = Client::new(&fx.addr);
        c.send(1, crate::SERVICE_EXT, "GetCapabilities", &[], &[]);
        let caps = ext::Capabilities::decode(c.recv().1.payload).unwrap();
        assert_eq!(caps.shared_memory_max, 0);
        c.send(3, crate::SERVICE_EXT, "AttachSharedMemory", &[], &[]);
        assert!(
            c.recv()
                .1
                .status
                .unwrap()
                .message
                .contains("does not exist")
        );
        c.send(5, "t.Echo", "Genop", &[], &[(META_SHARED_MEMORY, "0:1")]);
        assert!(
            c.recv()
                .1
                .status
                .unwrap()
                .message
                .contains("no shared memory")
        );
    }
}
