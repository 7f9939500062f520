//! The vAccel RPC agent: runs the calls of remote vAccel clients (upstream's `AgentService`,
//! spec §8.6) on this machine's runtime, with sessions and resources owned per client.
//!
//! ```no_run
//! use std::sync::Arc;
//! use vaccel_agent::Agent;
//! use vaccel_rpc::server::ServerConfig;
//! use vaccel_rpc::transport::Listener;
//!
//! let rt = vaccel::builder()
//!     .config(vaccel::Config::default().with_plugins("noop"))
//!     .build()?;
//! let listener = Listener::bind(&"unix:///tmp/vaccel.sock".parse()?)?;
//! let handle = Arc::new(Agent::new(rt)).server(ServerConfig::default()).start(listener)?;
//! // ... until a signal:
//! handle.shutdown(std::time::Duration::from_secs(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod client;
mod convert;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod options;
pub mod policy;
pub mod probe;
pub mod quota;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use vaccel::{
    ErrorCode, OpType, Resource, ResourceType, Runtime, Session, TfLiteDataType, TfLiteTensor,
    TorchDataType, TorchTensor,
};
use vaccel::{TfDataType, TfTensor};
use vaccel_rpc::message::{self, GenopArgView};
use vaccel_rpc::proto::grpc;
use vaccel_rpc::proto::vaccel as pv;
use vaccel_rpc::proto::vaccel::rs::ext;
use vaccel_rpc::proto::vaccel::{
    genop as pg, image, profiling as pp, resource as pr, session as ps, tf, tflite, torch,
};
use vaccel_rpc::server::{
    CallContext, ConnectionData, ConnectionInfo, META_DIRECTORY, RequestBudget, Server,
    ServerConfig, Service, method_not_found,
};
use vaccel_rpc::status::{self, code};
use vaccel_rpc::transport::PeerFilter;

use crate::client::{
    AgentSession, Client, ClientKey, GENOP_READ_ARGS, GENOP_RESP_WRITE_ARGS, GENOP_SESS_GENOP,
    GENOP_WRITE_ARGS,
};

/// The profiler component name upstream's agent reports.
pub const COMPONENT: &str = "vaccel-rpc-agent";

// Log targets: upstream's (the agent binary's modules), so lines read the same.
pub(crate) const T_SESSION: &str = "vaccel_rpc_agent::session";
pub(crate) const T_RESOURCE: &str = "vaccel_rpc_agent::resource";
pub(crate) const T_CLIENT: &str = "vaccel_rpc_agent::client";
const T_GENOP: &str = "vaccel_rpc_agent::ops::genop";
const T_IMAGE: &str = "vaccel_rpc_agent::ops::image";
const T_TF: &str = "vaccel_rpc_agent::ops::tensorflow";
const T_TFLITE: &str = "vaccel_rpc_agent::ops::tensorflow_lite";
const T_TORCH: &str = "vaccel_rpc_agent::ops::torch";
const T_PROFILING: &str = "vaccel_rpc_agent::profiling";

/// Size of the text buffers of `ImageClassification` (upstream's).
pub const IMAGE_TAGS_LEN: usize = 1024;

/// The ops our `Genop` runs and upstream's refuses (NOOP: EINVAL; the model ops: ENOTSUP).
const GENOP_EXTRA_OPS: &[OpType] = &[
    OpType::Noop,
    OpType::TfModelLoad,
    OpType::TfModelUnload,
    OpType::TfModelRun,
    OpType::TfliteModelLoad,
    OpType::TfliteModelUnload,
    OpType::TfliteModelRun,
    OpType::TorchModelLoad,
    OpType::TorchModelRun,
    OpType::TorchSgemm,
];

/// Upstream's answer to an id ≤ 0 ("Invalid argument: Invalid ID: 0", `INTERNAL`), with the
/// vAccel code in the detail so clients get `EINVAL` rather than a generic error.
pub(crate) fn invalid_id(raw: i64) -> grpc::Status {
    status::status(
        code::INTERNAL,
        format!("Invalid argument: Invalid ID: {raw}"),
        ErrorCode::EINVAL,
    )
}

/// What `CreateSession` answers when the runtime has no plugin (upstream: "FFI error: 95").
const NO_PLUGIN: &str = "no plugin loaded: the agent was started without vAccel plugins \
     (set plugins= in --vaccel-config, or VACCEL_PLUGINS)";

/// An error and its sources, `: `-joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn failed(e: &vaccel::Error) -> grpc::Status {
    status::error_status(e)
}

fn decode<M: Message + Default>(payload: Bytes) -> Result<M, grpc::Status> {
    M::decode(payload)
        .map_err(|e| status::invalid_argument(format!("could not decode the request: {e}")))
}

fn encode(msg: &impl Message) -> Vec<u8> {
    msg.encode_to_vec()
}

fn empty() -> Vec<u8> {
    Vec::new()
}

fn tf_status(s: &vaccel::TfStatus) -> pv::Status {
    pv::Status {
        code: u32::from(s.code),
        message: s.message.clone(),
    }
}

/// The agent: a runtime and the clients it serves.
#[derive(Debug)]
pub struct Agent {
    rt: Runtime,
    profiling: bool,
    /// Clients by identity, with their number of open connections. Locked when a connection
    /// opens or closes, never on the call path (calls reach their client through the
    /// connection).
    clients: Mutex<HashMap<ClientKey, (Arc<Client>, usize)>>,
    /// Counters for `--metrics-address`; `None` (the default) costs nothing per call.
    metrics: Option<Arc<metrics::Metrics>>,
    /// Vets clients' models before the plugins load them (the agent binary sets it).
    probe: Option<probe::ModelProbe>,
    /// What clients may name by path or URL (nothing by default).
    policy: policy::ResourcePolicy,
    /// The refusals of the listener's peer filter, for the metrics.
    peer_filter: Option<PeerFilter>,
    /// Per-client quotas and the agent-wide byte budget.
    quotas: quota::Quotas,
    /// What all clients hold against the agent-wide budget.
    agent_usage: Arc<quota::Usage>,
    /// Probe limits from [`Agent::with_quotas`], for a probe set before or after it.
    probe_limits: Option<(usize, usize)>,
}

