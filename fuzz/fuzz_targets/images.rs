//! What the image ops decode from callers and peers: image files (PNG, JPEG) and the detections
//! text an agent returns.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vaccel_vision::codec::decode(data);
    let _ = vaccel_core::detection::decode(data);
});
