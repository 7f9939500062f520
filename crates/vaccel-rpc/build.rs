//! Compiles the agent protos with a pure-Rust protobuf compiler (no `protoc` needed).
use std::io;

fn main() -> io::Result<()> {
    let files = [
        "ttrpc.proto",
        "empty.proto",
        "error.proto",
        "session.proto",
        "resource.proto",
        "image.proto",
        "genop.proto",
        "tf.proto",
        "tflite.proto",
        "torch.proto",
        "profiling.proto",
        "agent.proto",
        "ext.proto",
    ];
    println!("cargo:rerun-if-changed=protos");
    let descriptors = protox::compile(files, ["protos"]).map_err(io::Error::other)?;
    prost_build::Config::new()
        // Bytes fields decode as slices of the frame they arrived in: no copies.
        .bytes(["."])
        .compile_fds(descriptors)
}
