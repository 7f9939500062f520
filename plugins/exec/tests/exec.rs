//! `exec` (and genop EXEC) against C libraries compiled at test time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use common::{Fixture, options};
use vaccel_core::{Arg, ArgError, ArgType, Error, ErrorCode, Session};
use vaccel_plugin_exec::DlopenMode;

fn double(sess: &Session, lib: &str, v: i32) -> vaccel_core::Result<i32> {
    let mut out = 0i32;
    sess.exec(
        lib,
        "double_it",
        &[Arg::scalar(v)],
        &mut [Arg::out_scalar(&mut out)],
    )?;
    Ok(out)
}

fn count(sess: &Session, lib: &str) -> i32 {
    let mut out = 0i32;
    sess.exec(lib, "count_calls", &[], &mut [Arg::out_scalar(&mut out)])
        .unwrap();
    out
}

#[test]
fn exec_doubles_an_int32() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    assert_eq!(double(&sess, fx.libt_str(), 10).unwrap(), 20);
    assert_eq!(double(&sess, fx.libt_str(), -21).unwrap(), -42);
}

#[test]
fn noop_is_implemented() {
    let fx = Fixture::default_options();
    fx.session().noop().unwrap();
}

#[test]
fn missing_library_is_einval() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let missing = fx.dir.path().join("libmissing.so");
    let err = double(&sess, common::s(&missing), 1).unwrap_err();
    assert_eq!(err.code(), ErrorCode::EINVAL, "{err}");
    assert!(err.to_string().contains("dlopen failed"), "{err}");
}

#[test]
fn missing_symbol_is_enosys() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let err = sess
        .exec(fx.libt_str(), "no_such_function", &[], &mut [])
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ENOSYS, "{err}");
    assert!(err.to_string().contains("no_such_function"), "{err}");
}

#[test]
fn bare_library_names_use_the_search_path() {
    // A bare soname is found on the normal library path: the open succeeds (no EINVAL) and only
    // the symbol is missing.
    let fx = Fixture::default_options();
    let err = fx
        .session()
        .exec("libc.so.6", "vaccel_no_such_function", &[], &mut [])
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ENOSYS, "{err}");
}

#[test]
fn nonzero_return_is_ebackend() {
    let fx = Fixture::default_options();
    let err = fx
        .session()
        .exec(fx.libt_str(), "fail_it", &[], &mut [])
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::EBACKEND, "{err}");
    assert!(err.to_string().contains("fail_it returned 7"), "{err}");
}

#[test]
fn read_only_write_arg_is_rejected_before_the_call() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let bytes = 0i32.to_ne_bytes();
    let mut write = [Arg::new(ArgType::Int32, &bytes).unwrap()];
    let err = sess
        .exec(fx.libt_str(), "count_calls", &[], &mut write)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::EINVAL);
    assert!(
        matches!(
            err,
            Error::Arg {
                index: 0,
                source: ArgError::ReadOnly
            }
        ),
        "{err:?}"
    );
    // The function never ran: its first real call counts 1.
    assert_eq!(count(&sess, fx.libt_str()), 1);
}

#[test]
fn read_only_write_arg_after_writable_ones_is_rejected_too() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let mut first = 0i32;
    let bytes = 0i32.to_ne_bytes();
    let mut write = [
        Arg::out_scalar(&mut first),
        Arg::new(ArgType::Int32, &bytes).unwrap(),
    ];
    let err = sess
        .exec(fx.libt_str(), "count_calls", &[], &mut write)
        .unwrap_err();
    assert!(matches!(err, Error::Arg { index: 1, .. }), "{err:?}");
    drop(write);
    assert_eq!(first, 0, "nothing was called");
    assert_eq!(count(&sess, fx.libt_str()), 1);
}

#[test]
fn arguments_are_passed_in_place_with_their_types() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let array = [1.5f32, 2.5, 3.5];
    let custom = [9u8, 8, 7, 6, 5];
    let read = [
        Arg::scalar(7i32),
        Arg::array(&array).unwrap(),
        Arg::custom(42, &custom),
        Arg::raw(&[]),
    ];
    let mut described = [0u64; 4 * 5];
    let mut writes = [0u64; 6];
    let described_ptr = described.as_ptr() as u64;
    let writes_ptr = writes.as_ptr() as u64;
    sess.exec(
        fx.libt_str(),
        "describe",
        &read,
        &mut [
            Arg::out_array(&mut described).unwrap(),
            Arg::out_array(&mut writes).unwrap(),
        ],
    )
    .unwrap();
    let expected = |arg: &Arg<'_>, ptr: u64| {
        [
            u64::from(arg.ty().value()),
            u64::from(arg.custom_id()),
            arg.len() as u64,
            0, // owned: false, the bytes belong to the caller
            ptr,
        ]
    };
    assert_eq!(
        described[0..5],
        expected(&read[0], read[0].bytes().as_ptr() as u64)
    );
    // Borrowed buffers are passed by address, not copied.
    assert_eq!(described[5..10], expected(&read[1], array.as_ptr() as u64));
    assert_eq!(
        described[10..15],
        expected(&read[2], custom.as_ptr() as u64)
    );
    assert_eq!(described[12], 5);
    assert_eq!(described[11], 42);
    // An empty argument is NULL with size 0.
    assert_eq!(described[15..20], [0, 0, 0, 0, 0]);
    // The outputs the function wrote into are the caller's own buffers.
    assert_eq!(writes[0], described_ptr);
    assert_eq!(writes[1], u64::from(ArgType::Uint64Array.value()));
    assert_eq!(writes[2], 4 * 5 * 8);
    assert_eq!(writes[3], writes_ptr);
    assert_eq!(writes[4], u64::from(ArgType::Uint64Array.value()));
    assert_eq!(writes[5], 6 * 8);
}

