//! Shared memory for large payloads (extension 6, docs/wire.md): the real agent binary, our
//! client and the rpc plugin using it, and hostile clients (descriptors that are not sealed
//! memfds, memfds smaller than announced, lying regions, over-budget attachments, clients that
//! die with memory attached). The agent must answer each with a clear error, stay up, and give
//! the memory back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use nix::fcntl::{FallocateFlags, FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use vaccel::ErrorCode;
use vaccel_rpc::client::{Client, GenopArg};
use vaccel_rpc::frame::{Header, kind};
use vaccel_rpc::message;
use vaccel_rpc::proto::vaccel::genop as pg;
use vaccel_rpc::proto::vaccel::rs::ext;
use vaccel_rpc::server::{META_SHARED_ARGS, META_SHARED_MEMORY};
use vaccel_rpc::shm::{SharedBuffer, SharedMemory, send_with_fd};
use vaccel_rpc::status::{code, status_to_error};
use vaccel_rpc::transport::Stream;

const MIB: usize = 1 << 20;

fn agent(args: &[&str]) -> AgentProc {
    let mut all = vec!["--metrics-address", "127.0.0.1:0"];
    all.extend_from_slice(args);
    AgentProc::unix(&all)
}

/// A metric's value from the agent's `/metrics`.
fn metric(agent: &AgentProc, name: &str) -> u64 {
    let (_, _, body) = http_get(&agent.metrics_address(), "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

/// Waits until `name` reads `value`.
fn wait_metric(agent: &AgentProc, name: &str, value: u64) {
    let end = Instant::now() + DEADLINE;
    while metric(agent, name) != value {
        assert!(
            Instant::now() < end,
            "{name} stayed at {}",
            metric(agent, name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A classify genop through `client`: the agent's write arguments.
fn classify(client: &Client, session: i64, image: &[u8]) -> Vec<pg::Arg> {
    let out = [0u8; 256];
    client
        .genop(
            session,
            &[
                GenopArg::new(vaccel::ArgType::Uint8, &[3]),
                GenopArg::new(vaccel::ArgType::Buffer, image),
            ],
            &[
                GenopArg::new(vaccel::ArgType::UcharArray, &out),
                GenopArg::new(vaccel::ArgType::UcharArray, &out),
            ],
        )
        .unwrap()
}

/// Sends a REQUEST frame of `body` (an encoded envelope) with `fd` attached; its stream id.
fn send_request_with_fd(c: &mut RawClient, body: &[u8], fd: BorrowedFd<'_>) -> u32 {
    let id = c.next_id();
    let Stream::Unix(s) = &c.w else {
        panic!("unix only")
    };
    send_with_fd(s.as_fd(), &[&request_head(id, body), body], fd).unwrap();
    id
}

fn request_head(stream_id: u32, body: &[u8]) -> [u8; 10] {
    Header {
        length: body.len() as u32,
        stream_id,
        kind: kind::REQUEST,
        flags: 0,
    }
    .encode()
}

/// Sends `AttachSharedMemory{size}` with `fds` attached (none: a plain frame).
fn send_attach(c: &mut RawClient, size: u64, fds: &[BorrowedFd<'_>]) -> u32 {
    send_attach_region(c, size, 0, fds)
}

/// Sends `AttachSharedMemory{size, region}` with `fds` attached (none: a plain frame).
fn send_attach_region(c: &mut RawClient, size: u64, region: u32, fds: &[BorrowedFd<'_>]) -> u32 {
    let body = message::encode_request(
        vaccel_rpc::SERVICE_EXT,
        "AttachSharedMemory",
        &ext::AttachSharedMemoryRequest { size, region },
        &[],
    );
    if let [fd] = fds {
        return send_request_with_fd(c, &body, *fd);
    }
    let id = c.next_id();
    let head = request_head(id, &body);
    let Stream::Unix(s) = &c.w else {
        panic!("unix only")
    };
    match fds {
        [a, b, ..] => {
            use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
            use std::os::fd::AsRawFd;
            let raw = [a.as_raw_fd(), b.as_raw_fd()];
            let data = [&head[..], &body].concat();
            let n = sendmsg::<UnixAddr>(
                s.as_raw_fd(),
                &[std::io::IoSlice::new(&data)],
                &[ControlMessage::ScmRights(&raw)],
                MsgFlags::empty(),
                None,
            )
            .unwrap();
            assert_eq!(n, data.len());
        }
        _ => c.write_raw(&[&head[..], &body].concat()),
    }
    id
}

fn attach(
    c: &mut RawClient,
    size: u64,
    fds: &[BorrowedFd<'_>],
) -> CallResult<ext::AttachSharedMemoryResponse> {
    let id = send_attach(c, size, fds);
    let (got, r) = c.recv_result();
    assert_eq!(got, id);
    r
}

/// A memfd of `len` bytes, sealed with `seals`.
fn memfd(len: usize, seals: SealFlag) -> OwnedFd {
    let fd = sparse_memfd(len);
    // Allocated in full, as the agent wants it.
    nix::fcntl::fallocate(&fd, FallocateFlags::empty(), 0, len as i64).unwrap();
    if !seals.is_empty() {
        fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).unwrap();
    }
    fd
}

/// A memfd of `len` bytes with none of them allocated.
fn sparse_memfd(len: usize) -> OwnedFd {
    let fd = memfd_create(c"t", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).unwrap();
    nix::unistd::ftruncate(&fd, len as i64).unwrap();
    fd
}

/// A genop request whose message lies in shared memory at `region`.
fn shm_call<R: prost::Message + Default>(
    c: &mut RawClient,
    method: &str,
    region: &str,
) -> CallResult<R> {
    c.call_with(
        vaccel_rpc::SERVICE,
        method,
        &pg::Request::default(),
        &[(META_SHARED_MEMORY, region)],
    )
}

fn refused_with(r: CallResult<impl std::fmt::Debug>, grpc: i32, code: ErrorCode, text: &str) {
    let st = r.expect_err("refused");
    assert_eq!(st.code, grpc, "{st:?}");
    assert_eq!(status_to_error(&st).code(), code, "{st:?}");
    assert!(st.message.contains(text), "`{text}` not in {st:?}");
}

#[test]
fn a_large_genop_goes_through_shared_memory_and_gives_the_socket_result() {
    let agent = agent(&["--vaccel-config", "plugins=noop,log_level=4"]);
    let client = Client::connect(&agent.address).unwrap();
    let caps = client.capabilities().unwrap();
    assert_eq!(
        caps.shared_memory_max,
        1 << 30,
        "offered on unix, default 1 GiB"
    );
    let session = client.create_session(0).unwrap();
    let image: Vec<u8> = (0..4 * MIB).map(|i| (i % 251) as u8).collect();
    let via_shm = classify(&client, session, &image);
    assert!(
        agent.find_log("Attached").is_some(),
        "{}",
        agent.log_tail(20)
    );
    assert!(
        agent
            .find_log(&format!("len_img: {}", image.len()))
            .is_some()
    );
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        1
    );
    // The same call on the socket (a raw client: plain frames).
    let mut raw = agent.connect();
    let s2 = raw.create_session(0);
    let via_socket: pg::Response = raw.call("Genop", &classify_genop(s2, image, 256)).unwrap();
    assert_eq!(via_shm, via_socket.write_args);
    assert_eq!(c_text(&via_shm[0].buf), "This is a dummy imgname!");
    // Small calls keep the socket: nothing more attached.
    classify(&client, session, &[1; 1024]);
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        1
    );
}

#[test]
fn memory_is_attached_once_reused_grown_and_released_with_the_connection() {
    let agent = agent(&[]);
    let client = Client::connect(&agent.address).unwrap();
    let session = client.create_session(0).unwrap();
    let image = vec![0x5a; MIB];
    for _ in 0..20 {
        classify(&client, session, &image);
    }
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        1
    );
    assert_eq!(agent.count_log("Attached"), 1);
    let first = metric(&agent, "vaccel_agent_shared_memory_bytes");
    assert!(first >= MIB as u64 && first <= 2 * MIB as u64, "{first}");
    // A larger message: attached again, larger; the first one given back.
    classify(&client, session, &vec![1; 8 * MIB]);
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        2
    );
    let second = metric(&agent, "vaccel_agent_shared_memory_bytes");
    assert!(
        second >= 8 * MIB as u64 && second <= 10 * MIB as u64,
        "{second}"
    );
    // Concurrent calls on one connection: each gets its answer (one uses the memory, the
    // others the socket).
    let client = Arc::new(client);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || {
                let image = vec![i as u8; 2 * MIB];
                for _ in 0..5 {
                    let out = classify(&client, session, &image);
                    assert_eq!(c_text(&out[1].buf), "This is a dummy classification tag!");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(client);
    wait_metric(&agent, "vaccel_agent_shared_memory_bytes", 0);
    served(&agent);
}

#[test]
fn the_rpc_plugin_uses_shared_memory_for_large_images() {
    let agent = agent(&[]);
    let rt = rpc_runtime(&agent);
    let sess = vaccel::Session::new(&rt, 0).unwrap();
    let (mut text, mut name) = (vec![0u8; 512], vec![0u8; 512]);
    for _ in 0..3 {
        sess.image_classify(&vec![7; 3 * MIB], &mut text, &mut name)
            .unwrap();
    }
    assert_eq!(c_text(&text), "This is a dummy classification tag!");
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        1
    );
    drop(sess);
    drop(rt);
    wait_metric(&agent, "vaccel_agent_shared_memory_bytes", 0);
}

#[test]
fn descriptors_that_are_not_sealed_memfds_of_the_size_announced_are_refused() {
    let mut agent = agent(&[]);
    let mut c = agent.connect();
    let bad = ErrorCode::EINVAL;
    let inval = code::INVALID_ARGUMENT;
    // Not sealed against shrinking: it could be truncated under the mapping (SIGBUS).
    let unsealed = memfd(MIB, SealFlag::empty());
    refused_with(
        attach(&mut c, MIB as u64, &[unsealed.as_fd()]),
        inval,
        bad,
        "F_SEAL_SHRINK",
    );
    // Sealed, but truncated below the size announced.
    let small = memfd(4096, SealFlag::F_SEAL_SHRINK);
    refused_with(
        attach(&mut c, MIB as u64, &[small.as_fd()]),
        inval,
        bad,
        "fewer than",
    );
    // Not a regular file; a file on disk (or an unsealable tmpfs file).
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    refused_with(
        attach(&mut c, 4096, &[a.as_fd()]),
        inval,
        bad,
        "not a regular file",
    );
    let path = agent.dir.path().join("plain-file");
    let file = std::fs::File::create_new(&path).unwrap();
    file.set_len(MIB as u64).unwrap();
    let st = attach(&mut c, 4096, &[file.as_fd()]).expect_err("refused");
    assert!(
        st.message.contains("not a memfd") || st.message.contains("F_SEAL_SHRINK"),
        "{st:?}"
    );
    // No descriptor, two descriptors, a size of zero or over the agent's maximum.
    refused_with(attach(&mut c, 4096, &[]), inval, bad, "no descriptor");
    let good = memfd(MIB, SealFlag::F_SEAL_SHRINK);
    refused_with(
        attach(&mut c, 4096, &[good.as_fd(), good.as_fd()]),
        inval,
        bad,
        "more than one descriptor",
    );
    refused_with(attach(&mut c, 0, &[good.as_fd()]), inval, bad, "at least 1");
    refused_with(
        attach(&mut c, 2 << 30, &[good.as_fd()]),
        inval,
        bad,
        "at most",
    );
    // Nothing was attached, and the connection still serves.
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        0
    );
    let id = c.create_session(0);
    c.destroy_session(id).unwrap();
    assert!(attach(&mut c, MIB as u64, &[good.as_fd()]).is_ok());
    still_running(&mut agent);
}

#[test]
fn lying_regions_get_clear_errors_and_the_agent_stays_up() {
    let mut agent = agent(&[]);
    let mut c = agent.connect();
    let inval = code::INVALID_ARGUMENT;
    let bad = ErrorCode::EINVAL;
    // Before any attach.
    refused_with(
        shm_call::<pg::Response>(&mut c, "Genop", "0:16"),
        inval,
        bad,
        "no shared memory",
    );
    let (mut mine, fd) = SharedMemory::create(MIB).unwrap();
    attach(&mut c, MIB as u64, &[fd.as_fd()]).unwrap();
    for region in [
        "1048000:1000",
        "0:1048577",
        "18446744073709551615:2",
        "1:18446744073709551615",
    ] {
        refused_with(
            shm_call::<pg::Response>(&mut c, "Genop", region),
            inval,
            bad,
            "outside",
        );
    }
    for region in ["", "12", "a:b", "-1:4", "1:2:3"] {
        refused_with(
            shm_call::<pg::Response>(&mut c, "Genop", region),
            inval,
            bad,
            "is not",
        );
    }
    // Garbage where a message should be: the decoder refuses it.
    mine.write_parts(&[&[0xff; 4096]]).unwrap();
    let st = shm_call::<pg::Response>(&mut c, "Genop", "0:4096").expect_err("refused");
    assert_eq!(st.code, inval, "{st:?}");
    // Only Genop takes its message from shared memory.
    refused_with(
        shm_call::<vaccel_rpc::proto::vaccel::session::CreateResponse>(
            &mut c,
            "CreateSession",
            "0:0",
        ),
        inval,
        bad,
        "cannot take",
    );
    // A payload besides the region.
    let st = c
        .call_with::<pg::Response>(
            vaccel_rpc::SERVICE,
            "Genop",
            &classify_genop(1, vec![1; 16], 8),
            &[(META_SHARED_MEMORY, "0:16")],
        )
        .expect_err("refused");
    assert!(st.message.contains("payload besides"), "{st:?}");
    // A valid region works on the same connection.
    let session = c.create_session(0);
    let msg = prost::Message::encode_to_vec(&classify_genop(session, vec![3; 64 << 10], 64));
    mine.write_parts(&[&msg]).unwrap();
    let r: pg::Response = shm_call(&mut c, "Genop", &format!("0:{}", msg.len())).unwrap();
    assert_eq!(r.write_args.len(), 2);
    still_running(&mut agent);
}

#[test]
fn memory_over_the_clients_budget_is_refused() {
    let mut agent = agent(&["--max-bytes-per-client", &(8 * MIB).to_string()]);
    let mut c = agent.connect();
    let (_map, fd) = SharedMemory::create(16 * MIB).unwrap();
    refused_with(
        attach(&mut c, 16 * MIB as u64, &[fd.as_fd()]),
        code::RESOURCE_EXHAUSTED,
        ErrorCode::ENOMEM,
        "--max-bytes-per-client",
    );
    assert!(attach(&mut c, 6 * MIB as u64, &[fd.as_fd()]).is_ok());
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_bytes"),
        6 * MIB as u64
    );
    // Our client (the same process: the same client to the agent) falls back to the socket
    // when the agent refuses its memory (3 MiB for this image: 6 + 3 > 8), and the socket
    // call fits (6 + 1.9 < 8).
    let client = Client::connect(&agent.address).unwrap();
    let session = client.create_session(0).unwrap();
    let image = vec![1; 1_990_000];
    classify(&client, session, &image);
    classify(&client, session, &image);
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        1
    );
    assert_eq!(
        metric(
            &agent,
            "vaccel_agent_quota_refusals_total{quota=\"bytes per client\"}"
        ),
        2
    );
    still_running(&mut agent);
}

#[test]
fn a_client_dying_with_memory_attached_leaves_the_agent_up_and_the_memory_released() {
    let mut agent = agent(&[]);
    // The message in region 0, then the image in an argument buffer (region 5), in turn.
    for round in 0..4 {
        let mut c = agent.connect();
        let session = c.create_session(0);
        let (mut mine, fd) = SharedMemory::create(4 * MIB).unwrap();
        let (req, meta) = if round % 2 == 0 {
            attach(&mut c, 4 * MIB as u64, &[fd.as_fd()]).unwrap();
            let msg = classify_genop(session, vec![3; 3 * MIB], 64);
            mine.write_parts(&[&prost::Message::encode_to_vec(&msg)])
                .unwrap();
            let region = format!("0:{}", prost::Message::encoded_len(&msg));
            (pg::Request::default(), (META_SHARED_MEMORY, region))
        } else {
            attach_region(&mut c, 4 * MIB as u64, 5, fd.as_fd()).unwrap();
            mine.write_parts(&[&vec![3; 4 * MIB]]).unwrap();
            let mut req = classify_genop(session, Vec::new(), 64);
            req.read_args[1].size = (4 * MIB) as u32;
            (req, (META_SHARED_ARGS, format!("1=5:0:{}", 4 * MIB)))
        };
        // The call is sent, and the client goes away without reading the answer, its
        // memory unmapped on its side.
        c.send_to(vaccel_rpc::SERVICE, "Genop", &req, &[(meta.0, &meta.1)]);
        drop(mine);
        drop(fd);
        drop(c);
    }
    wait_metric(&agent, "vaccel_agent_shared_memory_bytes", 0);
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        4
    );
    still_running(&mut agent);
    served(&agent);
}

#[test]
fn sparse_memfds_are_refused_and_pages_the_agent_touched_go_with_the_attachment() {
    let agent = agent(&[]);
    let allocated = |fd: &OwnedFd| nix::sys::stat::fstat(fd).unwrap().st_blocks * 512;
    // Sparse: the agent's faults would allocate its pages, at no cost to the client.
    let mut c = agent.connect();
    let sparse = sparse_memfd(4 * MIB);
    fcntl(&sparse, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK)).unwrap();
    refused_with(
        attach(&mut c, 4 * MIB as u64, &[sparse.as_fd()]),
        code::INVALID_ARGUMENT,
        ErrorCode::EINVAL,
        "allocate it in full",
    );
    assert_eq!(allocated(&sparse), 0, "the refusal touched no page");
    // Allocated, attached, then punched by the client: the agent's read of the region
    // faults pages in (its own); the client keeps the memfd after its connection ends,
    // several times over, and no page stays behind.
    let punch = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    let mut kept = Vec::new();
    for _ in 0..3 {
        let mut c = agent.connect();
        let fd = memfd(4 * MIB, SealFlag::F_SEAL_SHRINK);
        attach(&mut c, 4 * MIB as u64, &[fd.as_fd()]).unwrap();
        nix::fcntl::fallocate(&fd, punch, 0, 4 * MIB as i64).unwrap();
        let r = shm_call::<pg::Response>(&mut c, "Genop", &format!("0:{}", 2 * MIB));
        assert!(r.is_err(), "zeros are no genop request");
        drop(c);
        kept.push(fd);
    }
    wait_metric(&agent, "vaccel_agent_shared_memory_bytes", 0);
    for fd in &kept {
        assert_eq!(allocated(fd), 0);
    }
    served(&agent);
}

