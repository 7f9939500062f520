//! `vaccel-rpc-agent`: serves vAccel calls from remote clients (VMs, containers, other hosts)
//! on this machine's runtime. Glue over `vaccel_agent` and `vaccel_rpc::server`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use vaccel_agent::Agent;
use vaccel_agent::http::MetricsServer;
use vaccel_agent::options::{VaccelConfigArg, parse_vaccel_config, runtime_config};
use vaccel_agent::policy::ResourcePolicy;
use vaccel_rpc::addr::Address;
use vaccel_rpc::server::ServerConfig;
use vaccel_rpc::transport::{Listener, PeerFilter};

/// How long calls in flight may run on after a shutdown signal.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

mod malloc;

/// vAccel RPC agent: runs the vAccel calls of remote clients on this machine.
#[derive(Debug, Parser)]
#[command(name = "vaccel-rpc-agent", version)]
struct Cli {
    /// Address to listen on: tcp://HOST:PORT, unix:///PATH, unix://@NAME or vsock://CID:PORT
    /// (vsock binds any CID).
    #[arg(short = 'a', long = "server-address", default_value = vaccel_rpc::DEFAULT_ADDRESS)]
    server_address: String,

    /// vAccel configuration as key=value pairs separated by ',': plugins, log_level,
    /// log_file, profiling_enabled, version_ignore. Without it, VACCEL_* variables are used.
    #[arg(long = "vaccel-config", value_parser = parse_vaccel_config)]
    vaccel_config: Option<VaccelConfigArg>,

    /// Largest frame accepted, in bytes (larger messages need the chunked extension).
    #[arg(long = "max-frame-size", default_value_t = vaccel_rpc::frame::DEFAULT_MAX_FRAME)]
    max_frame_size: usize,

    /// Serve Prometheus metrics on http://HOST:PORT/metrics (and /healthz); off by default.
    /// Bind it to an address only your monitoring can reach.
    #[arg(long = "metrics-address", value_name = "HOST:PORT")]
    metrics_address: Option<String>,

    /// Check the agent at ADDR instead of serving: one round trip (connect and
    /// GetCapabilities); prints one line, exits 0 when it answered, 1 otherwise.
    #[arg(long = "check", value_name = "ADDR")]
    check: Option<String>,

    /// Deadline of --check, in seconds (connection and answer together).
    #[arg(long = "check-timeout", value_name = "SECONDS", default_value_t = 2.0)]
    check_timeout: f64,

    /// Load the models clients register without vetting them first. By default each new
    /// model a CPU backend recognizes is loaded and run once in a disposable probe process,
    /// and refused (EINVAL) if that crashes or hangs, so a malformed model cannot crash the
    /// agent.
    #[arg(long = "no-model-probe")]
    no_model_probe: bool,

    /// Let clients register host files and directories by path, inside DIR (repeatable). A
    /// path must resolve, symlinks followed, inside one of them. By default clients send
    /// resource data only as bytes (blobs), and host paths are refused (EPERM).
    #[arg(long = "allow-path", value_name = "DIR")]
    allow_path: Vec<PathBuf>,

    /// Let clients register resources by http(s) URLs under PREFIX (repeatable), e.g.
    /// https://models.example/public/. The agent downloads them (no redirects). By default
    /// URLs are refused (EPERM).
    #[arg(long = "allow-url", value_name = "PREFIX")]
    allow_url: Vec<String>,

