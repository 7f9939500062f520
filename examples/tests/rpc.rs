//! Every example through the `rpc` plugin against a real `vaccel-rpc-agent`, over a unix socket
//! and over loopback TCP: the same program lines as a local run with the same plugin.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{Agent, PROGRAMS, mytestlib, run, valid_args};

#[test]
fn every_example_prints_the_same_lines_through_the_agent() {
    for transport in ["unix", "tcp"] {
        let agent = Agent::start(transport, "noop");
        for program in PROGRAMS {
            let args = valid_args(program);
            let local = run(program, &args, &[("VACCEL_PLUGINS", "noop")]);
            local.assert_success();
            let remote = run(program, &args, &agent.env());
            remote.assert_success().assert_no_panic();
            // Timings differ between runs; everything else must be identical.
            let strip = |lines: Vec<&str>| -> Vec<String> {
                lines
                    .into_iter()
                    .map(|l| l.split(" Execution time:").next().unwrap_or(l).to_owned())
                    .collect()
            };
            assert_eq!(
                strip(remote.program_lines()),
                strip(local.program_lines()),
                "{program} over {transport} differs from the local run\nremote: {remote}\nlocal: {local}\nagent log:\n{}",
                agent.log_text()
            );
        }
        let log = agent.log_with(&["Created session", "Destroyed session"]);
        assert!(
            log.contains("Created session") && log.contains("Destroyed session"),
            "{log}"
        );
    }
}

#[test]
fn classify_over_unix_is_logged_by_the_agent() {
    let agent = Agent::start("unix", "noop");
    let image = common::data("example.jpg");
    run("classify", &[image.as_str(), "2"], &agent.env())
        .assert_success()
        .assert_stdout(&[
            "Initialized session with id: 1",
            "classification tags: This is a dummy classification tag!",
            "classification imagename: This is a dummy imgname!",
            "classification tags: This is a dummy classification tag!",
            "classification imagename: This is a dummy imgname!",
        ]);
    let lines = [
        "Created session 1",
        "session:1 Genop",
        "Destroyed session 1",
    ];
    // The agent writes info lines in batches, at most 20 ms after they happen.
    let log = agent.log_with(&lines);
    for line in lines {
        assert!(log.contains(line), "agent log lacks {line:?}:\n{log}");
    }
}

#[test]
fn exec_examples_run_the_library_on_the_agent() {
    let lib = mytestlib().to_string_lossy().into_owned();
    let agent = Agent::start("unix", "exec");
    let env = agent.env();
    run("exec", &[lib.as_str(), "1"], &env)
        .assert_success()
        .assert_stdout(&["Initialized session with id: 1", "output: 20"]);
    run("exec_generic", &[lib.as_str(), "1"], &env)
        .assert_success()
        .assert_stdout(&["Initialized session with id: 1", "output: 20"]);
    // The library travels as a resource: the agent runs its own copy of it.
    run("exec_with_resource", &[lib.as_str(), "1"], &env)
        .assert_success()
        .assert_stdout(&[
            "Initialized session with id: 1",
            "output1: 20",
            "output2: 20",
        ]);
    run("exec_serialized", &[lib.as_str(), "1"], &env)
        .assert_success()
        .assert_stdout(&[
            "Initialized session with id: 1",
            "Input: 0 2 4 6 8 10 ",
            "Output: 10 8 6 4 2 0 ",
        ]);
    // The function printed on the agent's side.
    assert!(
        agent
            .log_with(&["Will return output: 20"])
            .contains("Will return output: 20"),
        "{}",
        agent.log_text()
    );
}

#[test]
fn no_agent_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("unix://{}/nobody.sock", dir.path().display());
    let r = run(
        "noop",
        &[] as &[&str],
        &[
            ("VACCEL_PLUGINS", "rpc"),
            ("VACCEL_RPC_ADDRESS", address.as_str()),
        ],
    );
    r.assert_no_panic();
    assert_ne!(r.code(), Some(0), "{r}");
    assert!(r.stderr.contains("nobody.sock"), "{r}");
}
