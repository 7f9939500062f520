//! `libvaccel.so` and `libvaccel.a`: the C API of [`vaccel_capi`] as the library upstream's
//! programs link, bootstrapped from the environment when the library is loaded and cleaned up
//! when it is unloaded (spec §4.2).
//!
//! Everything lives in [`vaccel_capi`] (the exported functions, which this library exports
//! because it links them, and the process-wide runtime) and `vaccel-ffi`; this crate holds what
//! exists once per *library*: its constructor and destructor. Rust programs link
//! `vaccel_capi` without them.

/// The C API this library exports.
pub use vaccel_capi::link_c_api;

extern "C" fn vaccel_ctor() {
    vaccel_capi::global::library_loaded();
}

extern "C" fn vaccel_dtor() {
    vaccel_capi::global::library_unloaded();
}

#[used]
// SAFETY: `.init_array` entries are called once by the dynamic loader (or the C runtime of a
// static executable) with no arguments, which is `vaccel_ctor`'s signature; the function
// never unwinds (`library_loaded` catches panics).
#[unsafe(link_section = ".init_array")]
static VACCEL_CTOR: extern "C" fn() = vaccel_ctor;

#[used]
// SAFETY: as for `.init_array`: called once at unload or exit, never unwinds.
#[unsafe(link_section = ".fini_array")]
static VACCEL_DTOR: extern "C" fn() = vaccel_dtor;
