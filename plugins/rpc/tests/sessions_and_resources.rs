//! The rpc plugin's session and resource hooks against a fake agent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use bytes::Bytes;
use support::{FIRST_RESOURCE, FIRST_SESSION, FakeAgent};
use vaccel_core::{ErrorCode, PluginType, Resource, ResourceType, Runtime, Session};
use vaccel_plugin_rpc::RpcPlugin;
use vaccel_rpc::addr::Address;
use vaccel_rpc::client::META_DIRECTORY;
use vaccel_rpc::proto::vaccel as pv;

fn runtime(address: Address, dir: &tempfile::TempDir) -> Runtime {
    Runtime::builder()
        .rundir_base(dir.path())
        .skip_logging()
        .plugin(Arc::new(RpcPlugin::with_address(address)))
        .build()
        .unwrap()
}

fn setup(extensions: bool) -> (FakeAgent, Runtime, tempfile::TempDir) {
    let agent = FakeAgent::start(extensions);
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(agent.address.clone(), &dir);
    (agent, rt, dir)
}

#[test]
fn without_an_agent_loading_works_and_sessions_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-agent.sock");
    let rt = runtime(Address::Unix(missing), &dir);
    let e = Session::new(&rt, 0).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("no-agent.sock"), "{text}");
    assert!(text.contains("vAccel RPC agent"), "{text}");
    assert_eq!(e.code(), ErrorCode::ENOENT);
    // A TCP port nobody listens on.
    let rt = runtime("tcp://127.0.0.1:1".parse().unwrap(), &dir);
    let e = Session::new(&rt, 0).unwrap_err();
    assert!(e.to_string().contains("tcp://127.0.0.1:1"), "{e}");
}

#[test]
fn sessions_are_created_updated_and_destroyed_on_the_agent() {
    let (agent, rt, _dir) = setup(true);
    let a = Session::new(&rt, PluginType::REMOTE.bits() | PluginType::CPU.bits()).unwrap();
    assert!(a.is_remote());
    assert_eq!(a.remote_id(), FIRST_SESSION);
    let b = Session::new(&rt, 0).unwrap();
    assert_eq!(b.remote_id(), FIRST_SESSION + 1);
    // One connection (one capabilities query) for every session of the plugin.
    assert_eq!(
        agent.methods(),
        ["GetCapabilities", "CreateSession", "CreateSession"]
    );
    let create: pv::session::CreateRequest = agent.requests()[1].decode();
    assert_eq!(
        create.flags,
        PluginType::CPU.bits(),
        "REMOTE is not forwarded"
    );
    a.update(PluginType::GPU.bits()).unwrap();
    let update: pv::session::UpdateRequest = agent.last("UpdateSession").decode();
    assert_eq!(
        (update.session_id, update.flags),
        (FIRST_SESSION, PluginType::GPU.bits())
    );
    drop(a);
    let destroy: pv::session::DestroyRequest = agent.last("DestroySession").decode();
    assert_eq!(destroy.session_id, FIRST_SESSION);
    drop(b);
    let destroy: pv::session::DestroyRequest = agent.last("DestroySession").decode();
    assert_eq!(destroy.session_id, FIRST_SESSION + 1);
}

