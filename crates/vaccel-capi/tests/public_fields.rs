//! Binary drop-in (issue #13): a C program that writes public struct fields after init
//! (`res.type`, `sess.hint`, an arg's `type`) is heard, as by upstream, and the public API
//! answers as upstream's own tests expect (NULL validators and sizes, blob and buffer edge
//! cases, the model ops' type-then-registration checks). `tests/c/public_fields.c`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

#[test]
fn public_fields_are_read_back_and_edge_cases_answer_as_upstream() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("public_fields");
    build_program(&[c_source("public_fields.c")], &exe);
    let scratch = work.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    std::fs::write(scratch.join("model.bin"), "model").unwrap();
    let mut cmd = program(&exe, work.path());
    cmd.arg(&scratch)
        .current_dir(&scratch)
        .env("VACCEL_PLUGINS", "noop");
    assert_checks_pass(&mut cmd, 60);
}
