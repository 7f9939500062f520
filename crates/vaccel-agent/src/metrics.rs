//! The agent's Prometheus metrics: requests, errors, bytes and latency per RPC method (and per
//! genop operation), rendered in the text exposition format (version 0.0.4).
//!
//! The call path only does relaxed atomic additions on per-method slots chosen by index: no
//! lock, no allocation, no map lookup. Names of methods and operations are built when a
//! scrape renders the text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use vaccel::OpType;

/// The RPC methods of the agent service, in the order of their slots. Anything else (unknown
/// methods) is counted under `other`.
pub const METHODS: [&str; 17] = [
    "CreateSession",
    "UpdateSession",
    "DestroySession",
    "RegisterResource",
    "UnregisterResource",
    "SyncResource",
    "ImageClassification",
    "TensorflowModelLoad",
    "TensorflowModelUnload",
    "TensorflowModelRun",
    "TensorflowLiteModelLoad",
    "TensorflowLiteModelUnload",
    "TensorflowLiteModelRun",
    "TorchModelLoad",
    "TorchModelRun",
    "Genop",
    "GenopStream",
];
const OTHER: usize = METHODS.len();
const N_METHODS: usize = METHODS.len() + 1;
/// Slots of the genop methods in [`METHODS`].
const GENOP: usize = 15;
const GENOP_STREAM: usize = 16;
/// Operation slots: every `OpType` value, then one for values that are not operations.
const N_OPS: usize = OpType::MAX as usize + 1;

/// Upper bounds of the latency buckets, in seconds (`+Inf` is implicit).
pub const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Chooses, for a method's stats and slot, the samples to write: (extra labels, value).
type Pick<'a> = dyn Fn(&MethodStats, usize) -> Vec<(String, u64)> + 'a;

/// The slot of `method` (`other` for unknown names).
pub fn method_index(method: &str) -> usize {
    METHODS.iter().position(|m| *m == method).unwrap_or(OTHER)
}

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    errors: AtomicU64,
}

#[derive(Debug, Default)]
struct MethodStats {
    counts: Counts,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Per bucket (not cumulative), the last one `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// Counters of one agent. `Sync`: shared by every connection thread.
#[derive(Debug)]
pub struct Metrics {
    methods: [MethodStats; N_METHODS],
    /// `[Genop, GenopStream]` × operation.
    ops: [[Counts; N_OPS]; 2],
    connections: AtomicI64,
    connections_total: AtomicU64,
    /// Requests refused by each quota, by [`crate::quota::QuotaKind::index`].
    quota_refusals: [AtomicU64; crate::quota::QuotaKind::ALL.len()],
    /// Bytes of shared memory attached by clients now, and attachments so far.
    shared_memory_bytes: AtomicU64,
    shared_memory_attached: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            methods: std::array::from_fn(|_| MethodStats::default()),
            ops: std::array::from_fn(|_| std::array::from_fn(|_| Counts::default())),
            connections: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            quota_refusals: std::array::from_fn(|_| AtomicU64::new(0)),
            shared_memory_bytes: AtomicU64::new(0),
            shared_memory_attached: AtomicU64::new(0),
        }
    }
}

/// One finished call, as [`Metrics::record`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// [`method_index`] of its method.
    pub method: usize,
    /// The genop operation (the first read argument's byte), for genop methods.
    pub op: Option<u8>,
    /// Request message bytes.
    pub bytes_in: usize,
    /// Response message bytes (0 for a failed call).
    pub bytes_out: usize,
    /// Whether it failed.
    pub error: bool,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Gauges read from the agent when a scrape renders.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Live sessions of the runtime.
    pub sessions: usize,
    /// Live resources of the runtime.
    pub resources: usize,
    /// Clients (processes, guests, TCP connections) with at least one open connection.
    pub clients: usize,
    /// Connections closed at accept: a Unix peer's uid/gid not allowed
    /// (`--allow-uid`/`--allow-gid`), or over a connection cap (`--max-connections`,
    /// `--max-connections-per-client`).
    pub refused_connections: u64,
    /// The model probes' counters.
    pub probes: crate::probe::ProbeStats,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Relaxed);
}

fn bucket_of(elapsed: Duration) -> usize {
    let secs = elapsed.as_secs_f64();
    BUCKETS
        .iter()
        .position(|&le| secs <= le)
        .unwrap_or(BUCKETS.len())
}

/// Escapes a label value (`\`, `"` and newlines) as the exposition format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn op_name(slot: usize) -> String {
    u8::try_from(slot)
        .ok()
        .and_then(OpType::from_value)
        .map_or_else(|| "unknown".to_owned(), OpType::name)
}

