//! The ttrpc envelopes (`grpc.Request`, `grpc.Response`), encoded in one pass: the method's
//! message is written straight into the envelope's buffer (no intermediate payload copy).

use bytes::Bytes;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use smallvec::SmallVec;

use crate::proto::grpc;
use crate::proto::vaccel as pv;

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

/// The bytes of a successful `grpc.Response` that come before its payload: the explicit
/// empty status (`0a 00`) and, for a non-empty payload, its key and length. Built on the
/// stack, so the payload goes out after it without being copied or the head allocated.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseHead {
    bytes: [u8; 13],
    len: usize,
}

impl ResponseHead {
    /// The head of `grpc.Response{status: {}, payload: <payload_len bytes>}` (what
    /// [`encode_response_ok`] writes before the message).
    pub fn ok(payload_len: usize) -> ResponseHead {
        let mut head = ResponseHead {
            bytes: [0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            len: 2,
        };
        if payload_len > 0 {
            let mut rest = head.bytes.get_mut(2..).unwrap_or_default();
            encode_key(2, WireType::LengthDelimited, &mut rest);
            encode_varint(payload_len as u64, &mut rest);
            head.len = 13 - rest.len();
        }
        head
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
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

/// A `grpc.Request` envelope whose strings and payload borrow the frame's bytes
/// ([`decode_request_view`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestView<'a> {
    /// `service`.
    pub service: &'a str,
    /// `method`.
    pub method: &'a str,
    /// `payload`.
    pub payload: &'a [u8],
    /// `timeout_nano`.
    pub timeout_nano: i64,
    /// `metadata`, as (key, value) pairs.
    pub metadata: Vec<(&'a str, &'a str)>,
}

/// Metadata entries a request envelope may carry (each costs two strings decoded): an
/// envelope with more is refused by the server, and not read in place by
/// [`decode_request_view`].
pub const MAX_METADATA: usize = 64;

/// Decodes a `grpc.Request` envelope as clients encode it (known fields only, at most
/// [`MAX_METADATA`] metadata entries) without copying or allocating (but for metadata
/// entries): the strings and the payload borrow `buf`. `None` for anything else, valid or
/// not: the caller then counts the metadata and decodes with [`decode_request`], which
/// accepts every valid encoding and says what is wrong with an invalid one. Where this
/// returns a view, prost decodes the same values (the `decode` fuzz target checks it).
pub fn decode_request_view(mut buf: &[u8]) -> Option<RequestView<'_>> {
    let mut view = RequestView::default();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        if key == 0x20 {
            view.timeout_nano = varint(&mut buf)? as i64;
            continue;
        }
        if !matches!(key, 0x0a | 0x12 | 0x1a | 0x2a) {
            return None;
        }
        let len = usize::try_from(varint(&mut buf)?).ok()?;
        let (field, rest) = buf.split_at_checked(len)?;
        buf = rest;
        match key {
            0x0a => view.service = name(field, &[crate::SERVICE, crate::SERVICE_EXT])?,
            0x12 => view.method = name(field, &["Genop"])?,
            0x1a => view.payload = field,
            _ if view.metadata.len() == MAX_METADATA => return None,
            _ => view.metadata.push(decode_key_value(field)?),
        }
    }
    Some(view)
}

