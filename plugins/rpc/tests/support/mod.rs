//! A fake agent for the plugin's tests: it speaks the wire with `vaccel_rpc`'s frame and
//! message modules, records every request, and runs sessions, resources and ops on a local
//! runtime with the noop plugin, so each genop layout the plugin sends is decoded by the
//! core's own unpacker and answered with noop's outputs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use bytes::Bytes;
use prost::Message;
use vaccel_core::arg::Arg;
use vaccel_core::tensor::{DataType, Tensor};
use vaccel_core::{
    Blob, Error, ErrorCode, Id, Resource, ResourceType, Runtime, Session, TfLiteDataType, TfNode,
    TfTensor, TorchTensor,
};
use vaccel_plugin_noop::NoopPlugin;
use vaccel_rpc::addr::Address;
use vaccel_rpc::client::{META_CHUNKED, META_DIRECTORY};
use vaccel_rpc::frame::{DEFAULT_MAX_FRAME, FrameReader, flags, kind, write_frame};
use vaccel_rpc::message::{decode_request, encode_response_err, encode_response_ok};
use vaccel_rpc::proto::grpc;
use vaccel_rpc::proto::vaccel as pv;
use vaccel_rpc::status::{self, error_status, ffi_status, not_found};

/// One request as the agent received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub service: String,
    pub method: String,
    pub metadata: Vec<(String, String)>,
    pub payload: Bytes,
    /// Whether it came as a chunked call.
    pub chunked: bool,
}

impl Request {
    pub fn decode<M: Message + Default>(&self) -> M {
        M::decode(self.payload.clone()).unwrap()
    }
}

struct State {
    rt: Runtime,
    sessions: HashMap<Id, Arc<Session>>,
    resources: HashMap<Id, Arc<Resource>>,
    /// Objects made only so the agent's ids differ from the client's.
    _offsets: (Vec<Arc<Session>>, Vec<Arc<Resource>>),
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    requests: Arc<Mutex<Vec<Request>>>,
    fail_next_genop: Arc<Mutex<Option<ErrorCode>>>,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    extensions: bool,
}

