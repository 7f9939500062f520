//! The `tf` CPU plugin (work in progress).