    /// Largest download of one RegisterResource (all its URLs together), in bytes.
    #[arg(
        long = "max-download-bytes",
        value_name = "BYTES",
        default_value_t = vaccel_agent::policy::DEFAULT_MAX_DOWNLOAD_BYTES
    )]
    max_download_bytes: u64,

    /// Serve only local processes of user UID on a unix socket (repeatable; with --allow-gid,
    /// either matches). Others are disconnected at accept. By default any local user that
    /// can reach the socket is served (for an abstract socket, unix://@NAME: every user).
    #[arg(long = "allow-uid", value_name = "UID")]
    allow_uid: Vec<u32>,

    /// Serve only local processes whose primary group is GID on a unix socket (repeatable).
    #[arg(long = "allow-gid", value_name = "GID")]
    allow_gid: Vec<u32>,

    /// Close a connection when a frame or stream it started gets no byte for SECONDS, or a
    /// response waits that long for the client to read it (0: never).
    #[arg(long = "read-timeout", value_name = "SECONDS", default_value_t = 30)]
    read_timeout: u64,

    /// Close a connection idle for SECONDS (no frame, no call running, no stream open) that
    /// has not been served a call (0: never). Connections in use stay open however long idle.
    #[arg(long = "idle-timeout", value_name = "SECONDS", default_value_t = 300)]
    idle_timeout: u64,

    /// Connections open at once; more are closed at accept. Default: three quarters of the
    /// descriptor soft limit (RLIMIT_NOFILE), at three descriptors per connection.
    #[arg(long = "max-connections", value_name = "N")]
    max_connections: Option<usize>,

    /// Connections one client (a local process, a VM's CID, a TCP peer's IP address) may
    /// have open at once; more are closed at accept (0: no cap).
    #[arg(
        long = "max-connections-per-client",
        value_name = "N",
        default_value_t = vaccel_rpc::server::DEFAULT_MAX_CONNECTIONS_PER_CLIENT
    )]
    max_connections_per_client: usize,

    /// Chunked requests and client streams one connection may have open at once.
    #[arg(
        long = "max-open-streams",
        value_name = "N",
        default_value_t = vaccel_rpc::server::DEFAULT_MAX_OPEN_STREAMS
    )]
    max_open_streams: usize,

    /// Bytes the open streams of one connection may hold together before their calls run.
    #[arg(
        long = "max-stream-bytes",
        value_name = "BYTES",
        default_value_t = vaccel_rpc::server::DEFAULT_MAX_STREAM_BYTES
    )]
    max_stream_bytes: u64,

    /// Arguments (read and write together) one Genop may carry, counted before decoding it.
    #[arg(
        long = "max-genop-args",
        value_name = "N",
        default_value_t = vaccel_rpc::server::DEFAULT_MAX_GENOP_ARGS
    )]
    max_genop_args: usize,

    /// Bytes of shared memory one unix connection may attach for large payloads, all its
    /// regions together (see docs/wire.md, extension 6), held against the client's
    /// --max-bytes-per-client while attached (0: not offered). TCP and vsock never offer it.
    #[arg(
        long = "max-shared-memory",
        value_name = "BYTES",
        default_value_t = vaccel_rpc::server::DEFAULT_MAX_SHARED_MEMORY
    )]
    max_shared_memory: u64,

    #[command(flatten)]
    quotas: vaccel_agent::quota::QuotaArgs,
}

