//! The agent process: readiness and log lines, signals and clean shutdown, socket files
//! (stale ones replaced, live ones never stolen), vsock binding, command-line errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use vaccel_rpc::proto::vaccel::genop as pg;

#[test]
fn startup_lines_match_upstream() {
    let agent = AgentProc::unix(&[]);
    let started = agent.find_log("vAccel RPC agent started").unwrap();
    // [2025-04-11T20:05:14Z INFO  vaccel_rpc_agent] vAccel RPC agent started
    assert!(started.starts_with('['), "{started}");
    assert!(
        started.ends_with("Z INFO  vaccel_rpc_agent] vAccel RPC agent started"),
        "{started}"
    );
    let listening = agent.find_log("Listening on").unwrap();
    assert!(
        listening.ends_with(&format!(
            "Listening on 'unix://{}', press Ctrl+C to exit",
            agent.socket_path().display()
        )),
        "{listening}"
    );
}

#[test]
fn signals_shut_down_cleanly_and_remove_the_socket() {
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let mut agent = AgentProc::unix(&[]);
        let path = agent.socket_path();
        assert!(path.exists());
        let status = agent.signal_and_wait(signal);
        assert_eq!(status.code(), Some(0), "{signal}: {status:?}");
        assert!(!path.exists(), "{signal}: socket file left behind");
        assert!(agent.find_log("shutting down").is_some());
    }
}

#[test]
fn calls_in_flight_finish_on_shutdown() {
    let mut agent = AgentProc::unix(&["--vaccel-config", "plugins=mbench"]);
    let mut c = agent.connect();
    let s = c.create_session(0);
    let id = c.send("Genop", &mbench_genop(s, 300));
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let status = agent.signal_and_wait(Signal::SIGTERM);
    assert_eq!(status.code(), Some(0));
    let (got, r) = c.recv_result::<pg::Response>();
    assert_eq!(got, id);
    r.unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(c.is_closed());
    assert!(agent.find_log(&format!("Destroyed session {s}")).is_some());
}

#[test]
fn stale_socket_is_replaced_and_live_one_is_not_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    // A socket file without an agent behind it, like one left by a crash.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let address = format!("unix://{}", path.display());
    let agent = AgentProc::start_in(dir, &address, &[]);
    let mut c = agent.connect();
    assert!(c.create_session(0) > 0);

    // A second agent on the same live socket fails clearly and leaves the first alone.
    let mut second = AgentProc::spawn(tempfile::tempdir().unwrap(), &address, &[]);
    let status = second.wait_exit(DEADLINE).expect("second agent exits");
    assert_eq!(status.code(), Some(1));
    let err = second.find_log("error:").unwrap_or_default();
    assert!(
        err.contains("cannot listen on") && err.contains("already listening"),
        "{}",
        second.log_tail(10)
    );
    assert!(!err.contains("panicked"));
    assert!(path.exists());
    assert!(c.create_session(0) > 0);
    let mut fresh = agent.connect();
    assert!(fresh.create_session(0) > 0);
}

#[test]
fn vsock_binds_any_cid_without_connecting() {
    // Bind only: never connect to a CID here.
    let port = 40_000 + std::process::id() % 20_000;
    let mut agent = AgentProc::spawn(
        tempfile::tempdir().unwrap(),
        &format!("vsock://2:{port}"),
        &[],
    );
    if !agent.wait_for_log("press Ctrl+C to exit", DEADLINE) {
        let status = agent.wait_exit(DEADLINE);
        eprintln!(
            "vsock unavailable here; skipping ({status:?}): {}",
            agent.log_tail(3)
        );
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(1),
            "a clean failure, not a crash"
        );
        return;
    }
    let status = agent.signal_and_wait(Signal::SIGTERM);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn bad_addresses_and_options_fail_clearly() {
    for (args, needle) in [
        (&["-a", "http://127.0.0.1:1"][..], "unsupported protocol"),
        (&["-a", "tcp://127.0.0.1"][..], "missing :port"),
        (
            &["-a", "unix:///nonexistent-dir/x/agent.sock"][..],
            "cannot listen on",
        ),
        (&["--vaccel-config", "plugins"][..], "Missing value"),
        (
            &["--vaccel-config", "colour=red"][..],
            "Unknown key `colour`",
        ),
        (
            &["--vaccel-config", "plugins=nosuchplugin"][..],
            "cannot start the vAccel runtime",
        ),
    ] {
        let out = std::process::Command::new(AGENT)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{args:?}: {:?}",
            out.status
        );
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // A TCP port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp://{}", taken.local_addr().unwrap());
    let out = std::process::Command::new(AGENT)
        .args(["-a", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on"));
}

#[test]
fn omitted_log_level_keeps_the_environment_level() {
    // Upstream silences the runtime when --vaccel-config omits log_level; here
    // VACCEL_LOG_LEVEL still applies, so the runtime's info line shows.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sock");
    let mut cmd = std::process::Command::new(AGENT);
    cmd.args([
        "-a",
        &format!("unix://{}", path.display()),
        "--vaccel-config",
        "plugins=noop",
    ])
    .env("VACCEL_LOG_LEVEL", "3")
    .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    assert!(wait_path(&path, true, DEADLINE));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("INFO  vaccel_core::registry] Registered plugin noop"),
        "{stderr}"
    );
}

#[test]
fn runtime_lines_go_to_the_vaccel_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("vaccel.log");
    let config = format!("plugins=noop,log_level=3,log_file={}", log.display());
    let mut agent = AgentProc::unix(&["--vaccel-config", &config]);
    assert!(wait_path(&log, true, DEADLINE));
    let status = agent.signal_and_wait(Signal::SIGTERM);
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Registered plugin noop"), "{text}");
    // The agent's own lines stay on stderr.
    assert!(!text.contains("vAccel RPC agent started"), "{text}");
    assert!(agent.find_log("vAccel RPC agent started").is_some());
    assert!(agent.lacks_log("Registered plugin noop"));
}
