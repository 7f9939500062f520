//! Per-client quotas and the agent-wide byte budget (docs/security.md, "Quotas and budgets").
//!
//! Every client (docs/wire.md, "Clients and ownership") has its own counters of sessions,
//! resources, bytes held and calls in flight; the agent has one counter of the bytes all
//! clients hold. A request that would take a client past one of its limits, or the agent past
//! its budget, is refused before anything is allocated, with `RESOURCE_EXHAUSTED` and a
//! message naming the quota and the option that raises it. What a client holds is counted by
//! [`Hold`]s that give it back when dropped, so no path forgets to.
//!
//! ```
//! use vaccel_agent::quota::{QuotaKind, Quotas};
//!
//! let quotas = Quotas::default();
//! assert_eq!(quotas.limit(QuotaKind::Sessions), 64);
//! assert_eq!(QuotaKind::ClientBytes.option(), "--max-bytes-per-client");
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use vaccel::ErrorCode;
use vaccel_rpc::proto::grpc;
use vaccel_rpc::status::{self, code};

/// Default `--max-sessions-per-client`.
pub const DEFAULT_SESSIONS_PER_CLIENT: u64 = 64;
/// Default `--max-resources-per-client`.
pub const DEFAULT_RESOURCES_PER_CLIENT: u64 = 256;
/// Default `--max-bytes-per-client`: 1 GiB.
pub const DEFAULT_BYTES_PER_CLIENT: u64 = 1 << 30;
/// Default `--max-agent-bytes`: 4 GiB.
pub const DEFAULT_AGENT_BYTES: u64 = 4 << 30;
/// Default `--max-calls-per-client`.
pub const DEFAULT_CALLS_PER_CLIENT: u64 = 32;
/// Default `--max-files-per-directory`.
pub const DEFAULT_FILES_PER_DIRECTORY: u64 = 4096;
/// Default `--max-queued-probes`.
pub const DEFAULT_QUEUED_PROBES: usize = 32;

/// The size of the agent runtime's id pools (sessions and resources each): far above what the
/// per-client quotas let any realistic number of clients hold, so the quotas bind, not the
/// pools (upstream's pools, 1024 sessions and 2048 resources, are one shared ceiling).
pub const AGENT_ID_POOL: usize = 1 << 20;

/// The agent's quota options (flattened into its command line).
#[derive(Debug, Clone, clap::Args)]
pub struct QuotaArgs {
    /// Most sessions one client may hold at once (a unix process, a vsock guest, a TCP
    /// connection). More are refused (EUSERS).
    #[arg(long = "max-sessions-per-client", value_name = "N", default_value_t = DEFAULT_SESSIONS_PER_CLIENT)]
    pub max_sessions_per_client: u64,

    /// Most resources one client may hold at once. More are refused (EUSERS).
    #[arg(long = "max-resources-per-client", value_name = "N", default_value_t = DEFAULT_RESOURCES_PER_CLIENT)]
    pub max_resources_per_client: u64,

    /// Most bytes of resource data (blobs and downloads, kept in memory and in the run
    /// directory) one client may hold at once. More are refused (ENOMEM).
    #[arg(long = "max-bytes-per-client", value_name = "BYTES", default_value_t = DEFAULT_BYTES_PER_CLIENT)]
    pub max_bytes_per_client: u64,

    /// Most bytes of resource data all clients together may hold. More are refused (ENOMEM).
    #[arg(long = "max-agent-bytes", value_name = "BYTES", default_value_t = DEFAULT_AGENT_BYTES)]
    pub max_agent_bytes: u64,

    /// Most calls one client may have running at once (all its connections together). More
    /// are refused (EUSERS).
    #[arg(long = "max-calls-per-client", value_name = "N", default_value_t = DEFAULT_CALLS_PER_CLIENT)]
    pub max_calls_per_client: u64,

    /// Most files one resource may hold (blobs of a request, entries of an allowed host
    /// directory). More are refused (EPERM).
    #[arg(long = "max-files-per-directory", value_name = "N", default_value_t = DEFAULT_FILES_PER_DIRECTORY)]
    pub max_files_per_directory: u64,

    /// Most model probe processes running at once (default: the number of CPUs). Further
    /// registrations of new models wait in a queue.
    #[arg(long = "max-concurrent-probes", value_name = "N")]
    pub max_concurrent_probes: Option<usize>,

