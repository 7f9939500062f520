//! The acceptance of issue #14: every finding of the issue, replayed in sequence by hostile
//! clients against one agent that may use about 2 GiB of memory, while a well-behaved client
//! (another process: another tenant) is served between the findings and after them, and the
//! agent is alive at the end. Every wait is an upper bound; no test measures time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::os::unix::net::UnixStream;
use std::process::Command;

use bytes::Bytes;
use common::*;
use vaccel::ErrorCode;
use vaccel_rpc::frame::kind;
use vaccel_rpc::message::encode_request;
use vaccel_rpc::proto::vaccel::{resource as pr, session as ps};
use vaccel_rpc::status::code;

const MIB: usize = 1 << 20;
/// What the agent may use, beyond address space it reserved and never touched.
const LIMIT: u64 = 2 << 30;
/// Set in the child process that plays the well-behaved client: the agent's address.
const CLIENT_ENV: &str = "VACCEL_REPLAY_CLIENT_OF";
static BLOB: [u8; 64 * 1024] = [5; 64 * 1024];

/// The well-behaved client, when this test binary is started as one (see [`served_well`]);
/// a no-op in the normal run.
#[test]
fn well_behaved_client_in_a_child() {
    let Ok(address) = std::env::var(CLIENT_ENV) else {
        return;
    };
    let mut c = RawClient::connect(&address.parse().unwrap());
    for _ in 0..2 {
        if let Err(st) = tenant_round(&mut c, &BLOB) {
            panic!("the well-behaved client was refused: {st:?}");
        }
    }
}

