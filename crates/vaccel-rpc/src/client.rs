//! The RPC client: one connection to an agent, shared by any number of threads, with several
//! calls in flight at once.
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use vaccel_rpc::addr::Address;
//! use vaccel_rpc::client::Client;
//!
//! let addr: Address = "unix:///run/vaccel/vaccel.sock".parse().expect("an address");
//! let client = Client::connect(&addr)?;
//! let session = client.create_session(0)?;
//! client.destroy_session(session)?;
//! # Ok(()) }
//! ```
//!
//! # How a response reaches its caller
//!
//! There is no reader thread. A call writes its REQUEST under the write lock (stream ids are
//! odd, +2 per call, handed out under that lock so they reach the wire in increasing order)
//! and registers a slot for its stream id. Then it waits for its response: the first waiting
//! caller that finds the frame reader free takes it (the *leader*) and reads frames without
//! holding any lock; each frame for another stream is parked in that stream's slot and its
//! owner woken (one condition variable per waiting caller, so nobody else wakes). When the
//! leader's own response arrives it puts the reader back and wakes one other waiting caller,
//! which becomes the next leader. A single-threaded caller therefore costs one `writev` and
//! one `read`, with no thread hand-off.
//!
//! # Failures
//!
//! A transport error, a frame over the limit, or a frame for a stream with no call in flight
//! (the peer is out of step with us) breaks the connection: every call in flight and every
//! later call fails with `EIO`. A broken client is never reconnected (the agent released
//! everything this connection owned when it went away, so the ids it handed out are gone);
//! [`Client::is_broken`] tells the owner to make a new one. A response whose envelope does
//! not decode fails only its own call (`EIO`), as does one whose method message does not
//! decode (`EBACKEND`, a conversion error); the connection stays usable because the frame
//! boundary is intact. Calls have no timeout (as upstream).
//!
//! # Large messages
//!
//! At connect the client asks `vaccel.rs.ext.Extensions/GetCapabilities` once (see
//! `docs/wire.md`). An agent that supports chunking gets messages larger than
//! [`CHUNK_SIZE`] as chunked requests and is told that chunked responses are welcome; an
//! upstream agent (which answers "does not exist") gets plain calls, and anything above its
//! 1 GiB limit is refused here with `EINVAL` before a byte is sent.
//!
//! # Extensions
//!
//! Every extension is used only when the agent advertised it in its `Capabilities`
//! ([`Client::directory_resources`], [`Client::genop_runs`], [`Client::detection_records`],
//! chunking): against an upstream agent the client sends exactly upstream's messages, and the
//! one `GetCapabilities` probe, which such an agent answers as an unknown method.
//!
//! Large byte fields (genop arguments, resource blobs) are not copied into the request: the
//! message is encoded as small encoded parts interleaved with the caller's buffers, and each
//! frame goes out in one `writev`.
//!
//! # Shared memory
//!
//! On a unix socket to an agent that offers shared memory (`shared_memory_max`, extension 6
//! in `docs/wire.md`), a `Genop` whose message is at least [`SHARED_MEMORY_MIN`] bytes is
//! written into a memfd attached once to the connection (created at the first such call,
//! pre-faulted, re-attached larger when a larger message comes, reused otherwise) and the
//! request names its region instead of carrying the bytes: one copy of the payload in all,
//! the agent reads it where it lies. One call at a time uses the memory; a call that finds it
//! busy, and every call when the agent refused an attach, goes through the socket as usual.
//! `VACCEL_RPC_SHM=0` turns it off.
//!
//! An argument of a `Genop` (read, or write: an output) of at least [`SHARED_MEMORY_MIN`]
//! bytes that lies in a [`SharedBuffer`] is not copied at all when the agent takes argument
//! buffers
//! (`shared_memory_regions` > 1): the buffer's memfd is attached to the connection as a region
//! of its own at the first call that uses it, and the request names the bytes by region,
//! offset and length (`vaccel-rs-shm-args`). Buffers dropped are detached at the connection's
//! next such call; a connection keeps up to `shared_memory_regions - 1` of them, and an
//! argument that finds no room (or a refused attach) is sent as usual.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::Bytes;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use vaccel_core::arg::Arg;
use vaccel_core::{ArgType, Error, ErrorCode, Id, Result};

use crate::addr::Address;
use crate::frame::{DEFAULT_MAX_FRAME, Frame, FrameError, FrameReader, flags, kind, write_frame};
use crate::message::{decode_response, encode_request, put_varint_field, varint_field_len};
use crate::proto::vaccel as pv;
use crate::proto::vaccel::rs::ext::{
    AttachSharedMemoryRequest, Capabilities, CapabilitiesRequest, DetachSharedMemoryRequest,
};
use crate::server::{META_SHARED_ARGS, META_SHARED_MEMORY, SHARED_MEMORY_METHODS};
use crate::shm::{BufferPlace, SharedBuffer, SharedMemory};
use crate::status::{code, status_to_error};
use crate::transport::Stream;
use crate::{SERVICE, SERVICE_EXT};

/// Largest DATA frame this client sends, and the size above which it chunks requests and
/// asks for chunked responses (when the agent supports it).
pub const CHUNK_SIZE: usize = 8 << 20;
/// Upstream's message limit (the vAccel fork of ttrpc): what a plain call may carry.
pub const UPSTREAM_MAX_MESSAGE: usize = DEFAULT_MAX_FRAME;
/// Metadata of a chunked request: the total bytes of the method's message.
pub const META_CHUNKED: &str = "vaccel-rs-chunked";
/// Metadata telling the agent that responses may come back chunked, at most this many bytes
/// per DATA frame.
pub const META_ACCEPT_CHUNKS: &str = "vaccel-rs-accept-chunks";
/// The largest response frame the client reads ([`DEFAULT_MAX_FRAME`]), announced as the chunk
/// size it accepts: responses up to this size come as one frame (no reassembly copy), larger
/// ones in chunks of at most this size. A test keeps the two equal.
const ACCEPT_CHUNKS_VALUE: &str = "1073741824";
/// Metadata of a `RegisterResource` whose blob names are paths of one directory tree.
pub const META_DIRECTORY: &str = "vaccel-rs-directory";
/// Largest chunked response reassembled (a bound against a misbehaving agent).
const MAX_CHUNKED_RESPONSE: u64 = 1 << 36;
/// Messages at least this long go through shared memory when the agent offers it; smaller
/// ones keep the socket (a copy of a small message costs less than naming a region).
pub const SHARED_MEMORY_MIN: usize = 256 << 10;
/// `VACCEL_RPC_SHM=0` turns shared memory off.
pub const ENV_SHARED_MEMORY: &str = "VACCEL_RPC_SHM";
/// Shared memory is attached in multiples of this.
const SHARED_MEMORY_GRANULE: usize = 1 << 20;

/// An error of the transport or of the peer's framing: `EIO`, as upstream's client reports.
fn transport_error(message: String) -> Error {
    Error::backend("rpc", ErrorCode::EIO, message)
}

/// A response that does not convert into what the call returns: `EBACKEND`, as upstream.
fn conversion_error(message: String) -> Error {
    Error::backend("rpc", ErrorCode::EBACKEND, message)
}

/// One argument of a generic operation as it goes on the wire: type, custom id and bytes
/// borrowed from the caller (large ones go to the socket from where they lie, uncopied).
#[derive(Clone, Copy)]
pub struct GenopArg<'a> {
    /// `vaccel_arg_type_t` value.
    pub arg_type: u32,
    /// Custom type id (`CUSTOM` arguments).
    pub custom_type_id: u32,
    /// The bytes.
    pub buf: &'a [u8],
}

impl fmt::Debug for GenopArg<'_> {
    // Payload bytes are never printed (rule G2): only their size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenopArg")
            .field("arg_type", &self.arg_type)
            .field("custom_type_id", &self.custom_type_id)
            .field("size", &self.buf.len())
            .finish()
    }
}

impl<'a> GenopArg<'a> {
    /// An argument of type `ty` over `buf`.
    pub fn new(ty: ArgType, buf: &'a [u8]) -> Self {
        GenopArg {
            arg_type: ty.value(),
            custom_type_id: 0,
            buf,
        }
    }

    /// The wire form of a runtime argument (its current bytes, type and custom id).
    pub fn from_arg(arg: &'a Arg<'_>) -> Self {
        GenopArg {
            arg_type: arg.ty().value(),
            custom_type_id: arg.custom_id(),
            buf: arg.bytes(),
        }
    }

    fn size(&self) -> u32 {
        // Checked by `Client::genop` before encoding.
        u32::try_from(self.buf.len()).unwrap_or(u32::MAX)
    }

    /// The encoded length of the argument; without its bytes (`size` still says how many):
    /// an argument named in `vaccel-rs-shm-args`.
    fn body_len(&self, with_bytes: bool) -> usize {
        let mut n = if with_bytes {
            bytes_field_len(self.buf.len())
        } else {
            0
        };
        let size = self.size();
        if size != 0 {
            n += 1 + encoded_len_varint(u64::from(size));
        }
        if self.arg_type != 0 {
            n += 1 + encoded_len_varint(u64::from(self.arg_type));
        }
        if self.custom_type_id != 0 {
            n += 1 + encoded_len_varint(u64::from(self.custom_type_id));
        }
        n
    }

    fn encode_body<'p>(&'p self, out: &mut Pieces<'p>, with_bytes: bool) {
        if with_bytes && !self.buf.is_empty() {
            encode_key(1, WireType::LengthDelimited, &mut out.buf);
            encode_varint(self.buf.len() as u64, &mut out.buf);
            out.bytes(self.buf);
        }
        let size = self.size();
        if size != 0 {
            encode_key(2, WireType::Varint, &mut out.buf);
            encode_varint(u64::from(size), &mut out.buf);
        }
        if self.arg_type != 0 {
            encode_key(3, WireType::Varint, &mut out.buf);
            encode_varint(u64::from(self.arg_type), &mut out.buf);
        }
        if self.custom_type_id != 0 {
            encode_key(4, WireType::Varint, &mut out.buf);
            encode_varint(u64::from(self.custom_type_id), &mut out.buf);
        }
    }
}

/// Length of a non-repeated `bytes`/`string` field with a one-byte key (omitted when empty).
fn bytes_field_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        1 + encoded_len_varint(len as u64) + len
    }
}

/// Byte fields at least this long are sent from where they lie instead of being copied.
const BORROW_MIN: usize = 32 << 10;
/// At most this many borrowed fields per message (a frame is one `writev`, and the kernel
/// takes at most 1024 slices); later ones are copied.
const MAX_BORROWED: usize = 256;

/// An encoded message as a sequence of slices: everything small is encoded into `buf`, and
/// large byte fields are borrowed from the caller, so sending a large argument, blob or
/// image copies nothing in user space (the slices go to `writev`).
struct Pieces<'a> {
    buf: Vec<u8>,
    /// `(offset in buf, bytes)`: `bytes` come right after `buf[..offset]`.
    borrowed: Vec<(usize, &'a [u8])>,
}

impl<'a> Pieces<'a> {
    fn new() -> Self {
        Pieces {
            buf: Vec::with_capacity(256),
            borrowed: Vec::new(),
        }
    }

    /// Appends the bytes of a field.
    fn bytes(&mut self, data: &'a [u8]) {
        if data.len() >= BORROW_MIN && self.borrowed.len() < MAX_BORROWED {
            self.borrowed.push((self.buf.len(), data));
        } else {
            self.buf.extend_from_slice(data);
        }
    }

