//! Entry points for fuzzing the decoders of untrusted bytes (`fuzz/`), also replayed by the
//! stable test suite over the seed corpus and random mutations.
//!
//! They panic (an `assert!`) where a decoder is wrong, not only where it crashes: that is
//! what a fuzzer reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::Path;

use bytes::Bytes;
use prost::Message;

use crate::frame::{self, DEFAULT_MAX_FRAME, FrameReader, HEADER_LEN, Header, ReadError};
use crate::message::{self, decode_request, decode_response};
use crate::proto::grpc;
use crate::proto::vaccel as pv;

/// Feeds `data` to every decoder a peer can reach: the frame reader (as a stream of frames),
/// the request and response envelopes, and each method's message. Must never panic.
pub fn decode_all(data: &[u8]) {
    let mut reader = FrameReader::new(data);
    while let Ok(frame) = reader.read_frame(DEFAULT_MAX_FRAME) {
        decode_payload(frame.body);
    }
    decode_payload(Bytes::copy_from_slice(data));
}

fn decode_payload(body: Bytes) {
    if let Some(view) = message::decode_request_view(&body) {
        let req = decode_request(body.clone()).expect("prost refuses what the fast path decoded");
        assert_eq!(
            (view.service, view.method),
            (&req.service[..], &req.method[..])
        );
        assert_eq!(
            (view.payload, view.timeout_nano),
            (&req.payload[..], req.timeout_nano)
        );
        let meta: Vec<_> = req
            .metadata
            .iter()
            .map(|kv| (&kv.key[..], &kv.value[..]))
            .collect();
        assert_eq!(view.metadata, meta);
    }
    if let Ok(req) = decode_request(body.clone()) {
        decode_messages(req.payload);
    }
    if let Ok(resp) = decode_response(body.clone()) {
        if let Some(status) = &resp.status {
            let _ = crate::status::status_to_error(status);
            let _ = crate::status::detail_status(status);
        }
        decode_messages(resp.payload);
    }
}

fn decode_messages(p: Bytes) {
    genop_view_agrees_with_prost(&p);
    let _ = pv::session::CreateRequest::decode(p.clone());
    let _ = pv::resource::RegisterRequest::decode(p.clone());
    let _ = pv::resource::SyncResponse::decode(p.clone());
    let _ = pv::image::Request::decode(p.clone());
    let _ = pv::genop::Request::decode(p.clone());
    let _ = pv::genop::Response::decode(p.clone());
    let _ = pv::tf::ModelRunRequest::decode(p.clone());
    let _ = pv::tflite::ModelRunRequest::decode(p.clone());
    let _ = pv::torch::ModelRunRequest::decode(p.clone());
    let _ = pv::profiling::Response::decode(p.clone());
    let _ = pv::Error::decode(p);
}

/// Where [`message::decode_genop_request`] (the agent's fast path) decodes a message, prost
/// decodes the same values.
fn genop_view_agrees_with_prost(p: &[u8]) {
    let Some(view) = message::decode_genop_request(p) else {
        return;
    };
    let req = pv::genop::Request::decode(p).expect("prost refuses what the fast path decoded");
    assert_eq!(view.session_id, req.session_id);
    let read: Vec<_> = req
        .read_args
        .iter()
        .map(message::GenopArgView::of)
        .collect();
    let write: Vec<_> = req
        .write_args
        .iter()
        .map(message::GenopArgView::of)
        .collect();
    assert_eq!(view.read_args(), &read[..]);
    assert_eq!(view.write_args(), &write[..]);
}

/// Feeds `data` to [`message::count_fields`], the allocation-free scan a server runs on a
/// peer's message before decoding it, and checks it against prost: a message prost decodes,
/// the scan walks, counting exactly the elements prost decoded (`Genop` arguments, envelope
/// metadata). The scan may accept more than prost (it does not look inside fields).
pub fn count_fields(data: &[u8]) {
    let all = message::count_fields(data, &[]);
    let args = message::count_fields(data, &[2, 3]);
    let metadata = message::count_fields(data, &[5]);
    match (&all, &args, &metadata) {
        (Ok(all), Ok(args), Ok(metadata)) => assert!(args <= all && metadata <= all),
        (Err(e), Err(a), Err(m)) => assert!(e == a && a == m, "{e:?} {a:?} {m:?}"),
        _ => panic!("the scan's verdict depends on the tags: {all:?} {args:?} {metadata:?}"),
    }
    if let Ok(req) = pv::genop::Request::decode(data) {
        assert_eq!(args, Ok(req.read_args.len() + req.write_args.len()));
    }
    if let Ok(req) = grpc::Request::decode(data) {
        assert_eq!(metadata, Ok(req.metadata.len()));
    }
}

