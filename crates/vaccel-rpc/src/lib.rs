//! vAccel's RPC layer: the ttrpc wire format (10-byte frame header + protobuf), the agent's
//! messages, the mapping between vAccel errors and ttrpc statuses, and the transports
//! (`tcp://`, `unix://`, `vsock://`). Compatible byte for byte with upstream's
//! `vaccel-rpc-agent` and clients; see `docs/wire.md` for our extensions.
//!
//! ```
//! use vaccel_rpc::frame::{Header, kind};
//! let h = Header { length: 47, stream_id: 1, kind: kind::REQUEST, flags: 0 };
//! assert_eq!(h.encode(), [0, 0, 0, 47, 0, 0, 0, 1, 1, 0]);
//! ```
// `unsafe` only in `shm` (mappings and received descriptors), which allows it.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod addr;
pub mod client;
pub mod frame;
pub mod fuzzing;
pub mod message;
pub mod server;
pub mod shm;
pub mod status;
pub mod transport;

/// The generated protobuf messages (from `protos/`), one module per proto package.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    rust_2018_idioms
)]
pub mod proto {
    /// The ttrpc envelope (`grpc` package).
    pub mod grpc {
        include!(concat!(env!("OUT_DIR"), "/grpc.rs"));
    }
    /// vAccel messages.
    pub mod vaccel {
        include!(concat!(env!("OUT_DIR"), "/vaccel.rs"));
        /// `vaccel.empty`.
        pub mod empty {
            include!(concat!(env!("OUT_DIR"), "/vaccel.empty.rs"));
        }
        /// `vaccel.session`.
        pub mod session {
            include!(concat!(env!("OUT_DIR"), "/vaccel.session.rs"));
        }
        /// `vaccel.resource`.
        pub mod resource {
            include!(concat!(env!("OUT_DIR"), "/vaccel.resource.rs"));
        }
        /// `vaccel.image`.
        pub mod image {
            include!(concat!(env!("OUT_DIR"), "/vaccel.image.rs"));
        }
        /// `vaccel.genop`.
        pub mod genop {
            include!(concat!(env!("OUT_DIR"), "/vaccel.genop.rs"));
        }
        /// `vaccel.tf`.
        pub mod tf {
            include!(concat!(env!("OUT_DIR"), "/vaccel.tf.rs"));
        }
        /// `vaccel.tflite`.
        pub mod tflite {
            include!(concat!(env!("OUT_DIR"), "/vaccel.tflite.rs"));
        }
        /// `vaccel.torch`.
        pub mod torch {
            include!(concat!(env!("OUT_DIR"), "/vaccel.torch.rs"));
        }
        /// `vaccel.profiling`.
        pub mod profiling {
            include!(concat!(env!("OUT_DIR"), "/vaccel.profiling.rs"));
        }
        /// `vaccel.rs.ext`: our extensions.
        pub mod rs {
            /// `vaccel.rs.ext`.
            pub mod ext {
                include!(concat!(env!("OUT_DIR"), "/vaccel.rs.ext.rs"));
            }
        }
    }
}

/// The agent service name of upstream's sync build (the default).
pub const SERVICE: &str = "vaccel.sync.agent.AgentService";
/// The agent service name of upstream's async build, accepted too.
pub const SERVICE_ASYNC: &str = "vaccel.asynchronous.agent.AgentService";
/// Our extension service.
pub const SERVICE_EXT: &str = "vaccel.rs.ext.Extensions";
/// The default agent address.
pub const DEFAULT_ADDRESS: &str = "tcp://127.0.0.1:65500";
