//! Resources: files, directories, buffers, blobs and URLs; registration and release.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;

use common::{Recorder, runtime};
use vaccel_core::{
    Blob, BlobType, ErrorCode, PathType, PluginType, Resource, ResourceType, Session,
};

fn local() -> Arc<Recorder> {
    Recorder::new("rec", PluginType::CPU, false)
}

#[test]
fn file_resources_become_file_blobs_at_registration() {
    let p = local();
    let (rt, base) = runtime(&[p.clone()]);
    let f = base.path().join("model.bin");
    std::fs::write(&f, b"weights").unwrap();
    let r = Resource::new(&rt, f.to_str().unwrap(), ResourceType::Model).unwrap();
    assert_eq!(r.path_type(), PathType::LocalFile);
    assert!(
        r.blobs().is_empty(),
        "files are only looked at when registered"
    );
    let s = Session::new(&rt, 0).unwrap();
    s.register(&r).unwrap();
    let blobs = r.blobs();
    assert_eq!(blobs.len(), 1);
    assert_eq!(blobs[0].kind(), BlobType::File);
    assert_eq!(blobs[0].name(), "model.bin");
    assert_eq!(&blobs[0].read().unwrap()[..], b"weights");
    assert_eq!(r.refcount(), 1);
    assert!(s.has_resource(&r));
    assert_eq!(
        s.resource_by_type(ResourceType::Model).unwrap().id(),
        r.id()
    );
    assert_eq!(s.resource_by_id(r.id()).unwrap().id(), r.id());
    assert_eq!(
        s.resource_by_type(ResourceType::Lib).unwrap_err().code(),
        ErrorCode::ENOENT
    );
    // Registering twice warns and does not call the plugin again.
    s.register(&r).unwrap();
    assert_eq!(
        p.calls()
            .iter()
            .filter(|c| c.starts_with("register"))
            .count(),
        1
    );
    s.unregister(&r).unwrap();
    assert_eq!(r.refcount(), 0);
    assert_eq!(s.unregister(&r).unwrap_err().code(), ErrorCode::EINVAL);
    drop(r);
    assert!(f.exists(), "the user's file is never deleted");
}

#[test]
fn file_url_and_bad_paths() {
    let (rt, base) = runtime(&[local()]);
    let f = base.path().join("x.txt");
    std::fs::write(&f, b"x").unwrap();
    let url = format!("file://{}", f.display());
    assert_eq!(
        Resource::new(&rt, &url, ResourceType::Data)
            .unwrap()
            .path_type(),
        PathType::LocalFile
    );
    let bad = base.path().join("missing");
    assert_eq!(
        Resource::new(&rt, bad.to_str().unwrap(), ResourceType::Data)
            .unwrap_err()
            .code(),
        ErrorCode::EINVAL
    );
    assert_eq!(
        Resource::new(&rt, "gopher://x/y", ResourceType::Data)
            .unwrap_err()
            .code(),
        ErrorCode::EINVAL
    );
    assert_eq!(
        Resource::new(&rt, "ftp://x/y", ResourceType::Data)
            .unwrap_err()
            .code(),
        ErrorCode::ENOTSUP
    );
    let long = "a".repeat(5000);
    assert_eq!(
        Resource::new(&rt, &long, ResourceType::Data)
            .unwrap_err()
            .code(),
        ErrorCode::ENAMETOOLONG
    );
    let dir = base.path().to_str().unwrap();
    assert_eq!(
        Resource::from_paths(&rt, &[f.to_str().unwrap(), dir], ResourceType::Data)
            .unwrap_err()
            .code(),
        ErrorCode::EINVAL
    );
    assert_eq!(
        Resource::from_paths(&rt, &[dir, dir], ResourceType::Data)
            .unwrap_err()
            .code(),
        ErrorCode::ENOTSUP
    );
    assert_eq!(
        rt.resource_count(),
        0,
        "failed creations leave no resource behind"
    );
}

