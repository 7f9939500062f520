//! `exec_with_resource` (and genop EXEC_WITH_RESOURCE), the per-resource library cache and the
//! unregister hook, against C libraries compiled at test time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use common::{Fixture, options, s};
use vaccel_core::{Arg, Blob, ErrorCode, Resource, ResourceType, Session};
use vaccel_plugin_exec::DlopenMode;

fn call_i32(sess: &Session, res: &Resource, symbol: &str, v: i32) -> vaccel_core::Result<i32> {
    let mut out = 0i32;
    sess.exec_with_resource(
        res,
        symbol,
        &[Arg::scalar(v)],
        &mut [Arg::out_scalar(&mut out)],
    )?;
    Ok(out)
}

fn count(sess: &Session, res: &Resource) -> i32 {
    let mut out = 0i32;
    sess.exec_with_resource(res, "count_calls", &[], &mut [Arg::out_scalar(&mut out)])
        .unwrap();
    out
}

#[test]
fn single_library_resource() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let res = Resource::new(&fx.rt, fx.libt_str(), ResourceType::Lib).unwrap();
    sess.register(&res).unwrap();
    assert_eq!(call_i32(&sess, &res, "double_it", 10).unwrap(), 20);
    let err = call_i32(&sess, &res, "no_such_function", 1).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ENOSYS);
    let err = call_i32(&sess, &res, "fail_it", 1).unwrap_err();
    assert_eq!(err.code(), ErrorCode::EBACKEND);
}

#[test]
fn dependencies_are_opened_global_before_the_main_library() {
    let fx = Fixture::default_options();
    let (dep, main) = fx.dep_pair("dep_value");
    let sess = fx.session();
    let res = Resource::from_paths(&fx.rt, &[s(&dep), s(&main)], ResourceType::Lib).unwrap();
    sess.register(&res).unwrap();
    assert_eq!(call_i32(&sess, &res, "use_dep", 5).unwrap(), 47);
    // Functions of the main library only: dlsym looks in the main library (and its deps).
    let err = call_i32(&sess, &res, "double_it", 1).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ENOSYS);
}

#[test]
fn main_library_alone_does_not_open_without_its_dependency() {
    // A symbol name no other test defines, so nothing global can satisfy it by accident.
    let fx = Fixture::default_options();
    let (dep, main) = fx.dep_pair("dep_value_only_in_this_test");
    let sess = fx.session();
    let alone = Resource::new(&fx.rt, s(&main), ResourceType::Lib).unwrap();
    sess.register(&alone).unwrap();
    let err = call_i32(&sess, &alone, "use_dep", 1).unwrap_err();
    assert_eq!(err.code(), ErrorCode::EINVAL, "{err}");
    assert!(err.to_string().contains("dlopen failed"), "{err}");
    assert_eq!(
        fx.plugin.open_resource_count(),
        0,
        "failures are not cached"
    );

    let both = Resource::from_paths(&fx.rt, &[s(&dep), s(&main)], ResourceType::Lib).unwrap();
    sess.register(&both).unwrap();
    assert_eq!(call_i32(&sess, &both, "use_dep", 1).unwrap(), 43);
}

#[test]
fn missing_dependency_file_fails_registration_or_open() {
    let fx = Fixture::default_options();
    let (_, main) = fx.dep_pair("dep_value");
    let missing = fx.dir.path().join("libmissing.so");
    // A path that does not exist fails already when its blob is made.
    assert!(
        Resource::from_paths(&fx.rt, &[s(&missing), s(&main)], ResourceType::Lib)
            .and_then(|res| fx.session().register(&res))
            .is_err()
    );
    // A file that is not a library fails at dlopen, in both modes (the fallback is tried).
    let junk = fx.dir.path().join("libjunk.so");
    std::fs::write(&junk, b"not an ELF file").unwrap();
    let sess = fx.session();
    let res = Resource::from_paths(&fx.rt, &[s(&junk), s(&main)], ResourceType::Lib).unwrap();
    sess.register(&res).unwrap();
    let err = call_i32(&sess, &res, "use_dep", 1).unwrap_err();
    assert_eq!(err.code(), ErrorCode::EINVAL, "{err}");
}

#[test]
fn handles_are_cached_per_resource() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let res = Resource::new(&fx.rt, fx.libt_str(), ResourceType::Lib).unwrap();
    sess.register(&res).unwrap();
    assert_eq!(count(&sess, &res), 1);
    assert_eq!(count(&sess, &res), 2);
    assert_eq!(count(&sess, &res), 3);
    assert_eq!(fx.plugin.open_resource_count(), 1);
}

