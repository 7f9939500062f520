//! The mbench plugin through a real runtime: timing lower bounds (never upper ones: CI
//! machines stall), argument checks, profiling and the bundled descriptor.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use vaccel_core::{Arg, Config, ErrorCode, OpType, PluginType, Runtime, Session};
use vaccel_plugin_mbench::{MbenchPlugin, REGION_NAME};

/// Records log messages of the threads inside `logs` (see the noop plugin's tests).
mod capture {
    use std::cell::RefCell;
    use std::sync::Once;

    thread_local! {
        static LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    }

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            LINES.with(|l| {
                if let Some(lines) = l.borrow_mut().as_mut() {
                    lines.push(record.args().to_string());
                }
            });
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;
    static INIT: Once = Once::new();

    pub fn logs<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
        INIT.call_once(|| {
            log::set_logger(&CAPTURE).expect("no other logger in this test binary");
            log::set_max_level(log::LevelFilter::Trace);
        });
        LINES.with(|l| *l.borrow_mut() = Some(Vec::new()));
        let r = f();
        let lines = LINES.with(|l| l.borrow_mut().take()).unwrap_or_default();
        (r, lines)
    }
}

use capture::logs;

struct Fx {
    rt: Runtime,
    plugin: Arc<MbenchPlugin>,
    _dir: TempDir,
}

fn fx(profiling: bool) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Arc::new(MbenchPlugin::new(profiling));
    let rt = Runtime::builder()
        .rundir_base(dir.path())
        .skip_logging()
        .config(Config::default().with_profiling(profiling))
        .plugin(plugin.clone())
        .build()
        .unwrap();
    Fx {
        rt,
        plugin,
        _dir: dir,
    }
}

/// `read` as upstream's mbench example sends it: the time as a string, then a payload.
fn read(time: &str) -> [Arg<'static>; 2] {
    [
        Arg::string(time).unwrap(),
        Arg::owned(vaccel_core::ArgType::Buffer, b"payload".to_vec()).unwrap(),
    ]
}

#[track_caller]
fn code<T: std::fmt::Debug>(r: vaccel_core::Result<T>) -> ErrorCode {
    r.unwrap_err().code()
}

#[test]
fn five_ms_takes_at_least_five_ms_and_is_profiled() {
    let fx = fx(true);
    let sess = Session::new(&fx.rt, 0).unwrap();
    let start = Instant::now();
    let (r, lines) = logs(|| sess.exec("mbench", "mbench", &read("5"), &mut []));
    r.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(5));
    assert!(
        lines.contains(&format!(
            "[mbench] Calling mbench for session {}",
            sess.id()
        )),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"[mbench] 5 ms elapsed".to_owned()),
        "{lines:#?}"
    );

    let region = fx.plugin.region();
    assert_eq!(region.name(), REGION_NAME);
    assert_eq!(region.nr_entries(), 1);
    assert!(region.total_time() >= 5_000_000);
    // The runtime's exec region wraps the plugin's.
    let exec = fx.rt.op_regions().region(OpType::Exec);
    assert_eq!(exec.nr_entries(), 1);
    assert!(exec.total_time() >= region.total_time());

    // fini prints the region as upstream's `[prof]` line.
    let (r, lines) = logs(|| vaccel_core::Plugin::fini(&*fx.plugin));
    r.unwrap();
    assert!(
        lines.iter().any(
            |l| l.starts_with("[prof] vaccel_mbench_plugin: total_time: ")
                && l.ends_with(" nsec nr_entries: 1")
        ),
        "{lines:#?}"
    );
}

#[test]
fn genop_exec_layout_reaches_mbench() {
    let fx = fx(true);
    let sess = Session::new(&fx.rt, 0).unwrap();
    let start = Instant::now();
    let [time, payload] = read("3");
    sess.genop(
        &[
            Arg::scalar(OpType::Exec.value()),
            Arg::string("mbench").unwrap(),
            Arg::string("mbench").unwrap(),
            time,
            payload,
        ],
        &mut [],
    )
    .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(3));
    assert_eq!(fx.plugin.region().nr_entries(), 1);
}

#[test]
fn time_may_be_raw_or_buffer_text() {
    let fx = fx(true);
    let sess = Session::new(&fx.rt, 0).unwrap();
    let payload = Arg::buffer(b"x").unwrap();
    let start = Instant::now();
    sess.exec(
        "mbench",
        "mbench",
        &[Arg::raw(b"2\0"), payload.to_owned_arg()],
        &mut [],
    )
    .unwrap();
    sess.exec(
        "mbench",
        "mbench",
        &[Arg::buffer(b"2").unwrap(), payload.to_owned_arg()],
        &mut [],
    )
    .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(4));
    assert_eq!(fx.plugin.region().nr_entries(), 2);
}

