//! Concurrency and hostile framing: pipelined calls complete out of order; a 2 GiB length
//! field, garbage bytes or a truncated header close only their own connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use vaccel_rpc::frame::{Header, kind};
use vaccel_rpc::proto::vaccel::genop as pg;
use vaccel_rpc::status::code;

#[test]
fn pipelined_calls_complete_out_of_order() {
    let agent = AgentProc::unix(&["--vaccel-config", "plugins=noop:mbench"]);
    let mut c = agent.connect();
    let slow = c.create_session(0x8); // SOFTWARE: mbench
    let fast = c.create_session(0); // the first plugin: noop
    let start = Instant::now();
    let slow_id = c.send("Genop", &mbench_genop(slow, 200));
    let fast_id = c.send("Genop", &classify_genop(fast, vec![1; 64], 64));
    let (first, r) = c.recv_result::<pg::Response>();
    assert_eq!(first, fast_id, "the noop genop answers first");
    r.unwrap();
    let fast_done = start.elapsed();
    let (second, r) = c.recv_result::<pg::Response>();
    assert_eq!(second, slow_id);
    r.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    eprintln!(
        "noop answered after {fast_done:?}, mbench after {:?}",
        start.elapsed()
    );
}

#[test]
fn many_connections_and_calls_in_flight() {
    let agent = AgentProc::tcp(&[]);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut c = agent.connect();
                let s = c.create_session(0);
                // 32 requests written before any answer is read.
                let ids: Vec<u32> = (0..32)
                    .map(|_| c.send("Genop", &classify_genop(s, vec![2; 512], 256)))
                    .collect();
                let mut got: Vec<u32> = (0..32)
                    .map(|_| {
                        let (id, r) = c.recv_result::<pg::Response>();
                        r.unwrap();
                        id
                    })
                    .collect();
                got.sort_unstable();
                assert_eq!(got, ids);
            });
        }
    });
}

#[test]
fn two_gib_length_field_closes_only_that_connection() {
    let agent = AgentProc::unix(&[]);
    let mut good = agent.connect();
    let s = good.create_session(0);
    let mut bad = agent.connect();
    let h = Header {
        length: 2 << 30,
        stream_id: 1,
        kind: kind::REQUEST,
        flags: 0,
    };
    bad.write_raw(&h.encode());
    let (rh, r) = bad.recv();
    assert_eq!(rh.stream_id, 1);
    let st = r.status.unwrap();
    assert_eq!(st.code, code::INVALID_ARGUMENT);
    assert_eq!(
        st.message,
        "message length 2147483648 exceed maximum message size of 1073741824"
    );
    assert!(bad.is_closed(), "the offending connection is closed");
    // The other connection and its session are untouched.
    let r: pg::Response = good
        .call("Genop", &classify_genop(s, vec![1; 8], 32))
        .unwrap();
    assert_eq!(r.write_args.len(), 2);
}

#[test]
fn garbage_and_truncated_headers_close_only_their_connection() {
    let agent = AgentProc::tcp(&[]);
    let mut good = agent.connect();
    let s = good.create_session(0);

    // Text where a header should be: its "length" (0x47455420) is over the limit.
    let mut garbage = agent.connect();
    garbage.write_raw(b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n");
    let (_, r) = garbage.recv();
    assert_eq!(r.status.unwrap().code, code::INVALID_ARGUMENT);
    assert!(garbage.is_closed());

    // Half a header, then the client stops writing.
    let mut truncated = agent.connect();
    truncated.write_raw(&[0, 0, 0, 47, 0]);
    shutdown_write(&truncated);
    assert!(truncated.is_closed());

    // A header announcing more than is ever sent, then EOF.
    let mut short = agent.connect();
    short.write_raw(
        &Header {
            length: 100,
            stream_id: 1,
            kind: kind::REQUEST,
            flags: 0,
        }
        .encode(),
    );
    short.write_raw(b"only a few bytes");
    shutdown_write(&short);
    assert!(short.is_closed());

    let r: pg::Response = good
        .call("Genop", &classify_genop(s, vec![1; 8], 32))
        .unwrap();
    assert_eq!(r.write_args.len(), 2);
    // New connections still work.
    let mut fresh = agent.connect();
    assert!(fresh.create_session(0) > 0);
}
