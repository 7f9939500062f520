//! The allocation-free field scan a server runs on a peer's message before decoding it
//! (`--max-genop-args`, envelope metadata), checked against prost's decoder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vaccel_rpc::fuzzing::count_fields(data);
});