    fn len(&self) -> usize {
        self.buf.len() + self.borrowed.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// The message, in order.
    fn slices(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(2 * self.borrowed.len() + 1);
        let mut at = 0;
        for (offset, data) in &self.borrowed {
            out.push(self.buf.get(at..*offset).unwrap_or_default());
            out.push(*data);
            at = *offset;
        }
        out.push(self.buf.get(at..).unwrap_or_default());
        out.retain(|s| !s.is_empty());
        out
    }
}

/// A request message the client can send: its exact encoded length, and its encoding as
/// [`Pieces`] (byte for byte what prost produces for the same message).
trait Encode {
    fn encoded_len(&self) -> usize;
    fn encode<'a>(&'a self, out: &mut Pieces<'a>);
}

/// Any prost message, encoded whole (small messages).
struct Whole<'m, M>(&'m M);

impl<M: Message> Encode for Whole<'_, M> {
    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }

    fn encode<'a>(&'a self, out: &mut Pieces<'a>) {
        self.0.encode_raw(&mut out.buf);
    }
}

/// `vaccel.genop.Request` over borrowed arguments.
struct GenopRequestRef<'s, 'a> {
    session_id: i64,
    read: &'s [GenopArg<'a>],
    write: &'s [GenopArg<'a>],
    /// Arguments sent without their bytes (in argument buffers): read, then write indices.
    shared: (&'s [usize], &'s [usize]),
}

impl GenopRequestRef<'_, '_> {
    /// `(tag, argument, with its bytes)` in the order they are encoded.
    fn args(&self) -> impl Iterator<Item = (u32, &GenopArg<'_>, bool)> {
        let (read, write) = self.shared;
        let r = self.read.iter().enumerate();
        let w = self.write.iter().enumerate();
        r.map(move |(i, a)| (2, a, !read.contains(&i)))
            .chain(w.map(move |(i, a)| (3, a, !write.contains(&i))))
    }
}

impl Encode for GenopRequestRef<'_, '_> {
    fn encoded_len(&self) -> usize {
        let mut n = 0;
        if self.session_id != 0 {
            n += 1 + encoded_len_varint(self.session_id as u64);
        }
        for (_, arg, with_bytes) in self.args() {
            let len = arg.body_len(with_bytes);
            n += 1 + encoded_len_varint(len as u64) + len;
        }
        n
    }

    fn encode<'p>(&'p self, out: &mut Pieces<'p>) {
        if self.session_id != 0 {
            encode_key(1, WireType::Varint, &mut out.buf);
            encode_varint(self.session_id as u64, &mut out.buf);
        }
        for (tag, arg, with_bytes) in self.args() {
            encode_key(tag, WireType::LengthDelimited, &mut out.buf);
            encode_varint(arg.body_len(with_bytes) as u64, &mut out.buf);
            arg.encode_body(out, with_bytes);
        }
    }
}

/// `vaccel.resource.RegisterRequest` with its blobs' data borrowed.
struct RegisterRef<'r>(&'r pv::resource::RegisterRequest);

fn blob_len(b: &pv::resource::Blob) -> usize {
    varint_field_len(b.r#type as u64)
        + bytes_field_len(b.name.len())
        + bytes_field_len(b.data.len())
        + varint_field_len(u64::from(b.size))
}

impl Encode for RegisterRef<'_> {
    fn encoded_len(&self) -> usize {
        let r = self.0;
        let paths: usize = r
            .paths
            .iter()
            .map(|p| 1 + encoded_len_varint(p.len() as u64) + p.len())
            .sum();
        let blobs: usize = r
            .blobs
            .iter()
            .map(|b| {
                let len = blob_len(b);
                1 + encoded_len_varint(len as u64) + len
            })
            .sum();
        paths
            + blobs
            + varint_field_len(r.resource_type as u64)
            + varint_field_len(r.resource_id as u64)
            + varint_field_len(r.session_id as u64)
    }

    fn encode<'a>(&'a self, out: &mut Pieces<'a>) {
        let r = self.0;
        for p in &r.paths {
            // Repeated strings are written even when empty.
            encode_key(1, WireType::LengthDelimited, &mut out.buf);
            encode_varint(p.len() as u64, &mut out.buf);
            out.buf.extend_from_slice(p.as_bytes());
        }
        for b in &r.blobs {
            encode_key(2, WireType::LengthDelimited, &mut out.buf);
            encode_varint(blob_len(b) as u64, &mut out.buf);
            put_varint_field(1, b.r#type as u64, &mut out.buf);
            if !b.name.is_empty() {
                encode_key(2, WireType::LengthDelimited, &mut out.buf);
                encode_varint(b.name.len() as u64, &mut out.buf);
                out.buf.extend_from_slice(b.name.as_bytes());
            }
            if !b.data.is_empty() {
                encode_key(3, WireType::LengthDelimited, &mut out.buf);
                encode_varint(b.data.len() as u64, &mut out.buf);
                out.bytes(&b.data);
            }
            put_varint_field(4, u64::from(b.size), &mut out.buf);
        }
        put_varint_field(3, r.resource_type as u64, &mut out.buf);
        put_varint_field(4, r.resource_id as u64, &mut out.buf);
        put_varint_field(5, r.session_id as u64, &mut out.buf);
    }
}

/// The envelope around a message of `msg_len` bytes: what goes before it (service, method,
/// the payload's key and length) and after it (metadata), as `encode_request` lays it out.
fn envelope(
    service: &str,
    method: &str,
    msg_len: usize,
    metadata: &[(&str, &str)],
) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::with_capacity(service.len() + method.len() + 16);
    for (tag, text) in [(1, service), (2, method)] {
        if !text.is_empty() {
            encode_key(tag, WireType::LengthDelimited, &mut head);
            encode_varint(text.len() as u64, &mut head);
            head.extend_from_slice(text.as_bytes());
        }
    }
    if msg_len > 0 {
        encode_key(3, WireType::LengthDelimited, &mut head);
        encode_varint(msg_len as u64, &mut head);
    }
    let tail = encode_request("", "", &pv::empty::Empty {}, metadata);
    (head, tail)
}

/// Cuts a message given as slices into frames of at most `chunk` bytes each (slices of the
/// same memory, nothing copied).
fn split_frames<'s>(slices: &[&'s [u8]], chunk: usize) -> Vec<Vec<&'s [u8]>> {
    let chunk = chunk.max(1);
    let mut frames = Vec::new();
    let mut frame: Vec<&[u8]> = Vec::new();
    let mut room = chunk;
    for slice in slices {
        let mut rest: &[u8] = slice;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(rest.len().min(room));
            frame.push(now);
            room -= now.len();
            rest = later;
            if room == 0 {
                frames.push(std::mem::take(&mut frame));
                room = chunk;
            }
        }
    }
    if !frame.is_empty() {
        frames.push(frame);
    }
    frames
}

/// The encoded length of `encode_request(service, method, <msg_len bytes>, metadata)`.
fn envelope_len(service: &str, method: &str, msg_len: usize, metadata: &[(&str, &str)]) -> usize {
    let meta: usize = metadata
        .iter()
        .map(|(k, v)| {
            let kv = bytes_field_len(k.len()) + bytes_field_len(v.len());
            1 + encoded_len_varint(kv as u64) + kv
        })
        .sum();
    bytes_field_len(service.len()) + bytes_field_len(method.len()) + bytes_field_len(msg_len) + meta
}

/// How requests are sent, decided once from the agent's capabilities.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Every call is one REQUEST frame of at most `max_frame` bytes.
    Plain { max_frame: usize },
    /// Requests that fit one frame of the agent (`max_frame`) go whole: one frame costs the
    /// agent no reassembly copy. Larger ones go as chunked calls of `chunk`-byte DATA frames,
    /// up to `max_message` bytes.
    Chunked {
        chunk: usize,
        max_frame: usize,
        max_message: u64,
    },
}

/// Where a call stands.
enum CallState {
    /// Sent, nothing back yet.
    Waiting,
    /// Part of a chunked response.
    Chunks { parts: Vec<Bytes>, len: u64 },
    /// The whole response envelope (or why this call alone failed).
    Done(Result<Bytes>),
}

struct Call {
    state: CallState,
    /// Set when the caller sleeps; whoever parks its response wakes it.
    cond: Option<Arc<Condvar>>,
}

impl Call {
    fn wake(&self) {
        if let Some(cond) = &self.cond {
            cond.notify_one();
        }
    }
}

/// Everything the callers share, under one short-held lock.
struct State {
    /// The frame reader, `None` while a leader is reading with it.
    reader: Option<FrameReader<Stream>>,
    /// Calls in flight by stream id.
    calls: HashMap<u32, Call>,
    /// Why the connection is unusable, once it is.
    broken: Option<String>,
}

impl State {
    /// Parks a frame in its call's slot. `Err` is a protocol violation that breaks the
    /// connection.
    fn deliver(&mut self, frame: Frame) -> std::result::Result<(), String> {
        let Frame { header, body } = frame;
        let sid = header.stream_id;
        if header.kind != kind::RESPONSE && header.kind != kind::DATA {
            // Unknown frame types are ignored, as ttrpc peers do.
            log::trace!(
                "[rpc] ignoring frame of type {:#x} on stream {sid}",
                header.kind
            );
            return Ok(());
        }
        let Some(call) = self.calls.get_mut(&sid) else {
            return Err(format!(
                "the agent answered stream {sid}, which has no call in flight"
            ));
        };
        if header.kind == kind::RESPONSE {
            log::trace!("[rpc] stream {sid}: response of {} bytes", body.len());
            if matches!(call.state, CallState::Done(_)) {
                return Err(format!("the agent answered stream {sid} twice"));
            }
            // A RESPONSE ends the call even after some DATA (e.g. the agent failed midway).
            call.state = CallState::Done(Ok(body));
            call.wake();
            return Ok(());
        }
        log::trace!(
            "[rpc] stream {sid}: response chunk of {} bytes{}",
            body.len(),
            if header.flags & flags::REMOTE_CLOSED != 0 {
                " (last)"
            } else {
                ""
            }
        );
        if matches!(call.state, CallState::Done(_)) {
            return Err(format!("the agent sent data on finished stream {sid}"));
        }
        let (mut parts, mut len) = match std::mem::replace(&mut call.state, CallState::Waiting) {
            CallState::Chunks { parts, len } => (parts, len),
            _ => (Vec::new(), 0),
        };
        len += body.len() as u64;
        if len > MAX_CHUNKED_RESPONSE {
            return Err(format!(
                "chunked response on stream {sid} exceeds {MAX_CHUNKED_RESPONSE} bytes"
            ));
        }
        if !body.is_empty() {
            parts.push(body);
        }
        if header.flags & flags::REMOTE_CLOSED != 0 {
            call.state = CallState::Done(Ok(concat(parts, len)));
            call.wake();
        } else {
            call.state = CallState::Chunks { parts, len };
        }
        Ok(())
    }

    /// Wakes one sleeping caller other than `except`, to take over the reader.
    fn wake_next_leader(&self, except: u32) {
        if let Some(call) = self.calls.iter().find_map(|(sid, call)| {
            (*sid != except && call.cond.is_some() && !matches!(call.state, CallState::Done(_)))
                .then_some(call)
        }) {
            call.wake();
        }
    }
}

fn concat(parts: Vec<Bytes>, len: u64) -> Bytes {
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    for p in parts {
        out.extend_from_slice(&p);
    }
    Bytes::from(out)
}