#[test]
fn tcp_never_offers_shared_memory() {
    let agent = AgentProc::tcp(&[]);
    let client = Client::connect(&agent.address).unwrap();
    assert_eq!(client.capabilities().unwrap().shared_memory_max, 0);
    let session = client.create_session(0).unwrap();
    classify(&client, session, &vec![1; 2 * MIB]);
    assert!(agent.lacks_log("Attached"));
    let mut c = agent.connect();
    let st = c
        .call_with::<ext::AttachSharedMemoryResponse>(
            vaccel_rpc::SERVICE_EXT,
            "AttachSharedMemory",
            &ext::AttachSharedMemoryRequest {
                size: 4096,
                region: 0,
            },
            &[],
        )
        .expect_err("refused");
    assert!(st.message.contains("does not exist"), "{st:?}");
    // And a unix agent started with it off does not offer it either.
    let off = AgentProc::unix(&["--max-shared-memory", "0"]);
    let client = Client::connect(&off.address).unwrap();
    assert_eq!(client.capabilities().unwrap().shared_memory_max, 0);
}

/// The agent's open descriptors.
fn open_fds(agent: &AgentProc) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", agent.child.id()))
        .unwrap()
        .count()
}

#[test]
fn descriptors_sent_with_other_frames_are_closed_not_leaked() {
    let mut agent = agent(&[]);
    let before = open_fds(&agent);
    let mut c = agent.connect();
    // Counted once the connection has served a call (it is set up by then).
    let session = c.create_session(0);
    let with_conn = open_fds(&agent);
    let fd = memfd(MIB, SealFlag::F_SEAL_SHRINK);
    let body = message::encode_request(
        vaccel_rpc::SERVICE,
        "DestroySession",
        &vaccel_rpc::proto::vaccel::session::DestroyRequest { session_id: 999 },
        &[],
    );
    for _ in 0..50 {
        let id = send_request_with_fd(&mut c, &body, fd.as_fd());
        let (got, r) = c.recv_result::<vaccel_rpc::proto::vaccel::empty::Empty>();
        assert_eq!(got, id);
        assert!(r.is_err(), "unknown session");
    }
    // At most one waits; the next attach is refused (more than one came) and takes none.
    assert!(
        open_fds(&agent) <= with_conn + 1,
        "{} > {with_conn} + 1",
        open_fds(&agent)
    );
    refused_with(
        attach(&mut c, MIB as u64, &[]),
        code::INVALID_ARGUMENT,
        ErrorCode::EINVAL,
        "more than one descriptor",
    );
    assert_eq!(open_fds(&agent), with_conn);
    // An attachment holds one descriptor (its memfd, whose pages it discards when it ends),
    // and the connection's close leaves nothing behind.
    attach(&mut c, MIB as u64, &[fd.as_fd()]).unwrap();
    assert_eq!(open_fds(&agent), with_conn + 1);
    c.destroy_session(session).unwrap();
    drop(c);
    wait_metric(&agent, "vaccel_agent_shared_memory_bytes", 0);
    let end = Instant::now() + DEADLINE;
    while open_fds(&agent) > before {
        assert!(
            Instant::now() < end,
            "{} descriptors left",
            open_fds(&agent) - before
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    still_running(&mut agent);
}

/// Attaches `fd` as argument buffer `region`.
fn attach_region(
    c: &mut RawClient,
    size: u64,
    region: u32,
    fd: BorrowedFd<'_>,
) -> CallResult<ext::AttachSharedMemoryResponse> {
    let id = send_attach_region(c, size, region, &[fd]);
    let (got, r) = c.recv_result();
    assert_eq!(got, id);
    r
}

/// A classify genop whose image (read argument 1) says `size` bytes and carries `image`,
/// with `args` as its `vaccel-rs-shm-args`.
fn shared_arg_call(
    c: &mut RawClient,
    session: i64,
    image: Vec<u8>,
    size: u32,
    args: &str,
) -> CallResult<pg::Response> {
    let mut req = classify_genop(session, image, 64);
    req.read_args[1].size = size;
    c.call_with(
        vaccel_rpc::SERVICE,
        "Genop",
        &req,
        &[(META_SHARED_ARGS, args)],
    )
}

/// A runtime whose one plugin is `rpc`, to `agent`.
fn rpc_runtime(agent: &AgentProc) -> vaccel::Runtime {
    vaccel::builder()
        .skip_logging()
        .config(vaccel::Config::default().with_log_level(None))
        .plugin(Arc::new(vaccel_plugin_rpc::RpcPlugin::with_address(
            agent.address.clone(),
        )))
        .build()
        .unwrap()
}

/// `SharedBuffer` bytes as f64 values (the buffer is page-aligned).
fn values(buf: &mut SharedBuffer) -> &mut [f64] {
    bytemuck::cast_slice_mut(&mut buf[..])
}

#[test]
fn argument_buffers_are_read_where_they_lie_attached_once_and_detached_when_dropped() {
    let agent = agent(&["--vaccel-config", "plugins=blas"]);
    let rt = rpc_runtime(&agent);
    let sess = vaccel::Session::new(&rt, 0).unwrap();
    let mut buf = SharedBuffer::new(2 * MIB).unwrap();
    let n = 2 * MIB / 8;
    for (i, v) in values(&mut buf).iter_mut().enumerate() {
        *v = (i % 1000) as f64;
    }
    let mut out = vec![0f64; n];
    // Each call sees what the buffer holds at that moment: the agent reads it where it lies.
    for round in 0..20 {
        values(&mut buf)[7] = -1.0 - f64::from(round);
        let (min, max) = sess
            .minmax(bytemuck::cast_slice(&buf[..]), -100, 2000, &mut out)
            .unwrap();
        assert_eq!((min, max), (-1.0 - f64::from(round), 999.0));
        assert_eq!(out[7], -1.0 - f64::from(round));
        assert_eq!(out[n - 1], ((n - 1) % 1000) as f64);
    }
    // A part of the buffer, away from its start.
    let part = &bytemuck::cast_slice::<u8, f64>(&buf[..])[100_000..140_000];
    let (min, max) = sess.minmax(part, 0, 2000, &mut out).unwrap();
    assert_eq!((min, max), (0.0, 999.0));
    assert_eq!(out[0], (100_000 % 1000) as f64);
    // The buffer attached once (region 1), and no copy of its values made; the output
    // (as large: minmax writes every value) goes through the message memory (region 0).
    assert_eq!(agent.count_log("as region 1"), 1, "{}", agent.log_tail(20));
    assert_eq!(agent.count_log("as region 0"), 1, "{}", agent.log_tail(20));
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        2
    );
    let with_first = metric(&agent, "vaccel_agent_shared_memory_bytes");
    // Dropped: detached at the connection's next call with a buffer, whose own buffer is
    // attached in its place.
    drop(buf);
    let mut other = SharedBuffer::new(MIB).unwrap();
    values(&mut other).fill(5.0);
    let (min, _) = sess
        .minmax(bytemuck::cast_slice(&other[..]), 0, 10, &mut out)
        .unwrap();
    assert_eq!(min, 5.0);
    assert_eq!(agent.count_log("as region 1"), 2);
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_bytes"),
        with_first - MIB as u64
    );
    // Ordinary memory keeps working beside it.
    let plain = vec![3.0f64; n];
    assert_eq!(sess.minmax(&plain, 0, 10, &mut out).unwrap(), (3.0, 3.0));
    drop(sess);
    drop(rt);
    wait_metric(&agent, "vaccel_agent_shared_memory_bytes", 0);
    // The agent discarded the pages when the connection ended: the buffer reads as zeros.
    assert!(other.iter().all(|&b| b == 0));
    served(&agent);
}

