//! Shared memory for large payloads (extension 6, `docs/wire.md`): a `memfd` the client
//! creates, seals against shrinking and passes once per connection with `SCM_RIGHTS`; both
//! sides map it, the client writes a request's encoded message into it and the agent reads the
//! message where it lies, so a large image or tensor is copied once end to end.
//!
//! This is the crate's only module with `unsafe` code: slices of a mapping (a raw `memmap2`
//! mapping, of which each region the agent lends is its own slice, never the whole: a read
//! region and a written one of the same call may not overlap, see `server::shared_args`), the
//! copy into the mapping and the descriptors received from a peer. Everything a peer controls
//! is checked here before it is mapped: the descriptor must be a regular file on tmpfs (a `memfd`, not hugetlbfs, whose
//! faults may raise `SIGBUS`) sealed with `F_SEAL_SHRINK` (so no page of the mapping can
//! disappear: no `SIGBUS` on access), at least as large as the size announced; regions are
//! checked against the mapping's length with checked arithmetic.
//!
//! ```
//! use vaccel_rpc::shm::SharedMemory;
//! let (mut mine, fd) = SharedMemory::create(1 << 20)?;
//! mine.write_parts(&[b"hello ", b"world"]).expect("fits");
//! let theirs = std::sync::Arc::new(SharedMemory::attach(&fd, 1 << 20, 1 << 30)?);
//! assert_eq!(&SharedMemory::region(&theirs, 0, 11)?[..], b"hello world");
//! # Ok::<(), vaccel_rpc::shm::ShmError>(())
//! ```
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use bytes::Bytes;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use nix::sys::stat::{SFlag, fstat};
use nix::sys::statfs::{TMPFS_MAGIC, fstatfs};
use vaccel_core::ErrorCode;

/// The most descriptors one `sendmsg` can pass (`SCM_MAX_FD`): the control buffer of
/// [`recv`] has room for them all, so the kernel never truncates it (a truncated buffer would
/// leave descriptors installed that nobody could close).
const SCM_MAX_FD: usize = 253;

/// Why shared memory could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// The size asked for is zero, or above the most the agent accepts per connection.
    #[error("shared memory of {size} bytes refused: at most {max} bytes, and at least 1")]
    BadSize {
        /// Bytes asked for.
        size: u64,
        /// The most accepted.
        max: u64,
    },
    /// The descriptor passed is not a regular file (a socket, a pipe, a directory...).
    #[error("the descriptor passed for shared memory is not a regular file")]
    NotRegular,
    /// The descriptor is a file elsewhere than tmpfs (a disk file, hugetlbfs): only a
    /// `memfd` is accepted.
    #[error("the descriptor passed for shared memory is not a memfd (filesystem {0:#x})")]
    NotMemfd(i64),
    /// The memfd lacks `F_SEAL_SHRINK`: it could be truncated under the mapping.
    #[error("the memfd is not sealed against shrinking (F_SEAL_SHRINK is required)")]
    NotSealed,
    /// The memfd is smaller than the size announced.
    #[error("the memfd holds {file} bytes, fewer than the {size} announced")]
    TooSmall {
        /// Bytes announced.
        size: u64,
        /// Bytes the file holds.
        file: u64,
    },
    /// The memfd holds fewer allocated bytes than the size announced: the missing pages would
    /// be allocated by the agent's accesses, in the agent's memory, at no cost to the client.
    #[error(
        "the memfd has {allocated} bytes allocated, fewer than the {size} announced: allocate \
         it in full (write it or fallocate) before attaching"
    )]
    Sparse {
        /// Bytes announced.
        size: u64,
        /// Bytes the file has allocated.
        allocated: u64,
    },
    /// A region outside the mapping.
    #[error("region of {len} bytes at offset {offset} is outside the {mapped} bytes attached")]
    OutOfBounds {
        /// Offset asked for.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// Bytes attached.
        mapped: u64,
    },
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: Errno,
    },
}

impl ShmError {
    /// The vAccel code: `ENOMEM` when memory could not be had, `EINVAL` for what the peer
    /// got wrong.
    pub fn code(&self) -> ErrorCode {
        match self {
            ShmError::Sys {
                source: Errno::ENOMEM,
                ..
            } => ErrorCode::ENOMEM,
            ShmError::Sys { .. } => ErrorCode::EIO,
            ShmError::BadSize { .. }
            | ShmError::NotRegular
            | ShmError::NotMemfd(_)
            | ShmError::NotSealed
            | ShmError::TooSmall { .. }
            | ShmError::Sparse { .. }
            | ShmError::OutOfBounds { .. } => ErrorCode::EINVAL,
        }
    }
}