/// `field` as text: one of `known` when it is that name (a compare of a few bytes instead of
/// UTF-8 validation, which cost about 260 instructions of a small call for the two names),
/// else checked as UTF-8.
#[inline]
fn name<'a>(field: &'a [u8], known: &[&'static str]) -> Option<&'a str> {
    match known.iter().find(|k| k.as_bytes() == field) {
        Some(k) => Some(k),
        None => std::str::from_utf8(field).ok(),
    }
}

fn decode_key_value(mut buf: &[u8]) -> Option<(&str, &str)> {
    let (mut key, mut value) = ("", "");
    while !buf.is_empty() {
        let tag = varint(&mut buf)?;
        let len = usize::try_from(varint(&mut buf)?).ok()?;
        let (field, rest) = buf.split_at_checked(len)?;
        buf = rest;
        match tag {
            0x0a => key = std::str::from_utf8(field).ok()?,
            0x12 => value = std::str::from_utf8(field).ok()?,
            _ => return None,
        }
    }
    Some((key, value))
}

/// A `vaccel.genop.Arg` as the wire carries it, its bytes borrowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenopArgView<'a> {
    /// `buf`.
    pub buf: &'a [u8],
    /// `size`.
    pub size: u32,
    /// `arg_type`.
    pub arg_type: i32,
    /// `custom_type_id`.
    pub custom_type_id: u32,
    /// `parts`.
    pub parts: u32,
    /// `part_no`.
    pub part_no: u32,
}

impl<'a> GenopArgView<'a> {
    /// The view of a decoded argument.
    pub fn of(a: &'a pv::genop::Arg) -> Self {
        GenopArgView {
            buf: &a.buf,
            size: a.size,
            arg_type: a.arg_type,
            custom_type_id: a.custom_type_id,
            parts: a.parts,
            part_no: a.part_no,
        }
    }
}

/// Arguments a [`GenopRequestView`] holds without allocating (the ops' usual counts fit).
pub const INLINE_ARGS: usize = 8;

/// A `vaccel.genop.Request` whose arguments borrow the message's bytes
/// ([`decode_genop_request`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenopRequestView<'a> {
    /// `session_id`.
    pub session_id: i64,
    /// The read arguments, then the write arguments.
    args: SmallVec<[GenopArgView<'a>; INLINE_ARGS]>,
    /// How many of `args` are read arguments.
    reads: usize,
}

impl<'a> GenopRequestView<'a> {
    /// `read_args`.
    pub fn read_args(&self) -> &[GenopArgView<'a>] {
        self.args.get(..self.reads).unwrap_or_default()
    }

    /// `write_args`.
    pub fn write_args(&self) -> &[GenopArgView<'a>] {
        self.args.get(self.reads..).unwrap_or_default()
    }

    /// `read_args`, to change (e.g. to point arguments at shared memory).
    pub fn read_args_mut(&mut self) -> &mut [GenopArgView<'a>] {
        self.args.get_mut(..self.reads).unwrap_or_default()
    }
}

/// Decodes a `vaccel.genop.Request` as clients encode it (fields in order, read arguments
/// before write arguments, no unknown fields) without copying, and without allocating for up
/// to [`INLINE_ARGS`] arguments: the arguments borrow `buf`. `None` for anything else, valid
/// or not: the caller then decodes with prost, which accepts every valid encoding and says
/// what is wrong with an invalid one. Where this returns a view, prost decodes the same values
/// (the `decode` fuzz target checks it).
pub fn decode_genop_request(buf: &[u8]) -> Option<GenopRequestView<'_>> {
    let mut view = GenopRequestView::default();
    decode_genop_request_into(buf, &mut view)?;
    Some(view)
}

/// [`decode_genop_request`] into a view the caller holds (cleared first), so that its
/// arguments are not moved around on the way (`None`: as there; the view then holds some of
/// the message).
pub fn decode_genop_request_into<'a>(
    mut buf: &'a [u8],
    view: &mut GenopRequestView<'a>,
) -> Option<()> {
    view.session_id = 0;
    view.args.clear();
    view.reads = 0;
    let mut writes = false;
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        match key {
            0x08 => view.session_id = varint(&mut buf)? as i64,
            0x12 | 0x1a => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (arg, rest) = buf.split_at_checked(len)?;
                buf = rest;
                if key == 0x12 {
                    if writes {
                        return None;
                    }
                    view.reads += 1;
                } else {
                    writes = true;
                }
                view.args.push(decode_genop_arg(arg)?);
            }
            _ => return None,
        }
    }
    Some(())
}

