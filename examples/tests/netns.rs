//! "Run a vAccel application remotely", automated: two network namespaces joined by a veth
//! pair, the agent in one listening on its veth address, the examples in the other reaching it
//! over TCP. Needs root (namespaces); skipped, saying so, where that is not allowed. Only the
//! namespaces this test creates carry traffic (192.0.2.0/24, a documentation range).

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{agent_binary, bin, data, mytestlib};

const AGENT_IP: &str = "192.0.2.1";
const CLIENT_IP: &str = "192.0.2.2";

fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("run ip")
}

/// Two namespaces and the veth pair between them; deleted on drop.
struct Hosts {
    agent_ns: String,
    client_ns: String,
}

impl Hosts {
    fn create() -> Option<Hosts> {
        let id = std::process::id();
        let hosts = Hosts {
            agent_ns: format!("vaccel-agent-{id}"),
            client_ns: format!("vaccel-client-{id}"),
        };
        let probe = ip(&["netns", "add", &hosts.agent_ns]);
        if !probe.status.success() {
            eprintln!(
                "skipping: cannot create network namespaces here ({})",
                String::from_utf8_lossy(&probe.stderr).trim()
            );
            return None;
        }
        let (a, c) = (hosts.agent_ns.as_str(), hosts.client_ns.as_str());
        let (va, vc) = (format!("va{id}"), format!("vc{id}"));
        for cmd in [
            vec!["netns", "add", c],
            vec!["link", "add", &va, "type", "veth", "peer", "name", &vc],
            vec!["link", "set", &va, "netns", a],
            vec!["link", "set", &vc, "netns", c],
            vec!["-n", a, "addr", "add", "192.0.2.1/24", "dev", &va],
            vec!["-n", c, "addr", "add", "192.0.2.2/24", "dev", &vc],
            vec!["-n", a, "link", "set", &va, "up"],
            vec!["-n", c, "link", "set", &vc, "up"],
            vec!["-n", a, "link", "set", "lo", "up"],
            vec!["-n", c, "link", "set", "lo", "up"],
        ] {
            let out = ip(&cmd);
            assert!(
                out.status.success(),
                "ip {cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(hosts)
    }

    fn exec(&self, ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("VACCEL_") {
                cmd.env_remove(key);
            }
        }
        cmd
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and with it the pair.
        let _ = ip(&["netns", "del", &self.client_ns]);
        let _ = ip(&["netns", "del", &self.agent_ns]);
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn examples_reach_an_agent_on_another_host() {
    let Some(hosts) = Hosts::create() else { return };
    let agent_bin = agent_binary().to_string_lossy().into_owned();
    let address = format!("tcp://{AGENT_IP}:8888");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("agent.log");
    let out = std::fs::File::create(&log).unwrap();
    let _agent = KillOnDrop(
        hosts
            .exec(&hosts.agent_ns, &agent_bin)
            .args(["-a", &address, "--vaccel-config", "plugins=noop"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log_text().contains("Listening on") {
        assert!(
            Instant::now() < deadline,
            "agent did not start:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let image = data("example.jpg");
    let lib = mytestlib().to_string_lossy().into_owned();
    let cases: [(&str, Vec<&str>, Vec<&str>); 3] = [
        (
            "classify",
            vec![image.as_str(), "1"],
            vec![
                "Initialized session with id: 1",
                "classification tags: This is a dummy classification tag!",
                "classification imagename: This is a dummy imgname!",
            ],
        ),
        (
            "detect_generic",
            vec![image.as_str(), "1"],
            vec![
                "Initialized session with id: 1",
                "detection imagename: This is a dummy imgname!",
            ],
        ),
        (
            "exec",
            vec![lib.as_str(), "1"],
            vec!["Initialized session with id: 1", "output: 10"],
        ),
    ];
    for (program, args, expected) in cases {
        let out = hosts
            .exec(&hosts.client_ns, bin(program))
            .args(&args)
            .env("VACCEL_PLUGINS", "rpc")
            .env("VACCEL_RPC_ADDRESS", &address)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(
            out.status.success() && lines == expected,
            "{program} from {CLIENT_IP} to {address}: {}\nstdout:\n{stdout}\nstderr:\n{}\nagent log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            log_text()
        );
    }
    // The agent writes info lines in batches, at most 20 ms after they happen.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = log_text();
    while !(log.contains("Created session") && log.contains("Destroyed session"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
        log = log_text();
    }
    assert!(
        log.contains("Created session") && log.contains("Destroyed session"),
        "{log}"
    );
}