#[test]
fn sum_args_sees_every_read_arg() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let (mut sum, mut n) = (0i32, 0i32);
    let read: Vec<Arg<'_>> = (1..=5).map(Arg::scalar).collect();
    sess.exec(
        fx.libt_str(),
        "sum_args",
        &read,
        &mut [Arg::out_scalar(&mut sum), Arg::out_scalar(&mut n)],
    )
    .unwrap();
    assert_eq!((sum, n), (15, 5));
    // No read args: the function gets NULL, 0.
    sess.exec(
        fx.libt_str(),
        "sum_args",
        &[],
        &mut [Arg::out_scalar(&mut sum)],
    )
    .unwrap();
    assert_eq!(sum, 0);
}

#[test]
fn empty_argument_arrays_are_null() {
    let fx = Fixture::default_options();
    fx.session()
        .exec(fx.libt_str(), "no_args", &[], &mut [])
        .unwrap();
}

#[test]
fn owned_write_args_receive_the_output() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let mut write = [Arg::zeroed(ArgType::Int32, 4).unwrap()];
    sess.exec(
        fx.libt_str(),
        "double_it",
        &[Arg::scalar(21i32)],
        &mut write,
    )
    .unwrap();
    assert_eq!(write[0].get::<i32>().unwrap(), 42);
}

#[test]
fn exec_keeps_the_library_open_by_default() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    // The same handle serves every call: the library's static counter keeps counting.
    assert_eq!(count(&sess, fx.libt_str()), 1);
    assert_eq!(count(&sess, fx.libt_str()), 2);
    assert_eq!(count(&fx.session(), fx.libt_str()), 3);
}

#[test]
fn exec_with_dlclose_enabled_reloads_the_library_each_call() {
    let fx = Fixture::new(options(DlopenMode::Now, Some(true)));
    let sess = fx.session();
    assert_eq!(count(&sess, fx.libt_str()), 1);
    assert_eq!(count(&sess, fx.libt_str()), 1);
}

#[test]
fn lazy_mode_defers_undefined_functions() {
    let now = Fixture::default_options();
    let lib = now.lazy_lib();
    let err = now
        .session()
        .exec(common::s(&lib), "count_calls", &[], &mut [])
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::EINVAL, "RTLD_NOW must refuse: {err}");

    let lazy = Fixture::new(options(DlopenMode::Lazy, None));
    let lib = lazy.lazy_lib();
    assert_eq!(count(&lazy.session(), common::s(&lib)), 1);
}

#[test]
fn genop_exec_layout() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let mut out = 0i32;
    sess.genop(
        &[
            Arg::scalar(1u8),
            Arg::string(fx.libt_str()).unwrap(),
            Arg::string("double_it").unwrap(),
            Arg::scalar(10i32),
        ],
        &mut [Arg::out_scalar(&mut out)],
    )
    .unwrap();
    assert_eq!(out, 20);

    let err = sess
        .genop(
            &[
                Arg::scalar(1u8),
                Arg::string(fx.libt_str()).unwrap(),
                Arg::string("fail_it").unwrap(),
            ],
            &mut [],
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::EBACKEND);
}

fn hammer(fx: &Fixture) {
    let sess = fx.session();
    let lib = fx.libt_str();
    std::thread::scope(|scope| {
        for t in 0..8i32 {
            let sess = Arc::clone(&sess);
            scope.spawn(move || {
                for i in 0..200i32 {
                    let v = t * 1000 + i;
                    assert_eq!(double(&sess, lib, v).unwrap(), 2 * v);
                }
            });
        }
    });
}

#[test]
fn concurrent_calls_on_one_session() {
    hammer(&Fixture::default_options());
}

#[test]
fn concurrent_calls_with_dlclose_enabled() {
    hammer(&Fixture::new(options(DlopenMode::Now, Some(true))));
}
