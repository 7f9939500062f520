//! Large payloads (64 MiB in one frame; chunked requests and responses past a small frame
//! limit) and resources shipped as blobs: hostile names refused, directory trees rebuilt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use common::*;
use prost::Message;
use vaccel_rpc::frame::{flags, kind};
use vaccel_rpc::message;
use vaccel_rpc::proto::grpc;
use vaccel_rpc::proto::vaccel::{genop as pg, image, resource as pr};
use vaccel_rpc::server::{META_ACCEPT_CHUNKS, META_CHUNKED, META_DIRECTORY};
use vaccel_rpc::status::code;

const MIB: usize = 1 << 20;

fn blob(name: &str, data: Vec<u8>) -> pr::Blob {
    pr::Blob {
        r#type: pr::BlobType::Buffer as i32,
        name: name.into(),
        size: data.len() as u32,
        data: Bytes::from(data),
    }
}

fn register(session_id: i64, blobs: Vec<pr::Blob>) -> pr::RegisterRequest {
    pr::RegisterRequest {
        blobs,
        resource_type: pr::ResourceType::Data as i32,
        session_id,
        ..Default::default()
    }
}

#[test]
fn sixty_four_mib_register_and_classify() {
    let agent = AgentProc::unix(&[]);
    let mut c = agent.connect();
    let s = c.create_session(0);
    let data: Vec<u8> = (0..64 * MIB).map(|i| (i % 251) as u8).collect();
    let r: pr::RegisterResponse = c
        .call(
            "RegisterResource",
            &register(s, vec![blob("big.bin", data.clone())]),
        )
        .unwrap();
    let synced: pr::SyncResponse = c
        .call(
            "SyncResource",
            &pr::SyncRequest {
                resource_id: r.resource_id,
            },
        )
        .unwrap();
    assert!(
        synced.blobs[0].data == data[..],
        "the agent holds the same bytes"
    );
    let tags: image::Response = c
        .call(
            "ImageClassification",
            &image::Request {
                session_id: s,
                image: Bytes::from(data),
            },
        )
        .unwrap();
    assert_eq!(tags.tags.len(), 1024);
}

/// Sends `msg` as a chunked request (extension 2) in DATA frames of `chunk` bytes.
fn send_chunked(
    c: &mut RawClient,
    method: &str,
    msg: &impl Message,
    chunk: usize,
    metadata: &[(&str, &str)],
) -> u32 {
    let payload = msg.encode_to_vec();
    let total = payload.len().to_string();
    let mut meta = vec![(META_CHUNKED, total.as_str())];
    meta.extend_from_slice(metadata);
    let id = c.next_id();
    let open = message::encode_request(
        vaccel_rpc::SERVICE,
        method,
        &pr::SyncRequest::default(),
        &meta,
    );
    c.send_frame(id, kind::REQUEST, flags::REMOTE_OPEN, &open);
    let pieces: Vec<&[u8]> = payload.chunks(chunk).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let fl = if i + 1 == pieces.len() {
            flags::REMOTE_CLOSED
        } else {
            0
        };
        c.send_frame(id, kind::DATA, fl, piece);
    }
    id
}

/// Reads a chunked response (DATA frames until REMOTE_CLOSED) or a plain one.
fn recv_maybe_chunked(c: &mut RawClient, id: u32, max_chunk: usize) -> (usize, grpc::Response) {
    let mut whole = Vec::new();
    let mut frames = 0;
    loop {
        let f = c.r.read_frame(usize::MAX).unwrap();
        assert_eq!(f.header.stream_id, id);
        frames += 1;
        if f.header.kind == kind::RESPONSE {
            return (frames, message::decode_response(f.body).unwrap());
        }
        assert_eq!(f.header.kind, kind::DATA);
        assert!(f.body.len() <= max_chunk);
        whole.extend_from_slice(&f.body);
        if f.header.flags & flags::REMOTE_CLOSED != 0 {
            return (
                frames,
                message::decode_response(Bytes::from(whole)).unwrap(),
            );
        }
    }
}

