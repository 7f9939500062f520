//! A C program linked against `libvaccel.so` reaching a running `vaccel-rpc-agent` through
//! the `rpc` plugin, both as the plugin library (`libvaccel-rpc.so`, by path) and as the
//! plugin bundled in `libvaccel.so` (`VACCEL_PLUGINS=rpc`): the same §10 output as with the
//! local noop plugin, and the agent's noop plugin does the work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::ffi::OsStr;

use common::*;

#[test]
fn classify_through_the_rpc_plugin_against_a_running_agent() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("classify");
    build_program(&[c_source("classify.c")], &exe);
    // The library under its upstream name (the build script's link), by path: a file that
    // exists is loaded, where a bare `libvaccel-rpc.so` would resolve to the bundled twin.
    artifact("libvaccel_rpc.so");
    let library = artifact_dir().join("libvaccel-rpc.so");
    let image = workspace_root().join("examples/data/example.jpg");
    let model = workspace_root().join("examples/data/imagenet.txt");
    let agent = Agent::start("noop");

    for (run, plugins) in [library.as_os_str(), OsStr::new("rpc")]
        .into_iter()
        .enumerate()
    {
        let mut cmd = program(&exe, work.path());
        cmd.arg(&image)
            .arg("2")
            .arg(&model)
            .env("VACCEL_PLUGINS", plugins)
            .env("VACCEL_RPC_ADDRESS", &agent.address)
            .env("VACCEL_LOG_LEVEL", "4");
        let out = check(&mut cmd);
        assert_lines_in_order(
            &cmd,
            &out,
            &[
                "Initialized session with id: 1",
                "classification tags: This is a dummy classification tag!",
                "classification imagename: This is a dummy imgname!",
                "classification tags: This is a dummy classification tag!",
                "classification imagename: This is a dummy imgname!",
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let from_library = format!("Loaded plugin rpc from {}", library.display());
        assert_eq!(
            stdout.contains(&from_library),
            plugins == library.as_os_str(),
            "the rpc plugin came from the wrong place (library: {})\n{}",
            library.display(),
            context(&cmd, &out)
        );

        // One session per run, created and destroyed on the agent (whose noop plugin
        // wrote the lines above).
        agent.wait_for_log_count("Created session", run + 1);
        agent.wait_for_log_count("Destroyed session", run + 1);
    }
}
