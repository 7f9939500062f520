//! The plugin's log lines (upstream's `[exec] ` debug messages and option warnings). One test in
//! its own binary, because it installs the process-wide logger.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Mutex;

use common::Fixture;
use vaccel_core::{Arg, Resource, ResourceType};
use vaccel_plugin_exec::ExecOptions;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

fn take() -> Vec<String> {
    std::mem::take(&mut *LINES.lock().unwrap())
}

fn assert_in_order(lines: &[String], expected: &[String]) {
    let mut rest = lines.iter();
    for want in expected {
        assert!(
            rest.any(|l| l == want),
            "missing (or out of order) {want:?} in:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn log_lines_follow_upstream() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Debug);

    let _ = ExecOptions::from_lookup(|name| match name {
        "VACCEL_EXEC_DLOPEN_MODE" => Some("sometimes".to_owned()),
        _ => None,
    });
    assert_in_order(
        &take(),
        &[
            "WARN [exec] Invalid value 'sometimes' for VACCEL_EXEC_DLOPEN_MODE. Using default: now"
                .to_owned(),
        ],
    );

    let fx = Fixture::default_options();
    let sess = fx.session();
    let id = sess.id();
    take();

    sess.noop().unwrap();
    assert_in_order(
        &take(),
        &[format!("DEBUG [exec] session:{id} Calling no-op")],
    );

    let mut out = 0i32;
    let text = Arg::string("hi").unwrap();
    sess.exec(
        fx.libt_str(),
        "double_it",
        &[Arg::scalar(10i32), text],
        &mut [Arg::out_scalar(&mut out)],
    )
    .unwrap();
    assert_in_order(
        &take(),
        &[
            format!("DEBUG [exec] session:{id} Calling exec"),
            format!("DEBUG [exec] Library: {}", fx.libt_str()),
            "DEBUG [exec] Symbol: double_it".to_owned(),
            "DEBUG [exec] read[0].size: 4".to_owned(),
            "DEBUG [exec] read[0].type: int32".to_owned(),
            "DEBUG [exec] read[1].size: 3".to_owned(),
            "DEBUG [exec] read[1].type: string".to_owned(),
            "DEBUG [exec] write[0].size: 4".to_owned(),
            "DEBUG [exec] write[0].type: int32".to_owned(),
        ],
    );

    let res = Resource::new(&fx.rt, fx.libt_str(), ResourceType::Lib).unwrap();
    sess.register(&res).unwrap();
    take();
    sess.exec_with_resource(
        &res,
        "double_it",
        &[Arg::scalar(1i32)],
        &mut [Arg::out_scalar(&mut out)],
    )
    .unwrap();
    assert_in_order(
        &take(),
        &[
            format!("DEBUG [exec] session:{id} Calling exec_with_resource"),
            format!("DEBUG [exec] Resource: {}", res.id()),
            format!("DEBUG [exec] Library: {}", fx.libt_str()),
            "DEBUG [exec] Symbol: double_it".to_owned(),
            "DEBUG [exec] read[0].size: 4".to_owned(),
            "DEBUG [exec] read[0].type: int32".to_owned(),
        ],
    );

    // A failed dependency open warns and retries with the other mode.
    let junk = fx.dir.path().join("libjunk.so");
    std::fs::write(&junk, b"not an ELF file").unwrap();
    let bad = Resource::from_paths(
        &fx.rt,
        &[common::s(&junk), fx.libt_str()],
        ResourceType::Lib,
    )
    .unwrap();
    sess.register(&bad).unwrap();
    take();
    assert!(
        sess.exec_with_resource(&bad, "double_it", &[], &mut [])
            .is_err()
    );
    let lines = take();
    let warn = format!(
        "WARN [exec] dlopen with RTLD_NOW failed for {}",
        common::s(&junk)
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&warn)),
        "missing {warn:?} in:\n{}",
        lines.join("\n")
    );
    assert_in_order(
        &lines,
        &["WARN [exec] Trying RTLD_LAZY fallback".to_owned()],
    );
}