/// A well-behaved tenant, in a process of its own, is served: two rounds of session, blob
/// resource, Genop, unregister, destroy.
fn served_well(agent: &mut AgentProc, after: &str) {
    still_running(agent);
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["well_behaved_client_in_a_child", "--exact", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CLIENT_ENV, agent.address.to_string())
        .output()
        .unwrap();
    if !out.status.success() {
        agent.stop_and_report(&format!(
            "the well-behaved client failed after {after}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}

fn buffers(session_id: i64, len: usize) -> pr::RegisterRequest {
    pr::RegisterRequest {
        blobs: vec![pr::Blob {
            r#type: pr::BlobType::Buffer as i32,
            name: "weights".into(),
            data: Bytes::from(vec![0x5a; len]),
            size: len as u32,
        }],
        resource_type: pr::ResourceType::Data as i32,
        session_id,
        ..Default::default()
    }
}

#[test]
fn every_finding_replayed_under_2_gib_leaves_other_tenants_served() {
    // Budgets for an agent of 2 GiB: 1 GiB of client data in all, half of it per client (one
    // client may not take all). Tight timeouts and caps so that the replay is short.
    let mut agent = AgentProc::unix(&[
        "--read-timeout",
        "2",
        "--idle-timeout",
        "5",
        "--max-connections",
        "128",
        "--max-bytes-per-client",
        &(512 * MIB).to_string(),
        "--max-agent-bytes",
        &(1024 * MIB).to_string(),
    ]);
    warm_up_arenas(&mut agent);
    served_well(&mut agent, "the warm-up");

    // The limit: 2 GiB of address space beyond what is reserved and not resident now (arenas,
    // thread stacks), so everything the agent touches from here on counts against 2 GiB.
    let pid = agent.child.id();
    let (vsz, rss) = (
        proc_status_kib(pid, "VmSize") << 10,
        proc_status_kib(pid, "VmRSS") << 10,
    );
    let limit = LIMIT + vsz.saturating_sub(rss);
    limit_address_space(pid, limit);
    eprintln!(
        "agent after warm-up: VmSize {} MiB, VmRSS {} MiB; address-space limit {} MiB",
        vsz >> 20,
        rss >> 20,
        limit >> 20
    );

    // 1. 86 buffer resources of 64 MiB from one client: refused by its byte quota once it
    // holds 512 MiB. It keeps what it got to the end.
    let mut hog = agent.connect();
    let session = hog.create_session(0);
    let body = encode_request(
        vaccel_rpc::SERVICE,
        "RegisterResource",
        &buffers(session, 64 * MIB),
        &[],
    );
    let (mut held, mut quota_refusals) = (0, 0);
    for _ in 0..86 {
        let id = hog.next_id();
        hog.send_frame(id, kind::REQUEST, 0, &body);
        let (h, resp) = hog.recv();
        assert_eq!(h.stream_id, id);
        match to_result::<pr::RegisterResponse>(resp) {
            Ok(_) => held += 1,
            Err(st) => {
                assert_eq!(st.code, code::RESOURCE_EXHAUSTED, "{st:?}");
                assert!(st.message.contains("--max-bytes-per-client"), "{st:?}");
                quota_refusals += 1;
            }
        }
    }
    drop(body);
    assert!((1..=8).contains(&held), "{held} of 64 MiB held");
    assert_eq!(held + quota_refusals, 86);
    served_well(&mut agent, "86 buffers of 64 MiB");

    // 2. Headers announcing 1 GiB, then a trickle: nothing reserved for what has not come;
    // the read timeout closes them.
    let mut trickles = trickle_1gib_frames(&agent, 6);
    served_well(&mut agent, "1 GiB headers trickled");

    // 3. Chunked requests opened announcing 4 GiB each, on several connections: each
    // connection's 17th is refused. (No data: this client may hold its whole byte quota from
    // step 1, and what open streams hold counts against it; tests/quotas.rs checks that.)
    let mut streams: Vec<RawClient> = (0..4).map(|_| agent.connect()).collect();
    for c in &mut streams {
        for _ in 0..16 {
            let id = c.next_id();
            open_chunked_genop(c, id);
        }
        let id = c.next_id();
        open_chunked_genop(c, id);
        refused(c, id, code::RESOURCE_EXHAUSTED, ErrorCode::EBUSY);
    }
    served_well(&mut agent, "chunked stream opens");
    drop(streams);

    // 4. A 38 MiB Genop of empty arguments: refused from its encoded size, never decoded.
    genop_of_38_mib_is_refused(&agent);
    served_well(&mut agent, "a 38 MiB Genop of empty arguments");

    // 5. A host directory and a URL, refused by the resource policy.
    for (path, option) in [
        ("/usr", "--allow-path"),
        ("http://127.0.0.1:9/model.pt", "--allow-url"),
    ] {
        let st = hog
            .call::<pr::RegisterResponse>(
                "RegisterResource",
                &pr::RegisterRequest {
                    paths: vec![path.into()],
                    resource_type: pr::ResourceType::Data as i32,
                    session_id: session,
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(st.code, code::PERMISSION_DENIED, "{path}: {st:?}");
        assert!(st.message.contains(option), "{path}: {st:?}");
    }
    served_well(&mut agent, "host paths and URLs");

    // 6. One client creating sessions until the pool would be exhausted (upstream's holds
    // 1024): its quota refuses it, other tenants still get sessions.
    let mut pool = agent.connect();
    let (mut created, mut session_refusals) = (0, 0);
    for _ in 0..1100 {
        match pool.call::<ps::CreateResponse>("CreateSession", &ps::CreateRequest { flags: 0 }) {
            Ok(_) => created += 1,
            Err(st) => {
                assert_eq!(st.code, code::RESOURCE_EXHAUSTED, "{st:?}");
                assert!(st.message.contains("--max-sessions-per-client"), "{st:?}");
                session_refusals += 1;
            }
        }
    }
    assert!((1..64).contains(&created), "{created} sessions created");
    assert_eq!(created + session_refusals, 1100);
    served_well(&mut agent, "session-pool exhaustion");

    // 7. 320 idle connections from one client: those over the caps are closed at accept.
    let idle: Vec<UnixStream> = (0..320)
        .map(|_| UnixStream::connect(agent.socket_path()).unwrap())
        .collect();
    served_well(&mut agent, "320 idle connections");
    assert!(agent.find_log("--max-connections-per-client").is_some());
    drop(idle);

    // The end: the trickles were closed, the hostile client's session is still there, the
    // agent is alive and serves.
    for c in &mut trickles {
        assert!(c.is_closed());
    }
    hog.destroy_session(session).unwrap();
    drop(hog);
    drop(pool);
    served_well(&mut agent, "the replay");
    served_in_another_process(&agent);
    still_running(&mut agent);
    eprintln!(
        "agent at the end: VmHWM {} MiB, VmRSS {} MiB",
        proc_status_kib(pid, "VmHWM") >> 10,
        proc_status_kib(pid, "VmRSS") >> 10
    );
}