#[inline]
fn decode_genop_arg(mut buf: &[u8]) -> Option<GenopArgView<'_>> {
    let mut arg = GenopArgView::default();
    // Clients write `buf`, `size` and `arg_type` first, in that order, each when not empty or
    // zero: read them so, without the general loop's dispatch; whatever follows (or comes in
    // another order) goes through the loop, which takes any order, the last value winning.
    if let [0x0a, rest @ ..] = buf {
        buf = rest;
        let len = usize::try_from(varint(&mut buf)?).ok()?;
        let (bytes, rest) = buf.split_at_checked(len)?;
        arg.buf = bytes;
        buf = rest;
    }
    if let [0x10, rest @ ..] = buf {
        buf = rest;
        arg.size = varint(&mut buf)? as u32;
    }
    if let [0x18, rest @ ..] = buf {
        buf = rest;
        arg.arg_type = varint(&mut buf)? as i32;
    }
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        if key == 0x0a {
            let len = usize::try_from(varint(&mut buf)?).ok()?;
            let (bytes, rest) = buf.split_at_checked(len)?;
            arg.buf = bytes;
            buf = rest;
            continue;
        }
        // Varint fields; prost truncates to 32 bits as `as` does.
        let field = match key {
            0x10 => &mut arg.size,
            0x20 => &mut arg.custom_type_id,
            0x28 => &mut arg.parts,
            0x30 => &mut arg.part_no,
            0x18 => {
                arg.arg_type = varint(&mut buf)? as i32;
                continue;
            }
            _ => return None,
        };
        *field = varint(&mut buf)? as u32;
    }
    Some(arg)
}

/// A varint as prost reads it (at most 10 bytes, the last one 0 or 1). One and two bytes
/// (keys, lengths below 16 KiB, small values: a small call's varints) are read inline;
/// longer ones take [`varint_long`].
#[inline(always)]
fn varint<'a>(buf: &mut &'a [u8]) -> Option<u64> {
    let bytes: &'a [u8] = buf;
    match bytes {
        [b, rest @ ..] if *b < 0x80 => {
            *buf = rest;
            Some(u64::from(*b))
        }
        [lo, hi, rest @ ..] if *hi < 0x80 => {
            *buf = rest;
            Some(u64::from(lo & 0x7f) | u64::from(*hi) << 7)
        }
        _ => varint_long(buf),
    }
}

