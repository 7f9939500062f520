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

/// Why [`count_fields`] could not walk a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// A field's key, length or value runs past the end of the message, or a varint is longer
    /// than 10 bytes.
    #[error("truncated or malformed field")]
    Malformed,
    /// A wire type protobuf does not have (6, 7), a group ending where none began, or groups
    /// nested deeper than prost accepts.
    #[error("invalid wire type or group")]
    InvalidWireType,
}

/// Groups nested deeper than this are refused (prost's own recursion limit).
const MAX_GROUP_DEPTH: u32 = 100;

fn read_varint(buf: &mut &[u8]) -> Result<u64, ScanError> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or(ScanError::Malformed)?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ScanError::Malformed)
}

fn skip(buf: &mut &[u8], n: u64) -> Result<(), ScanError> {
    let n = usize::try_from(n).map_err(|_| ScanError::Malformed)?;
    *buf = buf.get(n..).ok_or(ScanError::Malformed)?;
    Ok(())
}

/// Counts the top-level fields of an encoded message whose tag is in `tags` (all of them when
/// `tags` is empty), without decoding it or allocating: what a server checks before handing a
/// peer's message to a decoder that allocates per field (a message of `n` empty repeated
/// submessages takes 2 bytes per element on the wire and some 50 decoded).
pub fn count_fields(mut buf: &[u8], tags: &[u32]) -> Result<usize, ScanError> {
    let mut count = 0usize;
    let mut depth = 0u32;
    while !buf.is_empty() {
        let key = read_varint(&mut buf)?;
        let tag = key >> 3;
        if depth == 0 && (tags.is_empty() || tags.iter().any(|&t| u64::from(t) == tag)) {
            count += 1;
        }
        match key & 7 {
            0 => {
                read_varint(&mut buf)?;
            }
            1 => skip(&mut buf, 8)?,
            2 => {
                let len = read_varint(&mut buf)?;
                skip(&mut buf, len)?;
            }
            3 => {
                depth += 1;
                if depth > MAX_GROUP_DEPTH {
                    return Err(ScanError::InvalidWireType);
                }
            }
            4 => {
                depth = depth.checked_sub(1).ok_or(ScanError::InvalidWireType)?;
            }
            5 => skip(&mut buf, 4)?,
            _ => return Err(ScanError::InvalidWireType),
        }
    }
    if depth != 0 {
        return Err(ScanError::Malformed);
    }
    Ok(count)
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

    #[test]
    fn fields_are_counted_without_decoding() {
        let msg = genop::Request {
            session_id: 7,
            read_args: vec![genop::Arg::default(); 3],
            write_args: vec![genop::Arg::default(); 2],
        };
        let b = msg.encode_to_vec();
        assert_eq!(count_fields(&b, &[2, 3]), Ok(5));
        assert_eq!(count_fields(&b, &[1]), Ok(1));
        assert_eq!(count_fields(&b, &[]), Ok(6));
        // Every wire type, and a group with a field inside (not counted: not top level).
        let mixed = hex("08 96 01  11 0102030405060708  1a 02 aabb  23 08 01 24  2d 01020304");
        assert_eq!(count_fields(&mixed, &[]), Ok(5));
        for bad in [
            "08",
            "0a 05 01",
            "0e",
            "24",
            "23 08 01",
            "08 ffffffffffffffffffff01",
        ] {
            assert!(count_fields(&hex(bad), &[]).is_err(), "{bad}");
        }
        assert_eq!(count_fields(&[], &[2]), Ok(0));
    }
}
