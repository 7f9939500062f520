//! Every RPC of the agent service through a raw client (our frame codec, nothing more), over
//! Unix and TCP, with upstream's observable behaviour (spec §13) where it is not a bug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::Bytes;
use common::*;
use prost::Message;
use vaccel_rpc::frame::{flags, kind};
use vaccel_rpc::proto::vaccel as pv;
use vaccel_rpc::proto::vaccel::rs::ext;
use vaccel_rpc::proto::vaccel::{
    genop as pg, image, profiling as pp, resource as pr, session as ps, tf, tflite, torch,
};
use vaccel_rpc::status::code;

fn basic_calls(agent: &AgentProc) {
    let mut c = agent.connect();
    let s = c.create_session(0);

    // Genop image classification: both 512-byte write args come back in full.
    let r: pg::Response = c
        .call("Genop", &classify_genop(s, vec![1; 1024], 512))
        .unwrap();
    assert_eq!(r.write_args.len(), 2);
    for a in &r.write_args {
        assert_eq!((a.buf.len(), a.size), (512, 512));
        assert_eq!(a.arg_type, pg::ArgType::UcharArray as i32);
    }
    assert_eq!(c_text(&r.write_args[0].buf), "This is a dummy imgname!");
    assert_eq!(
        c_text(&r.write_args[1].buf),
        "This is a dummy classification tag!"
    );

    // NOOP through genop succeeds here (upstream refuses op 0; we allow it).
    let noop = pg::Request {
        session_id: s,
        read_args: vec![arg(pg::ArgType::Uint8, vec![0])],
        write_args: vec![],
    };
    let r: pg::Response = c.call("Genop", &noop).unwrap();
    assert!(r.write_args.is_empty());

    // ImageClassification: always a 1024-byte tags buffer.
    let r: image::Response = c
        .call(
            "ImageClassification",
            &image::Request {
                session_id: s,
                image: Bytes::from(vec![7; 1024]),
            },
        )
        .unwrap();
    assert_eq!(r.tags.len(), 1024);
    assert_eq!(c_text(&r.tags), "This is a dummy classification tag!");

    // Unknown session: NOT_FOUND, "Unknown session N", code ENOENT in the detail.
    let err = c
        .call::<image::Response>(
            "ImageClassification",
            &image::Request {
                session_id: 999_999,
                image: Bytes::from_static(b"x"),
            },
        )
        .unwrap_err();
    assert_eq!(err.code, code::NOT_FOUND);
    assert_eq!(err.message, "Unknown session 999999");
    assert_eq!(detail(&err).ffi_error, Some(2));

    // UpdateSession only overwrites the hint.
    let _: pv::empty::Empty = c
        .call(
            "UpdateSession",
            &ps::UpdateRequest {
                session_id: s,
                flags: 0x8,
            },
        )
        .unwrap();

    // Destroy, then destroy again.
    c.destroy_session(s).unwrap();
    let err = c.destroy_session(s).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (code::NOT_FOUND, format!("Unknown session {s}").as_str())
    );
}

#[test]
fn basic_calls_over_unix() {
    let agent = AgentProc::unix(&[]);
    basic_calls(&agent);
    assert!(agent.find_log("vAccel RPC agent started").is_some());
    let created = agent.find_log("Created session 1").unwrap();
    assert!(
        created.ends_with("INFO  vaccel_rpc_agent::session] Created session 1"),
        "{created}"
    );
    assert!(agent.find_log("session:1 Genop").is_some());
    assert!(agent.find_log("session:1 Image classification").is_some());
    assert!(agent.find_log("Destroyed session 1").is_some());
}

#[test]
fn basic_calls_over_tcp() {
    let agent = AgentProc::tcp(&[]);
    basic_calls(&agent);
}

