//! Entry points for fuzzing the decoders of untrusted bytes (`fuzz/`), also replayed by the
//! stable test suite over the seed corpus and random mutations.

use bytes::Bytes;
use prost::Message;

use crate::frame::{DEFAULT_MAX_FRAME, FrameReader};
use crate::message::{decode_request, decode_response};
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
