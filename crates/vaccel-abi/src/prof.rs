//! Profiling regions (`vaccel/prof.h`, spec §1.13, §7).

use std::ffi::c_char;

/// `struct vaccel_prof_sample`: one timed execution, in nanoseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vaccel_prof_sample {
    /// When it started (`CLOCK_MONOTONIC_RAW`).
    pub start: u64,
    /// How long it took (0 until stopped).
    pub time: u64,
}

/// `struct vaccel_prof_region`: a named list of samples.
///
/// ```c
/// struct vaccel_prof_region { const char *name; bool name_owned; size_t nr_entries;
///                             struct vaccel_prof_sample *samples; size_t size; };
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct vaccel_prof_region {
    /// The region's name.
    pub name: *const c_char,
    /// Whether `name` is freed with the region.
    pub name_owned: bool,
    /// Number of samples recorded.
    pub nr_entries: usize,
    /// The samples (`size` slots).
    pub samples: *mut vaccel_prof_sample,
    /// Number of slots in `samples`.
    pub size: usize,
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts() {
        assert_eq!(size_of::<vaccel_prof_sample>(), 16);
        assert_eq!(offset_of!(vaccel_prof_sample, start), 0);
        assert_eq!(offset_of!(vaccel_prof_sample, time), 8);
        assert_eq!(size_of::<vaccel_prof_region>(), 40);
        assert_eq!(offset_of!(vaccel_prof_region, name), 0);
        assert_eq!(offset_of!(vaccel_prof_region, name_owned), 8);
        assert_eq!(offset_of!(vaccel_prof_region, nr_entries), 16);
        assert_eq!(offset_of!(vaccel_prof_region, samples), 24);
        assert_eq!(offset_of!(vaccel_prof_region, size), 32);
    }
}