    /// Most registrations waiting for a probe; beyond them registrations of new models are
    /// refused as busy (EBUSY) and may be retried.
    #[arg(long = "max-queued-probes", value_name = "N", default_value_t = DEFAULT_QUEUED_PROBES)]
    pub max_queued_probes: usize,
}

impl Default for QuotaArgs {
    fn default() -> Self {
        QuotaArgs {
            max_sessions_per_client: DEFAULT_SESSIONS_PER_CLIENT,
            max_resources_per_client: DEFAULT_RESOURCES_PER_CLIENT,
            max_bytes_per_client: DEFAULT_BYTES_PER_CLIENT,
            max_agent_bytes: DEFAULT_AGENT_BYTES,
            max_calls_per_client: DEFAULT_CALLS_PER_CLIENT,
            max_files_per_directory: DEFAULT_FILES_PER_DIRECTORY,
            max_concurrent_probes: None,
            max_queued_probes: DEFAULT_QUEUED_PROBES,
        }
    }
}

impl QuotaArgs {
    /// The probe limits: (running at once, waiting).
    pub fn probe_limits(&self) -> (usize, usize) {
        let running = self.max_concurrent_probes.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        (running.max(1), self.max_queued_probes)
    }
}

/// A limit a request can run into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Sessions of one client.
    Sessions,
    /// Resources of one client.
    Resources,
    /// Resource bytes of one client.
    ClientBytes,
    /// Resource bytes of all clients.
    AgentBytes,
    /// Calls in flight of one client.
    Calls,
    /// Files of one resource.
    FilesPerDirectory,
}

impl QuotaKind {
    /// Every kind, in the order of [`QuotaKind::index`].
    pub const ALL: [QuotaKind; 6] = [
        QuotaKind::Sessions,
        QuotaKind::Resources,
        QuotaKind::ClientBytes,
        QuotaKind::AgentBytes,
        QuotaKind::Calls,
        QuotaKind::FilesPerDirectory,
    ];

    /// Its slot in [`QuotaKind::ALL`] (and in the metrics).
    pub fn index(self) -> usize {
        match self {
            QuotaKind::Sessions => 0,
            QuotaKind::Resources => 1,
            QuotaKind::ClientBytes => 2,
            QuotaKind::AgentBytes => 3,
            QuotaKind::Calls => 4,
            QuotaKind::FilesPerDirectory => 5,
        }
    }

    /// Its name in messages and in the metrics' `quota` label.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKind::Sessions => "sessions per client",
            QuotaKind::Resources => "resources per client",
            QuotaKind::ClientBytes => "bytes per client",
            QuotaKind::AgentBytes => "agent bytes",
            QuotaKind::Calls => "calls per client",
            QuotaKind::FilesPerDirectory => "files per directory",
        }
    }

    /// The agent option that sets it.
    pub fn option(self) -> &'static str {
        match self {
            QuotaKind::Sessions => "--max-sessions-per-client",
            QuotaKind::Resources => "--max-resources-per-client",
            QuotaKind::ClientBytes => "--max-bytes-per-client",
            QuotaKind::AgentBytes => "--max-agent-bytes",
            QuotaKind::Calls => "--max-calls-per-client",
            QuotaKind::FilesPerDirectory => "--max-files-per-directory",
        }
    }

    /// The vAccel code of a refusal: too many objects or calls is upstream's answer to an
    /// exhausted id pool (`EUSERS`), too many bytes is `ENOMEM`, too many files `EPERM`.
    pub fn code(self) -> ErrorCode {
        match self {
            QuotaKind::Sessions | QuotaKind::Resources | QuotaKind::Calls => ErrorCode::EUSERS,
            QuotaKind::ClientBytes | QuotaKind::AgentBytes => ErrorCode::ENOMEM,
            QuotaKind::FilesPerDirectory => ErrorCode::EPERM,
        }
    }
}

/// A request refused by a quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "RESOURCE_EXHAUSTED: {} quota reached ({held} held, {asked} more asked, limit {limit}); \
     raise it with {}",
    kind.name(),
    kind.option()
)]
pub struct Exceeded {
    /// Which quota.
    pub kind: QuotaKind,
    /// What the client (or the agent) held.
    pub held: u64,
    /// What the request asked for.
    pub asked: u64,
    /// The limit.
    pub limit: u64,
}

impl Exceeded {
    /// The status a client gets: `RESOURCE_EXHAUSTED`, this message, the kind's vAccel code.
    pub fn status(&self) -> grpc::Status {
        status::status(code::RESOURCE_EXHAUSTED, self.to_string(), self.kind.code())
    }
}