fn sys(op: &'static str) -> impl FnOnce(Errno) -> ShmError {
    move |source| ShmError::Sys { op, source }
}

/// A peer's memfd that passed [`SharedMemory::check`], to map with [`Checked::map`].
#[derive(Debug)]
pub struct Checked {
    fd: OwnedFd,
    len: NonZeroUsize,
}

impl Checked {
    /// Maps the memfd shared and read-write (see [`SharedMemory::attach`]); the mapping keeps
    /// the descriptor, to discard the pages when it goes.
    pub fn map(self) -> Result<SharedMemory, ShmError> {
        let mut map = SharedMemory::map(&self.fd, self.len)?;
        map.discard = Some(Discard(self.fd));
        Ok(map)
    }
}

/// A shared read-write mapping of a memfd, unmapped when dropped.
pub struct SharedMemory {
    /// Raw: no reference to the whole mapping is ever made (the agent lends parts of it to
    /// readers and writers at once); [`SharedMemory::bytes_mut`] and the regions make slices
    /// of what they own.
    map: memmap2::MmapRaw,
    /// The agent's side: the peer's memfd, whose pages are discarded once the mapping is gone
    /// (fields drop in order: the mapping first).
    discard: Option<Discard>,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl SharedMemory {
    /// A new memfd of `size` bytes sealed against shrinking and growing, mapped read-write and
    /// pre-faulted (the client's side): the mapping and the descriptor to pass to the agent.
    pub fn create(size: usize) -> Result<(SharedMemory, OwnedFd), ShmError> {
        let bad = || ShmError::BadSize {
            size: size as u64,
            max: i64::MAX as u64,
        };
        let len = NonZeroUsize::new(size).ok_or_else(bad)?;
        let file_len = i64::try_from(size).map_err(|_| bad())?;
        let fd = memfd_create(
            c"vaccel-rpc-shm",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(sys("memfd_create"))?;
        nix::unistd::ftruncate(&fd, file_len).map_err(sys("ftruncate"))?;
        // Allocated in full, here, in the client's memory: the agent refuses a sparse memfd.
        allocate_all(&fd, file_len)?;
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
            ),
        )
        .map_err(sys("sealing the memfd"))?;
        let map = Self::map(&fd, len)?;
        Ok((map, fd))
    }

    /// Maps `size` bytes of `fd`, a peer's memfd (the agent's side), after checking that it is
    /// a regular tmpfs file sealed against shrinking and at least `size` bytes long, and that
    /// `size` is between 1 and `max`. Mapped read-write, shared: a plugin that writes into its
    /// read arguments (some C functions do) writes into the client's memory, as it would into
    /// a request buffer, instead of faulting on a read-only page; a memfd sealed against
    /// writing is therefore refused (`mmap` fails with `EPERM`).
    pub fn attach(fd: &OwnedFd, size: u64, max: u64) -> Result<SharedMemory, ShmError> {
        let own = fd.try_clone().map_err(|e| {
            sys("dup")(
                e.raw_os_error()
                    .map_or(Errno::UnknownErrno, Errno::from_raw),
            )
        })?;
        Self::check(own, size, max)?.map()
    }