impl Agent {
    /// An agent running calls on `rt`, with the default quotas ([`quota::QuotaArgs`]). The
    /// runtime's id pools grow to [`quota::AGENT_ID_POOL`]: the per-client quotas bind, not
    /// the pools.
    pub fn new(rt: Runtime) -> Agent {
        rt.grow_id_pools(quota::AGENT_ID_POOL, quota::AGENT_ID_POOL);
        let quotas = quota::Quotas::default();
        let mut policy = policy::ResourcePolicy::default();
        policy.set_max_tree_entries(quotas.limit(quota::QuotaKind::FilesPerDirectory));
        Agent {
            profiling: rt.config().profiling_enabled,
            rt,
            clients: Mutex::new(HashMap::new()),
            metrics: None,
            probe: None,
            policy,
            peer_filter: None,
            quotas,
            agent_usage: Arc::new(quota::Usage::default()),
            probe_limits: None,
        }
    }

    /// The same agent with the quotas and probe limits of `args` (see [`quota`]).
    #[must_use]
    pub fn with_quotas(mut self, args: &quota::QuotaArgs) -> Agent {
        self.quotas = quota::Quotas::from(args);
        self.policy
            .set_max_tree_entries(self.quotas.limit(quota::QuotaKind::FilesPerDirectory));
        let (running, queued) = args.probe_limits();
        self.probe_limits = Some((running, queued));
        self.probe = self.probe.map(|p| p.with_limits(running, queued));
        log::info!(
            "Quotas per client: {} sessions, {} resources, {} bytes, {} calls at once, {} files \
             per directory; {} bytes for all clients; {running} model probe(s) at once, {queued} \
             waiting",
            args.max_sessions_per_client,
            args.max_resources_per_client,
            args.max_bytes_per_client,
            args.max_calls_per_client,
            args.max_files_per_directory,
            args.max_agent_bytes,
        );
        self
    }

    /// The quotas in force.
    pub fn quotas(&self) -> &quota::Quotas {
        &self.quotas
    }

    /// What `client`'s bytes in flight (streams, shared memory) are held against: its byte
    /// quota and the agent's budget.
    fn stream_budget(&self, client: &Client) -> quota::StreamBudget {
        quota::StreamBudget {
            client: Arc::clone(&client.usage),
            agent: Arc::clone(&self.agent_usage),
            quotas: self.quotas,
            metrics: self.metrics.clone(),
        }
    }

    /// Counts and answers a quota refusal.
    fn refuse(&self, e: &quota::Exceeded) -> grpc::Status {
        log::debug!(target: T_CLIENT, "Refused: {e}");
        if let Some(m) = &self.metrics {
            m.quota_refused(e.kind);
        }
        e.status()
    }

    /// `n` more of `kind` for client `c`, or the refusal.
    fn take(
        &self,
        hold: &mut quota::Hold,
        c: &Client,
        kind: quota::QuotaKind,
        n: u64,
    ) -> Result<(), grpc::Status> {
        let usage = if kind == quota::QuotaKind::AgentBytes {
            &self.agent_usage
        } else {
            &c.usage
        };
        hold.take(usage, kind, n, self.quotas.limit(kind))
            .map_err(|e| self.refuse(&e))
    }