#[inline(never)]
fn varint_long(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        if i == 9 && b > 1 {
            return None;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Writes `v` as a varint, as prost does; one and two bytes (a small call's lengths and
/// values) inline.
#[inline(always)]
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v < 0x4000 {
        out.extend_from_slice(&[(v as u8) | 0x80, (v >> 7) as u8]);
    } else {
        encode_varint(v, out);
    }
}

/// Writes varint field `tag` (below 16: a one-byte key) unless `value` is 0, which proto3
/// leaves out. A negative `int32` or `int64` is passed sign-extended (`i64::from(v) as u64`),
/// as prost encodes it.
#[inline]
pub fn put_varint_field(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        put_varint(out, u64::from(tag) << 3);
        put_varint(out, value);
    }
}

/// The bytes [`put_varint_field`] writes for `value` (tag below 16).
pub fn varint_field_len(value: u64) -> usize {
    if value == 0 {
        0
    } else {
        1 + encoded_len_varint(value)
    }
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

/// [`varint`] for the scanner: prost refuses what it refuses.
#[inline(always)]
fn read_varint(buf: &mut &[u8]) -> Result<u64, ScanError> {
    varint(buf).ok_or(ScanError::Malformed)
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
pub fn count_fields(buf: &[u8], tags: &[u32]) -> Result<usize, ScanError> {
    let (all, tagged) = count_fields_of(buf, tags)?;
    Ok(if tags.is_empty() { all } else { tagged })
}

/// The most top-level fields `len` bytes can hold: every field takes at least two bytes (a
/// key and at least one byte of value; a group its start and end keys), so a message this
/// bound keeps under a limit need not be walked.
pub fn max_fields(len: usize) -> usize {
    len / 2
}

/// [`count_fields`] for all the top-level fields and for those in `tags` at once (one walk).
pub fn count_fields_of(mut buf: &[u8], tags: &[u32]) -> Result<(usize, usize), ScanError> {
    let mut all = 0usize;
    let mut count = 0usize;
    let mut depth = 0u32;
    while !buf.is_empty() {
        let key = read_varint(&mut buf)?;
        let tag = key >> 3;
        if depth == 0 {
            all += 1;
            if tags.iter().any(|&t| u64::from(t) == tag) {
                count += 1;
            }
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
    Ok((all, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::vaccel::{genop, session};
    use crate::status;

    #[test]
    fn no_message_holds_more_fields_than_max_fields_says() {
        // The smallest field of each wire type, repeated, and a top-level group.
        for field in [
            "08 00",
            "0d 00000000",
            "09 0000000000000000",
            "12 00",
            "1b 1c",
        ] {
            let one = hex(field);
            let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 7).collect();
            let n = count_fields(&many, &[]).unwrap();
            assert_eq!(n, 7, "{field}");
            assert!(n <= max_fields(many.len()), "{field}");
        }
    }

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
    fn response_heads_match_the_encoder() {
        for len in [
            0usize,
            1,
            127,
            128,
            1050,
            16383,
            16384,
            1 << 21,
            1 << 30,
            u32::MAX as usize,
        ] {
            let msg = crate::proto::vaccel::genop::Arg {
                buf: Bytes::from(vec![7u8; len.min(1 << 21)]),
                ..Default::default()
            };
            if len <= 1 << 21 {
                let whole = encode_response_ok(&msg);
                let head = ResponseHead::ok(msg.encoded_len());
                assert!(whole.starts_with(head.as_bytes()), "{len}");
                assert_eq!(whole.len(), head.as_bytes().len() + msg.encoded_len());
            }
            let head = ResponseHead::ok(len);
            let mut expected = vec![0x0a, 0x00];
            if len > 0 {
                expected.push(0x12);
                encode_varint(len as u64, &mut expected);
            }
            assert_eq!(head.as_bytes(), &expected[..], "{len}");
        }
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
    fn envelopes_are_read_in_place_or_left_to_prost() {
        let body = encode_request(
            crate::SERVICE,
            "Genop",
            &genop::Request {
                session_id: 1,
                ..Default::default()
            },
            &[("k", "v"), ("", "x")],
        );
        let view = decode_request_view(&body).unwrap();
        let req = decode_request(Bytes::from(body.clone())).unwrap();
        assert_eq!((view.service, view.method), (crate::SERVICE, "Genop"));
        assert_eq!(view.payload, &req.payload[..]);
        assert_eq!(view.metadata, [("k", "v"), ("", "x")]);
        let mut timed = body.clone();
        timed.extend(hex("20 05"));
        assert_eq!(decode_request_view(&timed).unwrap().timeout_nano, 5);
        // Up to MAX_METADATA entries are read in place; more are left to the counted path.
        let entries = |n: usize| {
            let meta = vec![("k", "v"); n];
            encode_request(crate::SERVICE, "Genop", &genop::Request::default(), &meta)
        };
        let most = entries(MAX_METADATA);
        assert_eq!(
            decode_request_view(&most).unwrap().metadata.len(),
            MAX_METADATA
        );
        assert!(decode_request_view(&entries(MAX_METADATA + 1)).is_none());
        for odd in [
            // An unknown field, a metadata entry with one, bad UTF-8, a truncated field.
            [body.clone(), hex("30 01")].concat(),
            [body.clone(), hex("2a 02 18 01")].concat(),
            hex("0a 02 c3 28"),
            hex("12 05 47"),
        ] {
            assert!(decode_request_view(&odd).is_none(), "{odd:02x?}");
        }
    }

    #[test]
    fn genop_requests_are_read_in_place_or_left_to_prost() {
        let arg = |buf: &'static [u8], ty: i32, custom: u32| genop::Arg {
            buf: Bytes::from_static(buf),
            size: buf.len() as u32,
            arg_type: ty,
            custom_type_id: custom,
            parts: 2,
            part_no: 1,
        };
        let req = genop::Request {
            session_id: -3,
            read_args: vec![arg(&[3], 9, 0), arg(&[1; 300], 28, 7)],
            write_args: vec![arg(&[0; 512], 26, 0), arg(&[], -1, u32::MAX)],
        };
        let wire = req.encode_to_vec();
        let view = decode_genop_request(&wire).unwrap();
        assert_eq!(view.session_id, -3);
        let read: Vec<_> = req.read_args.iter().map(GenopArgView::of).collect();
        let write: Vec<_> = req.write_args.iter().map(GenopArgView::of).collect();
        assert_eq!(
            (view.read_args(), view.write_args()),
            (&read[..], &write[..])
        );
        assert_eq!(
            decode_genop_request(&[]).map(|v| v.args.len()),
            Some(0),
            "an empty message is all defaults"
        );
        // Valid but not the plain encoding, and invalid: prost's to decode or refuse.
        let mut interleaved = genop::Request {
            write_args: vec![arg(&[1], 9, 0)],
            ..Default::default()
        }
        .encode_to_vec();
        interleaved.extend(hex("12 00"));
        assert!(genop::Request::decode(&interleaved[..]).is_ok());
        for odd in [
            interleaved,
            hex("28 01"),
            hex("12 02 38 01"),
            hex("08 ffffffffffffffffff02"),
            hex("08 ff"),
            hex("12 05 0a 01"),
            hex("12 03 0a 05 01"),
        ] {
            assert!(decode_genop_request(&odd).is_none(), "{odd:02x?}");
        }
        // An argument's fields in another order, repeated, or after the usual three: read as
        // prost reads them (the last value of a field wins).
        for arg in [
            "18 03 0a 01 07 10 01",
            "0a 01 07 10 01 18 03 0a 01 08",
            "10 05 0a 01 07 18 03 10 01",
            "0a 01 07 18 03 10 01 20 04 28 02 30 01",
            "0a 00 10 00 18 00",
        ] {
            let arg = hex(arg);
            let mut wire = vec![0x12, arg.len() as u8];
            wire.extend(&arg);
            let theirs = genop::Request::decode(&wire[..]).unwrap();
            let view = decode_genop_request(&wire).unwrap();
            assert_eq!(
                view.read_args(),
                &[GenopArgView::of(&theirs.read_args[0])],
                "{arg:02x?}"
            );
        }
        // The largest 10-byte varint prost takes; two-byte ones at their ends.
        let max = hex("08 ffffffffffffffffff01");
        assert_eq!(decode_genop_request(&max).unwrap().session_id, -1);
        for (wire, id) in [("08 8001", 128), ("08 ff7f", 16_383), ("08 808001", 16_384)] {
            assert_eq!(decode_genop_request(&hex(wire)).unwrap().session_id, id);
        }
        // More arguments than the view holds inline, into a view that held others.
        let many = genop::Request {
            session_id: 5,
            read_args: vec![arg(&[3], 9, 0); INLINE_ARGS + 3],
            write_args: vec![arg(&[0; 16], 26, 0); 2],
        };
        let wire = many.encode_to_vec();
        let mut view = decode_genop_request(&max).unwrap();
        decode_genop_request_into(&wire, &mut view).unwrap();
        assert_eq!(
            (
                view.session_id,
                view.read_args().len(),
                view.write_args().len()
            ),
            (5, INLINE_ARGS + 3, 2)
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