#[test]
fn errors_and_unknown_names() {
    let agent = AgentProc::unix(&[]);
    let mut c = agent.connect();
    let s = c.create_session(0);

    let err = c
        .call::<pv::empty::Empty>("NoSuchMethod", &pv::empty::Empty {})
        .unwrap_err();
    assert_eq!(err.code, code::INVALID_ARGUMENT);
    assert_eq!(
        err.message,
        "/vaccel.sync.agent.AgentService/NoSuchMethod does not exist"
    );
    let err = c
        .call_with::<pv::empty::Empty>("vaccel.Other", "Genop", &pv::empty::Empty {}, &[])
        .unwrap_err();
    assert_eq!(err.code, code::INVALID_ARGUMENT);
    assert_eq!(err.message, "/vaccel.Other/Genop does not exist");

    // The async build's service name reaches the same agent.
    let r: ps::CreateResponse = c
        .call_with(
            vaccel_rpc::SERVICE_ASYNC,
            "CreateSession",
            &ps::CreateRequest { flags: 0 },
            &[],
        )
        .unwrap();
    assert!(r.session_id > s);

    // Ids below 1: upstream's message, our code.
    let err = c.destroy_session(0).unwrap_err();
    assert_eq!(err.code, code::INTERNAL);
    assert_eq!(err.message, "Invalid argument: Invalid ID: 0");
    assert_eq!(detail(&err).ffi_error, Some(22));

    // A vAccel failure: INTERNAL, "FFI error: 22", the code in the detail.
    let bad_type = pg::Request {
        session_id: s,
        read_args: vec![
            arg(pg::ArgType::Uint8, vec![3]),
            pg::Arg {
                buf: Bytes::from_static(b"x"),
                size: 1,
                arg_type: 99,
                ..Default::default()
            },
        ],
        write_args: vec![],
    };
    let err = c.call::<pg::Response>("Genop", &bad_type).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (code::INTERNAL, "FFI error: 22")
    );
    let d = detail(&err);
    assert_eq!(d.ffi_error, Some(22));
    assert_eq!(d.r#type, pv::ErrorType::FfiWithStatus as i32);

    // Arg.size different from the bytes: "Conversion failed".
    let mut mismatch = classify_genop(s, vec![1; 16], 64);
    mismatch.read_args[1].size = 17;
    let err = c.call::<pg::Response>("Genop", &mismatch).unwrap_err();
    assert_eq!(err.code, code::INVALID_ARGUMENT);
    assert!(
        err.message.starts_with("Conversion failed"),
        "{}",
        err.message
    );

    // Genop without arguments, empty image, no paths nor blobs.
    let err = c
        .call::<pg::Response>(
            "Genop",
            &pg::Request {
                session_id: s,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.message, "FFI error: 22");
    let err = c
        .call::<image::Response>(
            "ImageClassification",
            &image::Request {
                session_id: s,
                image: Bytes::new(),
            },
        )
        .unwrap_err();
    assert_eq!(err.message, "FFI error: 22");
    let err = c
        .call::<pr::RegisterResponse>(
            "RegisterResource",
            &pr::RegisterRequest {
                session_id: s,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (code::INVALID_ARGUMENT, "No paths or blobs provided")
    );
    // A remote hint with no remote plugin: ENOTSUP (95).
    let err = c
        .call::<ps::CreateResponse>("CreateSession", &ps::CreateRequest { flags: 0xffff_ffff })
        .unwrap_err();
    assert_eq!(err.message, "FFI error: 95");
}

#[test]
fn resources_models_sync_and_profiler() {
    let agent = AgentProc::unix(&["--vaccel-config", "plugins=noop,profiling_enabled=true"]);
    let mut c = agent.connect();
    let s = c.create_session(0);
    let s2 = c.create_session(0);
    let model: pr::RegisterResponse = c
        .call(
            "RegisterResource",
            &pr::RegisterRequest {
                blobs: vec![pr::Blob {
                    r#type: pv::resource::BlobType::Buffer as i32,
                    name: "model.bin".into(),
                    data: Bytes::from_static(b"model bytes"),
                    size: 11,
                }],
                resource_type: pr::ResourceType::Model as i32,
                resource_id: 0,
                session_id: s,
                ..Default::default()
            },
        )
        .unwrap();
    let m = model.resource_id;
    assert!(m > 0);
    assert!(agent.find_log("Creating new resource").is_some());
    assert!(
        agent
            .find_log(&format!("Registering resource {m} with session {s}"))
            .is_some()
    );
    // Registered with another session of the same client (no data sent).
    let again: pr::RegisterResponse = c
        .call(
            "RegisterResource",
            &pr::RegisterRequest {
                resource_id: m,
                session_id: s2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again.resource_id, m);

    let synced: pr::SyncResponse = c
        .call("SyncResource", &pr::SyncRequest { resource_id: m })
        .unwrap();
    assert_eq!(synced.blobs.len(), 1);
    assert_eq!(&synced.blobs[0].data[..], b"model bytes");
    assert_eq!(synced.blobs[0].size, 11);

    // TensorFlow.
    let r: tf::ModelLoadResponse = c
        .call(
            "TensorflowModelLoad",
            &tf::ModelLoadRequest {
                session_id: s,
                model_id: m,
            },
        )
        .unwrap();
    assert_eq!(r.status.unwrap().code, 0);
    let input = tf::Tensor {
        data: Bytes::from(vec![1u8; 16]),
        dims: vec![1, 4],
        r#type: tf::DataType::Float as i32,
    };
    let r: tf::ModelRunResponse = c
        .call(
            "TensorflowModelRun",
            &tf::ModelRunRequest {
                session_id: s,
                model_id: m,
                run_options: None,
                in_nodes: vec![tf::Node {
                    name: "in".into(),
                    id: 0,
                }],
                out_nodes: vec![tf::Node {
                    name: "out".into(),
                    id: 0,
                }],
                in_tensors: vec![input.clone()],
            },
        )
        .unwrap();
    assert_eq!(r.out_tensors, vec![input]);
    let r: tf::ModelUnloadResponse = c
        .call(
            "TensorflowModelUnload",
            &tf::ModelUnloadRequest {
                session_id: s,
                model_id: m,
            },
        )
        .unwrap();
    assert_eq!(r.status.unwrap().code, 0);
    let err = c
        .call::<tf::ModelLoadResponse>(
            "TensorflowModelLoad",
            &tf::ModelLoadRequest {
                session_id: s,
                model_id: 777,
            },
        )
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (code::NOT_FOUND, "Unknown TensorFlow model 777")
    );

    // TensorFlow Lite (wire type 1 = vAccel FLOAT32).
    let _: pv::empty::Empty = c
        .call(
            "TensorflowLiteModelLoad",
            &tflite::ModelLoadRequest {
                session_id: s,
                model_id: m,
            },
        )
        .unwrap();
    let lite_in = tflite::Tensor {
        data: Bytes::from(vec![2u8; 8]),
        dims: vec![2],
        r#type: 1,
    };
    let r: tflite::ModelRunResponse = c
        .call(
            "TensorflowLiteModelRun",
            &tflite::ModelRunRequest {
                session_id: s,
                model_id: m,
                in_tensors: vec![lite_in.clone()],
                nr_out_tensors: 1,
            },
        )
        .unwrap();
    assert_eq!(r.out_tensors, vec![lite_in]);
    assert_eq!(r.status.unwrap().code, 0);
    let _: pv::empty::Empty = c
        .call(
            "TensorflowLiteModelUnload",
            &tflite::ModelUnloadRequest {
                session_id: s,
                model_id: m,
            },
        )
        .unwrap();
    let err = c
        .call::<pv::empty::Empty>(
            "TensorflowLiteModelLoad",
            &tflite::ModelLoadRequest {
                session_id: s,
                model_id: 778,
            },
        )
        .unwrap_err();
    assert_eq!(err.message, "Unknown TensorFlow Lite model 778");

    // Torch.
    let _: pv::empty::Empty = c
        .call(
            "TorchModelLoad",
            &torch::ModelLoadRequest {
                session_id: s,
                model_id: m,
            },
        )
        .unwrap();
    let t_in = torch::Tensor {
        data: Bytes::from(vec![3u8; 4]),
        dims: vec![1],
        r#type: torch::DataType::Float as i32,
    };
    let r: torch::ModelRunResponse = c
        .call(
            "TorchModelRun",
            &torch::ModelRunRequest {
                session_id: s,
                model_id: m,
                run_options: None,
                in_tensors: vec![t_in.clone()],
                nr_out_tensors: 1,
            },
        )
        .unwrap();
    assert_eq!(r.out_tensors, vec![t_in]);
    let err = c
        .call::<torch::ModelRunResponse>(
            "TorchModelRun",
            &torch::ModelRunRequest {
                session_id: s,
                model_id: 779,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.message, "Unknown Py model 779");

    // Profiling is on: the session's genop regions come back.
    let _: pg::Response = c
        .call("Genop", &classify_genop(s, vec![1; 64], 64))
        .unwrap();
    let r: pp::Response = c
        .call("GetProfiler", &pp::Request { session_id: s })
        .unwrap();
    let prof = r.profiler.expect("a profiler");
    assert_eq!(prof.component_name, "vaccel-rpc-agent");
    for name in [
        "genop > read_args",
        "genop > write_args",
        "genop > sess.genop",
        "genop > resp_write_args",
    ] {
        assert_eq!(prof.regions[name].samples.len(), 1, "{name}");
    }
    let r: pp::Response = c
        .call("GetProfiler", &pp::Request { session_id: s2 })
        .unwrap();
    assert!(r.profiler.is_none(), "no samples, no profiler");

    // Host paths and URLs named by a client: tests/resource_policy.rs.

    // Unregister from both sessions: the resource is destroyed with the last one.
    for sess in [s, s2] {
        let _: pv::empty::Empty = c
            .call(
                "UnregisterResource",
                &pr::UnregisterRequest {
                    resource_id: m,
                    session_id: sess,
                },
            )
            .unwrap();
    }
    assert!(
        agent
            .find_log(&format!("Unregistering resource {m} from session {s2}"))
            .is_some()
    );
    assert!(
        agent
            .find_log(&format!("Destroying resource {m}"))
            .is_some()
    );
    let err = c
        .call::<pr::SyncResponse>("SyncResource", &pr::SyncRequest { resource_id: m })
        .unwrap_err();
    assert_eq!(err.message, format!("Unknown resource {m}"));
}

#[test]
fn profiler_is_empty_when_profiling_is_off() {
    let agent = AgentProc::unix(&[]);
    let mut c = agent.connect();
    let s = c.create_session(0);
    let _: pg::Response = c
        .call("Genop", &classify_genop(s, vec![1; 64], 64))
        .unwrap();
    let id = c.send("GetProfiler", &pp::Request { session_id: s });
    let (h, resp) = c.recv();
    assert_eq!(h.stream_id, id);
    assert_eq!(resp.status.unwrap().code, 0);
    assert!(resp.payload.is_empty(), "OK with an empty payload");
}

#[test]
fn malformed_requests_are_answered_and_the_connection_stays_usable() {
    let agent = AgentProc::tcp(&[]);
    let mut c = agent.connect();

    // A zero-length REQUEST: upstream's "// does not exist".
    c.send_frame(41, kind::REQUEST, 0, &[]);
    let (h, r) = c.recv();
    assert_eq!(h.stream_id, 41);
    let st = r.status.unwrap();
    assert_eq!(
        (st.code, st.message.as_str()),
        (code::INVALID_ARGUMENT, "// does not exist")
    );

    // An undecodable envelope: INVALID_ARGUMENT on its stream.
    c.send_frame(43, kind::REQUEST, 0, &[0x0a, 0xff, 0xff, 0xff, 0x0f]);
    let (h, r) = c.recv();
    assert_eq!(h.stream_id, 43);
    assert_eq!(r.status.unwrap().code, code::INVALID_ARGUMENT);

    // An undecodable method payload: an error answer (upstream goes silent), then the next
    // request is answered.
    let mut env = grpc_request("CreateSession");
    env.payload = Bytes::from_static(&[0xff, 0xff, 0xff]);
    c.send_frame(45, kind::REQUEST, 0, &env.encode_to_vec());
    let (h, r) = c.recv();
    assert_eq!(h.stream_id, 45);
    let st = r.status.unwrap();
    assert_eq!(st.code, code::INVALID_ARGUMENT, "{}", st.message);

    // An unknown frame type is ignored: the next answer is the next request's.
    c.send_frame(47, 0x7f, 0, b"whatever");
    let s = c.create_session(0);
    assert!(s > 0);

    // Even and repeated stream ids are answered, as upstream does.
    let body = grpc_request("CreateSession").encode_to_vec();
    c.send_frame(8, kind::REQUEST, 0, &body);
    assert_eq!(c.recv().0.stream_id, 8);
    c.send_frame(8, kind::REQUEST, flags::NO_DATA, &body);
    assert_eq!(c.recv().0.stream_id, 8);
}

fn grpc_request(method: &str) -> vaccel_rpc::proto::grpc::Request {
    vaccel_rpc::proto::grpc::Request {
        service: vaccel_rpc::SERVICE.into(),
        method: method.into(),
        ..Default::default()
    }
}

#[test]
fn capabilities() {
    let agent = AgentProc::unix(&["--max-frame-size", "1048576"]);
    let mut c = agent.connect();
    let caps: ext::Capabilities = c
        .call_with(
            vaccel_rpc::SERVICE_EXT,
            "GetCapabilities",
            &ext::CapabilitiesRequest {},
            &[],
        )
        .unwrap();
    assert_eq!(
        caps,
        ext::Capabilities {
            version: 1,
            max_frame_size: 1 << 20,
            max_message_size: 4 << 30,
            chunked: true,
            directory_resources: true,
            // NOOP, the TensorFlow, TensorFlow Lite and Torch ops.
            genop_ops: vec![0, 8, 9, 10, 11, 12, 13, 14, 15, 16],
            detection_records: true,
            // A unix socket: shared memory offered (--max-shared-memory, 1 GiB).
            shared_memory_max: 1 << 30,
            // Region 0 for messages, 15 argument buffers.
            shared_memory_regions: 16,
        }
    );
}

#[test]
fn genop_stream_reassembles_split_arguments() {
    // Upstream's async GenopStream: REQUEST(REMOTE_OPEN|NO_DATA), one DATA per genop.Request,
    // an empty DATA(REMOTE_CLOSED|NO_DATA).
    let agent = AgentProc::unix(&[]);
    let mut c = agent.connect();
    let s = c.create_session(0);
    let image = vec![9u8; 3000];
    let part = |n: u32, bytes: &[u8]| pg::Arg {
        buf: Bytes::copy_from_slice(bytes),
        size: 3000,
        arg_type: pg::ArgType::Buffer as i32,
        parts: 3,
        part_no: n,
        ..Default::default()
    };
    let full = classify_genop(s, vec![0; 1], 512);
    let messages = [
        pg::Request {
            session_id: s,
            read_args: vec![full.read_args[0].clone(), part(1, &image[..1000])],
            write_args: vec![],
        },
        pg::Request {
            session_id: s,
            read_args: vec![part(2, &image[1000..2000])],
            write_args: vec![],
        },
        pg::Request {
            session_id: s,
            read_args: vec![part(3, &image[2000..])],
            write_args: full.write_args.clone(),
        },
    ];
    let open = vaccel_rpc::proto::grpc::Request {
        service: vaccel_rpc::SERVICE_ASYNC.into(),
        method: "GenopStream".into(),
        ..Default::default()
    };
    c.send_frame(
        1,
        kind::REQUEST,
        flags::REMOTE_OPEN | flags::NO_DATA,
        &open.encode_to_vec(),
    );
    for m in &messages {
        c.send_frame(1, kind::DATA, 0, &m.encode_to_vec());
    }
    c.send_frame(1, kind::DATA, flags::REMOTE_CLOSED | flags::NO_DATA, &[]);
    let (id, r) = c.recv_result::<pg::Response>();
    assert_eq!(id, 1);
    let r = r.unwrap();
    assert_eq!(
        c_text(&r.write_args[1].buf),
        "This is a dummy classification tag!"
    );
}