#[test]
fn directory_resources_keep_their_tree() {
    let (rt, base) = runtime(&[local()]);
    let root = base.path().join("saved_model");
    std::fs::create_dir_all(root.join("variables/deep")).unwrap();
    std::fs::write(root.join("saved_model.pb"), b"graph").unwrap();
    std::fs::write(root.join("variables/variables.index"), b"idx").unwrap();
    std::fs::write(root.join("variables/deep/d.bin"), b"d").unwrap();
    let r = Resource::new(&rt, root.to_str().unwrap(), ResourceType::Model).unwrap();
    assert_eq!(r.path_type(), PathType::LocalDir);
    assert_eq!(r.directory().unwrap(), root);
    let s = Session::new(&rt, 0).unwrap();
    s.register(&r).unwrap();
    let names: Vec<String> = r.blobs().iter().map(|b| b.name().to_owned()).collect();
    assert_eq!(
        names,
        vec![
            "saved_model.pb",
            "variables/deep/d.bin",
            "variables/variables.index"
        ]
    );
    let f = base.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    let not_dir = Resource::new(&rt, f.to_str().unwrap(), ResourceType::Data).unwrap();
    assert_eq!(not_dir.directory().unwrap_err().code(), ErrorCode::ENOTSUP);
}

#[test]
fn shipped_trees_are_rebuilt_inside_the_resource_dir() {
    let (rt, _base) = runtime(&[local()]);
    let files = vec![
        (
            "saved_model.pb".to_owned(),
            bytes::Bytes::from_static(b"graph"),
        ),
        (
            "variables/variables.index".to_owned(),
            bytes::Bytes::from_static(b"idx"),
        ),
    ];
    let r = Resource::from_named_buffers(&rt, files, ResourceType::Model, true).unwrap();
    let dir = r.directory().unwrap();
    assert_eq!(dir, rt.rundir().join(format!("resource.{}", r.id())));
    assert_eq!(
        std::fs::read(dir.join("variables/variables.index")).unwrap(),
        b"idx"
    );
    let hostile = vec![("../../escape".to_owned(), bytes::Bytes::from_static(b"x"))];
    assert_eq!(
        Resource::from_named_buffers(&rt, hostile, ResourceType::Data, false)
            .unwrap_err()
            .code(),
        ErrorCode::EINVAL
    );
    assert!(
        !rt.rundir().join("escape").exists()
            && !rt.rundir().parent().unwrap().join("escape").exists()
    );
    r.release().unwrap();
    assert!(!dir.exists());
}

#[test]
fn buffers_persisted_or_in_memory() {
    let (rt, _base) = runtime(&[local()]);
    let mem =
        Resource::from_buf(&rt, b"in memory".to_vec(), ResourceType::Data, None, true).unwrap();
    let blobs = mem.blobs();
    assert_eq!(blobs[0].kind(), BlobType::Buffer);
    assert!(blobs[0].path().is_none());
    assert!(mem.rundir().is_none(), "mem_only resources touch no disk");

    let persisted = Resource::from_buf(
        &rt,
        b"\x7fELF".to_vec(),
        ResourceType::Lib,
        Some("lib.so"),
        false,
    )
    .unwrap();
    let blob = persisted.blobs()[0].clone();
    assert_eq!(blob.kind(), BlobType::Mapped);
    let path = blob.path().unwrap().to_owned();
    assert_eq!(
        path,
        rt.rundir()
            .join(format!("resource.{}/lib.so", persisted.id()))
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"\x7fELF");
    let random = Resource::from_buf(&rt, b"x".to_vec(), ResourceType::Data, None, false).unwrap();
    assert!(random.blobs()[0].name().starts_with("file_"));

    assert_eq!(
        Resource::from_buf(&rt, Vec::new(), ResourceType::Data, None, true)
            .unwrap_err()
            .code(),
        ErrorCode::EINVAL
    );
    assert_eq!(
        Resource::from_buf(&rt, b"x".to_vec(), ResourceType::Data, Some("../x"), false)
            .unwrap_err()
            .code(),
        ErrorCode::EINVAL
    );
    let dir = persisted.rundir().unwrap();
    drop(blob);
    persisted.release().unwrap();
    assert!(
        !path.exists() && !dir.exists(),
        "release removes the files and the directory"
    );
    assert_eq!(persisted.release().unwrap_err().code(), ErrorCode::EINVAL);
}

