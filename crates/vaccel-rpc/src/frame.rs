//! ttrpc framing: a 10-byte header (`length: u32 BE`, `stream_id: u32 BE`, `type: u8`,
//! `flags: u8`) followed by `length` bytes of protobuf.

use std::io::{self, IoSlice, Read, Write};

use bytes::{Bytes, BytesMut};

/// Header size in bytes.
pub const HEADER_LEN: usize = 10;
/// Upstream's (vAccel fork of ttrpc) message limit: 1 GiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 30;

/// Frame types.
pub mod kind {
    /// A call.
    pub const REQUEST: u8 = 0x1;
    /// Its answer.
    pub const RESPONSE: u8 = 0x2;
    /// Stream data.
    pub const DATA: u8 = 0x3;
}

/// Frame flags.
pub mod flags {
    /// The sender will send nothing more on this stream.
    pub const REMOTE_CLOSED: u8 = 0x1;
    /// The sender opens a stream.
    pub const REMOTE_OPEN: u8 = 0x2;
    /// The frame carries no payload.
    pub const NO_DATA: u8 = 0x4;
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload bytes (header excluded).
    pub length: u32,
    /// Stream id: odd for client-initiated streams.
    pub stream_id: u32,
    /// [`kind`].
    pub kind: u8,
    /// [`flags`].
    pub flags: u8,
}

impl Header {
    /// The 10 bytes on the wire.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let l = self.length.to_be_bytes();
        let s = self.stream_id.to_be_bytes();
        [
            l[0], l[1], l[2], l[3], s[0], s[1], s[2], s[3], self.kind, self.flags,
        ]
    }

    /// Parses 10 bytes.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Header {
        let [l0, l1, l2, l3, s0, s1, s2, s3, kind, flags] = *b;
        Header {
            length: u32::from_be_bytes([l0, l1, l2, l3]),
            stream_id: u32::from_be_bytes([s0, s1, s2, s3]),
            kind,
            flags,
        }
    }
}

/// A frame: header and payload.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// The payload (`header.length` bytes).
    pub body: Bytes,
}

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed inside a frame")]
    Truncated,
    /// A frame announces more bytes than the limit; its body was not read.
    #[error("message length {length} exceed maximum message size of {max}")]
    TooLarge {
        /// Its header.
        header: Header,
        /// Announced length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// Transport failure.
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
}

/// Reads frames with a read-ahead buffer, so small frames cost one `read` for many, and large
/// bodies are read straight into their final allocation.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Where small bodies are copied to ([`SMALL_ARENA`]).
    small: BytesMut,
    start: usize,
    end: usize,
}

/// Read-ahead size: room for many small frames per `read`.
const READ_AHEAD: usize = 64 * 1024;

/// Size of the arena small bodies are cut from (bodies up to this size). A body a service
/// keeps (a registered blob) keeps the arena it was cut from: at most this much beyond its
/// own bytes.
pub const SMALL_ARENA: usize = 16 << 10;