    /// [`SharedMemory::attach`]'s checks of a peer's memfd, without mapping it yet (the agent
    /// charges the client's budget in between).
    pub fn check(fd: OwnedFd, size: u64, max: u64) -> Result<Checked, ShmError> {
        let bad = || ShmError::BadSize { size, max };
        if size == 0 || size > max {
            return Err(bad());
        }
        let len = usize::try_from(size)
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(bad)?;
        let st = fstat(&fd).map_err(sys("fstat"))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(ShmError::NotRegular);
        }
        let fs = fstatfs(&fd).map_err(sys("fstatfs"))?;
        if fs.filesystem_type() != TMPFS_MAGIC {
            // hugetlbfs among others: a fault on a page the pool cannot supply is a SIGBUS.
            #[allow(clippy::unnecessary_cast)]
            return Err(ShmError::NotMemfd(fs.filesystem_type().0 as i64));
        }
        let seals = match fcntl(&fd, FcntlArg::F_GET_SEALS) {
            Ok(bits) => SealFlag::from_bits_truncate(bits),
            // Files that cannot carry seals at all.
            Err(Errno::EINVAL) => SealFlag::empty(),
            Err(e) => return Err(sys("F_GET_SEALS")(e)),
        };
        if !seals.contains(SealFlag::F_SEAL_SHRINK) {
            return Err(ShmError::NotSealed);
        }
        // The size read once the seal is known to be there: read before, it could be that of a
        // file the client shrank and then sealed (and the mapping past its end would fault).
        let st = fstat(&fd).map_err(sys("fstat"))?;
        let file = u64::try_from(st.st_size).unwrap_or(0);
        if file < size {
            return Err(ShmError::TooSmall { size, file });
        }
        // Pages missing would be allocated by the agent's own faults (its `MAP_POPULATE`, its
        // reads), in the agent's memory cgroup, for a request that cost the client nothing: the
        // client must have allocated at least as much as it announces. (A tmpfs file reports
        // fallocated pages as holes to SEEK_HOLE, so the count of blocks is what tells.)
        let allocated = u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512);
        if allocated < size {
            return Err(ShmError::Sparse { size, allocated });
        }
        Ok(Checked { fd, len })
    }

    fn map(fd: &OwnedFd, len: NonZeroUsize) -> Result<SharedMemory, ShmError> {
        // `fd` is a live descriptor of a memfd at least `len` bytes long, sealed against
        // shrinking (checked by `check`; `create` sealed it itself), so every page of the
        // mapping stays backed and no access faults with SIGBUS. The peer may write the bytes
        // while they are read: see `region` for what readers do about it.
        let map = memmap2::MmapOptions::new()
            .len(len.get())
            .populate()
            .map_raw(fd)
            .map_err(|e| {
                sys("mmap")(
                    e.raw_os_error()
                        .map_or(Errno::UnknownErrno, Errno::from_raw),
                )
            })?;
        Ok(SharedMemory { map, discard: None })
    }

    /// The whole mapping, to write (the client's side, which lends no region of it).
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len()` bytes, valid for reads and writes (mapped shared,
        // read-write) for as long as `self`; `&mut self` is exclusive, and the side that writes
        // its mapping whole (the client's) makes no `Region` of it, so no other slice of these
        // bytes exists in this process meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr(), self.map.len()) }
    }

    /// The whole mapping, to read.
    fn bytes(&self) -> &[u8] {
        // SAFETY: as `bytes_mut`, shared: only a `SharedBuffer` (which makes no `Region`)
        // reads its mapping whole.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.map.len()) }
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always `false`: a mapping holds at least one byte.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Copies `parts`, one after the other, to the start of the mapping; `None` (nothing
    /// written) when they do not fit. Returns the bytes written.
    pub fn write_parts(&mut self, parts: &[&[u8]]) -> Option<usize> {
        self.write_parts_at(0, parts)
    }

    /// Copies `parts`, one after the other, at an offset below [`MESSAGE_SLACK`] chosen so
    /// that the largest part lands at the same address modulo the page size as where it comes
    /// from (a copy between addresses that differ by a few bytes modulo 4 KiB runs some 4
    /// times slower on the x86-64 CPUs measured). `(offset, bytes written)`, or `None` when
    /// they do not fit.
    pub fn write_message(&mut self, parts: &[&[u8]]) -> Option<(usize, usize)> {
        let mut before = 0usize;
        let mut biggest = (0usize, None::<&[u8]>);
        for part in parts {
            if biggest.1.is_none_or(|b| part.len() > b.len()) {
                biggest = (before, Some(part));
            }
            before = before.checked_add(part.len())?;
        }
        let offset = match biggest {
            (prefix, Some(big)) => {
                let lands = (self.map.as_ptr() as usize).wrapping_add(prefix);
                (big.as_ptr() as usize).wrapping_sub(lands) % MESSAGE_SLACK
            }
            (_, None) => 0,
        };
        self.write_parts_at(offset, parts).map(|n| (offset, n))
    }

    /// Copies `parts`, one after the other, to `offset` in the mapping.
    fn write_parts_at(&mut self, offset: usize, parts: &[&[u8]]) -> Option<usize> {
        let total = parts
            .iter()
            .try_fold(0usize, |n, p| n.checked_add(p.len()))?;
        let mut dst = self
            .bytes_mut()
            .get_mut(offset..offset.checked_add(total)?)?;
        for part in parts {
            let (here, rest) = dst.split_at_mut(part.len());
            copy_bytes(here, part);
            dst = rest;
        }
        Some(total)
    }

    /// The bytes `[offset, offset + len)` of the mapping as a [`Bytes`] that keeps the mapping
    /// alive, or why not (outside the mapping, checked without overflow).
    ///
    /// The peer can write these bytes at any time, also while they are read: whoever decodes
    /// them must treat them as untrusted and possibly changing (every length read from them is
    /// checked where it is used); a client that writes a region it handed over garbles only
    /// its own request.
    pub fn region(map: &Arc<SharedMemory>, offset: u64, len: u64) -> Result<Bytes, ShmError> {
        Ok(Bytes::from_owner(Self::checked(map, offset, len)?))
    }

    /// The bytes `[offset, offset + len)` of the mapping, writable (an output the agent
    /// writes where the client reads it), checked like [`SharedMemory::region`].
    ///
    /// Whoever takes one must make sure that no other [`Region`] of the same mapping overlaps
    /// it while it is written (the server checks the regions a call names against each other):
    /// `RegionMut::bytes_mut` lends its bytes exclusively.
    pub fn region_mut(
        map: &Arc<SharedMemory>,
        offset: u64,
        len: u64,
    ) -> Result<RegionMut, ShmError> {
        Self::checked(map, offset, len).map(RegionMut)
    }

    fn checked(map: &Arc<SharedMemory>, offset: u64, len: u64) -> Result<Region, ShmError> {
        let out = || ShmError::OutOfBounds {
            offset,
            len,
            mapped: map.len() as u64,
        };
        let end = offset.checked_add(len).ok_or_else(out)?;
        if end > map.len() as u64 {
            return Err(out());
        }
        let (offset, len) = (
            usize::try_from(offset).map_err(|_| out())?,
            usize::try_from(len).map_err(|_| out())?,
        );
        Ok(Region {
            map: Arc::clone(map),
            offset,
            len,
        })
    }
}

/// A writable range of a peer's mapping ([`SharedMemory::region_mut`]).
pub struct RegionMut(Region);

impl fmt::Debug for RegionMut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionMut")
            .field("offset", &self.0.offset)
            .field("len", &self.0.len)
            .finish()
    }
}

impl RegionMut {
    /// Bytes in the region.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Whether the region holds no byte.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// The region's bytes, to write. The peer may read or write them meanwhile (see
    /// [`SharedMemory::region`]).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let r = &self.0;
        // SAFETY: `offset + len <= map.len()` (checked in `SharedMemory::checked`), and the
        // mapping stays mapped while `r.map` holds it, so the range is valid for writes for as
        // long as the borrow of `self`. The pointer comes from the mapping's own raw pointer
        // (no reference to the whole mapping is made, here or in `Region::as_ref`), and the
        // server lends a region writable only when no other region of the call overlaps it,
        // so no other slice of these bytes exists in this process while this one does.
        unsafe { std::slice::from_raw_parts_mut(r.map.map.as_mut_ptr().add(r.offset), r.len) }
    }
}

/// The most [`SharedMemory::write_message`] may skip before a message: a mapping needs this
/// much room beyond the message.
pub const MESSAGE_SLACK: usize = 4096;

/// Copies at least this long use `rep movsb` where the CPU has fast strings (ERMS): on the
/// x86-64 machines measured it moved 64 MiB in 4.0-4.3 ms, where `memcpy`'s non-temporal loop
/// took 6.8-11 ms (BENCHMARKS.md, "Shared memory for large payloads").
const REP_MOVSB_MIN: usize = 64 << 10;

/// Copies `src` to `dst` (of the same length). The peer may read `dst` while it is written:
/// it sees torn bytes, which is the protocol's business (the client names a region only once
/// it is written).
fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if src.len() >= REP_MOVSB_MIN && src.len() == dst.len() && fast_strings() {
        // SAFETY: `rep movsb` copies `rcx` bytes from `rsi` to `rdi`, upwards (the ABI keeps
        // the direction flag clear): exactly `src` to `dst`, both `src.len()` bytes long
        // (checked above) and disjoint (one borrowed shared, the other exclusively). It
        // touches no stack and no other register.
        unsafe {
            std::arch::asm!(
                "rep movsb",
                inout("rcx") src.len() => _,
                inout("rdi") dst.as_mut_ptr() => _,
                inout("rsi") src.as_ptr() => _,
                options(nostack, preserves_flags)
            );
        }
        return;
    }
    dst.copy_from_slice(src);
}

/// Whether the CPU has enhanced `rep movsb` (CPUID leaf 7, EBX bit 9). Asked once.
#[cfg(target_arch = "x86_64")]
#[allow(unused_unsafe)]
fn fast_strings() -> bool {
    static ERMS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ERMS.get_or_init(|| {
        use std::arch::x86_64::__cpuid_count;
        // SAFETY: CPUID exists on every x86-64 CPU; leaf 0 says whether leaf 7 does. (Newer
        // toolchains made the intrinsic safe: `unused_unsafe` is allowed on the function.)
        let (max, leaf7) = unsafe { (__cpuid_count(0, 0).eax, __cpuid_count(7, 0).ebx) };
        max >= 7 && leaf7 & (1 << 9) != 0
    })
}

/// A buffer in shared memory for a large argument, which the `rpc` plugin hands to an agent
/// without copying it (extension 6's argument buffers): fill it (decode an image or write a
/// tensor straight into it) and pass it, or any part of it, where a call takes bytes; or pass
/// it where a call writes its output, which the agent then writes into it in place. On a
/// unix socket to an agent that offers argument buffers, the client attaches the buffer's
/// memfd to the connection at the first call that uses it and from then on names the bytes
/// by offset; elsewhere (TCP, vsock, upstream's agent, `VACCEL_RPC_SHM=0`, any other plugin)
/// it is ordinary memory and the call copies it as it would any slice.
///
/// The agent reads the bytes during the call, where they lie: they must not change until the
/// call returns (safe code cannot: the call borrows them). When a connection that attached a
/// buffer ends, the agent discards the buffer's pages (so that no page it touched stays in
/// its memory): from then on the buffer reads as zeros. Fill it again before each call, as
/// one does with any input buffer.
///
/// ```
/// let mut image = vaccel_rpc::shm::SharedBuffer::new(4 << 20)?;
/// image[..4].copy_from_slice(b"\x89PNG");
/// assert_eq!(image.len(), 4 << 20);
/// # Ok::<(), vaccel_rpc::shm::ShmError>(())
/// ```
pub struct SharedBuffer {
    map: SharedMemory,
    id: u64,
}

