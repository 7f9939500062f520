//! Binary drop-in: every public struct of the headers has upstream vAccel's size, alignment
//! and field offsets (x86_64, glibc), checked on both sides of the ABI: the C headers, through
//! a program the system compiler builds from them, and the `#[repr(C)]` types of vaccel-abi.
//! The numbers are upstream's, written down once in [`facts`]; a drift on either side fails.
#![cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::mem::{align_of, offset_of, size_of};
use std::path::Path;
use std::process::Command;

use common::{check, include_dir};
use vaccel_abi::*;

/// One number of upstream's layout: what upstream has, what the Rust type has, and the C
/// expression that gives it from the headers.
struct Fact {
    /// `struct`, `struct.field` or `struct.align`.
    key: String,
    upstream: usize,
    rust: usize,
    c_expr: String,
}

/// Declares upstream's layout, `name: size, align { field: offset, .. }` per struct (Rust
/// spelling of the field names: `r#type` is C's `type`), and expands to the list of facts.
macro_rules! upstream_layout {
    ($($s:ident: $size:literal, $align:literal { $($f:ident: $off:literal),* $(,)? })*) => {
        fn facts() -> Vec<Fact> {
            let mut facts = Vec::new();
            $(
                let name = stringify!($s);
                facts.push(Fact {
                    key: name.to_owned(),
                    upstream: $size,
                    rust: size_of::<$s>(),
                    c_expr: format!("sizeof(struct {name})"),
                });
                facts.push(Fact {
                    key: format!("{name}.align"),
                    upstream: $align,
                    rust: align_of::<$s>(),
                    c_expr: format!("_Alignof(struct {name})"),
                });
                $(
                    let field = stringify!($f).trim_start_matches("r#");
                    facts.push(Fact {
                        key: format!("{name}.{field}"),
                        upstream: $off,
                        rust: offset_of!($s, $f),
                        c_expr: format!("offsetof(struct {name}, {field})"),
                    });
                )*
            )*
            facts
        }
    };
}

upstream_layout! {
    vaccel_list_entry: 16, 8 { next: 0, prev: 8 }
    vaccel_arg: 32, 8 { buf: 0, size: 8, r#type: 16, custom_type_id: 20, owned: 24 }
    vaccel_arg_array: 40, 8 { args: 0, count: 8, capacity: 16, position: 24, owned: 32 }
    vaccel_arg_list: 32, 8 { size: 0, list: 8, curr_idx: 16, idcs_allocated_space: 24 }
    vaccel_blob: 56, 8 {
        r#type: 0, name: 8, path: 16, path_owned: 24, data: 32, data_owned: 40, size: 48,
    }
    vaccel_resource: 152, 8 {
        id: 0, remote_id: 8, r#type: 16, path_type: 20, paths: 24, nr_paths: 32, rundir: 40,
        blobs: 48, nr_blobs: 56, entry: 64, sessions: 80, sessions_lock: 96, refcount: 136,
        plugin_priv: 144,
    }
    vaccel_session: 4264, 8 {
        id: 0, remote_id: 8, hint: 16, is_virtio: 20, rundir: 21, entry: 4120,
        resources: 4136, resource_counts: 4184, resources_lock: 4208, plugin: 4248,
        r#priv: 4256,
    }
    vaccel_config: 32, 8 {
        plugins: 0, log_level: 8, log_file: 16, profiling_enabled: 24, version_ignore: 25,
    }
    vaccel_op: 24, 8 { r#type: 0, func: 8, owner: 16 }
    vaccel_plugin_info: 96, 8 {
        name: 0, version: 8, vaccel_version: 16, init: 24, fini: 32, is_virtio: 40,
        r#type: 44, session_init: 48, session_release: 56, session_update: 64,
        resource_register: 72, resource_unregister: 80, resource_sync: 88,
    }
    vaccel_plugin: 224, 8 { dl_handle: 0, entry: 8, ops: 24, info: 216 }
    vaccel_prof_sample: 16, 8 { start: 0, time: 8 }
    vaccel_prof_region: 40, 8 { name: 0, name_owned: 8, nr_entries: 16, samples: 24, size: 32 }
    vaccel_tf_buffer: 16, 8 { data: 0, size: 8 }
    vaccel_tf_node: 16, 8 { name: 0, id: 8 }
    vaccel_tf_tensor: 40, 8 { data: 0, size: 8, owned: 16, nr_dims: 20, dims: 24, data_type: 32 }
    vaccel_tf_status: 16, 8 { code: 0, message: 8 }
    vaccel_tflite_tensor: 40, 8 {
        data: 0, size: 8, owned: 16, nr_dims: 20, dims: 24, data_type: 32,
    }
    vaccel_torch_buffer: 16, 8 { data: 0, size: 8 }
    vaccel_torch_tensor: 48, 8 {
        data: 0, size: 8, owned: 16, nr_dims: 24, dims: 32, data_type: 40,
    }
}

/// The lines of `got` that differ from upstream's, as `key: upstream U, <side> G`.
fn drift(side: &str, got: impl Fn(&Fact) -> Option<usize>) -> Vec<String> {
    facts()
        .iter()
        .filter_map(|f| match got(f) {
            Some(v) if v == f.upstream => None,
            other => Some(format!(
                "{}: upstream {}, {side} {other:?}",
                f.key, f.upstream
            )),
        })
        .collect()
}

#[test]
fn rust_types_have_upstreams_layout() {
    let diffs = drift("Rust", |f| Some(f.rust));
    assert!(diffs.is_empty(), "layout drift:\n{}", diffs.join("\n"));
}

#[test]
fn c_headers_have_upstreams_layout() {
    let mut src = String::from("#include <stddef.h>\n#include <stdio.h>\n#include <vaccel.h>\n");
    src.push_str("int main(void)\n{\n");
    for f in facts() {
        writeln!(src, "\tprintf(\"{} %zu\\n\", (size_t){});", f.key, f.c_expr).unwrap();
    }
    src.push_str("\treturn 0;\n}\n");
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("layout_facts.c");
    let exe = work.path().join("layout_facts");
    std::fs::write(&source, src).unwrap();
    let mut cc = Command::new("cc");
    cc.args(["-Wall", "-Wextra", "-Werror", "-std=gnu11", "-o"])
        .arg(&exe)
        .arg("-I")
        .arg(include_dir())
        .arg(&source);
    check(&mut cc);
    let out = check(&mut Command::new(&exe));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let c: std::collections::HashMap<&str, usize> = stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    let diffs = drift("C", |f| c.get(f.key.as_str()).copied());
    assert!(diffs.is_empty(), "layout drift:\n{}", diffs.join("\n"));
}

/// Every struct the headers define is in the table, so that a new one cannot go unchecked.
#[test]
fn every_public_struct_is_in_the_table() {
    fn structs_in(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                structs_in(&path, found);
            } else if path.extension().is_some_and(|e| e == "h") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.extend(text.lines().filter_map(|l| {
                    let name = l.strip_prefix("struct ")?.strip_suffix(" {")?;
                    Some(name.to_owned())
                }));
            }
        }
    }
    let mut found = Vec::new();
    structs_in(&include_dir(), &mut found);
    let facts = facts();
    let missing: Vec<_> = found
        .iter()
        .filter(|s| !facts.iter().any(|f| f.key == **s))
        .collect();
    assert!(!found.is_empty(), "no struct found under the headers");
    assert!(
        missing.is_empty(),
        "structs without upstream's layout in the table: {missing:?}"
    );
}
