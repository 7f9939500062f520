//! The `torch` CPU plugin (work in progress).
