//! Profiling regions: named lists of timed samples, printed as upstream's `[prof]` lines.
//!
//! A region is enabled when created with [`Region::new`]; the runtime disables them (see
//! [`Region::set_enabled`], [`OpRegions::with_enabled`]) unless `VACCEL_PROFILING_ENABLED` is
//! set, and a disabled region does nothing but one relaxed atomic load per call.
//!
//! ```
//! use vaccel_core::prof::Region;
//!
//! let region = Region::new("my_region");
//! {
//!     let _timed = region.enter();
//!     // ... the work being measured ...
//! }
//! assert_eq!(region.nr_entries(), 1);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::types::OpType;

/// The instant sample start times are measured from: the first use of the profiler.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since [`EPOCH`] on a monotonic clock.
fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    // u64 nanoseconds last 584 years; saturate rather than wrap past that.
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// One timed execution of a region (upstream `struct vaccel_prof_sample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// When it started, in ns since a process-wide epoch.
    pub start: u64,
    /// How long it took, in ns; 0 while a [`Region::start`]ed sample is not yet stopped.
    pub time: u64,
}

/// A named profiling region collecting [`Sample`]s (upstream `struct vaccel_prof_region`).
///
/// Safe to share between threads; [`Region::enter`] is the form that stays correct when
/// several threads time the same region at once.
pub struct Region {
    name: Cow<'static, str>,
    enabled: AtomicBool,
    samples: Mutex<Vec<Sample>>,
}

impl fmt::Debug for Region {
    /// Shows the count, not the samples: a region may hold millions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.name)
            .field("enabled", &self.is_enabled())
            .field("nr_entries", &self.nr_entries())
            .finish()
    }
}

impl Region {
    /// An empty, enabled region.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Region {
        Region::with_enabled(name, true)
    }

    /// An empty region, enabled or not.
    pub fn with_enabled(name: impl Into<Cow<'static, str>>, enabled: bool) -> Region {
        Region {
            name: name.into(),
            enabled: AtomicBool::new(enabled),
            samples: Mutex::new(Vec::new()),
        }
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the region records samples.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Starts or stops recording; samples already recorded are kept.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Locks the samples; a panic in another holder cannot leave them inconsistent (every
    /// update is a single push or field store), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, Vec<Sample>> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a sample starting now with no duration yet (upstream `vaccel_prof_region_start`).
    ///
    /// Pair with [`Region::stop`]; under concurrency prefer [`Region::enter`], since `stop`
    /// completes whichever sample was started last.
    pub fn start(&self) {
        if !self.is_enabled() {
            return;
        }
        let start = now_ns();
        self.lock().push(Sample { start, time: 0 });
        log::debug!("Start profiling region {}", self.name);
    }

    /// Sets the duration of the last sample to the time elapsed since it started (upstream
    /// `vaccel_prof_region_stop`). Does nothing when the region is disabled.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the region has no sample (upstream's `ENOENT`).
    pub fn stop(&self) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        let now = now_ns();
        {
            let mut samples = self.lock();
            let Some(last) = samples.last_mut() else {
                return Err(Error::not_found(format!(
                    "no started sample in profiling region {}",
                    self.name
                )));
            };
            last.time = now.saturating_sub(last.start);
        }
        log::debug!("Stop profiling region {}", self.name);
        Ok(())
    }

    /// Starts timing; one complete sample is recorded when the guard drops.
    ///
    /// Unlike [`Region::start`]/[`Region::stop`], concurrent guards each record their own
    /// duration. Nothing is recorded if the region was disabled when entered.
    pub fn enter(&self) -> RegionGuard<'_> {
        let start = if self.is_enabled() {
            log::debug!("Start profiling region {}", self.name);
            Some(now_ns())
        } else {
            None
        };
        RegionGuard {
            region: self,
            start,
        }
    }

    /// Appends a complete sample (ignored when the region is disabled).
    pub fn record(&self, sample: Sample) {
        if self.is_enabled() {
            self.lock().push(sample);
        }
    }

    /// A copy of the samples, in the order they were started or recorded.
    pub fn samples(&self) -> Vec<Sample> {
        self.lock().clone()
    }

    /// The number of samples.
    pub fn nr_entries(&self) -> usize {
        self.lock().len()
    }

    /// The sum of the samples' durations in ns (saturating).
    pub fn total_time(&self) -> u64 {
        total(&self.lock())
    }

    /// `[prof] <name>: total_time: <ns> nsec nr_entries: <n>`, or `None` without samples.
    pub fn format(&self) -> Option<String> {
        let (total, count) = {
            let samples = self.lock();
            (total(&samples), samples.len())
        };
        (count > 0).then(|| {
            format!(
                "[prof] {}: total_time: {total} nsec nr_entries: {count}",
                self.name
            )
        })
    }

    /// Logs [`Region::format`]'s line at info level, if the region has samples (upstream
    /// `vaccel_prof_region_print`).
    pub fn print(&self) {
        if let Some(line) = self.format() {
            log::info!("{line}");
        }
    }
}