impl fmt::Debug for SharedBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBuffer")
            .field("id", &self.id)
            .field("len", &self.map.len())
            .finish()
    }
}

/// A live [`SharedBuffer`] as clients look it up by address.
struct Registered {
    id: u64,
    start: usize,
    len: usize,
    fd: Arc<OwnedFd>,
}

/// The live buffers: few, looked up only for arguments of [`crate::client::SHARED_MEMORY_MIN`]
/// bytes and more.
static BUFFERS: std::sync::RwLock<Vec<Registered>> = std::sync::RwLock::new(Vec::new());
/// How many buffers live: calls skip the lookup while none does.
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A buffer that holds some bytes a call passes: what the client attaches and names.
#[derive(Debug, Clone)]
pub struct BufferPlace {
    /// The buffer's id (process-wide, never reused).
    pub id: u64,
    /// The bytes' offset in the buffer.
    pub offset: u64,
    /// The buffer's length (the memfd's size).
    pub size: u64,
    /// The buffer's memfd, to attach.
    pub fd: Arc<OwnedFd>,
}

impl BufferPlace {
    /// Allocates the buffer's pages again where they were discarded (an agent whose
    /// connection ended punched them out; they read as zeros either way), so that an agent's
    /// check that the memfd is allocated in full passes.
    pub fn allocate(&self) -> Result<(), ShmError> {
        let len = i64::try_from(self.size).map_err(|_| ShmError::BadSize {
            size: self.size,
            max: i64::MAX as u64,
        })?;
        allocate_all(&self.fd, len)
    }
}

