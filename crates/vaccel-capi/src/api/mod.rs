//! The exported C functions, one module per header. Every function is `unsafe extern "C"`:
//! its `# Safety` contract is the header's (pointers are null or valid for what the header
//! says, arrays hold their counts, strings are NUL-terminated), and within that contract
//! nothing a caller passes can crash the library: null pointers, unknown objects, bad lengths
//! and wrong-typed args are error codes.

pub mod arg;
pub mod blob;
pub mod config;
pub mod core;
pub mod fs;
pub mod log;
pub mod ops;
pub mod plugin;
pub mod prof;
pub mod resource;
pub mod session;
pub mod tensor;