/// The saturating sum of the samples' durations.
fn total(samples: &[Sample]) -> u64 {
    samples
        .iter()
        .fold(0u64, |sum, sample| sum.saturating_add(sample.time))
}

/// Times a [`Region`] from [`Region::enter`] until dropped.
#[must_use = "the sample is recorded when the guard drops; binding it to `_` drops it at once"]
#[derive(Debug)]
pub struct RegionGuard<'a> {
    region: &'a Region,
    /// `None` when the region was disabled at entry.
    start: Option<u64>,
}

impl Drop for RegionGuard<'_> {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            let time = now_ns().saturating_sub(start);
            // Pushed directly: a sample begun while enabled is kept even if profiling was
            // switched off meanwhile.
            self.region.lock().push(Sample { start, time });
            log::debug!("Stop profiling region {}", self.region.name);
        }
    }
}

/// The name of the built-in profiling region of `op`, as upstream's op files declare them
/// (the five image ops share `vaccel_image_op`).
pub const fn op_region_name(op: OpType) -> &'static str {
    match op {
        OpType::Noop => "vaccel_noop_op",
        OpType::Exec => "vaccel_exec_op",
        OpType::ExecWithResource => "vaccel_exec_with_resource_op",
        OpType::ImageClassify
        | OpType::ImageDetect
        | OpType::ImageSegment
        | OpType::ImagePose
        | OpType::ImageDepth => "vaccel_image_op",
        OpType::TfModelLoad => "vaccel_tf_model_load",
        OpType::TfModelUnload => "vaccel_tf_model_unload",
        OpType::TfModelRun => "vaccel_tf_model_run",
        OpType::TfliteModelLoad => "vaccel_tflite_model_load",
        OpType::TfliteModelUnload => "vaccel_tflite_model_unload",
        OpType::TfliteModelRun => "vaccel_tflite_model_run",
        OpType::TorchModelLoad => "vaccel_torch_model_load_op",
        OpType::TorchModelRun => "vaccel_torch_model_run_op",
        OpType::TorchSgemm => "vaccel_sgemm_op",
        OpType::BlasSgemm => "vaccel_blas_op",
        OpType::FpgaArraycopy => "vaccel_fpga_arraycopy_op",
        OpType::FpgaMmult => "vaccel_fpga_mmult_op",
        OpType::FpgaParallel => "vaccel_fpga_parallel_op",
        OpType::FpgaVectoradd => "vaccel_fpga_vadd_op",
        OpType::Minmax => "vaccel_minmax_op",
        OpType::Opencv => "vaccel_opencv_op",
    }
}

/// Number of distinct op regions: 24 ops, the five image ops sharing one.
const NR_OP_REGIONS: usize = OpType::MAX as usize - 4;

/// Position of `op`'s region in [`OpRegions`]: distinct regions numbered in op order.
const fn op_slot(op: OpType) -> usize {
    let value = op.value() as usize;
    if value <= OpType::ImageClassify.value() as usize {
        value
    } else if value <= OpType::ImageDepth.value() as usize {
        OpType::ImageClassify.value() as usize
    } else {
        value - 4
    }
}

// Proves at compile time that every op's slot is in bounds, which is what makes the indexing
// in `OpRegions::region` unable to panic.
const _: () = {
    let mut value = 0;
    while value < OpType::MAX {
        if let Some(op) = OpType::from_value(value) {
            assert!(op_slot(op) < NR_OP_REGIONS);
        }
        value += 1;
    }
};

