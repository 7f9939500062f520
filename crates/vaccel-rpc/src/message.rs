//! The ttrpc envelopes (`grpc.Request`, `grpc.Response`), encoded in one pass: the method's
//! message is written straight into the envelope's buffer (no intermediate payload copy).

use bytes::Bytes;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use crate::proto::grpc;

fn put_bytes_field(tag: u32, value: &[u8], buf: &mut Vec<u8>) {
    if value.is_empty() {
        return;
    }
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(value.len() as u64, buf);
    buf.extend_from_slice(value);
}

fn put_message_field(tag: u32, msg: &impl Message, buf: &mut Vec<u8>, always: bool) {
    let len = msg.encoded_len();
    if len == 0 && !always {
        return;
    }
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    msg.encode_raw(buf);
}

/// Encodes `grpc.Request{service, method, payload: <msg>, metadata}` (no timeout, as vAccel
/// clients send).
pub fn encode_request(
    service: &str,
    method: &str,
    msg: &impl Message,
    metadata: &[(&str, &str)],
) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(len + service.len() + method.len() + 32);
    put_bytes_field(1, service.as_bytes(), &mut buf);
    put_bytes_field(2, method.as_bytes(), &mut buf);
    put_message_field(3, msg, &mut buf, false);
    for (key, value) in metadata {
        let kv = grpc::KeyValue {
            key: (*key).to_owned(),
            value: (*value).to_owned(),
        };
        put_message_field(5, &kv, &mut buf, true);
    }
    buf
}

/// Encodes a successful `grpc.Response`: an explicit empty status (`0a 00`, as upstream
/// always sends) and the message as payload (omitted when empty).
pub fn encode_response_ok(msg: &impl Message) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(len + 2 + encoded_len_varint(len as u64) + 1);
    buf.extend_from_slice(&[0x0a, 0x00]);
    put_message_field(2, msg, &mut buf, false);
    buf
}

/// Encodes a failed `grpc.Response`: the status, no payload.
pub fn encode_response_err(status: &grpc::Status) -> Vec<u8> {
    let mut buf = Vec::with_capacity(status.encoded_len() + 8);
    put_message_field(1, status, &mut buf, true);
    buf
}

/// Decodes a request envelope; its payload is a zero-copy slice of `body`.
pub fn decode_request(body: Bytes) -> Result<grpc::Request, prost::DecodeError> {
    grpc::Request::decode(body)
}

/// Decodes a response envelope; its payload is a zero-copy slice of `body`.
pub fn decode_response(body: Bytes) -> Result<grpc::Response, prost::DecodeError> {
    grpc::Response::decode(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::vaccel::{genop, session};
    use crate::status;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn create_session_request_matches_upstream_capture() {
        let body = encode_request(
            crate::SERVICE,
            "CreateSession",
            &session::CreateRequest { flags: 0 },
            &[],
        );
        let mut expected = hex("0a1e");
        expected.extend_from_slice(b"vaccel.sync.agent.AgentService");
        expected.extend_from_slice(&hex("120d"));
        expected.extend_from_slice(b"CreateSession");
        assert_eq!(body.len(), 0x2f);
        assert_eq!(body, expected);
        let req = decode_request(Bytes::from(body)).unwrap();
        assert_eq!(
            (req.service.as_str(), req.method.as_str()),
            (crate::SERVICE, "CreateSession")
        );
        assert!(req.payload.is_empty());
    }

    #[test]
    fn ok_response_matches_upstream_capture() {
        let body = encode_response_ok(&session::CreateResponse { session_id: 1 });
        assert_eq!(body, hex("0a00 12020801"));
        // An empty message: status only.
        assert_eq!(
            encode_response_ok(&crate::proto::vaccel::empty::Empty {}),
            hex("0a00")
        );
    }

    #[test]
    fn genop_request_matches_upstream_capture() {
        let msg = genop::Request {
            session_id: 1,
            read_args: vec![genop::Arg {
                buf: Bytes::from_static(&[0]),
                size: 1,
                arg_type: genop::ArgType::Uint8 as i32,
                ..Default::default()
            }],
            write_args: vec![],
        };
        let body = encode_request(crate::SERVICE, "Genop", &msg, &[]);
        assert_eq!(body.len(), 0x34);
        assert!(
            body.ends_with(
                &hex("1205")
                    .into_iter()
                    .chain(b"Genop".iter().copied())
                    .chain(hex("1a0b 080112070a010010011809"))
                    .collect::<Vec<u8>>()
            )
        );
    }

    #[test]
    fn ffi_error_response_matches_upstream_shape() {
        // Upstream: INTERNAL, "FFI error: 22", details = [ProtoError{ffi_error: 22}].
        let st = status::ffi_status(vaccel_core::ErrorCode::EINVAL, None);
        let body = encode_response_err(&st);
        let mut expected = hex("0a3e 080d 120d");
        expected.extend_from_slice(b"FFI error: 22");
        expected.extend_from_slice(&hex("1a2b 0a25"));
        expected.extend_from_slice(b"type.googleapis.com/vaccel.ProtoError");
        expected.extend_from_slice(&hex("1202 1016"));
        assert_eq!(body, expected);
    }

    #[test]
    fn metadata_is_encoded() {
        let body = encode_request(
            "s",
            "m",
            &crate::proto::vaccel::empty::Empty {},
            &[("k", "v")],
        );
        let req = decode_request(Bytes::from(body)).unwrap();
        assert_eq!(req.metadata.len(), 1);
        assert_eq!(
            (req.metadata[0].key.as_str(), req.metadata[0].value.as_str()),
            ("k", "v")
        );
    }
}
