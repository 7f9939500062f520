//! Extensions are negotiated: the `rpc` plugin, driven through a `vaccel` session, uses one only
//! when the agent advertises it in `GetCapabilities`.
//!
//! Against a stand-in for upstream's agent, built on the crates.io `ttrpc` crate (an independent
//! implementation of the wire) with only upstream's `AgentService` methods, every request is
//! recorded and must look like upstream's plugin's: no extension metadata, no op upstream's
//! agent refuses (noop and torch_sgemm fail with `ENOTSUP` locally, as upstream's plugin does not
//! offer them), one write argument for detection. Against our agent the same calls use the
//! extensions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use vaccel::plugin::{Plugin, PluginInfo};
use vaccel::{
    Arg, ArgType, Config, Detection, ErrorCode, OpSet, OpType, PluginType, Resource, ResourceType,
    Result, Runtime, Session, TorchDataType, TorchTensor,
};
use vaccel_agent::Agent;
use vaccel_plugin_rpc::RpcPlugin;
use vaccel_rpc::addr::Address;
use vaccel_rpc::proto::vaccel as pv;
use vaccel_rpc::proto::vaccel::{genop as pg, resource as pr, session as ps};
use vaccel_rpc::server::ServerConfig;
use vaccel_rpc::transport::Listener;

/// What the stand-in saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    metadata: Vec<String>,
    /// For `Genop`: the op byte, and the numbers of read and write arguments.
    genop: Option<(u8, usize, usize)>,
    /// For `RegisterResource`: the blob names.
    blob_names: Vec<String>,
}

/// The upstream methods the stand-in serves (spec §8.6, sync build).
const UPSTREAM_METHODS: &[&str] = &[
    "CreateSession",
    "UpdateSession",
    "DestroySession",
    "RegisterResource",
    "UnregisterResource",
    "SyncResource",
    "ImageClassification",
    "TensorflowModelLoad",
    "TensorflowModelUnload",
    "TensorflowModelRun",
    "TensorflowLiteModelLoad",
    "TensorflowLiteModelUnload",
    "TensorflowLiteModelRun",
    "TorchModelLoad",
    "TorchModelRun",
    "Genop",
    "GetProfiler",
];

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    next_id: AtomicI64,
}

struct Method {
    name: &'static str,
    shared: Arc<Shared>,
}

/// Upstream's answer to a vAccel failure: `INTERNAL` "FFI error: <code>" with the code in a
/// `vaccel.ProtoError` detail.
fn ffi_error(code: ErrorCode) -> ttrpc::Status {
    let mut st = ttrpc::get_status(ttrpc::Code::INTERNAL, format!("FFI error: {}", code as i32));
    st.details.push(Default::default());
    let any = st.details.last_mut().unwrap();
    any.type_url = "type.googleapis.com/vaccel.ProtoError".to_owned();
    any.value = pv::Error {
        ffi_error: Some(code as u32),
        ..Default::default()
    }
    .encode_to_vec();
    st
}