#[test]
fn argument_buffers_refused_or_full_fall_back_to_the_socket() {
    // Room for 15 argument buffers of 1 MiB, but a connection maximum of 4 MiB.
    let agent = agent(&["--max-shared-memory", &(4 * MIB).to_string()]);
    let client = Client::connect(&agent.address).unwrap();
    let caps = client.capabilities().unwrap();
    assert_eq!(caps.shared_memory_regions, 16);
    let session = client.create_session(0).unwrap();
    let buffers: Vec<SharedBuffer> = (0..6).map(|_| SharedBuffer::new(MIB).unwrap()).collect();
    for _ in 0..2 {
        for b in &buffers {
            let out = classify(&client, session, &b[..]);
            assert_eq!(c_text(&out[1].buf), "This is a dummy classification tag!");
        }
    }
    // Four attached (4 MiB), the others refused once each and sent on the socket.
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        4
    );
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_bytes"),
        4 * MIB as u64
    );
    drop(client);
    wait_metric(&agent, "vaccel_agent_shared_memory_bytes", 0);
}

#[test]
fn lying_argument_regions_get_clear_errors_and_the_agent_stays_up() {
    let mut agent = agent(&["--max-shared-memory", &(2 * MIB).to_string()]);
    let mut c = agent.connect();
    let inval = code::INVALID_ARGUMENT;
    let bad = ErrorCode::EINVAL;
    let session = c.create_session(0);
    // Before any attach.
    refused_with(
        shared_arg_call(&mut c, session, Vec::new(), 16, "1=1:0:16"),
        inval,
        bad,
        "no argument buffer is attached as region 1",
    );
    let (mut mine, fd) = SharedMemory::create(MIB).unwrap();
    attach_region(&mut c, MIB as u64, 1, fd.as_fd()).unwrap();
    mine.write_parts(&[&[9; 4096]]).unwrap();
    // Out of bounds, overflowing, malformed, region 0 (messages) or one not attached.
    for (args, size, text) in [
        ("1=1:1048000:1000", 1000, "outside"),
        ("1=1:0:1048577", 1_048_577, "outside"),
        ("1=1:18446744073709551615:2", 2, "outside"),
        ("1=1:1:18446744073709551615", 0, "outside"),
        ("1=0:0:16", 16, "no argument buffer is attached as region 0"),
        ("1=7:0:16", 16, "no argument buffer is attached as region 7"),
        ("1=99999999999:0:16", 16, "no argument buffer"),
        ("", 16, "is not"),
        ("1", 16, "is not"),
        ("1=1:0", 16, "is not"),
        ("x=1:0:16", 16, "is not"),
        ("1=1:0:-16", 16, "is not"),
        ("9=1:0:16", 16, "argument 9 does not exist"),
        ("1=1:0:16,1=1:0:16", 16, "named twice"),
    ] {
        refused_with(
            shared_arg_call(&mut c, session, Vec::new(), size, args),
            inval,
            bad,
            text,
        );
    }
    // Sizes that lie: the argument says otherwise than its region, or carries bytes too.
    refused_with(
        shared_arg_call(&mut c, session, Vec::new(), 15, "1=1:0:16"),
        inval,
        bad,
        "says 15 bytes",
    );
    refused_with(
        shared_arg_call(&mut c, session, vec![1; 16], 16, "1=1:0:16"),
        inval,
        bad,
        "carries 16",
    );
    let many: Vec<String> = (0..65).map(|i| format!("{i}=1:0:1")).collect();
    refused_with(
        shared_arg_call(&mut c, session, Vec::new(), 1, &many.join(",")),
        inval,
        bad,
        "more than 64",
    );
    // Regions past the last, over the connection's maximum, detaching what is not there.
    let (_other, fd2) = SharedMemory::create(2 * MIB).unwrap();
    refused_with(
        attach_region(&mut c, MIB as u64, 16, fd2.as_fd()),
        inval,
        bad,
        "regions are 0 to 15",
    );
    refused_with(
        attach_region(&mut c, 2 * MIB as u64, 2, fd2.as_fd()),
        code::RESOURCE_EXHAUSTED,
        ErrorCode::ENOMEM,
        "above its",
    );
    let detach = |c: &mut RawClient, region| {
        c.call_with::<ext::DetachSharedMemoryResponse>(
            vaccel_rpc::SERVICE_EXT,
            "DetachSharedMemory",
            &ext::DetachSharedMemoryRequest { region },
            &[],
        )
    };
    let unsealed = memfd(MIB, SealFlag::empty());
    refused_with(
        attach_region(&mut c, MIB as u64, 2, unsealed.as_fd()),
        inval,
        bad,
        "F_SEAL_SHRINK",
    );
    let st = detach(&mut c, 3).expect_err("nothing attached there");
    assert_eq!(st.code, code::NOT_FOUND, "{st:?}");
    // A valid argument works on the same connection, and a detached region is gone.
    let r = shared_arg_call(&mut c, session, Vec::new(), 4096, "1=1:0:4096").unwrap();
    assert_eq!(r.write_args.len(), 2);
    detach(&mut c, 1).unwrap();
    refused_with(
        shared_arg_call(&mut c, session, Vec::new(), 16, "1=1:0:16"),
        inval,
        bad,
        "no argument buffer is attached as region 1",
    );
    wait_metric(&agent, "vaccel_agent_shared_memory_bytes", 0);
    still_running(&mut agent);
}