/// Largest frame [`read_frames`] accepts; larger headers end the script.
const SCRIPT_MAX_FRAME: usize = 16 << 20;
/// Zero bytes one script may ask for in all: enough to grow a body past its first step
/// ([`frame::FIRST_STEP`]) and double it.
const SCRIPT_MAX_ZEROS: usize = 4 << 20;
/// Reads a script may make short; the later ones are as long as the reader asks (so that a
/// one-byte step over megabytes stays fast to fuzz).
const SCRIPT_SHORT_READS: usize = 4096;

/// What the transport does on one of a script's reads.
#[derive(Debug)]
enum Piece {
    /// The next `len` bytes of the stream, at most `step` per read.
    Deliver { len: usize, step: usize },
    /// A failed read: a timeout (`WouldBlock`, `TimedOut`) or `Interrupted`.
    Fail(io::ErrorKind),
}

/// A transport that plays a script over `stream`, then reports EOF.
#[derive(Debug)]
struct Script {
    stream: Vec<u8>,
    at: usize,
    pieces: VecDeque<Piece>,
    reads: usize,
}

impl Read for Script {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.pieces.front_mut() {
                None => return Ok(0),
                Some(Piece::Fail(kind)) => {
                    let kind = *kind;
                    self.pieces.pop_front();
                    return Err(kind.into());
                }
                Some(Piece::Deliver { len: 0, .. }) => {
                    self.pieces.pop_front();
                }
                Some(Piece::Deliver { len, step }) => {
                    self.reads += 1;
                    let step = if self.reads > SCRIPT_SHORT_READS {
                        usize::MAX
                    } else {
                        *step
                    };
                    let n = (*len).min(step).min(out.len());
                    out[..n].copy_from_slice(&self.stream[self.at..self.at + n]);
                    self.at += n;
                    *len -= n;
                    return Ok(n);
                }
            }
        }
    }
}

/// The script `data` describes. Each step is an opcode byte and its operands: `0 n` the next
/// `n` bytes of `data`; `1 hi lo` `(hi lo) * 64` zero bytes; `2 k` a failed read
/// (`WouldBlock`, `TimedOut`, `Interrupted`); `3 hi lo` at most `max(1, hi lo)` bytes per
/// read from then on.
fn script(data: &[u8]) -> Script {
    let mut data = data.iter().copied();
    let mut pieces = VecDeque::new();
    let mut stream = Vec::new();
    let mut zeros = 0;
    let mut step = usize::MAX;
    while let Some(op) = data.next() {
        match op % 4 {
            0 => {
                let n = usize::from(data.next().unwrap_or(0));
                let before = stream.len();
                stream.extend(data.by_ref().take(n));
                pieces.push_back(Piece::Deliver {
                    len: stream.len() - before,
                    step,
                });
            }
            1 => {
                let n = (word(&mut data) * 64).min(SCRIPT_MAX_ZEROS - zeros);
                zeros += n;
                stream.resize(stream.len() + n, 0);
                pieces.push_back(Piece::Deliver { len: n, step });
            }
            2 => pieces.push_back(Piece::Fail(match data.next().unwrap_or(0) % 3 {
                0 => io::ErrorKind::WouldBlock,
                1 => io::ErrorKind::TimedOut,
                _ => io::ErrorKind::Interrupted,
            })),
            _ => step = word(&mut data).max(1),
        }
    }
    Script {
        stream,
        at: 0,
        pieces,
        reads: 0,
    }
}

/// The next two bytes of a script, big-endian (0 past its end).
fn word(data: &mut impl Iterator<Item = u8>) -> usize {
    usize::from(data.next().unwrap_or(0)) << 8 | usize::from(data.next().unwrap_or(0))
}