#[test]
fn unregister_from_one_of_two_sessions_keeps_the_library_usable() {
    let fx = Fixture::default_options();
    let (dep, main) = fx.dep_pair("dep_value");
    // The counter lives in a library of its own, so a reload is visible.
    let res = Resource::from_paths(
        &fx.rt,
        &[s(&dep), s(&main), fx.libt_str()],
        ResourceType::Lib,
    )
    .unwrap();
    let (s1, s2) = (fx.session(), fx.session());
    s1.register(&res).unwrap();
    s2.register(&res).unwrap();
    assert_eq!(count(&s1, &res), 1);
    s1.unregister(&res).unwrap();
    // Upstream would have dlclosed here; the other session still holds the resource.
    assert_eq!(res.refcount(), 1);
    assert_eq!(fx.plugin.open_resource_count(), 1);
    assert_eq!(count(&s2, &res), 2);

    // Last holder gone: the libraries are closed (dlclose defaults to on for resources)...
    s2.unregister(&res).unwrap();
    assert_eq!(fx.plugin.open_resource_count(), 0);
    // ...and a new registration loads them afresh.
    s2.register(&res).unwrap();
    assert_eq!(count(&s2, &res), 1);
}

#[test]
fn dlclose_disabled_keeps_resource_libraries_open() {
    let fx = Fixture::new(options(DlopenMode::Now, Some(false)));
    let sess = fx.session();
    let res = Resource::new(&fx.rt, fx.libt_str(), ResourceType::Lib).unwrap();
    sess.register(&res).unwrap();
    assert_eq!(count(&sess, &res), 1);
    sess.unregister(&res).unwrap();
    assert_eq!(fx.plugin.open_resource_count(), 1);
    sess.register(&res).unwrap();
    assert_eq!(count(&sess, &res), 2);
}

#[test]
fn releasing_the_resource_closes_its_libraries() {
    let fx = Fixture::default_options();
    let (s1, s2) = (fx.session(), fx.session());
    let res = Resource::new(&fx.rt, fx.libt_str(), ResourceType::Lib).unwrap();
    s1.register(&res).unwrap();
    s2.register(&res).unwrap();
    assert_eq!(count(&s1, &res), 1);
    res.release().unwrap();
    assert_eq!(fx.plugin.open_resource_count(), 0);
}

#[test]
fn dropping_the_session_closes_its_resource_libraries() {
    let fx = Fixture::default_options();
    let res = Resource::new(&fx.rt, fx.libt_str(), ResourceType::Lib).unwrap();
    {
        let sess = fx.session();
        sess.register(&res).unwrap();
        assert_eq!(count(&sess, &res), 1);
    }
    assert_eq!(fx.plugin.open_resource_count(), 0);
    let sess = fx.session();
    sess.register(&res).unwrap();
    assert_eq!(count(&sess, &res), 1);
}

#[test]
fn in_memory_library_is_written_to_the_session_rundir() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let bytes = std::fs::read(&fx.libt).unwrap();
    let res = Resource::from_buf(&fx.rt, bytes, ResourceType::Lib, Some("lib.so"), true).unwrap();
    assert!(res.blobs()[0].path().is_none(), "mem_only keeps no file");
    sess.register(&res).unwrap();
    assert_eq!(call_i32(&sess, &res, "double_it", 10).unwrap(), 20);
    let written: Vec<String> = std::fs::read_dir(sess.rundir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, [format!("resource.{}.lib.so", res.id())]);
    // Closing the libraries removes the file.
    sess.unregister(&res).unwrap();
    assert_eq!(std::fs::read_dir(sess.rundir()).unwrap().count(), 0);
}