/// The built-in region of every operation, one per distinct [`op_region_name`].
#[derive(Debug)]
pub struct OpRegions {
    /// Indexed by [`op_slot`], so in op order.
    regions: [Region; NR_OP_REGIONS],
}

impl Default for OpRegions {
    fn default() -> Self {
        OpRegions::new()
    }
}

impl OpRegions {
    /// All op regions, empty and enabled.
    pub fn new() -> Self {
        OpRegions::with_enabled(true)
    }

    /// All op regions, empty, enabled or not (the runtime passes `config.profiling_enabled`).
    pub fn with_enabled(enabled: bool) -> Self {
        let regions = std::array::from_fn(|slot| {
            let name = OpType::ALL
                .iter()
                .find(|op| op_slot(**op) == slot)
                .map_or("", |op| op_region_name(*op));
            Region::with_enabled(name, enabled)
        });
        OpRegions { regions }
    }

    /// The region timing `op`.
    #[allow(clippy::indexing_slicing)] // op_slot is in bounds for every op (checked at compile time)
    pub fn region(&self, op: OpType) -> &Region {
        &self.regions[op_slot(op)]
    }

    /// The distinct regions, in op order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Enables or disables every region.
    pub fn set_enabled(&self, enabled: bool) {
        for region in &self.regions {
            region.set_enabled(enabled);
        }
    }

