//! Model probes are bounded and keyed by content (issue #14): the same model under another
//! name is probed once, and with `--max-concurrent-probes 1` concurrent registrations of
//! different models wait for each other and all succeed. The agent runs `plugins=tflite` on
//! TCP (every connection a client of its own) and the models are the fixtures' TFLite files.
//!
//! Without LiteRT where the agent runs, no plugin recognizes the models and nothing is probed:
//! the tests print why and pass, unless `VACCEL_REQUIRE_BACKENDS` is set (CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{AgentProc, RawClient, http_get};
use vaccel_rpc::proto::vaccel::resource as pr;

fn fixture(name: &str) -> Bytes {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/models")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Registers `data` as a one-file model named `name` with a new session of `c`.
fn register_model(c: &mut RawClient, name: &str, data: Bytes) -> i64 {
    let session_id = c.create_session(0);
    let r: pr::RegisterResponse = c
        .call(
            "RegisterResource",
            &pr::RegisterRequest {
                blobs: vec![pr::Blob {
                    r#type: pr::BlobType::Buffer as i32,
                    name: name.into(),
                    size: data.len() as u32,
                    data,
                }],
                resource_type: pr::ResourceType::Model as i32,
                session_id,
                ..Default::default()
            },
        )
        .unwrap_or_else(|st| panic!("registering {name}: {st:?}"));
    r.resource_id
}

/// The value of the metric `name` (no labels).
fn metric(agent: &AgentProc, name: &str) -> u64 {
    let (status, _, text) = http_get(&agent.metrics_address(), "/metrics");
    assert_eq!(status, 200);
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Whether the agent probed anything at all; `false` (after saying so) without LiteRT.
fn probes_ran(agent: &AgentProc, test: &str) -> bool {
    if metric(agent, "vaccel_agent_model_probes_total") > 0 {
        return true;
    }
    assert!(
        std::env::var_os("VACCEL_REQUIRE_BACKENDS").is_none(),
        "{test}: nothing was probed: LiteRT is required (VACCEL_REQUIRE_BACKENDS)"
    );
    eprintln!("SKIPPED {test}: no plugin recognized the model (LiteRT missing?)");
    false
}

#[test]
fn the_same_model_under_two_names_is_probed_once() {
    const TEST: &str = "the_same_model_under_two_names_is_probed_once";
    let agent = AgentProc::tcp(&[
        "--vaccel-config",
        "plugins=tflite",
        "--metrics-address",
        "127.0.0.1:0",
    ]);
    let model = fixture("face_detection_short_range.tflite");
    let mut first = agent.connect();
    let mut second = agent.connect();
    assert!(register_model(&mut first, "face.tflite", model.clone()) > 0);
    assert!(register_model(&mut second, "renamed-by-another-client.bin", model) > 0);
    if !probes_ran(&agent, TEST) {
        return;
    }
    assert_eq!(metric(&agent, "vaccel_agent_model_probes_total"), 1);
    assert_eq!(
        metric(&agent, "vaccel_agent_model_probe_cache_hits_total"),
        1
    );
    assert_eq!(agent.count_log("Probed resource"), 1);
}

#[test]
fn with_one_probe_at_a_time_concurrent_registrations_wait_and_succeed() {
    const TEST: &str = "with_one_probe_at_a_time_concurrent_registrations_wait_and_succeed";
    let agent = AgentProc::tcp(&[
        "--vaccel-config",
        "plugins=tflite",
        "--metrics-address",
        "127.0.0.1:0",
        "--max-concurrent-probes",
        "1",
    ]);
    let models = [
        ("pose.tflite", fixture("pose_detection.tflite")),
        ("selfie.tflite", fixture("selfie_segmentation.tflite")),
    ];
    std::thread::scope(|scope| {
        let handles: Vec<_> = models
            .iter()
            .map(|(name, data)| {
                let mut c = agent.connect();
                scope.spawn(move || register_model(&mut c, name, data.clone()))
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap() > 0);
        }
    });
    if !probes_ran(&agent, TEST) {
        return;
    }
    assert_eq!(metric(&agent, "vaccel_agent_model_probes_total"), 2);
    assert_eq!(metric(&agent, "vaccel_agent_model_probes_busy_total"), 0);
    assert_eq!(metric(&agent, "vaccel_agent_model_probes_running"), 0);
}
