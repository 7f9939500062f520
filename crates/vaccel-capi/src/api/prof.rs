//! `vaccel/prof.h`: profiling regions on the caller's structs (spec §7). Every function is a
//! no-op returning `VACCEL_OK` when profiling is disabled.
//!
//! # Safety
//!
//! `region`/`regions` are null or valid (for init: writable) structs, `regions` holding
//! `nregions`; names are NUL-terminated; sample arrays are from the C allocator.

use std::ffi::{c_char, c_int};
use std::ptr;

use vaccel_abi::{vaccel_prof_region, vaccel_prof_sample};
use vaccel_core::ErrorCode;

use crate::cmem;
use crate::ffi::{self, Res, guard, guard_value, invalid};
use crate::global;

/// Upstream's initial sample capacity.
const INITIAL_SAMPLES: usize = 1024;

fn enabled() -> bool {
    global::with_state(ErrorCode::EBACKEND, |s| Ok(s.config.profiling_enabled)).unwrap_or(false)
}

/// Nanoseconds on `CLOCK_MONOTONIC_RAW`, as upstream.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter; the clock id is a constant Linux provides.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &raw mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// The region's name for messages.
///
/// # Safety
///
/// `r.name` is null or NUL-terminated.
unsafe fn name(r: &vaccel_prof_region) -> String {
    // SAFETY: caller guarantee.
    unsafe { ffi::lossy_str(r.name) }.unwrap_or_else(|| "(null)".to_owned())
}

/// The recorded samples.
///
/// # Safety
///
/// `r.samples` holds `r.nr_entries` samples.
unsafe fn samples(r: &vaccel_prof_region) -> Res<&[vaccel_prof_sample]> {
    if r.nr_entries > r.size {
        return Err(invalid("region has more entries than slots"));
    }
    // SAFETY: caller guarantee.
    unsafe { ffi::slice(r.samples, r.nr_entries, "samples") }
}

/// The `[prof]` line of a region with samples.
///
/// # Safety
///
/// `r` is valid.
unsafe fn line(r: &vaccel_prof_region) -> Res<Option<String>> {
    // SAFETY: caller guarantee.
    let s = unsafe { samples(r) }?;
    if s.is_empty() {
        return Ok(None);
    }
    let total = s.iter().fold(0u64, |acc, x| acc.saturating_add(x.time));
    // SAFETY: caller guarantee.
    let n = unsafe { name(r) };
    Ok(Some(format!(
        "[prof] {n}: total_time: {total} nsec nr_entries: {}",
        s.len()
    )))
}

/// # Safety
///
/// See the module docs.
unsafe fn start(r: &mut vaccel_prof_region) -> Res<()> {
    if r.nr_entries > r.size {
        return Err(invalid("region has more entries than slots"));
    }
    if r.nr_entries == r.size {
        let size = if r.size == 0 {
            INITIAL_SAMPLES
        } else {
            r.size.saturating_mul(2)
        };
        // SAFETY: `samples` is null or from the C allocator (caller guarantee).
        r.samples = unsafe { cmem::realloc(r.samples, size, "samples") }?;
        r.size = size;
    }
    // SAFETY: `nr_entries < size`: inside the allocation.
    unsafe {
        r.samples.add(r.nr_entries).write(vaccel_prof_sample {
            start: now_ns(),
            time: 0,
        });
    }
    r.nr_entries += 1;
    // SAFETY: caller guarantee.
    log::debug!("Start profiling region {}", unsafe { name(r) });
    Ok(())
}

/// # Safety
///
/// See the module docs.
unsafe fn stop(r: &vaccel_prof_region) -> Res<()> {
    let now = now_ns();
    if r.nr_entries == 0 || r.nr_entries > r.size || r.samples.is_null() {
        return Err(ffi::err(ErrorCode::ENOENT, "no sample to stop"));
    }
    // SAFETY: `nr_entries - 1 < size`: the last recorded sample.
    unsafe {
        let last = r.samples.add(r.nr_entries - 1);
        (*last).time = now.saturating_sub((*last).start);
    }
    // SAFETY: caller guarantee.
    log::debug!("Stop profiling region {}", unsafe { name(r) });
    Ok(())
}