/// Allocates the first `len` bytes of `fd` (pages already there stay as they are).
fn allocate_all(fd: &OwnedFd, len: i64) -> Result<(), ShmError> {
    nix::fcntl::fallocate(fd, nix::fcntl::FallocateFlags::empty(), 0, len).map_err(sys("fallocate"))
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte (empty ranges share none).
pub fn overlaps(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    a_len > 0 && b_len > 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

impl SharedBuffer {
    /// A buffer of `len` bytes (zeros), in a new memfd allocated in full and sealed against
    /// resizing. `BadSize` for 0; `Sys` (`ENOMEM` among others) when the memory cannot be had.
    pub fn new(len: usize) -> Result<SharedBuffer, ShmError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let (map, fd) = SharedMemory::create(len)?;
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut buffers = BUFFERS.write().unwrap_or_else(|e| e.into_inner());
        buffers
            .try_reserve(1)
            .map_err(|_| sys("registering a buffer")(Errno::ENOMEM))?;
        buffers.push(Registered {
            id,
            start: map.map.as_ptr() as usize,
            len: map.len(),
            fd: Arc::new(fd),
        });
        LIVE.fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(SharedBuffer { map, id })
    }

    /// The buffer's id: process-wide, never reused.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The live buffer that holds all of `bytes`, if any.
    pub fn find(bytes: &[u8]) -> Option<BufferPlace> {
        if LIVE.load(std::sync::atomic::Ordering::Acquire) == 0 || bytes.is_empty() {
            return None;
        }
        let start = bytes.as_ptr() as usize;
        let end = start.checked_add(bytes.len())?;
        let buffers = BUFFERS.read().unwrap_or_else(|e| e.into_inner());
        buffers
            .iter()
            .find(|b| start >= b.start && end <= b.start.saturating_add(b.len))
            .map(|b| BufferPlace {
                id: b.id,
                offset: (start - b.start) as u64,
                size: b.len as u64,
                fd: Arc::clone(&b.fd),
            })
    }

    /// Whether the buffer `id` still lives.
    pub fn is_live(id: u64) -> bool {
        BUFFERS
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|b| b.id == id)
    }
}

