//! Everything the agent and the client decode from a peer: frames, envelopes, method messages.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vaccel_rpc::fuzzing::decode_all(data);
});