impl Metrics {
    /// Counts a finished call.
    pub fn record(&self, call: &Call) {
        let Some(m) = self.methods.get(call.method) else {
            return;
        };
        m.counts.requests.fetch_add(1, Relaxed);
        if call.error {
            m.counts.errors.fetch_add(1, Relaxed);
        }
        add(&m.bytes_in, call.bytes_in);
        add(&m.bytes_out, call.bytes_out);
        if let Some(b) = m.buckets.get(bucket_of(call.elapsed)) {
            b.fetch_add(1, Relaxed);
        }
        let nanos = u64::try_from(call.elapsed.as_nanos()).unwrap_or(u64::MAX);
        m.sum_nanos.fetch_add(nanos, Relaxed);

        let table = match call.method {
            GENOP => self.ops.first(),
            GENOP_STREAM => self.ops.get(1),
            _ => None,
        };
        if let Some(table) = table {
            let slot = call
                .op
                .filter(|&op| OpType::from_value(op).is_some())
                .map_or(N_OPS - 1, usize::from);
            if let Some(c) = table.get(slot) {
                c.requests.fetch_add(1, Relaxed);
                if call.error {
                    c.errors.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    /// A request was refused by the quota `kind`.
    pub fn quota_refused(&self, kind: crate::quota::QuotaKind) {
        if let Some(c) = self.quota_refusals.get(kind.index()) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// A connection attached `bytes` of shared memory.
    pub fn shared_memory_attached(&self, bytes: u64) {
        self.shared_memory_bytes.fetch_add(bytes, Relaxed);
        self.shared_memory_attached.fetch_add(1, Relaxed);
    }

    /// Shared memory of `bytes` was released (replaced, or its connection closed).
    pub fn shared_memory_released(&self, bytes: u64) {
        let _ = self
            .shared_memory_bytes
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(bytes)));
    }

    /// A connection closed.
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }

    /// The exposition text: every counter, histogram and gauge.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let names = METHODS.iter().copied().chain(["other"]);
        let per_method: Vec<(&str, &MethodStats)> = names.zip(self.methods.iter()).collect();

        // `writeln!` into a String cannot fail.
        let counter = |out: &mut String, name: &str, help: &str, pick: &Pick<'_>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (i, (method, m)) in per_method.iter().enumerate() {
                for (labels, v) in pick(m, i) {
                    let _ = writeln!(out, "{name}{{method=\"{}\"{labels}}} {v}", label(method));
                }
            }
        };
        let ops = |i: usize, errors: bool| -> Option<Vec<(String, u64)>> {
            let table = match i {
                GENOP => self.ops.first(),
                GENOP_STREAM => self.ops.get(1),
                _ => None,
            }?;
            Some(
                table
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.requests.load(Relaxed) > 0)
                    .map(|(slot, c)| {
                        let v = if errors { &c.errors } else { &c.requests };
                        (
                            format!(",op=\"{}\"", label(&op_name(slot))),
                            v.load(Relaxed),
                        )
                    })
                    .collect(),
            )
        };
        counter(
            &mut out,
            "vaccel_agent_requests_total",
            "RPC calls handled, by method (and genop operation).",
            &|m, i| {
                ops(i, false)
                    .unwrap_or_else(|| vec![(String::new(), m.counts.requests.load(Relaxed))])
            },
        );
        counter(
            &mut out,
            "vaccel_agent_errors_total",
            "RPC calls answered with an error status, by method (and genop operation).",
            &|m, i| {
                ops(i, true).unwrap_or_else(|| vec![(String::new(), m.counts.errors.load(Relaxed))])
            },
        );
        counter(
            &mut out,
            "vaccel_agent_received_bytes_total",
            "Request message bytes received, by method.",
            &|m, _| vec![(String::new(), m.bytes_in.load(Relaxed))],
        );
        counter(
            &mut out,
            "vaccel_agent_sent_bytes_total",
            "Response message bytes sent, by method.",
            &|m, _| vec![(String::new(), m.bytes_out.load(Relaxed))],
        );

        let name = "vaccel_agent_request_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time to run an RPC call, by method.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (method, m) in &per_method {
            let method = label(method);
            let mut cumulative = 0u64;
            for (i, b) in m.buckets.iter().enumerate() {
                cumulative += b.load(Relaxed);
                let le = BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), f64::to_string);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{method=\"{method}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let sum = Duration::from_nanos(m.sum_nanos.load(Relaxed)).as_secs_f64();
            let _ = writeln!(out, "{name}_sum{{method=\"{method}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{method=\"{method}\"}} {cumulative}");
        }

        let mut gauge = |name: &str, kind: &str, help: &str, value: i128| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        gauge(
            "vaccel_agent_connections",
            "gauge",
            "Open client connections.",
            i128::from(self.connections.load(Relaxed)),
        );
        gauge(
            "vaccel_agent_connections_total",
            "counter",
            "Client connections accepted.",
            i128::from(self.connections_total.load(Relaxed)),
        );
        gauge(
            "vaccel_agent_connections_refused_total",
            "counter",
            "Connections closed at accept: peer uid/gid not allowed (--allow-uid/--allow-gid) or over a connection cap (--max-connections, --max-connections-per-client).",
            i128::from(gauges.refused_connections),
        );
        let count = |n: usize| i128::try_from(n).unwrap_or(i128::MAX);
        gauge(
            "vaccel_agent_clients",
            "gauge",
            "Clients (processes, guests, TCP connections) with an open connection.",
            count(gauges.clients),
        );
        gauge(
            "vaccel_agent_sessions",
            "gauge",
            "Live vAccel sessions.",
            count(gauges.sessions),
        );
        gauge(
            "vaccel_agent_resources",
            "gauge",
            "Live vAccel resources.",
            count(gauges.resources),
        );
        gauge(
            "vaccel_agent_shared_memory_bytes",
            "gauge",
            "Bytes of shared memory clients have attached (held against their byte quota).",
            i128::from(self.shared_memory_bytes.load(Relaxed)),
        );
        gauge(
            "vaccel_agent_shared_memory_attached_total",
            "counter",
            "Shared memory attachments accepted.",
            i128::from(self.shared_memory_attached.load(Relaxed)),
        );
        self.render_quotas(&mut out, gauges);
        out
    }

    /// The quota refusals and the model probes.
    fn render_quotas(&self, out: &mut String, gauges: &Gauges) {
        let name = "vaccel_agent_quota_refusals_total";
        let _ = writeln!(
            out,
            "# HELP {name} Requests refused by a quota (the --max-* options), by quota."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (kind, c) in crate::quota::QuotaKind::ALL
            .iter()
            .zip(&self.quota_refusals)
        {
            let _ = writeln!(
                out,
                "{name}{{quota=\"{}\"}} {}",
                label(kind.name()),
                c.load(Relaxed)
            );
        }
        let p = &gauges.probes;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        for (name, kind, help, value) in [
            (
                "vaccel_agent_model_probes_total",
                "counter",
                "Model probe processes run.",
                p.run,
            ),
            (
                "vaccel_agent_model_probe_cache_hits_total",
                "counter",
                "Models answered by the verdict on the same bytes, without a probe.",
                p.cached,
            ),
            (
                "vaccel_agent_model_probes_queued_total",
                "counter",
                "Registrations that waited for a probe slot (--max-concurrent-probes).",
                p.queued,
            ),
            (
                "vaccel_agent_model_probes_busy_total",
                "counter",
                "Registrations refused: probe queue full (--max-queued-probes).",
                p.busy,
            ),
            (
                "vaccel_agent_model_probes_running",
                "gauge",
                "Model probe processes running.",
                count(p.running_now),
            ),
            (
                "vaccel_agent_model_probes_waiting",
                "gauge",
                "Registrations waiting for a probe slot.",
                count(p.queued_now),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, op: Option<u8>, error: bool, ms: u64) -> Call {
        Call {
            method: method_index(method),
            op,
            bytes_in: 10,
            bytes_out: if error { 0 } else { 5 },
            error,
            elapsed: Duration::from_millis(ms),
        }
    }

    #[test]
    fn counters_histograms_and_ops_render() {
        let m = Metrics::default();
        m.record(&call("CreateSession", None, false, 0));
        m.record(&call(
            "Genop",
            Some(OpType::ImageClassify.value()),
            false,
            3,
        ));
        m.record(&call("Genop", Some(OpType::ImageClassify.value()), true, 3));
        m.record(&call("Genop", Some(200), true, 3));
        m.record(&call("Nope", None, true, 20_000));
        m.connection_opened();
        let text = m.render(&Gauges {
            sessions: 2,
            resources: 1,
            clients: 1,
            refused_connections: 3,
            ..Gauges::default()
        });
        m.quota_refused(crate::quota::QuotaKind::Sessions);
        let text = text + &m.render(&Gauges::default());
        for line in [
            "vaccel_agent_requests_total{method=\"CreateSession\"} 1",
            "vaccel_agent_requests_total{method=\"Genop\",op=\"image_classify\"} 2",
            "vaccel_agent_errors_total{method=\"Genop\",op=\"image_classify\"} 1",
            "vaccel_agent_requests_total{method=\"Genop\",op=\"unknown\"} 1",
            "vaccel_agent_requests_total{method=\"other\"} 1",
            "vaccel_agent_received_bytes_total{method=\"Genop\"} 30",
            "vaccel_agent_sent_bytes_total{method=\"Genop\"} 5",
            "vaccel_agent_request_duration_seconds_bucket{method=\"Genop\",le=\"0.0025\"} 0",
            "vaccel_agent_request_duration_seconds_bucket{method=\"Genop\",le=\"0.005\"} 3",
            "vaccel_agent_request_duration_seconds_bucket{method=\"other\",le=\"10\"} 0",
            "vaccel_agent_request_duration_seconds_bucket{method=\"other\",le=\"+Inf\"} 1",
            "vaccel_agent_request_duration_seconds_count{method=\"Genop\"} 3",
            "vaccel_agent_connections 1",
            "vaccel_agent_connections_refused_total 3",
            "vaccel_agent_sessions 2",
            "vaccel_agent_quota_refusals_total{quota=\"sessions per client\"} 1",
            "vaccel_agent_quota_refusals_total{quota=\"agent bytes\"} 0",
            "vaccel_agent_model_probes_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert!(text.contains("# TYPE vaccel_agent_request_duration_seconds histogram"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
