//! A hostile client naming host paths and URLs in `RegisterResource` (issue #14): refused by
//! default, before the agent touches the file or the network; served only inside
//! `--allow-path` / under `--allow-url`, downloads capped by `--max-download-bytes`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::*;
use vaccel::ErrorCode;
use vaccel_rpc::proto::grpc;
use vaccel_rpc::proto::vaccel::resource as pr;
use vaccel_rpc::status::{code, status_to_error};

const SECRET: &[u8] = b"only-the-agent-host-may-read-this";
const MODEL: &[u8] = b"model bytes from an allowed server";
/// `--max-download-bytes` of the URL tests; the big bodies are larger.
const CAP: usize = 1000;

/// A loopback HTTP server standing for what only the agent's host can reach (cloud metadata,
/// internal APIs), counting the requests each path got.
struct HttpServer {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl HttpServer {
    fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let counted = Arc::clone(&hits);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let counted = Arc::clone(&counted);
                std::thread::spawn(move || answer(conn, port, &counted));
            }
        });
        HttpServer { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// One request: its head read, then the route's answer; the connection closes after it.
fn answer(conn: TcpStream, port: u16, hits: &Mutex<HashMap<String, usize>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let big = vec![b'x'; CAP * 4];
    let (head, body): (String, &[u8]) = match path.as_str() {
        "/secret.txt" => (sized(200, SECRET.len()), SECRET),
        "/models/m.bin" => (sized(200, MODEL.len()), MODEL),
        "/models/big.bin" => (sized(200, big.len()), &big),
        // No length: only the cap while reading stops it.
        "/models/unsized.bin" => ("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into(), &big),
        "/models/redirect" => (
            format!(
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/secret.txt\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            b"",
        ),
        _ => (sized(404, 0), b""),
    };
    let mut conn = conn;
    // The agent may hang up early (a body over its cap): not this server's business.
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
}

fn sized(status: u16, len: usize) -> String {
    format!("HTTP/1.1 {status} X\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
}

fn register_paths(
    c: &mut RawClient,
    session: i64,
    paths: &[&str],
) -> CallResult<pr::RegisterResponse> {
    c.call(
        "RegisterResource",
        &pr::RegisterRequest {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            resource_type: pr::ResourceType::Data as i32,
            session_id: session,
            ..Default::default()
        },
    )
}

fn sync(c: &mut RawClient, id: i64) -> CallResult<pr::SyncResponse> {
    c.call("SyncResource", &pr::SyncRequest { resource_id: id })
}

/// A refusal of the policy: `PERMISSION_DENIED`, `VACCEL_EPERM`, naming `option`.
fn assert_refused(st: &grpc::Status, option: &str) {
    assert_eq!(st.code, code::PERMISSION_DENIED, "{st:?}");
    assert_eq!(status_to_error(st).code(), ErrorCode::EPERM, "{st:?}");
    assert!(st.message.contains(option), "{}", st.message);
}

#[test]
fn urls_are_refused_by_default_and_never_fetched() {
    let http = HttpServer::start();
    let agent = AgentProc::unix(&[]);
    let mut c = agent.connect();
    let s = c.create_session(0);
    for url in [
        http.url("/secret.txt"),
        http.url("/secret.txt").replace("http", "HTTPS"),
    ] {
        let err = register_paths(&mut c, s, &[&url]).unwrap_err();
        assert_refused(&err, "--allow-url");
        assert!(
            !format!("{err:?}").contains("only-the-agent-host"),
            "{err:?}"
        );
    }
    // Answered before any request left the agent.
    assert_eq!(http.hits("/secret.txt"), 0);
    // Blobs, what the rpc plugin sends, still work.
    let id = c.register_blob(s, "m.bin", MODEL);
    let back = sync(&mut c, id).unwrap();
    assert_eq!(&back.blobs[0].data[..], MODEL);
}

#[test]
fn host_paths_are_refused_by_default_with_one_answer_for_existing_and_missing() {
    let outside = tempfile::tempdir().unwrap();
    let existing = outside.path().join("shadow");
    std::fs::write(&existing, b"root:x:0:0").unwrap();
    let missing = outside.path().join("missing");
    let agent = AgentProc::unix(&[]);
    let mut c = agent.connect();
    let s = c.create_session(0);
    let answer = |c: &mut RawClient, path: &str| {
        let err = register_paths(c, s, &[path]).unwrap_err();
        assert_refused(&err, "--allow-path");
        (err.code, err.message.replace(path, "<path>"), err.details)
    };
    let a = answer(&mut c, &existing.display().to_string());
    let b = answer(&mut c, &missing.display().to_string());
    let d = answer(&mut c, outside.path().to_str().unwrap());
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1, "the answer does not tell whether the path exists");
    assert_eq!(a.1, d.1, "nor whether it is a directory");
    assert_eq!(
        status_to_error(&grpc::Status {
            code: a.0,
            message: a.1.clone(),
            details: a.2
        })
        .code(),
        ErrorCode::EPERM
    );
    // file:// and relative spellings are host paths too.
    answer(&mut c, &format!("file://{}", existing.display()));
    answer(&mut c, "etc/passwd");
}

#[test]
fn allowed_paths_work_inside_the_directory_only() {
    let root = tempfile::tempdir().unwrap();
    let allowed = root.path().join("models");
    std::fs::create_dir_all(allowed.join("tree")).unwrap();
    std::fs::write(allowed.join("m.bin"), MODEL).unwrap();
    std::fs::write(allowed.join("tree/a.txt"), b"a").unwrap();
    std::fs::write(root.path().join("secret"), SECRET).unwrap();
    std::os::unix::fs::symlink(root.path().join("secret"), allowed.join("escape")).unwrap();
    std::os::unix::fs::symlink(root.path(), allowed.join("up")).unwrap();
    let agent = AgentProc::unix(&["--allow-path", allowed.to_str().unwrap()]);
    assert!(agent.find_log("may register host paths inside").is_some());
    let mut c = agent.connect();
    let s = c.create_session(0);

    let file = allowed.join("m.bin").display().to_string();
    let by_path = register_paths(&mut c, s, &[&file]).unwrap();
    // A host file the client named is used, never sent back.
    let err = sync(&mut c, by_path.resource_id).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (code::INTERNAL, "Blob has no data")
    );
    let tree = allowed.join("tree").display().to_string();
    register_paths(&mut c, s, &[&tree]).unwrap();
    // A directory inside whose symlink leads out: refused before the runtime reads it.
    std::os::unix::fs::symlink(root.path().join("secret"), allowed.join("tree/out")).unwrap();
    let err = register_paths(&mut c, s, &[&tree]).unwrap_err();
    assert_refused(&err, "--allow-path");
    std::fs::remove_file(allowed.join("tree/out")).unwrap();

    let mut answers = Vec::new();
    for refused in [
        allowed.join("escape"),
        allowed.join("up/secret"),
        allowed.join("../secret"),
        allowed.join("missing"),
        root.path().join("secret"),
    ] {
        let path = refused.display().to_string();
        let err = register_paths(&mut c, s, &[&path]).unwrap_err();
        assert_refused(&err, "--allow-path");
        answers.push(err.message.replace(&path, "<path>"));
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "one answer for all: {answers:?}");
    // URLs stay refused: only --allow-url opens them.
    let err = register_paths(&mut c, s, &["http://127.0.0.1:1/x"]).unwrap_err();
    assert_refused(&err, "--allow-url");
}

#[test]
fn an_allow_path_that_does_not_exist_stops_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    AgentProc::start_fails(
        &format!("unix://{}", dir.path().join("a.sock").display()),
        &["--allow-path", missing.to_str().unwrap()],
        "--allow-path",
    );
}

#[test]
fn allowed_urls_download_within_the_cap_and_nothing_else() {
    let http = HttpServer::start();
    let prefix = http.url("/models/");
    let cap = CAP.to_string();
    let agent = AgentProc::unix(&["--allow-url", &prefix, "--max-download-bytes", &cap]);
    let mut c = agent.connect();
    let s = c.create_session(0);

    let ok = register_paths(&mut c, s, &[&http.url("/models/m.bin")]).unwrap();
    // Downloaded for the client: it may read it back.
    let back = sync(&mut c, ok.resource_id).unwrap();
    assert_eq!(back.blobs.len(), 1);
    assert_eq!(back.blobs[0].name, "m.bin");
    assert_eq!(&back.blobs[0].data[..], MODEL);

    for big in ["/models/big.bin", "/models/unsized.bin"] {
        let err = register_paths(&mut c, s, &[&http.url(big)]).unwrap_err();
        assert_eq!(err.code, code::RESOURCE_EXHAUSTED, "{big}: {err:?}");
        assert_eq!(status_to_error(&err).code(), ErrorCode::ENOSPC);
        assert!(
            err.message.contains("--max-download-bytes"),
            "{}",
            err.message
        );
    }
    // The cap is per request: two allowed bodies that together exceed it fail too.
    let many: Vec<String> = (0..40).map(|_| http.url("/models/m.bin")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = register_paths(&mut c, s, &many).unwrap_err();
    assert_eq!(err.code, code::RESOURCE_EXHAUSTED);

    // Outside the prefix: refused unfetched. A redirect out of it is not followed.
    let err = register_paths(&mut c, s, &[&http.url("/secret.txt")]).unwrap_err();
    assert_refused(&err, "--allow-url");
    for sneaky in ["/models/../secret.txt", "/models/%2e%2e/secret.txt"] {
        let err = register_paths(&mut c, s, &[&http.url(sneaky)]).unwrap_err();
        assert_refused(&err, "--allow-url");
    }
    let err = register_paths(&mut c, s, &[&http.url("/models/redirect")]).unwrap_err();
    assert_eq!(
        status_to_error(&err).code(),
        ErrorCode::EREMOTEIO,
        "{err:?}"
    );
    assert!(err.message.contains("302"), "{}", err.message);
    assert_eq!(http.hits("/secret.txt"), 0, "never fetched");
    assert_eq!(http.hits("/models/redirect"), 1);
    // Host paths stay refused: only --allow-path opens them.
    let err = register_paths(&mut c, s, &["/etc/hostname"]).unwrap_err();
    assert_refused(&err, "--allow-path");
    // And the agent still serves.
    c.register_blob(s, "m.bin", MODEL);
}