impl std::ops::Deref for SharedBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.bytes()
    }
}

impl std::ops::DerefMut for SharedBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.map.bytes_mut()
    }
}

impl AsRef<[u8]> for SharedBuffer {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for SharedBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        let mut buffers = BUFFERS.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = buffers.iter().position(|b| b.id == self.id) {
            buffers.swap_remove(i);
            LIVE.fetch_sub(1, std::sync::atomic::Ordering::Release);
        }
    }
}

/// An attached memfd whose pages are punched out when the attachment ends.
///
/// Memory cgroups charge a page to whoever touches it first: pages of a sparse memfd that the
/// agent faulted in (mapping it, reading a region) are the agent's, and would stay so for as
/// long as the client keeps the memfd. The attachment is over, so its contents are too:
/// punching them out frees those pages, and a client cycling attaches of sparse memfds cannot
/// grow the agent's memory past what its budget holds at once.
struct Discard(OwnedFd);

impl Drop for Discard {
    fn drop(&mut self) {
        let mode = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
            | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
        let len = fstat(&self.0).map_or(i64::MAX, |st| st.st_size);
        if let Err(e) = nix::fcntl::fallocate(&self.0, mode, 0, len) {
            log::debug!("discarding {len} bytes of shared memory: {e}");
        }
    }
}

/// A checked range of a mapping, the owner behind a [`Bytes`].
struct Region {
    map: Arc<SharedMemory>,
    offset: usize,
    len: usize,
}

impl AsRef<[u8]> for Region {
    /// The region's bytes: `offset + len <= map.len()` (checked in `SharedMemory::region`).
    /// The peer may write them concurrently: the bytes are then those of some moment of its
    /// writing, which is all a shared mapping can promise; readers check every length they
    /// take from them.
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `offset + len <= map.len()` (checked in `SharedMemory::checked`) and the
        // mapping lives as long as `self.map`. The slice covers this range only (not the whole
        // mapping), so it never overlaps a `RegionMut` lent out for another range.
        unsafe { std::slice::from_raw_parts(self.map.map.as_ptr().add(self.offset), self.len) }
    }
}

/// Reads from a unix socket with `recvmsg`, keeping the descriptors that come with the bytes
/// (`MSG_CMSG_CLOEXEC`) in `fds`; `cmsg` is a buffer kept between calls.
pub fn recv(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    cmsg: &mut Vec<u8>,
) -> io::Result<usize> {
    use nix::sys::socket::{ControlMessageOwned, recvmsg};
    if cmsg.is_empty() {
        *cmsg = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    }
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let bytes = msg.bytes;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    // SAFETY: the kernel installed `fd` in this process for this message just
                    // now; nothing else knows it, so this is its one owner (closed on drop).
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
    } else {
        // Truncated control data (only possible beyond SCM_MAX_FD): refuse the connection.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated control message",
        ));
    }
    Ok(bytes)
}