fn c_string(text: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let n = text.len().min(len.saturating_sub(1));
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

/// Upstream's agent with the noop plugin (spec §2.3, §9.1, §13): the op checks of
/// `vaccel_genop`, noop's dummy outputs, everything else echoed.
fn genop(req: &pg::Request) -> std::result::Result<pg::Response, ttrpc::Status> {
    let einval = || ffi_error(ErrorCode::EINVAL);
    let op = match req.read_args.first() {
        Some(a) if a.arg_type == pg::ArgType::Uint8 as i32 && a.buf.len() == 1 => a.buf[0],
        _ => return Err(einval()),
    };
    let (nr_read, mut write) = (req.read_args.len() - 1, req.write_args.clone());
    match op {
        0 | 24.. => return Err(einval()),
        8..=16 => return Err(ffi_error(ErrorCode::ENOTSUP)),
        3 => {
            if nr_read != 1 || write.len() != 2 {
                return Err(einval());
            }
            write[0].buf = c_string("This is a dummy imgname!", write[0].buf.len()).into();
            write[1].buf =
                c_string("This is a dummy classification tag!", write[1].buf.len()).into();
        }
        4..=7 => {
            // "Wrong number of write arguments for image_detect: 2 (expected 1)"
            if nr_read != 1 || write.len() != 1 {
                return Err(einval());
            }
            write[0].buf = c_string("This is a dummy imgname!", write[0].buf.len()).into();
        }
        _ => {}
    }
    Ok(pg::Response { write_args: write })
}

impl Method {
    fn answer(
        &self,
        seen: &mut Seen,
        payload: &[u8],
    ) -> std::result::Result<Vec<u8>, ttrpc::Status> {
        let bad =
            |e: prost::DecodeError| ttrpc::get_status(ttrpc::Code::INVALID_ARGUMENT, e.to_string());
        let new_id = || self.shared.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(match self.name {
            "CreateSession" => ps::CreateResponse {
                session_id: new_id(),
            }
            .encode_to_vec(),
            "RegisterResource" => {
                let r = pr::RegisterRequest::decode(payload).map_err(bad)?;
                seen.blob_names = r.blobs.iter().map(|b| b.name.clone()).collect();
                pr::RegisterResponse {
                    resource_id: if r.resource_id > 0 {
                        r.resource_id
                    } else {
                        new_id()
                    },
                }
                .encode_to_vec()
            }
            "Genop" => {
                let r = pg::Request::decode(payload).map_err(bad)?;
                seen.genop = Some((
                    r.read_args
                        .first()
                        .and_then(|a| a.buf.first().copied())
                        .unwrap_or(u8::MAX),
                    r.read_args.len(),
                    r.write_args.len(),
                ));
                genop(&r)?.encode_to_vec()
            }
            "UpdateSession" | "DestroySession" | "UnregisterResource" | "GetProfiler" => Vec::new(),
            // Not used by these tests.
            _ => return Err(ffi_error(ErrorCode::ENOTSUP)),
        })
    }
}

impl ttrpc::MethodHandler for Method {
    fn handler(&self, ctx: ttrpc::TtrpcContext, req: ttrpc::Request) -> ttrpc::Result<()> {
        let mut metadata: Vec<String> = ctx.metadata.keys().cloned().collect();
        metadata.sort();
        let mut seen = Seen {
            method: self.name.to_owned(),
            metadata,
            genop: None,
            blob_names: Vec::new(),
        };
        let mut resp = ttrpc::Response::new();
        match self.answer(&mut seen, &req.payload) {
            Ok(payload) => {
                resp.set_status(ttrpc::get_status(ttrpc::Code::OK, ""));
                resp.payload = payload;
            }
            Err(st) => resp.set_status(st),
        }
        self.shared.seen.lock().unwrap().push(seen);
        ttrpc::response_to_channel(ctx.mh.stream_id, resp, ctx.res_tx)
    }
}

/// The stand-in for upstream's agent, on a unix socket in a temp dir.
struct UpstreamAgent {
    server: Option<ttrpc::Server>,
    shared: Arc<Shared>,
    address: Address,
    _dir: tempfile::TempDir,
}

impl UpstreamAgent {
    fn start() -> UpstreamAgent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upstream.sock");
        let shared = Arc::new(Shared::default());
        let mut methods: HashMap<String, Box<dyn ttrpc::MethodHandler + Send + Sync>> =
            HashMap::new();
        for name in UPSTREAM_METHODS {
            methods.insert(
                format!("/{}/{name}", vaccel_rpc::SERVICE),
                Box::new(Method {
                    name,
                    shared: Arc::clone(&shared),
                }),
            );
        }
        let mut server = ttrpc::Server::new()
            .bind(&format!("unix://{}", path.display()))
            .unwrap()
            .register_service(methods);
        server.start().unwrap();
        UpstreamAgent {
            server: Some(server),
            shared,
            address: Address::Unix(path),
            _dir: dir,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.shared.seen.lock().unwrap())
    }
}