#[test]
fn chunked_requests_and_responses_past_the_frame_limit() {
    let agent = AgentProc::unix(&["--max-frame-size", "1048576"]);
    let mut c = agent.connect();
    let s = c.create_session(0);

    // A plain request over the limit closes the connection...
    let mut plain = agent.connect();
    let body = message::encode_request(
        vaccel_rpc::SERVICE,
        "RegisterResource",
        &register(s, vec![blob("x", vec![1; 2 * MIB])]),
        &[],
    );
    // The agent stops reading after the header: the rest of the write may fail.
    let _ = vaccel_rpc::frame::write_frame(&mut plain.w, 1, kind::REQUEST, 0, &[&body]);
    let (_, r) = plain.recv();
    assert_eq!(r.status.unwrap().code, code::INVALID_ARGUMENT);
    assert!(plain.is_closed());

    // ...a chunked one goes through.
    let data: Vec<u8> = (0..3 * MIB).map(|i| (i % 253) as u8).collect();
    let id = send_chunked(
        &mut c,
        "RegisterResource",
        &register(s, vec![blob("three.bin", data.clone())]),
        MIB,
        &[],
    );
    let (got, r) = c.recv_result::<pr::RegisterResponse>();
    assert_eq!(got, id);
    let res = r.unwrap().resource_id;

    // A response over the limit is refused unless the client accepts chunks.
    let err = c
        .call::<pr::SyncResponse>("SyncResource", &pr::SyncRequest { resource_id: res })
        .unwrap_err();
    assert_eq!(err.code, code::INVALID_ARGUMENT);
    let chunk = "262144";
    let id = c.send_to(
        vaccel_rpc::SERVICE,
        "SyncResource",
        &pr::SyncRequest { resource_id: res },
        &[(META_ACCEPT_CHUNKS, chunk)],
    );
    let (frames, r) = recv_maybe_chunked(&mut c, id, 262_144);
    assert!(frames >= 12, "{frames} frames");
    let synced: pr::SyncResponse = to_result(r).unwrap();
    assert!(synced.blobs[0].data == data[..]);

    // Both at once: a 4 MiB genop (its write args are sent and returned) chunked both ways.
    let id = send_chunked(
        &mut c,
        "Genop",
        &classify_genop(s, vec![1; 16], 2 * MIB),
        MIB,
        &[(META_ACCEPT_CHUNKS, "1048576")],
    );
    let (frames, r) = recv_maybe_chunked(&mut c, id, MIB);
    assert!(frames >= 4);
    let r: pg::Response = to_result(r).unwrap();
    assert_eq!(r.write_args[0].buf.len(), 2 * MIB);
    assert_eq!(
        c_text(&r.write_args[1].buf),
        "This is a dummy classification tag!"
    );
    // A small answer to a client that accepts chunks is one RESPONSE.
    let id = c.send_to(
        vaccel_rpc::SERVICE,
        "Genop",
        &classify_genop(s, vec![1; 16], 64),
        &[(META_ACCEPT_CHUNKS, "1048576")],
    );
    assert_eq!(recv_maybe_chunked(&mut c, id, MIB).0, 1);
}

/// The runtime's directory, from its debug log.
fn rundir(agent: &mut AgentProc) -> PathBuf {
    assert!(agent.wait_for_log("Created top-level rundir: ", DEADLINE));
    let line = agent.find_log("Created top-level rundir: ").unwrap();
    PathBuf::from(
        line.rsplit("Created top-level rundir: ")
            .next()
            .unwrap()
            .trim(),
    )
}

