//! The crates.io `ttrpc` crate (an independent ttrpc implementation) as a client of the agent:
//! raw `Client::request` calls with prost-encoded payloads, over Unix and TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::os::fd::IntoRawFd;

use common::*;
use prost::Message;
use vaccel_rpc::addr::Address;
use vaccel_rpc::proto::vaccel as pv;
use vaccel_rpc::proto::vaccel::{genop as pg, session as ps};

fn request(method: &str, msg: &impl Message) -> ttrpc::Request {
    let mut r = ttrpc::Request::new();
    r.service = vaccel_rpc::SERVICE.to_owned();
    r.method = method.to_owned();
    r.payload = msg.encode_to_vec();
    // A bound, so a broken agent fails the test instead of hanging it.
    r.timeout_nano = 20_000_000_000;
    r
}

fn call<R: Message + Default>(
    c: &ttrpc::Client,
    method: &str,
    msg: &impl Message,
) -> Result<R, ttrpc::Status> {
    match c.request(request(method, msg)) {
        Ok(resp) => Ok(R::decode(&resp.payload[..]).unwrap()),
        Err(ttrpc::Error::RpcStatus(st)) => Err(st),
        Err(e) => panic!("{method}: transport error {e:?}"),
    }
}

fn vaccel_detail(st: &ttrpc::Status) -> pv::Error {
    let any = st.details.first().expect("a detail");
    assert_eq!(any.type_url, "type.googleapis.com/vaccel.ProtoError");
    pv::Error::decode(&any.value[..]).unwrap()
}

fn exercise(c: &ttrpc::Client) {
    let s: ps::CreateResponse = call(c, "CreateSession", &ps::CreateRequest { flags: 0 }).unwrap();
    let s = s.session_id;
    assert!(s > 0);

    let r: pg::Response = call(c, "Genop", &classify_genop(s, vec![5; 1024], 512)).unwrap();
    assert_eq!(r.write_args.len(), 2);
    assert_eq!(c_text(&r.write_args[0].buf), "This is a dummy imgname!");
    assert_eq!(
        c_text(&r.write_args[1].buf),
        "This is a dummy classification tag!"
    );
    assert!(
        r.write_args
            .iter()
            .all(|a| a.size == 512 && a.buf.len() == 512)
    );

    let _: pv::empty::Empty =
        call(c, "DestroySession", &ps::DestroyRequest { session_id: s }).unwrap();

    // Errors: the status and its vaccel.Error detail decode with ttrpc's own types.
    let st = call::<pv::empty::Empty>(c, "DestroySession", &ps::DestroyRequest { session_id: s })
        .unwrap_err();
    assert_eq!(st.code.value(), ttrpc::Code::NOT_FOUND as i32);
    assert_eq!(st.message, format!("Unknown session {s}"));
    assert_eq!(vaccel_detail(&st).ffi_error, Some(2));

    let s2: ps::CreateResponse = call(c, "CreateSession", &ps::CreateRequest { flags: 0 }).unwrap();
    let mut bad = classify_genop(s2.session_id, vec![1; 8], 8);
    bad.read_args[1].arg_type = 99;
    let st = call::<pg::Response>(c, "Genop", &bad).unwrap_err();
    assert_eq!(st.code.value(), ttrpc::Code::INTERNAL as i32);
    assert_eq!(st.message, "FFI error: 22");
    assert_eq!(vaccel_detail(&st).ffi_error, Some(22));

    let st = call::<pv::empty::Empty>(c, "NoSuchMethod", &pv::empty::Empty {}).unwrap_err();
    assert_eq!(st.code.value(), ttrpc::Code::INVALID_ARGUMENT as i32);
    assert_eq!(
        st.message,
        "/vaccel.sync.agent.AgentService/NoSuchMethod does not exist"
    );
}

#[test]
fn ttrpc_crate_client_over_unix() {
    let agent = AgentProc::unix(&[]);
    let c = ttrpc::Client::connect(&format!("unix://{}", agent.socket_path().display())).unwrap();
    exercise(&c);
}

#[test]
fn ttrpc_crate_client_over_tcp() {
    let agent = AgentProc::tcp(&[]);
    let Address::Tcp { host, port } = &agent.address else {
        unreachable!()
    };
    let stream = std::net::TcpStream::connect((host.as_str(), *port)).unwrap();
    // The client owns the descriptor from here on (it closes it on drop).
    let c = ttrpc::Client::new(stream.into_raw_fd()).unwrap();
    exercise(&c);
}

#[test]
fn ttrpc_crate_client_concurrent_calls() {
    // The ttrpc client sends each request from its own thread: several in flight on one
    // connection.
    let agent = AgentProc::unix(&[]);
    let c = ttrpc::Client::connect(&format!("unix://{}", agent.socket_path().display())).unwrap();
    let s: ps::CreateResponse = call(&c, "CreateSession", &ps::CreateRequest { flags: 0 }).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..50 {
                    let r: pg::Response = call(
                        &c,
                        "Genop",
                        &classify_genop(s.session_id, vec![1; 256], 128),
                    )
                    .unwrap();
                    assert_eq!(r.write_args.len(), 2);
                }
            });
        }
    });
}