impl Drop for UpstreamAgent {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }
}

/// A client runtime whose only plugin is `rpc`, for the agent at `address`.
fn client(address: &Address, dir: &Path) -> Runtime {
    vaccel::builder()
        .rundir_base(dir)
        .skip_logging()
        .config(Config::default())
        .plugin(Arc::new(RpcPlugin::with_address(address.clone())))
        .build()
        .unwrap()
}

fn text(b: &[u8]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).unwrap()
}

#[test]
fn against_upstreams_agent_only_upstreams_messages_are_sent() {
    let agent = UpstreamAgent::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = client(&agent.address, dir.path());
    let sess = Session::new(&rt, 0).unwrap();
    assert_eq!(
        agent.take().len(),
        1,
        "CreateSession (the probe is not a method here)"
    );

    // noop: upstream's plugin does not offer it, and upstream's agent refuses op 0.
    let e = sess.noop().unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOTSUP, "{e}");
    let data = [0u8; 16];
    let t = TorchTensor::new(vec![2, 2], TorchDataType::Float, &data[..]).unwrap();
    let e = sess.torch_sgemm(&t, &t, &t, 2, 2, 2).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOTSUP, "{e}");
    assert!(agent.take().is_empty(), "nothing sent for unsupported ops");

    // Classification: upstream's layout, both outputs filled.
    let (mut tags, mut name) = ([0u8; 256], [0u8; 256]);
    sess.image_classify(b"img", &mut tags, &mut name).unwrap();
    assert_eq!(text(&tags), "This is a dummy classification tag!");
    assert_eq!(text(&name), "This is a dummy imgname!");

    // Detection, with and without asking for the objects: one write argument.
    let mut name = [0u8; 128];
    sess.image_detect(b"img", &mut name).unwrap();
    let found = sess.image_detect_objects(b"img", &mut name).unwrap();
    assert!(found.is_empty(), "upstream's agent returns no records");
    assert_eq!(text(&name), "This is a dummy imgname!");
    // A program calling genop with the two-output detection layout (detect_generic).
    let op = [OpType::ImageDetect.value()];
    let read = [
        Arg::new(ArgType::Uint8, &op).unwrap(),
        Arg::new(ArgType::Buffer, b"img").unwrap(),
    ];
    let (mut name, mut records) = ([0u8; 64], [0xffu8; 256]);
    {
        let mut write = [
            Arg::new_mut(ArgType::UcharArray, &mut name).unwrap(),
            Arg::new_mut(ArgType::UcharArray, &mut records).unwrap(),
        ];
        sess.genop(&read, &mut write).unwrap();
    }
    assert_eq!(text(&name), "This is a dummy imgname!");
    assert_eq!(text(&records), "", "no records");
    for op in [OpType::ImageSegment, OpType::ImagePose, OpType::ImageDepth] {
        let mut name = [0u8; 64];
        match op {
            OpType::ImageSegment => sess.image_segment(b"img", &mut name),
            OpType::ImagePose => sess.image_pose(b"img", &mut name),
            _ => sess.image_depth(b"img", &mut name),
        }
        .unwrap();
    }

    // Other genop layouts reach the agent as they are.
    let mut out = [0i32; 1];
    sess.exec(
        "libmytestlib.so",
        "mytestfunc",
        &[Arg::scalar(7i32)],
        &mut [Arg::out_array(&mut out).unwrap()],
    )
    .unwrap();
    let mut outdata = [0f64; 3];
    sess.minmax(&[3.0, 1.0, 2.0], 0, 5, &mut outdata).unwrap();

    let genops: Vec<_> = agent.take().into_iter().map(|s| s.genop.unwrap()).collect();
    let (classify, detect) = (OpType::ImageClassify.value(), OpType::ImageDetect.value());
    assert_eq!(
        genops,
        [
            (classify, 2, 2),
            (detect, 2, 1),
            (detect, 2, 1),
            (detect, 2, 1),
            (OpType::ImageSegment.value(), 2, 1),
            (OpType::ImagePose.value(), 2, 1),
            (OpType::ImageDepth.value(), 2, 1),
            (OpType::Exec.value(), 4, 1),
            (OpType::Minmax.value(), 5, 3),
        ]
    );

    // A directory resource: its files, flattened to file names, with no marker.
    let root = dir.path().join("model");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), b"a").unwrap();
    std::fs::write(root.join("sub/b.txt"), b"bb").unwrap();
    let res = Resource::new(&rt, root.to_str().unwrap(), ResourceType::Model).unwrap();
    sess.register(&res).unwrap();
    sess.unregister(&res).unwrap();
    let sess2 = Session::new(&rt, 0).unwrap();
    drop(sess2);
    drop(sess);

    let all = agent.seen();
    let register = all.iter().find(|s| s.method == "RegisterResource").unwrap();
    assert_eq!(register.blob_names, ["a.txt", "b.txt"]);
    // Nothing but upstream's methods (the stand-in registers no other), none with metadata:
    // no chunking, no chunked responses, no directory marker.
    for s in &all {
        assert!(UPSTREAM_METHODS.contains(&s.method.as_str()), "{s:?}");
        assert!(s.metadata.is_empty(), "{s:?}");
    }
    let methods: Vec<_> = all.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "RegisterResource",
            "UnregisterResource",
            "CreateSession",
            "DestroySession",
            "DestroySession"
        ]
    );
}