/// # Safety
///
/// `r` is writable; `name_ptr` null or NUL-terminated.
unsafe fn init(r: *mut vaccel_prof_region, name_ptr: *const c_char) -> Res<()> {
    let r = ffi::out_ptr(r, "region")?;
    let name = if name_ptr.is_null() {
        cmem::calloc::<c_char>(256, "region name")?
    } else {
        // SAFETY: NUL-terminated (caller guarantee).
        let bytes = unsafe { ffi::cstr_arg(name_ptr, "region name") }?.to_bytes();
        cmem::strdup(&String::from_utf8_lossy(bytes), "region name")?
    };
    let samples = match cmem::calloc::<vaccel_prof_sample>(INITIAL_SAMPLES, "samples") {
        Ok(s) => s,
        Err(e) => {
            // SAFETY: allocated above.
            unsafe { cmem::free(name) };
            return Err(e);
        }
    };
    // SAFETY: checked by `out_ptr`.
    unsafe {
        r.write(vaccel_prof_region {
            name,
            name_owned: true,
            nr_entries: 0,
            samples,
            size: INITIAL_SAMPLES,
        });
    }
    Ok(())
}

/// # Safety
///
/// See the module docs.
unsafe fn release(r: &mut vaccel_prof_region) {
    // SAFETY: the samples and an owned name come from the C allocator.
    unsafe {
        cmem::free(r.samples);
        if r.name_owned {
            cmem::free(r.name.cast_mut());
        }
    }
    r.samples = ptr::null_mut();
    r.nr_entries = 0;
    r.size = 0;
    r.name = ptr::null();
    r.name_owned = false;
}

/// The regions of an array.
///
/// # Safety
///
/// `regions` holds `n` regions.
unsafe fn regions<'a>(
    regions: *mut vaccel_prof_region,
    n: c_int,
) -> Res<&'a mut [vaccel_prof_region]> {
    let n = ffi::count(n, "nregions")?;
    // SAFETY: caller guarantee.
    unsafe { ffi::slice_mut(regions, n, "regions") }
}

/// The last region named `name`.
///
/// # Safety
///
/// See the module docs.
unsafe fn by_name<'a>(
    list: *mut vaccel_prof_region,
    n: c_int,
    name_ptr: *const c_char,
) -> Res<&'a mut vaccel_prof_region> {
    // SAFETY: caller guarantee.
    let wanted = unsafe { ffi::str_arg(name_ptr, "name") }?;
    // SAFETY: caller guarantee.
    let list = unsafe { regions(list, n) }?;
    list.iter_mut()
        .rfind(|r| {
            !r.name.is_null()
                // SAFETY: names are null or NUL-terminated (caller guarantee).
                && unsafe { ffi::cstr_arg(r.name, "region name") }
                    .is_ok_and(|name| name.to_bytes() == wanted.as_bytes())
        })
        .ok_or_else(|| ffi::err(ErrorCode::ENOENT, format!("no region named {wanted}")))
}

/// `vaccel_prof_enabled`.
#[unsafe(no_mangle)]
pub extern "C" fn vaccel_prof_enabled() -> bool {
    guard_value("vaccel_prof_enabled", false, |_| false, || Ok(enabled()))
}

/// `vaccel_prof_region_start`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_region_start(region: *mut vaccel_prof_region) -> c_int {
    guard("vaccel_prof_region_start", || {
        if !enabled() {
            return Ok(());
        }
        // SAFETY: caller guarantee.
        unsafe { start(ffi::as_mut(region, "region")?) }
    })
}

/// `vaccel_prof_region_stop`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_region_stop(region: *const vaccel_prof_region) -> c_int {
    guard("vaccel_prof_region_stop", || {
        if !enabled() {
            return Ok(());
        }
        // SAFETY: caller guarantee.
        unsafe { stop(ffi::as_ref(region, "region")?) }
    })
}

/// `vaccel_prof_region_print`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_region_print(region: *const vaccel_prof_region) -> c_int {
    guard("vaccel_prof_region_print", || {
        if !enabled() {
            return Ok(());
        }
        // SAFETY: caller guarantee.
        if let Some(l) = unsafe { line(ffi::as_ref(region, "region")?) }? {
            log::info!("{l}");
        }
        Ok(())
    })
}

/// `vaccel_prof_region_init`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_region_init(
    region: *mut vaccel_prof_region,
    name: *const c_char,
) -> c_int {
    guard("vaccel_prof_region_init", || {
        if !enabled() {
            return Ok(());
        }
        // SAFETY: caller guarantee.
        unsafe { init(region, name) }
    })
}

/// `vaccel_prof_region_release`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_region_release(region: *mut vaccel_prof_region) -> c_int {
    guard("vaccel_prof_region_release", || {
        if !enabled() {
            return Ok(());
        }
        // SAFETY: caller guarantee.
        unsafe { release(ffi::as_mut(region, "region")?) };
        Ok(())
    })
}