#[test]
fn blobs_of_every_kind() {
    let (rt, base) = runtime(&[local()]);
    let f = base.path().join("dep.so");
    std::fs::write(&f, b"dep").unwrap();
    let other = Resource::from_buf(
        &rt,
        b"mapped".to_vec(),
        ResourceType::Data,
        Some("m.bin"),
        false,
    )
    .unwrap();
    let mapped_path = other.blobs()[0].path().unwrap().to_owned();
    let mapped = Blob::persist(
        bytes::Bytes::from_static(b"mapped"),
        mapped_path.parent().unwrap(),
        "copy.bin",
        false,
    )
    .unwrap();
    let blobs = vec![
        Blob::from_path(&f).unwrap(),
        Blob::from_buf(b"buffer".to_vec(), "buf.bin").unwrap(),
        mapped,
    ];
    let r = Resource::from_blobs(&rt, blobs, ResourceType::Lib).unwrap();
    let kinds: Vec<BlobType> = r.blobs().iter().map(|b| b.kind()).collect();
    assert_eq!(
        kinds,
        vec![BlobType::File, BlobType::Buffer, BlobType::Mapped]
    );
    let copy = r.blobs()[2].path().unwrap().to_owned();
    assert!(copy.starts_with(rt.rundir().join(format!("resource.{}", r.id()))));
    assert_eq!(std::fs::read(&copy).unwrap(), b"mapped");
    assert!(Resource::from_blobs(&rt, vec![], ResourceType::Lib).is_err());
}

#[test]
fn release_unregisters_from_every_session_and_blocks_use() {
    let p = local();
    let (rt, base) = runtime(&[p.clone()]);
    let f = base.path().join("lib.so");
    std::fs::write(&f, b"x").unwrap();
    let r = Resource::new(&rt, f.to_str().unwrap(), ResourceType::Lib).unwrap();
    let a = Session::new(&rt, 0).unwrap();
    let b = Session::new(&rt, 0).unwrap();
    a.register(&r).unwrap();
    b.register(&r).unwrap();
    assert_eq!(r.refcount(), 2);
    r.release().unwrap();
    assert!(!a.has_resource(&r) && !b.has_resource(&r));
    let unregs = p
        .calls()
        .iter()
        .filter(|c| c.starts_with("unregister"))
        .count();
    assert_eq!(unregs, 2);
    assert_eq!(a.register(&r).unwrap_err().code(), ErrorCode::EINVAL);
    assert_eq!(
        a.exec_with_resource(&r, "f", &[], &mut [])
            .unwrap_err()
            .code(),
        ErrorCode::EINVAL
    );
    assert_eq!(
        rt.resource_by_id(r.id()).unwrap_err().code(),
        ErrorCode::ENOENT
    );
}

#[test]
fn session_release_unregisters_in_type_order_but_keeps_resources() {
    let p = local();
    let (rt, base) = runtime(&[p.clone()]);
    let f = base.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    let path = f.to_str().unwrap();
    let model = Resource::new(&rt, path, ResourceType::Model).unwrap();
    let data = Resource::new(&rt, path, ResourceType::Data).unwrap();
    let lib = Resource::new(&rt, path, ResourceType::Lib).unwrap();
    let s = Session::new(&rt, 0).unwrap();
    for r in [&model, &data, &lib] {
        s.register(r).unwrap();
    }
    drop(s);
    let unregs: Vec<String> = p
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("unregister"))
        .collect();
    assert_eq!(
        unregs,
        vec![
            format!("unregister {} 1", lib.id()),
            format!("unregister {} 1", data.id()),
            format!("unregister {} 1", model.id()),
        ]
    );
    assert!(!model.is_released());
    assert_eq!(model.refcount(), 0);
    assert_eq!(rt.resources_by_type(ResourceType::Model).len(), 1);
}

#[test]
fn resource_type_is_checked_before_registration() {
    let (rt, base) = runtime(&[local()]);
    let f = base.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    let data = Resource::new(&rt, f.to_str().unwrap(), ResourceType::Data).unwrap();
    let lib = Resource::new(&rt, f.to_str().unwrap(), ResourceType::Lib).unwrap();
    let s = Session::new(&rt, 0).unwrap();
    assert_eq!(
        s.exec_with_resource(&data, "f", &[], &mut [])
            .unwrap_err()
            .code(),
        ErrorCode::EINVAL
    );
    assert_eq!(
        s.exec_with_resource(&lib, "f", &[], &mut [])
            .unwrap_err()
            .code(),
        ErrorCode::EPERM
    );
    s.register(&lib).unwrap();
    s.exec_with_resource(&lib, "f", &[], &mut []).unwrap();
}

