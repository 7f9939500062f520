//! Who reaches the agent (issue #14): unix peers filtered by uid/gid at accept, a socket path
//! taken over only from a dead agent, and an agent without plugins that says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::os::unix::net::{UnixDatagram, UnixStream};

use common::*;
use vaccel::ErrorCode;
use vaccel_rpc::proto::vaccel::session as ps;
use vaccel_rpc::status::status_to_error;

/// Our uid and primary gid, as the kernel reports them to a peer.
fn our_credentials() -> (u32, u32) {
    let (a, _b) = UnixStream::pair().unwrap();
    let cred =
        nix::sys::socket::getsockopt(&a, nix::sys::socket::sockopt::PeerCredentials).unwrap();
    (cred.uid(), cred.gid())
}

fn metric(agent: &AgentProc, name: &str) -> String {
    let (status, _, body) = http_get(&agent.metrics_address(), "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
        .to_owned()
}

#[test]
fn a_peer_whose_uid_is_not_allowed_is_disconnected_at_accept() {
    let (uid, gid) = our_credentials();
    let other_uid = uid.wrapping_add(4242).to_string();
    let other_gid = gid.wrapping_add(4242).to_string();
    // Abstract sockets have no file permissions: the filter is their only gate.
    let name = format!("unix://@vaccel-test-access-{}", std::process::id());
    let agent = AgentProc::start_in(
        tempfile::tempdir().unwrap(),
        &name,
        &[
            "--allow-uid",
            &other_uid,
            "--allow-gid",
            &other_gid,
            "--metrics-address",
            "127.0.0.1:0",
        ],
    );
    let mut c = agent.connect();
    // The agent may close before our request is written (EPIPE) or after
    // (end of stream): either way no answer comes.
    let written = c.try_send("CreateSession", &ps::CreateRequest { flags: 0 });
    assert!(
        written.is_err() || c.is_closed(),
        "refused before any answer"
    );
    assert!(agent.find_log("Refused a connection from pid").is_some());
    assert_eq!(
        metric(&agent, "vaccel_agent_connections_refused_total"),
        "vaccel_agent_connections_refused_total 1"
    );
    assert_eq!(
        metric(&agent, "vaccel_agent_connections_total"),
        "vaccel_agent_connections_total 0",
        "a refused peer never became a connection"
    );
}

#[test]
fn a_peer_with_an_allowed_uid_or_gid_is_served() {
    let (uid, gid) = our_credentials();
    let other = uid.wrapping_add(4242).to_string();
    let uid = uid.to_string();
    let gid = gid.to_string();
    for args in [
        vec!["--allow-uid", other.as_str(), "--allow-uid", uid.as_str()],
        vec!["--allow-uid", other.as_str(), "--allow-gid", gid.as_str()],
    ] {
        let agent = AgentProc::unix(&args);
        let mut c = agent.connect();
        let s = c.create_session(0);
        c.destroy_session(s).unwrap();
        assert!(agent.lacks_log("Refused a connection"));
    }
}

#[test]
fn uid_filters_need_a_unix_socket() {
    AgentProc::start_fails(
        "tcp://127.0.0.1:0",
        &["--allow-uid", "0"],
        "unix sockets only",
    );
}

#[test]
fn an_abstract_socket_open_to_everyone_is_warned_about() {
    let name = format!("unix://@vaccel-test-open-{}", std::process::id());
    let agent = AgentProc::start_in(tempfile::tempdir().unwrap(), &name, &[]);
    assert!(agent.find_log("open to every local user").is_some());
}

#[test]
fn a_live_socket_that_refuses_our_connection_is_not_taken_over() {
    // Connecting to a datagram socket fails with EPROTOTYPE, not ECONNREFUSED: something lives
    // there, as when another user's agent denies us (EACCES). Nothing is removed; the agent
    // exits saying why.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let _live = UnixDatagram::bind(&path).unwrap();
    AgentProc::start_fails(&format!("unix://{}", path.display()), &[], "left alone");
    assert!(path.exists(), "the live socket is still there");
}

#[test]
fn a_stale_socket_is_still_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    // Bound and closed without unlinking: connect answers ECONNREFUSED.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let agent = AgentProc::start_in(
        tempfile::tempdir().unwrap(),
        &format!("unix://{}", path.display()),
        &[],
    );
    assert!(agent.find_log("Removing stale socket").is_some());
    agent.connect().create_session(0);
}

#[test]
fn an_agent_without_plugins_warns_and_says_so_at_create_session() {
    let agent = AgentProc::unix(&["--vaccel-config", "log_level=1"]);
    assert!(agent.find_log("No vAccel plugin loaded").is_some());
    let mut c = agent.connect();
    let err = c
        .call::<ps::CreateResponse>("CreateSession", &ps::CreateRequest { flags: 0 })
        .unwrap_err();
    assert!(err.message.contains("no plugin loaded"), "{}", err.message);
    assert_eq!(status_to_error(&err).code(), ErrorCode::ENOTSUP);
}