struct Writer {
    stream: Stream,
    next_id: u32,
}

/// Writes with `MSG_NOSIGNAL`: an agent that went away is an `EPIPE` error, never a
/// `SIGPIPE` that would kill a C program hosting the client (`writev` would raise one).
struct NoSigPipe<'s>(&'s Stream);

impl io::Write for NoSigPipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        use nix::sys::socket::{MsgFlags, UnixAddr, sendmsg};
        use std::os::fd::{AsFd, AsRawFd};
        sendmsg::<UnixAddr>(
            self.0.as_fd().as_raw_fd(),
            bufs,
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(io::Error::from)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection to a vAccel RPC agent. `Send + Sync`: share it (e.g. in an `Arc`) between
/// threads; calls from several threads are in flight together. See the module docs.
pub struct Client {
    peer: String,
    writer: Mutex<Writer>,
    state: Mutex<State>,
    /// A handle used only to shut the socket down (waking a blocked reader or writer).
    control: Stream,
    mode: Mode,
    capabilities: Option<Capabilities>,
    /// Shared memory, when the connection may use it (unix socket, offered, not turned off).
    shm: Option<Mutex<ClientShm>>,
    /// Argument buffers attached, when the agent takes them.
    buffers: Option<Mutex<Buffers>>,
}

/// The arguments a `Genop` names in argument buffers (`Client::shared_args`).
#[derive(Default)]
struct SharedArgIndices {
    /// Read arguments sent without their bytes.
    read: Vec<usize>,
    /// Write arguments sent without their bytes, whose outputs the agent writes in place.
    write: Vec<usize>,
    /// The `vaccel-rs-shm-args` value.
    value: String,
}

/// The [`SharedBuffer`]s attached to the connection as regions 1 to `regions - 1`.
struct Buffers {
    /// Regions the agent allows (region 0 is the message memory).
    regions: u32,
    /// `(buffer id, region)` attached.
    attached: Vec<(u64, u32)>,
    /// Buffers whose attach the agent refused: sent on the socket while they live.
    refused: Vec<u64>,
}

/// The connection's shared memory.
struct ClientShm {
    /// The most the agent lets the connection attach.
    max: u64,
    /// What is attached.
    map: Option<SharedMemory>,
    /// The agent refused an attach: the socket only from then on.
    refused: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .field("mode", &self.mode)
            .field("capabilities", &self.capabilities)
            .field("shared_memory", &self.shm.is_some())
            .field("broken", &self.is_broken())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Client {
    /// Connects to the agent at `addr` (`TCP_NODELAY` on TCP) and asks for its capabilities.
    pub fn connect(addr: &Address) -> Result<Client> {
        let stream = Stream::connect(addr).map_err(|e| {
            Error::io(
                format!("could not connect to the vAccel RPC agent at {addr}"),
                e,
            )
        })?;
        Client::from_stream(stream, addr.to_string())
    }

    /// A client over an already connected stream (`peer` names it in messages); asks for
    /// the agent's capabilities like [`Client::connect`].
    pub fn from_stream(stream: Stream, peer: impl Into<String>) -> Result<Client> {
        let peer = peer.into();
        let io_err = |e: io::Error| Error::io(format!("set up the connection to {peer}"), e);
        let read = stream.try_clone().map_err(io_err)?;
        let control = stream.try_clone().map_err(io_err)?;
        let mut client = Client {
            peer,
            writer: Mutex::new(Writer { stream, next_id: 1 }),
            state: Mutex::new(State {
                reader: Some(FrameReader::new(read)),
                calls: HashMap::new(),
                broken: None,
            }),
            control,
            mode: Mode::Plain {
                max_frame: UPSTREAM_MAX_MESSAGE,
            },
            capabilities: None,
            shm: None,
            buffers: None,
        };
        client.capabilities = client.query_capabilities()?;
        let shm_max = client
            .capabilities
            .as_ref()
            .map_or(0, |c| c.shared_memory_max);
        let shm_off = std::env::var(ENV_SHARED_MEMORY).is_ok_and(|v| v.trim() == "0");
        if shm_max > 0 && !shm_off && matches!(client.control, Stream::Unix(_)) {
            client.shm = Some(Mutex::new(ClientShm {
                max: shm_max,
                map: None,
                refused: false,
            }));
            let regions = client
                .capabilities
                .as_ref()
                .map_or(0, |c| c.shared_memory_regions);
            if regions > 1 {
                client.buffers = Some(Mutex::new(Buffers {
                    regions,
                    attached: Vec::new(),
                    refused: Vec::new(),
                }));
            }
        }
        client.mode = match &client.capabilities {
            Some(caps) => {
                let max_frame = match usize::try_from(caps.max_frame_size) {
                    Ok(0) => UPSTREAM_MAX_MESSAGE,
                    Ok(n) => n,
                    Err(_) => usize::MAX,
                };
                if caps.chunked {
                    Mode::Chunked {
                        chunk: CHUNK_SIZE.min(max_frame),
                        max_frame,
                        max_message: caps.max_message_size,
                    }
                } else {
                    Mode::Plain { max_frame }
                }
            }
            None => Mode::Plain {
                max_frame: UPSTREAM_MAX_MESSAGE,
            },
        };
        log::debug!(
            "[rpc] Connected to {} ({})",
            client.peer,
            match client.mode {
                Mode::Plain { .. } if client.capabilities.is_none() => "upstream agent",
                Mode::Plain { .. } => "plain calls",
                Mode::Chunked { .. } => "chunked calls",
            }
        );
        Ok(client)
    }

    /// `None` for an agent without our extensions (upstream's): an error status means "not
    /// supported"; only a broken connection is a failure.
    fn query_capabilities(&self) -> Result<Option<Capabilities>> {
        match self.call::<_, Capabilities>(
            SERVICE_EXT,
            "GetCapabilities",
            &CapabilitiesRequest {},
            &[],
        ) {
            Ok(caps) if caps.version >= 1 => Ok(Some(caps)),
            Ok(_) => Ok(None),
            Err(e) if self.is_broken() => Err(e),
            Err(e) => {
                log::debug!("[rpc] {} has no extensions ({e})", self.peer);
                Ok(None)
            }
        }
    }

    /// What the agent said it supports, or `None` for an upstream agent.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// Whether the agent speaks our extension protocol at all (answers `GetCapabilities`);
    /// each extension has its own test below.
    pub fn supports_extensions(&self) -> bool {
        self.capabilities.is_some()
    }

    /// Whether the agent rebuilds a directory tree from a `RegisterResource` marked
    /// `vaccel-rs-directory` (its `directory_resources`); without it names are flattened.
    pub fn directory_resources(&self) -> bool {
        self.capabilities
            .as_ref()
            .is_some_and(|c| c.directory_resources)
    }

    /// Whether the agent's `Genop` runs `op`, a `vaccel_op_type_t` value that upstream's agent
    /// refuses (NOOP, the TensorFlow, TensorFlow Lite and Torch ops), as its `genop_ops` say.
    pub fn genop_runs(&self, op: u8) -> bool {
        self.capabilities
            .as_ref()
            .is_some_and(|c| c.genop_ops.contains(&u32::from(op)))
    }

    /// Whether an IMAGE_DETECT `Genop` may carry a second write argument for the detection
    /// records (its `detection_records`); upstream's agent refuses two write arguments.
    pub fn detection_records(&self) -> bool {
        self.capabilities
            .as_ref()
            .is_some_and(|c| c.detection_records)
    }

    /// Whether the connection has failed: every call fails with `EIO`; make a new client.
    pub fn is_broken(&self) -> bool {
        lock(&self.state).broken.is_some()
    }

    /// Closes the connection: calls in flight and later ones fail with `EIO`. The agent
    /// releases what this connection owned.
    pub fn close(&self) {
        let mut st = lock(&self.state);
        self.fail(&mut st, "the client was closed".to_owned());
    }

    /// Marks the connection broken, wakes every caller and shuts the socket down.
    fn fail(&self, st: &mut State, reason: String) {
        if st.broken.is_none() {
            log::debug!("[rpc] Connection to {} ended: {reason}", self.peer);
            st.broken = Some(reason);
            let _ = self.control.shutdown();
        }
        for call in st.calls.values() {
            call.wake();
        }
    }

    fn broken_error(&self, reason: &str) -> Error {
        transport_error(format!(
            "connection to the vAccel RPC agent at {} is broken: {reason}",
            self.peer
        ))
    }

    /// Calls `service/method` with `req` and decodes the response as `Resp`. `metadata` is
    /// sent besides what the client adds itself.
    pub fn call<Req: Message, Resp: Message + Default>(
        &self,
        service: &str,
        method: &str,
        req: &Req,
        metadata: &[(&str, &str)],
    ) -> Result<Resp> {
        self.call_encoded(service, method, &Whole(req), metadata)
    }

    /// Calls `service/method` and returns the response's payload bytes.
    pub fn call_raw<Req: Message>(
        &self,
        service: &str,
        method: &str,
        req: &Req,
        metadata: &[(&str, &str)],
    ) -> Result<Bytes> {
        self.call_bytes(service, method, &Whole(req), metadata)
    }

    fn call_encoded<Resp: Message + Default>(
        &self,
        service: &str,
        method: &str,
        req: &impl Encode,
        metadata: &[(&str, &str)],
    ) -> Result<Resp> {
        let payload = self.call_bytes(service, method, req, metadata)?;
        Resp::decode(payload).map_err(|e| {
            conversion_error(format!(
                "malformed {method} response from the vAccel RPC agent at {}: {e}",
                self.peer
            ))
        })
    }

    fn call_bytes(
        &self,
        service: &str,
        method: &str,
        req: &impl Encode,
        metadata: &[(&str, &str)],
    ) -> Result<Bytes> {
        let msg_len = req.encoded_len();
        if msg_len >= SHARED_MEMORY_MIN
            && service == SERVICE
            && SHARED_MEMORY_METHODS.contains(&method)
            && let Some(shm) = &self.shm
            && let Ok(mut shm) = shm.try_lock()
            && let Some(result) = self.call_shared(&mut shm, service, method, req, metadata)
        {
            return result;
        }
        let mut meta: Vec<(&str, &str)> = metadata.to_vec();
        if matches!(self.mode, Mode::Chunked { .. }) {
            meta.push((META_ACCEPT_CHUNKS, ACCEPT_CHUNKS_VALUE));
        }
        let env_len = envelope_len(service, method, msg_len, &meta);
        let sid = match self.mode {
            Mode::Plain { max_frame } => {
                if env_len > max_frame {
                    return Err(Error::invalid(format!(
                        "{method}: the request is {env_len} bytes, more than the {max_frame} \
                         bytes the agent at {} accepts in one message{}",
                        self.peer,
                        if self.capabilities.is_none() {
                            " (an upstream agent without chunking)"
                        } else {
                            ""
                        }
                    )));
                }
                self.send_plain(service, method, req, &meta)?
            }
            Mode::Chunked { max_frame, .. } if env_len <= max_frame => {
                self.send_plain(service, method, req, &meta)?
            }
            Mode::Chunked {
                chunk, max_message, ..
            } => {
                if msg_len as u64 > max_message {
                    return Err(Error::invalid(format!(
                        "{method}: the request is {msg_len} bytes, more than the {max_message} \
                         bytes the agent at {} accepts",
                        self.peer
                    )));
                }
                self.send_chunked(service, method, req, &meta, chunk)?
            }
        };
        self.response(sid)
    }

    /// The payload of the response to `sid`, or the error its status carries.
    fn response(&self, sid: u32) -> Result<Bytes> {
        let body = self.wait(sid)?;
        let resp = decode_response(body).map_err(|e| {
            transport_error(format!(
                "malformed response envelope from the vAccel RPC agent at {}: {e}",
                self.peer
            ))
        })?;
        match &resp.status {
            Some(st) if st.code != code::OK => Err(status_to_error(st)),
            _ => Ok(resp.payload),
        }
    }

    /// A call whose message goes through the connection's shared memory, attached (or grown)
    /// first if need be. `None`: it cannot (too large, the agent refused memory): send it on
    /// the socket.
    fn call_shared(
        &self,
        shm: &mut ClientShm,
        service: &str,
        method: &str,
        req: &impl Encode,
        metadata: &[(&str, &str)],
    ) -> Option<Result<Bytes>> {
        // Room for the message and the offset that aligns it (`write_message`).
        let msg_len = req.encoded_len().checked_add(crate::shm::MESSAGE_SLACK)?;
        if shm.refused || msg_len as u64 > shm.max {
            return None;
        }
        if shm.map.as_ref().is_none_or(|m| m.len() < msg_len) {
            // Some room to grow, so that slightly larger messages reuse it.
            let want = msg_len.saturating_add(msg_len / 8);
            let size = want
                .div_ceil(SHARED_MEMORY_GRANULE)
                .saturating_mul(SHARED_MEMORY_GRANULE)
                .min(usize::try_from(shm.max).unwrap_or(usize::MAX))
                .max(msg_len);
            // The old memory goes first: the agent holds one message memory (region 0) per
            // connection.
            shm.map = None;
            let created = SharedMemory::create(size)
                .map_err(|e| Error::backend("rpc", e.code(), e.to_string()));
            match created
                .and_then(|(map, fd)| self.attach_fd(fd.as_fd(), size as u64, 0).map(|()| map))
            {
                Ok(map) => shm.map = Some(map),
                Err(e) if self.is_broken() => return Some(Err(e)),
                Err(e) => {
                    log::debug!(
                        "[rpc] no shared memory with {} ({e}); using the socket",
                        self.peer
                    );
                    shm.refused = true;
                    return None;
                }
            }
        }
        let map = shm.map.as_mut()?;
        let mut pieces = Pieces::new();
        req.encode(&mut pieces);
        let (offset, written) = map.write_message(&pieces.slices())?;
        let region = format!("{offset}:{written}");
        let mut meta: Vec<(&str, &str)> = metadata.to_vec();
        meta.push((META_SHARED_MEMORY, &region));
        if matches!(self.mode, Mode::Chunked { .. }) {
            meta.push((META_ACCEPT_CHUNKS, ACCEPT_CHUNKS_VALUE));
        }
        Some(
            self.send_plain(service, method, &Whole(&pv::empty::Empty {}), &meta)
                .and_then(|sid| self.response(sid)),
        )
    }

    /// Attaches `size` bytes of the memfd `fd` to the connection as `region`
    /// (`AttachSharedMemory`, the descriptor passed with `SCM_RIGHTS`).
    fn attach_fd(&self, fd: std::os::fd::BorrowedFd<'_>, size: u64, region: u32) -> Result<()> {
        let body = encode_request(
            SERVICE_EXT,
            "AttachSharedMemory",
            &AttachSharedMemoryRequest { size, region },
            &[],
        );
        let length = u32::try_from(body.len())
            .map_err(|_| Error::invalid("attach request too large".to_owned()))?;
        let sid = self.start_call(|stream, sid| {
            let Stream::Unix(socket) = stream.0 else {
                return Err(io::Error::other("shared memory needs a unix socket"));
            };
            let head = crate::frame::Header {
                length,
                stream_id: sid,
                kind: kind::REQUEST,
                flags: 0,
            }
            .encode();
            log::trace!(
                "[rpc] stream {sid}: AttachSharedMemory of {size} bytes as region {region}"
            );
            crate::shm::send_with_fd(socket.as_fd(), &[&head, &body], fd)
        })?;
        self.response(sid)?;
        log::debug!(
            "[rpc] attached {size} bytes of shared memory to the connection to {} as region \
             {region}",
            self.peer
        );
        Ok(())
    }

    /// Where the arguments that lie in [`SharedBuffer`]s are, for `vaccel-rs-shm-args`
    /// (`[w]<argument>=<region>:<offset>:<length>,...`), attaching buffers the connection has
    /// not attached yet: the read and the write arguments named, and the value; `None` when no
    /// argument goes that way. A write argument sharing bytes with another argument named is
    /// sent as usual (the agent lends written bytes exclusively).
    fn shared_args(
        &self,
        read: &[GenopArg<'_>],
        write: &[GenopArg<'_>],
    ) -> Option<SharedArgIndices> {
        let buffers = self.buffers.as_ref()?;
        // (written, index, where, length); argument 0 is the op type.
        let mut found: Vec<(bool, usize, BufferPlace, u64)> = Vec::new();
        let args = read.iter().enumerate().skip(1).map(|(i, a)| (false, i, a));
        for (written, i, arg) in args.chain(write.iter().enumerate().map(|(i, a)| (true, i, a))) {
            if arg.buf.len() >= SHARED_MEMORY_MIN
                && let Some(place) = SharedBuffer::find(arg.buf)
            {
                found.push((written, i, place, arg.buf.len() as u64));
            }
        }
        let shares_bytes = |(_, _, p, len): &(bool, usize, BufferPlace, u64), k: usize| {
            found.iter().enumerate().any(|(j, (_, _, q, q_len))| {
                j != k && p.id == q.id && crate::shm::overlaps(p.offset, *len, q.offset, *q_len)
            })
        };
        let mut table = None;
        let mut named = SharedArgIndices::default();
        for (k, arg) in found.iter().enumerate() {
            let (written, i, place, len) = arg;
            if *written && shares_bytes(arg, k) {
                continue;
            }
            let table = table.get_or_insert_with(|| {
                let mut t = lock(buffers);
                self.detach_dead(&mut t);
                t
            });
            let Some(region) = self.buffer_region(table, place) else {
                continue;
            };
            if !named.value.is_empty() {
                named.value.push(',');
            }
            let w = if *written { "w" } else { "" };
            named
                .value
                .push_str(&format!("{w}{i}={region}:{}:{len}", place.offset));
            if *written {
                named.write.push(*i);
            } else {
                named.read.push(*i);
            }
        }
        (!named.value.is_empty()).then_some(named)
    }

    /// Detaches the buffers that were dropped since the last call that used buffers.
    fn detach_dead(&self, table: &mut Buffers) {
        table.refused.retain(|&id| SharedBuffer::is_live(id));
        let mut i = 0;
        while let Some(&(id, region)) = table.attached.get(i) {
            if SharedBuffer::is_live(id) {
                i += 1;
                continue;
            }
            let sent = self
                .call::<_, pv::rs::ext::DetachSharedMemoryResponse>(
                    SERVICE_EXT,
                    "DetachSharedMemory",
                    &DetachSharedMemoryRequest { region },
                    &[],
                )
                .map(drop);
            match sent {
                Ok(()) => {}
                // The agent has no such region (nothing to give back), or the connection is
                // gone (and its regions with it): either way the slot is free.
                Err(e) => log::debug!("[rpc] detaching region {region}: {e}"),
            }
            table.attached.swap_remove(i);
        }
    }

    /// The region `place`'s buffer is attached as, attaching it if it is not yet; `None`
    /// when there is no free region or the agent refuses it.
    fn buffer_region(&self, table: &mut Buffers, place: &BufferPlace) -> Option<u32> {
        if let Some(&(_, region)) = table.attached.iter().find(|(id, _)| *id == place.id) {
            return Some(region);
        }
        if table.refused.contains(&place.id) {
            return None;
        }
        let region = (1..table.regions).find(|r| table.attached.iter().all(|(_, a)| a != r))?;
        let allocated = place
            .allocate()
            .map_err(|e| Error::backend("rpc", e.code(), e.to_string()));
        match allocated.and_then(|()| self.attach_fd(place.fd.as_fd(), place.size, region)) {
            Ok(()) => {
                table.attached.push((place.id, region));
                Some(region)
            }
            Err(e) => {
                log::debug!("[rpc] argument buffer not attached ({e}); using the socket");
                table.refused.push(place.id);
                None
            }
        }
    }

    /// Registers a call and writes its first frame with `write`, under the write lock.
    fn start_call(
        &self,
        write: impl FnOnce(&mut NoSigPipe<'_>, u32) -> io::Result<()>,
    ) -> Result<u32> {
        let mut w = lock(&self.writer);
        let sid = {
            let mut st = lock(&self.state);
            if let Some(reason) = &st.broken {
                return Err(self.broken_error(reason));
            }
            // Odd ids, +2 per call; after 2^31 calls they wrap, skipping any still in flight.
            let mut sid = w.next_id;
            while st.calls.contains_key(&sid) {
                sid = sid.wrapping_add(2);
            }
            w.next_id = sid.wrapping_add(2);
            st.calls.insert(
                sid,
                Call {
                    state: CallState::Waiting,
                    cond: None,
                },
            );
            sid
        };
        if let Err(e) = write(&mut NoSigPipe(&w.stream), sid) {
            drop(w);
            return Err(self.abandon(sid, format!("sending a request: {e}")));
        }
        Ok(sid)
    }

    /// A write failed: the stream is out of step, so the connection is broken.
    fn abandon(&self, sid: u32, reason: String) -> Error {
        let mut st = lock(&self.state);
        st.calls.remove(&sid);
        self.fail(&mut st, reason);
        let reason = st.broken.clone().unwrap_or_default();
        self.broken_error(&reason)
    }

    /// One REQUEST frame: the envelope around the message's pieces, in one `writev`.
    fn send_plain(
        &self,
        service: &str,
        method: &str,
        req: &impl Encode,
        meta: &[(&str, &str)],
    ) -> Result<u32> {
        let mut pieces = Pieces::new();
        req.encode(&mut pieces);
        let (head, tail) = envelope(service, method, pieces.len(), meta);
        let mut parts = Vec::with_capacity(2 * pieces.borrowed.len() + 3);
        parts.push(&head[..]);
        parts.extend(pieces.slices());
        parts.push(&tail[..]);
        self.start_call(|stream, sid| {
            log::trace!(
                "[rpc] stream {sid}: {method} request of {} bytes",
                head.len() + pieces.len() + tail.len()
            );
            write_frame(stream, sid, kind::REQUEST, 0, &parts)
        })
    }

    /// REQUEST (`REMOTE_OPEN`, metadata with the total) then DATA frames of at most `chunk`
    /// bytes, the last `REMOTE_CLOSED`. The write lock is released between frames so other
    /// calls interleave with a long upload.
    fn send_chunked(
        &self,
        service: &str,
        method: &str,
        req: &impl Encode,
        meta: &[(&str, &str)],
        chunk: usize,
    ) -> Result<u32> {
        let mut pieces = Pieces::new();
        req.encode(&mut pieces);
        let total = pieces.len();
        let total_text = total.to_string();
        let mut meta = meta.to_vec();
        meta.push((META_CHUNKED, &total_text));
        let head = encode_request(service, method, &pv::empty::Empty {}, &meta);
        let sid = self.start_call(|stream, sid| {
            log::trace!("[rpc] stream {sid}: chunked {method} request of {total} bytes");
            write_frame(stream, sid, kind::REQUEST, flags::REMOTE_OPEN, &[&head])
        })?;
        let frames = split_frames(&pieces.slices(), chunk);
        let last = frames.len().saturating_sub(1);
        for (i, parts) in frames.iter().enumerate() {
            let w = lock(&self.writer);
            let broken = lock(&self.state).broken.clone();
            if let Some(reason) = broken {
                drop(w);
                lock(&self.state).calls.remove(&sid);
                return Err(self.broken_error(&reason));
            }
            let f = if i == last { flags::REMOTE_CLOSED } else { 0 };
            if let Err(e) = write_frame(&mut NoSigPipe(&w.stream), sid, kind::DATA, f, parts) {
                drop(w);
                return Err(self.abandon(sid, format!("sending a request chunk: {e}")));
            }
        }
        Ok(sid)
    }

    /// Waits for the response of `sid`, reading frames as the leader when nobody else is.
    fn wait(&self, sid: u32) -> Result<Bytes> {
        let vanished = || transport_error(format!("call on stream {sid} vanished"));
        let mut st = lock(&self.state);
        loop {
            match st.calls.get(&sid) {
                None => return Err(vanished()),
                Some(call) if matches!(call.state, CallState::Done(_)) => {
                    return match st.calls.remove(&sid).map(|c| c.state) {
                        Some(CallState::Done(result)) => result,
                        _ => Err(vanished()),
                    };
                }
                Some(_) => {}
            }
            if let Some(reason) = st.broken.clone() {
                st.calls.remove(&sid);
                return Err(self.broken_error(&reason));
            }
            if let Some(mut reader) = st.reader.take() {
                drop(st);
                st = self.lead(&mut reader, sid);
                st.reader = Some(reader);
                st.wake_next_leader(sid);
                continue;
            }
            let cond = match st.calls.get_mut(&sid) {
                Some(call) => Arc::clone(call.cond.get_or_insert_with(|| Arc::new(Condvar::new()))),
                None => return Err(vanished()),
            };
            st = cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Reads frames, parking each in its call, until the call `sid` is answered or the
    /// connection breaks. Returns with the state locked.
    fn lead<'s>(&'s self, reader: &mut FrameReader<Stream>, sid: u32) -> MutexGuard<'s, State> {
        loop {
            let frame = reader.read_frame(DEFAULT_MAX_FRAME);
            let mut st = lock(&self.state);
            match frame {
                Ok(frame) => {
                    if let Err(reason) = st.deliver(frame) {
                        self.fail(&mut st, reason);
                    }
                }
                Err(e) => {
                    let reason = match e {
                        FrameError::Closed => "the agent closed the connection".to_owned(),
                        FrameError::Truncated => {
                            "the agent closed the connection inside a frame".to_owned()
                        }
                        FrameError::TooLarge {
                            header,
                            length,
                            max,
                        } => format!(
                            "the agent sent a frame of {length} bytes on stream {}, more than \
                             the {max} accepted",
                            header.stream_id
                        ),
                        FrameError::Io(e) => format!("reading from the agent: {e}"),
                    };
                    self.fail(&mut st, reason);
                }
            }
            let done = st
                .calls
                .get(&sid)
                .is_none_or(|c| matches!(c.state, CallState::Done(_)));
            if done || st.broken.is_some() {
                return st;
            }
        }
    }

    /// `CreateSession`: the agent's id of a new session.
    pub fn create_session(&self, flags: u32) -> Result<Id> {
        let resp: pv::session::CreateResponse = self.call(
            SERVICE,
            "CreateSession",
            &pv::session::CreateRequest { flags },
            &[],
        )?;
        Ok(resp.session_id)
    }

    /// `UpdateSession`: new hint flags.
    pub fn update_session(&self, session_id: Id, flags: u32) -> Result<()> {
        let _: pv::empty::Empty = self.call(
            SERVICE,
            "UpdateSession",
            &pv::session::UpdateRequest { session_id, flags },
            &[],
        )?;
        Ok(())
    }

    /// `DestroySession`.
    pub fn destroy_session(&self, session_id: Id) -> Result<()> {
        let _: pv::empty::Empty = self.call(
            SERVICE,
            "DestroySession",
            &pv::session::DestroyRequest { session_id },
            &[],
        )?;
        Ok(())
    }

    /// `RegisterResource`: the agent's id of the resource. `directory` marks the blobs as one
    /// tree (`vaccel-rs-directory`), sent only to an agent with [`Client::directory_resources`]
    /// (the caller flattens the names for the others).
    pub fn register_resource(
        &self,
        req: &pv::resource::RegisterRequest,
        directory: bool,
    ) -> Result<Id> {
        let meta: &[(&str, &str)] = if directory && self.directory_resources() {
            &[(META_DIRECTORY, "1")]
        } else {
            &[]
        };
        let resp: pv::resource::RegisterResponse =
            self.call_encoded(SERVICE, "RegisterResource", &RegisterRef(req), meta)?;
        Ok(resp.resource_id)
    }

    /// `UnregisterResource`.
    pub fn unregister_resource(&self, resource_id: Id, session_id: Id) -> Result<()> {
        let _: pv::empty::Empty = self.call(
            SERVICE,
            "UnregisterResource",
            &pv::resource::UnregisterRequest {
                resource_id,
                session_id,
            },
            &[],
        )?;
        Ok(())
    }

    /// `SyncResource`: the agent's blobs (data and size).
    pub fn sync_resource(&self, resource_id: Id) -> Result<Vec<pv::resource::Blob>> {
        let resp: pv::resource::SyncResponse = self.call(
            SERVICE,
            "SyncResource",
            &pv::resource::SyncRequest { resource_id },
            &[],
        )?;
        Ok(resp.blobs)
    }

    /// `ImageClassification`: the agent's tags buffer (upstream: always 1024 bytes).
    pub fn image_classification(&self, session_id: Id, image: &[u8]) -> Result<Bytes> {
        let resp: pv::image::Response = self.call(
            SERVICE,
            "ImageClassification",
            &pv::image::Request {
                session_id,
                image: Bytes::copy_from_slice(image),
            },
            &[],
        )?;
        Ok(resp.tags)
    }

    /// `TensorflowModelLoad`.
    pub fn tf_model_load(&self, session_id: Id, model_id: Id) -> Result<pv::tf::ModelLoadResponse> {
        self.call(
            SERVICE,
            "TensorflowModelLoad",
            &pv::tf::ModelLoadRequest {
                session_id,
                model_id,
            },
            &[],
        )
    }

    /// `TensorflowModelUnload`.
    pub fn tf_model_unload(
        &self,
        session_id: Id,
        model_id: Id,
    ) -> Result<pv::tf::ModelUnloadResponse> {
        self.call(
            SERVICE,
            "TensorflowModelUnload",
            &pv::tf::ModelUnloadRequest {
                session_id,
                model_id,
            },
            &[],
        )
    }

    /// `TensorflowModelRun`.
    pub fn tf_model_run(&self, req: &pv::tf::ModelRunRequest) -> Result<pv::tf::ModelRunResponse> {
        self.call(SERVICE, "TensorflowModelRun", req, &[])
    }

    /// `TensorflowLiteModelLoad`.
    pub fn tflite_model_load(&self, session_id: Id, model_id: Id) -> Result<()> {
        let _: pv::empty::Empty = self.call(
            SERVICE,
            "TensorflowLiteModelLoad",
            &pv::tflite::ModelLoadRequest {
                session_id,
                model_id,
            },
            &[],
        )?;
        Ok(())
    }

    /// `TensorflowLiteModelUnload`.
    pub fn tflite_model_unload(&self, session_id: Id, model_id: Id) -> Result<()> {
        let _: pv::empty::Empty = self.call(
            SERVICE,
            "TensorflowLiteModelUnload",
            &pv::tflite::ModelUnloadRequest {
                session_id,
                model_id,
            },
            &[],
        )?;
        Ok(())
    }

    /// `TensorflowLiteModelRun` (tensor types are vAccel's numeric values).
    pub fn tflite_model_run(
        &self,
        req: &pv::tflite::ModelRunRequest,
    ) -> Result<pv::tflite::ModelRunResponse> {
        self.call(SERVICE, "TensorflowLiteModelRun", req, &[])
    }

    /// `TorchModelLoad`.
    pub fn torch_model_load(&self, session_id: Id, model_id: Id) -> Result<()> {
        let _: pv::empty::Empty = self.call(
            SERVICE,
            "TorchModelLoad",
            &pv::torch::ModelLoadRequest {
                session_id,
                model_id,
            },
            &[],
        )?;
        Ok(())
    }

    /// `TorchModelRun`.
    pub fn torch_model_run(
        &self,
        req: &pv::torch::ModelRunRequest,
    ) -> Result<pv::torch::ModelRunResponse> {
        self.call(SERVICE, "TorchModelRun", req, &[])
    }

    /// `Genop`: `read[0]` is the UINT8 op type. Write arguments are sent with their current
    /// bytes (as upstream); the agent's write arguments come back, in order. A write argument
    /// in a [`SharedBuffer`] (named to the agent, see the module docs) comes back without
    /// bytes: the agent wrote its output into the buffer.
    pub fn genop(
        &self,
        session_id: Id,
        read: &[GenopArg<'_>],
        write: &[GenopArg<'_>],
    ) -> Result<Vec<pv::genop::Arg>> {
        if let Some(arg) = read
            .iter()
            .chain(write)
            .find(|a| u32::try_from(a.buf.len()).is_err())
        {
            return Err(Error::invalid(format!(
                "genop: an argument of {} bytes does not fit the wire's 32-bit size",
                arg.buf.len()
            )));
        }
        // Arguments in argument buffers travel as their region, without their bytes.
        let shared = self.shared_args(read, write).unwrap_or_default();
        let meta = [(META_SHARED_ARGS, shared.value.as_str())];
        let resp: pv::genop::Response = self.call_encoded(
            SERVICE,
            "Genop",
            &GenopRequestRef {
                session_id,
                read,
                write,
                shared: (&shared.read, &shared.write),
            },
            if shared.value.is_empty() { &[] } else { &meta },
        )?;
        Ok(resp.write_args)
    }

    /// `GetProfiler`: the session's profiler on the agent (`None` when profiling is off).
    pub fn get_profiler(&self, session_id: Id) -> Result<Option<pv::profiling::Profiler>> {
        let resp: pv::profiling::Response = self.call(
            SERVICE,
            "GetProfiler",
            &pv::profiling::Request { session_id },
            &[],
        )?;
        Ok(resp.profiler)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.control.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::thread;

    use super::*;
    use crate::frame::Header;
    use crate::message::{decode_request, encode_response_err, encode_response_ok};
    use crate::proto::grpc;
    use crate::status::{ffi_status, invalid_argument, not_found};

    /// The agent side of a socketpair, driven by a test script.
    struct Peer {
        reader: FrameReader<UnixStream>,
        writer: UnixStream,
    }

    impl Peer {
        fn new(stream: UnixStream) -> Peer {
            Peer {
                writer: stream.try_clone().unwrap(),
                reader: FrameReader::new(stream),
            }
        }

        fn frame(&mut self) -> Frame {
            self.reader.read_frame(DEFAULT_MAX_FRAME).unwrap()
        }

        fn recv(&mut self) -> (Header, grpc::Request) {
            let f = self.frame();
            assert_eq!(f.header.kind, kind::REQUEST);
            (f.header, decode_request(f.body).unwrap())
        }

        fn send(&mut self, sid: u32, kind: u8, flags: u8, body: &[u8]) {
            write_frame(&mut self.writer, sid, kind, flags, &[body]).unwrap();
        }

        fn reply<M: Message>(&mut self, sid: u32, msg: &M) {
            self.send(sid, kind::RESPONSE, 0, &encode_response_ok(msg));
        }

        fn reply_status(&mut self, sid: u32, st: &grpc::Status) {
            self.send(sid, kind::RESPONSE, 0, &encode_response_err(st));
        }

        fn raw(&mut self, bytes: &[u8]) {
            use std::io::Write;
            self.writer.write_all(bytes).unwrap();
        }
    }

    /// An agent with chunking and a frame limit of one chunk, so large calls are chunked.
    fn chunked_caps() -> Capabilities {
        Capabilities {
            version: 1,
            max_frame_size: CHUNK_SIZE as u64,
            max_message_size: 1 << 34,
            chunked: true,
            ..Default::default()
        }
    }

    /// A client connected to a scripted agent that first answers `GetCapabilities` with
    /// `caps`, or as an upstream agent does when `None`.
    fn serve(
        caps: Option<Capabilities>,
        script: impl FnOnce(Peer) + Send + 'static,
    ) -> (Client, thread::JoinHandle<()>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let agent = thread::spawn(move || {
            let mut peer = Peer::new(theirs);
            let (h, req) = peer.recv();
            assert_eq!(
                (req.service.as_str(), req.method.as_str()),
                (SERVICE_EXT, "GetCapabilities")
            );
            match caps {
                Some(c) => peer.reply(h.stream_id, &c),
                // Upstream's sync server: INVALID_ARGUMENT "<path> does not exist", no detail.
                None => peer.reply_status(
                    h.stream_id,
                    &grpc::Status {
                        code: code::INVALID_ARGUMENT,
                        message: format!("/{SERVICE_EXT}/GetCapabilities does not exist"),
                        details: vec![],
                    },
                ),
            }
            script(peer);
        });
        let client = Client::from_stream(Stream::Unix(ours), "fake agent").unwrap();
        (client, agent)
    }

    fn flags_of(req: &grpc::Request) -> u32 {
        pv::session::CreateRequest::decode(req.payload.clone())
            .unwrap()
            .flags
    }

    #[test]
    fn clients_are_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Client>();
    }

    #[test]
    fn accept_chunks_value_is_the_response_frame_limit() {
        assert_eq!(ACCEPT_CHUNKS_VALUE, DEFAULT_MAX_FRAME.to_string());
    }

    #[test]
    fn envelope_len_matches_the_encoding() {
        for (service, method, meta) in [
            (SERVICE, "CreateSession", vec![]),
            ("", "", vec![("k", "")]),
            (
                SERVICE_EXT,
                "GetCapabilities",
                vec![(META_ACCEPT_CHUNKS, "8388608"), (META_DIRECTORY, "1")],
            ),
        ] {
            for len in [0usize, 1, 127, 128, 300, 70_000] {
                let msg = pv::image::Request {
                    session_id: 0,
                    image: Bytes::from(vec![1u8; len]),
                };
                let body = encode_request(service, method, &msg, &meta);
                assert_eq!(
                    envelope_len(service, method, msg.encoded_len(), &meta),
                    body.len()
                );
            }
        }
    }

    #[test]
    fn borrowed_genop_request_encodes_like_prost() {
        let big = vec![7u8; 300];
        let image = [1u8, 2, 3];
        let read = [
            GenopArg::new(ArgType::Uint8, &[3]),
            GenopArg::new(ArgType::Buffer, &image),
            GenopArg {
                arg_type: ArgType::Custom.value(),
                custom_type_id: 77,
                buf: &big,
            },
            GenopArg::new(ArgType::Raw, &[]),
        ];
        let out = [0u8; 200];
        let write = [GenopArg::new(ArgType::UcharArray, &out)];
        let owned = |a: &GenopArg<'_>| pv::genop::Arg {
            buf: Bytes::copy_from_slice(a.buf),
            size: a.buf.len() as u32,
            arg_type: a.arg_type as i32,
            custom_type_id: a.custom_type_id,
            parts: 0,
            part_no: 0,
        };
        let huge = vec![9u8; BORROW_MIN + 1];
        let mut read = read.to_vec();
        read.push(GenopArg::new(ArgType::Buffer, &huge));
        for session_id in [0, 1, 300, i64::MAX, -1] {
            let ours = GenopRequestRef {
                session_id,
                read: &read,
                write: &write,
                shared: (&[], &[]),
            };
            let prost = pv::genop::Request {
                session_id,
                read_args: read.iter().map(owned).collect(),
                write_args: write.iter().map(owned).collect(),
            };
            assert_eq!(flat(&ours), prost.encode_to_vec());
            assert_eq!(ours.encoded_len(), prost.encoded_len());
        }
        // The large argument is borrowed, not copied.
        let ours = GenopRequestRef {
            session_id: 1,
            read: &read,
            write: &write,
            shared: (&[], &[]),
        };
        let mut pieces = Pieces::new();
        ours.encode(&mut pieces);
        assert_eq!(pieces.borrowed.len(), 1);
        assert!(std::ptr::eq(pieces.borrowed[0].1, &huge[..]));
        // The upstream capture of a NOOP genop (spec §13).
        let noop = GenopRequestRef {
            session_id: 1,
            read: &[GenopArg::new(ArgType::Uint8, &[0])],
            write: &[],
            shared: (&[], &[]),
        };
        assert_eq!(
            flat(&noop),
            [
                0x08, 0x01, 0x12, 0x07, 0x0a, 0x01, 0x00, 0x10, 0x01, 0x18, 0x09
            ]
        );
    }

    fn flat(e: &impl Encode) -> Vec<u8> {
        let mut pieces = Pieces::new();
        e.encode(&mut pieces);
        assert_eq!(pieces.len(), e.encoded_len());
        pieces.slices().concat()
    }

    #[test]
    fn borrowed_register_request_encodes_like_prost() {
        let big = Bytes::from(vec![4u8; BORROW_MIN * 2]);
        let blob = |ty: pv::resource::BlobType, name: &str, data: Bytes| pv::resource::Blob {
            r#type: ty as i32,
            name: name.into(),
            size: data.len() as u32,
            data,
        };
        let requests = [
            pv::resource::RegisterRequest::default(),
            pv::resource::RegisterRequest {
                paths: vec!["https://x/m.pt".into(), String::new()],
                resource_type: 2,
                session_id: 7,
                ..Default::default()
            },
            pv::resource::RegisterRequest {
                blobs: vec![
                    blob(pv::resource::BlobType::File, "", Bytes::new()),
                    blob(pv::resource::BlobType::Mapped, "a/b.bin", big.clone()),
                    blob(
                        pv::resource::BlobType::Buffer,
                        "c",
                        Bytes::from_static(b"xyz"),
                    ),
                    blob(pv::resource::BlobType::Buffer, "d", big.clone()),
                ],
                resource_type: 1,
                resource_id: 300,
                session_id: i64::MAX,
                ..Default::default()
            },
        ];
        for req in &requests {
            assert_eq!(flat(&RegisterRef(req)), req.encode_to_vec());
        }
        let mut pieces = Pieces::new();
        let r = RegisterRef(&requests[2]);
        r.encode(&mut pieces);
        assert_eq!(pieces.borrowed.len(), 2, "both large blobs are borrowed");
    }

    #[test]
    fn envelope_and_pieces_match_encode_request() {
        let big = vec![1u8; BORROW_MIN];
        let args = [
            GenopArg::new(ArgType::Uint8, &[3]),
            GenopArg::new(ArgType::Buffer, &big),
        ];
        let req = GenopRequestRef {
            session_id: 3,
            read: &args,
            write: &[],
            shared: (&[], &[]),
        };
        let owned = pv::genop::Request::decode(Bytes::from(flat(&req))).unwrap();
        let meta = [(META_ACCEPT_CHUNKS, ACCEPT_CHUNKS_VALUE), ("k", "")];
        for meta in [&meta[..], &[]] {
            let mut pieces = Pieces::new();
            req.encode(&mut pieces);
            let (head, tail) = envelope(SERVICE, "Genop", pieces.len(), meta);
            let mut wire = head;
            wire.extend(pieces.slices().concat());
            wire.extend(tail);
            assert_eq!(wire, encode_request(SERVICE, "Genop", &owned, meta));
        }
        let (head, tail) = envelope(SERVICE_EXT, "GetCapabilities", 0, &[]);
        assert_eq!(
            [head, tail].concat(),
            encode_request(SERVICE_EXT, "GetCapabilities", &CapabilitiesRequest {}, &[])
        );
    }

    #[test]
    fn messages_split_into_frames_without_copies() {
        let (a, b, c) = ([1u8; 5], [2u8; 7], [3u8; 1]);
        let frames = split_frames(&[&a, &b, &c], 4);
        let sizes: Vec<Vec<usize>> = frames
            .iter()
            .map(|f| f.iter().map(|s| s.len()).collect())
            .collect();
        assert_eq!(sizes, [vec![4], vec![1, 3], vec![4], vec![1]]);
        assert_eq!(frames.concat().concat(), [&a[..], &b, &c].concat());
        assert!(split_frames(&[], 4).is_empty());
        assert_eq!(split_frames(&[&a], 5).len(), 1);
    }

    #[test]
    fn pipelined_calls_get_their_own_answers_out_of_order() {
        const THREADS: u32 = 8;
        const ROUNDS: u32 = 4;
        let (client, agent) = serve(None, |mut peer| {
            let mut seen = Vec::new();
            for _ in 0..ROUNDS {
                // Every call of the round is in flight before any answer goes out.
                let mut round: Vec<(u32, u32)> = (0..THREADS)
                    .map(|_| {
                        let (h, req) = peer.recv();
                        assert!(req.metadata.is_empty(), "upstream agents get no metadata");
                        (h.stream_id, flags_of(&req))
                    })
                    .collect();
                seen.extend(round.iter().map(|(sid, _)| *sid));
                round.reverse();
                round.rotate_left(3);
                for (sid, flags) in round {
                    peer.reply(
                        sid,
                        &pv::session::CreateResponse {
                            session_id: i64::from(flags) * 10 + 1,
                        },
                    );
                }
            }
            assert!(seen.iter().all(|s| s % 2 == 1), "odd stream ids: {seen:?}");
            let mut unique = seen.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), seen.len(), "stream ids reused: {seen:?}");
        });
        assert!(client.capabilities().is_none());
        let client = Arc::new(client);
        for round in 0..ROUNDS {
            thread::scope(|s| {
                for i in 0..THREADS {
                    let client = &client;
                    s.spawn(move || {
                        let flags = round * 100 + i;
                        assert_eq!(
                            client.create_session(flags).unwrap(),
                            i64::from(flags) * 10 + 1
                        );
                    });
                }
            });
        }
        agent.join().unwrap();
    }

    #[test]
    fn error_statuses_keep_their_codes() {
        let codes = ErrorCode::ALL;
        let (client, agent) = serve(None, move |mut peer| {
            for c in codes {
                let (h, _) = peer.recv();
                peer.reply_status(h.stream_id, &ffi_status(c, Some("boom")));
            }
            let (h, _) = peer.recv();
            peer.reply_status(h.stream_id, &ffi_status(ErrorCode::ENOTSUP, None));
            let (h, _) = peer.recv();
            peer.reply_status(h.stream_id, &not_found("Unknown session 9"));
            let (h, _) = peer.recv();
            peer.reply_status(h.stream_id, &invalid_argument("bad"));
            // Statuses without details, as upstream sends for unknown ids and methods.
            for (c, _) in [
                (code::NOT_FOUND, ErrorCode::ENOENT),
                (code::INVALID_ARGUMENT, ErrorCode::EINVAL),
                (code::UNIMPLEMENTED, ErrorCode::ENOTSUP),
                (code::INTERNAL, ErrorCode::EIO),
            ] {
                let (h, _) = peer.recv();
                peer.reply_status(
                    h.stream_id,
                    &grpc::Status {
                        code: c,
                        message: "plain".into(),
                        details: vec![],
                    },
                );
            }
        });
        for c in ErrorCode::ALL {
            let e = client.create_session(0).unwrap_err();
            assert_eq!(e.code(), c, "{e}");
            assert!(e.to_string().contains("boom"), "{e}");
        }
        assert_eq!(
            client.destroy_session(1).unwrap_err().code(),
            ErrorCode::ENOTSUP
        );
        let e = client.destroy_session(9).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ENOENT);
        assert!(e.to_string().contains("Unknown session 9"), "{e}");
        assert_eq!(
            client.update_session(1, 0).unwrap_err().code(),
            ErrorCode::EINVAL
        );
        for expected in [
            ErrorCode::ENOENT,
            ErrorCode::EINVAL,
            ErrorCode::ENOTSUP,
            ErrorCode::EIO,
        ] {
            assert_eq!(client.create_session(0).unwrap_err().code(), expected);
        }
        assert!(!client.is_broken(), "error statuses keep the connection");
        agent.join().unwrap();
    }

    #[test]
    fn connection_loss_fails_calls_in_flight_and_later_ones() {
        let (client, agent) = serve(None, |mut peer| {
            peer.recv();
            peer.recv();
            // Both calls are in flight; the agent dies.
        });
        let client = Arc::new(client);
        thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let e = client.create_session(0).unwrap_err();
                    assert_eq!(e.code(), ErrorCode::EIO, "{e}");
                    assert!(e.to_string().contains("closed the connection"), "{e}");
                });
            }
        });
        agent.join().unwrap();
        assert!(client.is_broken());
        let e = client.create_session(0).unwrap_err();
        assert_eq!(e.code(), ErrorCode::EIO);
        assert!(e.to_string().contains("fake agent"), "{e}");
    }

    #[test]
    fn close_fails_calls_in_flight() {
        let (received, got) = std::sync::mpsc::channel();
        let (client, agent) = serve(None, move |mut peer| {
            peer.recv();
            received.send(()).unwrap();
            // Never answers; the client closes. Reading then sees the connection go.
            assert!(peer.reader.read_frame(DEFAULT_MAX_FRAME).is_err());
        });
        let client = Arc::new(client);
        thread::scope(|s| {
            let waiter = s.spawn(|| client.create_session(0).unwrap_err().code());
            got.recv().unwrap();
            client.close();
            assert_eq!(waiter.join().unwrap(), ErrorCode::EIO);
        });
        agent.join().unwrap();
        assert!(client.is_broken());
    }

    #[test]
    fn undecodable_responses_fail_only_their_call() {
        let (client, agent) = serve(None, |mut peer| {
            // A garbage envelope.
            let (h, _) = peer.recv();
            peer.send(h.stream_id, kind::RESPONSE, 0, &[0xff; 7]);
            // A valid envelope whose payload is not a CreateResponse (truncated varint).
            let (h, _) = peer.recv();
            let mut body = vec![0x0a, 0x00];
            body.extend_from_slice(&[0x12, 0x02, 0x08, 0xff]);
            peer.send(h.stream_id, kind::RESPONSE, 0, &body);
            // An unknown frame type is ignored; the answer after it counts.
            let (h, _) = peer.recv();
            peer.send(h.stream_id, 0x7f, 0, b"ignored");
            peer.reply(h.stream_id, &pv::session::CreateResponse { session_id: 3 });
        });
        let e = client.create_session(0).unwrap_err();
        assert_eq!(e.code(), ErrorCode::EIO, "{e}");
        let e = client.create_session(0).unwrap_err();
        assert_eq!(e.code(), ErrorCode::EBACKEND, "{e}");
        assert_eq!(client.create_session(0).unwrap(), 3);
        assert!(!client.is_broken());
        agent.join().unwrap();
    }

    /// Each script answers the first call with something that breaks the stream.
    fn broken_by(script: impl FnOnce(&mut Peer, u32) + Send + 'static) -> Error {
        let (client, agent) = serve(None, move |mut peer| {
            let (h, _) = peer.recv();
            script(&mut peer, h.stream_id);
        });
        let e = client.create_session(0).unwrap_err();
        assert!(client.is_broken(), "{e}");
        assert_eq!(client.create_session(0).unwrap_err().code(), ErrorCode::EIO);
        agent.join().unwrap();
        e
    }

    #[test]
    fn malformed_frames_break_the_connection_without_panics() {
        let e = broken_by(|peer, sid| {
            peer.reply(sid + 2, &pv::session::CreateResponse { session_id: 1 });
        });
        assert_eq!(e.code(), ErrorCode::EIO);
        assert!(e.to_string().contains("no call in flight"), "{e}");

        let e = broken_by(|peer, sid| {
            let mut h = Header {
                length: 100,
                stream_id: sid,
                kind: kind::RESPONSE,
                flags: 0,
            }
            .encode()
            .to_vec();
            h.extend_from_slice(b"short");
            peer.raw(&h);
        });
        assert_eq!(e.code(), ErrorCode::EIO);
        assert!(e.to_string().contains("inside a frame"), "{e}");

        let e = broken_by(|peer, sid| {
            let h = Header {
                length: 2 << 30,
                stream_id: sid,
                kind: kind::RESPONSE,
                flags: 0,
            };
            peer.raw(&h.encode());
        });
        assert_eq!(e.code(), ErrorCode::EIO);
        assert!(e.to_string().contains("2147483648"), "{e}");

        let e = broken_by(|peer, _| peer.raw(b"GARBAGE, NOT A FRAME AT ALL"));
        assert_eq!(e.code(), ErrorCode::EIO);
    }

    #[test]
    fn a_duplicate_answer_breaks_the_connection_at_the_next_read() {
        let (client, agent) = serve(None, |mut peer| {
            let (h, _) = peer.recv();
            peer.reply(h.stream_id, &pv::session::CreateResponse { session_id: 1 });
            peer.reply(h.stream_id, &pv::session::CreateResponse { session_id: 1 });
            let _ = peer.reader.read_frame(DEFAULT_MAX_FRAME);
        });
        assert_eq!(client.create_session(0).unwrap(), 1);
        let e = client.create_session(0).unwrap_err();
        assert_eq!(e.code(), ErrorCode::EIO);
        assert!(e.to_string().contains("no call in flight"), "{e}");
        agent.join().unwrap();
    }

    #[test]
    fn chunked_requests_and_responses() {
        const BIG: usize = 20 << 20;
        let (client, agent) = serve(Some(chunked_caps()), |mut peer| {
            // A small call: plain, announcing chunked responses.
            let (h, req) = peer.recv();
            assert_eq!(h.flags, 0);
            assert_eq!(req.method, "CreateSession");
            let meta: Vec<(&str, &str)> = req
                .metadata
                .iter()
                .map(|kv| (kv.key.as_str(), kv.value.as_str()))
                .collect();
            assert_eq!(meta, [(META_ACCEPT_CHUNKS, ACCEPT_CHUNKS_VALUE)]);
            peer.reply(h.stream_id, &pv::session::CreateResponse { session_id: 4 });

            // A large call: REQUEST (REMOTE_OPEN, empty payload, total), then DATA frames.
            let (h, req) = peer.recv();
            let sid = h.stream_id;
            assert_eq!(h.flags, flags::REMOTE_OPEN);
            assert_eq!(req.method, "Genop");
            assert!(req.payload.is_empty());
            let total: usize = req
                .metadata
                .iter()
                .find(|kv| kv.key == META_CHUNKED)
                .unwrap()
                .value
                .parse()
                .unwrap();
            let mut msg = Vec::new();
            let mut frames = 0;
            loop {
                let f = peer.frame();
                assert_eq!((f.header.kind, f.header.stream_id), (kind::DATA, sid));
                assert!(f.body.len() <= CHUNK_SIZE);
                msg.extend_from_slice(&f.body);
                frames += 1;
                if f.header.flags & flags::REMOTE_CLOSED != 0 {
                    break;
                }
            }
            assert_eq!(msg.len(), total);
            assert_eq!(frames, total.div_ceil(CHUNK_SIZE));
            let genop = pv::genop::Request::decode(Bytes::from(msg)).unwrap();
            assert_eq!(genop.session_id, 4);
            assert_eq!(genop.read_args.len(), 2);
            assert_eq!(genop.read_args[1].buf.len(), BIG);
            assert!(
                genop.read_args[1]
                    .buf
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == i as u8)
            );
            // The answer comes back chunked: 3 MiB DATA frames, then an empty closing one.
            let out = pv::genop::Response {
                write_args: vec![pv::genop::Arg {
                    buf: Bytes::from(vec![9u8; BIG]),
                    size: BIG as u32,
                    arg_type: ArgType::Buffer.value() as i32,
                    ..Default::default()
                }],
            };
            let body = encode_response_ok(&out);
            for piece in body.chunks(3 << 20) {
                peer.send(sid, kind::DATA, 0, piece);
            }
            peer.send(sid, kind::DATA, flags::REMOTE_CLOSED | flags::NO_DATA, &[]);

            // A chunked answer in one closing frame works too.
            let (h, _) = peer.recv();
            let body = encode_response_ok(&pv::session::CreateResponse { session_id: 8 });
            peer.send(h.stream_id, kind::DATA, flags::REMOTE_CLOSED, &body);
        });
        assert_eq!(client.capabilities(), Some(&chunked_caps()));
        assert_eq!(client.create_session(0).unwrap(), 4);
        let image: Vec<u8> = (0..BIG).map(|i| i as u8).collect();
        let out_buf = [0u8; 16];
        let write = client
            .genop(
                4,
                &[
                    GenopArg::new(ArgType::Uint8, &[3]),
                    GenopArg::new(ArgType::Buffer, &image),
                ],
                &[GenopArg::new(ArgType::Buffer, &out_buf)],
            )
            .unwrap();
        assert_eq!(write.len(), 1);
        assert_eq!(write[0].buf.len(), BIG);
        assert!(write[0].buf.iter().all(|&b| b == 9));
        assert_eq!(client.create_session(0).unwrap(), 8);
        agent.join().unwrap();
    }

    #[test]
    fn upstream_agents_get_plain_calls_and_nothing_over_1_gib() {
        let (client, agent) = serve(None, |mut peer| {
            // 9 MiB goes as one plain frame: an upstream agent takes up to 1 GiB.
            let (h, req) = peer.recv();
            assert_eq!((h.flags, req.method.as_str()), (0, "Genop"));
            assert!(req.metadata.is_empty());
            assert!(req.payload.len() > 9 << 20);
            peer.reply(h.stream_id, &pv::genop::Response { write_args: vec![] });
            // The over-limit call was never sent: the next request is this one.
            let (h, req) = peer.recv();
            assert_eq!(req.method, "CreateSession");
            assert_eq!(flags_of(&req), 7);
            peer.reply(h.stream_id, &pv::session::CreateResponse { session_id: 1 });
        });
        assert!(!client.supports_extensions());
        let nine = vec![1u8; 9 << 20];
        client
            .genop(
                1,
                &[
                    GenopArg::new(ArgType::Uint8, &[3]),
                    GenopArg::new(ArgType::Buffer, &nine),
                ],
                &[],
            )
            .unwrap();
        // Zeroed pages are never touched: the size is checked before anything is encoded.
        let huge = vec![0u8; 1 << 30];
        let e = client
            .genop(
                1,
                &[
                    GenopArg::new(ArgType::Uint8, &[3]),
                    GenopArg::new(ArgType::Buffer, &huge),
                ],
                &[],
            )
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
        assert!(e.to_string().contains("upstream agent"), "{e}");
        assert!(!client.is_broken());
        assert_eq!(client.create_session(7).unwrap(), 1);
        agent.join().unwrap();
    }

    #[test]
    fn chunked_agents_refuse_more_than_their_maximum_locally() {
        let caps = Capabilities {
            max_message_size: 10 << 20,
            ..chunked_caps()
        };
        let (client, agent) = serve(Some(caps), |mut peer| {
            let (h, req) = peer.recv();
            assert_eq!(req.method, "CreateSession");
            peer.reply(h.stream_id, &pv::session::CreateResponse { session_id: 2 });
        });
        let big = vec![0u8; 11 << 20];
        let e = client
            .genop(1, &[GenopArg::new(ArgType::Buffer, &big)], &[])
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
        assert_eq!(client.create_session(0).unwrap(), 2);
        agent.join().unwrap();
    }

    #[test]
    fn extensions_are_used_only_when_advertised() {
        let caps = Capabilities {
            version: 1,
            genop_ops: vec![0, 16],
            detection_records: true,
            ..Default::default()
        };
        let (client, agent) = serve(Some(caps), |mut peer| {
            // No `directory_resources`: the marker is not sent.
            let (h, req) = peer.recv();
            assert_eq!(req.method, "RegisterResource");
            assert!(req.metadata.is_empty(), "{:?}", req.metadata);
            peer.reply(
                h.stream_id,
                &pv::resource::RegisterResponse { resource_id: 4 },
            );
        });
        assert!(client.supports_extensions());
        assert!(!client.directory_resources());
        assert!(client.genop_runs(0) && client.genop_runs(16) && !client.genop_runs(8));
        assert!(client.detection_records());
        let req = pv::resource::RegisterRequest {
            session_id: 5,
            blobs: vec![pv::resource::Blob {
                r#type: pv::resource::BlobType::Buffer as i32,
                name: "d/f".into(),
                data: Bytes::from_static(b"x"),
                size: 1,
            }],
            ..Default::default()
        };
        assert_eq!(client.register_resource(&req, true).unwrap(), 4);
        agent.join().unwrap();

        let (client, agent) = serve(None, |_| {});
        assert!(!client.directory_resources());
        assert!(!client.genop_runs(0));
        assert!(!client.detection_records());
        agent.join().unwrap();
    }

    #[test]
    fn typed_methods_send_the_right_messages() {
        let caps = Capabilities {
            version: 1,
            directory_resources: true,
            ..Default::default()
        };
        let (client, agent) = serve(Some(caps), |mut peer| {
            let (h, req) = peer.recv();
            assert_eq!(req.method, "RegisterResource");
            let meta: Vec<_> = req.metadata.iter().map(|kv| kv.key.clone()).collect();
            assert_eq!(meta, [META_DIRECTORY]);
            let r = pv::resource::RegisterRequest::decode(req.payload).unwrap();
            assert_eq!((r.session_id, r.blobs.len()), (5, 1));
            peer.reply(
                h.stream_id,
                &pv::resource::RegisterResponse { resource_id: 9 },
            );

            let (h, req) = peer.recv();
            assert_eq!(req.method, "SyncResource");
            peer.reply(
                h.stream_id,
                &pv::resource::SyncResponse {
                    blobs: vec![pv::resource::Blob {
                        data: Bytes::from_static(b"new"),
                        size: 3,
                        ..Default::default()
                    }],
                },
            );
            let (h, req) = peer.recv();
            assert_eq!(req.method, "GetProfiler");
            peer.reply(h.stream_id, &pv::profiling::Response { profiler: None });
            let (h, req) = peer.recv();
            assert_eq!(req.method, "ImageClassification");
            let r = pv::image::Request::decode(req.payload).unwrap();
            assert_eq!(&r.image[..], b"img");
            peer.reply(
                h.stream_id,
                &pv::image::Response {
                    tags: Bytes::from_static(b"tag"),
                },
            );
        });
        let req = pv::resource::RegisterRequest {
            blobs: vec![pv::resource::Blob {
                r#type: pv::resource::BlobType::Buffer as i32,
                name: "a/b".into(),
                data: Bytes::from_static(b"x"),
                size: 1,
            }],
            session_id: 5,
            ..Default::default()
        };
        assert_eq!(client.register_resource(&req, true).unwrap(), 9);
        assert_eq!(&client.sync_resource(9).unwrap()[0].data[..], b"new");
        assert!(client.get_profiler(5).unwrap().is_none());
        assert_eq!(&client.image_classification(5, b"img").unwrap()[..], b"tag");
        agent.join().unwrap();
    }

    #[test]
    fn connect_errors_name_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let addr = Address::Unix(dir.path().join("nobody.sock"));
        let e = Client::connect(&addr).unwrap_err();
        assert!(e.to_string().contains("nobody.sock"), "{e}");
        assert_eq!(e.code(), ErrorCode::ENOENT);
    }

    /// The crates.io `ttrpc` crate as the server: an independent implementation of the wire.
    mod ttrpc_server {
        use std::collections::HashMap;

        use super::*;

        type Reply = std::result::Result<Vec<u8>, ttrpc::Status>;
        type Method = fn(Bytes) -> Reply;

        struct Handler(Method);

        impl ttrpc::MethodHandler for Handler {
            fn handler(&self, ctx: ttrpc::TtrpcContext, req: ttrpc::Request) -> ttrpc::Result<()> {
                let mut resp = ttrpc::Response::new();
                match (self.0)(Bytes::from(req.payload)) {
                    Ok(payload) => {
                        resp.set_status(ttrpc::get_status(ttrpc::Code::OK, ""));
                        resp.payload = payload;
                    }
                    Err(st) => resp.set_status(st),
                }
                ttrpc::response_to_channel(ctx.mh.stream_id, resp, ctx.res_tx)
            }
        }

        fn create_session(payload: Bytes) -> Reply {
            let req = pv::session::CreateRequest::decode(payload).unwrap();
            Ok(pv::session::CreateResponse {
                session_id: 40 + i64::from(req.flags),
            }
            .encode_to_vec())
        }

        /// Echoes the first read argument after the op into the first write argument and
        /// fills the second with the op type.
        fn genop(payload: Bytes) -> Reply {
            let req = pv::genop::Request::decode(payload).unwrap();
            let mut write = req.write_args;
            if let (Some(first), Some(w)) = (req.read_args.get(1), write.get_mut(0)) {
                let mut buf = w.buf.to_vec();
                let n = first.buf.len().min(buf.len());
                buf[..n].copy_from_slice(&first.buf[..n]);
                w.buf = Bytes::from(buf);
            }
            if let (Some(op), Some(w)) = (req.read_args.first(), write.get_mut(1)) {
                w.buf = Bytes::from(vec![op.buf[0]; w.buf.len()]);
            }
            Ok(pv::genop::Response { write_args: write }.encode_to_vec())
        }

        /// Upstream's shape for a vAccel failure: INTERNAL, "FFI error: 95", the code in a
        /// `vaccel.Error` detail (bytes `10 5f`, as captured from upstream).
        fn destroy_session(_: Bytes) -> Reply {
            let mut st = ttrpc::get_status(ttrpc::Code::INTERNAL, "FFI error: 95");
            st.details.push(ttrpc::proto::Any {
                type_url: "type.googleapis.com/vaccel.ProtoError".into(),
                value: vec![0x10, 95],
                ..Default::default()
            });
            Err(st)
        }

        fn update_session(_: Bytes) -> Reply {
            Err(ttrpc::get_status(
                ttrpc::Code::NOT_FOUND,
                "Unknown session 9",
            ))
        }

        #[test]
        fn our_client_against_the_ttrpc_crate_server() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("agent.sock");
            let mut methods: HashMap<String, Box<dyn ttrpc::MethodHandler + Send + Sync>> =
                HashMap::new();
            let handlers: [(&str, Method); 4] = [
                ("CreateSession", create_session),
                ("Genop", genop),
                ("DestroySession", destroy_session),
                ("UpdateSession", update_session),
            ];
            for (method, f) in handlers {
                methods.insert(format!("/{SERVICE}/{method}"), Box::new(Handler(f)));
            }
            let mut server = ttrpc::Server::new()
                .bind(&format!("unix://{}", path.display()))
                .unwrap()
                .register_service(methods);
            server.start().unwrap();

            let client = Client::connect(&Address::Unix(path.clone())).unwrap();
            assert!(
                client.capabilities().is_none(),
                "the ttrpc crate has no extensions"
            );
            assert_eq!(client.create_session(2).unwrap(), 42);

            let image = [5u8; 1024];
            let (imgname, text) = ([0u8; 512], [0u8; 512]);
            let out = client
                .genop(
                    42,
                    &[
                        GenopArg::new(ArgType::Uint8, &[3]),
                        GenopArg::new(ArgType::Buffer, &image),
                    ],
                    &[
                        GenopArg::new(ArgType::UcharArray, &imgname),
                        GenopArg::new(ArgType::UcharArray, &text),
                    ],
                )
                .unwrap();
            assert_eq!(out.len(), 2);
            assert!(out[0].buf.iter().all(|&b| b == 5));
            assert!(out[1].buf.iter().all(|&b| b == 3));
            assert_eq!(out[0].arg_type, ArgType::UcharArray.value() as i32);

            // Calls from several threads in flight on one connection (ttrpc's server answers
            // from a worker pool, so responses come back in any order).
            let client = Arc::new(client);
            thread::scope(|s| {
                for t in 0..4u8 {
                    let client = &client;
                    s.spawn(move || {
                        for i in 0..50u8 {
                            let arg = [t, i, 1, 2];
                            let out_buf = [0u8; 4];
                            let out = client
                                .genop(
                                    1,
                                    &[
                                        GenopArg::new(ArgType::Uint8, &[t]),
                                        GenopArg::new(ArgType::Buffer, &arg),
                                    ],
                                    &[GenopArg::new(ArgType::Buffer, &out_buf)],
                                )
                                .unwrap();
                            assert_eq!(&out[0].buf[..], &arg);
                        }
                    });
                }
            });

            let e = client.destroy_session(42).unwrap_err();
            assert_eq!(e.code(), ErrorCode::ENOTSUP, "{e}");
            let e = client.update_session(9, 0).unwrap_err();
            assert_eq!(e.code(), ErrorCode::ENOENT, "{e}");
            // A method the server does not have: "<path> does not exist", INVALID_ARGUMENT.
            let e = client.unregister_resource(1, 1).unwrap_err();
            assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
            assert!(e.to_string().contains("does not exist"), "{e}");
            assert!(!client.is_broken());
            drop(client);
            server.shutdown();
        }
    }
}