/// `vaccel_prof_regions_start_by_name`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_regions_start_by_name(
    regions: *mut vaccel_prof_region,
    nregions: c_int,
    name: *const c_char,
) -> c_int {
    guard("vaccel_prof_regions_start_by_name", || {
        if !enabled() {
            return Ok(());
        }
        // SAFETY: caller guarantee.
        unsafe { start(by_name(regions, nregions, name)?) }
    })
}

/// `vaccel_prof_regions_stop_by_name`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_regions_stop_by_name(
    regions: *mut vaccel_prof_region,
    nregions: c_int,
    name: *const c_char,
) -> c_int {
    guard("vaccel_prof_regions_stop_by_name", || {
        if !enabled() {
            return Ok(());
        }
        // SAFETY: caller guarantee.
        unsafe { stop(by_name(regions, nregions, name)?) }
    })
}

/// `vaccel_prof_regions_init`: each region with a NULL name (a 256-byte zeroed buffer).
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_regions_init(
    regions: *mut vaccel_prof_region,
    nregions: c_int,
) -> c_int {
    guard("vaccel_prof_regions_init", || {
        if !enabled() {
            return Ok(());
        }
        let n = ffi::count(nregions, "nregions")?;
        if n > 0 {
            ffi::out_ptr(regions, "regions")?;
        }
        for i in 0..n {
            // SAFETY: `regions` holds `n` writable slots (caller guarantee).
            unsafe { init(regions.add(i), ptr::null()) }?;
        }
        Ok(())
    })
}

/// `vaccel_prof_regions_release`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_regions_release(
    regions: *mut vaccel_prof_region,
    nregions: c_int,
) -> c_int {
    guard("vaccel_prof_regions_release", || {
        if !enabled() {
            return Ok(());
        }
        // SAFETY: caller guarantee.
        for r in unsafe { self::regions(regions, nregions) }? {
            // SAFETY: caller guarantee.
            unsafe { release(r) };
        }
        Ok(())
    })
}

/// `vaccel_prof_regions_print_all`.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_regions_print_all(
    regions: *mut vaccel_prof_region,
    nregions: c_int,
) -> c_int {
    guard("vaccel_prof_regions_print_all", || {
        if !enabled() {
            return Ok(());
        }
        // SAFETY: caller guarantee.
        for r in unsafe { self::regions(regions, nregions) }? {
            // SAFETY: caller guarantee.
            if let Some(l) = unsafe { line(r) }? {
                log::info!("{l}");
            }
        }
        Ok(())
    })
}

/// `vaccel_prof_regions_print_all_to_buf`: `tbuf` NULL returns the bytes needed (each line
/// plus its NUL); otherwise `*tbuf` receives a malloc'ed `tbuf_len`-byte buffer of
/// NUL-separated lines and the number of regions is returned (upstream's quirk). Errors are
/// negative codes.
///
/// # Safety
///
/// See the module docs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vaccel_prof_regions_print_all_to_buf(
    tbuf: *mut *mut c_char,
    tbuf_len: usize,
    regions: *mut vaccel_prof_region,
    nregions: c_int,
) -> c_int {
    let on_err = |e: &vaccel_core::Error| -e.code().as_i32();
    guard_value(
        "vaccel_prof_regions_print_all_to_buf",
        -ErrorCode::EBACKEND.as_i32(),
        on_err,
        || {
            if !enabled() {
                return Ok(0);
            }
            // SAFETY: caller guarantee.
            let list = unsafe { self::regions(regions, nregions) }?;
            let mut lines = Vec::new();
            for r in list.iter() {
                // SAFETY: caller guarantee.
                if let Some(l) = unsafe { line(r) }? {
                    lines.push(l);
                }
            }
            let needed: usize = lines.iter().map(|l| l.len() + 1).sum();
            if tbuf.is_null() {
                return c_int::try_from(needed).map_err(|_| invalid("output too large"));
            }
            let out = ffi::out_ptr(tbuf, "tbuf")?;
            let buf = cmem::calloc::<u8>(tbuf_len, "prof buffer")?;
            let mut at = 0usize;
            for l in &lines {
                let room = tbuf_len.saturating_sub(at);
                let n = l.len().min(room.saturating_sub(1));
                if room == 0 {
                    break;
                }
                // SAFETY: `buf` holds `tbuf_len` zeroed bytes; `at + n < tbuf_len`, and the NUL
                // after it is already zero.
                unsafe { ptr::copy_nonoverlapping(l.as_ptr(), buf.add(at), n) };
                at += n + 1;
            }
            // SAFETY: checked by `out_ptr`.
            unsafe { ffi::write_out(out, buf.cast::<c_char>()) };
            Ok(nregions)
        },
    )
}