/// Writes `parts` (one frame) on a unix socket with `fd` attached to its first byte
/// (`SCM_RIGHTS`), completing short writes without it.
pub fn send_with_fd(socket: BorrowedFd<'_>, parts: &[&[u8]], fd: BorrowedFd<'_>) -> io::Result<()> {
    let data: Vec<u8> = parts.concat();
    let fds = [fd.as_raw_fd()];
    let mut sent = loop {
        match sendmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &[io::IoSlice::new(&data)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    };
    while let Some(rest) = data.get(sent..).filter(|r| !r.is_empty()) {
        match sendmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &[io::IoSlice::new(rest)],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether `fd` is a unix socket's (shared memory is offered on those only).
pub fn is_unix_socket(fd: BorrowedFd<'_>) -> bool {
    nix::sys::socket::getsockname::<UnixAddr>(fd.as_fd().as_raw_fd()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_region_reads_what_the_other_side_wrote_and_bounds_are_checked() {
        let (mut mine, fd) = SharedMemory::create(4096).unwrap();
        let theirs = Arc::new(SharedMemory::attach(&fd, 4096, 1 << 20).unwrap());
        assert_eq!(mine.write_parts(&[b"ab", b"cd"]), Some(4));
        assert_eq!(&SharedMemory::region(&theirs, 1, 3).unwrap()[..], b"bcd");
        // Reused: later writes show through the same mapping.
        mine.write_parts(&[b"xy"]).unwrap();
        assert_eq!(&SharedMemory::region(&theirs, 0, 2).unwrap()[..], b"xy");
        assert_eq!(mine.write_parts(&[&[0; 4097]]), None);
        for (offset, len) in [(0, 4097), (4096, 1), (u64::MAX, 2), (1, u64::MAX)] {
            let e = SharedMemory::region(&theirs, offset, len).unwrap_err();
            assert!(matches!(e, ShmError::OutOfBounds { .. }), "{e}");
            assert_eq!(e.code(), ErrorCode::EINVAL);
        }
        assert!(SharedMemory::region(&theirs, 4096, 0).unwrap().is_empty());
        // A region keeps the mapping alive after the attachment is gone.
        let kept = SharedMemory::region(&theirs, 0, 4).unwrap();
        drop(theirs);
        drop(mine);
        assert_eq!(&kept[..2], b"xy");
    }

    #[test]
    fn pages_are_discarded_when_the_agents_mapping_goes_not_the_clients() {
        const SIZE: usize = 1 << 20;
        let (mut mine, fd) = SharedMemory::create(SIZE).unwrap();
        mine.write_parts(&[&[7u8; SIZE]]).unwrap();
        let allocated = || fstat(&fd).unwrap().st_blocks * 512;
        assert!(allocated() >= SIZE as i64);
        let theirs = SharedMemory::attach(&fd, SIZE as u64, SIZE as u64).unwrap();
        drop(theirs);
        // Whatever pages the agent's side had touched are gone with its mapping.
        assert_eq!(allocated(), 0);
        let (mut mine, fd) = SharedMemory::create(SIZE).unwrap();
        mine.write_parts(&[&[7u8; SIZE]]).unwrap();
        drop(mine);
        assert!(fstat(&fd).unwrap().st_blocks * 512 >= SIZE as i64);
    }

    #[test]
    fn large_copies_land_in_order_and_aligned() {
        let size = (16 << 20) + 12345;
        let (mut mine, fd) = SharedMemory::create(size + 7).unwrap();
        let a: Vec<u8> = (0..size / 3).map(|i| (i % 251) as u8).collect();
        let b = vec![0xa5; 3];
        let c: Vec<u8> = (0..size - a.len() - 3).map(|i| (i % 241) as u8).collect();
        assert_eq!(mine.write_parts(&[&a, &b, &[], &c]), Some(size));
        let theirs = Arc::new(SharedMemory::attach(&fd, size as u64, size as u64).unwrap());
        let got = SharedMemory::region(&theirs, 0, size as u64).unwrap();
        assert!(got[..a.len()] == a[..]);
        assert!(got[a.len()..a.len() + 3] == b[..]);
        assert!(got[a.len() + 3..] == c[..]);
        // A message lands where its largest part keeps its page offset, within the slack.
        let head = [9u8; 21];
        let (offset, n) = mine.write_message(&[&head, &c[1..], &b]).unwrap();
        assert!(offset < MESSAGE_SLACK);
        assert_eq!(n, 21 + c.len() - 1 + 3);
        let lands = mine.map.as_ptr() as usize + offset + 21;
        assert_eq!(lands % 4096, c[1..].as_ptr() as usize % 4096);
        let got = SharedMemory::region(&theirs, offset as u64, n as u64).unwrap();
        assert!(got[..21] == head && got[21..n - 3] == c[1..] && got[n - 3..] == b[..]);
        assert_eq!(mine.write_message(&[]), Some((0, 0)));
        // Both copies: `rep movsb` (large) and `memcpy` (small parts), at every offset.
        for offset in 0..8 {
            mine.write_parts_at(offset, &[b"ab", &c[..REP_MOVSB_MIN + 3], b"z"])
                .unwrap();
            let got =
                SharedMemory::region(&theirs, offset as u64, 3 + REP_MOVSB_MIN as u64 + 3).unwrap();
            assert!(got[..2] == *b"ab" && got[2..got.len() - 1] == c[..REP_MOVSB_MIN + 3]);
            assert_eq!(got[got.len() - 1], b'z');
        }
        assert_eq!(mine.write_parts_at(size, &[b"xxxxxxxx"]), None);
        assert_eq!(mine.write_parts_at(usize::MAX, &[b"x"]), None);
    }

    #[test]
    fn unsealed_small_or_foreign_descriptors_are_refused() {
        // Not sealed.
        let fd = memfd_create(c"t", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).unwrap();
        nix::unistd::ftruncate(&fd, 8192).unwrap();
        assert!(matches!(
            SharedMemory::attach(&fd, 4096, 1 << 20),
            Err(ShmError::NotSealed)
        ));
        // Sealed, but smaller than announced.
        fcntl(&fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK)).unwrap();
        assert!(matches!(
            SharedMemory::attach(&fd, 16384, 1 << 20),
            Err(ShmError::TooSmall {
                size: 16384,
                file: 8192
            })
        ));
        // Sizes out of range.
        for size in [0, (1 << 20) + 1] {
            assert!(matches!(
                SharedMemory::attach(&fd, size, 1 << 20),
                Err(ShmError::BadSize { .. })
            ));
        }
        // Sparse: fewer bytes allocated than announced.
        let allocate = |fd: &OwnedFd, offset: i64, len: i64| {
            nix::fcntl::fallocate(fd, nix::fcntl::FallocateFlags::empty(), offset, len).unwrap();
        };
        allocate(&fd, 0, 4096);
        assert!(matches!(
            SharedMemory::attach(&fd, 8192, 1 << 20),
            Err(ShmError::Sparse {
                size: 8192,
                allocated: 4096
            })
        ));
        assert!(SharedMemory::attach(&fd, 4096, 1 << 20).is_ok());
        // (That attachment's end discarded its pages: allocated again, in full.)
        allocate(&fd, 0, 8192);
        assert!(SharedMemory::attach(&fd, 8192, 1 << 20).is_ok());
        // Sealed against writing: not mappable shared and writable.
        let ro = memfd_create(c"t", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).unwrap();
        nix::unistd::ftruncate(&ro, 4096).unwrap();
        allocate(&ro, 0, 4096);
        fcntl(
            &ro,
            FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_WRITE),
        )
        .unwrap();
        let e = SharedMemory::attach(&ro, 4096, 1 << 20).unwrap_err();
        assert!(
            matches!(
                e,
                ShmError::Sys {
                    op: "mmap",
                    source: Errno::EPERM
                }
            ),
            "{e}"
        );
        // A socket, a disk file.
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(matches!(
            SharedMemory::attach(&OwnedFd::from(a), 1, 1 << 20),
            Err(ShmError::NotRegular)
        ));
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create_new(dir.path().join("f")).unwrap();
        file.set_len(4096).unwrap();
        let e = SharedMemory::attach(&OwnedFd::from(file), 4096, 1 << 20).unwrap_err();
        // The temp dir may itself be on tmpfs: then the missing seal refuses it.
        assert!(
            matches!(e, ShmError::NotMemfd(_) | ShmError::NotSealed),
            "{e}"
        );
    }

    #[test]
    fn descriptors_travel_with_their_bytes_and_are_owned() {
        let (a, b) = UnixStream::pair().unwrap();
        let (_map, memfd) = SharedMemory::create(4096).unwrap();
        send_with_fd(a.as_fd(), &[b"one", b"two"], memfd.as_fd()).unwrap();
        let mut buf = [0u8; 16];
        let (mut fds, mut cmsg) = (Vec::new(), Vec::new());
        let n = recv(b.as_fd(), &mut buf, &mut fds, &mut cmsg).unwrap();
        assert_eq!(&buf[..n], b"onetwo");
        assert_eq!(fds.len(), 1);
        let got = fds.pop().unwrap();
        assert!(SharedMemory::attach(&got, 4096, 4096).is_ok());
        // Plain bytes bring none.
        use std::io::Write;
        (&a).write_all(b"x").unwrap();
        assert_eq!(recv(b.as_fd(), &mut buf, &mut fds, &mut cmsg).unwrap(), 1);
        assert!(fds.is_empty());
        assert!(is_unix_socket(a.as_fd()));
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(!is_unix_socket(tcp.as_fd()));
    }
}
