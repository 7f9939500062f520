//! Per-client quotas and the agent-wide byte budget (issue #14), as a hostile client meets
//! them: each quota refuses with `RESOURCE_EXHAUSTED`, the right vAccel code and the option
//! that raises it, while another client is served meanwhile. On TCP every connection is a
//! client of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::Bytes;
use common::{AgentProc, CallResult, RawClient, detail, http_get, mbench_genop};
use vaccel::ErrorCode;
use vaccel_rpc::proto::grpc;
use vaccel_rpc::proto::vaccel::{empty as pv_empty, genop as pg, resource as pr, session as ps};
use vaccel_rpc::server::META_DIRECTORY;
use vaccel_rpc::status::code;

/// A one-blob `DATA` resource request of `len` bytes.
fn blobs(session_id: i64, count: usize, len: usize) -> pr::RegisterRequest {
    pr::RegisterRequest {
        blobs: (0..count)
            .map(|i| pr::Blob {
                r#type: pr::BlobType::Buffer as i32,
                name: format!("f{i}"),
                data: Bytes::from(vec![7u8; len]),
                size: len as u32,
            })
            .collect(),
        resource_type: pr::ResourceType::Data as i32,
        session_id,
        ..Default::default()
    }
}

fn register(c: &mut RawClient, req: &pr::RegisterRequest) -> CallResult<pr::RegisterResponse> {
    c.call("RegisterResource", req)
}

/// Asserts `r` is a quota refusal with `vaccel_code` naming `option`.
fn assert_refused<T: std::fmt::Debug>(
    agent: &mut AgentProc,
    r: CallResult<T>,
    vaccel_code: ErrorCode,
    option: &str,
) -> grpc::Status {
    let st = match r {
        Err(st) => st,
        Ok(v) => agent.stop_and_report(&format!("expected a refusal naming {option}, got {v:?}")),
    };
    assert_eq!(st.code, code::RESOURCE_EXHAUSTED, "{st:?}");
    assert!(
        st.message.starts_with("RESOURCE_EXHAUSTED"),
        "{}",
        st.message
    );
    assert!(st.message.contains(option), "{}", st.message);
    assert_eq!(
        detail(&st).ffi_error,
        Some(vaccel_code.as_i32() as u32),
        "{}",
        st.message
    );
    st
}

fn metrics(agent: &AgentProc) -> String {
    let (status, _, body) = http_get(&agent.metrics_address(), "/metrics");
    assert_eq!(status, 200);
    body
}