#[test]
fn outputs_in_argument_buffers_are_written_where_the_client_reads_them() {
    let agent = agent(&["--vaccel-config", "plugins=blas"]);
    let rt = rpc_runtime(&agent);
    let sess = vaccel::Session::new(&rt, 0).unwrap();
    let n = MIB / 8;
    let mut input = SharedBuffer::new(MIB).unwrap();
    let mut output = SharedBuffer::new(MIB).unwrap();
    for round in 0..5 {
        for (i, v) in values(&mut input).iter_mut().enumerate() {
            *v = ((i + round) % 100) as f64;
        }
        values(&mut output).fill(-7.0);
        let sent = metric(&agent, "vaccel_agent_sent_bytes_total{method=\"Genop\"}");
        let (min, max) = sess
            .minmax(
                bytemuck::cast_slice(&input[..]),
                10,
                50,
                values(&mut output),
            )
            .unwrap();
        assert_eq!((min, max), (10.0, 50.0));
        let out = values(&mut output);
        assert_eq!(out[0], ((round % 100) as f64).clamp(10.0, 50.0));
        assert_eq!(
            out[n - 1],
            (((n - 1 + round) % 100) as f64).clamp(10.0, 50.0)
        );
        // The agent wrote the 1 MiB of outputs into the buffer: its answer is small.
        let answer = metric(&agent, "vaccel_agent_sent_bytes_total{method=\"Genop\"}") - sent;
        assert!(answer < 4096, "{answer} bytes sent");
    }
    // Both buffers attached once; no message memory (nothing large went as a message).
    assert_eq!(agent.count_log("as region 0"), 0, "{}", agent.log_tail(20));
    assert_eq!(
        metric(&agent, "vaccel_agent_shared_memory_attached_total"),
        2
    );
    // An output sharing bytes with the input (in place, in one buffer) goes as usual and
    // comes back in the answer.
    let mut both = SharedBuffer::new(2 * MIB).unwrap();
    values(&mut both).fill(99.0);
    let (head, tail) = values(&mut both).split_at_mut(n);
    let (min, _) = sess.minmax(head, 0, 10, &mut tail[..n]).unwrap();
    assert_eq!(min, 10.0);
    assert!(tail[..n].iter().all(|&v| v == 10.0));
    drop(sess);
    drop(rt);
    wait_metric(&agent, "vaccel_agent_shared_memory_bytes", 0);
    served(&agent);
}