#[test]
fn times_outside_one_to_300000_ms_are_einval() {
    let fx = fx(true);
    let sess = Session::new(&fx.rt, 0).unwrap();
    for bad in [
        "0",
        "300001",
        "-5",
        "abc",
        "5ms",
        "",
        "18446744073709551616",
    ] {
        assert_eq!(
            code(sess.exec("mbench", "mbench", &read(bad), &mut [])),
            ErrorCode::EINVAL,
            "{bad:?}"
        );
    }
    // Not text at all.
    assert_eq!(
        code(sess.exec(
            "mbench",
            "mbench",
            &[Arg::scalar(5i32), Arg::buffer(b"x").unwrap()],
            &mut []
        )),
        ErrorCode::EINVAL
    );
    // Rejected calls do not wait, so they are not samples.
    assert_eq!(fx.plugin.region().nr_entries(), 0);
    // The smallest valid time.
    sess.exec("mbench", "mbench", &read("1"), &mut []).unwrap();
    assert_eq!(fx.plugin.region().nr_entries(), 1);
}

#[test]
fn library_and_symbol_must_both_be_mbench() {
    let fx = fx(true);
    let sess = Session::new(&fx.rt, 0).unwrap();
    for (library, symbol) in [
        ("mbench", "other"),
        ("other", "mbench"),
        ("libmbench.so", "mbench"),
        ("x", "y"),
        ("MBENCH", "mbench"),
    ] {
        assert_eq!(
            code(sess.exec(library, symbol, &read("1"), &mut [])),
            ErrorCode::EINVAL,
            "{library} {symbol}"
        );
    }
    assert_eq!(fx.plugin.region().nr_entries(), 0);
}

#[test]
fn two_read_arguments_are_required() {
    let fx = fx(true);
    let sess = Session::new(&fx.rt, 0).unwrap();
    let [time, _] = read("1");
    assert_eq!(
        code(sess.exec("mbench", "mbench", &[time], &mut [])),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.exec("mbench", "mbench", &[], &mut [])),
        ErrorCode::EINVAL
    );
    // Extra read and write arguments are ignored.
    let [time, payload] = read("1");
    let mut out = 0i32;
    sess.exec(
        "mbench",
        "mbench",
        &[time, payload, Arg::scalar(9i32)],
        &mut [Arg::out_scalar(&mut out)],
    )
    .unwrap();
    assert_eq!(out, 0);
}

#[test]
fn only_exec_is_implemented() {
    let fx = fx(false);
    let sess = Session::new(&fx.rt, 0).unwrap();
    assert_eq!(code(sess.noop()), ErrorCode::ENOTSUP);
    assert_eq!(
        code(sess.image_detect(b"img", &mut [0; 8])),
        ErrorCode::ENOTSUP
    );
    assert_eq!(
        code(sess.genop(&[Arg::scalar(OpType::Opencv.value())], &mut [])),
        ErrorCode::ENOTSUP
    );
}

#[test]
fn disabled_profiling_records_nothing() {
    let fx = fx(false);
    let sess = Session::new(&fx.rt, 0).unwrap();
    let start = Instant::now();
    sess.exec("mbench", "mbench", &read("2"), &mut []).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(2));
    assert_eq!(fx.plugin.region().nr_entries(), 0);
    let (r, lines) = logs(|| vaccel_core::Plugin::fini(&*fx.plugin));
    r.unwrap();
    assert!(!lines.iter().any(|l| l.starts_with("[prof]")), "{lines:#?}");
}

#[test]
fn bundled_descriptor_follows_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .rundir_base(dir.path())
        .skip_logging()
        .bundled([vaccel_plugin_mbench::bundled()])
        .config(
            Config::default()
                .with_plugins("mbench")
                .with_profiling(true),
        )
        .build()
        .unwrap();
    let info = &rt.plugins()[0];
    assert_eq!(info.name, "mbench");
    assert_eq!(
        info.plugin_type,
        PluginType::SOFTWARE | PluginType::GENERIC | PluginType::CPU
    );
    assert_eq!(info.plugin_type.bits(), 0x89);
    assert_eq!(info.vaccel_version, vaccel_core::VACCEL_VERSION);
    // Selected by a CPU hint as well as by no hint.
    let sess = Session::new(&rt, PluginType::CPU.bits()).unwrap();
    sess.exec("mbench", "mbench", &read("1"), &mut []).unwrap();
    // The runtime calls fini when it ends, which prints the plugin's region.
    drop(sess);
    let ((), lines) = logs(|| drop(rt));
    assert!(
        lines.iter().any(
            |l| l.starts_with("[prof] vaccel_mbench_plugin: total_time: ")
                && l.ends_with(" nsec nr_entries: 1")
        ),
        "{lines:#?}"
    );
}
