//! Sessions and resources belong to the client that created them (a process on Unix sockets,
//! a connection on TCP); other clients see NOT_FOUND; everything is released when the client's
//! last connection closes or its process dies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use vaccel_rpc::addr::Address;
use vaccel_rpc::proto::vaccel::{genop as pg, resource as pr};
use vaccel_rpc::status::code;

/// Env var that turns `child_client` into the child of `killed_client_is_cleaned_up`.
const CHILD_ENV: &str = "VACCEL_AGENT_TEST_CHILD_SOCKET";

/// Checks `other` cannot see or touch `session`/`resource` of another client.
fn assert_isolated(other: &mut RawClient, session: i64, resource: i64) {
    let err = other
        .call::<pg::Response>("Genop", &classify_genop(session, vec![1; 8], 32))
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.clone()),
        (code::NOT_FOUND, format!("Unknown session {session}"))
    );
    let err = other.destroy_session(session).unwrap_err();
    assert_eq!(err.code, code::NOT_FOUND);
    let err = other
        .call::<pr::SyncResponse>(
            "SyncResource",
            &pr::SyncRequest {
                resource_id: resource,
            },
        )
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.clone()),
        (code::NOT_FOUND, format!("Unknown resource {resource}"))
    );
    // Registering the other client's resource with one's own session: not found either.
    let mine = other.create_session(0);
    let err = other
        .call::<pr::RegisterResponse>(
            "RegisterResource",
            &pr::RegisterRequest {
                resource_id: resource,
                session_id: mine,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.code, code::NOT_FOUND);
    // Nor through a genop that names a resource id (EXEC_WITH_RESOURCE).
    let exec = pg::Request {
        session_id: mine,
        read_args: vec![
            arg(pg::ArgType::Uint8, vec![2]),
            arg(pg::ArgType::Int64, resource.to_ne_bytes().to_vec()),
            arg(pg::ArgType::String, b"fn\0".to_vec()),
        ],
        write_args: vec![],
    };
    let err = other.call::<pg::Response>("Genop", &exec).unwrap_err();
    assert_eq!(
        (err.code, err.message.clone()),
        (code::NOT_FOUND, format!("Unknown resource {resource}"))
    );
}

#[test]
fn tcp_connections_are_separate_clients() {
    let mut agent = AgentProc::tcp(&[]);
    let mut a = agent.connect();
    let mut b = agent.connect();
    let s = a.create_session(0);
    let r = a.register_blob(s, "data.bin", b"secret");
    assert_isolated(&mut b, s, r);
    // A still owns them.
    let _: pg::Response = a.call("Genop", &classify_genop(s, vec![1; 8], 32)).unwrap();
    // A disconnects without cleaning up: the agent releases its objects.
    drop(a);
    assert!(agent.wait_for_log(
        "disconnected: releasing 1 session(s) and 1 resource(s)",
        DEADLINE
    ));
    assert!(agent.wait_for_log(&format!("Destroyed session {s}"), DEADLINE));
    assert!(agent.wait_for_log(&format!("Destroying resource {r}"), DEADLINE));
}

#[test]
fn same_process_unix_connections_share_objects() {
    let agent = AgentProc::unix(&[]);
    let mut a = agent.connect();
    let mut b = agent.connect();
    let s1 = a.create_session(0);
    let s2 = b.create_session(0);
    // A resource made on A's session, registered with B's session (as upstream's plugin does
    // with one connection per session).
    let r = a.register_blob(s1, "data.bin", b"secret");
    let again: pr::RegisterResponse = b
        .call(
            "RegisterResource",
            &pr::RegisterRequest {
                resource_id: r,
                session_id: s2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again.resource_id, r);
    let _: pg::Response = b
        .call("Genop", &classify_genop(s1, vec![1; 8], 32))
        .unwrap();
    // Closing one connection releases nothing while the other is open.
    drop(a);
    std::thread::sleep(Duration::from_millis(100));
    let _: pg::Response = b
        .call("Genop", &classify_genop(s1, vec![1; 8], 32))
        .unwrap();
    b.destroy_session(s1).unwrap();
    assert_eq!(agent.count_log("disconnected: releasing"), 0);
}

/// Not a test on its own: the child process of `killed_client_is_cleaned_up` (the test binary
/// re-run with `CHILD_ENV` set). Creates a session and a resource, prints their ids, waits to
/// be killed.
#[test]
fn child_client() {
    let Ok(socket) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut c = RawClient::connect(&Address::Unix(socket.into()));
    let s = c.create_session(0);
    let r = c.register_blob(s, "data.bin", b"secret");
    let mut out = std::io::stdout().lock();
    writeln!(out, "CHILD {s} {r}").unwrap();
    out.flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// A child process that does not outlive a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn killed_client_is_cleaned_up_and_other_processes_are_isolated() {
    let mut agent = AgentProc::unix(&[]);
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_client", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, agent.socket_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let (s, r) = loop {
        let line = lines.next().expect("the child's ids").unwrap();
        // The harness may have printed "test child_client ... " on the same line.
        if let Some((_, ids)) = line.split_once("CHILD ") {
            let mut it = ids.split(' ').map(|x| x.parse::<i64>().unwrap());
            break (it.next().unwrap(), it.next().unwrap());
        }
    };
    // Another process (this one) cannot use or destroy the child's objects.
    let mut me = agent.connect();
    assert_isolated(&mut me, s, r);

    // kill -9 mid-session: the agent releases what the child owned.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let released = format!("Client pid {} (uid", child.0.id());
    assert!(
        agent.wait_for_log(&released, DEADLINE),
        "no release line for the child"
    );
    let line = agent.find_log(&released).unwrap();
    assert!(
        line.ends_with("disconnected: releasing 1 session(s) and 1 resource(s)"),
        "{line}"
    );
    assert!(agent.wait_for_log(&format!("Destroyed session {s}"), DEADLINE));
    assert!(agent.wait_for_log(&format!("Destroying resource {r}"), DEADLINE));
    // This process's own objects are untouched.
    let mine = me.create_session(0);
    let _: pg::Response = me
        .call("Genop", &classify_genop(mine, vec![1; 8], 32))
        .unwrap();
}