/// The agent's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    limits: [u64; QuotaKind::ALL.len()],
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas::from(&QuotaArgs::default())
    }
}

impl From<&QuotaArgs> for Quotas {
    fn from(a: &QuotaArgs) -> Self {
        Quotas {
            limits: [
                a.max_sessions_per_client,
                a.max_resources_per_client,
                a.max_bytes_per_client,
                a.max_agent_bytes,
                a.max_calls_per_client,
                a.max_files_per_directory,
            ],
        }
    }
}

impl Quotas {
    /// The limit of `kind`.
    pub fn limit(&self, kind: QuotaKind) -> u64 {
        self.limits.get(kind.index()).copied().unwrap_or(0)
    }

    /// Refuses `files` files in one resource beyond the limit.
    pub fn check_files(&self, files: usize) -> Result<(), Exceeded> {
        let kind = QuotaKind::FilesPerDirectory;
        let asked = u64::try_from(files).unwrap_or(u64::MAX);
        if asked > self.limit(kind) {
            return Err(Exceeded {
                kind,
                held: 0,
                asked,
                limit: self.limit(kind),
            });
        }
        Ok(())
    }
}

/// What one client holds (and, for bytes, the agent).
#[derive(Debug, Default)]
pub(crate) struct Usage {
    counters: [AtomicU64; QuotaKind::ALL.len()],
}

impl Usage {
    fn counter(&self, kind: QuotaKind) -> Option<&AtomicU64> {
        self.counters.get(kind.index())
    }

    /// What is held of `kind`.
    pub(crate) fn held(&self, kind: QuotaKind) -> u64 {
        self.counter(kind).map_or(0, |c| c.load(Ordering::Acquire))
    }

    /// Adds `n` to `kind` unless that passes `limit`; `Err` holds what was held.
    fn take(&self, kind: QuotaKind, n: u64, limit: u64) -> Result<(), u64> {
        let Some(c) = self.counter(kind) else {
            return Err(0);
        };
        c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            held.checked_add(n).filter(|&total| total <= limit)
        })
        .map(|_| ())
    }

    fn give_back(&self, kind: QuotaKind, n: u64) {
        if let Some(c) = self.counter(kind) {
            // Never below zero, whatever happens.
            let _ = c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(n))
            });
        }
    }
}

/// The bytes of a client's open streams, held against its byte quota and the agent's budget
/// while they arrive (the server gives them back when the stream is complete or dropped).
pub(crate) struct StreamBudget {
    pub(crate) client: Arc<Usage>,
    pub(crate) agent: Arc<Usage>,
    pub(crate) quotas: Quotas,
    pub(crate) metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl vaccel_rpc::server::RequestBudget for StreamBudget {
    fn take(&self, bytes: u64) -> Result<(), grpc::Status> {
        let mut hold = Hold::none();
        let taken = hold
            .take(
                &self.client,
                QuotaKind::ClientBytes,
                bytes,
                self.quotas.limit(QuotaKind::ClientBytes),
            )
            .and_then(|()| {
                hold.take(
                    &self.agent,
                    QuotaKind::AgentBytes,
                    bytes,
                    self.quotas.limit(QuotaKind::AgentBytes),
                )
            });
        match taken {
            Ok(()) => {
                // Kept until `give_back`, not given back now.
                hold.parts.clear();
                Ok(())
            }
            Err(e) => {
                if let Some(m) = &self.metrics {
                    m.quota_refused(e.kind);
                }
                Err(e.status())
            }
        }
    }

    fn give_back(&self, bytes: u64) {
        self.client.give_back(QuotaKind::ClientBytes, bytes);
        self.agent.give_back(QuotaKind::AgentBytes, bytes);
    }
}

/// The shared memory a client's connection attaches: held like stream bytes (its byte quota
/// and the agent's budget), and shown in the metrics while attached.
pub(crate) struct SharedMemoryBudget(pub(crate) StreamBudget);

impl vaccel_rpc::server::RequestBudget for SharedMemoryBudget {
    fn take(&self, bytes: u64) -> Result<(), grpc::Status> {
        self.0.take(bytes)?;
        if let Some(m) = &self.0.metrics {
            m.shared_memory_attached(bytes);
        }
        Ok(())
    }