    /// Prints each region with samples once, in op order (upstream prints them at exit).
    pub fn print_all(&self) {
        for region in &self.regions {
            region.print();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests may panic
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn start_and_stop_time_the_last_sample() {
        let region = Region::new("r");
        region.start();
        std::thread::sleep(Duration::from_millis(2));
        region.stop().unwrap();
        let samples = region.samples();
        assert_eq!(samples.len(), 1);
        assert!(samples[0].time >= 2_000_000, "{samples:?}");

        // Upstream semantics: a second start without stop leaves the first at 0...
        region.start();
        region.start();
        region.stop().unwrap();
        let samples = region.samples();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[1].time, 0);
        assert!(samples[2].start >= samples[1].start);
        // ...and stop again re-times the last one.
        region.stop().unwrap();
        assert_eq!(region.nr_entries(), 3);
    }

    #[test]
    fn stop_without_start_is_not_found() {
        let region = Region::new("never_started");
        let err = region.stop().unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
        assert_eq!(err.code(), crate::error::ErrorCode::ENOENT);
        assert!(err.to_string().contains("never_started"), "{err}");
    }

    #[test]
    fn guard_records_one_complete_sample() {
        let region = Region::new("guarded");
        {
            let _timed = region.enter();
            std::thread::sleep(Duration::from_millis(1));
        }
        let samples = region.samples();
        assert_eq!(samples.len(), 1);
        assert!(samples[0].time >= 1_000_000, "{samples:?}");
    }

    #[test]
    fn totals_and_format_text() {
        let region = Region::new(op_region_name(OpType::Noop));
        assert_eq!(region.format(), None);
        assert_eq!(region.total_time(), 0);
        region.print(); // nothing to print; must not fail
        region.record(Sample {
            start: 10,
            time: 10,
        });
        region.record(Sample { start: 5, time: 20 });
        assert_eq!(region.total_time(), 30);
        assert_eq!(region.nr_entries(), 2);
        assert_eq!(
            region.format().as_deref(),
            Some("[prof] vaccel_noop_op: total_time: 30 nsec nr_entries: 2")
        );
        assert_eq!(
            region.samples(),
            [
                Sample {
                    start: 10,
                    time: 10
                },
                Sample { start: 5, time: 20 }
            ]
        );
        region.print();

        let huge = Region::new(String::from("owned name"));
        huge.record(Sample {
            start: 0,
            time: u64::MAX,
        });
        huge.record(Sample { start: 0, time: 1 });
        assert_eq!(huge.total_time(), u64::MAX);
        assert_eq!(huge.name(), "owned name");
    }

    #[test]
    fn disabled_regions_do_nothing() {
        let region = Region::with_enabled("off", false);
        region.start();
        region.stop().unwrap();
        drop(region.enter());
        region.record(Sample { start: 1, time: 1 });
        assert_eq!(region.nr_entries(), 0);
        assert_eq!(region.format(), None);

        // A guard entered while enabled still records after profiling is switched off.
        region.set_enabled(true);
        let timed = region.enter();
        region.set_enabled(false);
        drop(timed);
        assert_eq!(region.nr_entries(), 1);
    }

    #[test]
    fn concurrent_guards_record_exactly_one_sample_each() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 1000;
        let region = Arc::new(Region::new("shared"));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let region = Arc::clone(&region);
                std::thread::spawn(move || {
                    for _ in 0..PER_THREAD {
                        let _timed = region.enter();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(region.nr_entries(), THREADS * PER_THREAD);
    }

    #[test]
    fn op_region_names_match_upstream() {
        let expected = [
            (OpType::Noop, "vaccel_noop_op"),
            (OpType::Exec, "vaccel_exec_op"),
            (OpType::ExecWithResource, "vaccel_exec_with_resource_op"),
            (OpType::ImageClassify, "vaccel_image_op"),
            (OpType::ImageDetect, "vaccel_image_op"),
            (OpType::ImageSegment, "vaccel_image_op"),
            (OpType::ImagePose, "vaccel_image_op"),
            (OpType::ImageDepth, "vaccel_image_op"),
            (OpType::TfModelLoad, "vaccel_tf_model_load"),
            (OpType::TfModelUnload, "vaccel_tf_model_unload"),
            (OpType::TfModelRun, "vaccel_tf_model_run"),
            (OpType::TfliteModelLoad, "vaccel_tflite_model_load"),
            (OpType::TfliteModelUnload, "vaccel_tflite_model_unload"),
            (OpType::TfliteModelRun, "vaccel_tflite_model_run"),
            (OpType::TorchModelLoad, "vaccel_torch_model_load_op"),
            (OpType::TorchModelRun, "vaccel_torch_model_run_op"),
            (OpType::TorchSgemm, "vaccel_sgemm_op"),
            (OpType::BlasSgemm, "vaccel_blas_op"),
            (OpType::FpgaArraycopy, "vaccel_fpga_arraycopy_op"),
            (OpType::FpgaMmult, "vaccel_fpga_mmult_op"),
            (OpType::FpgaParallel, "vaccel_fpga_parallel_op"),
            (OpType::FpgaVectoradd, "vaccel_fpga_vadd_op"),
            (OpType::Minmax, "vaccel_minmax_op"),
            (OpType::Opencv, "vaccel_opencv_op"),
        ];
        assert_eq!(expected.len(), OpType::ALL.len());
        for (op, name) in expected {
            assert_eq!(op_region_name(op), name, "{op}");
        }
    }

    #[test]
    fn op_regions_are_shared_per_name_in_op_order() {
        let regions = OpRegions::new();
        assert_eq!(regions.regions().len(), NR_OP_REGIONS);
        let names: Vec<&str> = regions.regions().iter().map(Region::name).collect();
        let distinct: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(distinct.len(), NR_OP_REGIONS, "{names:?}");

        let mut first_seen = Vec::new();
        for op in OpType::ALL {
            let region = regions.region(*op);
            assert_eq!(region.name(), op_region_name(*op));
            if !first_seen.contains(&region.name()) {
                first_seen.push(region.name());
            }
        }
        assert_eq!(names, first_seen);

        regions
            .region(OpType::ImageDetect)
            .record(Sample { start: 0, time: 7 });
        assert_eq!(regions.region(OpType::ImageDepth).total_time(), 7);
        assert!(std::ptr::eq(
            regions.region(OpType::ImageClassify),
            regions.region(OpType::ImagePose)
        ));
        regions.print_all();
    }

    #[test]
    fn op_regions_can_be_disabled() {
        let regions = OpRegions::with_enabled(false);
        drop(regions.region(OpType::Exec).enter());
        assert_eq!(regions.region(OpType::Exec).nr_entries(), 0);
        regions.set_enabled(true);
        drop(regions.region(OpType::Exec).enter());
        assert_eq!(regions.region(OpType::Exec).nr_entries(), 1);
        assert!(OpRegions::default().region(OpType::Noop).is_enabled());
    }
}
