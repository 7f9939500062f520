//! Test fixtures: C libraries compiled at test time with the system C compiler, and runtimes
//! with only the exec plugin.
#![allow(dead_code)] // each test binary uses a subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use vaccel_core::{Runtime, Session};
use vaccel_plugin_exec::{DlopenMode, ExecOptions, ExecPlugin};

/// `struct vaccel_arg` and small helpers shared by every test library.
const PRELUDE: &str = r#"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct vaccel_arg {
	void *buf;
	size_t size;
	uint32_t type;
	uint32_t custom_type_id;
	bool owned;
};

#define VACCEL_ARG_INT32 5

static int get_i32(const struct vaccel_arg *a, int32_t *out)
{
	if (!a->buf || a->size != sizeof(int32_t))
		return -1;
	memcpy(out, a->buf, sizeof(*out));
	return 0;
}

static int put_i32(struct vaccel_arg *a, int32_t v)
{
	if (!a->buf || a->size < sizeof(int32_t))
		return -1;
	memcpy(a->buf, &v, sizeof(v));
	return 0;
}

/* Counts its calls since the library was loaded: tells a reused handle from a reloaded one. */
static int32_t calls;
int count_calls(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write)
{
	(void)read;
	(void)nr_read;
	calls++;
	if (nr_write < 1)
		return 1;
	return put_i32(&write[0], calls) ? 1 : 0;
}
"#;

/// The main test library (`libt.so`).
const T_SOURCE: &str = r#"
/* read[0]: int32 v -> write[0]: int32 2v (like upstream's mytestlib). */
int double_it(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write)
{
	int32_t v;
	if (nr_read < 1 || nr_write < 1 || get_i32(&read[0], &v))
		return 1;
	return put_i32(&write[0], 2 * v) ? 1 : 0;
}

int fail_it(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write)
{
	(void)read; (void)nr_read; (void)write; (void)nr_write;
	return 7;
}

/* Sums INT32 read args into write[0]; write[1], if given, receives nr_read.
 * Empty arrays must come as NULL. */
int sum_args(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write)
{
	int32_t sum = 0;
	if ((nr_read == 0) != (read == NULL))
		return 2;
	if (nr_write < 1 || nr_write > 2)
		return 3;
	for (size_t i = 0; i < nr_read; i++) {
		int32_t v;
		if (read[i].type != VACCEL_ARG_INT32 || read[i].owned || get_i32(&read[i], &v))
			return 4;
		sum += v;
	}
	if (put_i32(&write[0], sum))
		return 5;
	if (nr_write == 2 && put_i32(&write[1], (int32_t)nr_read))
		return 5;
	return 0;
}

/* 0 iff both arrays are NULL with a count of 0. */
int no_args(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write)
{
	return (read == NULL && nr_read == 0 && write == NULL && nr_write == 0) ? 0 : 1;
}

/* write[0]: uint64 x 5 per read arg: type, custom id, size, owned, buf address.
 * write[1]: uint64 x 6: buf address, type and size of write[0] and write[1]. */
int describe(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write)
{
	if (nr_write != 2)
		return 1;
	if (write[0].size < nr_read * 5 * sizeof(uint64_t) || write[1].size < 6 * sizeof(uint64_t))
		return 2;
	for (size_t i = 0; i < nr_read; i++) {
		uint64_t v[5] = { read[i].type, read[i].custom_type_id, read[i].size, read[i].owned,
				  (uint64_t)(uintptr_t)read[i].buf };
		memcpy((char *)write[0].buf + i * sizeof(v), v, sizeof(v));
	}
	uint64_t w[6] = { (uint64_t)(uintptr_t)write[0].buf, write[0].type, write[0].size,
			  (uint64_t)(uintptr_t)write[1].buf, write[1].type, write[1].size };
	memcpy(write[1].buf, w, sizeof(w));
	return 0;
}
"#;

/// A second library with the same symbol doing something else (`double_it` triples).
const OTHER_SOURCE: &str = r#"
int double_it(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write)
{
	int32_t v;
	if (nr_read < 1 || nr_write < 1 || get_i32(&read[0], &v))
		return 1;
	return put_i32(&write[0], 3 * v) ? 1 : 0;
}
"#;