fn main() -> ExitCode {
    malloc::tune();
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new(vaccel_agent::probe::PROBE_FLAG)) {
        return vaccel_agent::probe::probe_main(args);
    }
    let cli = Cli::parse();
    if let Some(address) = &cli.check {
        return check(address, cli.check_timeout);
    }
    let result = run(cli);
    // The logger writes info lines in batches: what waits, before leaving.
    log::logger().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vaccel-rpc-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--check ADDR`: the one line goes to stdout on success, stderr on failure.
fn check(address: &str, timeout_secs: f64) -> ExitCode {
    let result = Duration::try_from_secs_f64(timeout_secs)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| anyhow::anyhow!("--check-timeout must be a positive number of seconds"))
        .and_then(|timeout| {
            let parsed: Address = address.parse()?;
            Ok(vaccel_agent::health::check(&parsed, timeout)?)
        });
    match result {
        Ok(h) => {
            let protocol = h.extensions.map_or_else(
                || "upstream protocol".to_owned(),
                |v| format!("extensions v{v}"),
            );
            let line = format!(
                "ok: {address} answered in {:.1} ms ({protocol})\n",
                h.elapsed.as_secs_f64() * 1000.0
            );
            // A closed stdout does not make a healthy agent unhealthy.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vaccel-rpc-agent: check failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One info line per opening the operator made, and a warning for an abstract socket left
/// open to every local user.
fn log_policy(policy: &ResourcePolicy, peers: &PeerFilter, address: &Address) {
    for dir in policy.allowed_dirs() {
        log::info!("Clients may register host paths inside {}", dir.display());
    }
    for prefix in policy.allowed_urls() {
        log::info!(
            "Clients may register URLs under {prefix} (at most {} bytes per request)",
            policy.max_download_bytes()
        );
    }
    if matches!(address, Address::UnixAbstract(_)) && peers.is_open() {
        log::warn!(
            "An abstract socket is open to every local user; restrict it with \
             --allow-uid/--allow-gid"
        );
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = runtime_config(cli.vaccel_config, vaccel::config::env_lookup)
        .context("invalid vAccel configuration")?;
    vaccel_agent::logging::init(config.log_level, config.log_file.as_deref())
        .context("cannot set up logging")?;
    log::info!("vAccel RPC agent started");

    let address: Address = cli.server_address.parse()?;
    if cli.max_frame_size < 1024 {
        anyhow::bail!("--max-frame-size must be at least 1024 bytes");
    }
    let policy = ResourcePolicy::new(&cli.allow_path, &cli.allow_url, cli.max_download_bytes)?;
    let peers = PeerFilter::new(cli.allow_uid, cli.allow_gid);
    // Registered before listening, so a signal can never kill the agent with its socket
    // file left behind.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")?;
    let rt = vaccel::builder()
        .config(config)
        .skip_logging()
        .build()
        .context("cannot start the vAccel runtime")?;
    if rt.plugins().is_empty() {
        log::warn!(
            "No vAccel plugin loaded: every CreateSession will fail (ENOTSUP, \"no plugin \
             loaded\"); set plugins= in --vaccel-config, or VACCEL_PLUGINS"
        );
    }
    let mut listener = Listener::bind(&address)
        .with_context(|| format!("cannot listen on '{}'", cli.server_address))?;
    if !peers.is_open() {
        listener = listener
            .with_peer_filter(peers.clone())
            .context("--allow-uid/--allow-gid")?;
    }
    log_policy(&policy, &peers, &address);
    let mut agent = Agent::new(rt).with_resource_policy(policy);
    agent = agent.with_quotas(&cli.quotas);
    // The filter's counter also gets the refusals of the connection caps, for the metrics.
    agent = agent.with_peer_filter(peers.clone());
    if cli.no_model_probe {
        log::info!("Clients' models are loaded without a probe (--no-model-probe)");
    } else {
        let program = std::env::current_exe().context("cannot find the agent binary")?;
        agent = agent.with_model_probe(vaccel_agent::probe::ModelProbe::new(program));
    }
    if cli.metrics_address.is_some() {
        agent = agent.with_metrics();
    }
    let agent = Arc::new(agent);
    let metrics = match &cli.metrics_address {
        Some(address) => {
            let server = MetricsServer::start(address, Arc::clone(&agent))
                .with_context(|| format!("cannot serve metrics on '{address}'"))?;
            log::info!("Metrics on http://{}/metrics", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        max_frame_size: cli.max_frame_size,
        read_timeout: Duration::from_secs(cli.read_timeout),
        idle_timeout: Duration::from_secs(cli.idle_timeout),
        max_connections: cli.max_connections.unwrap_or(defaults.max_connections),
        max_connections_per_client: cli.max_connections_per_client,
        max_open_streams: cli.max_open_streams,
        max_stream_bytes: cli.max_stream_bytes,
        max_genop_args: cli.max_genop_args,
        max_shared_memory: cli.max_shared_memory,
        ..defaults
    };
    if config.max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    log::info!(
        "At most {} connections, {} per client (--max-connections, \
         --max-connections-per-client)",
        config.max_connections,
        config.max_connections_per_client
    );
    let server = agent.server(config).count_refusals_in(peers);
    let handle = server
        .start(listener)
        .with_context(|| format!("cannot serve on '{}'", cli.server_address))?;
    log::info!(
        "Listening on '{}', press Ctrl+C to exit",
        cli.server_address
    );
    if let (Address::Tcp { port: 0, .. }, Some(bound)) = (&address, handle.local_tcp_addr()) {
        log::info!("Bound to tcp://{bound}");
    }
    if let Address::Vsock { port, .. } = &address {
        log::info!(
            "Bound to vsock port {port} on any CID (VMADDR_CID_ANY): every guest of this host \
             reaches it at vsock://2:{port}"
        );
    }

    let signal = signals.forever().next();
    log::info!(
        "Received signal {}, shutting down",
        signal.map_or_else(|| "?".to_owned(), |s| s.to_string())
    );
    if !handle.shutdown(SHUTDOWN_DEADLINE) {
        log::warn!("Some calls were still running after {SHUTDOWN_DEADLINE:?}");
    }
    drop(metrics);
    log::info!("vAccel RPC agent stopped");
    Ok(())
}