/// What [`Detector`] finds.
fn cat() -> Detection {
    Detection {
        label: "cat".into(),
        score: 0.5,
        x0: 1.0,
        y0: 2.0,
        x1: 3.0,
        y1: 4.0,
    }
}

/// Noop and detection with structured results, on the agent's side.
struct Detector {
    info: PluginInfo,
    noops: AtomicUsize,
}

impl Plugin for Detector {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        OpSet::of(&[OpType::Noop, OpType::ImageDetect])
    }

    fn noop(&self, _sess: &Session) -> Result<()> {
        self.noops.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn image_op(&self, sess: &Session, _op: OpType, image: &[u8], out: &mut [u8]) -> Result<()> {
        self.image_detect_objects(sess, image, out).map(drop)
    }

    fn image_detect_objects(
        &self,
        _sess: &Session,
        _image: &[u8],
        out: &mut [u8],
    ) -> Result<Vec<Detection>> {
        out.copy_from_slice(&c_string("found.png", out.len()));
        Ok(vec![cat()])
    }
}

#[test]
fn against_our_agent_the_extensions_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let detector = Arc::new(Detector {
        info: PluginInfo::new("detector", "1.0.0", PluginType::CPU),
        noops: AtomicUsize::new(0),
    });
    let agent_rt = vaccel::builder()
        .rundir_base(dir.path())
        .skip_logging()
        .config(Config::default())
        .plugin(detector.clone())
        .build()
        .unwrap();
    let address = Address::Unix(dir.path().join("agent.sock"));
    let handle = Arc::new(Agent::new(agent_rt))
        .server(ServerConfig::default())
        .start(Listener::bind(&address).unwrap())
        .unwrap();

    let client_dir = tempfile::tempdir().unwrap();
    let rt = client(&address, client_dir.path());
    let sess = Session::new(&rt, 0).unwrap();
    sess.noop().unwrap();
    assert_eq!(
        detector.noops.load(Ordering::SeqCst),
        1,
        "noop ran on the agent"
    );
    let mut name = [0u8; 64];
    let found = sess.image_detect_objects(b"img", &mut name).unwrap();
    assert_eq!(text(&name), "found.png");
    assert_eq!(found, [cat()]);
    drop(sess);
    drop(rt);
    assert!(handle.shutdown(Duration::from_secs(5)));
}