impl<R: Read> FrameReader<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: vec![0; READ_AHEAD].into_boxed_slice(),
            small: BytesMut::new(),
            start: 0,
            end: 0,
        }
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Bytes already read from the transport but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Reads until at least `n` (≤ READ_AHEAD) bytes are buffered. `Ok(false)` on EOF.
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        if self.end - self.start >= n {
            return Ok(true);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < n {
            let spare = self.buf.get_mut(self.end..).unwrap_or_default();
            match self.inner.read(spare) {
                Ok(0) => return Ok(false),
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// A body already buffered, copied out of the read-ahead buffer (the next frames are read
    /// into it while this one's call runs). A small one goes into the arena: no allocation
    /// while the bodies cut from it earlier are gone by the time it is used up.
    fn small_body(&mut self, length: usize) -> Bytes {
        let data = self
            .buf
            .get(self.start..self.start + length)
            .unwrap_or_default();
        self.start += length;
        if length > SMALL_ARENA {
            return Bytes::copy_from_slice(data);
        }
        if self.small.capacity() < length {
            // Reclaims the whole arena in place when nothing refers to it any more, else
            // starts a new one (the old one is freed with its last body).
            self.small.reserve(SMALL_ARENA);
        }
        self.small.extend_from_slice(data);
        self.small.split().freeze()
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let s = self.buf.get(self.start..self.start + n).unwrap_or_default();
        self.start += n;
        s
    }

    /// Reads the next frame. A frame longer than `max` is not read: `TooLarge` is returned
    /// with its header, and the stream is then out of sync (the caller answers and closes).
    /// A read timeout on the transport is `Io` of kind `WouldBlock` when nothing of a frame
    /// had arrived, `TimedOut` inside one.
    pub fn read_frame(&mut self, max: usize) -> Result<Frame, FrameError> {
        self.read_frame_reusing(max, &mut None)
    }

    /// Like [`FrameReader::read_frame`], reading a large body into `spare` when it is big
    /// enough (taking it), instead of a fresh allocation. A fresh 64 MiB buffer costs 16 k
    /// page faults as the kernel fills it — most of a large call's time on a VM; a reused one
    /// costs none. Callers give a body back with [`reclaim`] once nothing refers to it.
    pub fn read_frame_reusing(
        &mut self,
        max: usize,
        spare: &mut Option<Vec<u8>>,
    ) -> Result<Frame, FrameError> {
        self.next_frame(max, spare).map_err(|e| match e {
            ReadError::Frame(e) => e,
            ReadError::Idle => FrameError::Io(io::ErrorKind::WouldBlock.into()),
            ReadError::Stalled { .. } => FrameError::Io(io::ErrorKind::TimedOut.into()),
            ReadError::OutOfMemory { .. } => FrameError::Io(io::ErrorKind::OutOfMemory.into()),
            ReadError::Refused { .. } => FrameError::Io(io::ErrorKind::QuotaExceeded.into()),
        })
    }

    /// [`FrameReader::read_frame_reusing`] for servers, telling apart what they act on: a
    /// read timeout between frames ([`ReadError::Idle`], the reader stays usable), one inside
    /// a frame ([`ReadError::Stalled`]) and a body that could not be allocated
    /// ([`ReadError::OutOfMemory`]). A body is allocated as it arrives, never ahead of it by
    /// more than what has arrived (plus [`FIRST_STEP`]), so a header announcing 1 GiB
    /// followed by nothing costs no more than a small frame, and a failed allocation is an
    /// error, not an abort.
    pub fn next_frame(
        &mut self,
        max: usize,
        spare: &mut Option<Vec<u8>>,
    ) -> Result<Frame, ReadError> {
        self.next_frame_admitted(max, spare, &mut |_| true)
    }

    /// Like [`FrameReader::next_frame`], asking `admit` for the bytes of a large body (over
    /// 64 KiB) as they arrive: before each growth of its buffer, and for each
    /// read into a reused one. When `admit` says no, the rest of the body is read and
    /// dropped (the stream stays in sync) and the answer is [`ReadError::Refused`]; what was
    /// admitted before is the caller's to give back.
    pub fn next_frame_admitted(
        &mut self,
        max: usize,
        spare: &mut Option<Vec<u8>>,
        admit: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Frame, ReadError> {
        match self.fill(HEADER_LEN) {
            Ok(true) => {}
            Ok(false) if self.buffered() == 0 => return Err(FrameError::Closed.into()),
            Ok(false) => return Err(FrameError::Truncated.into()),
            Err(e) if is_timeout(&e) && self.buffered() == 0 => return Err(ReadError::Idle),
            Err(e) if is_timeout(&e) => {
                return Err(ReadError::Stalled {
                    received: self.buffered(),
                });
            }
            Err(e) => return Err(FrameError::Io(e).into()),
        }
        let mut hb = [0u8; HEADER_LEN];
        hb.copy_from_slice(self.take(HEADER_LEN));
        let header = Header::decode(&hb);
        let length = header.length as usize;
        if length > max {
            return Err(FrameError::TooLarge {
                header,
                length,
                max,
            }
            .into());
        }
        let stalled = |e: io::Error, received: usize| -> ReadError {
            if is_timeout(&e) {
                ReadError::Stalled {
                    received: HEADER_LEN + received,
                }
            } else if e.kind() == io::ErrorKind::UnexpectedEof {
                FrameError::Truncated.into()
            } else {
                FrameError::Io(e).into()
            }
        };
        let body = if length <= READ_AHEAD {
            match self.fill(length) {
                Ok(true) => {}
                Ok(false) => return Err(FrameError::Truncated.into()),
                Err(e) => return Err(stalled(e, self.buffered())),
            }
            self.small_body(length)
        } else {
            match spare.take() {
                Some(v) if v.capacity() >= length => match self.read_into_spare(v, length, admit) {
                    Ok(v) => Bytes::from(v),
                    Err((e, n)) if e.kind() == io::ErrorKind::QuotaExceeded => {
                        self.skip(length - n).map_err(|(e, m)| stalled(e, n + m))?;
                        return Err(ReadError::Refused { header, length });
                    }
                    Err((e, n)) => return Err(stalled(e, n)),
                },
                other => {
                    *spare = other;
                    match self.read_growing(header, length, &stalled, admit)? {
                        Ok(body) => Bytes::from(body),
                        Err(received) => {
                            self.skip(length - received)
                                .map_err(|(e, m)| stalled(e, received + m))?;
                            return Err(ReadError::Refused { header, length });
                        }
                    }
                }
            }
        };
        Ok(Frame { header, body })
    }

    /// Reads a body of `length` bytes into a buffer that already holds them (a reclaimed
    /// one). Errors come with the bytes received.
    fn read_into_spare(
        &mut self,
        mut v: Vec<u8>,
        length: usize,
        admit: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Vec<u8>, (io::Error, usize)> {
        let refused = || io::Error::from(io::ErrorKind::QuotaExceeded);
        // Only the part never handed out before is zeroed (and was faulted in then); the
        // rest is overwritten by the read below.
        if v.len() >= length {
            v.truncate(length);
        } else {
            v.resize(length, 0);
        }
        let have = self.buffered().min(length);
        if !admit(have as u64) {
            return Err((refused(), 0));
        }
        let (head, rest) = v.split_at_mut(have);
        head.copy_from_slice(self.take(have));
        let mut done = 0;
        while done < rest.len() {
            match self.inner.read(rest.get_mut(done..).unwrap_or_default()) {
                Ok(0) => return Err((io::ErrorKind::UnexpectedEof.into(), have + done)),
                Ok(n) if !admit(n as u64) => return Err((refused(), have + done + n)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((e, have + done)),
            }
        }
        Ok(v)
    }

    /// Reads a body of `length` bytes into a buffer grown (fallibly) as the bytes arrive:
    /// at most doubled, and by at least [`FIRST_STEP`], at a time, each growth admitted
    /// first. `Ok(Err(received))`: a growth was not admitted after `received` bytes (consumed).
    fn read_growing(
        &mut self,
        header: Header,
        length: usize,
        stalled: &impl Fn(io::Error, usize) -> ReadError,
        admit: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Result<Vec<u8>, usize>, ReadError> {
        let oom = || ReadError::OutOfMemory { header, length };
        let mut body = Vec::new();
        let have = self.buffered().min(length);
        let first = have.max(FIRST_STEP).min(length);
        if !admit(first as u64) {
            return Ok(Err(0));
        }
        body.try_reserve_exact(first).map_err(|_| oom())?;
        body.extend_from_slice(self.take(have));
        while body.len() < length {
            if body.len() == body.capacity() {
                let next = length.min(body.len().saturating_mul(2).max(FIRST_STEP));
                if !admit((next - body.len()) as u64) {
                    return Ok(Err(body.len()));
                }
                body.try_reserve_exact(next - body.len())
                    .map_err(|_| oom())?;
            }
            // Read into the spare capacity, never past it: `take` bounds what `read_to_end`
            // appends, so it never has to grow the buffer itself (an infallible allocation).
            let room = body.capacity().min(length) - body.len();
            let before = body.len();
            match (&mut self.inner).take(room as u64).read_to_end(&mut body) {
                Ok(0) => return Err(FrameError::Truncated.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(stalled(e, body.len().max(before))),
            }
        }
        Ok(Ok(body))
    }

    /// Reads and drops the `n` bytes left of a refused body (buffered ones first). Errors
    /// come with the bytes dropped.
    fn skip(&mut self, n: usize) -> Result<(), (io::Error, usize)> {
        let buffered = self.buffered().min(n);
        self.take(buffered);
        let mut scratch = [0u8; 64 * 1024];
        let mut done = buffered;
        while done < n {
            let want = (n - done).min(scratch.len());
            match self.inner.read(scratch.get_mut(..want).unwrap_or_default()) {
                Ok(0) => return Err((io::ErrorKind::UnexpectedEof.into(), done)),
                Ok(m) => done += m,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((e, done)),
            }
        }
        Ok(())
    }
}

/// What [`FrameReader::next_frame`] allocates first for a large body, before more of it has
/// arrived.
pub const FIRST_STEP: usize = 1 << 20;

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Why [`FrameReader::next_frame`] returned no frame.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The cases every reader has (closed, truncated, too large, transport failure).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The transport's read timeout passed with nothing of a frame received; reading again
    /// is fine.
    #[error("no frame within the read timeout")]
    Idle,
    /// A frame was started and then nothing more of it arrived within the transport's read
    /// timeout. The stream is out of sync.
    #[error("a frame stalled after {received} bytes")]
    Stalled {
        /// Bytes of the frame (header included) received.
        received: usize,
    },
    /// The frame's body was not admitted ([`FrameReader::next_frame_admitted`]); it was read
    /// and dropped, so the stream is in sync.
    #[error("a frame of {length} bytes was not admitted")]
    Refused {
        /// Its header.
        header: Header,
        /// Announced length.
        length: usize,
    },
    /// The frame's body could not be allocated. The stream is out of sync.
    #[error("no memory for a frame of {length} bytes")]
    OutOfMemory {
        /// Its header.
        header: Header,
        /// Announced length.
        length: usize,
    },
}

/// Largest body kept for reuse by [`reclaim`]: a connection keeps at most this much memory
/// between calls.
pub const MAX_SPARE: usize = 256 << 20;

/// Takes back a large frame body for [`FrameReader::read_frame_reusing`] if nothing refers to
/// it any more (every slice decoded from it dropped) and it is worth keeping; keeps the larger
/// of it and the current spare.
pub fn reclaim(body: Bytes, spare: &mut Option<Vec<u8>>) {
    if body.len() <= READ_AHEAD || body.len() > MAX_SPARE {
        return;
    }
    if let Ok(unique) = body.try_into_mut() {
        let v = Vec::from(unique);
        if spare.as_ref().is_none_or(|s| s.capacity() < v.capacity()) {
            *spare = Some(v);
        }
    }
}

/// Writes one frame whose payload is the concatenation of `parts`, without copying them
/// (vectored writes, retried until everything is written; no allocation for up to three
/// parts).
pub fn write_frame<W: Write>(
    w: &mut W,
    stream_id: u32,
    kind: u8,
    flags: u8,
    parts: &[&[u8]],
) -> io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let length = u32::try_from(total).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {total} bytes is too large"),
        )
    })?;
    let header = Header {
        length,
        stream_id,
        kind,
        flags,
    }
    .encode();
    // The header and up to three parts go out from the stack.
    const INLINE: usize = 4;
    if parts.len() < INLINE {
        let mut iov = [IoSlice::new(&[]); INLINE];
        for (slot, part) in iov
            .iter_mut()
            .zip(std::iter::once(&header[..]).chain(parts.iter().copied()))
        {
            *slot = IoSlice::new(part);
        }
        return write_all_vectored(w, iov.get_mut(..=parts.len()).unwrap_or_default());
    }
    let mut iov: Vec<IoSlice<'_>> = std::iter::once(&header[..])
        .chain(parts.iter().copied())
        .map(IoSlice::new)
        .collect();
    write_all_vectored(w, &mut iov)
}

fn write_all_vectored<W: Write>(w: &mut W, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    // Drops leading empty slices, so an empty remainder means everything was written.
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_golden() {
        // From a capture of upstream's CreateSession request (spec §13).
        let bytes = [0x00, 0x00, 0x00, 0x2f, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00];
        let h = Header::decode(&bytes);
        assert_eq!(
            h,
            Header {
                length: 0x2f,
                stream_id: 1,
                kind: kind::REQUEST,
                flags: 0
            }
        );
        assert_eq!(h.encode(), bytes);
        let big = Header {
            length: u32::MAX,
            stream_id: u32::MAX,
            kind: 0x7f,
            flags: 0xff,
        };
        assert_eq!(Header::decode(&big.encode()), big);
    }

    #[test]
    fn frames_round_trip_small_and_large() {
        let mut wire = Vec::new();
        write_frame(&mut wire, 1, kind::REQUEST, 0, &[b"abc", b"", b"de"]).unwrap();
        let big = vec![7u8; READ_AHEAD * 3 + 5];
        write_frame(&mut wire, 3, kind::REQUEST, 0, &[&big]).unwrap();
        write_frame(
            &mut wire,
            5,
            kind::DATA,
            flags::REMOTE_CLOSED | flags::NO_DATA,
            &[],
        )
        .unwrap();
        let mut r = FrameReader::new(&wire[..]);
        let f = r.read_frame(DEFAULT_MAX_FRAME).unwrap();
        assert_eq!((f.header.stream_id, &f.body[..]), (1, &b"abcde"[..]));
        let f = r.read_frame(DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(f.body.len(), big.len());
        assert!(f.body.iter().all(|&b| b == 7));
        let f = r.read_frame(DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(f.header.flags, flags::REMOTE_CLOSED | flags::NO_DATA);
        assert!(f.body.is_empty());
        assert!(matches!(
            r.read_frame(DEFAULT_MAX_FRAME),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn oversized_and_truncated_frames() {
        // A 2 GiB length field: refused from the header alone.
        let h = Header {
            length: 2 << 30,
            stream_id: 1,
            kind: kind::REQUEST,
            flags: 0,
        };
        let wire = h.encode();
        let mut r = FrameReader::new(&wire[..]);
        match r.read_frame(DEFAULT_MAX_FRAME) {
            Err(FrameError::TooLarge {
                length,
                max,
                header,
            }) => {
                assert_eq!((length, max, header.stream_id), (2 << 30, 1 << 30, 1));
            }
            other => panic!("{other:?}"),
        }
        let mut r = FrameReader::new(&[0u8, 0, 0][..]);
        assert!(matches!(r.read_frame(10), Err(FrameError::Truncated)));
        let mut wire = Header {
            length: 5,
            stream_id: 1,
            kind: 1,
            flags: 0,
        }
        .encode()
        .to_vec();
        wire.extend_from_slice(b"ab");
        let mut r = FrameReader::new(&wire[..]);
        assert!(matches!(r.read_frame(10), Err(FrameError::Truncated)));
        let mut wire = Header {
            length: 200_000,
            stream_id: 1,
            kind: 1,
            flags: 0,
        }
        .encode()
        .to_vec();
        wire.extend_from_slice(&[0; 1000]);
        let mut r = FrameReader::new(&wire[..]);
        assert!(matches!(r.read_frame(1 << 20), Err(FrameError::Truncated)));
    }

    #[test]
    fn large_bodies_reuse_reclaimed_buffers() {
        let mut wire = Vec::new();
        let a = vec![1u8; READ_AHEAD * 4];
        let b = vec![2u8; READ_AHEAD * 3];
        let c = vec![3u8; READ_AHEAD * 5];
        for body in [&a, &b, &c] {
            write_frame(&mut wire, 1, kind::REQUEST, 0, &[body]).unwrap();
        }
        let mut r = FrameReader::new(&wire[..]);
        let mut spare = None;
        let f = r.read_frame_reusing(DEFAULT_MAX_FRAME, &mut spare).unwrap();
        assert_eq!(&f.body[..], &a[..]);
        let ptr = f.body.as_ptr();
        // Still referenced: not reclaimed.
        let alias = f.body.clone();
        reclaim(f.body, &mut spare);
        assert!(spare.is_none());
        reclaim(alias, &mut spare);
        assert!(spare.is_some());
        let f = r.read_frame_reusing(DEFAULT_MAX_FRAME, &mut spare).unwrap();
        assert_eq!(&f.body[..], &b[..]);
        assert_eq!(f.body.as_ptr(), ptr, "the reclaimed buffer was reused");
        assert!(spare.is_none());
        reclaim(f.body, &mut spare);
        // Too small for the next body: a fresh one, the spare is kept.
        let f = r.read_frame_reusing(DEFAULT_MAX_FRAME, &mut spare).unwrap();
        assert_eq!(&f.body[..], &c[..]);
        assert!(spare.is_some());
    }

    #[test]
    fn small_bodies_are_cut_from_an_arena_reclaimed_in_place() {
        let mut wire = Vec::new();
        let per_arena = SMALL_ARENA / 1000;
        for i in 0..3 * per_arena {
            write_frame(&mut wire, 1, kind::REQUEST, 0, &[&[i as u8; 1000]]).unwrap();
        }
        write_frame(&mut wire, 1, kind::REQUEST, 0, &[&[7; SMALL_ARENA + 1]]).unwrap();
        let mut r = FrameReader::new(&wire[..]);
        let mut bodies: Vec<Bytes> = (0..per_arena)
            .map(|_| r.read_frame(DEFAULT_MAX_FRAME).unwrap().body)
            .collect();
        let base = bodies[0].as_ptr();
        assert!(bodies.iter().all(|b| {
            let off = b.as_ptr() as usize - base as usize;
            off < SMALL_ARENA
        }));
        // One body of the first arena is still held: the next bodies come from a new arena.
        let held = bodies.pop().unwrap();
        drop(bodies);
        let f = r.read_frame(DEFAULT_MAX_FRAME).unwrap();
        assert_ne!(f.body.as_ptr(), base);
        assert_eq!(&f.body[..], &[per_arena as u8; 1000][..]);
        drop(held);
        // Everything cut from an arena is gone when it is used up: it is reused.
        let second = f.body.as_ptr();
        drop(f);
        for i in 1..per_arena {
            let f = r.read_frame(DEFAULT_MAX_FRAME).unwrap();
            assert_eq!(&f.body[..], &[(per_arena + i) as u8; 1000][..]);
        }
        let f = r.read_frame(DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(f.body.as_ptr(), second, "the arena was reclaimed in place");
        for _ in 1..per_arena {
            r.read_frame(DEFAULT_MAX_FRAME).unwrap();
        }
        // Larger bodies get buffers of their own.
        let f = r.read_frame(DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(f.body.len(), SMALL_ARENA + 1);
    }

    /// A writer that accepts at most 3 bytes per call, to exercise partial vectored writes.
    struct Trickle(Vec<u8>);
    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let n = b.len().min(3);
            self.0.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_are_completed() {
        let mut w = Trickle(Vec::new());
        write_frame(&mut w, 9, kind::RESPONSE, 0, &[b"hello", b"", b" world"]).unwrap();
        let mut r = FrameReader::new(&w.0[..]);
        let f = r.read_frame(100).unwrap();
        assert_eq!(&f.body[..], b"hello world");
        assert_eq!(f.header.stream_id, 9);
    }

    /// A reader serving `chunks` in turn (at most `step` bytes per read), then the error
    /// `then` (or EOF).
    struct Script {
        chunks: std::collections::VecDeque<Result<Vec<u8>, io::ErrorKind>>,
        step: usize,
    }
    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.chunks.front_mut() {
                None => Ok(0),
                Some(Err(kind)) => {
                    let kind = *kind;
                    self.chunks.pop_front();
                    Err(kind.into())
                }
                Some(Ok(bytes)) => {
                    let n = bytes.len().min(buf.len()).min(self.step);
                    buf[..n].copy_from_slice(&bytes[..n]);
                    bytes.drain(..n);
                    if bytes.is_empty() {
                        self.chunks.pop_front();
                    }
                    Ok(n)
                }
            }
        }
    }

    fn header(length: u32) -> Vec<u8> {
        Header {
            length,
            stream_id: 3,
            kind: kind::REQUEST,
            flags: 0,
        }
        .encode()
        .to_vec()
    }

    #[test]
    fn timeouts_between_frames_are_idle_and_inside_them_stalled() {
        let big = vec![5u8; 3 << 20];
        let mut r = FrameReader::new(Script {
            chunks: [
                Err(io::ErrorKind::WouldBlock),
                Ok(header(3)),
                Ok(b"abc".to_vec()),
                Err(io::ErrorKind::WouldBlock),
                Ok([header(big.len() as u32), big.clone()].concat()),
                Ok(header(1 << 30)),
                Ok(vec![1; 100]),
                Err(io::ErrorKind::WouldBlock),
            ]
            .into(),
            step: 7000,
        });
        let mut spare = None;
        assert!(matches!(
            r.next_frame(1 << 30, &mut spare),
            Err(ReadError::Idle)
        ));
        // Still usable after an idle timeout.
        assert_eq!(&r.next_frame(1 << 30, &mut spare).unwrap().body[..], b"abc");
        assert!(matches!(
            r.next_frame(1 << 30, &mut spare),
            Err(ReadError::Idle)
        ));
        // A body read in small reads into a growing buffer.
        assert_eq!(r.next_frame(1 << 30, &mut spare).unwrap().body, big);
        // 1 GiB announced, 100 bytes sent: stalled, having reserved a first step only.
        match r.next_frame(1 << 30, &mut spare) {
            Err(ReadError::Stalled { received }) => assert_eq!(received, HEADER_LEN + 100),
            other => panic!("{other:?}"),
        }
        // Inside a header.
        let mut r = FrameReader::new(Script {
            chunks: [Ok(vec![0, 0]), Err(io::ErrorKind::TimedOut)].into(),
            step: 7000,
        });
        assert!(matches!(
            r.read_frame(10),
            Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::TimedOut
        ));
        // Truncated inside a large body.
        let mut r = FrameReader::new(Script {
            chunks: [Ok(header(2 << 20)), Ok(vec![0; 1 << 20])].into(),
            step: 1 << 16,
        });
        assert!(matches!(
            r.next_frame(1 << 30, &mut None),
            Err(ReadError::Frame(FrameError::Truncated))
        ));
    }
}