/// Feeds a script of reads described by `data` (see `script`) to the frame reader a server
/// uses ([`FrameReader::next_frame`]): short reads, timeouts between and inside frames,
/// interrupted reads, bodies large enough to be read into a growing buffer or into a
/// reclaimed one. Every frame read must be exactly the bytes the transport delivered, in
/// order; a stalled frame cannot claim more bytes than were sent. Must never panic.
pub fn read_frames(data: &[u8]) {
    let mut reader = FrameReader::new(script(data));
    let mut spare = None;
    let mut at = 0;
    loop {
        let result = reader.next_frame(SCRIPT_MAX_FRAME, &mut spare);
        let (stream, delivered) = (&reader.get_ref().stream, reader.get_ref().at);
        match result {
            Ok(f) => {
                let head: [u8; HEADER_LEN] = stream[at..at + HEADER_LEN].try_into().unwrap();
                assert_eq!(Header::decode(&head), f.header);
                let body = at + HEADER_LEN..at + HEADER_LEN + f.header.length as usize;
                assert!(f.body[..] == stream[body.clone()], "a body differs");
                at = body.end;
                frame::reclaim(f.body, &mut spare);
            }
            Err(ReadError::Idle) => {}
            Err(ReadError::Stalled { received }) => {
                assert!(received <= delivered - at, "{received} bytes claimed");
                break;
            }
            Err(ReadError::OutOfMemory { length, .. }) => {
                panic!("no memory for a frame of {length} bytes")
            }
            Err(ReadError::Refused { length, .. }) => {
                panic!("a frame of {length} bytes refused with everything admitted")
            }
            Err(ReadError::Frame(_)) => break,
        }
    }
}

/// The stable stand-in for a fuzzer: runs `run` on every seed in `corpus` (a directory of a
/// fuzz target's seed corpus, `fuzz/corpus/<target>`), then on `rounds` deterministic
/// mutations of them (bytes changed, inserted, cut off).
pub fn replay(corpus: &Path, rounds: usize, run: fn(&[u8])) {
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(corpus)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", corpus.display());
    seeds.sort();
    for seed in &seeds {
        run(seed);
    }
    // xorshift64*: deterministic, no dependency.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1) as u64) as usize
    };
    for _ in 0..rounds {
        let mut data = seeds[next(seeds.len())].clone();
        for _ in 0..=next(4) {
            match next(3) {
                0 if !data.is_empty() => {
                    let i = next(data.len());
                    data[i] = next(256) as u8;
                }
                1 if !data.is_empty() => data.truncate(next(data.len())),
                _ => {
                    let i = next(data.len() + 1);
                    data.insert(i, next(256) as u8);
                }
            }
        }
        run(&data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(target: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target)
    }

    #[test]
    fn count_fields_seeds_and_mutations_agree_with_prost() {
        replay(&corpus("count_fields"), 20_000, count_fields);
    }

    #[test]
    fn read_frames_seeds_and_mutations_read_what_was_sent() {
        replay(&corpus("frames"), 1000, read_frames);
    }

    #[test]
    fn a_script_grows_a_body_past_its_first_step() {
        // A 3 MiB frame in 4 KiB reads, an interrupted read inside it, then a small frame.
        let mut data = vec![3, 0x10, 0x00, 0, 10];
        data.extend_from_slice(
            &Header {
                length: 3 << 20,
                stream_id: 1,
                kind: 1,
                flags: 0,
            }
            .encode(),
        );
        data.extend_from_slice(&[1, 0x60, 0x00, 2, 2, 1, 0x60, 0x00, 0, 12]);
        data.extend_from_slice(
            &Header {
                length: 2,
                stream_id: 3,
                kind: 1,
                flags: 0,
            }
            .encode(),
        );
        data.extend_from_slice(b"ok");
        let script = script(&data);
        assert_eq!(script.stream.len(), 10 + (3 << 20) + 12);
        let mut reader = FrameReader::new(script);
        let f = reader.next_frame(SCRIPT_MAX_FRAME, &mut None).unwrap();
        assert_eq!(f.body.len(), 3 << 20);
        let f = reader.next_frame(SCRIPT_MAX_FRAME, &mut None).unwrap();
        assert_eq!(&f.body[..], b"ok");
        read_frames(&data);
    }
}
