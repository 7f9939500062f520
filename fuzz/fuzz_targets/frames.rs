//! The server's frame reader over a scripted transport (short reads, timeouts, interrupted
//! reads, bodies read into a growing or a reclaimed buffer): it reads exactly what was sent.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vaccel_rpc::fuzzing::read_frames(data);
});
