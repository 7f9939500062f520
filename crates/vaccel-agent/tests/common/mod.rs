//! Shared test support: the real agent binary as a child process, and a small ttrpc client
//! built on `vaccel_rpc`'s frame and message modules.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use vaccel_rpc::addr::Address;
use vaccel_rpc::frame::{self, FrameReader, Header, kind};
use vaccel_rpc::message;
use vaccel_rpc::proto::grpc;
use vaccel_rpc::proto::vaccel as pv;
use vaccel_rpc::proto::vaccel::{genop as pg, resource as pr, session as ps};
use vaccel_rpc::status::status_to_error;
use vaccel_rpc::transport::Stream;

pub const AGENT: &str = env!("CARGO_BIN_EXE_vaccel-rpc-agent");
/// Readiness and log waits.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The agent binary running as a child, killed on drop; on a failing test its command, exit
/// status and log tail are printed.
pub struct AgentProc {
    pub child: Child,
    pub command: String,
    pub address: Address,
    pub log: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
    status: Option<ExitStatus>,
}

impl AgentProc {
    /// An agent on a fresh unix socket in a temp dir (`args` added).
    pub fn unix(args: &[&str]) -> AgentProc {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        Self::start_in(dir, &format!("unix://{}", path.display()), args)
    }

    /// An agent on an ephemeral loopback TCP port.
    pub fn tcp(args: &[&str]) -> AgentProc {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, "tcp://127.0.0.1:0", args)
    }

    /// An agent on `address`, waiting until it listens.
    pub fn start_in(dir: tempfile::TempDir, address: &str, args: &[&str]) -> AgentProc {
        let mut agent = Self::spawn(dir, address, args);
        let ready = agent.wait_for_log("press Ctrl+C to exit", DEADLINE);
        if !ready {
            agent.stop_and_report("agent did not become ready");
        }
        if address.ends_with(":0") {
            assert!(agent.wait_for_log("Bound to tcp://", DEADLINE));
            let line = agent.find_log("Bound to tcp://").unwrap();
            let bound = line.rsplit("Bound to ").next().unwrap().trim().to_owned();
            agent.address = bound.parse().unwrap();
        }
        agent
    }

    /// Starts the binary on `address` and expects it to exit with a failure whose output
    /// contains `needle`.
    pub fn start_fails(address: &str, args: &[&str], needle: &str) -> AgentProc {
        let mut agent = Self::spawn(tempfile::tempdir().unwrap(), address, args);
        match agent.wait_exit(DEADLINE) {
            Some(status) if !status.success() => {}
            other => agent.stop_and_report(&format!("expected a failed start, got {other:?}")),
        }
        if agent.find_log(needle).is_none() {
            agent.stop_and_report(&format!("no `{needle}` in the agent's output"));
        }
        agent
    }

    /// Starts the binary without waiting for readiness.
    pub fn spawn(dir: tempfile::TempDir, address: &str, args: &[&str]) -> AgentProc {
        let mut cmd = Command::new(AGENT);
        cmd.arg("-a").arg(address).args(args);
        let has_config = args.contains(&"--vaccel-config");
        if !has_config {
            cmd.args(["--vaccel-config", "plugins=noop"]);
        }
        cmd.env("RUST_LOG", "info")
            .env_remove("VACCEL_LOG_LEVEL")
            .env_remove("VACCEL_PLUGINS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = format!("{cmd:?}");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{command}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push(line);
                }
            });
        }
        AgentProc {
            child,
            command,
            address: address.parse().unwrap(),
            log,
            dir,
            status: None,
        }
    }

    /// The socket path of a unix agent.
    pub fn socket_path(&self) -> PathBuf {
        match &self.address {
            Address::Unix(p) => p.clone(),
            other => panic!("not a unix agent: {other}"),
        }
    }

    /// The first log line containing `needle`, waiting a few seconds for it: the agent may
    /// write a line just after the response the test reacts to, and the pipe is drained by
    /// another thread.
    pub fn find_log(&self, needle: &str) -> Option<String> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self.log_now(needle);
            if found.is_some() || Instant::now() > end {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether no log line contains `needle`, after letting pending lines arrive.
    pub fn lacks_log(&self, needle: &str) -> bool {
        std::thread::sleep(Duration::from_millis(200));
        self.log_now(needle).is_none()
    }

    fn log_now(&self, needle: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }

    /// How many log lines contain `needle`, after letting pending lines arrive (the agent
    /// writes info lines in batches, at most 20 ms late).
    pub fn count_log(&self, needle: &str) -> usize {
        std::thread::sleep(Duration::from_millis(200));
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until a log line contains `needle` (or the agent exits).
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log_now(needle).is_some() {
                return true;
            }
            if self.status.is_none()
                && let Ok(Some(st)) = self.child.try_wait()
            {
                self.status = Some(st);
            }
            if self.status.is_some() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return self.log_now(needle).is_some();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Sends `signal` and waits for the exit status.
    pub fn signal_and_wait(&mut self, signal: nix::sys::signal::Signal) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
        self.wait_exit(DEADLINE).expect("agent did not exit")
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(st) = self.status {
                return Some(st);
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                std::thread::sleep(Duration::from_millis(100));
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        let start = log.len().saturating_sub(n);
        log[start..].join("\n")
    }

    fn report(&self) {
        eprintln!("---- agent command: {}", self.command);
        eprintln!("---- agent status: {:?}", self.status);
        eprintln!("---- agent log (tail):\n{}", self.log_tail(60));
    }

    pub fn stop_and_report(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        std::thread::sleep(Duration::from_millis(100));
        self.report();
        panic!("{why}");
    }

    pub fn connect(&self) -> RawClient {
        RawClient::connect(&self.address)
    }

    /// The `HOST:PORT` of an agent started with `--metrics-address`.
    pub fn metrics_address(&self) -> String {
        let line = self.find_log("Metrics on http://").expect("a metrics line");
        line.rsplit("http://")
            .next()
            .unwrap()
            .trim_end_matches("/metrics")
            .to_owned()
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        if std::thread::panicking() {
            std::thread::sleep(Duration::from_millis(100));
            self.report();
        }
    }
}

/// A minimal ttrpc client: frames and envelopes from `vaccel_rpc`, nothing else.
pub struct RawClient {
    pub w: Stream,
    pub r: FrameReader<Stream>,
    next: u32,
}

pub type CallResult<T> = Result<T, grpc::Status>;

impl RawClient {
    pub fn connect(addr: &Address) -> RawClient {
        let s = Stream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        // A broken agent fails the test instead of hanging it.
        let timeout = Some(Duration::from_secs(60));
        match &s {
            Stream::Tcp(t) => t.set_read_timeout(timeout).unwrap(),
            Stream::Unix(u) => u.set_read_timeout(timeout).unwrap(),
            Stream::Vsock(v) => v.set_read_timeout(timeout).unwrap(),
        }
        RawClient {
            w: s.try_clone().unwrap(),
            r: FrameReader::new(s),
            next: 1,
        }
    }

    pub fn next_id(&mut self) -> u32 {
        let id = self.next;
        self.next += 2;
        id
    }

    /// Sends a request on the agent service; returns its stream id.
    pub fn send(&mut self, method: &str, msg: &impl Message) -> u32 {
        self.send_to(vaccel_rpc::SERVICE, method, msg, &[])
    }

    pub fn send_to(
        &mut self,
        service: &str,
        method: &str,
        msg: &impl Message,
        metadata: &[(&str, &str)],
    ) -> u32 {
        let id = self.next_id();
        let body = message::encode_request(service, method, msg, metadata);
        frame::write_frame(&mut self.w, id, kind::REQUEST, 0, &[&body]).unwrap();
        id
    }

    /// Like `send`, returning the write's error instead of panicking (for
    /// peers the agent may already have dropped).
    pub fn try_send(&mut self, method: &str, msg: &impl Message) -> std::io::Result<u32> {
        let id = self.next_id();
        let body = message::encode_request(vaccel_rpc::SERVICE, method, msg, &[]);
        frame::write_frame(&mut self.w, id, kind::REQUEST, 0, &[&body])?;
        Ok(id)
    }

    pub fn send_frame(&mut self, stream_id: u32, kind: u8, flags: u8, body: &[u8]) {
        frame::write_frame(&mut self.w, stream_id, kind, flags, &[body]).unwrap();
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    /// The next frame with its decoded `grpc.Response`.
    pub fn recv(&mut self) -> (Header, grpc::Response) {
        let f = self.r.read_frame(usize::MAX).expect("a response frame");
        let resp = message::decode_response(f.body).expect("a grpc.Response");
        (f.header, resp)
    }

    /// The next response as a result: its payload decoded, or its status.
    pub fn recv_result<R: Message + Default>(&mut self) -> (u32, CallResult<R>) {
        let (h, resp) = self.recv();
        (h.stream_id, to_result(resp))
    }

    /// One call, waiting for its answer (on the agent service).
    pub fn call<R: Message + Default>(
        &mut self,
        method: &str,
        msg: &impl Message,
    ) -> CallResult<R> {
        self.call_with(vaccel_rpc::SERVICE, method, msg, &[])
    }

    pub fn call_with<R: Message + Default>(
        &mut self,
        service: &str,
        method: &str,
        msg: &impl Message,
        metadata: &[(&str, &str)],
    ) -> CallResult<R> {
        let id = self.send_to(service, method, msg, metadata);
        let (got, r) = self.recv_result();
        assert_eq!(got, id, "answer on the request's stream");
        r
    }

    pub fn create_session(&mut self, flags: u32) -> i64 {
        let r: ps::CreateResponse = self
            .call("CreateSession", &ps::CreateRequest { flags })
            .unwrap();
        assert!(r.session_id > 0);
        r.session_id
    }

    /// Registers `data` as a one-blob `DATA` resource with `session_id`; its id.
    pub fn register_blob(&mut self, session_id: i64, name: &str, data: &'static [u8]) -> i64 {
        let r: pr::RegisterResponse = self
            .call("RegisterResource", &blob_request(session_id, name, data))
            .unwrap();
        r.resource_id
    }

    pub fn destroy_session(&mut self, id: i64) -> CallResult<pv::empty::Empty> {
        self.call("DestroySession", &ps::DestroyRequest { session_id: id })
    }

    /// Whether the peer closed the connection (EOF before any further frame).
    pub fn is_closed(&mut self) -> bool {
        matches!(
            self.r.read_frame(usize::MAX),
            Err(frame::FrameError::Closed | frame::FrameError::Io(_))
        )
    }
}

/// A `RegisterResource` request of `data` as a one-blob `DATA` resource of `session_id`.
pub fn blob_request(session_id: i64, name: &str, data: &'static [u8]) -> pr::RegisterRequest {
    pr::RegisterRequest {
        blobs: vec![pr::Blob {
            r#type: pr::BlobType::Buffer as i32,
            name: name.into(),
            data: Bytes::from_static(data),
            size: data.len() as u32,
        }],
        resource_type: pr::ResourceType::Data as i32,
        session_id,
        ..Default::default()
    }
}

pub fn to_result<R: Message + Default>(resp: grpc::Response) -> CallResult<R> {
    let st = resp.status.unwrap_or_default();
    if st.code != 0 {
        return Err(st);
    }
    Ok(R::decode(resp.payload).expect("a decodable response message"))
}

/// The `vaccel.Error` detail of a status.
pub fn detail(st: &grpc::Status) -> pv::Error {
    let any = st.details.first().expect("a detail");
    assert_eq!(any.type_url, "type.googleapis.com/vaccel.ProtoError");
    pv::Error::decode(any.value.clone()).unwrap()
}

pub fn arg(ty: pg::ArgType, buf: Vec<u8>) -> pg::Arg {
    pg::Arg {
        size: buf.len() as u32,
        buf: Bytes::from(buf),
        arg_type: ty as i32,
        ..Default::default()
    }
}

/// Genop image classification: read `[UINT8 3, BUFFER image]`, write two `UCHAR_ARRAY`s.
pub fn classify_genop(session_id: i64, image: Vec<u8>, out_len: usize) -> pg::Request {
    pg::Request {
        session_id,
        read_args: vec![
            arg(pg::ArgType::Uint8, vec![3]),
            arg(pg::ArgType::Buffer, image),
        ],
        write_args: vec![
            arg(pg::ArgType::UcharArray, vec![0; out_len]),
            arg(pg::ArgType::UcharArray, vec![0; out_len]),
        ],
    }
}

/// Genop EXEC of mbench busy-waiting `ms` milliseconds.
pub fn mbench_genop(session_id: i64, ms: u32) -> pg::Request {
    let s = |t: &str| arg(pg::ArgType::String, format!("{t}\0").into_bytes());
    pg::Request {
        session_id,
        read_args: vec![
            arg(pg::ArgType::Uint8, vec![1]),
            s("mbench"),
            s("mbench"),
            s(&ms.to_string()),
            arg(pg::ArgType::Buffer, b"payload".to_vec()),
        ],
        write_args: vec![],
    }
}

/// The text of a NUL-padded buffer.
pub fn c_text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Waits until `path` exists or not.
pub fn wait_path(path: &Path, exists: bool, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if path.exists() == exists {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Closes the client's writing side only (the agent sees EOF; answers can still be read).
pub fn shutdown_write(c: &RawClient) {
    use vaccel_rpc::transport::Stream;
    let how = std::net::Shutdown::Write;
    match &c.w {
        Stream::Tcp(s) => s.shutdown(how).unwrap(),
        Stream::Unix(s) => s.shutdown(how).unwrap(),
        Stream::Vsock(s) => s.shutdown(how).unwrap(),
    }
}

/// `GET path` over HTTP/1.1: (status code, headers, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(len, body.len(), "Content-Length matches the body");
    (code, head.to_owned(), body.to_owned())
}

/// A frame header announcing `length` bytes on stream 1.
pub fn frame_header(length: u32, flags: u8) -> [u8; 10] {
    Header {
        length,
        stream_id: 1,
        kind: kind::REQUEST,
        flags,
    }
    .encode()
}

/// The next answer, on `stream_id`: a refusal with these codes.
pub fn refused(
    c: &mut RawClient,
    stream_id: u32,
    grpc_code: i32,
    vaccel_code: vaccel::ErrorCode,
) -> grpc::Status {
    let (h, r) = c.recv();
    assert_eq!(h.stream_id, stream_id);
    let st = r.status.unwrap_or_default();
    assert_eq!(st.code, grpc_code, "{st:?}");
    assert_eq!(status_to_error(&st).code(), vaccel_code, "{st:?}");
    st
}

/// A well-behaved client: its own connection, a session created and destroyed.
pub fn served(agent: &AgentProc) {
    let mut c = agent.connect();
    let id = c.create_session(0);
    c.destroy_session(id).unwrap();
}

/// A well-behaved client in another process (another client to the agent on unix sockets):
/// the agent binary's own `--check`.
pub fn served_in_another_process(agent: &AgentProc) {
    let out = Command::new(AGENT)
        .args([
            "--check",
            &agent.address.to_string(),
            "--check-timeout",
            "20",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `kB` field of `/proc/PID/status` (`VmSize`, `VmRSS`, ...), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let prefix = format!("{field}:");
    let line = status
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Fails the test, with the agent's log tail, if the agent has exited.
pub fn still_running(agent: &mut AgentProc) {
    if let Some(status) = agent.child.try_wait().unwrap() {
        agent.stop_and_report(&format!("the agent died: {status}"));
    }
}

/// One round of a well-behaved tenant on `c`: a session, `blob` registered as a resource of
/// it, a Genop, the resource unregistered and the session destroyed. Returns the calls made;
/// the first refusal ends the round.
pub fn tenant_round(c: &mut RawClient, blob: &'static [u8]) -> CallResult<u64> {
    let s: ps::CreateResponse = c.call("CreateSession", &ps::CreateRequest { flags: 0 })?;
    let session_id = s.session_id;
    let r: pr::RegisterResponse =
        c.call("RegisterResource", &blob_request(session_id, "blob", blob))?;
    let _: pg::Response = c.call("Genop", &classify_genop(session_id, vec![7; 256], 64))?;
    let _: pv::empty::Empty = c.call(
        "UnregisterResource",
        &pr::UnregisterRequest {
            resource_id: r.resource_id,
            session_id,
        },
    )?;
    c.destroy_session(session_id)?;
    Ok(5)
}

/// The body of a `Genop` request whose payload is `n` empty read arguments (2 bytes each on
/// the wire): 19 Mi of them make the 38 MiB request of issue #14.
pub fn genop_of_empty_args(n: usize) -> Vec<u8> {
    let mut b = message::encode_request(vaccel_rpc::SERVICE, "Genop", &pg::Request::default(), &[]);
    let args = [0x12u8, 0x00].repeat(n);
    b.push(0x1a);
    prost::encoding::encode_varint(args.len() as u64, &mut b);
    b.extend_from_slice(&args);
    b
}

/// Opens chunked `Genop` request `id` announcing 4 GiB (`vaccel-rs-chunked`), and sends
/// none of it.
pub fn open_chunked_genop(c: &mut RawClient, id: u32) {
    let req = grpc::Request {
        service: vaccel_rpc::SERVICE.into(),
        method: "Genop".into(),
        metadata: vec![grpc::KeyValue {
            key: vaccel_rpc::server::META_CHUNKED.into(),
            value: (4u64 << 30).to_string(),
        }],
        ..Default::default()
    };
    c.send_frame(
        id,
        kind::REQUEST,
        frame::flags::REMOTE_OPEN,
        &req.encode_to_vec(),
    );
}

/// Warms an agent up for an address-space limit: as many connection threads at once as glibc
/// makes malloc arenas (each reserves 64 MiB of address space, once, that it may never touch),
/// so that a limit set afterwards is left for requests. Returns once the agent has released
/// them.
pub fn warm_up_arenas(agent: &mut AgentProc) {
    let mut warm: Vec<RawClient> = (0..24).map(|_| agent.connect()).collect();
    for c in &mut warm {
        c.send("CreateSession", &ps::CreateRequest { flags: 0 });
    }
    for c in &mut warm {
        let _ = c.recv();
    }
    drop(warm);
    if !agent.wait_for_log("disconnected: releasing", DEADLINE) {
        agent.stop_and_report("the warm-up's connections were not released");
    }
}

/// `n` connections, each announcing a 1 GiB frame and sending 100 bytes of it: nothing may be
/// reserved for what has not come, and the read timeout closes them.
pub fn trickle_1gib_frames(agent: &AgentProc, n: usize) -> Vec<RawClient> {
    (0..n)
        .map(|_| {
            let mut c = agent.connect();
            c.write_raw(&frame_header((1 << 30) - 1, 0));
            c.write_raw(&[0x0a; 100]);
            c
        })
        .collect()
}

/// A 38 MiB `Genop` of 19 Mi empty arguments, on a connection of its own: refused from its
/// encoded size (`--max-genop-args`), never decoded.
pub fn genop_of_38_mib_is_refused(agent: &AgentProc) {
    let mut c = agent.connect();
    c.send_frame(1, kind::REQUEST, 0, &genop_of_empty_args(19 << 20));
    let st = refused(
        &mut c,
        1,
        vaccel_rpc::status::code::RESOURCE_EXHAUSTED,
        vaccel::ErrorCode::ENOMEM,
    );
    assert!(st.message.contains("--max-genop-args"), "{st:?}");
}

/// Limits the address space of running process `pid` to `bytes` (`prlimit`, util-linux).
pub fn limit_address_space(pid: u32, bytes: u64) {
    let out = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--as={bytes}:{bytes}"))
        .output()
        .expect("prlimit (util-linux)");
    assert!(out.status.success(), "{out:?}");
}