    fn give_back(&self, bytes: u64) {
        self.0.give_back(bytes);
        if let Some(m) = &self.0.metrics {
            m.shared_memory_released(bytes);
        }
    }
}

/// One of `kind` a client holds for as long as this lives (a call in flight): given back when
/// dropped. Unlike a [`Hold`] it borrows the client's usage (no allocation, no reference
/// count), which suits what lasts no longer than a call.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    usage: &'a Usage,
    kind: QuotaKind,
}

impl Usage {
    /// One more of `kind` within `limit`, held by the returned slot.
    pub(crate) fn slot(&self, kind: QuotaKind, limit: u64) -> Result<Slot<'_>, Exceeded> {
        self.take_within(kind, 1, limit)?;
        Ok(Slot { usage: self, kind })
    }

    /// [`Usage::take`] with the refusal saying what was asked.
    fn take_within(&self, kind: QuotaKind, n: u64, limit: u64) -> Result<(), Exceeded> {
        self.take(kind, n, limit).map_err(|held| Exceeded {
            kind,
            held,
            asked: n,
            limit,
        })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.usage.give_back(self.kind, 1);
    }
}

/// Something a client holds against its quotas: given back when dropped.
#[derive(Debug)]
pub(crate) struct Hold {
    parts: Vec<(Arc<Usage>, QuotaKind, u64)>,
}

impl Hold {
    /// Nothing held.
    pub(crate) fn none() -> Hold {
        Hold { parts: Vec::new() }
    }

    /// Takes `n` of `kind` from `usage` within `limit`, adding it to this hold; on refusal
    /// nothing more is taken (what the hold had stays until it is dropped).
    pub(crate) fn take(
        &mut self,
        usage: &Arc<Usage>,
        kind: QuotaKind,
        n: u64,
        limit: u64,
    ) -> Result<(), Exceeded> {
        usage.take_within(kind, n, limit)?;
        self.parts.push((Arc::clone(usage), kind, n));
        Ok(())
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        for (usage, kind, n) in self.parts.drain(..) {
            usage.give_back(kind, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_given_back_when_dropped_and_limits_bind() {
        let usage = Arc::new(Usage::default());
        let mut a = Hold::none();
        a.take(&usage, QuotaKind::ClientBytes, 600, 1000).unwrap();
        let e = Hold::none()
            .take(&usage, QuotaKind::ClientBytes, 600, 1000)
            .unwrap_err();
        assert_eq!((e.held, e.asked, e.limit), (600, 600, 1000));
        let text = e.to_string();
        assert!(
            text.starts_with("RESOURCE_EXHAUSTED: bytes per client"),
            "{text}"
        );
        assert!(text.contains("--max-bytes-per-client"), "{text}");
        assert_eq!(usage.held(QuotaKind::ClientBytes), 600);
        drop(a);
        assert_eq!(usage.held(QuotaKind::ClientBytes), 0);
        let mut b = Hold::none();
        b.take(&usage, QuotaKind::ClientBytes, u64::MAX, u64::MAX)
            .unwrap();
        assert!(
            Hold::none()
                .take(&usage, QuotaKind::ClientBytes, 1, u64::MAX)
                .is_err(),
            "no overflow"
        );
    }

    #[test]
    fn slots_are_given_back_when_dropped() {
        let usage = Usage::default();
        let a = usage.slot(QuotaKind::Calls, 2).unwrap();
        let b = usage.slot(QuotaKind::Calls, 2).unwrap();
        let e = usage.slot(QuotaKind::Calls, 2).unwrap_err();
        assert_eq!(
            (e.kind, e.held, e.asked, e.limit),
            (QuotaKind::Calls, 2, 1, 2)
        );
        drop(a);
        assert_eq!(usage.held(QuotaKind::Calls), 1);
        drop(b);
        assert_eq!(usage.held(QuotaKind::Calls), 0);
    }

    #[test]
    fn refusals_carry_the_kind_code_and_option() {
        let q = Quotas::from(&QuotaArgs {
            max_files_per_directory: 3,
            ..QuotaArgs::default()
        });
        assert!(q.check_files(3).is_ok());
        let st = q.check_files(4).unwrap_err().status();
        assert_eq!(st.code, code::RESOURCE_EXHAUSTED);
        assert!(
            st.message.contains("--max-files-per-directory"),
            "{}",
            st.message
        );
        assert_eq!(
            status::status_to_error(&st).code(),
            ErrorCode::EPERM,
            "the code survives"
        );
        for (i, kind) in QuotaKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }
}