#[test]
fn file_resources_ship_their_bytes_once_per_connection() {
    let (agent, rt, dir) = setup(true);
    let path = dir.path().join("model.bin");
    std::fs::write(&path, b"MODEL").unwrap();
    let model = Resource::new(&rt, path.to_str().unwrap(), ResourceType::Model).unwrap();
    let a = Session::new(&rt, 0).unwrap();
    let b = Session::new(&rt, 0).unwrap();
    a.register(&model).unwrap();
    assert_eq!(model.remote_id(), FIRST_RESOURCE);
    assert_ne!(model.remote_id(), model.id(), "the agent's id is used");
    let req = agent.last("RegisterResource");
    assert!(req.metadata.iter().all(|(k, _)| k != META_DIRECTORY));
    let r: pv::resource::RegisterRequest = req.decode();
    assert_eq!(
        (r.session_id, r.resource_id, r.resource_type),
        (FIRST_SESSION, 0, ResourceType::Model.value() as i32)
    );
    assert!(r.paths.is_empty());
    assert_eq!(r.blobs.len(), 1);
    let blob = &r.blobs[0];
    assert_eq!(blob.name, "model.bin");
    assert_eq!(&blob.data[..], b"MODEL");
    assert_eq!(blob.size, 5);
    assert_eq!(blob.r#type, pv::resource::BlobType::Mapped as i32);

    // Another session on the same connection: the id only.
    b.register(&model).unwrap();
    let r: pv::resource::RegisterRequest = agent.last("RegisterResource").decode();
    assert_eq!(
        (r.session_id, r.resource_id),
        (FIRST_SESSION + 1, FIRST_RESOURCE)
    );
    assert!(r.blobs.is_empty() && r.paths.is_empty());

    a.unregister(&model).unwrap();
    let r: pv::resource::UnregisterRequest = agent.last("UnregisterResource").decode();
    assert_eq!(
        (r.resource_id, r.session_id),
        (FIRST_RESOURCE, FIRST_SESSION)
    );
    assert!(agent.has_resource(FIRST_RESOURCE));
    b.unregister(&model).unwrap();
    let r: pv::resource::UnregisterRequest = agent.last("UnregisterResource").decode();
    assert_eq!(
        (r.resource_id, r.session_id),
        (FIRST_RESOURCE, FIRST_SESSION + 1)
    );
    assert!(
        !agent.has_resource(FIRST_RESOURCE),
        "the agent destroyed it"
    );

    // The agent no longer has it: registering again ships the bytes again.
    a.register(&model).unwrap();
    let r: pv::resource::RegisterRequest = agent.last("RegisterResource").decode();
    assert_eq!(r.resource_id, 0);
    assert_eq!(&r.blobs[0].data[..], b"MODEL");
    assert_eq!(model.remote_id(), FIRST_RESOURCE + 1);
}

#[test]
fn buffer_resources_travel_as_buffers_and_sync_back() {
    let (agent, rt, _dir) = setup(true);
    let res = Resource::from_buf(
        &rt,
        Bytes::from_static(b"abc"),
        ResourceType::Data,
        Some("buf.bin"),
        true,
    )
    .unwrap();
    let sess = Session::new(&rt, 0).unwrap();
    sess.register(&res).unwrap();
    let r: pv::resource::RegisterRequest = agent.last("RegisterResource").decode();
    assert_eq!(r.blobs[0].r#type, pv::resource::BlobType::Buffer as i32);
    assert_eq!(r.blobs[0].name, "buf.bin");
    sess.sync(&res).unwrap();
    let s: pv::resource::SyncRequest = agent.last("SyncResource").decode();
    assert_eq!(s.resource_id, res.remote_id());
    assert_eq!(&res.blobs()[0].data().unwrap()[..], b"cba");
}

fn tree(dir: &tempfile::TempDir) -> String {
    let root = dir.path().join("saved_model");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("a.txt"), b"a").unwrap();
    std::fs::write(root.join("sub/b.txt"), b"bb").unwrap();
    std::fs::write(root.join("sub/deeper/c.txt"), b"ccc").unwrap();
    root.to_str().unwrap().to_owned()
}

#[test]
fn directory_trees_keep_their_structure_with_our_agent() {
    let (agent, rt, dir) = setup(true);
    let res = Resource::new(&rt, &tree(&dir), ResourceType::Model).unwrap();
    let sess = Session::new(&rt, 0).unwrap();
    sess.register(&res).unwrap();
    let req = agent.last("RegisterResource");
    assert!(
        req.metadata
            .iter()
            .any(|(k, v)| k == META_DIRECTORY && v == "1")
    );
    let r: pv::resource::RegisterRequest = req.decode();
    let names: Vec<_> = r.blobs.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["a.txt", "sub/b.txt", "sub/deeper/c.txt"]);
    let sizes: Vec<_> = r.blobs.iter().map(|b| b.data.len()).collect();
    assert_eq!(sizes, [1, 2, 3]);
    assert_eq!(
        agent.blob_names(res.remote_id()),
        ["a.txt", "sub/b.txt", "sub/deeper/c.txt"]
    );
}

#[test]
fn directory_trees_are_flattened_for_upstream_agents() {
    let (agent, rt, dir) = setup(false);
    let res = Resource::new(&rt, &tree(&dir), ResourceType::Model).unwrap();
    let sess = Session::new(&rt, 0).unwrap();
    sess.register(&res).unwrap();
    let req = agent.last("RegisterResource");
    assert!(req.metadata.is_empty(), "upstream agents get no metadata");
    let r: pv::resource::RegisterRequest = req.decode();
    let names: Vec<_> = r.blobs.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["a.txt", "b.txt", "c.txt"]);
}

#[test]
fn urls_are_sent_as_paths_for_the_agent_to_download() {
    let (agent, rt, _dir) = setup(true);
    let url = "https://example.invalid/models/m.pt";
    let res = Resource::new(&rt, url, ResourceType::Model).unwrap();
    let sess = Session::new(&rt, 0).unwrap();
    sess.register(&res).unwrap();
    let r: pv::resource::RegisterRequest = agent.last("RegisterResource").decode();
    assert_eq!(r.paths, [url]);
    assert!(r.blobs.is_empty());
    assert_eq!(res.remote_id(), FIRST_RESOURCE);
}

#[test]
fn agent_error_codes_come_back_unchanged() {
    let (agent, rt, _dir) = setup(true);
    let sess = Session::new(&rt, 0).unwrap();
    for code in [
        ErrorCode::EINVAL,
        ErrorCode::ENOTSUP,
        ErrorCode::ENOENT,
        ErrorCode::EBACKEND,
        ErrorCode::ENOMEM,
        ErrorCode::EPERM,
    ] {
        agent.fail_next_genop(code);
        assert_eq!(sess.noop().unwrap_err().code(), code);
    }
    sess.noop().unwrap();
}

#[test]
fn a_lost_connection_fails_its_sessions_and_new_sessions_reconnect() {
    let (agent, rt, dir) = setup(true);
    let path = dir.path().join("lib.so");
    std::fs::write(&path, b"ELF").unwrap();
    let lib = Resource::new(&rt, path.to_str().unwrap(), ResourceType::Lib).unwrap();
    let old = Session::new(&rt, 0).unwrap();
    old.register(&lib).unwrap();
    agent.disconnect_all();
    let e = old.noop().unwrap_err();
    assert_eq!(e.code(), ErrorCode::EIO, "{e}");

    let new = Session::new(&rt, 0).unwrap();
    new.noop().unwrap();
    assert_eq!(
        agent
            .methods()
            .iter()
            .filter(|m| *m == "GetCapabilities")
            .count(),
        2,
        "a second connection"
    );
    // The resource lived on the old connection: it is shipped again, not named by id.
    agent.take_requests();
    new.register(&lib).unwrap();
    let r: pv::resource::RegisterRequest = agent.last("RegisterResource").decode();
    assert_eq!(r.resource_id, 0);
    assert_eq!(&r.blobs[0].data[..], b"ELF");
    drop(old); // its release fails quietly (logged)
}