#[test]
fn in_memory_dependencies_work_too() {
    let fx = Fixture::default_options();
    let (dep, main) = fx.dep_pair("dep_value");
    let blobs = vec![
        Blob::from_buf(std::fs::read(&dep).unwrap(), "deps/libdep.so").unwrap(),
        Blob::from_buf(std::fs::read(&main).unwrap(), "libmain.so").unwrap(),
    ];
    let res = Resource::from_blobs(&fx.rt, blobs, ResourceType::Lib).unwrap();
    let sess = fx.session();
    sess.register(&res).unwrap();
    assert_eq!(call_i32(&sess, &res, "use_dep", 0).unwrap(), 42);
    let mut written: Vec<String> = std::fs::read_dir(sess.rundir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let id = res.id();
    assert_eq!(
        written,
        [
            format!("resource.{id}.deps_libdep.so"),
            format!("resource.{id}.libmain.so")
        ]
    );
}

#[test]
fn persisted_buffer_library_is_opened_in_place() {
    let fx = Fixture::default_options();
    let sess = fx.session();
    let bytes = std::fs::read(&fx.libt).unwrap();
    let res = Resource::from_buf(&fx.rt, bytes, ResourceType::Lib, Some("lib.so"), false).unwrap();
    assert!(res.blobs()[0].path().is_some());
    sess.register(&res).unwrap();
    assert_eq!(call_i32(&sess, &res, "double_it", 10).unwrap(), 20);
    assert_eq!(std::fs::read_dir(sess.rundir()).unwrap().count(), 0);
}

#[test]
fn stale_cache_entry_of_a_reused_id_is_replaced() {
    // dlclose disabled: releasing a resource leaves its cache entry behind.
    let fx = Fixture::new(options(DlopenMode::Now, Some(false)));
    let other = fx.other_lib();
    let sess = fx.session();
    let first = Resource::new(&fx.rt, fx.libt_str(), ResourceType::Lib).unwrap();
    let id = first.id();
    sess.register(&first).unwrap();
    assert_eq!(call_i32(&sess, &first, "double_it", 10).unwrap(), 20);
    first.release().unwrap();
    drop(first);
    assert_eq!(fx.plugin.open_resource_count(), 1);
    // Cycle the id pool until the id comes back.
    let reused = loop {
        let res = Resource::new(&fx.rt, s(&other), ResourceType::Lib).unwrap();
        if res.id() == id {
            break res;
        }
    };
    sess.register(&reused).unwrap();
    // `other`'s double_it triples: the stale libt handle must not be used.
    assert_eq!(call_i32(&sess, &reused, "double_it", 10).unwrap(), 30);
}

#[test]
fn genop_exec_with_resource_layout() {
    let fx = Fixture::default_options();
    let (dep, main) = fx.dep_pair("dep_value");
    let sess = fx.session();
    let res = Resource::from_paths(&fx.rt, &[s(&dep), s(&main)], ResourceType::Lib).unwrap();
    sess.register(&res).unwrap();
    let mut out = 0i32;
    sess.genop(
        &[
            Arg::scalar(2u8),
            Arg::scalar(res.id()),
            Arg::string("use_dep").unwrap(),
            Arg::scalar(8i32),
        ],
        &mut [Arg::out_scalar(&mut out)],
    )
    .unwrap();
    assert_eq!(out, 50);
}

#[test]
fn concurrent_calls_on_one_session() {
    let fx = Fixture::default_options();
    let (dep, main) = fx.dep_pair("dep_value");
    let sess = fx.session();
    let res = Resource::from_paths(&fx.rt, &[s(&dep), s(&main)], ResourceType::Lib).unwrap();
    sess.register(&res).unwrap();
    std::thread::scope(|scope| {
        for t in 0..8i32 {
            let (sess, res) = (Arc::clone(&sess), Arc::clone(&res));
            scope.spawn(move || {
                for i in 0..200i32 {
                    let v = t * 1000 + i;
                    assert_eq!(call_i32(&sess, &res, "use_dep", v).unwrap(), v + 42);
                }
            });
        }
    });
    assert_eq!(fx.plugin.open_resource_count(), 1);
}

#[test]
fn calls_racing_with_unregister_never_use_closed_libraries() {
    // One thread keeps unregistering and re-registering (closing the libraries each time the
    // resource has no session left) while others call: every call either succeeds with the
    // right answer or is refused because the resource is not registered at that moment.
    let fx = Fixture::default_options();
    let (dep, main) = fx.dep_pair("dep_value");
    let sess = fx.session();
    let res = Resource::from_paths(&fx.rt, &[s(&dep), s(&main)], ResourceType::Lib).unwrap();
    sess.register(&res).unwrap();
    std::thread::scope(|scope| {
        {
            let (sess, res) = (Arc::clone(&sess), Arc::clone(&res));
            scope.spawn(move || {
                for _ in 0..200 {
                    sess.unregister(&res).unwrap();
                    sess.register(&res).unwrap();
                }
            });
        }
        for t in 0..4i32 {
            let (sess, res) = (Arc::clone(&sess), Arc::clone(&res));
            scope.spawn(move || {
                for i in 0..300i32 {
                    let v = t * 1000 + i;
                    match call_i32(&sess, &res, "use_dep", v) {
                        Ok(out) => assert_eq!(out, v + 42),
                        Err(e) => assert_eq!(e.code(), ErrorCode::EPERM, "{e}"),
                    }
                }
            });
        }
    });
}

#[test]
fn libraries_of_an_unregistered_resource_are_not_cached() {
    // What a call racing with the last unregister sees: the runtime checked the registration,
    // then the resource lost its last session before the plugin opened the libraries. Called
    // through the plugin directly to make the interleaving deterministic.
    use vaccel_core::Plugin;
    let fx = Fixture::default_options();
    let sess = fx.session();
    let res = Resource::new(&fx.rt, fx.libt_str(), ResourceType::Lib).unwrap();
    sess.register(&res).unwrap();
    sess.unregister(&res).unwrap();
    let mut out = 0i32;
    fx.plugin
        .exec_with_resource(
            &sess,
            &res,
            "double_it",
            &[Arg::scalar(4i32)],
            &mut [Arg::out_scalar(&mut out)],
        )
        .unwrap();
    assert_eq!(out, 8);
    assert_eq!(fx.plugin.open_resource_count(), 0);
}