fn refusals(text: &str, quota: &str) -> u64 {
    let prefix = format!("vaccel_agent_quota_refusals_total{{quota=\"{quota}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

#[test]
fn a_client_at_its_session_quota_is_refused_while_another_is_served() {
    let mut agent = AgentProc::tcp(&[
        "--max-sessions-per-client",
        "2",
        "--metrics-address",
        "127.0.0.1:0",
    ]);
    let mut hostile = agent.connect();
    let mut other = agent.connect();
    let first = hostile.create_session(0);
    hostile.create_session(0);
    let r = hostile.call::<ps::CreateResponse>("CreateSession", &ps::CreateRequest { flags: 0 });
    assert_refused(
        &mut agent,
        r,
        ErrorCode::EUSERS,
        "--max-sessions-per-client",
    );
    // Another client is not affected, up to its own quota.
    other.create_session(0);
    other.create_session(0);
    // A destroyed session gives its place back.
    hostile.destroy_session(first).unwrap();
    hostile.create_session(0);
    assert_eq!(refusals(&metrics(&agent), "sessions per client"), 1);
}

#[test]
fn a_client_at_its_resource_quota_is_refused_while_another_is_served() {
    let mut agent = AgentProc::tcp(&["--max-resources-per-client", "2"]);
    let mut hostile = agent.connect();
    let mut other = agent.connect();
    let s = hostile.create_session(0);
    let first = hostile.register_blob(s, "a", b"a");
    hostile.register_blob(s, "b", b"b");
    let r = register(&mut hostile, &blobs(s, 1, 1));
    assert_refused(
        &mut agent,
        r,
        ErrorCode::EUSERS,
        "--max-resources-per-client",
    );
    let o = other.create_session(0);
    other.register_blob(o, "a", b"a");
    other.register_blob(o, "b", b"b");
    // An unregistered resource gives its place back.
    let _: pv_empty::Empty = hostile
        .call(
            "UnregisterResource",
            &pr::UnregisterRequest {
                resource_id: first,
                session_id: s,
            },
        )
        .unwrap();
    hostile.register_blob(s, "c", b"c");
}

#[test]
fn a_client_at_its_byte_quota_and_the_agent_at_its_budget_refuse_before_allocating() {
    let mut agent = AgentProc::tcp(&[
        "--max-bytes-per-client",
        "1000",
        "--max-agent-bytes",
        "1500",
        "--metrics-address",
        "127.0.0.1:0",
    ]);
    let mut hostile = agent.connect();
    let mut other = agent.connect();
    let mut third = agent.connect();
    let s = hostile.create_session(0);
    let kept = register(&mut hostile, &blobs(s, 1, 600))
        .unwrap()
        .resource_id;
    // Two blobs of 300: the request's total counts.
    let r = register(&mut hostile, &blobs(s, 2, 300));
    assert_refused(&mut agent, r, ErrorCode::ENOMEM, "--max-bytes-per-client");
    // Refused before anything was kept: the client still holds 600 and may add 400.
    register(&mut hostile, &blobs(s, 1, 400)).unwrap();

    // Another client is served from what the agent has left...
    let o = other.create_session(0);
    register(&mut other, &blobs(o, 1, 400)).unwrap();
    // ...until the agent-wide budget (1400 of 1500 held) runs out.
    let t = third.create_session(0);
    let r = register(&mut third, &blobs(t, 1, 200));
    assert_refused(&mut agent, r, ErrorCode::ENOMEM, "--max-agent-bytes");
    register(&mut third, &blobs(t, 1, 100)).unwrap();

    // A client that leaves gives back what it held.
    let _ = kept;
    drop(hostile);
    let deadline = std::time::Instant::now() + common::DEADLINE;
    loop {
        match register(&mut third, &blobs(t, 1, 500)) {
            Ok(_) => break,
            Err(st) if std::time::Instant::now() < deadline => {
                assert_eq!(st.code, code::RESOURCE_EXHAUSTED, "{st:?}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(st) => agent.stop_and_report(&format!("bytes never given back: {st:?}")),
        }
    }
    let text = metrics(&agent);
    assert_eq!(refusals(&text, "bytes per client"), 1, "{text}");
    assert!(refusals(&text, "agent bytes") >= 1, "{text}");
}

#[test]
fn a_directory_with_too_many_files_is_refused_while_another_client_is_served() {
    let mut agent = AgentProc::tcp(&["--max-files-per-directory", "3"]);
    let mut hostile = agent.connect();
    let mut other = agent.connect();
    let s = hostile.create_session(0);
    let dir = [(META_DIRECTORY, "1")];
    let r = hostile.call_with::<pr::RegisterResponse>(
        vaccel_rpc::SERVICE,
        "RegisterResource",
        &blobs(s, 4, 1),
        &dir,
    );
    assert_refused(&mut agent, r, ErrorCode::EPERM, "--max-files-per-directory");
    let o = other.create_session(0);
    let ok = other.call_with::<pr::RegisterResponse>(
        vaccel_rpc::SERVICE,
        "RegisterResource",
        &blobs(o, 3, 1),
        &dir,
    );
    assert!(ok.unwrap().resource_id > 0);
}

#[test]
fn a_client_at_its_call_quota_is_refused_while_another_is_served() {
    let mut agent = AgentProc::tcp(&[
        "--vaccel-config",
        "plugins=mbench",
        "--max-calls-per-client",
        "1",
    ]);
    let mut hostile = agent.connect();
    let mut other = agent.connect();
    let s = hostile.create_session(0);
    // A long call, then, once it runs, a second on the same connection: the agent reads it
    // while the first runs (another thread takes over reading), and refuses it.
    let slow = hostile.send("Genop", &mbench_genop(s, 3000));
    let running = format!("session:{s} Genop");
    if !agent.wait_for_log(&running, common::DEADLINE) {
        agent.stop_and_report("the long call never started");
    }
    let fast = hostile.send("Genop", &mbench_genop(s, 1));
    let (id, r) = hostile.recv_result::<pg::Response>();
    assert_eq!(id, fast, "the refusal comes first");
    assert_refused(&mut agent, r, ErrorCode::EUSERS, "--max-calls-per-client");
    // Meanwhile another client's calls run.
    let o = other.create_session(0);
    let _: pg::Response = other.call("Genop", &mbench_genop(o, 1)).unwrap();
    let (id, r) = hostile.recv_result::<pg::Response>();
    assert_eq!(id, slow);
    r.unwrap();
}

#[test]
fn quotas_bind_before_the_runtime_id_pools() {
    // Upstream's pool holds 1024 sessions for everyone: two clients of 600 fit in the agent's.
    let mut agent = AgentProc::tcp(&["--max-sessions-per-client", "600"]);
    let mut a = agent.connect();
    let mut b = agent.connect();
    for _ in 0..600 {
        a.create_session(0);
        b.create_session(0);
    }
    let r = a.call::<ps::CreateResponse>("CreateSession", &ps::CreateRequest { flags: 0 });
    assert_refused(
        &mut agent,
        r,
        ErrorCode::EUSERS,
        "--max-sessions-per-client",
    );
}

#[test]
fn open_streams_count_against_the_clients_bytes_until_they_end() {
    let mut agent = AgentProc::tcp(&[
        "--max-bytes-per-client",
        "1048576",
        "--metrics-address",
        "127.0.0.1:0",
    ]);
    let mut hostile = agent.connect();
    let mut other = agent.connect();
    let s = hostile.create_session(0);
    // A chunked request that never ends, fed 384 KiB at a time: the third piece would make
    // the client hold more than its 1 MiB.
    common::open_chunked_genop(&mut hostile, 101);
    hostile.send_frame(101, vaccel_rpc::frame::kind::DATA, 0, &[0; 384 << 10]);
    hostile.send_frame(101, vaccel_rpc::frame::kind::DATA, 0, &[0; 384 << 10]);
    // Meanwhile the client's resources meet what its stream holds.
    let r = register(&mut hostile, &blobs(s, 1, 512 << 10));
    assert_refused(&mut agent, r, ErrorCode::ENOMEM, "--max-bytes-per-client");
    hostile.send_frame(101, vaccel_rpc::frame::kind::DATA, 0, &[0; 384 << 10]);
    let st = common::refused(
        &mut hostile,
        101,
        code::RESOURCE_EXHAUSTED,
        ErrorCode::ENOMEM,
    );
    assert!(
        st.message.contains("--max-bytes-per-client"),
        "{}",
        st.message
    );
    // Another client is not affected.
    let o = other.create_session(0);
    register(&mut other, &blobs(o, 1, 512 << 10)).unwrap();
    // The refused stream gave its bytes back: the client may hold them as a resource now.
    register(&mut hostile, &blobs(s, 1, 900 << 10)).unwrap();
    assert_eq!(refusals(&metrics(&agent), "bytes per client"), 2);
}

#[test]
fn a_request_larger_than_the_clients_room_is_dropped_as_it_arrives_and_the_connection_lives() {
    let mut agent = AgentProc::tcp(&["--max-bytes-per-client", "1048576"]);
    let mut hostile = agent.connect();
    let mut other = agent.connect();
    let s = hostile.create_session(0);
    // One 4 MiB frame: its body is refused at its second MiB, read to its end and dropped.
    let r = register(&mut hostile, &blobs(s, 1, 4 << 20));
    assert_refused(&mut agent, r, ErrorCode::ENOMEM, "--max-bytes-per-client");
    // The connection is in sync and the bytes were given back.
    register(&mut hostile, &blobs(s, 1, 900 << 10)).unwrap();
    hostile.destroy_session(s).unwrap();
    let o = other.create_session(0);
    register(&mut other, &blobs(o, 1, 900 << 10)).unwrap();
}