    /// A call of client `c` in flight, against its quota of concurrent calls.
    fn call_slot<'c>(&self, c: &'c Client) -> Result<quota::Slot<'c>, grpc::Status> {
        let kind = quota::QuotaKind::Calls;
        c.usage
            .slot(kind, self.quotas.limit(kind))
            .map_err(|e| self.refuse(&e))
    }

    /// `n` resource bytes for client `c`, against its quota and the agent's budget.
    fn take_bytes(&self, hold: &mut quota::Hold, c: &Client, n: u64) -> Result<(), grpc::Status> {
        self.take(hold, c, quota::QuotaKind::ClientBytes, n)?;
        self.take(hold, c, quota::QuotaKind::AgentBytes, n)
    }

    /// The same agent, serving host paths and URLs as `policy` allows (by default, clients
    /// send resource data only as blobs).
    #[must_use]
    pub fn with_resource_policy(mut self, policy: policy::ResourcePolicy) -> Agent {
        self.policy = policy;
        self.policy
            .set_max_tree_entries(self.quotas.limit(quota::QuotaKind::FilesPerDirectory));
        self
    }

    /// The same agent, reporting the connections `filter` refuses in its metrics (the filter
    /// itself is the listener's: [`vaccel_rpc::transport::Listener::with_peer_filter`]).
    #[must_use]
    pub fn with_peer_filter(mut self, filter: PeerFilter) -> Agent {
        self.peer_filter = Some(filter);
        self
    }

    /// The same agent, vetting every model a client registers in a probe process before
    /// its plugins load it (see [`probe`]).
    #[must_use]
    pub fn with_model_probe(mut self, probe: probe::ModelProbe) -> Agent {
        self.probe = Some(match self.probe_limits {
            Some((running, queued)) => probe.with_limits(running, queued),
            None => probe,
        });
        self
    }

    /// The same agent, counting requests, errors, bytes, latencies and connections for
    /// [`Agent::metrics_text`].
    #[must_use]
    pub fn with_metrics(mut self) -> Agent {
        self.metrics = Some(Arc::new(metrics::Metrics::default()));
        self
    }

    /// The Prometheus exposition text of the agent's metrics, when they are on.
    pub fn metrics_text(&self) -> Option<String> {
        let m = self.metrics.as_ref()?;
        let clients = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        Some(
            m.render(&metrics::Gauges {
                sessions: self.rt.session_count(),
                resources: self.rt.resource_count(),
                clients,
                refused_connections: self.peer_filter.as_ref().map_or(0, PeerFilter::refused),
                probes: self
                    .probe
                    .as_ref()
                    .map(probe::ModelProbe::stats)
                    .unwrap_or_default(),
            }),
        )
    }

    /// The runtime calls run on.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// The extensions the agent implements beyond upstream's `AgentService`, advertised by
    /// `GetCapabilities` (see `docs/wire.md`): directory trees, `Genop` for the ops upstream's
    /// refuses (NOOP and the TensorFlow, TensorFlow Lite and Torch ops, which the runtime's
    /// genop unpacks), and detection records.
    pub fn capabilities() -> ext::Capabilities {
        ext::Capabilities {
            directory_resources: true,
            genop_ops: GENOP_EXTRA_OPS
                .iter()
                .map(|op| u32::from(op.value()))
                .collect(),
            detection_records: true,
            ..Default::default()
        }
    }

    /// A server with the agent under both upstream service names (sync and async builds).
    pub fn server(self: Arc<Self>, config: ServerConfig) -> Server {
        Server::builder()
            .config(config)
            .capabilities(Agent::capabilities())
            .service(vaccel_rpc::SERVICE, self.clone())
            .service(vaccel_rpc::SERVICE_ASYNC, self)
            .build()
    }

    fn create_session(&self, c: &Client, req: ps::CreateRequest) -> Result<Vec<u8>, grpc::Status> {
        let mut hold = quota::Hold::none();
        self.take(&mut hold, c, quota::QuotaKind::Sessions, 1)?;
        let sess = Session::new(&self.rt, req.flags).map_err(|e| {
            if self.rt.plugins().is_empty() {
                return status::status(code::INTERNAL, NO_PLUGIN, ErrorCode::ENOTSUP);
            }
            failed(&e)
        })?;
        let id = sess.id();
        c.add_session(sess, self.profiling, hold);
        log::info!(target: T_SESSION, "Created session {id}");
        Ok(encode(&ps::CreateResponse { session_id: id }))
    }

    fn update_session(c: &Client, req: ps::UpdateRequest) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        // As upstream's agent: the hint is recorded; the plugin the session was created with
        // stays.
        log::info!(
            target: T_SESSION,
            "Updating hint {} for session {}",
            req.flags,
            s.sess.id()
        );
        s.sess.set_hint(req.flags);
        Ok(empty())
    }

    fn destroy_session(c: &Client, req: ps::DestroyRequest) -> Result<Vec<u8>, grpc::Status> {
        let s = c.remove_session(req.session_id)?;
        let id = s.sess.id();
        drop(s);
        log::info!(target: T_SESSION, "Destroyed session {id}");
        Ok(empty())
    }

    fn register_resource(
        &self,
        ctx: &CallContext<'_>,
        c: &Client,
        req: pr::RegisterRequest,
    ) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        if req.resource_id < 0 {
            return Err(invalid_id(req.resource_id));
        }
        if req.resource_id > 0 {
            // An existing resource of this client, registered with another of its sessions.
            let res = c.resource(req.resource_id, "Unknown resource")?;
            log::info!(
                target: T_RESOURCE,
                "Registering resource {} with session {}",
                res.id(),
                s.sess.id()
            );
            s.sess.register(&res).map_err(|e| failed(&e))?;
            return Ok(encode(&pr::RegisterResponse {
                resource_id: res.id(),
            }));
        }
        log::info!(target: T_RESOURCE, "Creating new resource");
        let kind = u32::try_from(req.resource_type)
            .ok()
            .and_then(ResourceType::from_value)
            .ok_or_else(|| {
                status::invalid_argument(format!("Unknown resource type {}", req.resource_type))
            })?;
        // Quotas first, on what the request declares: nothing is allocated for a refused one.
        let mut hold = quota::Hold::none();
        self.quotas
            .check_files(req.blobs.len())
            .map_err(|e| self.refuse(&e))?;
        self.take(&mut hold, c, quota::QuotaKind::Resources, 1)?;
        let declared = req
            .blobs
            .iter()
            .map(|b| b.data.len() as u64)
            .fold(0u64, u64::saturating_add);
        self.take_bytes(&mut hold, c, declared)?;
        let res = if !req.blobs.is_empty() {
            let as_directory = ctx.metadata_value(META_DIRECTORY) == Some("1");
            let mut files = Vec::with_capacity(req.blobs.len());
            for (i, b) in req.blobs.into_iter().enumerate() {
                if b.data.len() <= u32::MAX as usize && b.size as usize != b.data.len() {
                    return Err(status::invalid_argument(format!(
                        "Conversion failed: blob {i} has size {} but {} bytes",
                        b.size,
                        b.data.len()
                    )));
                }
                files.push((b.name, b.data));
            }
            // Names are sanitised there: nothing is written outside the resource directory.
            Resource::from_named_buffers(&self.rt, files, kind, as_directory)
        } else if !req.paths.is_empty() {
            self.resource_from_paths(c, &mut hold, &req.paths, kind)?
        } else {
            return Err(status::invalid_argument("No paths or blobs provided"));
        }
        .map_err(|e| failed(&e))?;
        log::info!(
            target: T_RESOURCE,
            "Registering resource {} with session {}",
            res.id(),
            s.sess.id()
        );
        // On failure the resource is dropped here, which releases it.
        s.sess.register(&res).map_err(|e| failed(&e))?;
        if kind == ResourceType::Model
            && let Some(probe) = &self.probe
            && let Err(why) = probe.vet(&self.rt, &res)
        {
            // Registered so that its files exist for the probe; no plugin has loaded it.
            if let Err(e) = s.sess.unregister(&res) {
                log::warn!(target: T_RESOURCE, "Unregistering rejected resource {}: {e}", res.id());
            }
            log::warn!(target: T_RESOURCE, "Resource {}: {why}", res.id());
            return Err(match why {
                probe::VetError::Busy { .. } => {
                    status::status(code::RESOURCE_EXHAUSTED, why.to_string(), ErrorCode::EBUSY)
                }
                probe::VetError::Rejected(_) | probe::VetError::Read(_) => {
                    status::invalid_argument(why.to_string())
                }
            });
        }
        let id = res.id();
        c.add_resource(res, hold);
        Ok(encode(&pr::RegisterResponse { resource_id: id }))
    }

    /// A resource from a client's host paths or URLs, as the operator's policy allows: checked
    /// before any file is opened or any URL fetched.
    fn resource_from_paths(
        &self,
        c: &Client,
        hold: &mut quota::Hold,
        paths: &[String],
        kind: ResourceType,
    ) -> Result<vaccel::Result<Arc<Resource>>, grpc::Status> {
        let allowed = self.policy.check(paths).map_err(|refusal| {
            log::warn!(target: T_RESOURCE, "Refused: {refusal}");
            if let (policy::Refusal::TreeTooLarge(..), Some(m)) = (&refusal, &self.metrics) {
                m.quota_refused(quota::QuotaKind::FilesPerDirectory);
            }
            status::status(
                code::PERMISSION_DENIED,
                refusal.to_string(),
                ErrorCode::EPERM,
            )
        })?;
        Ok(match allowed {
            policy::Allowed::Local(paths) => Resource::from_paths(&self.rt, &paths, kind),
            policy::Allowed::Urls(urls) => {
                // At most what the client and the agent may still hold, so a download never
                // takes more memory than the quotas allow.
                let room = |kind: quota::QuotaKind, usage: &quota::Usage| {
                    (
                        self.quotas.limit(kind).saturating_sub(usage.held(kind)),
                        kind,
                        usage.held(kind),
                    )
                };
                let client = room(quota::QuotaKind::ClientBytes, &c.usage);
                let agent = room(quota::QuotaKind::AgentBytes, &self.agent_usage);
                let (room, bound, held) = if agent.0 < client.0 { agent } else { client };
                let limit = room.min(self.policy.max_download_bytes());
                let files = self.policy.download_at_most(&urls, limit).map_err(|e| {
                    if limit < self.policy.max_download_bytes()
                        && matches!(e, policy::DownloadError::TooLarge { .. })
                    {
                        return self.refuse(&quota::Exceeded {
                            kind: bound,
                            held,
                            asked: room.saturating_add(1),
                            limit: self.quotas.limit(bound),
                        });
                    }
                    log::warn!(target: T_RESOURCE, "{e}");
                    let (grpc_code, vaccel_code) = match e {
                        policy::DownloadError::TooLarge { .. } => {
                            (code::RESOURCE_EXHAUSTED, ErrorCode::ENOSPC)
                        }
                        _ => (code::INTERNAL, ErrorCode::EREMOTEIO),
                    };
                    status::status(grpc_code, error_chain(&e), vaccel_code)
                })?;
                let bytes = files
                    .iter()
                    .map(|(_, data)| data.len() as u64)
                    .fold(0u64, u64::saturating_add);
                self.take_bytes(hold, c, bytes)?;
                Resource::from_named_buffers(&self.rt, files, kind, false)
            }
        })
    }

    fn unregister_resource(
        c: &Client,
        req: pr::UnregisterRequest,
    ) -> Result<Vec<u8>, grpc::Status> {
        let res = c.resource(req.resource_id, "Unknown resource")?;
        let s = c.session(req.session_id)?;
        log::info!(
            target: T_RESOURCE,
            "Unregistering resource {} from session {}",
            res.id(),
            s.sess.id()
        );
        s.sess.unregister(&res).map_err(|e| failed(&e))?;
        c.release_if_unused(&res);
        Ok(empty())
    }

    fn sync_resource(c: &Client, req: pr::SyncRequest) -> Result<Vec<u8>, grpc::Status> {
        let res = c.resource(req.resource_id, "Unknown resource")?;
        log::info!(target: T_RESOURCE, "Synchronizing resource {}", res.id());
        let mut blobs = Vec::new();
        for blob in res.blobs() {
            // Bytes the client shipped (or the agent downloaded for it): from the file when
            // there is one, since a plugin may have written to it. A file of the agent's own
            // that a client merely named by path is never sent back (upstream answers "Blob has
            // no data" too), or any agent file would be readable through `paths`.
            let data = match (blob.path(), blob.data()) {
                (Some(path), _) if blob.owns_file() => {
                    std::fs::read(path).map(Bytes::from).map_err(|e| {
                        failed(&vaccel::Error::io(format!("read {}", path.display()), e))
                    })?
                }
                (None, Some(data)) => data.clone(),
                _ => {
                    return Err(status::status(
                        code::INTERNAL,
                        "Blob has no data",
                        ErrorCode::EINVAL,
                    ));
                }
            };
            blobs.push(pr::Blob {
                r#type: i32::try_from(blob.kind().value()).unwrap_or(0),
                name: blob.name().to_owned(),
                size: u32::try_from(data.len()).unwrap_or(u32::MAX),
                data,
            });
        }
        Ok(encode(&pr::SyncResponse { blobs }))
    }

    /// Runs a genop; its response goes into `out`, and the outputs of write arguments in the
    /// client's argument buffers into those (`shared`).
    fn genop(
        c: &Client,
        session_id: i64,
        read: &[GenopArgView<'_>],
        write: &[GenopArgView<'_>],
        shared: &mut convert::SharedWrites,
        out: &mut Vec<u8>,
    ) -> Result<(), grpc::Status> {
        let s = c.session(session_id)?;
        logging::info_line(T_GENOP, &s.genop_line);
        // Ids in the arguments are resource ids: only this client's exist for it.
        if let Some(id) = convert::genop_resource_id(read)
            && id > 0
            && c.resource_by_id(id).is_none()
        {
            return Err(status::not_found(format!("Unknown resource {id}")));
        }
        convert::check_shared_writes(write, shared)?;
        run_genop(&s, read, write, shared, out)
    }

    fn genop_stream(
        c: &Client,
        messages: Vec<Bytes>,
        op: &mut Option<u8>,
    ) -> Result<Vec<u8>, grpc::Status> {
        let mut session_id = 0;
        let mut read = Vec::new();
        let mut write = Vec::new();
        for m in messages {
            let part: pg::Request = decode(m)?;
            if part.session_id != 0 {
                session_id = part.session_id;
            }
            read.extend(part.read_args);
            write.extend(part.write_args);
        }
        let (read, write) = (convert::join_parts(read)?, convert::join_parts(write)?);
        let read: Vec<_> = read.iter().map(GenopArgView::of).collect();
        let write: Vec<_> = write.iter().map(GenopArgView::of).collect();
        *op = genop_op(&read);
        let mut out = Vec::new();
        Self::genop(c, session_id, &read, &write, &mut [], &mut out)?;
        Ok(out)
    }

    fn image_classification(c: &Client, req: image::Request) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        log::info!(target: T_IMAGE, "session:{} Image classification", s.sess.id());
        let mut tags = vec![0u8; IMAGE_TAGS_LEN];
        let mut imgname = vec![0u8; IMAGE_TAGS_LEN];
        s.sess
            .image_classify(&req.image, &mut tags, &mut imgname)
            .map_err(|e| failed(&e))?;
        Ok(encode(&image::Response {
            tags: Bytes::from(tags),
        }))
    }

    fn tf_model_load(c: &Client, req: tf::ModelLoadRequest) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        let model = c.resource(req.model_id, "Unknown TensorFlow model")?;
        log::info!(target: T_TF, "session:{} TensorFlow model load", s.sess.id());
        let st = s.sess.tf_model_load(&model).map_err(|e| failed(&e))?;
        Ok(encode(&tf::ModelLoadResponse {
            graph_def: Bytes::new(),
            status: Some(tf_status(&st)),
        }))
    }

    fn tf_model_unload(c: &Client, req: tf::ModelUnloadRequest) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        let model = c.resource(req.model_id, "Unknown TensorFlow model")?;
        log::info!(target: T_TF, "session:{} TensorFlow model unload", s.sess.id());
        let st = s.sess.tf_model_unload(&model).map_err(|e| failed(&e))?;
        Ok(encode(&tf::ModelUnloadResponse {
            status: Some(tf_status(&st)),
        }))
    }

    fn tf_model_run(c: &Client, req: tf::ModelRunRequest) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        let model = c.resource(req.model_id, "Unknown TensorFlow model")?;
        log::info!(target: T_TF, "session:{} TensorFlow model run", s.sess.id());
        let in_nodes = convert::nodes(&req.in_nodes);
        let out_nodes = convert::nodes(&req.out_nodes);
        let inputs = req
            .in_tensors
            .iter()
            .map(|t| convert::tensor::<TfDataType>(t.dims.clone(), t.r#type, &t.data))
            .collect::<Result<Vec<TfTensor<'_>>, _>>()?;
        let out = s
            .sess
            .tf_model_run(
                &model,
                req.run_options.as_deref(),
                &in_nodes,
                &inputs,
                &out_nodes,
            )
            .map_err(|e| failed(&e))?;
        let out_tensors = out
            .outputs
            .into_iter()
            .map(|t| {
                let (data, dims, r#type) = convert::out_parts(t);
                tf::Tensor { data, dims, r#type }
            })
            .collect();
        Ok(encode(&tf::ModelRunResponse {
            out_tensors,
            status: Some(tf_status(&out.status)),
        }))
    }

    fn tflite_model_load(
        c: &Client,
        req: tflite::ModelLoadRequest,
    ) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        let model = c.resource(req.model_id, "Unknown TensorFlow Lite model")?;
        log::info!(target: T_TFLITE, "session:{} TensorFlow Lite model load", s.sess.id());
        s.sess.tflite_model_load(&model).map_err(|e| failed(&e))?;
        Ok(empty())
    }

    fn tflite_model_unload(
        c: &Client,
        req: tflite::ModelUnloadRequest,
    ) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        let model = c.resource(req.model_id, "Unknown TensorFlow Lite model")?;
        log::info!(target: T_TFLITE, "session:{} TensorFlow Lite model unload", s.sess.id());
        s.sess.tflite_model_unload(&model).map_err(|e| failed(&e))?;
        Ok(empty())
    }

    fn tflite_model_run(c: &Client, req: tflite::ModelRunRequest) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        let model = c.resource(req.model_id, "Unknown TensorFlow Lite model")?;
        log::info!(target: T_TFLITE, "session:{} TensorFlow Lite model run", s.sess.id());
        let inputs = req
            .in_tensors
            .iter()
            .map(|t| {
                let dims = t.dims.iter().map(|&d| i64::from(d)).collect();
                convert::tensor::<TfLiteDataType>(dims, t.r#type, &t.data)
            })
            .collect::<Result<Vec<TfLiteTensor<'_>>, _>>()?;
        let nr_out = usize::try_from(req.nr_out_tensors)
            .map_err(|_| status::invalid_argument("nr_out_tensors is too large"))?;
        let out = s
            .sess
            .tflite_model_run(&model, &inputs, nr_out)
            .map_err(|e| failed(&e))?;
        let mut out_tensors = Vec::with_capacity(out.outputs.len());
        for t in out.outputs {
            let (data, dims, r#type) = convert::out_parts(t);
            let dims = dims
                .into_iter()
                .map(i32::try_from)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    failed(&vaccel::Error::backend(
                        "agent",
                        ErrorCode::ERANGE,
                        "an output dimension does not fit in int32",
                    ))
                })?;
            out_tensors.push(tflite::Tensor { data, dims, r#type });
        }
        Ok(encode(&tflite::ModelRunResponse {
            out_tensors,
            status: Some(pv::Status {
                code: u32::from(out.status),
                message: String::new(),
            }),
        }))
    }

    fn torch_model_load(c: &Client, req: torch::ModelLoadRequest) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        let model = c.resource(req.model_id, "Unknown PyTorch model")?;
        log::info!(target: T_TORCH, "session:{} PyTorch model load", s.sess.id());
        s.sess.torch_model_load(&model).map_err(|e| failed(&e))?;
        Ok(empty())
    }

    fn torch_model_run(c: &Client, req: torch::ModelRunRequest) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        let model = c.resource(req.model_id, "Unknown Py model")?;
        log::info!(target: T_TORCH, "session:{} PyTorch model run", s.sess.id());
        let inputs = req
            .in_tensors
            .iter()
            .map(|t| convert::tensor::<TorchDataType>(t.dims.clone(), t.r#type, &t.data))
            .collect::<Result<Vec<TorchTensor<'_>>, _>>()?;
        let nr_out = usize::try_from(req.nr_out_tensors)
            .map_err(|_| status::invalid_argument("nr_out_tensors is too large"))?;
        let out = s
            .sess
            .torch_model_run(&model, req.run_options.as_deref(), &inputs, nr_out)
            .map_err(|e| failed(&e))?;
        let out_tensors = out
            .into_iter()
            .map(|t| {
                let (data, dims, r#type) = convert::out_parts(t);
                torch::Tensor { data, dims, r#type }
            })
            .collect();
        Ok(encode(&torch::ModelRunResponse { out_tensors }))
    }

    fn get_profiler(c: &Client, req: pp::Request) -> Result<Vec<u8>, grpc::Status> {
        let s = c.session(req.session_id)?;
        log::debug!(target: T_PROFILING, "session:{} Get profiler", s.sess.id());
        let profiler = s
            .prof
            .as_ref()
            .map(client::Profiler::to_proto)
            .filter(|p| !p.regions.is_empty());
        Ok(encode(&pp::Response { profiler }))
    }
}

/// The operation of a genop: the first byte of its first read argument.
fn genop_op(read: &[GenopArgView<'_>]) -> Option<u8> {
    read.first().and_then(|a| a.buf.first().copied())
}

/// Runs a genop with the wire's arguments: read arguments borrow the request's bytes; the
/// response (`vaccel.genop.Response`, every write argument back) is encoded into `out` first,
/// with the write arguments' bytes as the client sent them, and the op writes its outputs
/// into it where they lie (one copy of each output buffer in the agent, none after the op).
fn run_genop(
    s: &AgentSession,
    read_meta: &[GenopArgView<'_>],
    write_meta: &[GenopArgView<'_>],
    shared: &mut convert::SharedWrites,
    out: &mut Vec<u8>,
) -> Result<(), grpc::Status> {
    // Held here and filled in place (a few hundred bytes each: not moved around).
    let mut read = convert::Args::new();
    let mut write = convert::Args::new();
    let mut starts = convert::Starts::new();
    s.timed(GENOP_READ_ARGS, || convert::read_args(read_meta, &mut read))?;
    // The regions keep their meaning for profiles: copying the write arguments in, and
    // building the response (now: lending the op its buffers in it).
    s.timed(GENOP_WRITE_ARGS, || {
        convert::encode_write_args(write_meta, shared, out, &mut starts)
    })?;
    s.timed(GENOP_RESP_WRITE_ARGS, || {
        convert::write_args_in(write_meta, out, &starts, shared, &mut write)
    })?;
    s.timed(GENOP_SESS_GENOP, || s.sess.genop(&read, &mut write))
        .map_err(|e| failed(&e))
}

impl Agent {
    /// Counts a finished call when metrics are on.
    fn record(
        &self,
        method: &str,
        op: Option<u8>,
        bytes_in: usize,
        start: Option<Instant>,
        result: Result<usize, ()>,
    ) {
        if let (Some(m), Some(start)) = (&self.metrics, start) {
            m.record(&metrics::Call {
                method: metrics::method_index(method),
                op,
                bytes_in,
                bytes_out: result.unwrap_or(0),
                error: result.is_err(),
                elapsed: start.elapsed(),
            });
        }
    }

    fn dispatch(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        payload: Bytes,
        op: &mut Option<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), grpc::Status> {
        let Some(c) = ctx.connection_data::<Client>() else {
            return Err(status::status(
                code::INTERNAL,
                "connection has no client",
                ErrorCode::EBACKEND,
            ));
        };
        let _call = self.call_slot(c)?;
        *out = match method {
            "CreateSession" => self.create_session(c, decode(payload)?),
            "UpdateSession" => Self::update_session(c, decode(payload)?),
            "DestroySession" => Self::destroy_session(c, decode(payload)?),
            "RegisterResource" => self.register_resource(ctx, c, decode(payload)?),
            "UnregisterResource" => Self::unregister_resource(c, decode(payload)?),
            "SyncResource" => Self::sync_resource(c, decode(payload)?),
            "ImageClassification" => Self::image_classification(c, decode(payload)?),
            "TensorflowModelLoad" => Self::tf_model_load(c, decode(payload)?),
            "TensorflowModelUnload" => Self::tf_model_unload(c, decode(payload)?),
            "TensorflowModelRun" => Self::tf_model_run(c, decode(payload)?),
            "TensorflowLiteModelLoad" => Self::tflite_model_load(c, decode(payload)?),
            "TensorflowLiteModelUnload" => Self::tflite_model_unload(c, decode(payload)?),
            "TensorflowLiteModelRun" => Self::tflite_model_run(c, decode(payload)?),
            "TorchModelLoad" => Self::torch_model_load(c, decode(payload)?),
            "TorchModelRun" => Self::torch_model_run(c, decode(payload)?),
            "Genop" => {
                // Arguments in the client's argument buffers (extension 6), checked to lie
                // within them; held until the call ends.
                let mut shared = ctx.shared_args()?;
                // Clients' plain encoding is read in place; anything else goes to prost.
                let mut req = message::GenopRequestView::default();
                if message::decode_genop_request_into(&payload, &mut req).is_some() {
                    convert::use_shared_args(req.read_args_mut(), &shared.read)?;
                    *op = genop_op(req.read_args());
                    return Self::genop(
                        c,
                        req.session_id,
                        req.read_args(),
                        req.write_args(),
                        &mut shared.write,
                        out,
                    );
                }
                drop(req);
                let req: pg::Request = decode(payload)?;
                let mut read: Vec<_> = req.read_args.iter().map(GenopArgView::of).collect();
                convert::use_shared_args(&mut read, &shared.read)?;
                let write: Vec<_> = req.write_args.iter().map(GenopArgView::of).collect();
                *op = genop_op(&read);
                return Self::genop(c, req.session_id, &read, &write, &mut shared.write, out);
            }
            "GetProfiler" => Self::get_profiler(c, decode(payload)?),
            _ => Err(method_not_found(ctx.service(), method)),
        }?;
        Ok(())
    }
}

impl Service for Agent {
    fn call(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        payload: Bytes,
    ) -> Result<Vec<u8>, grpc::Status> {
        let mut out = Vec::new();
        self.call_into(ctx, method, payload, &mut out)?;
        Ok(out)
    }

    fn call_into(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        payload: Bytes,
        out: &mut Vec<u8>,
    ) -> Result<(), grpc::Status> {
        let start = self.metrics.as_ref().map(|_| Instant::now());
        let bytes_in = payload.len();
        let mut op = None;
        let result = self.dispatch(ctx, method, payload, &mut op, out);
        let sent = result.as_ref().map(|()| out.len()).map_err(|_| ());
        self.record(method, op, bytes_in, start, sent);
        result
    }

    fn call_client_stream(
        &self,
        ctx: &CallContext<'_>,
        method: &str,
        messages: Vec<Bytes>,
    ) -> Result<Vec<u8>, grpc::Status> {
        let Some(c) = ctx.connection_data::<Client>() else {
            return Err(method_not_found(ctx.service(), method));
        };
        let start = self.metrics.as_ref().map(|_| Instant::now());
        let bytes_in = messages.iter().map(Bytes::len).sum();
        let mut op = None;
        let result = match self.call_slot(c) {
            Err(refused) => Err(refused),
            Ok(_call) if method == "GenopStream" => Self::genop_stream(c, messages, &mut op),
            Ok(_) => Err(method_not_found(ctx.service(), method)),
        };
        self.record(
            method,
            op,
            bytes_in,
            start,
            result.as_ref().map(Vec::len).map_err(|_| ()),
        );
        result
    }

    fn connection_opened(&self, conn: &ConnectionInfo) -> Option<ConnectionData> {
        if let Some(m) = &self.metrics {
            m.connection_opened();
        }
        let key = ClientKey::of(conn);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let (client, count) = clients.entry(key).or_insert_with(|| {
            let label = conn
                .peer
                .map_or_else(|| format!("connection {}", conn.id), |p| p.to_string());
            (Arc::new(Client::new(label)), 0)
        });
        *count += 1;
        let data: ConnectionData = client.clone();
        Some(data)
    }

    /// An idle connection of a client that holds no session or resource is closed after
    /// `--idle-timeout`; while the client holds some, the server's rule applies (a connection
    /// that made a successful call stays open, so closing it never releases a client's objects
    /// behind its back). Our rpc plugin reconnects when it needs the agent again.
    fn keeps_connection(
        &self,
        _conn: &ConnectionInfo,
        data: Option<&ConnectionData>,
    ) -> Option<bool> {
        let client = data?.downcast_ref::<Client>()?;
        if client.holds_objects() {
            None
        } else {
            Some(false)
        }
    }

    /// The bytes of a client's open streams count against its byte quota and the agent's
    /// budget while they arrive, like the resources it holds.
    fn request_budget(
        &self,
        _conn: &ConnectionInfo,
        data: Option<&ConnectionData>,
    ) -> Option<Arc<dyn RequestBudget>> {
        let client = data?.downcast_ref::<Client>()?;
        Some(Arc::new(self.stream_budget(client)))
    }

    /// Shared memory a connection attaches counts like the bytes of its streams, and shows in
    /// the metrics.
    fn shared_memory_budget(
        &self,
        _conn: &ConnectionInfo,
        data: Option<&ConnectionData>,
    ) -> Option<Arc<dyn RequestBudget>> {
        let client = data?.downcast_ref::<Client>()?;
        Some(Arc::new(quota::SharedMemoryBudget(
            self.stream_budget(client),
        )))
    }

    fn connection_closed(&self, conn: &ConnectionInfo, _data: Option<ConnectionData>) {
        let key = ClientKey::of(conn);
        let gone = {
            let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            match clients.get_mut(&key) {
                Some((_, count)) if *count > 1 => {
                    *count -= 1;
                    None
                }
                Some(_) => clients.remove(&key).map(|(client, _)| client),
                None => None,
            }
        };
        // Every call of this client has finished (the server calls this after the
        // connection's last call): nothing can use these objects any more.
        if let Some(client) = gone {
            client.release_all();
        }
        // Last: a scrape that sees the connection gone sees what it owned gone too.
        if let Some(m) = &self.metrics {
            m.connection_closed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaccel_rpc::transport::Peer;

    fn agent() -> Agent {
        let rt = vaccel::builder()
            .config(vaccel::Config::default().with_plugins("noop"))
            .skip_logging()
            .build()
            .unwrap();
        Agent::new(rt)
    }

    fn conn(id: u64, peer: Option<Peer>) -> ConnectionInfo {
        ConnectionInfo { id, peer }
    }

    #[test]
    fn clients_are_grouped_by_process_and_released_with_their_last_connection() {
        let a = agent();
        let unix = Some(Peer::Unix {
            pid: 42,
            uid: 0,
            gid: 0,
        });
        let c1 = a.connection_opened(&conn(1, unix)).unwrap();
        let c2 = a.connection_opened(&conn(2, unix)).unwrap();
        assert!(Arc::ptr_eq(&c1, &c2), "same pid, same client");
        let client = c1.downcast_ref::<Client>().unwrap();
        a.create_session(client, ps::CreateRequest { flags: 0 })
            .unwrap();
        assert_eq!(a.runtime().session_count(), 1);
        a.connection_closed(&conn(1, unix), Some(c1.clone()));
        assert_eq!(a.runtime().session_count(), 1, "another connection is open");
        a.connection_closed(&conn(2, unix), Some(c2));
        assert_eq!(a.runtime().session_count(), 0, "released with the last one");

        // pid 0 (unknown namespace) and TCP: one connection each.
        let ns = Some(Peer::Unix {
            pid: 0,
            uid: 0,
            gid: 0,
        });
        let x = a.connection_opened(&conn(3, ns)).unwrap();
        let y = a.connection_opened(&conn(4, ns)).unwrap();
        assert!(!Arc::ptr_eq(&x, &y));
    }

    #[test]
    fn the_agent_sizes_the_id_pools_so_quotas_bind() {
        let a = agent();
        assert_eq!(
            a.runtime().id_pool_sizes(),
            (quota::AGENT_ID_POOL, quota::AGENT_ID_POOL)
        );
        let a = a.with_quotas(&quota::QuotaArgs {
            max_sessions_per_client: 1,
            ..quota::QuotaArgs::default()
        });
        let unix = Some(Peer::Unix {
            pid: 7,
            uid: 0,
            gid: 0,
        });
        let data = a.connection_opened(&conn(1, unix)).unwrap();
        let client = data.downcast_ref::<Client>().unwrap();
        a.create_session(client, ps::CreateRequest { flags: 0 })
            .unwrap();
        let st = a
            .create_session(client, ps::CreateRequest { flags: 0 })
            .unwrap_err();
        assert_eq!(st.code, code::RESOURCE_EXHAUSTED);
        assert_eq!(a.runtime().session_count(), 1, "refused before allocating");
        a.connection_closed(&conn(1, unix), Some(data.clone()));
        assert_eq!(client.usage.held(quota::QuotaKind::Sessions), 0);
    }

    #[test]
    fn split_arguments_are_joined() {
        let part = |n: u32, of: u32, b: &'static [u8]| pg::Arg {
            buf: Bytes::from_static(b),
            size: 4,
            arg_type: pg::ArgType::Buffer as i32,
            parts: of,
            part_no: n,
            ..Default::default()
        };
        let whole = pg::Arg {
            buf: Bytes::from_static(&[3]),
            size: 1,
            arg_type: pg::ArgType::Uint8 as i32,
            ..Default::default()
        };
        let joined =
            convert::join_parts(vec![whole.clone(), part(1, 2, b"ab"), part(2, 2, b"cd")]).unwrap();
        assert_eq!(joined.len(), 2);
        assert_eq!(&joined[1].buf[..], b"abcd");
        assert_eq!(joined[1].size, 4);
        assert!(convert::join_parts(vec![part(2, 2, b"cd")]).is_err());
        assert!(convert::join_parts(vec![part(1, 2, b"ab")]).is_err());
        assert!(convert::join_parts(vec![part(1, 2, b"ab"), whole]).is_err());
    }

    #[test]
    fn ids_below_one_are_refused_like_upstream() {
        let st = invalid_id(0);
        assert_eq!(st.code, code::INTERNAL);
        assert_eq!(st.message, "Invalid argument: Invalid ID: 0");
        assert_eq!(
            status::status_to_error(&st).code(),
            ErrorCode::EINVAL,
            "the code survives"
        );
    }
}