/// A library with a function calling an undefined function: opens only with `RTLD_LAZY`.
const LAZY_SOURCE: &str = r#"
int function_defined_nowhere_for_lazy_test(void);

int calls_undefined(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write)
{
	(void)read; (void)nr_read; (void)write; (void)nr_write;
	return function_defined_nowhere_for_lazy_test();
}
"#;

/// Compiles `source` (after the prelude) into `dir/<name>` with `cc -shared -fPIC`; `CC`
/// overrides the compiler. Fails the test with the compiler's output when it fails.
pub fn compile(dir: &Path, name: &str, source: &str, extra: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, format!("{PRELUDE}\n{source}")).expect("write C source");
    let out = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut cmd = Command::new(&cc);
    cmd.args(["-shared", "-fPIC", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .args(extra);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run the C compiler `{cc}` ({cmd:?}): {e}"));
    assert!(
        output.status.success(),
        "C compiler failed: {cmd:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    out
}

/// The dependency pair: `libdep.so` exports `<dep_symbol>()` (returns 42); `libmain.so`'s
/// `use_dep` writes `read[0] + <dep_symbol>()` and leaves the symbol undefined, so it opens with
/// `RTLD_NOW` only once `libdep.so` was opened `RTLD_GLOBAL`.
pub fn dep_pair(dir: &Path, dep_symbol: &str) -> (PathBuf, PathBuf) {
    let dep = compile(
        dir,
        "libdep.so",
        &format!("int {dep_symbol}(void) {{ return 42; }}\n"),
        &[],
    );
    let main = compile(
        dir,
        "libmain.so",
        &format!(
            r#"
int {dep_symbol}(void);
int use_dep(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write, size_t nr_write)
{{
	int32_t v = 0;
	if (nr_read >= 1 && get_i32(&read[0], &v))
		return 1;
	if (nr_write < 1)
		return 1;
	return put_i32(&write[0], v + {dep_symbol}()) ? 1 : 0;
}}
"#
        ),
        &[],
    );
    (dep, main)
}

/// A test's directory, its compiled libraries and its runtime.
pub struct Fixture {
    pub rt: Runtime,
    pub plugin: Arc<ExecPlugin>,
    /// `libt.so`: double_it, fail_it, sum_args, no_args, describe, count_calls.
    pub libt: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(options: ExecOptions) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let libt = compile(dir.path(), "libt.so", T_SOURCE, &[]);
        let plugin = Arc::new(ExecPlugin::new(options));
        let rt = Runtime::builder()
            .rundir_base(dir.path().join("run"))
            .skip_logging()
            .plugin(plugin.clone())
            .build()
            .expect("runtime");
        Fixture {
            rt,
            plugin,
            libt,
            dir,
        }
    }

    pub fn default_options() -> Fixture {
        Fixture::new(ExecOptions::default())
    }

    pub fn session(&self) -> Arc<Session> {
        Session::new(&self.rt, 0).expect("session")
    }

    pub fn libt_str(&self) -> &str {
        self.libt.to_str().expect("UTF-8 temp path")
    }

    pub fn other_lib(&self) -> PathBuf {
        compile(self.dir.path(), "libother.so", OTHER_SOURCE, &[])
    }

    pub fn lazy_lib(&self) -> PathBuf {
        // `-z lazy` in case the toolchain defaults to `-z now` (which would bind at load).
        compile(self.dir.path(), "liblazy.so", LAZY_SOURCE, &["-Wl,-z,lazy"])
    }

    pub fn dep_pair(&self, dep_symbol: &str) -> (PathBuf, PathBuf) {
        let sub = self.dir.path().join(dep_symbol);
        std::fs::create_dir_all(&sub).expect("mkdir");
        dep_pair(&sub, dep_symbol)
    }
}

pub fn options(mode: DlopenMode, dlclose: Option<bool>) -> ExecOptions {
    ExecOptions {
        dlopen_mode: mode,
        dlclose_enabled: dlclose,
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}