/// A one-shot-per-connection HTTP server on loopback serving `/model.bin`, a redirect and 404s.
fn http_server(body: &'static [u8]) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        for _ in 0..3 {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            let response: Vec<u8> = match path.as_str() {
                "/model.bin" => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                "/moved" => b"HTTP/1.1 302 Found\r\nLocation: /model.bin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            conn.write_all(&response).unwrap();
        }
    });
    (format!("http://{addr}"), handle)
}

#[test]
fn urls_are_downloaded_for_local_sessions() {
    let (base_url, server) = http_server(b"model bytes from http");
    let (rt, _base) = runtime(&[local()]);
    let s = Session::new(&rt, 0).unwrap();

    let r = Resource::new(&rt, &format!("{base_url}/model.bin"), ResourceType::Model).unwrap();
    assert_eq!(r.path_type(), PathType::RemoteFile);
    s.register(&r).unwrap();
    let blob = r.blobs()[0].clone();
    let path = blob.path().unwrap().to_owned();
    assert_eq!(
        path,
        rt.rundir().join(format!("resource.{}/model.bin", r.id()))
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"model bytes from http");

    let moved = Resource::new(&rt, &format!("{base_url}/moved"), ResourceType::Model).unwrap();
    s.register(&moved).unwrap();
    assert_eq!(
        &moved.blobs()[0].read().unwrap()[..],
        b"model bytes from http"
    );

    let missing =
        Resource::new(&rt, &format!("{base_url}/missing.bin"), ResourceType::Model).unwrap();
    let e = s.register(&missing).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EREMOTEIO, "{e}");
    assert!(!s.has_resource(&missing));
    server.join().unwrap();

    drop(blob);
    r.release().unwrap();
    assert!(!path.exists(), "downloaded files are deleted on release");
}

#[test]
fn urls_are_left_to_remote_sessions() {
    let remote = Recorder::new("remote", PluginType::REMOTE, true);
    let (rt, _base) = runtime(&[remote]);
    let s = Session::new(&rt, PluginType::REMOTE.bits()).unwrap();
    // Nothing listens here: a remote session must not try to download.
    let r = Resource::new(&rt, "http://127.0.0.1:9/none.bin", ResourceType::Model).unwrap();
    s.register(&r).unwrap();
    assert!(r.blobs().is_empty());
    assert!(r.remote_id() >= 100);
}

/// What a C caller's `res.type = ...` after init comes to (issue #13): the new type counts
/// for the ops' checks (type before registration) and the typed lookups, and a registration
/// made afterwards lists the resource under it.
#[test]
fn a_changed_type_counts_for_ops_lookups_and_registration() {
    let (rt, base) = runtime(&[local()]);
    let f = base.path().join("lib.so");
    std::fs::write(&f, b"elf").unwrap();
    let r = Resource::new(&rt, f.to_str().unwrap(), ResourceType::Data).unwrap();
    let s = Session::new(&rt, 0).unwrap();
    let exec = |r: &Resource| s.exec_with_resource(r, "f", &[], &mut []);
    assert_eq!(exec(&r).unwrap_err().code(), ErrorCode::EINVAL);
    let before = r.generation();
    r.set_kind(ResourceType::Lib);
    assert_eq!(r.kind(), ResourceType::Lib);
    assert_ne!(r.generation(), before, "views must be refreshed");
    let same = r.generation();
    r.set_kind(ResourceType::Lib);
    assert_eq!(r.generation(), same, "no change, no refresh");
    assert_eq!(exec(&r).unwrap_err().code(), ErrorCode::EPERM);
    assert_eq!(rt.resources_by_type(ResourceType::Lib).len(), 1);
    assert!(rt.resources_by_type(ResourceType::Data).is_empty());
    s.register(&r).unwrap();
    assert_eq!(s.resource_by_type(ResourceType::Lib).unwrap().id(), r.id());
    exec(&r).unwrap();
    r.set_kind(ResourceType::Model);
    assert_eq!(exec(&r).unwrap_err().code(), ErrorCode::EINVAL);
}