#[test]
fn hostile_blob_names_are_refused_and_nothing_is_written_outside() {
    let mut agent = AgentProc::unix(&["--vaccel-config", "plugins=noop,log_level=4"]);
    let rundir = rundir(&mut agent);
    let mut c = agent.connect();
    let s = c.create_session(0);
    let tag = format!("vaccel-escape-{}", std::process::id());
    let abs = std::env::temp_dir().join(&tag);
    let passwd = std::fs::metadata("/etc/passwd")
        .ok()
        .map(|m| (m.len(), m.modified().ok()));
    let names = [
        format!("../../{tag}"),
        format!("../{tag}"),
        abs.display().to_string(),
        "/etc/passwd".to_owned(),
        format!("a/../../{tag}"),
        String::new(),
        format!("..\\{tag}"),
    ];
    for dir_mode in [false, true] {
        let meta: &[(&str, &str)] = if dir_mode {
            &[(META_DIRECTORY, "1")]
        } else {
            &[]
        };
        for name in &names {
            let err = c
                .call_with::<pr::RegisterResponse>(
                    vaccel_rpc::SERVICE,
                    "RegisterResource",
                    &register(s, vec![blob(name, b"owned".to_vec())]),
                    meta,
                )
                .unwrap_err();
            assert_eq!(err.message, "FFI error: 22", "{name:?}");
        }
    }
    for escaped in [
        rundir.join("..").join(&tag),
        rundir.join(&tag),
        rundir.parent().unwrap().join("..").join(&tag),
        abs.clone(),
    ] {
        assert!(!escaped.exists(), "{} was written", escaped.display());
    }
    assert_eq!(
        std::fs::metadata("/etc/passwd")
            .ok()
            .map(|m| (m.len(), m.modified().ok())),
        passwd
    );
    // Nothing of the refused resources is left in the run directory.
    let left: Vec<_> = std::fs::read_dir(&rundir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("resource."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn directory_trees_keep_their_structure() {
    let mut agent = AgentProc::unix(&["--vaccel-config", "plugins=noop,log_level=4"]);
    let rundir = rundir(&mut agent);
    let mut c = agent.connect();
    let s = c.create_session(0);
    let r: pr::RegisterResponse = c
        .call_with(
            vaccel_rpc::SERVICE,
            "RegisterResource",
            &register(
                s,
                vec![
                    blob("model/config.json", b"{}".to_vec()),
                    blob("model/w/0.bin", vec![1; 10]),
                ],
            ),
            &[(META_DIRECTORY, "1")],
        )
        .unwrap();
    let dir = rundir.join(format!("resource.{}", r.resource_id));
    assert_eq!(std::fs::read(dir.join("model/config.json")).unwrap(), b"{}");
    assert_eq!(
        std::fs::read(dir.join("model/w/0.bin")).unwrap(),
        vec![1; 10]
    );
    let synced: pr::SyncResponse = c
        .call(
            "SyncResource",
            &pr::SyncRequest {
                resource_id: r.resource_id,
            },
        )
        .unwrap();
    let names: Vec<&str> = synced.blobs.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["model/config.json", "model/w/0.bin"]);
    // Destroying the client's last connection removes the files.
    drop(c);
    assert!(
        wait_path(&dir, false, DEADLINE),
        "{} left behind",
        dir.display()
    );
}

/// A 2 GiB file resource registered end to end through the `rpc` plugin (past the 1 GiB frame
/// limit: chunked), then read back from the agent. Needs several GiB of memory and a minute:
/// `cargo test --release -p vaccel-agent --test payloads -- --ignored`.
#[test]
#[ignore = "slow: ships 2 GiB each way"]
fn two_gib_resource_end_to_end() {
    use std::io::Write;
    use std::sync::Arc;
    use vaccel::{Config, Resource, ResourceType, Session};

    const SIZE: usize = 2 << 30;
    // 2 GiB is over the default per-client (1 GiB) and agent (4 GiB with both copies) budgets.
    let agent = AgentProc::unix(&[
        "--max-bytes-per-client",
        "8589934592",
        "--max-agent-bytes",
        "8589934592",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two_gib.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let block: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
        for _ in 0..SIZE / MIB {
            f.write_all(&block).unwrap();
        }
    }
    let address = agent.address.clone();
    let rt = vaccel::builder()
        .rundir_base(dir.path())
        .skip_logging()
        .config(Config::default())
        .plugin(Arc::new(vaccel_plugin_rpc::RpcPlugin::with_address(
            address,
        )))
        .build()
        .unwrap();
    let sess = Session::new(&rt, 0).unwrap();
    let res = Resource::new(&rt, path.to_str().unwrap(), ResourceType::Data).unwrap();
    sess.register(&res).unwrap();
    assert!(res.remote_id() > 0);

    // Read it back: another connection of this process is the same client on unix sockets.
    // The answer is past the frame limit too: the real client takes it in chunks.
    std::fs::remove_file(&path).unwrap();
    let client = vaccel_rpc::client::Client::connect(&agent.address).unwrap();
    let blobs = client.sync_resource(res.remote_id()).unwrap();
    let data = &blobs[0].data;
    assert_eq!(data.len(), SIZE);
    for offset in [0, 1, MIB - 1, MIB, SIZE / 2 + 7, SIZE - 1] {
        assert_eq!(data[offset], (offset % MIB % 251) as u8, "byte {offset}");
    }
}