#[test]
fn written_argument_regions_that_overlap_or_lie_are_refused() {
    let mut agent = agent(&[]);
    let mut c = agent.connect();
    let inval = code::INVALID_ARGUMENT;
    let bad = ErrorCode::EINVAL;
    let session = c.create_session(0);
    let (_mine, fd) = SharedMemory::create(MIB).unwrap();
    attach_region(&mut c, MIB as u64, 1, fd.as_fd()).unwrap();
    // A classify genop (two write arguments of 64 bytes) whose outputs lie in region 1.
    let call = |c: &mut RawClient, sizes: [u32; 2], args: &str| {
        let mut req = classify_genop(session, vec![1; 16], 64);
        for (w, size) in req.write_args.iter_mut().zip(sizes) {
            w.buf = bytes::Bytes::new();
            w.size = size;
        }
        c.call_with::<pg::Response>(
            vaccel_rpc::SERVICE,
            "Genop",
            &req,
            &[(META_SHARED_ARGS, args)],
        )
    };
    for (args, sizes, text) in [
        ("w0=1:0:64,w1=1:32:64", [64, 64], "shares bytes"),
        ("w0=1:0:64,w0=1:64:64", [64, 64], "named twice"),
        ("w5=1:0:64", [64, 64], "write argument 5 does not exist"),
        ("w0=1:0:64", [63, 64], "says 63 bytes"),
        ("w0=1:1048570:64", [64, 64], "outside"),
        (
            "w0=2:0:64",
            [64, 64],
            "no argument buffer is attached as region 2",
        ),
        ("wx=1:0:64", [64, 64], "is not"),
    ] {
        refused_with(call(&mut c, sizes, args), inval, bad, text);
    }
    // A read argument in the bytes an output is written to.
    let mut req = classify_genop(session, Vec::new(), 64);
    req.read_args[1].size = 64;
    req.write_args[0].buf = bytes::Bytes::new();
    let st = c
        .call_with::<pg::Response>(
            vaccel_rpc::SERVICE,
            "Genop",
            &req,
            &[(META_SHARED_ARGS, "1=1:0:64,w0=1:63:64")],
        )
        .expect_err("overlap");
    assert!(st.message.contains("shares bytes"), "{st:?}");
    // Valid: both outputs land in the region, none in the answer.
    let r = call(&mut c, [64, 64], "w0=1:0:64,w1=1:64:64").unwrap();
    assert!(
        r.write_args
            .iter()
            .all(|a| a.buf.is_empty() && a.size == 64)
    );
    still_running(&mut agent);
}