/// The agent: listening on a unix socket in a temp dir until dropped.
pub struct FakeAgent {
    pub address: Address,
    shared: Shared,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// Agent session ids start here (the client's start at 1).
pub const FIRST_SESSION: Id = 5;
/// Agent resource ids start here.
pub const FIRST_RESOURCE: Id = 3;

impl FakeAgent {
    /// `extensions`: answer `GetCapabilities` as our agent (chunking, directories) or fail
    /// it as an upstream agent does.
    pub fn start(extensions: bool) -> FakeAgent {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::builder()
            .rundir_base(dir.path())
            .skip_logging()
            .plugin(Arc::new(NoopPlugin::new()))
            .build()
            .unwrap();
        let sessions: Vec<_> = (1..FIRST_SESSION)
            .map(|_| Session::new(&rt, 0).unwrap())
            .collect();
        let resources: Vec<_> = (1..FIRST_RESOURCE)
            .map(|_| {
                Resource::from_buf(
                    &rt,
                    Bytes::from_static(b"x"),
                    ResourceType::Data,
                    None,
                    true,
                )
                .unwrap()
            })
            .collect();
        let shared = Shared {
            state: Arc::new(Mutex::new(State {
                rt,
                sessions: HashMap::new(),
                resources: HashMap::new(),
                _offsets: (sessions, resources),
            })),
            requests: Arc::default(),
            fail_next_genop: Arc::default(),
            conns: Arc::default(),
            extensions,
        };
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let shared = shared.clone();
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { break };
                    shared.conns.lock().unwrap().push(conn.try_clone().unwrap());
                    let shared = shared.clone();
                    thread::spawn(move || serve(conn, &shared));
                }
            })
        };
        FakeAgent {
            address: Address::Unix(path),
            shared,
            stop,
            accept: Some(accept),
            _dir: dir,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests so far, forgetting them.
    pub fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut *self.shared.requests.lock().unwrap())
    }

    /// The method names so far.
    pub fn methods(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.method).collect()
    }

    /// The last request of `method`.
    pub fn last(&self, method: &str) -> Request {
        self.requests()
            .into_iter()
            .rev()
            .find(|r| r.method == method)
            .unwrap_or_else(|| panic!("no {method} request among {:?}", self.methods()))
    }

    /// The next `Genop` fails with `code` (in upstream's `FFI error` shape).
    pub fn fail_next_genop(&self, code: ErrorCode) {
        *self.shared.fail_next_genop.lock().unwrap() = Some(code);
    }

    /// Drops every connection (what an agent restart looks like to a client).
    pub fn disconnect_all(&self) {
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The blob names of an agent resource.
    pub fn blob_names(&self, id: Id) -> Vec<String> {
        let st = self.shared.state.lock().unwrap();
        st.resources[&id]
            .blobs()
            .iter()
            .map(|b| b.name().to_owned())
            .collect()
    }

    /// Whether the agent still has a resource.
    pub fn has_resource(&self, id: Id) -> bool {
        self.shared
            .state
            .lock()
            .unwrap()
            .resources
            .contains_key(&id)
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.disconnect_all();
        if let Address::Unix(path) = &self.address {
            let _ = UnixStream::connect(path);
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(conn: UnixStream, shared: &Shared) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = FrameReader::new(conn);
    while let Ok(frame) = reader.read_frame(DEFAULT_MAX_FRAME) {
        if frame.header.kind != kind::REQUEST {
            continue;
        }
        let sid = frame.header.stream_id;
        let req = decode_request(frame.body).unwrap();
        let metadata: Vec<(String, String)> = req
            .metadata
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        let chunked = frame.header.flags & flags::REMOTE_OPEN != 0;
        let payload = if chunked {
            let total: usize = metadata
                .iter()
                .find(|(k, _)| k == META_CHUNKED)
                .unwrap()
                .1
                .parse()
                .unwrap();
            let mut body = Vec::with_capacity(total);
            loop {
                let Ok(f) = reader.read_frame(DEFAULT_MAX_FRAME) else {
                    return;
                };
                assert_eq!((f.header.kind, f.header.stream_id), (kind::DATA, sid));
                body.extend_from_slice(&f.body);
                if f.header.flags & flags::REMOTE_CLOSED != 0 {
                    break;
                }
            }
            assert_eq!(body.len(), total);
            Bytes::from(body)
        } else {
            req.payload.clone()
        };
        let recorded = Request {
            service: req.service.clone(),
            method: req.method.clone(),
            metadata,
            payload,
            chunked,
        };
        shared.requests.lock().unwrap().push(recorded.clone());
        let body = answer(shared, &recorded).unwrap_or_else(|st| encode_response_err(&st));
        if write_frame(&mut writer, sid, kind::RESPONSE, 0, &[&body]).is_err() {
            return;
        }
    }
}

type Answer = Result<Vec<u8>, grpc::Status>;

fn ok<M: Message>(m: &M) -> Answer {
    Ok(encode_response_ok(m))
}

fn fail(e: &Error) -> grpc::Status {
    error_status(e)
}

fn answer(shared: &Shared, req: &Request) -> Answer {
    if req.service == vaccel_rpc::SERVICE_EXT {
        if shared.extensions && req.method == "GetCapabilities" {
            return ok(&pv::rs::ext::Capabilities {
                version: 1,
                // A small frame limit, so large calls are chunked as they must be past it.
                max_frame_size: 8 << 20,
                max_message_size: 1 << 34,
                chunked: true,
                directory_resources: true,
                genop_ops: vec![0, 16],
                detection_records: true,
                // This stand-in keeps every call on the socket, where it sees them.
                shared_memory_max: 0,
                shared_memory_regions: 0,
            });
        }
        return Err(grpc::Status {
            code: status::code::INVALID_ARGUMENT,
            message: format!("/{}/{} does not exist", req.service, req.method),
            details: vec![],
        });
    }
    assert_eq!(req.service, vaccel_rpc::SERVICE);
    let mut st = shared.state.lock().unwrap();
    let st = &mut *st;
    let session = |sessions: &HashMap<Id, Arc<Session>>, id: Id| {
        sessions
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found(format!("Unknown session {id}")))
    };
    let resource = |resources: &HashMap<Id, Arc<Resource>>, id: Id| {
        resources
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found(format!("Unknown resource {id}")))
    };
    match req.method.as_str() {
        "CreateSession" => {
            let r: pv::session::CreateRequest = req.decode();
            let sess = Session::new(&st.rt, r.flags).map_err(|e| fail(&e))?;
            let id = sess.id();
            st.sessions.insert(id, sess);
            ok(&pv::session::CreateResponse { session_id: id })
        }
        "UpdateSession" => {
            let r: pv::session::UpdateRequest = req.decode();
            session(&st.sessions, r.session_id)?;
            ok(&pv::empty::Empty {})
        }
        "DestroySession" => {
            let r: pv::session::DestroyRequest = req.decode();
            session(&st.sessions, r.session_id)?;
            st.sessions.remove(&r.session_id);
            ok(&pv::empty::Empty {})
        }
        "RegisterResource" => {
            let r: pv::resource::RegisterRequest = req.decode();
            let sess = session(&st.sessions, r.session_id)?;
            if r.resource_id > 0 {
                let res = resource(&st.resources, r.resource_id)?;
                sess.register(&res).map_err(|e| fail(&e))?;
                return ok(&pv::resource::RegisterResponse {
                    resource_id: r.resource_id,
                });
            }
            let kind = ResourceType::from_value(r.resource_type as u32).unwrap();
            let directory = req
                .metadata
                .iter()
                .any(|(k, v)| k == META_DIRECTORY && v == "1");
            let res = if !r.blobs.is_empty() {
                let buffers = r
                    .blobs
                    .iter()
                    .all(|b| b.r#type == pv::resource::BlobType::Buffer as i32);
                if buffers {
                    let blobs = r
                        .blobs
                        .iter()
                        .map(|b| Blob::from_buf(b.data.clone(), b.name.clone()).unwrap())
                        .collect();
                    Resource::from_blobs(&st.rt, blobs, kind)
                } else {
                    let files = r
                        .blobs
                        .iter()
                        .map(|b| (b.name.clone(), b.data.clone()))
                        .collect();
                    Resource::from_named_buffers(&st.rt, files, kind, directory)
                }
            } else if !r.paths.is_empty() {
                // Stands in for downloading the URLs.
                Resource::from_buf(&st.rt, Bytes::from_static(b"url"), kind, Some("url"), false)
            } else {
                return Err(status::invalid_argument("No paths or blobs provided"));
            }
            .map_err(|e| fail(&e))?;
            sess.register(&res).map_err(|e| fail(&e))?;
            st.resources.insert(res.id(), Arc::clone(&res));
            ok(&pv::resource::RegisterResponse {
                resource_id: res.id(),
            })
        }
        "UnregisterResource" => {
            let r: pv::resource::UnregisterRequest = req.decode();
            let sess = session(&st.sessions, r.session_id)?;
            let res = resource(&st.resources, r.resource_id)?;
            sess.unregister(&res).map_err(|e| fail(&e))?;
            if res.refcount() == 0 {
                st.resources.remove(&r.resource_id);
                res.release().map_err(|e| fail(&e))?;
            }
            ok(&pv::empty::Empty {})
        }
        "SyncResource" => {
            let r: pv::resource::SyncRequest = req.decode();
            let res = resource(&st.resources, r.resource_id)?;
            // The "accelerator" reversed every buffer.
            let blobs = res
                .blobs()
                .iter()
                .map(|b| {
                    let mut data = b.read().unwrap().to_vec();
                    data.reverse();
                    pv::resource::Blob {
                        size: data.len() as u32,
                        data: Bytes::from(data),
                        ..Default::default()
                    }
                })
                .collect();
            ok(&pv::resource::SyncResponse { blobs })
        }
        "Genop" => {
            if let Some(code) = shared.fail_next_genop.lock().unwrap().take() {
                return Err(ffi_status(code, None));
            }
            let r: pv::genop::Request = req.decode();
            let sess = session(&st.sessions, r.session_id)?;
            genop(&sess, &r).map_err(|e| fail(&e))
        }
        "TensorflowModelLoad" | "TensorflowModelUnload" => {
            let r: pv::tf::ModelLoadRequest = req.decode();
            let sess = session(&st.sessions, r.session_id)?;
            let model = resource(&st.resources, r.model_id)?;
            let status = if req.method == "TensorflowModelLoad" {
                sess.tf_model_load(&model)
            } else {
                sess.tf_model_unload(&model)
            }
            .map_err(|e| fail(&e))?;
            let status = Some(pv::Status {
                code: u32::from(status.code),
                message: status.message,
            });
            if req.method == "TensorflowModelLoad" {
                ok(&pv::tf::ModelLoadResponse {
                    graph_def: Bytes::new(),
                    status,
                })
            } else {
                ok(&pv::tf::ModelUnloadResponse { status })
            }
        }
        "TensorflowModelRun" => {
            let r: pv::tf::ModelRunRequest = req.decode();
            let sess = session(&st.sessions, r.session_id)?;
            let model = resource(&st.resources, r.model_id)?;
            let node = |n: &pv::tf::Node| TfNode::new(n.name.clone(), n.id);
            let inputs: Vec<TfTensor<'_>> = r
                .in_tensors
                .iter()
                .map(|t| tensor(t.dims.clone(), t.r#type, &t.data))
                .collect();
            let out = sess
                .tf_model_run(
                    &model,
                    r.run_options.as_deref(),
                    &r.in_nodes.iter().map(node).collect::<Vec<_>>(),
                    &inputs,
                    &r.out_nodes.iter().map(node).collect::<Vec<_>>(),
                )
                .map_err(|e| fail(&e))?;
            ok(&pv::tf::ModelRunResponse {
                out_tensors: out
                    .outputs
                    .iter()
                    .map(|t| pv::tf::Tensor {
                        data: Bytes::copy_from_slice(&t.data),
                        dims: t.dims.clone(),
                        r#type: t.data_type.value() as i32,
                    })
                    .collect(),
                status: Some(pv::Status {
                    code: u32::from(out.status.code),
                    message: out.status.message,
                }),
            })
        }
        "TensorflowLiteModelLoad" | "TensorflowLiteModelUnload" | "TorchModelLoad" => {
            let r: pv::tflite::ModelLoadRequest = req.decode();
            let sess = session(&st.sessions, r.session_id)?;
            let model = resource(&st.resources, r.model_id)?;
            match req.method.as_str() {
                "TensorflowLiteModelLoad" => sess.tflite_model_load(&model),
                "TensorflowLiteModelUnload" => sess.tflite_model_unload(&model),
                _ => sess.torch_model_load(&model),
            }
            .map_err(|e| fail(&e))?;
            ok(&pv::empty::Empty {})
        }
        "TensorflowLiteModelRun" => {
            let r: pv::tflite::ModelRunRequest = req.decode();
            let sess = session(&st.sessions, r.session_id)?;
            let model = resource(&st.resources, r.model_id)?;
            let inputs: Vec<Tensor<'_, TfLiteDataType>> = r
                .in_tensors
                .iter()
                .map(|t| {
                    tensor(
                        t.dims.iter().map(|&d| i64::from(d)).collect(),
                        t.r#type,
                        &t.data,
                    )
                })
                .collect();
            let out = sess
                .tflite_model_run(&model, &inputs, r.nr_out_tensors as usize)
                .map_err(|e| fail(&e))?;
            ok(&pv::tflite::ModelRunResponse {
                out_tensors: out
                    .outputs
                    .iter()
                    .map(|t| pv::tflite::Tensor {
                        data: Bytes::copy_from_slice(&t.data),
                        dims: t.dims.iter().map(|&d| d as i32).collect(),
                        r#type: t.data_type.value() as i32,
                    })
                    .collect(),
                status: Some(pv::Status {
                    code: u32::from(out.status),
                    message: String::new(),
                }),
            })
        }
        "TorchModelRun" => {
            let r: pv::torch::ModelRunRequest = req.decode();
            let sess = session(&st.sessions, r.session_id)?;
            let model = resource(&st.resources, r.model_id)?;
            let inputs: Vec<TorchTensor<'_>> = r
                .in_tensors
                .iter()
                .map(|t| tensor(t.dims.clone(), t.r#type, &t.data))
                .collect();
            let out = sess
                .torch_model_run(
                    &model,
                    r.run_options.as_deref(),
                    &inputs,
                    r.nr_out_tensors as usize,
                )
                .map_err(|e| fail(&e))?;
            ok(&pv::torch::ModelRunResponse {
                out_tensors: out
                    .iter()
                    .map(|t| pv::torch::Tensor {
                        data: Bytes::copy_from_slice(&t.data),
                        dims: t.dims.clone(),
                        r#type: t.data_type.value() as i32,
                    })
                    .collect(),
            })
        }
        "GetProfiler" => ok(&pv::profiling::Response { profiler: None }),
        other => Err(status::invalid_argument(format!(
            "/{}/{other} does not exist",
            req.service
        ))),
    }
}

fn tensor<'a, D: DataType>(dims: Vec<i64>, ty: i32, data: &'a [u8]) -> Tensor<'a, D> {
    Tensor::new(dims, D::try_from_value(ty as u32).unwrap(), data).unwrap()
}

fn genop(sess: &Session, r: &pv::genop::Request) -> Result<Vec<u8>, Error> {
    let read = r
        .read_args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            assert_eq!(a.size as usize, a.buf.len());
            Arg::from_parts(a.arg_type as u32, a.custom_type_id, &a.buf)
                .map_err(|e| Error::arg(i, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut bufs: Vec<Vec<u8>> = r.write_args.iter().map(|a| a.buf.to_vec()).collect();
    {
        let mut write = bufs
            .iter_mut()
            .zip(&r.write_args)
            .enumerate()
            .map(|(i, (b, a))| {
                Arg::from_parts_mut(a.arg_type as u32, a.custom_type_id, b)
                    .map_err(|e| Error::arg(i, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        sess.genop(&read, &mut write)?;
    }
    Ok(encode_response_ok(&pv::genop::Response {
        write_args: bufs
            .into_iter()
            .zip(&r.write_args)
            .map(|(b, a)| pv::genop::Arg {
                size: b.len() as u32,
                buf: Bytes::from(b),
                arg_type: a.arg_type,
                custom_type_id: a.custom_type_id,
                ..Default::default()
            })
            .collect(),
    }))
}

/// The argument types of a recorded genop request: (read, write).
pub fn genop_layout(req: &Request) -> (Vec<u32>, Vec<u32>) {
    let r: pv::genop::Request = req.decode();
    (
        r.read_args.iter().map(|a| a.arg_type as u32).collect(),
        r.write_args.iter().map(|a| a.arg_type as u32).collect(),
    )
}
