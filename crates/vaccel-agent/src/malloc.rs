//! The agent's glibc allocator settings: large buffers are reused between calls instead of
//! being returned to the kernel and faulted in again on the next call.
//!
//! An image call allocates a few buffers of hundreds of KiB to a few MiB (the received image,
//! the decoded picture, tensors, the result image) and frees them before answering. With
//! glibc's defaults the agent's worker threads gave most of that memory back to the kernel
//! after every call (trimming, or a fresh `mmap` per buffer) and faulted it in again on the
//! next: about 650 page faults per ONNX detection call against 360 for the same call
//! in-process, 0.3-0.5 ms of a 7 ms call. Fixed thresholds keep buffers up to
//! [`MMAP_THRESHOLD`] in the arenas and up to [`TRIM_THRESHOLD`] of free memory at the top of
//! each arena before trimming. Larger payloads (a 64 MiB tensor) still get mappings of their
//! own, returned when freed.

/// Allocations from this size on get a mapping of their own.
const MMAP_THRESHOLD: i32 = 8 << 20;
/// Free memory at the top of an arena kept for the next call, at most.
const TRIM_THRESHOLD: i32 = 32 << 20;

/// Applies the settings; a no-op outside glibc. Call before starting threads.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called from the main
        // thread before any other thread exists, with parameters and values glibc documents.
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        };
        if !ok {
            log::debug!("mallopt refused the agent's allocator thresholds; keeping glibc's");
        }
    }
}
